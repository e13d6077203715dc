//! `max_pool2x2(relu(conv3x3(x, w) + b))` in one op, and `max_pool2x2(conv3x3_nobias(x, w))` (no bias,
//! no ReLU: then every window's argmax passes a gradient): the full-resolution conv output only ever
//! lives in a per-thread scratch buffer, and where Winograd F(4x4, 3x3) runs the convolution not even there (its
//! output transform pools each tile's windows as it computes them). The backward is one pass over the images: for the
//! channel counts of the models' layers (3, 16, 24, 32, 64, 128, 256) a sparse kernel that visits only
//! the conv outputs the pool and the ReLU let a gradient through (`sparse.rs`); for other
//! channel counts a dense pass that scatters each image's pooled gradient into a scratch plane
//! and runs the bias, weight and input gradients on it as GEMMs while it is hot (`dense.rs`). Without a ReLU,
//! where the input gradient's convolution takes Winograd F(4x4, 3x3), it runs as that dense convolution of the
//! unpooled gradient (`unpooled.rs`). Where the sparse kernel need not compute the input gradient (that case, or
//! an untracked input), the weight and bias gradients are the same sums taken in L1-sized tiles
//! (`sparse_dw.rs`) for 16, 24 and multiples of 32 input channels.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::KernelConfig;
use crate::conv::{ConvDims, FwdWeights, Images, conv_dims, flip_weights, split_by_images};
use crate::pool::pool_plane_kernel;
use crate::util::{slice_f32, with_scratch_b, with_tensor_f32};

mod dense;
mod layout;
mod sparse;
mod sparse_dw;
mod unpooled;

use dense::dense_backward;
use sparse::{simd, sparse_backward};

/// Fused conv3x3 + bias + ReLU + 2x2 max-pool op.
pub(crate) struct ConvReluPool {
    argmax: Mutex<Vec<u8>>,
    cfg: KernelConfig,
}

impl ConvReluPool {
    pub(crate) fn new(cfg: KernelConfig) -> Self {
        Self {
            argmax: Mutex::default(),
            cfg,
        }
    }
}

fn lock_err() -> candle_core::Error {
    candle_core::Error::Msg("conv3x3_relu_pool: poisoned lock".into())
}

/// The conv dims of the fused op (any `H, W`; the pool drops an odd last row/column, as PyTorch's).
fn fused_dims(x: &Shape, w: &Shape, b: &Shape, op: &str) -> Result<crate::conv::ConvDims> {
    conv_dims(x, w, Some(b), op)
}

/// The fused forward: per group of images (see [`crate::conv::FWD_COLS`]), the conv (plus bias when given) into
/// a scratch group matrix, then the pool of each plane (of its ReLU with `relu`); with F(4x4) weights, the conv
/// pooled in its output transform (the same bits). Returns the pooled output and the argmax.
fn fused_forward(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu: bool,
) -> (Vec<f32>, Vec<u8>) {
    fused_forward_grouped(cfg, d, x, w, b, relu, cfg.group_cols().fwd)
}

/// [`fused_forward`] with conv GEMMs of at most `cols` columns (whole images, at least one).
fn fused_forward_grouped(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu: bool,
    cols: usize,
) -> (Vec<f32>, Vec<u8>) {
    let (hw, phw) = (d.hw(), (d.h / 2) * (d.w / 2));
    let p_img = d.co * phw;
    let mut out = crate::util::par_zeroed::<f32>(d.n * p_img);
    let mut idx: Vec<u8> = crate::util::par_zeroed(d.n * p_img);
    let pool_plane = pool_plane_kernel();
    if phw > 0 {
        let wl = FwdWeights::new(cfg, d, w);
        let groups = wl.groups(d, cols);
        let out_parts = split_by_images(&mut out, &groups, p_img);
        let mut idx_parts = Vec::with_capacity(groups.len());
        let mut rest = idx.as_mut_slice();
        for r in &groups {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * p_img);
            idx_parts.push(head);
            rest = tail;
        }
        groups
            .into_par_iter()
            .zip(out_parts)
            .zip(idx_parts)
            .for_each(|((r, o), i)| {
                let g = r.len();
                let cn = g * hw;
                let xs = Images::nchw(&x[r.start * d.ci * hw..], d.ci, hw);
                if wl.conv_group_pool(d, xs, g, b, relu, o, i) {
                    return;
                }
                with_scratch_b(d.co * cn, |y| {
                    wl.conv_group(d, xs, g, b, y);
                    for (j, (oi, ii)) in o
                        .chunks_exact_mut(p_img)
                        .zip(i.chunks_exact_mut(p_img))
                        .enumerate()
                    {
                        for (c, (op, ip)) in oi
                            .chunks_exact_mut(phw)
                            .zip(ii.chunks_exact_mut(phw))
                            .enumerate()
                        {
                            pool_plane(&y[c * cn + j * hw..][..hw], d.h, d.w, relu, op, ip);
                        }
                    }
                })
            });
    }
    (out, idx)
}

/// The gradients a fused backward returns: `(dx, dW [co, ci, 3, 3], db)`, `dx` only when requested.
type FusedGrads = (Option<Vec<f32>>, Vec<f32>, Vec<f32>);

/// The fused backward (sparse kernel when there is one for `ci`, else the dense one) on CPU tensors.
#[allow(clippy::too_many_arguments)]
fn fused_backward(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &Tensor,
    w: &Tensor,
    res: &Tensor,
    grad: &Tensor,
    idx: &[u8],
    relu: bool,
    want_dw: bool,
) -> Result<FusedGrads> {
    let want_dx = x.track_op();
    with_tensor_f32(x, |xs| {
        with_tensor_f32(w, |ws| {
            with_tensor_f32(res, |pooled| {
                with_tensor_f32(grad, |gp| {
                    if let Some(kernel) = simd::pick(d.ci, cfg.sparse_backward()) {
                        let io = BwdIo {
                            xs,
                            w: ws,
                            pooled,
                            relu,
                            gp,
                            idx,
                        };
                        let dx_unpooled = want_dx && unpooled::applies(cfg, d, relu);
                        let tiled = (want_dw && cfg.tiled_weight_grad())
                            .then(|| sparse_dw::simd::pick(d, crate::Isa::detect()))
                            .flatten();
                        if let Some(bk) = tiled.filter(|_| !want_dx || dx_unpooled) {
                            let dx = dx_unpooled.then(|| unpooled::input_grad(cfg, d, &io));
                            let (dw, db) = sparse_dw::weight_grad(d, &io, bk);
                            return Ok((dx, dw, db));
                        }
                        if dx_unpooled {
                            let dx = unpooled::input_grad(cfg, d, &io);
                            let (_, dw, db) = sparse_backward(d, &io, kernel, false, want_dw);
                            return Ok((Some(dx), dw, db));
                        }
                        return Ok(sparse_backward(d, &io, kernel, want_dx, want_dw));
                    }
                    let wf = if want_dx {
                        flip_weights(ws, d.co, d.ci)
                    } else {
                        Vec::new()
                    };
                    let io = BwdIo {
                        xs,
                        w: &wf,
                        pooled,
                        relu,
                        gp,
                        idx,
                    };
                    let (dx, dwt, db) = dense_backward(cfg.precision(), d, &io, want_dx, want_dw);
                    let dw = if want_dw {
                        crate::conv::untranspose_weight_grad(&dwt, d.co, d.k())
                    } else {
                        Vec::new()
                    };
                    Ok((dx, dw, db))
                })
            })
        })
    })
}

/// Wraps a gradient vector as a tensor shaped like `like` when wanted.
fn grad_tensor(v: Option<Vec<f32>>, like: &Tensor) -> Result<Option<Tensor>> {
    v.map(|v| Tensor::from_vec(v, like.shape(), like.device()))
        .transpose()
}

impl CustomOp3 for ConvReluPool {
    fn name(&self) -> &'static str {
        "cpu-ops-conv3x3-relu-pool"
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
        let d = fused_dims(lx.shape(), lw.shape(), lb.shape(), "conv3x3_relu_pool")?;
        let (x, w, b) = (slice_f32(sx, lx)?, slice_f32(sw, lw)?, slice_f32(sb, lb)?);
        let (out, idx) = fused_forward(&self.cfg, &d, &x, &w, Some(&b), true);
        *self.argmax.lock().map_err(|_| lock_err())? = idx;
        Ok((
            CpuStorage::F32(out),
            Shape::from((d.n, d.co, d.h / 2, d.w / 2)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = fused_dims(
            x.shape(),
            w.shape(),
            b.shape(),
            "conv3x3_relu_pool backward",
        )?;
        let idx = self.argmax.lock().map_err(|_| lock_err())?;
        if idx.len() != d.n * d.co * (d.h / 2) * (d.w / 2) {
            candle_core::bail!("conv3x3_relu_pool backward: the forward argmax is missing");
        }
        let want_dw = w.track_op();
        let (dx, dw, db) = fused_backward(&self.cfg, &d, x, w, res, grad, &idx, true, want_dw)?;
        Ok((
            grad_tensor(dx, x)?,
            grad_tensor(want_dw.then_some(dw), w)?,
            grad_tensor(b.track_op().then_some(db), b)?,
        ))
    }
}

/// Fused conv3x3 (no bias) + 2x2 max-pool op (no ReLU): `max_pool2x2(conv3x3_nobias(x, w))`.
pub(crate) struct ConvPoolNoBias {
    argmax: Mutex<Vec<u8>>,
    cfg: KernelConfig,
}

impl ConvPoolNoBias {
    pub(crate) fn new(cfg: KernelConfig) -> Self {
        Self {
            argmax: Mutex::default(),
            cfg,
        }
    }
}

impl CustomOp2 for ConvPoolNoBias {
    fn name(&self) -> &'static str {
        "cpu-ops-conv3x3-nobias-pool"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = conv_dims(lx.shape(), lw.shape(), None, "conv3x3_nobias_pool")?;
        let (x, w) = (slice_f32(sx, lx)?, slice_f32(sw, lw)?);
        let (out, idx) = fused_forward(&self.cfg, &d, &x, &w, None, false);
        *self.argmax.lock().map_err(|_| lock_err())? = idx;
        Ok((
            CpuStorage::F32(out),
            Shape::from((d.n, d.co, d.h / 2, d.w / 2)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = conv_dims(x.shape(), w.shape(), None, "conv3x3_nobias_pool backward")?;
        let idx = self.argmax.lock().map_err(|_| lock_err())?;
        if idx.len() != d.n * d.co * (d.h / 2) * (d.w / 2) {
            candle_core::bail!("conv3x3_nobias_pool backward: the forward argmax is missing");
        }
        let want_dw = w.track_op();
        let (dx, dw, _) = fused_backward(&self.cfg, &d, x, w, res, grad, &idx, false, want_dw)?;
        Ok((grad_tensor(dx, x)?, grad_tensor(want_dw.then_some(dw), w)?))
    }
}

/// A backward's inputs: the image batch, the weights in the form its path reads them (as given for the sparse
/// path; flipped for the dense one, empty when it needs no input gradient), the pooled output, its gradient and
/// the forward's argmax.
pub(super) struct BwdIo<'a> {
    pub(super) xs: &'a [f32],
    pub(super) w: &'a [f32],
    pub(super) pooled: &'a [f32],
    /// Whether the op applied a ReLU (then only positive pooled outputs pass a gradient).
    pub(super) relu: bool,
    pub(super) gp: &'a [f32],
    pub(super) idx: &'a [u8],
}

/// Splits `dx` into one part per range of images (empty parts without `want_dx`).
pub(super) fn dx_parts<'a>(
    mut rest: &'a mut [f32],
    ranges: &[std::ops::Range<usize>],
    in_img: usize,
    want_dx: bool,
) -> Vec<&'a mut [f32]> {
    let mut parts = Vec::with_capacity(ranges.len());
    for r in ranges {
        let take = if want_dx { r.len() * in_img } else { 0 };
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(take);
        parts.push(head);
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::FWD_COLS;
    use crate::util::xorshift;

    /// The fused forward with several images per conv GEMM (default width, and widths leaving tail groups)
    /// against one GEMM per image: same pooled values and argmax (up to float rounding in the values).
    #[test]
    fn grouped_fused_forward_matches_per_image() {
        let cfg = KernelConfig::default();
        let mut s = 7u64;
        let mut randv = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| (xorshift(&mut s) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .collect()
        };
        for (n, ci, co, h, w) in [(5, 256, 256, 7, 7), (3, 64, 256, 15, 15), (7, 5, 3, 5, 4)] {
            let d = ConvDims { n, ci, co, h, w };
            let x = randv(n * ci * h * w);
            let wt = randv(co * ci * 9);
            let b = randv(co);
            for (bias, relu) in [(None, false), (Some(b.as_slice()), true)] {
                let (y1, i1) = fused_forward_grouped(&cfg, &d, &x, &wt, bias, relu, 1);
                for cols in [FWD_COLS, 2 * d.hw(), usize::MAX / 2] {
                    let (y, i) = fused_forward_grouped(&cfg, &d, &x, &wt, bias, relu, cols);
                    let err = y
                        .iter()
                        .zip(&y1)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(err < 1e-4, "{d:?} cols={cols}: max error {err}");
                    // Rounding may flip a near-tie's argmax; allow none here (random data has no near ties).
                    assert_eq!(i, i1, "{d:?} cols={cols}: argmax");
                }
            }
        }
    }
}
