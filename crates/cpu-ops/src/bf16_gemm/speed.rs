//! How fast the bf16 GEMM runs against the f32 one on this CPU, measured once per process.
//!
//! AVX512-BF16 does not make bf16 faster everywhere. `VDPBF16PS` does 32 multiply-adds per instruction against
//! an f32 FMA's 16, so where a CPU issues both at the same rate the bf16 GEMM can run up to twice as fast (the
//! bf16 convolutions measured 1.35-1.72x f32's on a Zen 5, docs/performance.md); but a CPU may issue it at a
//! quarter of the FMA's rate, and then bf16 runs at half f32's speed (measured on a 2-core Intel Xeon, family 6
//! model 207: 43 against 87 G multiply-adds per second and core; the bf16 GEMM 0.5x the f32 one;
//! airbench94-muon's train step 252 against 415 img/s).
//! The feature flags cannot tell these CPUs apart, so callers that pick or advise a precision measure with
//! [`gemm_speed`].

use std::sync::OnceLock;
use std::time::Instant;

use crate::util::{Mat, sgemm};

/// One thread's throughput of this crate's bf16 GEMM and of its f32 GEMM on the same product, in GFLOP/s
/// (two per multiply-add), each the fastest of several alternated runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmSpeed {
    /// The bf16 GEMM (inputs rounded to bf16, f32 sums).
    pub bf16_gflops: f64,
    /// The f32 GEMM.
    pub f32_gflops: f64,
}

impl GemmSpeed {
    /// bf16's throughput over f32's: above 1 where bf16 convolutions are the faster ones.
    pub fn ratio(&self) -> f64 {
        self.bf16_gflops / self.f32_gflops
    }
}

/// The bf16 and f32 GEMMs' speeds on this CPU, measured on first call (about 10 ms on one thread) and kept for
/// the process; `None` where the bf16 kernel does not run ([`super::bf16_supported`]).
///
/// A measurement, so it varies a little from process to process; the CPUs it is for differ by a factor of
/// about four (0.5x against up to 2x), far beyond that noise.
pub fn gemm_speed() -> Option<GemmSpeed> {
    static SPEED: OnceLock<Option<GemmSpeed>> = OnceLock::new();
    *SPEED.get_or_init(|| super::bf16_supported().then(measure))
}

/// A convolution-sized product (128 x 256 over a depth of 576, a 3x3 convolution of 64 channels), alternated
/// between the two kernels, the fastest run of each kept.
fn measure() -> GemmSpeed {
    const M: usize = 128;
    const N: usize = 256;
    const K: usize = 576;
    const RUNS: usize = 5;
    let value = |i: usize| ((i * 7919 % 29) as f32 - 14.0) * 0.05;
    let a: Vec<f32> = (0..M * K).map(value).collect();
    let b: Vec<f32> = (0..K * N).map(|i| value(i + 3)).collect();
    let (am, bm) = (
        Mat {
            data: &a,
            rs: K,
            cs: 1,
        },
        Mat {
            data: &b,
            rs: N,
            cs: 1,
        },
    );
    let mut dst = vec![0f32; M * N];
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64().max(1e-9)
    };
    let (mut bf16_s, mut f32_s) = (f64::MAX, f64::MAX);
    for _ in 0..RUNS {
        bf16_s = bf16_s.min(time(&mut || run_bf16(M, N, K, &mut dst, am, bm)));
        f32_s = f32_s.min(time(&mut || sgemm(M, N, K, &mut dst, N, false, am, bm)));
    }
    std::hint::black_box(&dst);
    let gflop = 2.0 * (M * N * K) as f64 / 1e9;
    GemmSpeed {
        bf16_gflops: gflop / bf16_s,
        f32_gflops: gflop / f32_s,
    }
}

/// The bf16 kernel itself, not [`super::bgemm`]: a measurement must not record the kernel as one a model ran
/// ([`crate::builds_run`]).
fn run_bf16(m: usize, n: usize, k: usize, dst: &mut [f32], a: Mat<'_>, b: Mat<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        super::assert_dst_rhs(m, n, k, dst, n, b);
        // SAFETY: only called where `bf16_supported` holds (see `gemm_speed`); the index ranges of dst and b
        // were asserted just above, and `a` is the full `m × k` row-major matrix built by `measure`.
        unsafe {
            super::x86::bgemm(
                m,
                n,
                k,
                dst,
                n,
                false,
                super::ASrc::Mat(a),
                super::BSrc::Mat(b),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    super::bgemm_scalar(m, n, k, dst, n, false, a, b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_is_measured_where_bf16_runs_and_kept() {
        match gemm_speed() {
            None => assert!(!super::super::bf16_supported()),
            Some(s) => {
                assert!(s.bf16_gflops.is_finite() && s.bf16_gflops > 0.0, "{s:?}");
                assert!(s.f32_gflops.is_finite() && s.f32_gflops > 0.0, "{s:?}");
                assert_eq!(gemm_speed(), Some(s), "measured once per process");
                assert!((s.ratio() - s.bf16_gflops / s.f32_gflops).abs() < 1e-12);
            }
        }
    }
}
