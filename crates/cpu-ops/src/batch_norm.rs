//! BatchNorm (no weight, i.e. weight frozen at 1) + per-channel bias + exact GELU, fused, NCHW f32.
//!
//! Training: `y = gelu((x - μ_c)/√(σ²_c + eps) + b_c)` with the batch statistics over `N, H, W`
//! (biased variance `σ²`), computed in f64 in two passes (mean, then squared deviations) so a tiny `eps` is
//! safe. The backward runs through the statistics (the full BatchNorm backward):
//! `g = dy·gelu'(z)`, `db_c = Σ g`, `dx = invstd·(g - mean(g) - x̂·mean(g·x̂))` per channel.
//!
//! Evaluation: the same forward with given statistics, no backward (the public function falls back to candle's
//! ops whenever an input is tracked by autograd).
//!
//! Parallelism: rayon over channels; each channel's `N` planes (strided in NCHW) are gathered as slice lists,
//! so the outputs are written without unsafe aliasing.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::gelu::{Norm, kernels};
use crate::util::{slice_f32, with_tensor_f32};

/// Validates `x [N, C, H, W]` and a per-channel vector `[C]`; returns `(n, c, hw)`.
pub(crate) fn bn_dims(x: &Shape, v: &Shape, what: &str, op: &str) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = x
        .dims4()
        .map_err(|e| crate::Error::shape(op, "input [N,C,H,W]", x, e))?;
    if v.dims() != [c] {
        return Err(crate::Error::Shape {
            op: op.to_string(),
            expected: format!("{what} [{c}] for an input with {c} channels"),
            found: format!("{v:?}"),
        }
        .into());
    }
    Ok((n, c, h * w))
}

/// The planes of channel `ch` of an NCHW buffer, in image order.
fn channel_planes(data: &[f32], n: usize, c: usize, hw: usize, ch: usize) -> Vec<&[f32]> {
    (0..n).map(|i| &data[(i * c + ch) * hw..][..hw]).collect()
}

/// A mutable NCHW buffer split into its planes, grouped by channel (`[c][n]`).
fn planes_by_channel(data: &mut [f32], c: usize, hw: usize) -> Vec<Vec<&mut [f32]>> {
    if hw == 0 || c == 0 {
        return (0..c).map(|_| Vec::new()).collect();
    }
    let images = data.len() / (hw * c);
    let mut out: Vec<Vec<&mut [f32]>> = (0..c).map(|_| Vec::with_capacity(images)).collect();
    for (p, plane) in data.chunks_exact_mut(hw).enumerate() {
        out[p % c].push(plane);
    }
    out
}

/// Per-channel statistics of one training forward (kept for its backward and handed to the caller).
#[derive(Default)]
pub(crate) struct BnStats {
    /// Batch mean (f64; the kernels use it split into two f32s, see [`Norm`]).
    pub mean: Vec<f64>,
    /// `1/√(σ²_biased + eps)`.
    pub invstd: Vec<f64>,
    /// The unbiased batch variance `Σ(x-μ)²/(M-1)` (for the running statistics).
    pub var_unbiased: Vec<f64>,
}

/// Training-mode BatchNorm + bias + GELU; the statistics go to a shared slot the caller reads after the forward.
pub(crate) struct BnGeluTrain {
    pub eps: f64,
    pub stats: Arc<Mutex<Option<BnStats>>>,
}

fn lock_err() -> candle_core::Error {
    candle_core::Error::Msg("batch_norm_gelu_train: poisoned lock".into())
}

/// Number of values per channel, which must be at least 2 for a batch variance (as PyTorch requires).
pub(crate) fn values_per_channel(n: usize, hw: usize, op: &str, s: &Shape) -> Result<usize> {
    let m = n * hw;
    if m < 2 {
        return Err(crate::Error::Shape {
            op: op.to_string(),
            expected: "more than one value per channel (N·H·W >= 2) for batch statistics"
                .to_string(),
            found: format!("{s:?}"),
        }
        .into());
    }
    Ok(m)
}

impl CustomOp2 for BnGeluTrain {
    fn name(&self) -> &'static str {
        "cpu-ops-batch-norm-gelu"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = "batch_norm_gelu_train";
        let (n, c, hw) = bn_dims(lx.shape(), lb.shape(), "bias", op)?;
        let m = values_per_channel(n, hw, op, lx.shape())? as f64;
        let (x, b) = (slice_f32(sx, lx)?, slice_f32(sb, lb)?);
        let mut y = crate::util::par_zeroed::<f32>(x.len());
        let k = kernels();
        let eps = self.eps;
        let per_channel: Vec<(f64, f64, f64)> = planes_by_channel(&mut y, c, hw)
            .into_par_iter()
            .enumerate()
            .map(|(ch, mut ys)| {
                let xs = channel_planes(&x, n, c, hw, ch);
                let mean = (k.chan_sum)(&xs) / m;
                let ssd = (k.chan_sq_dev)(&xs, mean);
                let invstd = 1.0 / (ssd / m + eps).sqrt();
                (k.chan_fwd)(&xs, &mut ys, Norm::new(mean, invstd, b[ch]));
                (mean, invstd, ssd / (m - 1.0))
            })
            .collect();
        let mut st = BnStats::default();
        for (mean, invstd, var) in per_channel {
            st.mean.push(mean);
            st.invstd.push(invstd);
            st.var_unbiased.push(var);
        }
        *self.stats.lock().map_err(|_| lock_err())? = Some(st);
        Ok((CpuStorage::F32(y), lx.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = "batch_norm_gelu_train backward";
        let (n, c, hw) = bn_dims(x.shape(), bias.shape(), "bias", op)?;
        let m = values_per_channel(n, hw, op, x.shape())? as f64;
        let guard = self.stats.lock().map_err(|_| lock_err())?;
        let Some(st) = guard.as_ref().filter(|s| s.mean.len() == c) else {
            candle_core::bail!("{op}: the forward statistics are missing");
        };
        let want_dx = x.track_op();
        let k = kernels();
        let (dx, db) = with_tensor_f32(x, |xv| {
            with_tensor_f32(bias, |bv| {
                with_tensor_f32(grad, |gv| {
                    // The pass-1 buffer `g` becomes dx in place.
                    let mut g = crate::util::par_zeroed::<f32>(xv.len());
                    let db: Vec<f32> = planes_by_channel(&mut g, c, hw)
                        .into_par_iter()
                        .enumerate()
                        .map(|(ch, mut gs)| {
                            let xs = channel_planes(xv, n, c, hw, ch);
                            let dys = channel_planes(gv, n, c, hw, ch);
                            let nm = Norm::new(st.mean[ch], st.invstd[ch], bv[ch]);
                            let (sg, sgx) = (k.chan_bwd_sums)(&xs, &dys, &mut gs, nm);
                            if want_dx {
                                let (mg, mgx) = ((sg / m) as f32, (sgx / m) as f32);
                                (k.chan_bwd_dx)(&xs, &mut gs, nm, mg, mgx);
                            }
                            sg as f32
                        })
                        .collect();
                    Ok((g, db))
                })
            })
        })?;
        let dx = if want_dx {
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        let db = if bias.track_op() {
            Some(Tensor::from_vec(db, bias.shape(), bias.device())?)
        } else {
            None
        };
        Ok((dx, db))
    }
}

/// Evaluation-mode BatchNorm + bias + GELU with given per-channel `mean`, `invstd = 1/√(var + eps)` and `bias`
/// (forward only).
pub(crate) struct BnGeluEval {
    pub mean: Vec<f32>,
    pub invstd: Vec<f32>,
    pub bias: Vec<f32>,
}

impl CustomOp1 for BnGeluEval {
    fn name(&self) -> &'static str {
        "cpu-ops-batch-norm-gelu-eval"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4().map_err(|e| {
            crate::Error::shape("batch_norm_gelu_eval", "input [N,C,H,W]", l.shape(), e)
        })?;
        if self.mean.len() != c || self.invstd.len() != c || self.bias.len() != c {
            candle_core::bail!(
                "batch_norm_gelu_eval: statistics for {} channels, input has {c}",
                self.mean.len()
            );
        }
        let hw = h * w;
        let x = slice_f32(s, l)?;
        let mut y = crate::util::par_zeroed::<f32>(x.len());
        let k = kernels();
        planes_by_channel(&mut y, c, hw)
            .into_par_iter()
            .enumerate()
            .for_each(|(ch, mut ys)| {
                let xs = channel_planes(&x, n, c, hw, ch);
                let nm = Norm::new(self.mean[ch] as f64, self.invstd[ch] as f64, self.bias[ch]);
                (k.chan_fwd)(&xs, &mut ys, nm);
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
}
