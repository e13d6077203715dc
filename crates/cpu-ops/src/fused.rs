//! `max_pool2x2(relu(conv3x3(x, w) + b))` in one op: the full-resolution conv output only ever
//! lives in a per-thread scratch buffer; the backward is one pass over the images that scatters
//! each image's pooled gradient through the saved argmax (and the ReLU mask, read off the pooled
//! output) into scratch, then runs the bias, weight and input gradients on it while it is hot.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::{ConvDims, conv_dims, conv_image, flip_weights, im2col, sum_partials, sum8};
use crate::pool::{pool_plane, unpool_plane};
use crate::util::{
    Mat, sgemm, slice_f32, split_ranges, with_scratch_a, with_scratch_b, with_tensor_f32,
};

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
        let (dx, dwt, db) = with_tensor_f32(x, |xs| {
            with_tensor_f32(w, |ws| {
                with_tensor_f32(res, |pooled| {
                    with_tensor_f32(grad, |gp| {
                        let wf = if want_dx {
                            flip_weights(ws, d.co, d.ci)
                        } else {
                            Vec::new()
                        };
                        let io = BwdIo {
                            xs,
                            wf: &wf,
                            pooled,
                            gp,
                            idx: &idx,
                        };
                        Ok(fused_backward(&d, &io, want_dx, want_dw))
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
            let dw = crate::conv::untranspose_weight_grad(&dwt, d.co, d.k());
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

/// The backward's inputs: the image batch, the flipped weights (empty when no input gradient
/// is wanted), the pooled output, its gradient and the forward's argmax.
struct BwdIo<'a> {
    xs: &'a [f32],
    wf: &'a [f32],
    pooled: &'a [f32],
    gp: &'a [f32],
    idx: &'a [u8],
}

/// One pass over the images, per thread: scatter the pooled gradient of an image into a
/// scratch plane set (the ReLU mask read off the pooled output), then its bias-gradient sums,
/// its weight-gradient GEMM (accumulating `dWᵀ[9ci × co]`) and its input-gradient convolution,
/// while the plane is still in cache. Returns `(dx, dWᵀ, db)`.
fn fused_backward(
    d: &ConvDims,
    io: &BwdIo<'_>,
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (hw, phw, k) = (d.hw(), (d.h / 2) * (d.w / 2), d.k());
    let (in_img, g_img, p_img) = (d.ci * hw, d.co * hw, d.co * phw);
    let ranges = split_ranges(d.n, rayon::current_num_threads());
    let mut dx = vec![0f32; if want_dx { d.n * in_img } else { 0 }];
    let mut dx_parts: Vec<&mut [f32]> = Vec::with_capacity(ranges.len());
    let mut rest = dx.as_mut_slice();
    for r in &ranges {
        let take = if want_dx { r.len() * in_img } else { 0 };
        let (head, tail) = rest.split_at_mut(take);
        dx_parts.push(head);
        rest = tail;
    }
    let wlen = if want_dw { k * d.co } else { 0 };
    let td = d.transposed();
    let partials: Vec<(Vec<f32>, Vec<f32>)> = ranges
        .into_par_iter()
        .zip(dx_parts)
        .map(|(r, dx_part)| {
            let mut acc_w = vec![0f32; wlen];
            let mut acc_b = vec![0f32; d.co];
            for (pos, img) in r.enumerate() {
                with_scratch_b(g_img, |g| {
                    g.fill(0.0);
                    let pr = img * p_img..(img + 1) * p_img;
                    let (gp, id, po) = (&io.gp[pr.clone()], &io.idx[pr.clone()], &io.pooled[pr]);
                    for (c, plane) in g.chunks_exact_mut(hw.max(1)).enumerate() {
                        let q = c * phw..(c + 1) * phw;
                        unpool_plane(&gp[q.clone()], &id[q.clone()], Some(&po[q]), d.w, plane);
                        acc_b[c] += sum8(plane);
                    }
                    if want_dw {
                        with_scratch_a(k * hw, |cols| {
                            im2col(&io.xs[img * in_img..][..in_img], d.ci, d.h, d.w, cols);
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
                            sgemm(k, d.co, hw, &mut acc_w, d.co, true, a, gt);
                        });
                    }
                    if want_dx {
                        conv_image(&td, g, io.wf, None, &mut dx_part[pos * in_img..][..in_img]);
                    }
                });
            }
            (acc_w, acc_b)
        })
        .collect();
    let (ws, bs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    (
        want_dx.then_some(dx),
        sum_partials(ws, wlen),
        sum_partials(bs, d.co),
    )
}
