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
    with_plain(model, x, tta, None)
}

/// Selective test-time augmentation (hiverge/cifar10-speedrun): the plain view of every image, and the views of
/// `tta` only for the images whose plain-view top probability is below `threshold` (the others keep their
/// plain-view probabilities). `threshold` 0 is the plain view alone, above 1 is `tta` for every image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Selective {
    /// The views for the uncertain images.
    pub tta: Tta,
    /// The plain view's top probability below which an image gets `tta`'s views.
    pub threshold: f32,
}

/// What [`selective`] computed for a batch.
#[derive(Debug, Clone)]
pub struct SelectiveOutput {
    /// Class probabilities `[B, classes]`.
    pub probs: Tensor,
    /// Their logarithms (for a loss).
    pub log_probs: Tensor,
    /// How many of the batch's images got the extra views.
    pub augmented: usize,
    /// The plain view's class probabilities `[B, classes]` (every image's, before the extra views): the
    /// accuracy without TTA at no extra forward.
    pub plain_probs: Tensor,
}

/// [`probabilities_and_log`] with [`Selective`] TTA: one plain forward of the batch, then `s.tta`'s views of the
/// images below the threshold (their plain view is reused, not recomputed).
pub fn selective(model: &dyn Classifier, x: &Tensor, s: Selective) -> Result<SelectiveOutput> {
    let plain = model
        .forward(x, Mode::Eval)?
        .detach()
        .to_dtype(DType::F32)?;
    let probs = candle_nn::ops::softmax_last_dim(&plain)?;
    let log_probs = candle_nn::ops::log_softmax(&plain, D::Minus1)?;
    let conf = probs.max(D::Minus1)?.to_vec1::<f32>()?;
    let picked: Vec<u32> = (0..conf.len() as u32)
        .filter(|&i| conf[i as usize] < s.threshold)
        .collect();
    if picked.is_empty() || s.tta == Tta::None {
        return Ok(SelectiveOutput {
            plain_probs: probs.clone(),
            probs,
            log_probs,
            augmented: 0,
        });
    }
    let idx = Tensor::from_vec(picked.clone(), picked.len(), x.device())?;
    let (sub_p, sub_logp) = with_plain(
        model,
        &x.index_select(&idx, 0)?,
        s.tta,
        Some(plain.index_select(&idx, 0)?),
    )?;
    let (b, classes) = probs.dims2()?;
    let mut p = probs
        .to_device(&candle_core::Device::Cpu)?
        .to_vec2::<f32>()?;
    let mut lp = log_probs
        .to_device(&candle_core::Device::Cpu)?
        .to_vec2::<f32>()?;
    let sub_p = sub_p
        .to_device(&candle_core::Device::Cpu)?
        .to_vec2::<f32>()?;
    let sub_lp = sub_logp
        .to_device(&candle_core::Device::Cpu)?
        .to_vec2::<f32>()?;
    for (k, &i) in picked.iter().enumerate() {
        p[i as usize].clone_from(&sub_p[k]);
        lp[i as usize].clone_from(&sub_lp[k]);
    }
    let flat = |rows: Vec<Vec<f32>>| -> Result<Tensor> {
        Ok(Tensor::from_vec(rows.concat(), (b, classes), x.device())?)
    };
    Ok(SelectiveOutput {
        probs: flat(p)?,
        log_probs: flat(lp)?,
        augmented: picked.len(),
        plain_probs: probs,
    })
}

/// [`probabilities_and_log`], reusing the plain view's logits when the caller has them.
fn with_plain(
    model: &dyn Classifier,
    x: &Tensor,
    tta: Tta,
    plain: Option<Tensor>,
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
    let plain_of = |x: &Tensor| -> Result<Tensor> {
        match &plain {
            Some(p) => Ok(p.clone()),
            None => logits_of(x),
        }
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
            let centre = ((plain_of(x)? + logits_of(&x.index_select(&flip_idx, 3)?)?)? * 0.5)?;
            let logits = ((centre + shifted)? * 0.5)?;
            (
                candle_nn::ops::softmax_last_dim(&logits)?,
                candle_nn::ops::log_softmax(&logits, D::Minus1)?,
            )
        }
        Tta::Mirror => {
            let logits = plain_of(x)?;
            let flipped = logits_of(&x.index_select(&flip_idx, 3)?)?;
            let p = ((candle_nn::ops::softmax_last_dim(&logits)?
                + candle_nn::ops::softmax_last_dim(&flipped)?)?
                * 0.5)?;
            let logp = p.clamp(1e-30f32, 1f32)?.log()?;
            (p, logp)
        }
        Tta::None => {
            let logits = plain_of(x)?;
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

    /// Selective TTA: threshold 0 is the plain view, above 1 the full TTA, and in between each image gets one or
    /// the other, the count reported.
    #[test]
    fn selective_picks_plain_or_full_per_image() {
        use candle_core::Device;
        let net = crate::Mlp::new(&Device::Cpu, 3, 10).unwrap();
        let x = Tensor::randn(0f32, 1.0, (6, 3, 32, 32), &Device::Cpu).unwrap();
        let rows = |t: &Tensor| t.to_vec2::<f32>().unwrap();
        let plain = rows(&probabilities(&net, &x, Tta::None).unwrap());
        let full = rows(&probabilities(&net, &x, Tta::MirrorShift).unwrap());
        let sel = |threshold| {
            selective(
                &net,
                &x,
                Selective {
                    tta: Tta::MirrorShift,
                    threshold,
                },
            )
            .unwrap()
        };
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let none = sel(0.0);
        assert_eq!(none.augmented, 0);
        assert!(
            rows(&none.probs)
                .iter()
                .zip(&plain)
                .all(|(a, b)| close(a, b))
        );
        let all = sel(1.5);
        assert_eq!(all.augmented, 6);
        assert!(rows(&all.probs).iter().zip(&full).all(|(a, b)| close(a, b)));
        // The plain view's probabilities come back whatever the threshold.
        for s in [&none, &all] {
            let p = rows(&s.plain_probs);
            assert!(p.iter().zip(&plain).all(|(a, b)| close(a, b)));
        }
        let conf: Vec<f32> = plain
            .iter()
            .map(|r| r.iter().cloned().fold(0.0, f32::max))
            .collect();
        let mut sorted = conf.clone();
        sorted.sort_by(f32::total_cmp);
        let mid = (sorted[2] + sorted[3]) / 2.0;
        let some = sel(mid);
        assert_eq!(some.augmented, 3);
        let got = rows(&some.probs);
        for i in 0..6 {
            let want = if conf[i] < mid { &full[i] } else { &plain[i] };
            assert!(close(&got[i], want), "image {i}");
        }
        let logp = rows(&some.log_probs);
        assert!(
            got.iter()
                .flatten()
                .zip(logp.iter().flatten())
                .all(|(p, l)| (p.ln() - l).abs() < 1e-4)
        );
    }

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
