//! The process settings fast CPU training needs (mimalloc keeps freed memory, candle's element-wise ops on the
//! calling thread, which joins rayon's pool): documented and measured in `train::tune_cpu_process`, asked for here by the binary.

/// Applies them. Must be called first thing in `main`, while the process has one thread. `cifar serve` runs for
/// weeks: its freed memory goes back to the OS and its main thread (which waits on the listener) stays out of
/// rayon's pool (`train::CpuProcess::SERVER`); every other command keeps freed memory and drives the pool from
/// its main thread.
pub fn configure(cli: &crate::args::Cli) {
    let serve = matches!(cli.command, crate::args::Command::Serve(_));
    let settings = train::CpuProcess {
        stock_ops: cli.wants_stock_ops(),
        keep_freed_memory: !serve,
        caller_joins_pool: !serve,
    };
    // SAFETY: called first thing in `main`, before any other thread exists (see `train::tune_cpu_process`).
    unsafe { train::tune_cpu_process_with(settings) };
}
