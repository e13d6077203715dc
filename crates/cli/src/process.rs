//! The process settings fast CPU training needs (mimalloc keeps freed memory, candle's element-wise ops on the
//! calling thread): documented and measured in `train::tune_cpu_process`, asked for here by the binary.

/// Applies them. Must be called first thing in `main`, while the process has one thread. `cifar serve` runs for
/// weeks: its freed memory goes back to the OS (`train::CpuProcess::SERVER`); every other command keeps it.
pub fn configure(cli: &crate::args::Cli) {
    let settings = train::CpuProcess {
        stock_ops: cli.wants_stock_ops(),
        keep_freed_memory: !matches!(cli.command, crate::args::Command::Serve(_)),
    };
    // SAFETY: called first thing in `main`, before any other thread exists (see `train::tune_cpu_process`).
    unsafe { train::tune_cpu_process_with(settings) };
}
