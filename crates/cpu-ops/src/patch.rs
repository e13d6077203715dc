//! A frozen 2x2 "patch" convolution (stride 1, no padding) + per-channel bias + exact GELU, fused, with a
//! gradient for the bias only: airbench94's whitening layer, whose filters are computed from the data and never
//! trained.
//!
//! Forward, per image and output channel: the 2x2 convolution is computed over the input plane's own row stride
//! (`W`, one column wider than the `W - 1` outputs), so each of the `Ci·4` filter taps reads the plane contiguously:
//! 64 pre-activations at a time sum every tap in registers, the GELU then runs over the whole span in blocks of 16
//! (not over 31-wide rows, whose tails would not vectorise), and the spare column is dropped as the output rows are
//! copied out. The backward
//! recomputes the pre-activation the same way (cheaper than storing it: 12 multiply-adds per value) and sums
//! `dy·gelu'(z)` per channel (each output row in 16 f32 lanes, rows and images in f64), per fixed group of images,
//! then adds the groups up in order, so the result does not depend on the number of threads.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::gelu::math::{gelu, gelu_grad};
use crate::util::{slice_f32, with_tensor_f32};

/// Images per rayon task in the backward (fixed, so the sums' order is too).
const IMAGES_PER_TASK: usize = 8;

/// The op: `gelu(conv2x2(x, w) + b)`, `w` held by the op (not an input, so never differentiated).
pub(crate) struct PatchConvGelu {
    /// `[Co, Ci, 2, 2]`, row-major.
    pub w: Vec<f32>,
    pub co: usize,
}

/// Sizes of one call.
#[derive(Clone, Copy)]
struct Dims {
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
}

impl Dims {
    fn plane_in(&self) -> usize {
        self.h * self.w
    }
    fn plane_out(&self) -> usize {
        (self.h - 1) * (self.w - 1)
    }
    /// Length of the pre-activation computed at the input's row stride (the last row's spare column left out).
    fn span(&self) -> usize {
        (self.h - 1) * self.w - 1
    }
}

/// The kernel bodies, inlined into one AVX-512 and one baseline build.
mod body {
    use super::{Dims, gelu, gelu_grad};

    /// Pre-activations per register block: four AVX-512 vectors, whose sums over all `Ci·4` taps stay in
    /// registers.
    const B: usize = 64;

    /// `z = b + Σ_taps w·x` over the plane at the input's row stride, into `z[..span]`, block by block (the last
    /// block overlapping the one before, the same bits), each element's terms added in the same order (bias, then
    /// channel by channel, tap by tap).
    #[inline(always)]
    pub(super) fn pre(x: &[f32], w: &[f32], b: f32, d: Dims, z: &mut [f32]) {
        let span = d.span();
        let z = &mut z[..span];
        let pin = d.plane_in();
        if span < B {
            z.fill(b);
            for ci in 0..d.ci {
                let plane = &x[ci * pin..(ci + 1) * pin];
                for tap in 0..4 {
                    let off = (tap / 2) * d.w + tap % 2;
                    let wv = w[ci * 4 + tap];
                    for (z, &v) in z.iter_mut().zip(&plane[off..off + span]) {
                        *z += wv * v;
                    }
                }
            }
            return;
        }
        for s in (0..span - B + 1).step_by(B) {
            z[s..s + B].copy_from_slice(&pre_block(x, w, b, d, s));
        }
        if !span.is_multiple_of(B) {
            z[span - B..].copy_from_slice(&pre_block(x, w, b, d, span - B));
        }
    }

    /// `z[s..s + B]` of [`pre`], in registers (inlined into each build, as a closure would not be).
    #[inline(always)]
    fn pre_block(x: &[f32], w: &[f32], b: f32, d: Dims, s: usize) -> [f32; B] {
        let pin = d.plane_in();
        let mut acc = [b; B];
        for ci in 0..d.ci {
            for tap in 0..4 {
                let off = ci * pin + (tap / 2) * d.w + tap % 2 + s;
                let wv = w[ci * 4 + tap];
                // In bounds for every block `pre` asks for (`s + B <= span`, and the last tap's `w + 1 + span`
                // ends the channel's plane); one check per tap, not per element.
                for (a, &v) in acc.iter_mut().zip(&x[off..off + B]) {
                    *a += wv * v;
                }
            }
        }
        acc
    }

    /// `f` over `z[..len]` in place, in blocks of 16 (a last partial block zero-padded), so that the erf
    /// vectorises over whole blocks rather than over the output's 31-wide rows (one vector and 15 scalar calls).
    #[inline(always)]
    fn map_blocks(z: &mut [f32], len: usize, f: impl Fn(f32) -> f32) {
        let z = &mut z[..len];
        let mut chunks = z.chunks_exact_mut(16);
        for c in &mut chunks {
            for v in c.iter_mut() {
                *v = f(*v);
            }
        }
        let rest = chunks.into_remainder();
        let mut pad = [0f32; 16];
        pad[..rest.len()].copy_from_slice(rest);
        for v in pad.iter_mut() {
            *v = f(*v);
        }
        let n = rest.len();
        rest.copy_from_slice(&pad[..n]);
    }

    /// One image: `y[co] = gelu(pre)` with the spare column dropped. `z` is scratch of `span` floats.
    #[inline(always)]
    pub(super) fn fwd_image(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        d: Dims,
        z: &mut [f32],
        y: &mut [f32],
    ) {
        let wo = d.w - 1;
        for co in 0..d.co {
            pre(x, &w[co * d.ci * 4..(co + 1) * d.ci * 4], b[co], d, z);
            map_blocks(z, d.span(), gelu);
            let out = &mut y[co * d.plane_out()..(co + 1) * d.plane_out()];
            for (r, row) in out.chunks_exact_mut(wo).enumerate() {
                row.copy_from_slice(&z[r * d.w..r * d.w + wo]);
            }
        }
    }

    /// One image's bias gradient, added to `db`: `Σ dy·gelu'(pre)` per output channel.
    #[inline(always)]
    pub(super) fn bias_grad_image(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        d: Dims,
        dy: &[f32],
        z: &mut [f32],
        db: &mut [f64],
    ) {
        let wo = d.w - 1;
        for co in 0..d.co {
            pre(x, &w[co * d.ci * 4..(co + 1) * d.ci * 4], b[co], d, z);
            map_blocks(z, d.span(), gelu_grad);
            let g = &dy[co * d.plane_out()..(co + 1) * d.plane_out()];
            let mut lanes = [0f32; 16];
            let mut total = 0f64;
            for (r, grow) in g.chunks_exact(wo).enumerate() {
                let zrow = &z[r * d.w..r * d.w + wo];
                // 16 f32 lanes per row (at most a few dozen terms each), then into f64.
                let (gc, zc) = (grow.chunks_exact(16), zrow.chunks_exact(16));
                let (gr, zr) = (gc.remainder(), zc.remainder());
                for (g16, z16) in gc.zip(zc) {
                    for j in 0..16 {
                        lanes[j] += g16[j] * z16[j];
                    }
                }
                for (j, (&g, &z)) in gr.iter().zip(zr).enumerate() {
                    lanes[j] += g * z;
                }
                total += lanes.iter().map(|&v| v as f64).sum::<f64>();
                lanes = [0f32; 16];
            }
            db[co] += total;
        }
    }
}

type FwdFn = fn(&[f32], &[f32], &[f32], Dims, &mut [f32], &mut [f32]);
type BwdFn = fn(&[f32], &[f32], &[f32], Dims, &[f32], &mut [f32], &mut [f64]);

macro_rules! build {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::Dims;

            #[target_feature(enable = $features)]
            pub(super) fn fwd_image(
                x: &[f32],
                w: &[f32],
                b: &[f32],
                d: Dims,
                z: &mut [f32],
                y: &mut [f32],
            ) {
                super::body::fwd_image(x, w, b, d, z, y)
            }

            #[target_feature(enable = $features)]
            pub(super) fn bias_grad_image(
                x: &[f32],
                w: &[f32],
                b: &[f32],
                d: Dims,
                dy: &[f32],
                z: &mut [f32],
                db: &mut [f64],
            ) {
                super::body::bias_grad_image(x, w, b, d, dy, z, db)
            }
        }
    };
}

build!(v4, "avx512f,avx512bw,avx512vl,avx2,fma");
build!(v3, "avx2,fma");

/// The builds of the kernels, fastest first: AVX-512 and AVX2 where this CPU has them, then the baseline.
// Without x86-64 the pushes above the baseline's are compiled out.
#[cfg_attr(not(target_arch = "x86_64"), allow(clippy::vec_init_then_push))]
fn builds() -> Vec<(FwdFn, BwdFn)> {
    let mut out: Vec<(FwdFn, BwdFn)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if crate::Isa::detect() >= crate::Isa::Avx512 {
            out.push((
                // SAFETY: the CPU has the features the `v4` functions are compiled for (checked above).
                |x, w, b, d, z, y| unsafe { v4::fwd_image(x, w, b, d, z, y) },
                |x, w, b, d, dy, z, db| unsafe { v4::bias_grad_image(x, w, b, d, dy, z, db) },
            ));
        }
        if crate::Isa::detect() >= crate::Isa::Avx2 {
            out.push((
                // SAFETY: the CPU has the features the `v3` functions are compiled for (checked above).
                |x, w, b, d, z, y| unsafe { v3::fwd_image(x, w, b, d, z, y) },
                |x, w, b, d, dy, z, db| unsafe { v3::bias_grad_image(x, w, b, d, dy, z, db) },
            ));
        }
    }
    out.push((body::fwd_image, body::bias_grad_image));
    out
}

/// The build this CPU runs.
fn current_kernels() -> (FwdFn, BwdFn) {
    static CURRENT: std::sync::OnceLock<(FwdFn, BwdFn)> = std::sync::OnceLock::new();
    crate::isa::record_detected(crate::KernelFamily::PatchConv);
    *CURRENT.get_or_init(|| builds()[0])
}

/// Checks `x [N, Ci, H ≥ 2, W ≥ 2]`, `w [Co, Ci, 2, 2]`, `b [Co]`; returns `(n, dims)`.
pub(crate) fn patch_dims(x: &Shape, w: &Shape, b: &Shape, op: &str) -> Result<(usize, usize)> {
    let (n, ci, h, wd) = x
        .dims4()
        .map_err(|e| crate::Error::shape(op, "input [N, Ci, H, W]", x, e))?;
    let (co, wci, kh, kw) = w
        .dims4()
        .map_err(|e| crate::Error::shape(op, "weight [Co, Ci, 2, 2]", w, e))?;
    let bad = |expected: String, found: String| -> candle_core::Error {
        crate::Error::Shape {
            op: op.to_string(),
            expected,
            found,
        }
        .into()
    };
    if (kh, kw) != (2, 2) || wci != ci {
        return Err(bad(
            format!("weight [Co, {ci}, 2, 2] for an input with {ci} channels"),
            format!("{:?}", w.dims()),
        ));
    }
    if ci == 0 || co == 0 {
        return Err(bad(
            "at least one input and one output channel".into(),
            format!("input {:?}, weight {:?}", x.dims(), w.dims()),
        ));
    }
    if h < 2 || wd < 2 {
        return Err(bad(
            "an input at least 2x2".into(),
            format!("{:?}", x.dims()),
        ));
    }
    if b.dims() != [co] {
        return Err(bad(format!("bias [{co}]"), format!("{:?}", b.dims())));
    }
    Ok((n, co))
}

impl PatchConvGelu {
    fn dims(&self, l: &Layout) -> Result<(usize, Dims)> {
        let (n, ci, h, w) = l.shape().dims4()?;
        Ok((
            n,
            Dims {
                ci,
                co: self.co,
                h,
                w,
            },
        ))
    }
}

impl CustomOp2 for PatchConvGelu {
    fn name(&self) -> &'static str {
        "cpu-ops-patch-conv-gelu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, d) = self.dims(xl)?;
        let x = slice_f32(xs, xl)?;
        let b = slice_f32(bs, bl)?;
        let (fwd, _) = current_kernels();
        let (pin, pout) = (d.ci * d.plane_in(), d.co * d.plane_out());
        let mut y = vec![0f32; n * pout];
        y.par_chunks_mut(pout).zip(x.par_chunks(pin)).for_each_init(
            || vec![0f32; d.span()],
            |z, (y, x)| fwd(x, &self.w, &b, d, z, y),
        );
        Ok((CpuStorage::F32(y), Shape::from((n, d.co, d.h - 1, d.w - 1))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if x.track_op() {
            candle_core::bail!(
                "patch_conv_gelu: the input's gradient is not computed (frozen layer)"
            );
        }
        if !b.track_op() {
            return Ok((None, None));
        }
        let (_, ci, h, w) = x.dims4()?;
        let d = Dims {
            ci,
            co: self.co,
            h,
            w,
        };
        let (_, bwd) = current_kernels();
        let (pin, pout) = (d.ci * d.plane_in(), d.co * d.plane_out());
        let bias = b.to_vec1::<f32>()?;
        let partial: Vec<Vec<f64>> = with_tensor_f32(x, |x| {
            with_tensor_f32(grad, |dy| {
                Ok(x.par_chunks(pin * IMAGES_PER_TASK)
                    .zip(dy.par_chunks(pout * IMAGES_PER_TASK))
                    .map(|(x, dy)| {
                        let mut z = vec![0f32; d.span()];
                        let mut db = vec![0f64; d.co];
                        for (x, dy) in x.chunks_exact(pin).zip(dy.chunks_exact(pout)) {
                            bwd(x, &self.w, &bias, d, dy, &mut z, &mut db);
                        }
                        db
                    })
                    .collect())
            })
        })?;
        let mut db = vec![0f64; d.co];
        for p in &partial {
            for (t, v) in db.iter_mut().zip(p) {
                *t += v;
            }
        }
        let db: Vec<f32> = db.iter().map(|&v| v as f32).collect();
        Ok((None, Some(Tensor::from_vec(db, self.co, b.device())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::xorshift;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| (xorshift(&mut s) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn gelu64(z: f64) -> f64 {
        // erf by its Taylor series is enough for |z| < 3 (the inputs here).
        let u = z / std::f64::consts::SQRT_2;
        let (mut term, mut sum, mut k) = (u, u, 0.0);
        while term.abs() > 1e-17 {
            k += 1.0;
            term *= -u * u / k;
            sum += term / (2.0 * k + 1.0);
        }
        let erf = sum * 2.0 / std::f64::consts::PI.sqrt();
        0.5 * z * (1.0 + erf)
    }

    /// The pre-activation in f64, straight from the definition.
    fn pre64(x: &[f32], w: &[f32], b: &[f32], d: Dims, co: usize, y: usize, xo: usize) -> f64 {
        let mut s = b[co] as f64;
        for ci in 0..d.ci {
            for dy in 0..2 {
                for dx in 0..2 {
                    s += w[((co * d.ci + ci) * 2 + dy) * 2 + dx] as f64
                        * x[(ci * d.h + y + dy) * d.w + xo + dx] as f64;
                }
            }
        }
        s
    }

    #[test]
    fn every_build_matches_the_definition() {
        // Spans of 991 (blocks of 64, the last overlapping), 64 (one block), 35 and 33 (under a block) and 1.
        for &(ci, co, h, w) in &[
            (3, 24, 32, 32),
            (2, 3, 2, 65),
            (3, 5, 7, 6),
            (2, 3, 2, 2),
            (1, 1, 3, 17),
        ] {
            let d = Dims { ci, co, h, w };
            let x = random(ci * h * w, 1 + h as u64);
            let wt = random(co * ci * 4, 7);
            let b = random(co, 9);
            let dy = random(co * d.plane_out(), 11);
            for (k, (fwd, bwd)) in builds().into_iter().enumerate() {
                let mut z = vec![0f32; d.span()];
                let mut y = vec![0f32; co * d.plane_out()];
                fwd(&x, &wt, &b, d, &mut z, &mut y);
                let mut db = vec![0f64; co];
                bwd(&x, &wt, &b, d, &dy, &mut z, &mut db);
                for c in 0..co {
                    let mut want_db = 0f64;
                    for r in 0..h - 1 {
                        for j in 0..w - 1 {
                            let z = pre64(&x, &wt, &b, d, c, r, j);
                            let got = y[(c * (h - 1) + r) * (w - 1) + j] as f64;
                            assert!(
                                (got - gelu64(z)).abs() < 2e-6,
                                "build {k} {ci}x{h}x{w}: y[{c},{r},{j}] {got} vs {}",
                                gelu64(z)
                            );
                            let e = 1e-4;
                            let grad = (gelu64(z + e) - gelu64(z - e)) / (2.0 * e);
                            want_db += dy[(c * (h - 1) + r) * (w - 1) + j] as f64 * grad;
                        }
                    }
                    let tol = 1e-5 * (1.0 + want_db.abs()) * ((h * w) as f64).sqrt();
                    assert!(
                        (db[c] - want_db).abs() < tol,
                        "build {k} {ci}x{h}x{w}: db[{c}] {} vs {want_db}",
                        db[c]
                    );
                }
            }
        }
    }
}
