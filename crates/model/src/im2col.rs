//! im2col as a candle op with its backward (col2im), CPU f32: the patches of a `k`x`k` valid convolution as the
//! rows of a matrix, so the convolution is one GEMM (`cpu_ops::linear`, with its fused bias and ReLU).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `x [N, C, H, W]` -> `[N·Ho·Wo, C·k·k]` (row `(n, oy, ox)`, column `c·k² + ky·k + kx`, the layout of a conv
/// weight `[Co, C, k, k]` flattened), `Ho = H-k+1`, `Wo = W-k+1`.
pub(crate) struct Im2col {
    pub k: usize,
}

/// The adjoint of [`Im2col`]: sums the patch gradients back into `[N, C, H, W]`.
struct Col2im {
    k: usize,
    dims: (usize, usize, usize, usize),
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: expected an f32 tensor")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "im2col")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let k = self.k;
        if k == 0 || k > h || k > w {
            bail!("im2col: kernel {k} does not fit a {h}x{w} image");
        }
        let (ho, wo) = (h - k + 1, w - k + 1);
        let kk = c * k * k;
        let mut out = vec![0f32; n * ho * wo * kk];
        if out.is_empty() {
            return Ok((CpuStorage::F32(out), Shape::from((n * ho * wo, kk))));
        }
        out.par_chunks_mut(ho * wo * kk)
            .zip(x.par_chunks(c * h * w))
            .for_each(|(out, x)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let row = &mut out[(oy * wo + ox) * kk..][..kk];
                        for ci in 0..c {
                            for ky in 0..k {
                                let src = &x[(ci * h + oy + ky) * w + ox..][..k];
                                row[(ci * k + ky) * k..][..k].copy_from_slice(src);
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n * ho * wo, kk))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = Col2im {
            k: self.k,
            dims: arg.dims4()?,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

impl CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(s, l, "col2im")?;
        let (n, c, h, w) = self.dims;
        let k = self.k;
        let (ho, wo) = (h - k + 1, w - k + 1);
        let kk = c * k * k;
        if g.len() != n * ho * wo * kk {
            bail!(
                "col2im: {} gradients for {n}x{ho}x{wo} patches of {kk}",
                g.len()
            );
        }
        let mut dx = vec![0f32; n * c * h * w];
        if dx.is_empty() {
            return Ok((CpuStorage::F32(dx), Shape::from(self.dims)));
        }
        dx.par_chunks_mut(c * h * w)
            .zip(g.par_chunks(ho * wo * kk))
            .for_each(|(dx, g)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let row = &g[(oy * wo + ox) * kk..][..kk];
                        for ci in 0..c {
                            for ky in 0..k {
                                let dst = &mut dx[(ci * h + oy + ky) * w + ox..][..k];
                                for (d, v) in dst.iter_mut().zip(&row[(ci * k + ky) * k..][..k]) {
                                    *d += v;
                                }
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dx), Shape::from(self.dims)))
    }
}
