//! A linear layer (`candle_nn::Linear` weight layout) with an optional fused bias + ReLU.
//!
//! On CPU f32 tensors it is one custom op whose forward is a single `gemm` call plus the bias
//! and ReLU epilogue, and whose backward writes `dW` directly in `[Out, In]` layout (candle's
//! `matmul(x, w.t())` would hand back a transposed gradient, which its autograd then adds into
//! a zero tensor element by element through the strided view).

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use crate::conv::sum_partials;
use crate::util::{Mat, sgemm_par_cols, sgemm_par_rows, slice_f32, split_ranges, with_tensor_f32};
use rayon::prelude::*;

/// [`crate::KernelConfig::linear`].
pub(crate) fn linear(
    cfg: &crate::KernelConfig,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    relu: bool,
) -> Result<Tensor> {
    let (_, out) = linear_dims(x.shape(), w.shape(), b.map(|b| b.shape()))?;
    if cfg.uses_kernels(&[x, w]) && b.is_none_or(|b| cfg.uses_kernels(&[b])) {
        // Without a bias, an untracked zero bias (its gradient is never computed).
        let zeros;
        let b = match b {
            Some(b) => b,
            None => {
                zeros = Tensor::zeros(out, DType::F32, x.device())?;
                &zeros
            }
        };
        return x.apply_op3(w, b, Linear { relu });
    }
    let y = x.matmul(&w.t()?)?;
    match (b, relu) {
        (Some(b), true) => cfg.bias_relu(&y, b),
        (Some(b), false) => y.broadcast_add(b),
        (None, true) => y.relu(),
        (None, false) => Ok(y),
    }
}

/// Validates `x [N, In]`, `w [Out, In]`, `b [Out]` and returns `(In, Out)`.
fn linear_dims(x: &Shape, w: &Shape, b: Option<&Shape>) -> Result<(usize, usize)> {
    let (_, inp) = x
        .dims2()
        .map_err(|e| crate::Error::shape("linear", "x [N, In]", x, e))?;
    let (out, win) = w
        .dims2()
        .map_err(|e| crate::Error::shape("linear", "w [Out, In]", w, e))?;
    if inp != win {
        return Err(crate::Error::Shape {
            op: "linear".to_string(),
            expected: format!("w [Out, {inp}] for x with {inp} features"),
            found: format!("w {w:?}"),
        }
        .into());
    }
    if let Some(b) = b
        && b.dims() != [out]
    {
        return Err(crate::Error::Shape {
            op: "linear".to_string(),
            expected: format!("bias [{out}] for w {w:?}"),
            found: format!("bias {b:?}"),
        }
        .into());
    }
    Ok((inp, out))
}

/// `x · wᵀ + b`, then ReLU when `relu`.
struct Linear {
    relu: bool,
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "cpu-ops-linear"
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
        let (inp, out) = linear_dims(lx.shape(), lw.shape(), Some(lb.shape()))?;
        let n = lx.dims()[0];
        let (x, w, b) = (slice_f32(sx, lx)?, slice_f32(sw, lw)?, slice_f32(sb, lb)?);
        // yᵀ[Out×N] = w[Out×In] · xᵀ[In×N]: with the (large) weight as the row-major left operand gemm runs
        // about twice as fast as for x·wᵀ; the transpose back (with bias and ReLU) is a small pass.
        let mut yt = vec![0f32; out * n];
        let wm = Mat {
            data: &w,
            rs: inp,
            cs: 1,
        };
        let xt = Mat {
            data: &x,
            rs: 1,
            cs: inp,
        };
        sgemm_par_rows(out, n, inp, &mut yt, n, false, wm, xt);
        let mut y = vec![0f32; n * out];
        for (o, (col, &bias)) in yt.chunks_exact(n.max(1)).zip(b.iter()).enumerate() {
            for (i, &v) in col.iter().enumerate() {
                let v = v + bias;
                y[i * out + o] = if self.relu { v.max(0.0) } else { v };
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (inp, out) = linear_dims(x.shape(), w.shape(), Some(b.shape()))?;
        let n = x.dim(0)?;
        let g = with_tensor_f32(grad, |g| {
            if !self.relu {
                return Ok(g.to_vec());
            }
            with_tensor_f32(res, |y| {
                Ok(g.iter()
                    .zip(y)
                    .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
                    .collect::<Vec<f32>>())
            })
        })?;
        let dev = x.device();
        let db = if b.track_op() {
            Some(Tensor::from_vec(col_sums(&g, n, out), out, dev)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            // dW[Out×In] = gᵀ[Out×N] · x[N×In]
            let mut dw = vec![0f32; out * inp];
            with_tensor_f32(x, |xs| {
                let gt = Mat {
                    data: &g,
                    rs: 1,
                    cs: out,
                };
                let xm = Mat {
                    data: xs,
                    rs: inp,
                    cs: 1,
                };
                sgemm_par_rows(out, inp, n, &mut dw, inp, false, gt, xm);
                Ok(())
            })?;
            Some(Tensor::from_vec(dw, (out, inp), dev)?)
        } else {
            None
        };
        let dx = if x.track_op() {
            // dx[N×In] = g[N×Out] · w[Out×In]
            let mut dx = vec![0f32; n * inp];
            with_tensor_f32(w, |ws| {
                let gm = Mat {
                    data: &g,
                    rs: out,
                    cs: 1,
                };
                let wm = Mat {
                    data: ws,
                    rs: inp,
                    cs: 1,
                };
                sgemm_par_cols(n, inp, out, &mut dx, inp, false, gm, wm);
                Ok(())
            })?;
            Some(Tensor::from_vec(dx, (n, inp), dev)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// Column sums of a row-major `[rows × cols]` matrix.
fn col_sums(g: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    if cols == 0 {
        return Vec::new();
    }
    let partials: Vec<Vec<f32>> = split_ranges(rows, rayon::current_num_threads())
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; cols];
            for row in r {
                for (a, &v) in acc.iter_mut().zip(&g[row * cols..(row + 1) * cols]) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    sum_partials(partials, cols)
}
