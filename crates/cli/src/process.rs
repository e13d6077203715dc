//! The process settings fast CPU training needs (mimalloc keeps freed memory, candle's element-wise ops on the
//! calling thread): documented and measured in `train::tune_cpu_process`, asked for here by the binary.

/// Applies them. Must be called first thing in `main`, while the process has one thread.
pub fn configure(stock_ops: bool) {
    // SAFETY: called first thing in `main`, before any other thread exists (see `train::tune_cpu_process`).
    unsafe { train::tune_cpu_process(stock_ops) };
}
