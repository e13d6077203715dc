//! Fused `relu(x + b)` for linear layers (`x [.., F]`, `b [F]`).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::sum_partials;
use crate::util::{slice_f32, split_ranges, with_tensor_f32};

/// Rows per rayon task: enough work to amortise scheduling.
const ROWS_PER_TASK: usize = 16;

fn features(x: &Shape, b: &Shape) -> Result<usize> {
    let f = x.dims().last().copied().unwrap_or(0);
    if x.rank() == 0 || b.dims() != [f] {
        return Err(crate::Error::Shape {
            op: "bias_relu".to_string(),
            expected: format!("x [.., F] and bias [F] with F = last dim of x ({f})"),
            found: format!("x {x:?}, bias {b:?}"),
        }
        .into());
    }
    Ok(f)
}

/// `relu(x + b)` with `b` broadcast over the rows of `x`.
pub(crate) struct BiasRelu;

impl CustomOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "cpu-ops-bias-relu"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let f = features(lx.shape(), lb.shape())?;
        let (x, b) = (slice_f32(sx, lx)?, slice_f32(sb, lb)?);
        let mut out = vec![0f32; x.len()];
        if f > 0 {
            out.par_chunks_mut(f * ROWS_PER_TASK)
                .zip(x.par_chunks(f * ROWS_PER_TASK))
                .for_each(|(o, xs)| {
                    for (orow, xrow) in o.chunks_exact_mut(f).zip(xs.chunks_exact(f)) {
                        for ((o, &x), &b) in orow.iter_mut().zip(xrow).zip(b.iter()) {
                            *o = (x + b).max(0.0);
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(out), lx.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let f = features(x.shape(), b.shape())?;
        let dx = with_tensor_f32(res, |y| {
            with_tensor_f32(grad, |g| {
                Ok(g.iter()
                    .zip(y)
                    .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
                    .collect::<Vec<f32>>())
            })
        })?;
        let db = if b.track_op() && f > 0 {
            let rows = dx.len() / f;
            let partials: Vec<Vec<f32>> = split_ranges(rows, rayon::current_num_threads())
                .into_par_iter()
                .map(|r| {
                    let mut acc = vec![0f32; f];
                    for row in r {
                        for (a, &g) in acc.iter_mut().zip(&dx[row * f..(row + 1) * f]) {
                            *a += g;
                        }
                    }
                    acc
                })
                .collect();
            Some(Tensor::from_vec(
                sum_partials(partials, f),
                b.shape(),
                b.device(),
            )?)
        } else {
            None
        };
        let dx = if x.track_op() {
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        Ok((dx, db))
    }
}
