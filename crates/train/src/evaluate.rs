//! Evaluation of a model on an image set: mean loss, accuracy and every image's class probabilities.

use crate::Result;
use augment::{Augment, EpochPlan, Loader, Normalize};
use candle_core::{D, DType, Device, Tensor};
use cifar_types::{ImageSet, Predictions};
use model::{Classifier, Mode};
use std::sync::Arc;

/// What [`evaluate`] measures.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean cross-entropy (with TTA: of the averaged probabilities).
    pub loss: f64,
    pub accuracy: f64,
    pub predictions: Predictions,
}

/// Test-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tta {
    /// The image alone.
    None,
    /// The mean of the probabilities of the image and its mirror image.
    Mirror,
    /// airbench's level 2: 6 views, logits averaged with weights 1/4 for the image and its mirror image and 1/8
    /// for each of the mirrored pair of each 1-pixel reflect-shifted view (up-left and down-right).
    MirrorShift,
}

impl Tta {
    /// From the config's `tta` and `tta_shift`.
    pub fn from_flags(tta: bool, shift: bool) -> Self {
        match (tta, shift) {
            (false, _) => Tta::None,
            (true, false) => Tta::Mirror,
            (true, true) => Tta::MirrorShift,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Mirror => "mirror",
            Tta::MirrorShift => "mirror+shift",
        }
    }
}

/// Evaluates `model` on every image of `set` in eval mode (no dropout, BatchNorm on running statistics), with
/// test-time augmentation `tta`.
pub fn evaluate(
    model: &dyn Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalize: Normalize,
    tta: Tta,
) -> Result<Evaluation> {
    let classes = set.num_classes();
    let plan = EpochPlan {
        order: (0..set.len()).collect(),
        batch_size: batch_size.max(1),
        augment: Augment {
            normalize,
            ..Augment::none()
        },
        seed: 0,
        epoch: 0,
        start_batch: 0,
    };
    let device = model.device().clone();
    let mut probs = Vec::with_capacity(set.len() * classes);
    let mut loss_sum = 0f64;
    let mut correct = 0u64;
    for batch in Loader::spawn(set.clone(), plan, 2) {
        let b = batch?;
        let x = b.images.to_device(&device)?;
        let labels = b.labels.to_device(&device)?;
        let (p, logp) = probs_and_log_probs(model, &x, tta)?;
        let nll = logp.gather(&labels.unsqueeze(1)?, 1)?.neg()?.sum_all()?;
        loss_sum += f64::from(nll.to_scalar::<f32>()?);
        correct += u64::from(
            p.argmax(D::Minus1)?
                .eq(&labels)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()?,
        );
        probs.extend(p.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?);
    }
    let n = set.len().max(1) as f64;
    let predictions = Predictions::new(classes, set.labels().to_vec(), probs)?;
    Ok(Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        predictions,
    })
}

/// Class probabilities `[B, classes]` of a batch of normalized images `[B, 3, 32, 32]` (on the model's device) in
/// eval mode, with the views and averaging of `tta` — exactly what [`evaluate`] computes per batch.
pub fn probabilities(model: &dyn Classifier, x: &Tensor, tta: Tta) -> Result<Tensor> {
    Ok(probs_and_log_probs(model, x, tta)?.0)
}

/// The probabilities and log-probabilities of [`probabilities`].
fn probs_and_log_probs(model: &dyn Classifier, x: &Tensor, tta: Tta) -> Result<(Tensor, Tensor)> {
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
