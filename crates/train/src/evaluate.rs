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
        let (probs, log_probs) = model::infer::probabilities_and_log(model, x, tta)?;
        Ok(BatchOutput {
            probs,
            log_probs,
            augmented: 0,
            plain_probs: None,
        })
    })?
    .0)
}

/// What [`evaluate_selective`] measures: the evaluation with selective TTA, how many images got the extra
/// views, and the accuracy of the plain view alone (from the same forward passes).
#[derive(Debug, Clone)]
pub struct SelectiveEvaluation {
    /// Loss, accuracy and predictions with selective TTA.
    pub evaluation: Evaluation,
    /// How many images got the extra views.
    pub augmented: usize,
    /// The plain view's accuracy (no TTA), in `[0, 1]`.
    pub plain_accuracy: f64,
}

/// [`evaluate`] with selective TTA ([`Selective`]: the extra views only for the images whose plain-view top
/// probability is below the threshold); also returns how many images got them and the plain view's accuracy.
pub fn evaluate_selective(
    model: &dyn Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalize: Normalize,
    selective: Selective,
) -> Result<SelectiveEvaluation> {
    let (evaluation, extra) = evaluate_with(model, set, batch_size, normalize, |x| {
        let o = model::infer::selective(model, x, selective)?;
        Ok(BatchOutput {
            probs: o.probs,
            log_probs: o.log_probs,
            augmented: o.augmented,
            plain_probs: Some(o.plain_probs),
        })
    })?;
    Ok(SelectiveEvaluation {
        evaluation,
        augmented: extra.augmented,
        plain_accuracy: extra.plain_correct as f64 / set.len().max(1) as f64,
    })
}

/// One batch's inference for [`evaluate_with`].
struct BatchOutput {
    probs: candle_core::Tensor,
    log_probs: candle_core::Tensor,
    /// Images that got extra views.
    augmented: usize,
    /// The plain view's probabilities, where they differ from `probs` (selective TTA).
    plain_probs: Option<candle_core::Tensor>,
}

/// The counts [`evaluate_with`] keeps beside the evaluation.
#[derive(Default)]
struct Extra {
    augmented: usize,
    plain_correct: u64,
}

/// How many rows of probabilities `p` have their top class equal to `labels`.
fn correct(p: &candle_core::Tensor, labels: &candle_core::Tensor) -> Result<u64> {
    Ok(u64::from(
        p.argmax(D::Minus1)?
            .eq(labels)?
            .to_dtype(DType::U32)?
            .sum_all()?
            .to_scalar::<u32>()?,
    ))
}

/// The loop of [`evaluate`] over any per-batch `(probabilities, log-probabilities, images augmented)`.
fn evaluate_with(
    model: &dyn Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalize: Normalize,
    infer: impl Fn(&candle_core::Tensor) -> Result<BatchOutput>,
) -> Result<(Evaluation, Extra)> {
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
    let mut right = 0u64;
    let mut extra = Extra::default();
    for batch in Loader::spawn(set.clone(), plan, 2) {
        let b = batch?;
        let x = b.images.to_device(&device)?;
        let labels = b.labels.to_device(&device)?;
        let out = infer(&x)?;
        extra.augmented += out.augmented;
        let nll = out
            .log_probs
            .gather(&labels.unsqueeze(1)?, 1)?
            .neg()?
            .sum_all()?;
        loss_sum += f64::from(nll.to_scalar::<f32>()?);
        right += correct(&out.probs, &labels)?;
        if let Some(plain) = &out.plain_probs {
            extra.plain_correct += correct(plain, &labels)?;
        }
        probs.extend(
            out.probs
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
    }
    let n = set.len().max(1) as f64;
    let predictions = Predictions::new(classes, set.labels().to_vec(), probs)?;
    Ok((
        Evaluation {
            loss: loss_sum / n,
            accuracy: right as f64 / n,
            predictions,
        },
        extra,
    ))
}
