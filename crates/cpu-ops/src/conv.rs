//! 3x3 convolution, stride 1, padding 1, NCHW f32: im2col + GEMM kernels and the candle custom op.
//!
//! * forward: per image `out[Co×HW] = W[Co×9Ci] · im2col(x)[9Ci×HW] (+ bias)`;
//! * input gradient: the same forward kernel applied to the output gradient with the
//!   spatially flipped, channel-transposed weights (`[Ci, Co, 3, 3]`), so no col2im scatter;
//! * weight gradient: `dW[Co×9Ci] = Σ_n gy_n[Co×HW] · im2col(x_n)ᵀ`, per-thread partial sums;
//! * bias gradient: a plain per-channel sum.
//!
//! Parallelism: rayon over images (rayon's global pool), gemm single-threaded per image.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::util::{Mat, sgemm, slice_f32, split_ranges, with_scratch_a, with_tensor_f32};

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

/// Writes the 3x3/pad-1 patches of one image `x[c×h×w]` as rows of `cols[(9c)×(hw)]`.
///
/// Row `(ci, kh, kw)` is the plane `ci` shifted by `(kh-1)·w + (kw-1)` elements: one copy of the
/// whole plane (rows are short, so per-row copies would be mostly call overhead), zeros where
/// the shift runs off the plane, then the wrapped-around column (`ow = 0` for `kw = 0`,
/// `ow = w-1` for `kw = 2`) zeroed.
pub(crate) fn im2col(x: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
    let hw = h * w;
    if hw == 0 {
        return;
    }
    for ci in 0..c {
        let src = &x[ci * hw..(ci + 1) * hw];
        for kh in 0..3 {
            for kw in 0..3 {
                let row = &mut cols[(ci * 9 + kh * 3 + kw) * hw..][..hw];
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

/// Convolves one image into `out[co×hw]` (bias added when given). `wmat` is `[co × 9ci]`.
pub(crate) fn conv_image(
    d: &ConvDims,
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (hw, k) = (d.hw(), d.k());
    with_scratch_a(k * hw, |cols| {
        im2col(x, d.ci, d.h, d.w, cols);
        if let Some(b) = bias {
            for (row, &bv) in out.chunks_exact_mut(hw).zip(b) {
                row.fill(bv);
            }
        }
        let a = Mat {
            data: wmat,
            rs: k,
            cs: 1,
        };
        let bm = Mat {
            data: cols,
            rs: hw,
            cs: 1,
        };
        sgemm(d.co, hw, k, out, hw, bias.is_some(), a, bm);
    });
}

/// Batched forward: `[n, ci, h, w]` -> `[n, co, h, w]`.
pub(crate) fn conv_forward(
    d: &ConvDims,
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = vec![0f32; d.out_len()];
    let (in_img, out_img) = (d.ci * d.hw(), d.co * d.hw());
    if out_img == 0 {
        return out;
    }
    out.par_chunks_mut(out_img)
        .zip(x.par_chunks(in_img.max(1)))
        .for_each(|(o, xi)| conv_image(d, xi, wmat, bias, o));
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
/// Each thread accumulates the transpose `dWᵀ[9ci × co] += cols[9ci × hw] · gyᵀ[hw × co]`:
/// with that destination layout gemm packs the (small) `gy` block rather than transposing the
/// (4.5x larger) im2col matrix for every image. The partial sums are transposed once at the end.
pub(crate) fn conv_weight_grad(d: &ConvDims, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let (hw, k) = (d.hw(), d.k());
    let wlen = d.co * k;
    let ranges = split_ranges(d.n, rayon::current_num_threads());
    let partials: Vec<Vec<f32>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; wlen];
            with_scratch_a(k * hw, |cols| {
                for (pos, img) in r.enumerate() {
                    im2col(&x[img * d.ci * hw..][..d.ci * hw], d.ci, d.h, d.w, cols);
                    let g = &gy[img * d.co * hw..][..d.co * hw];
                    let a = Mat {
                        data: cols,
                        rs: hw,
                        cs: 1,
                    };
                    let gt = Mat {
                        data: g,
                        rs: 1,
                        cs: hw,
                    };
                    sgemm(k, d.co, hw, &mut acc, d.co, pos > 0, a, gt);
                }
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
    let db = if b.track_op() {
        Some(Tensor::from_vec(
            bias_grad(gy, d.n, d.co, d.hw()),
            b.shape(),
            dev,
        )?)
    } else {
        None
    };
    Ok((dx, dw, db))
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
