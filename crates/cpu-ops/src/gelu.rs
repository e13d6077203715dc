//! Exact (erf) GELU: a vectorisable f32 erf, the per-slice and per-channel kernels that use it (GELU, and the
//! fused BatchNorm + bias + GELU of `batch_norm.rs`) compiled for AVX-512, AVX2 and the baseline with run-time
//! dispatch, and the standalone GELU op.
//!
//! `gelu(z) = z·Φ(z)`, `gelu'(z) = Φ(z) + z·φ(z)`, with `Φ(z) = ½(1 + erf(z/√2))` and `φ(z) = e^{-z²/2}/√(2π)`.
//! The erf is Abramowitz & Stegun 7.1.26 (`erfc(u) ≈ t·P(t)·e^{-u²}`, `t = 1/(1 + p·u)`, absolute error
//! ≤ 1.5e-7), with `e^{-u²}` from a Cody–Waite range reduction and the Cephes `expf` polynomial written with bit
//! operations (no libm call, so the loops vectorise). The same exponential is `φ`, so the backward costs one
//! exponential per element too. `Φ(-|z|) = ½·erfc(|z|/√2)` is computed directly (no `1 - erf` cancellation), so
//! `gelu` of negative inputs keeps its relative precision. Measured error (unit tests, against an f64 series):
//! erf within 4.6e-7 absolute on [-8, 8] (largest near 0, where `1 - erfc` rounds); see
//! `erf_error_is_below_1e_6`. For `|z| > 9√2` the tails are exactly 0 (no denormals).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::util::{slice_f32, with_tensor_f32};

/// Elements per rayon task of the elementwise GELU kernels.
const CHUNK: usize = 1 << 14;

/// The scalar math, inlined into every build of the kernels.
pub(crate) mod math {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 split for the Cody–Waite reduction (Cephes): `LN2_HI` has 9 significant bits, so `k·LN2_HI` is exact
    /// for the `|k| < 128` that occur here.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    /// 1.5·2²³: adding it rounds an f32 of magnitude below 2²² to an integer held in the low mantissa bits.
    const ROUND_MAGIC: f32 = 12_582_912.0;
    /// Abramowitz & Stegun 7.1.26.
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_72;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    /// 1/√(2π).
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    /// The smallest argument of [`exp_neg`]: `e^-80` ≈ 1.8e-35 is still a normal f32.
    const EXP_MIN: f32 = -80.0;

    /// `e^x` for `x` in `[-80, 0]` (a clamped NaN becomes `-80`; callers propagate NaN through other terms),
    /// within ~2 ulp. Branch-free: the integer part goes straight into the exponent bits.
    #[inline(always)]
    pub(crate) fn exp_neg(x: f32) -> f32 {
        let x = x.clamp(EXP_MIN, 0.0);
        let kf = x * LOG2E + ROUND_MAGIC;
        let k = kf - ROUND_MAGIC;
        // k = round(x·log2 e) in [-116, 0]; its two's complement sits in the low bits of kf.
        let k_bits = kf.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
        let r = x - k * LN2_HI - k * LN2_LO;
        // Cephes expf polynomial on |r| <= ln2/2.
        let mut p = 1.987_569_1e-4f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 0.166_666_65;
        p = p * r + 0.5;
        let er = p * r * r + r + 1.0;
        let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
        er * scale
    }

    /// Beyond it `erfc(u) < 5e-37` and `e^{-u²} < 7e-36` are returned as zero (no denormal results).
    const U_MAX: f32 = 9.0;

    /// `(erfc(u), e^{-u²})` for `u >= 0` (A&S 7.1.26).
    #[inline(always)]
    pub(crate) fn erfc_pos(u: f32) -> (f32, f32) {
        let t = 1.0 / (1.0 + P * u);
        let e = exp_neg(-(u * u));
        let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
        // A NaN `u` fails the comparison and stays NaN through `t`.
        if u > U_MAX { (0.0, 0.0) } else { (poly * e, e) }
    }

    /// `erf(x)` (for the tests of the approximation).
    #[cfg(test)]
    #[inline(always)]
    pub(crate) fn erf(x: f32) -> f32 {
        let (c, _) = erfc_pos(x.abs());
        let m = 1.0 - c;
        if x < 0.0 { -m } else { m }
    }

    /// `(Φ(z), φ(z))`: the standard normal CDF and density.
    #[inline(always)]
    pub(crate) fn cdf_pdf(z: f32) -> (f32, f32) {
        let (c, e) = erfc_pos(z.abs() * FRAC_1_SQRT_2);
        let lower = 0.5 * c; // Φ(-|z|)
        let cdf = if z >= 0.0 { 1.0 - lower } else { lower };
        // NaN in, NaN out (the comparison above sends a NaN z to `lower`, NaN through `t`).
        (cdf, e * INV_SQRT_2PI)
    }

    /// `gelu(z) = z·Φ(z)`.
    #[inline(always)]
    pub(crate) fn gelu(z: f32) -> f32 {
        z * cdf_pdf(z).0
    }

    /// `gelu'(z) = Φ(z) + z·φ(z)`.
    #[inline(always)]
    pub(crate) fn gelu_grad(z: f32) -> f32 {
        let (cdf, pdf) = cdf_pdf(z);
        cdf + z * pdf
    }
}

/// One channel's normalisation `z = x̂ + bias`, `x̂ = (x - mean)·invstd`. The mean is split into an f32 and the
/// f32 rounding of the rest (`mean ≈ mean_hi + mean_lo`), and `x̂` computed as `((x - mean_hi) - mean_lo)·invstd`:
/// when the spread is tiny against the mean, `x - mean_hi` is exact and the mean's f32 rounding is not amplified
/// by a large `invstd`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Norm {
    pub mean_hi: f32,
    pub mean_lo: f32,
    pub invstd: f32,
    pub bias: f32,
}

impl Norm {
    /// The split of an f64 mean.
    pub(crate) fn new(mean: f64, invstd: f64, bias: f32) -> Self {
        let mean_hi = mean as f32;
        Self {
            mean_hi,
            mean_lo: (mean - mean_hi as f64) as f32,
            invstd: invstd as f32,
            bias,
        }
    }

    /// `x̂`.
    #[inline(always)]
    fn xhat(&self, x: f32) -> f32 {
        ((x - self.mean_hi) - self.mean_lo) * self.invstd
    }
}

/// The kernel bodies, compiled once per build (see [`Kernels`]).
mod body {
    use super::Norm;
    use super::math::{cdf_pdf, gelu, gelu_grad};
    use crate::util::{copy_row, prefetch_ahead, prefetch_distance};

    /// `y = gelu(x)`.
    #[inline(always)]
    pub(super) fn gelu_fwd(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = gelu(x);
        }
    }

    /// `dx = dy·gelu'(x)`.
    #[inline(always)]
    pub(super) fn gelu_bwd(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
            *d = g * gelu_grad(x);
        }
    }

    /// `Σ x` over one channel's planes, in f64 (8 independent lanes, so the loop vectorises).
    #[inline(always)]
    pub(super) fn chan_sum(xs: &[&[f32]]) -> f64 {
        let mut lanes = [0f64; 8];
        let ahead = prefetch_distance(xs);
        for (i, x) in xs.iter().enumerate() {
            prefetch_ahead(xs, i + ahead);
            let chunks = x.chunks_exact(8);
            let rest = chunks.remainder();
            for c in chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += v as f64;
                }
            }
            for (l, &v) in lanes.iter_mut().zip(rest) {
                *l += v as f64;
            }
        }
        lanes.iter().sum()
    }

    /// `Σ (x - mean)²` over one channel's planes, in f64.
    #[inline(always)]
    pub(super) fn chan_sq_dev(xs: &[&[f32]], mean: f64) -> f64 {
        let mut lanes = [0f64; 8];
        let ahead = prefetch_distance(xs);
        for (i, x) in xs.iter().enumerate() {
            prefetch_ahead(xs, i + ahead);
            let chunks = x.chunks_exact(8);
            let rest = chunks.remainder();
            for c in chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    let d = v as f64 - mean;
                    *l += d * d;
                }
            }
            for (l, &v) in lanes.iter_mut().zip(rest) {
                let d = v as f64 - mean;
                *l += d * d;
            }
        }
        lanes.iter().sum()
    }

    /// `y = gelu(x̂ + bias)` over one block.
    #[inline(always)]
    fn fwd_block(x: &[f32; L], nm: Norm) -> [f32; L] {
        let mut y = [0f32; L];
        for (y, &x) in y.iter_mut().zip(x) {
            *y = gelu(nm.xhat(x) + nm.bias);
        }
        y
    }

    /// `y = gelu(x̂ + bias)` over one channel's planes; a plane shorter than a block of `L` (airbench94's 3x3) as
    /// one zero-padded block: one vector of work instead of an elementwise loop too short to vectorise.
    #[inline(always)]
    pub(super) fn chan_fwd(xs: &[&[f32]], ys: &mut [&mut [f32]], nm: Norm) {
        let ahead = prefetch_distance(xs);
        for (i, (x, y)) in xs.iter().zip(ys.iter_mut()).enumerate() {
            prefetch_ahead(xs, i + ahead);
            let n = x.len();
            if n < L && y.len() == n {
                let yb = fwd_block(&padded(x), nm);
                copy_row(y, &yb[..n]);
                continue;
            }
            for (y, &x) in y.iter_mut().zip(x.iter()) {
                *y = gelu(nm.xhat(x) + nm.bias);
            }
        }
    }

    /// Elements per block of the backward's first pass: one AVX-512 vector, two AVX2 vectors. A plane of at least
    /// `L` elements is walked in whole blocks, then its last `len % L` elements as the block that ends the plane
    /// (overlapping the one before it: `g` there is computed twice, the same bits, and the sums take only the new
    /// elements). A plane shorter than a block (3x3) is one zero-padded block, of which only its own elements are
    /// kept and summed.
    const L: usize = 16;

    /// f64 sums in 8 lanes, element `p` of a plane added to lane `p % 8` in order of `p`, whatever the block size (so
    /// the bits do not depend on the blocking).
    type Lanes = [f64; 8];

    /// Adds a whole block whose first element sits at a plane offset that is a multiple of 8.
    #[inline(always)]
    fn add_block(lanes: &mut Lanes, v: &[f32; L]) {
        for (j, &v) in v.iter().enumerate() {
            lanes[j % 8] += v as f64;
        }
    }

    /// Adds `v`, whose first element sits at plane offset `at`, one value at a time.
    #[inline(always)]
    fn add_each(lanes: &mut Lanes, v: &[f32], at: usize) {
        for (p, &v) in v.iter().enumerate() {
            lanes[(at + p) % 8] += v as f64;
        }
    }

    /// `x` (shorter than a block) as the start of a block, the rest zero.
    #[inline(always)]
    fn padded(x: &[f32]) -> [f32; L] {
        let mut b = [0f32; L];
        let n = x.len().min(L);
        copy_row(&mut b[..n], &x[..n]);
        b
    }

    /// The block of `L` elements that ends `x` (none when `x` is shorter).
    #[inline(always)]
    fn last_block(x: &[f32]) -> Option<&[f32; L]> {
        x.len()
            .checked_sub(L)
            .and_then(|at| <&[f32; L]>::try_from(&x[at..]).ok())
    }

    /// `(g, g·x̂)` at one element, `g = dy·gelu'(x̂ + bias)`.
    #[inline(always)]
    fn bwd_at(x: f32, dy: f32, nm: Norm) -> (f32, f32) {
        let xh = nm.xhat(x);
        let z = xh + nm.bias;
        let (cdf, pdf) = cdf_pdf(z);
        let g = dy * (cdf + z * pdf);
        (g, g * xh)
    }

    /// [`bwd_at`] over one block.
    #[inline(always)]
    fn bwd_block(x: &[f32; L], dy: &[f32; L], nm: Norm) -> ([f32; L], [f32; L]) {
        let (mut g, mut gx) = ([0f32; L], [0f32; L]);
        for j in 0..L {
            (g[j], gx[j]) = bwd_at(x[j], dy[j], nm);
        }
        (g, gx)
    }

    /// First pass of the BatchNorm + GELU backward over one channel: `g = dy·gelu'(z)` with
    /// `z = x̂ + bias`, written to `gs`; returns `(Σ g, Σ g·x̂)` in f64. One loop over blocks of `L` computes
    /// `g` and adds both sums (f32 products, f64 lanes): 1.6x the speed of a loop writing `g` and a second one
    /// summing, whose f64 conversions compiled to 2-lane code.
    #[inline(always)]
    pub(super) fn chan_bwd_sums(
        xs: &[&[f32]],
        dys: &[&[f32]],
        gs: &mut [&mut [f32]],
        nm: Norm,
    ) -> (f64, f64) {
        let (mut sg, mut sgx): (Lanes, Lanes) = ([0f64; 8], [0f64; 8]);
        let ahead = prefetch_distance(xs);
        for (i, ((x, dy), g)) in xs.iter().zip(dys).zip(gs.iter_mut()).enumerate() {
            prefetch_ahead(xs, i + ahead);
            prefetch_ahead(dys, i + ahead);
            let n = x.len();
            if n < L && dy.len() == n && g.len() == n {
                let (gb, gx) = bwd_block(&padded(x), &padded(dy), nm);
                copy_row(g, &gb[..n]);
                add_each(&mut sg, &gb[..n], 0);
                add_each(&mut sgx, &gx[..n], 0);
                continue;
            }
            if n < L || dy.len() != n || g.len() != n {
                for (p, ((g, &x), &dy)) in g.iter_mut().zip(x.iter()).zip(dy.iter()).enumerate() {
                    let gx;
                    (*g, gx) = bwd_at(x, dy, nm);
                    sg[p % 8] += *g as f64;
                    sgx[p % 8] += gx as f64;
                }
                continue;
            }
            let t = n % L;
            for ((x, dy), g) in x
                .chunks_exact(L)
                .zip(dy.chunks_exact(L))
                .zip(g.chunks_exact_mut(L))
            {
                if let (Ok(x), Ok(dy)) = (<&[f32; L]>::try_from(x), <&[f32; L]>::try_from(dy)) {
                    let (gb, gx) = bwd_block(x, dy, nm);
                    g.copy_from_slice(&gb);
                    add_block(&mut sg, &gb);
                    add_block(&mut sgx, &gx);
                }
            }
            if t > 0
                && let (Some(xb), Some(db)) = (last_block(x), last_block(dy))
            {
                let (gb, gx) = bwd_block(xb, db, nm);
                g[n - L..].copy_from_slice(&gb);
                add_each(&mut sg, &gb[L - t..], n - t);
                add_each(&mut sgx, &gx[L - t..], n - t);
            }
        }
        (sg.iter().sum(), sgx.iter().sum())
    }

    /// Second pass: `dx = invstd·(g - mean_g - x̂·mean_gx̂)` in place over `gs`.
    #[inline(always)]
    pub(super) fn chan_bwd_dx(
        xs: &[&[f32]],
        gs: &mut [&mut [f32]],
        nm: Norm,
        mean_g: f32,
        mean_gx: f32,
    ) {
        let ahead = prefetch_distance(xs);
        for (i, (x, g)) in xs.iter().zip(gs.iter_mut()).enumerate() {
            prefetch_ahead(xs, i + ahead);
            for (g, &x) in g.iter_mut().zip(x.iter()) {
                let xh = nm.xhat(x);
                *g = nm.invstd * (*g - mean_g - xh * mean_gx);
            }
        }
    }
}

macro_rules! builds {
    ($( $(#[$doc:meta])* fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)?; )*) => {
        /// One build of the GELU / BatchNorm kernels (function pointers into it).
        #[derive(Clone, Copy)]
        pub(crate) struct Kernels {
            $( $(#[$doc])* pub(crate) $name: fn($($t),*) $(-> $r)?, )*
        }

        /// The baseline build (whatever the target's default features allow).
        pub(crate) const BASELINE: Kernels = Kernels { $( $name: body::$name, )* };

        #[cfg(target_arch = "x86_64")]
        mod v4 {
            use super::Norm;
            $(
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
                pub(super) fn $name($($a: $t),*) $(-> $r)? { super::body::$name($($a),*) }
            )*
        }

        #[cfg(target_arch = "x86_64")]
        mod v3 {
            use super::Norm;
            $(
                #[target_feature(enable = "avx2")]
                pub(super) fn $name($($a: $t),*) $(-> $r)? { super::body::$name($($a),*) }
            )*
        }

        /// The AVX-512 build, when the CPU has AVX-512 (F, BW, VL).
        pub(crate) fn avx512() -> Option<Kernels> {
            #[cfg(target_arch = "x86_64")]
            {
                if crate::Isa::detect() >= crate::Isa::Avx512 {
                    return Some(Kernels {
                        // SAFETY: the CPU has the features the `v4` functions are compiled for (checked above).
                        $( $name: |$($a),*| unsafe { v4::$name($($a),*) }, )*
                    });
                }
            }
            None
        }

        /// The AVX2 build, when the CPU has AVX2.
        pub(crate) fn avx2() -> Option<Kernels> {
            #[cfg(target_arch = "x86_64")]
            {
                if crate::Isa::detect() >= crate::Isa::Avx2 {
                    return Some(Kernels {
                        // SAFETY: the CPU has the features the `v3` functions are compiled for (checked above).
                        $( $name: |$($a),*| unsafe { v3::$name($($a),*) }, )*
                    });
                }
            }
            None
        }
    };
}

builds! {
    /// `y = gelu(x)`.
    fn gelu_fwd(x: &[f32], y: &mut [f32]);
    /// `dx = dy·gelu'(x)`.
    fn gelu_bwd(x: &[f32], dy: &[f32], dx: &mut [f32]);
    /// `Σ x` over a channel's planes (f64).
    fn chan_sum(xs: &[&[f32]]) -> f64;
    /// `Σ (x - mean)²` over a channel's planes (f64).
    fn chan_sq_dev(xs: &[&[f32]], mean: f64) -> f64;
    /// `y = gelu(x̂ + bias)` over a channel's planes.
    fn chan_fwd(xs: &[&[f32]], ys: &mut [&mut [f32]], nm: Norm);
    /// Backward pass 1: `g = dy·gelu'(z)` into `gs`, returns `(Σ g, Σ g·x̂)`.
    fn chan_bwd_sums(xs: &[&[f32]], dys: &[&[f32]], gs: &mut [&mut [f32]], nm: Norm) -> (f64, f64);
    /// Backward pass 2: `dx = invstd·(g - mean_g - x̂·mean_gx̂)` in place.
    fn chan_bwd_dx(xs: &[&[f32]], gs: &mut [&mut [f32]], nm: Norm, mean_g: f32, mean_gx: f32);
}

/// The build the CPU runs: AVX-512, else AVX2, else the baseline.
pub(crate) fn kernels() -> Kernels {
    crate::isa::record_detected(crate::KernelFamily::Gelu);
    avx512().or_else(avx2).unwrap_or(BASELINE)
}

/// Exact GELU as a candle op; the backward recomputes `gelu'` from the input.
pub(crate) struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "cpu-ops-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice_f32(s, l)?;
        let mut y = vec![0f32; x.len()];
        let k = kernels();
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| (k.gelu_fwd)(x, y));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let k = kernels();
        let dx = with_tensor_f32(arg, |x| {
            with_tensor_f32(grad, |dy| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(CHUNK)
                    .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
                    .for_each(|(d, (x, g))| (k.gelu_bwd)(x, g, d));
                Ok(dx)
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests;
