//! Layer building blocks shared by the models.

use crate::Result;
use candle_core::{DType, Tensor};
use cpu_ops::KernelConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Inverted dropout with masks drawn from a seeded RNG: in training each element is zeroed with probability `p`
/// and the rest scaled by `1/(1-p)`; in evaluation it is the identity.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    /// The probability of zeroing an element; `p <= 0` disables dropout.
    pub p: f32,
}

impl Dropout {
    /// Applies dropout to `x` with a mask drawn from `rng` (training), or returns `x` unchanged when `rng` is
    /// `None` (evaluation).
    pub fn forward(&self, x: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let Some(rng) = rng else {
            return Ok(x.clone());
        };
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let scale = 1.0 / keep;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.random::<f32>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
}

/// Conv 3x3 (stride 1, pad 1) + bias -> ReLU -> 2x2 max-pool, NCHW. On the CPU this is one fused `cpu-ops`
/// kernel with its own backward; elsewhere candle's native ops.
pub(crate) fn conv_relu_pool(
    k: &KernelConfig,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
) -> Result<Tensor> {
    Ok(k.conv3x3_relu_pool(x, w, b)?)
}

/// `x · wᵀ + b`, optionally followed by ReLU; `w` is `[out, in]`.
pub(crate) fn linear(
    k: &KernelConfig,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    Ok(k.linear(x, w, Some(b), relu)?)
}

/// Softmax probabilities of logits `[B, C]`, as f32.
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax_last_dim(
        &logits.to_dtype(DType::F32)?,
    )?)
}

/// `k`x`k` convolution, stride 1, no padding ("valid"), plus a per-channel bias: `x [N, Ci, H, W]`,
/// `w [Co, Ci, k, k]`, `b [Co]` -> `[N, Co, H-k+1, W-k+1]`.
///
/// On the CPU (f32) the patches become the rows of a matrix (an im2col op with a col2im backward) and the
/// convolution is one `cpu_ops::linear` GEMM; elsewhere the k² shifted views are stacked and multiplied with
/// candle's stock ops.
/// `k` picks the kernels (candle's stock ops with [`KernelConfig::stock`]).
pub fn conv_valid(k: &KernelConfig, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    conv_valid_act(k, x, w, b, false)
}

/// [`conv_valid`] with the kernel settings `k`, then ReLU when `relu` (fused into the GEMM on the CPU).
pub(crate) fn conv_valid_act(
    k_cfg: &KernelConfig,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let (n, cin, h, wd) = x.dims4()?;
    let (cout, wcin, k, k2) = w.dims4()?;
    if wcin != cin || k != k2 || k == 0 || k > h || k > wd || b.dims() != [cout] {
        return Err(candle_core::Error::Msg(format!(
            "conv_valid: input {:?}, kernel {:?} and bias {:?} do not fit",
            x.dims(),
            w.dims(),
            b.dims()
        ))
        .into());
    }
    let (ho, wo) = (h - k + 1, wd - k + 1);
    let w2 = w.reshape((cout, cin * k * k))?;
    if k_cfg.uses_kernels(&[x, w, b]) {
        let cols = x.contiguous()?.apply_op1(crate::im2col::Im2col { k })?;
        let y = k_cfg.linear(&cols, &w2, Some(b), relu)?; // [N·Ho·Wo, Co]
        return Ok(y
            .reshape((n, ho, wo, cout))?
            .permute((0, 3, 1, 2))?
            .contiguous()?);
    }
    let mut views = Vec::with_capacity(k * k);
    for ky in 0..k {
        for kx in 0..k {
            views.push(x.narrow(2, ky, ho)?.narrow(3, kx, wo)?);
        }
    }
    // [N, Ci, k*k, Ho, Wo] -> [N, Ci*k*k, Ho*Wo]: row `ci*k*k + ky*k + kx`, as `w`'s flattened layout.
    let cols = Tensor::stack(&views, 2)?.reshape((n, cin * k * k, ho * wo))?;
    let y = w2.broadcast_matmul(&cols)?.reshape((n, cout, ho, wo))?;
    let y = y.broadcast_add(&b.reshape((1, cout, 1, 1))?)?;
    Ok(if relu { y.relu()? } else { y })
}
