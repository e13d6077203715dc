//! 2x2 max-pool, stride 2, NCHW f32, keeping the argmax (one byte per output) for the backward.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::util::{slice_f32, with_tensor_f32};

/// Pools one `h×w` plane (h, w even) into `out[(h/2)×(w/2)]`, writing the window position
/// (0..4, row-major; the first maximum wins) of each maximum into `idx`. With `relu`, the
/// outputs are clamped at zero (`max(0, max(window))`), which is the pool of the ReLU.
pub(crate) fn pool_plane(
    x: &[f32],
    h: usize,
    w: usize,
    relu: bool,
    out: &mut [f32],
    idx: &mut [u8],
) {
    let wo = w / 2;
    for oh in 0..h / 2 {
        let r0 = &x[2 * oh * w..][..w];
        let r1 = &x[(2 * oh + 1) * w..][..w];
        let o = &mut out[oh * wo..][..wo];
        let id = &mut idx[oh * wo..][..wo];
        for ow in 0..wo {
            let c = 2 * ow;
            let mut best = r0[c];
            let mut bi = 0u8;
            if r0[c + 1] > best {
                best = r0[c + 1];
                bi = 1;
            }
            if r1[c] > best {
                best = r1[c];
                bi = 2;
            }
            if r1[c + 1] > best {
                best = r1[c + 1];
                bi = 3;
            }
            o[ow] = if relu { best.max(0.0) } else { best };
            id[ow] = bi;
        }
    }
}

/// Scatters a pooled gradient back through the saved argmax into a zeroed `h×w` plane. With
/// `relu`, positions whose pooled output is not positive get no gradient (ReLU'(x<=0) = 0).
pub(crate) fn unpool_plane(
    gp: &[f32],
    idx: &[u8],
    pooled: Option<&[f32]>,
    w: usize,
    gx: &mut [f32],
) {
    let wo = w / 2;
    if wo == 0 {
        return;
    }
    for (oh, (grow, irow)) in gp.chunks_exact(wo).zip(idx.chunks_exact(wo)).enumerate() {
        let (top, bottom) = gx[2 * oh * w..(2 * oh + 2) * w].split_at_mut(w);
        let prow = pooled.map(|v| &v[oh * wo..(oh + 1) * wo]);
        for (ow, (&g, &i)) in grow.iter().zip(irow).enumerate() {
            if let Some(res) = prow
                && res[ow] <= 0.0
            {
                continue;
            }
            let row = if i & 2 == 0 { &mut *top } else { &mut *bottom };
            row[2 * ow + (i & 1) as usize] = g;
        }
    }
}

/// Checks that a `[n, c, h, w]` shape has even, non-zero spatial dims.
pub(crate) fn pool_dims(s: &Shape, op: &str) -> Result<(usize, usize, usize, usize)> {
    let (n, c, h, w) = s
        .dims4()
        .map_err(|e| crate::Error::shape(op, "input [N,C,H,W]", s, e))?;
    if h % 2 != 0 || w % 2 != 0 {
        return Err(crate::Error::Shape {
            op: op.to_string(),
            expected: "even height and width for a 2x2/stride-2 pool".to_string(),
            found: format!("{s:?}"),
        }
        .into());
    }
    Ok((n, c, h, w))
}

/// The pooled plane gradient scattered back to a full `[n, c, h, w]` gradient.
pub(crate) fn unpool(
    gp: &[f32],
    idx: &[u8],
    pooled: Option<&[f32]>,
    planes: usize,
    h: usize,
    w: usize,
) -> Vec<f32> {
    let (plane, pplane) = (h * w, (h / 2) * (w / 2));
    let mut gx = vec![0f32; planes * plane];
    if pplane == 0 {
        return gx;
    }
    gx.par_chunks_mut(plane * 16)
        .enumerate()
        .for_each(|(chunk, g)| {
            for (j, gplane) in g.chunks_exact_mut(plane).enumerate() {
                let p = chunk * 16 + j;
                let r = p * pplane..(p + 1) * pplane;
                let pooled_p = pooled.map(|v| &v[r.clone()]);
                unpool_plane(&gp[r.clone()], &idx[r], pooled_p, w, gplane);
            }
        });
    gx
}

/// 2x2/stride-2 max-pool op; the argmax recorded in the forward drives the backward.
#[derive(Default)]
pub(crate) struct MaxPool2x2 {
    argmax: Mutex<Vec<u8>>,
}

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "cpu-ops-maxpool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = pool_dims(l.shape(), "max_pool2x2")?;
        let x = slice_f32(s, l)?;
        let (plane, pplane) = (h * w, (h / 2) * (w / 2));
        let mut out = vec![0f32; n * c * pplane];
        let mut idx = vec![0u8; n * c * pplane];
        if pplane > 0 {
            out.par_chunks_mut(pplane)
                .zip(idx.par_chunks_mut(pplane))
                .zip(x.par_chunks(plane))
                .for_each(|((o, i), xp)| pool_plane(xp, h, w, false, o, i));
        }
        *self
            .argmax
            .lock()
            .map_err(|_| candle_core::Error::Msg("max_pool2x2: poisoned lock".into()))? = idx;
        Ok((CpuStorage::F32(out), Shape::from((n, c, h / 2, w / 2))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = pool_dims(arg.shape(), "max_pool2x2 backward")?;
        let idx = self
            .argmax
            .lock()
            .map_err(|_| candle_core::Error::Msg("max_pool2x2: poisoned lock".into()))?;
        if idx.len() != n * c * (h / 2) * (w / 2) {
            candle_core::bail!("max_pool2x2 backward: the forward argmax is missing");
        }
        let gx = with_tensor_f32(grad, |gp| Ok(unpool(gp, &idx, None, n * c, h, w)))?;
        Ok(Some(Tensor::from_vec(gx, arg.shape(), arg.device())?))
    }
}
