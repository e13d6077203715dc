//! Flush-to-zero for subnormal floats on x86-64.
//!
//! Subnormal (denormal) f32 values are up to ~100x slower to compute with on x86 CPUs. They appear in training
//! as Adam's moments of parameters whose gradient stays zero (e.g. behind dead ReLUs) decay geometrically: with
//! β1 = 0.9 the first moment reaches the subnormal range after ~850 steps, and every later step then pays for it.
//! Setting the FTZ and DAZ bits of MXCSR treats them as zero instead, as oneDNN-backed frameworks do. The effect on
//! results is below f32's normal precision (values under 1.2e-38).
//!
//! ```
//! candle_cpu_ops::flush_denormals_everywhere();
//! let tiny = std::hint::black_box(1e-39f32);
//! # #[cfg(target_arch = "x86_64")]
//! assert_eq!(std::hint::black_box(tiny * 1.0), 0.0);
//! ```

/// Sets FTZ and DAZ on the calling thread (a no-op on other architectures).
pub fn flush_denormals_this_thread() {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    #[allow(deprecated)]
    // SAFETY: reading and writing MXCSR only changes this thread's floating-point mode; FTZ (bit 15) and DAZ
    // (bit 6) are supported by every x86-64 CPU with SSE2, which x86-64 requires.
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | (1 << 15) | (1 << 6));
    }
}

/// Sets FTZ and DAZ on the calling thread and on every thread of rayon's global pool (where candle's and this
/// crate's CPU kernels run).
pub fn flush_denormals_everywhere() {
    flush_denormals_this_thread();
    rayon::broadcast(|_| flush_denormals_this_thread());
}
