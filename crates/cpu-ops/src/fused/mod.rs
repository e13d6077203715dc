//! `max_pool2x2(relu(conv3x3(x, w) + b))` in one op: the full-resolution conv output only ever
//! lives in a per-thread scratch buffer. The backward is one pass over the images: for the
//! channel counts of the model's layers (3, 16, 32, 64, 128) a sparse kernel that visits only
//! the conv outputs the pool and the ReLU let a gradient through (`sparse.rs`); for other
//! channel counts a dense pass that scatters each image's pooled gradient into a scratch plane
//! and runs the bias, weight and input gradients on it as GEMMs while it is hot (`dense.rs`).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::{conv_dims, conv_image, flip_weights};
use crate::pool::pool_plane_kernel;
use crate::util::{slice_f32, with_scratch_b, with_tensor_f32};

mod dense;
mod sparse;

use dense::dense_backward;
use sparse::{simd, sparse_backward};

/// Fused conv3x3 + bias + ReLU + 2x2 max-pool op.
#[derive(Default)]
pub(crate) struct ConvReluPool {
    argmax: Mutex<Vec<u8>>,
}

fn lock_err() -> candle_core::Error {
    candle_core::Error::Msg("conv3x3_relu_pool: poisoned lock".into())
}

fn fused_dims(x: &Shape, w: &Shape, b: &Shape, op: &str) -> Result<crate::conv::ConvDims> {
    let d = conv_dims(x, w, Some(b), op)?;
    if d.h % 2 != 0 || d.w % 2 != 0 {
        return Err(crate::Error::Shape {
            op: op.to_string(),
            expected: "even height and width for a 2x2/stride-2 pool".to_string(),
            found: format!("{x:?}"),
        }
        .into());
    }
    Ok(d)
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
        let (hw, phw) = (d.hw(), (d.h / 2) * (d.w / 2));
        let mut out = vec![0f32; d.n * d.co * phw];
        let mut idx = vec![0u8; d.n * d.co * phw];
        let pool_plane = pool_plane_kernel();
        if phw > 0 {
            out.par_chunks_mut(d.co * phw)
                .zip(idx.par_chunks_mut(d.co * phw))
                .zip(x.par_chunks((d.ci * hw).max(1)))
                .for_each(|((o, i), xi)| {
                    with_scratch_b(d.co * hw, |y| {
                        conv_image(&d, xi, &w, Some(&b), y);
                        for ((yp, op), ip) in y
                            .chunks_exact(hw)
                            .zip(o.chunks_exact_mut(phw))
                            .zip(i.chunks_exact_mut(phw))
                        {
                            pool_plane(yp, d.h, d.w, true, op, ip);
                        }
                    })
                });
        }
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
        let (want_dx, want_dw) = (x.track_op(), w.track_op());
        let (dx, dw, db) = with_tensor_f32(x, |xs| {
            with_tensor_f32(w, |ws| {
                with_tensor_f32(res, |pooled| {
                    with_tensor_f32(grad, |gp| {
                        if let Some(kernel) = simd::pick(d.ci) {
                            let io = BwdIo {
                                xs,
                                w: ws,
                                pooled,
                                gp,
                                idx: &idx,
                            };
                            return Ok(sparse_backward(&d, &io, kernel, want_dx, want_dw));
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
                            gp,
                            idx: &idx,
                        };
                        let (dx, dwt, db) = dense_backward(&d, &io, want_dx, want_dw);
                        let dw = if want_dw {
                            crate::conv::untranspose_weight_grad(&dwt, d.co, d.k())
                        } else {
                            Vec::new()
                        };
                        Ok((dx, dw, db))
                    })
                })
            })
        })?;
        let dev = x.device();
        let dx = match dx {
            Some(v) => Some(Tensor::from_vec(v, x.shape(), dev)?),
            None => None,
        };
        let dw = if want_dw {
            Some(Tensor::from_vec(dw, w.shape(), dev)?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(Tensor::from_vec(db, b.shape(), dev)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// A backward's inputs: the image batch, the weights in the form its path reads them (as given for the sparse
/// path; flipped for the dense one, empty when it needs no input gradient), the pooled output, its gradient and
/// the forward's argmax.
pub(super) struct BwdIo<'a> {
    pub(super) xs: &'a [f32],
    pub(super) w: &'a [f32],
    pub(super) pooled: &'a [f32],
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
