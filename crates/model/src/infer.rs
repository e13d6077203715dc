//! Inference: class probabilities of a batch of normalized images in eval mode, with test-time augmentation.
//! Here, below training, so that `predict` and `serve` need no trainer; `train::evaluate` runs the same code
//! over a whole image set.

use crate::{Classifier, Mode, Result};
use candle_core::{D, DType, Tensor};

/// Test-time augmentation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Tta {
    /// The image alone.
    #[default]
    #[serde(rename = "none")]
    None,
    /// The mean of the probabilities of the image and its mirror image.
    #[serde(rename = "mirror")]
    Mirror,
    /// airbench's level 2: 6 views, logits averaged with weights 1/4 for the image and its mirror image and 1/8
    /// for each of the mirrored pair of each 1-pixel reflect-shifted view (up-left and down-right).
    #[serde(rename = "mirror+shift")]
    MirrorShift,
}

impl Tta {
    /// Every TTA, by name.
    pub const ALL: [Tta; 3] = [Tta::None, Tta::Mirror, Tta::MirrorShift];

    /// The name used in settings, files and reports: `none`, `mirror` or `mirror+shift`.
    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Mirror => "mirror",
            Tta::MirrorShift => "mirror+shift",
        }
    }
}

impl std::fmt::Display for Tta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Tta {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Tta::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("expected none, mirror or mirror+shift, found {s:?}"))
    }
}

/// Class probabilities `[B, classes]` of a batch of normalized images `[B, 3, 32, 32]` (on the model's device) in
/// eval mode, with the views and averaging of `tta` — exactly what `train::evaluate` computes per batch.
pub fn probabilities(model: &dyn Classifier, x: &Tensor, tta: Tta) -> Result<Tensor> {
    Ok(probabilities_and_log(model, x, tta)?.0)
}

/// The probabilities and log-probabilities (for a loss) of [`probabilities`].
pub fn probabilities_and_log(
    model: &dyn Classifier,
    x: &Tensor,
    tta: Tta,
) -> Result<(Tensor, Tensor)> {
    let device = x.device();
    let flip_idx = Tensor::from_vec((0..32u32).rev().collect::<Vec<_>>(), 32, device)?;
    // Detached at once, so each forward's intermediate tensors are freed before the next view runs.
    let logits_of = |x: &Tensor| -> Result<Tensor> {
        Ok(model
            .forward(x, Mode::Eval)?
            .detach()
            .to_dtype(DType::F32)?)
    };
    let mirror = |x: &Tensor| -> Result<Tensor> {
        Ok(((logits_of(x)? + logits_of(&x.index_select(&flip_idx, 3)?)?)? * 0.5)?)
    };
    Ok(match tta {
        Tta::MirrorShift => {
            // Reflect padding by 1 then a 32-wide window at offset 0 (up/left) or 2 (down/right).
            let up: Vec<u32> = std::iter::once(1).chain(0..31).collect();
            let down: Vec<u32> = (1..32).chain(std::iter::once(30)).collect();
            let up = Tensor::from_vec(up, 32, device)?;
            let down = Tensor::from_vec(down, 32, device)?;
            let a = x.index_select(&up, 2)?.index_select(&up, 3)?;
            let b = x.index_select(&down, 2)?.index_select(&down, 3)?;
            let shifted = ((mirror(&a)? + mirror(&b)?)? * 0.5)?;
            let logits = ((mirror(x)? + shifted)? * 0.5)?;
            (
                candle_nn::ops::softmax_last_dim(&logits)?,
                candle_nn::ops::log_softmax(&logits, D::Minus1)?,
            )
        }
        Tta::Mirror => {
            let logits = logits_of(x)?;
            let flipped = logits_of(&x.index_select(&flip_idx, 3)?)?;
            let p = ((candle_nn::ops::softmax_last_dim(&logits)?
                + candle_nn::ops::softmax_last_dim(&flipped)?)?
                * 0.5)?;
            let logp = p.clamp(1e-30f32, 1f32)?.log()?;
            (p, logp)
        }
        Tta::None => {
            let logits = logits_of(x)?;
            (
                candle_nn::ops::softmax_last_dim(&logits)?,
                candle_nn::ops::log_softmax(&logits, D::Minus1)?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tta_names_round_trip_in_text_and_json() {
        for t in Tta::ALL {
            assert_eq!(t.name().parse::<Tta>(), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.name()));
            assert_eq!(serde_json::from_str::<Tta>(&json).unwrap(), t);
        }
        assert!("flip".parse::<Tta>().is_err());
        assert_eq!(Tta::default(), Tta::None);
    }
}
