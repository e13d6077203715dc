//! Evaluation of a model on an image set: mean loss, accuracy and every image's class probabilities.

use crate::Result;
use augment::{Augment, EpochPlan, Loader, Normalize};
use candle_core::{D, DType, Device};
use cifar_types::{ImageSet, Predictions};
use model::Classifier;
pub use model::infer::{Selective, Tta};
use std::sync::Arc;

/// What [`evaluate`] measures.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean cross-entropy (with TTA: of the averaged probabilities).
    pub loss: f64,
    /// The fraction of images whose most probable class is their label, in `[0, 1]`.
    pub accuracy: f64,
    /// Every image's class probabilities (with TTA) and label, in the set's order.
    pub predictions: Predictions,
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
    Ok(evaluate_with(model, set, batch_size, normalize, |x| {
        let (p, logp) = model::infer::probabilities_and_log(model, x, tta)?;
        Ok((p, logp, 0))
    })?
    .0)
}

/// [`evaluate`] with selective TTA ([`Selective`]: the extra views only for the images whose plain-view top
/// probability is below the threshold); also returns how many images got them.
pub fn evaluate_selective(
    model: &dyn Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalize: Normalize,
    selective: Selective,
) -> Result<(Evaluation, usize)> {
    evaluate_with(model, set, batch_size, normalize, |x| {
        let o = model::infer::selective(model, x, selective)?;
        Ok((o.probs, o.log_probs, o.augmented))
    })
}

/// The loop of [`evaluate`] over any per-batch `(probabilities, log-probabilities, images augmented)`.
fn evaluate_with(
    model: &dyn Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalize: Normalize,
    infer: impl Fn(&candle_core::Tensor) -> Result<(candle_core::Tensor, candle_core::Tensor, usize)>,
) -> Result<(Evaluation, usize)> {
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
    let mut augmented = 0usize;
    for batch in Loader::spawn(set.clone(), plan, 2) {
        let b = batch?;
        let x = b.images.to_device(&device)?;
        let labels = b.labels.to_device(&device)?;
        let (p, logp, aug) = infer(&x)?;
        augmented += aug;
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
    Ok((
        Evaluation {
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            predictions,
        },
        augmented,
    ))
}
