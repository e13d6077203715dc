//! `max_pool2x2(relu(conv3x3(x, w) + b))` in one op: the full-resolution conv output only ever
//! lives in a per-thread scratch buffer; the backward scatters the pooled gradient through the
//! saved argmax (and the ReLU mask, read off the pooled output) and reuses the conv kernels.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::{conv_backward, conv_dims, conv_image};
use crate::pool::{pool_plane, unpool};
use crate::util::{slice_f32, with_scratch_b, with_tensor_f32};

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
        let gy = {
            let idx = self.argmax.lock().map_err(|_| lock_err())?;
            if idx.len() != d.n * d.co * (d.h / 2) * (d.w / 2) {
                candle_core::bail!("conv3x3_relu_pool backward: the forward argmax is missing");
            }
            with_tensor_f32(res, |pooled| {
                with_tensor_f32(grad, |gp| {
                    Ok(unpool(gp, &idx, Some(pooled), d.n * d.co, d.h, d.w))
                })
            })?
        };
        conv_backward(&d, x, w, b, &gy)
    }
}
