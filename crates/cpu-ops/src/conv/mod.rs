//! 3x3 convolution, stride 1, padding 1, NCHW f32: im2col + GEMM kernels and the candle custom op.
//!
//! * forward: per group of images `out[Co×G·HW] = W[Co×9Ci] · im2col(x)[9Ci×G·HW] (+ bias)`;
//! * input gradient: the same forward kernel applied to the output gradient with the
//!   spatially flipped, channel-transposed weights (`[Ci, Co, 3, 3]`), so no col2im scatter;
//! * weight gradient: `dW[Co×9Ci] = Σ_n gy_n[Co×HW] · im2col(x_n)ᵀ`, per-thread partial sums;
//! * bias gradient: a plain per-channel sum.
//!
//! At small spatial sizes several images share one GEMM (their im2col blocks side by side, see [`FWD_COLS`],
//! [`DW_COLS`]): a 7x7 or 3x3 image alone gives a GEMM only 49 or 9 columns wide (or deep).
//!
//! Parallelism: rayon over groups of images (rayon's global pool), gemm single-threaded per group.
//!
//! Files: `im2col.rs` (patches and the group-matrix layouts), `forward.rs` (the forward GEMMs, direct or Winograd,
//! per group of images), `grad.rs` (input, weight and bias gradients); here the sizes, the grouping, the shape
//! checks and the candle ops.

mod forward;
mod grad;
mod im2col;

pub(crate) use forward::*;
pub(crate) use grad::*;
pub(crate) use im2col::*;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use std::ops::Range;

use crate::bf16_gemm::{ConvLhs, conv_gemm};
use crate::uninit::Uninit;
use crate::util::{Mat, slice_f32, split_ranges, with_scratch_a, with_scratch_b, with_tensor_f32};
use crate::{KernelConfig, winograd};

/// Static sizes of one 3x3 convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvDims {
    pub n: usize,
    pub ci: usize,
    pub co: usize,
    pub h: usize,
    pub w: usize,
}

impl ConvDims {
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    pub fn k(&self) -> usize {
        self.ci * 9
    }
    pub fn out_len(&self) -> usize {
        self.n * self.co * self.hw()
    }
    /// The dims of the input-gradient convolution (channels swapped).
    pub fn transposed(&self) -> Self {
        Self {
            ci: self.co,
            co: self.ci,
            ..*self
        }
    }
}

/// Most GEMM columns (images × H·W) of the batched forward / input-gradient GEMMs: at small spatial sizes (7x7:
/// 49 columns, 3x3: 9) one GEMM per image is narrow and gemm's packing and edge handling dominate, so several
/// images share one GEMM (5 at 7x7, 28 at 3x3; 15x15 and larger keep one GEMM per image, which measured as fast).
/// Measured at batch 256, 256 channels (CPU time, 2 threads): 3x3 forward ~100 -> ~150 GFLOP/s, 7x7 ~5-10%.
pub(crate) const FWD_COLS: usize = 256;

/// Most depth (images × H·W) of one weight-gradient GEMM `dWᵀ[9ci × co] += cols[9ci × G] · gyᵀ[G × co]`: each
/// GEMM reads and writes the whole `dWᵀ` block, so a deeper product amortises that traffic; but the group's
/// im2col block (`9ci × G`) should stay near L2 size (1 MiB), so the groups are small: 2 images at 7x7, 14 at
/// 3x3, 15x15 one. Measured at batch 256, 256 channels (CPU time, 2 threads, noisy): 7x7 ~165 -> ~200 GFLOP/s,
/// 3x3 ~115 -> ~135; depth 512 (10 images at 7x7) measured slower than one image.
pub(crate) const DW_COLS: usize = 128;

/// How many images of `hw` positions fit in `cols` GEMM columns (at least 1: images larger than `cols` get one
/// GEMM each, as do images more than half its size).
pub(crate) fn images_per_group(hw: usize, cols: usize) -> usize {
    (cols / hw.max(1)).max(1)
}

/// Cuts `0..n` into groups of consecutive images of at most `cols / hw` images each (at least 1): first one share per rayon
/// thread (so the threads get equal work), then each share into groups.
pub(crate) fn image_groups(n: usize, hw: usize, cols: usize) -> Vec<Range<usize>> {
    let per = images_per_group(hw, cols);
    split_ranges(n, rayon::current_num_threads())
        .into_iter()
        .flat_map(|r| {
            let parts = r.len().div_ceil(per);
            split_ranges(r.len(), parts)
                .into_iter()
                .map(move |s| r.start + s.start..r.start + s.end)
        })
        .collect()
}

/// Reads and validates the dims of `x [n,ci,h,w]`, `w [co,ci,3,3]`, `b [co]` (when given).
pub(crate) fn conv_dims(x: &Shape, w: &Shape, b: Option<&Shape>, op: &str) -> Result<ConvDims> {
    let (n, ci, h, wd) = x
        .dims4()
        .map_err(|e| crate::Error::shape(op, "input [N,Ci,H,W]", x, e))?;
    let (co, ci2, kh, kw) = w
        .dims4()
        .map_err(|e| crate::Error::shape(op, "weight [Co,Ci,3,3]", w, e))?;
    if ci2 != ci || kh != 3 || kw != 3 {
        return Err(crate::Error::Shape {
            op: op.to_string(),
            expected: format!("weight [Co, {ci}, 3, 3] for an input with {ci} channels"),
            found: format!("{w:?}"),
        }
        .into());
    }
    if let Some(b) = b
        && b.dims() != [co]
    {
        return Err(crate::Error::Shape {
            op: op.to_string(),
            expected: format!("bias [{co}]"),
            found: format!("{b:?}"),
        }
        .into());
    }
    Ok(ConvDims {
        n,
        ci,
        co,
        h,
        w: wd,
    })
}

/// Runs the three requested gradients of a conv given its (pre-activation) output gradient.
pub(crate) fn conv_backward(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    gy: &[f32],
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let (dx, dw) = conv_backward_xw(cfg, d, x, w, gy)?;
    let db = if b.track_op() {
        Some(Tensor::from_vec(
            bias_grad(gy, d.n, d.co, d.hw()),
            b.shape(),
            x.device(),
        )?)
    } else {
        None
    };
    Ok((dx, dw, db))
}

/// The input and weight gradients of a conv (each only when its tensor is tracked by autograd).
pub(crate) fn conv_backward_xw(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &Tensor,
    w: &Tensor,
    gy: &[f32],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dev = x.device();
    let dx = if x.track_op() {
        let v = with_tensor_f32(w, |wm| Ok(conv_input_grad(cfg, d, gy, wm)))?;
        Some(Tensor::from_vec(v, x.shape(), dev)?)
    } else {
        None
    };
    let dw = if w.track_op() {
        let v = with_tensor_f32(x, |xs| Ok(conv_weight_grad(cfg, d, xs, gy)))?;
        Some(Tensor::from_vec(v, w.shape(), dev)?)
    } else {
        None
    };
    Ok((dx, dw))
}

/// `conv3x3(x, w) + b` as a candle op with backward (input gradient skipped for untracked inputs).
pub(crate) struct Conv3x3 {
    pub(crate) cfg: KernelConfig,
}

impl CustomOp3 for Conv3x3 {
    fn name(&self) -> &'static str {
        "cpu-ops-conv3x3"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = conv_dims(lx.shape(), lw.shape(), Some(lb.shape()), "conv3x3")?;
        let (x, w, b) = (slice_f32(sx, lx)?, slice_f32(sw, lw)?, slice_f32(sb, lb)?);
        let out = conv_forward(&self.cfg, &d, &x, &w, Some(&b));
        Ok((CpuStorage::F32(out), Shape::from((d.n, d.co, d.h, d.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = conv_dims(x.shape(), w.shape(), Some(b.shape()), "conv3x3 backward")?;
        with_tensor_f32(grad, |gy| conv_backward(&self.cfg, &d, x, w, b, gy))
    }
}

/// `conv3x3(x, w)` without a bias, as a candle op with backward (input gradient skipped for untracked inputs).
pub(crate) struct Conv3x3NoBias {
    pub(crate) cfg: KernelConfig,
}

impl CustomOp2 for Conv3x3NoBias {
    fn name(&self) -> &'static str {
        "cpu-ops-conv3x3-nobias"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = conv_dims(lx.shape(), lw.shape(), None, "conv3x3_nobias")?;
        let (x, w) = (slice_f32(sx, lx)?, slice_f32(sw, lw)?);
        let out = conv_forward(&self.cfg, &d, &x, &w, None);
        Ok((CpuStorage::F32(out), Shape::from((d.n, d.co, d.h, d.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = conv_dims(x.shape(), w.shape(), None, "conv3x3_nobias backward")?;
        with_tensor_f32(grad, |gy| conv_backward_xw(&self.cfg, &d, x, w, gy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::xorshift;

    fn randv(state: &mut u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| (xorshift(state) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect()
    }

    /// Max |a - b| relative to max |b| (at least 1): within `1e-5` for the im2col paths (rounding alone), within
    /// `5e-5` where the forward may run as Winograd F(4x4, 3x3) (its transforms' error, see `winograd::f4`).
    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let tol = if what.contains("weight") { 1e-5 } else { 5e-5 };
        assert!(
            err <= tol * scale,
            "{what}: max error {err} (scale {scale})"
        );
    }

    /// The partials' sum, split across threads in pieces, has the bits of one thread adding them in order (p0 +
    /// p1 + p2, element by element): lengths below, at and past a piece, with a shorter last piece, one partial
    /// alone, none.
    #[test]
    fn sum_partials_adds_in_order() {
        let mut s = 0x51_7cc1_b727_220au64;
        for (parts, len) in [
            (3, 100),
            (2, 1 << 14),
            (3, (1 << 14) + 1),
            (4, 3 * (1 << 14) + 77),
            (1, 5000),
        ] {
            let p: Vec<Vec<f32>> = (0..parts).map(|_| randv(&mut s, len)).collect();
            let want: Vec<u32> = (0..len)
                .map(|i| p[1..].iter().fold(p[0][i], |t, q| t + q[i]).to_bits())
                .collect();
            let got: Vec<u32> = sum_partials(p, len).iter().map(|v| v.to_bits()).collect();
            assert!(got == want, "{parts} partials of {len}");
        }
        assert_eq!(sum_partials(Vec::new(), 3), vec![0f32; 3]);
    }

    /// The batched GEMMs (several images per GEMM, default widths and widths that leave odd-sized tail groups)
    /// against one GEMM per image, for the forward, the input gradient (the forward on the flipped weights) and
    /// the weight gradient, at the airbench shapes with small (and odd) batches.
    #[test]
    fn grouped_conv_matches_per_image() {
        let cfg = KernelConfig::default();
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for (n, ci, co, h) in [
            (4, 256, 256, 7),
            (5, 256, 256, 7),
            (7, 256, 256, 3),
            (3, 64, 256, 15),
            (5, 8, 4, 2),
            (3, 4, 6, 1),
        ] {
            let d = ConvDims { n, ci, co, h, w: h };
            let x = randv(&mut s, n * ci * h * h);
            let w = randv(&mut s, co * ci * 9);
            let b = randv(&mut s, co);
            let gy = randv(&mut s, d.out_len());
            let hw = d.hw();
            // The references: the direct path, one GEMM per image (the Winograd path, which the larger shapes
            // take, is checked against them too).
            let f32 = crate::Precision::F32;
            let direct = FwdWeights::direct(&d, &w, f32);
            let per_image = conv_forward_with(&d, &x, &direct, Some(&b), 1);
            let wf = flip_weights(&w, co, ci);
            let dx_ref = conv_forward_with(
                &d.transposed(),
                &gy,
                &FwdWeights::direct(&d.transposed(), &wf, f32),
                None,
                1,
            );
            let dw_ref = conv_weight_grad_grouped(f32, &d, &x, &gy, 1);
            // Default widths, 2 images per GEMM (tail groups of 1 for odd shares), everything in one GEMM.
            for cols in [FWD_COLS, 2 * hw, usize::MAX / 2] {
                let what = format!("n={n} {ci}->{co} @{h} cols={cols}");
                let y = conv_forward_grouped(&cfg, &d, &x, &w, Some(&b), cols);
                assert_close(&y, &per_image, &format!("forward {what}"));
                let y = conv_forward_grouped(&cfg, &d, &x, &w, None, cols);
                let nb = conv_forward_with(&d, &x, &direct, None, 1);
                assert_close(&y, &nb, &format!("forward no bias {what}"));
                let dx = conv_forward_grouped(
                    &cfg,
                    &d.transposed(),
                    &gy,
                    &flip_weights(&w, co, ci),
                    None,
                    cols,
                );
                assert_close(&dx, &dx_ref, &format!("input grad {what}"));
            }
            for cols in [DW_COLS, 2 * hw, 3 * hw, usize::MAX / 2] {
                let what = format!("n={n} {ci}->{co} @{h} cols={cols}");
                let dw = conv_weight_grad_grouped(f32, &d, &x, &gy, cols);
                assert_close(&dw, &dw_ref, &format!("weight grad {what}"));
            }
            // The public entry points use the batched paths.
            assert_close(
                &conv_forward(&cfg, &d, &x, &w, Some(&b)),
                &per_image,
                "conv_forward",
            );
            assert_close(
                &conv_input_grad(&cfg, &d, &gy, &w),
                &dx_ref,
                "conv_input_grad",
            );
            assert_close(
                &conv_weight_grad(&cfg, &d, &x, &gy),
                &dw_ref,
                "conv_weight_grad",
            );
        }
    }

    /// A direct f64 3x3 conv of one small case against the (grouped) kernel, so the per-image reference above is
    /// itself checked.
    #[test]
    fn grouped_conv_matches_direct() {
        let mut s = 42u64;
        let d = ConvDims {
            n: 3,
            ci: 5,
            co: 4,
            h: 3,
            w: 4,
        };
        let x = randv(&mut s, d.n * d.ci * d.hw());
        let w = randv(&mut s, d.co * d.k());
        let y = conv_forward_grouped(&KernelConfig::default(), &d, &x, &w, None, usize::MAX / 2);
        for n in 0..d.n {
            for o in 0..d.co {
                for i in 0..d.h {
                    for j in 0..d.w {
                        let mut acc = 0f64;
                        for c in 0..d.ci {
                            for kh in 0..3 {
                                for kw in 0..3 {
                                    let (ii, jj) = (i + kh, j + kw);
                                    if ii < 1 || jj < 1 || ii > d.h || jj > d.w {
                                        continue;
                                    }
                                    let xv = x[((n * d.ci + c) * d.h + ii - 1) * d.w + jj - 1];
                                    let wv = w[((o * d.ci + c) * 3 + kh) * 3 + kw];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        let got = y[((n * d.co + o) * d.h + i) * d.w + j] as f64;
                        assert!(
                            (got - acc).abs() < 1e-5,
                            "({n},{o},{i},{j}): {got} vs {acc}"
                        );
                    }
                }
            }
        }
    }
}
