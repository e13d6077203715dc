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

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::bf16_gemm::{ConvLhs, conv_gemm};
use crate::util::{Mat, slice_f32, split_ranges, with_scratch_a, with_scratch_b, with_tensor_f32};
use crate::winograd;

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

static FWD_COLS_NOW: AtomicUsize = AtomicUsize::new(FWD_COLS);
static DW_COLS_NOW: AtomicUsize = AtomicUsize::new(DW_COLS);

/// Sets the batched GEMM widths ([`FWD_COLS`], [`DW_COLS`]; `1` = one GEMM per image) for the whole process:
/// for A/B timings on a noisy machine. Results agree up to float rounding for any width.
pub(crate) fn set_group_cols(fwd: usize, dw: usize) {
    FWD_COLS_NOW.store(fwd.max(1), Ordering::Relaxed);
    DW_COLS_NOW.store(dw.max(1), Ordering::Relaxed);
}

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

/// Writes the 3x3/pad-1 patches of one image `x[c×h×w]` as rows of `cols[(9c)×(hw)]`.
pub(crate) fn im2col(x: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
    im2col_strided(x, c, h, w, h * w, cols, h * w);
}

/// Writes the 3x3/pad-1 patches of one image, whose channel `ci` plane is `x[ci·x_stride..][..h·w]`, as the
/// rows of a `(9c) × (h·w)` block of `cols` with row stride `ld`: row `(ci, kh, kw)` at `cols[row·ld..][..hw]`
/// (several images side by side in one matrix when `ld` > `hw`).
///
/// Row `(ci, kh, kw)` is the plane `ci` shifted by `(kh-1)·w + (kw-1)` elements: one copy of the
/// whole plane (rows are short, so per-row copies would be mostly call overhead), zeros where
/// the shift runs off the plane, then the wrapped-around column (`ow = 0` for `kw = 0`,
/// `ow = w-1` for `kw = 2`) zeroed.
pub(crate) fn im2col_strided(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    x_stride: usize,
    cols: &mut [f32],
    ld: usize,
) {
    let hw = h * w;
    if hw == 0 {
        return;
    }
    for ci in 0..c {
        let src = &x[ci * x_stride..][..hw];
        for kh in 0..3 {
            for kw in 0..3 {
                let row = &mut cols[(ci * 9 + kh * 3 + kw) * ld..][..hw];
                let off = (kh as isize - 1) * w as isize + (kw as isize - 1);
                let lo = (-off).clamp(0, hw as isize) as usize;
                let hi = (hw as isize - off).clamp(lo as isize, hw as isize) as usize;
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                if hi > lo {
                    let s0 = (lo as isize + off) as usize;
                    row[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                }
                match kw {
                    0 => row.iter_mut().step_by(w).for_each(|v| *v = 0.0),
                    2 => row[w - 1..].iter_mut().step_by(w).for_each(|v| *v = 0.0),
                    _ => {}
                }
            }
        }
    }
}

/// Where a group of images lives: image `j`'s channel `c` plane is `data[j·img_stride + c·plane_stride..][..hw]`.
/// NCHW images have `img_stride = c·hw`, `plane_stride = hw`; a group matrix `[c × (g·hw)]` (the output of
/// [`conv_group`]) has `img_stride = hw`, `plane_stride = g·hw`.
#[derive(Clone, Copy)]
pub(crate) struct Images<'a> {
    pub data: &'a [f32],
    pub img_stride: usize,
    pub plane_stride: usize,
}

impl<'a> Images<'a> {
    /// `g` consecutive NCHW images of `c` channels.
    pub fn nchw(data: &'a [f32], c: usize, hw: usize) -> Self {
        Self {
            data,
            img_stride: c * hw,
            plane_stride: hw,
        }
    }
}

/// im2col of `g` images side by side: `cols[(9c) × (g·hw)]`, image `j` in columns `j·hw..(j+1)·hw`.
pub(crate) fn im2col_group(
    x: Images<'_>,
    g: usize,
    c: usize,
    h: usize,
    w: usize,
    cols: &mut [f32],
) {
    let hw = h * w;
    for j in 0..g {
        im2col_strided(
            &x.data[j * x.img_stride..],
            c,
            h,
            w,
            x.plane_stride,
            &mut cols[j * hw..],
            g * hw,
        );
    }
}

/// Convolves `g` images into the group matrix `dst[co × (g·hw)]` (image `j`'s channel `o` plane at
/// `dst[o·g·hw + j·hw..][..hw]`), bias added when given: one GEMM `W[co × 9ci] · cols[9ci × g·hw]`.
pub(crate) fn conv_group(
    d: &ConvDims,
    x: Images<'_>,
    g: usize,
    w: &ConvLhs<'_>,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    let (hw, k) = (d.hw(), d.k());
    let cn = g * hw;
    if cn == 0 {
        return;
    }
    with_scratch_a(k * cn, |cols| {
        im2col_group(x, g, d.ci, d.h, d.w, cols);
        if let Some(b) = bias {
            for (row, &bv) in dst.chunks_exact_mut(cn).zip(b) {
                row.fill(bv);
            }
        }
        let bm = Mat {
            data: cols,
            rs: cn,
            cs: 1,
        };
        w.gemm(cn, dst, cn, bias.is_some(), bm);
    });
}

/// A forward convolution's weights, prepared once per op call: the `[co × 9ci]` matrix of the direct (im2col)
/// GEMM, or the Winograd transform (see [`crate::winograd`]) where that applies.
pub(crate) enum FwdWeights<'a> {
    Direct(ConvLhs<'a>),
    Winograd(winograd::Weights),
}

impl<'a> FwdWeights<'a> {
    /// `wmat [co, ci, 3, 3]` for a convolution of sizes `d`.
    pub(crate) fn new(d: &ConvDims, wmat: &'a [f32]) -> Self {
        if winograd::applies(d) {
            FwdWeights::Winograd(winograd::Weights::new(wmat, d.co, d.ci))
        } else {
            Self::direct(d, wmat)
        }
    }

    /// The direct (im2col) path whatever the shape.
    pub(crate) fn direct(d: &ConvDims, wmat: &'a [f32]) -> Self {
        FwdWeights::Direct(ConvLhs::new(wmat, d.co, d.k()))
    }

    /// The image groups (consecutive images) of a batch of `d.n`: at most `cols` GEMM columns each for the direct
    /// path, [`winograd::COLS`] tiles for Winograd.
    pub(crate) fn groups(&self, d: &ConvDims, cols: usize) -> Vec<Range<usize>> {
        match self {
            FwdWeights::Direct(_) => image_groups(d.n, d.hw(), cols),
            FwdWeights::Winograd(_) => {
                image_groups(d.n, winograd::tiles_per_image(d), winograd::COLS)
            }
        }
    }

    /// [`conv_group`] with these weights.
    pub(crate) fn conv_group(
        &self,
        d: &ConvDims,
        x: Images<'_>,
        g: usize,
        bias: Option<&[f32]>,
        dst: &mut [f32],
    ) {
        match self {
            FwdWeights::Direct(w) => conv_group(d, x, g, w, bias, dst),
            FwdWeights::Winograd(w) => winograd::conv_group(d, x, g, w, bias, dst),
        }
    }
}

/// Convolves one image into `out[co×hw]` (bias added when given). `w` holds `[co × 9ci]`.
pub(crate) fn conv_image(
    d: &ConvDims,
    x: &[f32],
    w: &ConvLhs<'_>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    conv_group(d, Images::nchw(x, d.ci, d.hw()), 1, w, bias, out);
}

/// Copies a group matrix `src[c × (g·hw)]` into `g` NCHW images `dst[g × c × hw]`.
pub(crate) fn ungroup(src: &[f32], g: usize, c: usize, hw: usize, dst: &mut [f32]) {
    let cn = g * hw;
    for (j, img) in dst.chunks_exact_mut(c * hw).take(g).enumerate() {
        for (o, plane) in img.chunks_exact_mut(hw).enumerate() {
            plane.copy_from_slice(&src[o * cn + j * hw..][..hw]);
        }
    }
}

/// Copies `g` NCHW images `src[g × c × hw]` into a group matrix `dst[c × (g·hw)]`.
pub(crate) fn group(src: &[f32], g: usize, c: usize, hw: usize, dst: &mut [f32]) {
    let cn = g * hw;
    for (j, img) in src.chunks_exact(c * hw).take(g).enumerate() {
        for (o, plane) in img.chunks_exact(hw).enumerate() {
            dst[o * cn + j * hw..][..hw].copy_from_slice(plane);
        }
    }
}

/// Splits `data` into one mutable part per range of images (`per_img` floats per image).
pub(crate) fn split_by_images<'a>(
    mut rest: &'a mut [f32],
    ranges: &[Range<usize>],
    per_img: usize,
) -> Vec<&'a mut [f32]> {
    let mut parts = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * per_img);
        parts.push(head);
        rest = tail;
    }
    parts
}

/// Batched forward: `[n, ci, h, w]` -> `[n, co, h, w]`.
pub(crate) fn conv_forward(
    d: &ConvDims,
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    conv_forward_grouped(d, x, wmat, bias, FWD_COLS_NOW.load(Ordering::Relaxed))
}

/// The forward GEMM width in use (see [`set_group_cols`]).
pub(crate) fn fwd_cols() -> usize {
    FWD_COLS_NOW.load(Ordering::Relaxed)
}

/// [`conv_forward`] with GEMMs of at most `cols` columns (whole images, at least one; `cols = 1`: one GEMM per image).
pub(crate) fn conv_forward_grouped(
    d: &ConvDims,
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
    cols: usize,
) -> Vec<f32> {
    conv_forward_with(d, x, &FwdWeights::new(d, wmat), bias, cols)
}

/// [`conv_forward_grouped`] with weights prepared by the caller (e.g. forced onto the direct path).
pub(crate) fn conv_forward_with(
    d: &ConvDims,
    x: &[f32],
    w: &FwdWeights<'_>,
    bias: Option<&[f32]>,
    cols: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; d.out_len()];
    let (hw, in_img, out_img) = (d.hw(), d.ci * d.hw(), d.co * d.hw());
    if out_img == 0 {
        return out;
    }
    let groups = w.groups(d, cols);
    let parts = split_by_images(&mut out, &groups, out_img);
    groups.into_par_iter().zip(parts).for_each(|(r, o)| {
        let g = r.len();
        let xs = Images::nchw(&x[r.start * in_img..], d.ci, hw);
        if g == 1 {
            w.conv_group(d, xs, 1, bias, o);
        } else {
            with_scratch_b(out_img * g, |tmp| {
                w.conv_group(d, xs, g, bias, tmp);
                ungroup(tmp, g, d.co, hw, o);
            });
        }
    });
    out
}

/// `[co, ci, 3, 3]` -> `[ci, co, 3, 3]` with the 3x3 window rotated by 180°.
pub(crate) fn flip_weights(wmat: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let mut out = vec![0f32; co * ci * 9];
    for o in 0..co {
        for i in 0..ci {
            let src = &wmat[(o * ci + i) * 9..][..9];
            let dst = &mut out[(i * co + o) * 9..][..9];
            for t in 0..9 {
                dst[t] = src[8 - t];
            }
        }
    }
    out
}

/// Gradient of the input: a 3x3 convolution of `gy` with the flipped weights.
pub(crate) fn conv_input_grad(d: &ConvDims, gy: &[f32], wmat: &[f32]) -> Vec<f32> {
    let wf = flip_weights(wmat, d.co, d.ci);
    conv_forward(&d.transposed(), gy, &wf, None)
}

/// Gradient of the weights `[co × 9ci]`.
///
/// Each thread accumulates the transpose `dWᵀ[9ci × co] += cols[9ci × G] · gyᵀ[G × co]` over groups of its
/// images (`G` = images × H·W ≈ [`DW_COLS`], the images' im2col blocks side by side and their output gradients
/// gathered into one `[co × G]` matrix): with that destination layout gemm packs the (small) `gy` block rather
/// than transposing the (4.5x larger) im2col matrix. The partial sums are transposed once at the end.
pub(crate) fn conv_weight_grad(d: &ConvDims, x: &[f32], gy: &[f32]) -> Vec<f32> {
    conv_weight_grad_grouped(d, x, gy, DW_COLS_NOW.load(Ordering::Relaxed))
}

/// [`conv_weight_grad`] with GEMMs of depth at most `cols` (whole images, at least one; `cols = 1`: one GEMM per image).
pub(crate) fn conv_weight_grad_grouped(
    d: &ConvDims,
    x: &[f32],
    gy: &[f32],
    cols: usize,
) -> Vec<f32> {
    let (hw, k) = (d.hw(), d.k());
    let (in_img, out_img) = (d.ci * hw, d.co * hw);
    let wlen = d.co * k;
    let per = images_per_group(hw, cols);
    let ranges = split_ranges(d.n, rayon::current_num_threads());
    let partials: Vec<Vec<f32>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; wlen];
            let groups = split_ranges(r.len(), r.len().div_ceil(per));
            let gmax = groups.iter().map(|s| s.len()).max().unwrap_or(0);
            with_scratch_a(k * gmax * hw, |colbuf| {
                with_scratch_b(if gmax > 1 { out_img * gmax } else { 0 }, |gtbuf| {
                    for (pos, s) in groups.iter().enumerate() {
                        let (first, g) = (r.start + s.start, s.len());
                        let cn = g * hw;
                        let cols = &mut colbuf[..k * cn];
                        im2col_group(
                            Images::nchw(&x[first * in_img..], d.ci, hw),
                            g,
                            d.ci,
                            d.h,
                            d.w,
                            cols,
                        );
                        let gys = &gy[first * out_img..][..g * out_img];
                        let gm: &[f32] = if g == 1 {
                            gys
                        } else {
                            group(gys, g, d.co, hw, gtbuf);
                            &gtbuf[..g * out_img]
                        };
                        let a = Mat {
                            data: cols,
                            rs: cn,
                            cs: 1,
                        };
                        let gt = Mat {
                            data: gm,
                            rs: 1,
                            cs: cn,
                        };
                        conv_gemm(k, d.co, cn, &mut acc, d.co, pos > 0, a, gt);
                    }
                })
            });
            acc
        })
        .collect();
    untranspose_weight_grad(&sum_partials(partials, wlen), d.co, k)
}

/// Turns an accumulated `dWᵀ [k × co]` into `dW [co × k]` (the weight layout `[Co, Ci, 3, 3]`).
pub(crate) fn untranspose_weight_grad(wt: &[f32], co: usize, k: usize) -> Vec<f32> {
    let mut dw = vec![0f32; co * k];
    for (i, row) in wt.chunks_exact(co.max(1)).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            dw[o * k + i] = v;
        }
    }
    dw
}

/// Per-channel sum of `gy[n, c, hw]`.
pub(crate) fn bias_grad(gy: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    let ranges = split_ranges(n, rayon::current_num_threads());
    let partials: Vec<Vec<f32>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; c];
            for img in r {
                for (ch, a) in acc.iter_mut().enumerate() {
                    let row = &gy[(img * c + ch) * hw..][..hw];
                    *a += sum8(row);
                }
            }
            acc
        })
        .collect();
    sum_partials(partials, c)
}

/// A vectorisable sum with 8 independent accumulators.
pub(crate) fn sum8(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for (l, &x) in lanes.iter_mut().zip(ch) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

pub(crate) fn sum_partials(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut it = partials.into_iter();
    let mut total = it.next().unwrap_or_else(|| vec![0f32; len]);
    for p in it {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
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
    d: &ConvDims,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    gy: &[f32],
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let (dx, dw) = conv_backward_xw(d, x, w, gy)?;
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
    d: &ConvDims,
    x: &Tensor,
    w: &Tensor,
    gy: &[f32],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dev = x.device();
    let dx = if x.track_op() {
        let v = with_tensor_f32(w, |wm| Ok(conv_input_grad(d, gy, wm)))?;
        Some(Tensor::from_vec(v, x.shape(), dev)?)
    } else {
        None
    };
    let dw = if w.track_op() {
        let v = with_tensor_f32(x, |xs| Ok(conv_weight_grad(d, xs, gy)))?;
        Some(Tensor::from_vec(v, w.shape(), dev)?)
    } else {
        None
    };
    Ok((dx, dw))
}

/// `conv3x3(x, w) + b` as a candle op with backward (input gradient skipped for untracked inputs).
pub(crate) struct Conv3x3;

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
        let out = conv_forward(&d, &x, &w, Some(&b));
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
        with_tensor_f32(grad, |gy| conv_backward(&d, x, w, b, gy))
    }
}

/// `conv3x3(x, w)` without a bias, as a candle op with backward (input gradient skipped for untracked inputs).
pub(crate) struct Conv3x3NoBias;

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
        let out = conv_forward(&d, &x, &w, None);
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
        with_tensor_f32(grad, |gy| conv_backward_xw(&d, x, w, gy))
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

    /// Max |a - b| relative to max |b| (at least 1).
    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            err <= 1e-5 * scale,
            "{what}: max error {err} (scale {scale})"
        );
    }

    /// The batched GEMMs (several images per GEMM, default widths and widths that leave odd-sized tail groups)
    /// against one GEMM per image, for the forward, the input gradient (the forward on the flipped weights) and
    /// the weight gradient, at the airbench shapes with small (and odd) batches.
    #[test]
    fn grouped_conv_matches_per_image() {
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
            let direct = FwdWeights::direct(&d, &w);
            let per_image = conv_forward_with(&d, &x, &direct, Some(&b), 1);
            let wf = flip_weights(&w, co, ci);
            let dx_ref = conv_forward_with(
                &d.transposed(),
                &gy,
                &FwdWeights::direct(&d.transposed(), &wf),
                None,
                1,
            );
            let dw_ref = conv_weight_grad_grouped(&d, &x, &gy, 1);
            // Default widths, 2 images per GEMM (tail groups of 1 for odd shares), everything in one GEMM.
            for cols in [FWD_COLS, 2 * hw, usize::MAX / 2] {
                let what = format!("n={n} {ci}->{co} @{h} cols={cols}");
                let y = conv_forward_grouped(&d, &x, &w, Some(&b), cols);
                assert_close(&y, &per_image, &format!("forward {what}"));
                let y = conv_forward_grouped(&d, &x, &w, None, cols);
                let nb = conv_forward_with(&d, &x, &direct, None, 1);
                assert_close(&y, &nb, &format!("forward no bias {what}"));
                let dx = conv_forward_grouped(
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
                let dw = conv_weight_grad_grouped(&d, &x, &gy, cols);
                assert_close(&dw, &dw_ref, &format!("weight grad {what}"));
            }
            // The public entry points use the batched paths.
            assert_close(
                &conv_forward(&d, &x, &w, Some(&b)),
                &per_image,
                "conv_forward",
            );
            assert_close(&conv_input_grad(&d, &gy, &w), &dx_ref, "conv_input_grad");
            assert_close(&conv_weight_grad(&d, &x, &gy), &dw_ref, "conv_weight_grad");
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
        let y = conv_forward_grouped(&d, &x, &w, None, usize::MAX / 2);
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
