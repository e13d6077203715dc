//! Process-wide settings that make CPU training faster, as one call an application makes first thing in `main`.
//! The library never changes them on its own (nor installs a signal handler: see [`crate::StopFlag`]).
//!
//! Both were measured on the batch-64 train step (`cifar bench`, docs/performance.md), together ~25%:
//! * mimalloc (with the cargo feature `mimalloc` and mimalloc as the global allocator) keeps freed memory
//!   mapped instead of returning it to the OS after a delay (1 s in mimalloc v3): a train step frees and
//!   re-allocates the same multi-megabyte buffers, and every return cost page faults and the kernel zeroing huge
//!   pages again (12,600 minor faults in a 40-step bench before, 410 after; ~10% of the step).
//! * subnormal floats are flushed to zero on the calling thread and rayon's pool (FTZ/DAZ,
//!   `model::device::prepare_cpu_threads`): without it Adam's decaying moments slow training by ~30% after a few
//!   epochs.
//! * candle's element-wise ops (gradient accumulation, dropout masks) run on the calling thread
//!   (`CANDLE_NUM_THREADS=1`): candle 0.11 runs them on a second thread pool of its own whose workers spin for a
//!   while after every op, on the cores the `cpu-ops` kernels' rayon pool needs (~15% of the step).
//!
//! And one measured on the Muon recipe's batch-2000 step (docs/performance.md, "The training thread joins rayon's
//! pool"):
//! * the calling thread becomes one of rayon's workers (`ThreadPoolBuilder::use_current_thread`): the pool keeps
//!   one thread a core, the caller included, instead of a core's worth of workers beside a caller that sleeps
//!   while they work. Each kernel's parallel loop then starts on a thread that is already running (no hand-off
//!   to a sleeping worker and back, twice per op, hundreds of ops a step): the cores sat idle 9% of a training
//!   run on a 2-vCPU VM before, 5-7% after.

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, v2 and v3): the milliseconds before freed
/// memory is returned to the OS; -1 never returns it. `libmimalloc-sys` does not name this option.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The purge delay set by [`tune_cpu_process`] (milliseconds).
#[cfg(feature = "mimalloc")]
const PURGE_DELAY_MS: std::ffi::c_long = -1;

/// What [`tune_cpu_process_with`] sets up. [`CpuProcess::TRAINING`] is what [`tune_cpu_process`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuProcess {
    /// candle's own ops carry more of the work (`stock_ops`): its element-wise ops keep their thread pool.
    pub stock_ops: bool,
    /// With the `mimalloc` feature: mimalloc keeps freed memory mapped (purge delay -1) instead of returning it
    /// to the OS after its delay. Right for a training run, which frees and re-allocates the same buffers every
    /// step; wrong for a long-running server, whose memory would stay at its largest request's peak for good.
    pub keep_freed_memory: bool,
    /// The calling thread joins rayon's global pool as one of its workers (the pool then starts one thread fewer).
    /// Right for a program whose calling thread drives the work (training, evaluation, benchmarks); wrong for one
    /// whose calling thread blocks for long stretches while others use the pool (a server's accept loop), which
    /// would leave the pool a worker short.
    pub caller_joins_pool: bool,
}

impl CpuProcess {
    /// For training and benchmarks: freed memory kept, candle's element-wise ops on the calling thread, which
    /// joins rayon's pool.
    pub const TRAINING: Self = Self {
        stock_ops: false,
        keep_freed_memory: true,
        caller_joins_pool: true,
    };
    /// For a long-running server (`cifar serve`): freed memory returned to the OS after mimalloc's delay; the
    /// calling thread stays out of rayon's pool.
    pub const SERVER: Self = Self {
        stock_ops: false,
        keep_freed_memory: false,
        caller_joins_pool: false,
    };
}

/// Tunes the process for CPU training (see the module docs): subnormals flushed to zero; with the `mimalloc`
/// feature, mimalloc keeps freed memory (unless `MIMALLOC_PURGE_DELAY` is set: then mimalloc's own reading of it
/// stands; `1000`, its default, trades about 12% of airbench94's step for a peak memory that does not grow over a
/// long run); unless `stock_ops` (candle's own ops, which carry more of the work then) or the user set
/// `CANDLE_NUM_THREADS`, candle's element-wise ops run on the calling thread; the calling thread joins rayon's
/// global pool (`RAYON_NUM_THREADS`, if set, still counts the pool's threads, the caller included). The same as
/// [`tune_cpu_process_with`] with [`CpuProcess::TRAINING`] (and `stock_ops`). The `cifar` binary calls it first
/// thing in `main`:
///
/// ```no_run
/// // SAFETY: first thing in main, while the process has one thread.
/// unsafe { cifar10_train::tune_cpu_process(false) };
/// ```
///
/// # Safety
///
/// It sets an environment variable: call it while the process has a single thread (no other thread may read or
/// write the environment concurrently), before candle or rayon start their threads.
pub unsafe fn tune_cpu_process(stock_ops: bool) {
    // SAFETY: the caller's guarantee, passed on.
    unsafe {
        tune_cpu_process_with(CpuProcess {
            stock_ops,
            ..CpuProcess::TRAINING
        })
    };
}

/// [`tune_cpu_process`] with every setting chosen: a server passes [`CpuProcess::SERVER`], which leaves
/// mimalloc's purge delay at its default, so that the memory a large request took goes back to the OS.
///
/// # Safety
///
/// As [`tune_cpu_process`]: call it while the process has a single thread.
pub unsafe fn tune_cpu_process_with(settings: CpuProcess) {
    // A purge delay the user set in mimalloc's own environment variable wins.
    #[cfg(feature = "mimalloc")]
    if settings.keep_freed_memory && std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: plain option store in mimalloc.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    #[cfg(not(feature = "mimalloc"))]
    let _ = settings.keep_freed_memory;
    if !settings.stock_ops && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees the process is single-threaded here.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    if settings.caller_joins_pool {
        join_rayon_pool();
    }
    // Starts rayon's pool (after the environment is set) and sets FTZ/DAZ on its threads and this one.
    model::device::prepare_cpu_threads();
}

/// Builds rayon's global pool with the calling thread as its first worker. Where the pool already exists (rayon
/// was used before this call), the run goes on with it as it is, said in the log: only the speed differs.
fn join_rayon_pool() {
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
    {
        tracing::warn!(
            "the calling thread could not join rayon's thread pool ({e}); its parallel loops start on a sleeping worker, as without this setting"
        );
    }
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_option_index_is_mimallocs() {
        // mimalloc v3's default purge delay is 1000 ms (options.c); a wrong index would read another option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an option (initialising it from the environment once).
            let v = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(v, 1000);
        }
    }
}
