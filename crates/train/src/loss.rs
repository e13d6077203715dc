//! Cross-entropy with optional label smoothing.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! let logits = Tensor::new(&[[2.0f32, 0.0], [0.0, 2.0]], &Device::Cpu).unwrap();
//! let labels = Tensor::new(&[0u32, 0], &Device::Cpu).unwrap();
//! let l = cifar10_train::loss::cross_entropy(&logits, &labels, 0.0).unwrap().to_scalar::<f32>().unwrap();
//! assert!((l - 1.1269).abs() < 1e-3);
//! ```

use crate::Result;
use candle_core::{D, Tensor};

/// Mean cross-entropy of `logits [B, C]` against `labels [B]` (u32). With `smoothing` ε > 0 the target is
/// `(1-ε)·onehot + ε/C` (PyTorch's `label_smoothing`).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp
        .gather(&labels.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?
        .mean_all()?;
    if smoothing <= 0.0 {
        return Ok(nll);
    }
    let uniform = logp.mean(D::Minus1)?.neg()?.mean_all()?;
    Ok(((nll * (1.0 - smoothing))? + (uniform * smoothing)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_hand_computation() {
        let logits = Tensor::new(&[[1.0f32, 2.0, 3.0]], &Device::Cpu).unwrap();
        let labels = Tensor::new(&[2u32], &Device::Cpu).unwrap();
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        let plain = cross_entropy(&logits, &labels, 0.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((f64::from(plain) - (lse - 3.0)).abs() < 1e-5);
        let eps = 0.1;
        let smooth = cross_entropy(&logits, &labels, eps)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (1.0 - eps) * (lse - 3.0) + eps * (3.0 * lse - 6.0) / 3.0;
        assert!(
            (f64::from(smooth) - want).abs() < 1e-5,
            "{smooth} vs {want}"
        );
    }
}
