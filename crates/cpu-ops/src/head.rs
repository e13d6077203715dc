//! A global max-pool + scaled linear layer, fused: airbench94's head (`MaxPool2d(3)` over the last 3x3 map,
//! flatten, `Linear(C, K, bias=False)`, times a constant). One pass finds each plane's maximum and its first
//! (row-major) position; the backward recomputes the positions from the input and sends each plane's gradient
//! to that one value (PyTorch's tie rule), and writes the weight gradient directly.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::util::{slice_f32, with_tensor_f32};

/// The op: `y = scale · max_hw(x) · wᵀ`.
pub(crate) struct MaxLinear {
    pub scale: f32,
}

/// Checks `x [N, C, H, W]` (`H·W ≥ 1`) and `w [K, C]`; returns `(n, c, hw, k)`.
pub(crate) fn head_dims(x: &Shape, w: &Shape, op: &str) -> Result<(usize, usize, usize, usize)> {
    let (n, c, h, wd) = x
        .dims4()
        .map_err(|e| crate::Error::shape(op, "input [N, C, H, W]", x, e))?;
    let (k, wc) = w
        .dims2()
        .map_err(|e| crate::Error::shape(op, "weight [K, C]", w, e))?;
    if wc != c || h * wd == 0 || c == 0 || k == 0 {
        return Err(crate::Error::Shape {
            op: op.to_string(),
            expected: format!(
                "weight [K >= 1, {c}], at least one channel and a non-empty map for an input with {c} channels"
            ),
            found: format!("input {:?}, weight {:?}", x.dims(), w.dims()),
        }
        .into());
    }
    Ok((n, c, h * wd, k))
}

/// Each plane's maximum and the index of its first occurrence; a NaN counts as the maximum, the last NaN's index
/// (as PyTorch's CPU max-pool).
fn plane_max(plane: &[f32]) -> (f32, usize) {
    let mut best = (plane[0], 0);
    for (i, &v) in plane.iter().enumerate().skip(1) {
        if v > best.0 || v.is_nan() {
            best = (v, i);
        }
    }
    best
}

impl CustomOp2 for MaxLinear {
    fn name(&self) -> &'static str {
        "cpu-ops-max-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw, k) = head_dims(xl.shape(), wl.shape(), self.name())?;
        let x = slice_f32(xs, xl)?;
        let w = slice_f32(ws, wl)?;
        let mut y = vec![0f32; n * k];
        y.par_chunks_mut(k)
            .zip(x.par_chunks(c * hw))
            .for_each(|(y, x)| {
                let h: Vec<f32> = x.chunks_exact(hw).map(|p| plane_max(p).0).collect();
                for (yk, wk) in y.iter_mut().zip(w.chunks_exact(c)) {
                    *yk = self.scale * wk.iter().zip(&h).map(|(a, b)| a * b).sum::<f32>();
                }
            });
        Ok((CpuStorage::F32(y), Shape::from((n, k))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, c, hw, k) = head_dims(x.shape(), w.shape(), self.name())?;
        let (want_dx, want_dw) = (x.track_op(), w.track_op());
        if !want_dx && !want_dw {
            return Ok((None, None));
        }
        let s = self.scale;
        let (dx, dw) = with_tensor_f32(x, |x| {
            with_tensor_f32(w, |w| {
                with_tensor_f32(grad, |dy| {
                    // Per image: the maxima, their positions, and dh = s·dy·w.
                    let pooled: Vec<(Vec<f32>, Vec<usize>)> = x
                        .par_chunks(c * hw)
                        .map(|x| x.chunks_exact(hw).map(plane_max).unzip())
                        .collect();
                    let dx = want_dx.then(|| {
                        let mut dx = vec![0f32; n * c * hw];
                        dx.par_chunks_mut(c * hw)
                            .zip(pooled.par_iter())
                            .zip(dy.par_chunks(k))
                            .for_each(|((dx, (_, at)), dy)| {
                                for (ch, (plane, &i)) in
                                    dx.chunks_exact_mut(hw).zip(at.iter()).enumerate()
                                {
                                    plane[i] = s * dy
                                        .iter()
                                        .zip(w.chunks_exact(c))
                                        .map(|(g, wk)| g * wk[ch])
                                        .sum::<f32>();
                                }
                            });
                        dx
                    });
                    // dw[k][ch] = s·Σ_n dy[n][k]·h[n][ch], summed over images in order.
                    let dw = want_dw.then(|| {
                        let mut dw = vec![0f32; k * c];
                        dw.par_chunks_mut(c).enumerate().for_each(|(kk, row)| {
                            for ((h, _), dy) in pooled.iter().zip(dy.chunks_exact(k)) {
                                let g = s * dy[kk];
                                for (r, &hv) in row.iter_mut().zip(h) {
                                    *r += g * hv;
                                }
                            }
                        });
                        dw
                    });
                    Ok((dx, dw))
                })
            })
        })?;
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), x.device()))
            .transpose()?;
        let dw = dw
            .map(|v| Tensor::from_vec(v, w.shape(), w.device()))
            .transpose()?;
        Ok((dx, dw))
    }
}
