//! `tune_cpu_process_with`: the calling thread becomes one of rayon's workers. A test binary of its own: it sets
//! up the process's global pool, which every other test would then share.

use rayon::prelude::*;

#[test]
fn the_calling_thread_joins_rayons_pool() {
    assert_eq!(rayon::current_thread_index(), None, "not a worker before");
    let settings = cifar10_train::CpuProcess {
        // Leaves the environment as it is (no `CANDLE_NUM_THREADS` written), so the test harness's own thread
        // cannot race a write.
        stock_ops: true,
        ..cifar10_train::CpuProcess::TRAINING
    };
    assert!(settings.caller_joins_pool);
    // SAFETY: with `stock_ops` the call writes no environment variable; nothing else in this process uses rayon.
    unsafe { cifar10_train::tune_cpu_process_with(settings) };
    assert_eq!(
        rayon::current_thread_index(),
        Some(0),
        "the caller is worker 0"
    );
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            rayon::current_num_threads(),
            cores,
            "one thread a core, the caller included"
        );
    }
    let on: std::collections::BTreeSet<Option<usize>> = (0..4096)
        .into_par_iter()
        .with_max_len(1)
        .map(|_| rayon::current_thread_index())
        .collect();
    assert!(
        on.iter().all(|i| i.is_some()),
        "parallel loops run on the pool's workers: {on:?}"
    );
    let sum: u64 = (0..10_000u64).into_par_iter().sum();
    assert_eq!(sum, 49_995_000);
}
