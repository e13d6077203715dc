//! Layer building blocks shared by the models.

use crate::Result;
use candle_core::{DType, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Inverted dropout with masks drawn from a seeded RNG: in training each element is zeroed with probability `p`
/// and the rest scaled by `1/(1-p)`; in evaluation it is the identity.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
}

impl Dropout {
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
pub fn conv_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(cpu_ops::conv3x3_relu_pool(x, w, b)?)
}

/// `x · wᵀ + b`, optionally followed by ReLU; `w` is `[out, in]`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    Ok(cpu_ops::linear(x, w, Some(b), relu)?)
}

/// Softmax probabilities of logits `[B, C]`, as f32.
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax_last_dim(
        &logits.to_dtype(DType::F32)?,
    )?)
}
