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
            .map(|_| if rng.random::<f32>() < keep { scale } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
}

/// Conv 3x3 (stride 1, pad 1) + bias -> ReLU -> 2x2 max-pool, NCHW.
pub fn conv_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let cout = w.dim(0)?;
    let h = x.conv2d(w, 1, 1, 1, 1)?;
    let h = h.broadcast_add(&b.reshape((1, cout, 1, 1))?)?.relu()?;
    Ok(h.max_pool2d(2)?)
}

/// `x · wᵀ + b`, optionally followed by ReLU; `w` is `[out, in]`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    let h = x.matmul(&w.t()?)?.broadcast_add(b)?;
    Ok(if relu { h.relu()? } else { h })
}

/// Softmax probabilities of logits `[B, C]`, as f32.
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?)?)
}
