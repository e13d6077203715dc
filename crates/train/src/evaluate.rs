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

/// Evaluates `model` on every image of `set` in eval mode (no dropout). With `tta`, each image's probabilities
/// are the mean of those of the image and its mirror image.
pub fn evaluate(
    model: &dyn Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalize: Normalize,
    tta: bool,
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
    let flip_idx = Tensor::from_vec((0..32u32).rev().collect::<Vec<_>>(), 32, &device)?;
    let mut probs = Vec::with_capacity(set.len() * classes);
    let mut loss_sum = 0f64;
    let mut correct = 0u64;
    for batch in Loader::spawn(set.clone(), plan, 2) {
        let b = batch?;
        let x = b.images.to_device(&device)?;
        let labels = b.labels.to_device(&device)?;
        let logits = model.forward(&x, Mode::Eval)?.to_dtype(DType::F32)?;
        let (p, logp) = if tta {
            let flipped = model
                .forward(&x.index_select(&flip_idx, 3)?, Mode::Eval)?
                .to_dtype(DType::F32)?;
            let p = ((candle_nn::ops::softmax_last_dim(&logits)?
                + candle_nn::ops::softmax_last_dim(&flipped)?)?
                * 0.5)?;
            let logp = p.clamp(1e-30f32, 1f32)?.log()?;
            (p, logp)
        } else {
            (
                candle_nn::ops::softmax_last_dim(&logits)?,
                candle_nn::ops::log_softmax(&logits, D::Minus1)?,
            )
        };
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
