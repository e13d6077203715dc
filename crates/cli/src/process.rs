//! Process-wide settings for CPU training, made before any other thread exists.
//!
//! Both were measured on the batch-64 train step (`cifar bench`, docs/performance.md):
//! * mimalloc keeps freed memory mapped instead of returning it to the OS after a delay (1 s in mimalloc v3): a train step frees and
//!   re-allocates the same multi-megabyte buffers, and every return cost page faults and the kernel zeroing huge
//!   pages again (12,600 minor faults in a 40-step bench before, 410 after; ~10% of the step).
//! * candle's element-wise ops (gradient accumulation, dropout masks) run on the calling thread: candle 0.11
//!   runs them on a second thread pool of its own whose workers spin for a while after every op, on the two
//!   cores the `cpu-ops` kernels' rayon pool needs (~15% of the step). Not done with `--stock-ops`, where those
//!   ops carry more of the work; a `CANDLE_NUM_THREADS` set by the user always wins.

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, v2 and v3): the milliseconds before freed
/// memory is returned to the OS; -1 never returns it. `libmimalloc-sys` does not name this option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings above. Must be called first thing in `main`, while the process has one thread.
pub fn configure(stock_ops: bool) {
    // SAFETY: plain option store in mimalloc; called before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    if !stock_ops && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the process is single-threaded here (see the doc comment), so no other thread reads the
        // environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

#[cfg(test)]
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
