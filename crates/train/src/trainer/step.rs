//! [`Trainer::step`]: one optimizer step, micro-batches and the weight average included.

use super::{DROPOUT_SALT, PART_SALT, StepOutput, Trainer};
use crate::config::LossReduction;
use crate::loss::cross_entropy;
use crate::{Error, Result};
use augment::batch_seed;
use candle_core::backprop::GradStore;
use candle_core::{D, DType, Tensor};
use model::{Classifier, Mode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

impl Trainer<'_> {
    /// One optimizer step on a batch of normalized images `x [B, 3, 32, 32]` and labels `y [B]` (u32), on the
    /// model's device: the learning rate from the schedule, a training-mode forward (dropout masks seeded by the
    /// run's seed, the epoch and the batch), the loss (label smoothing, mean or sum), backward, the optimizer
    /// update and the weight average. The batch is the epoch's next one (its index goes up by one).
    pub fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<StepOutput> {
        self.ensure_average()?;
        let epoch = self.state.epoch;
        let batch = self.state.next_batch;
        let step = (epoch - 1) * self.plan.steps_per_epoch + batch;
        let lr = self.lr_at(step);
        self.optimizer.set_lr(lr);
        let model = self.model;
        let n = y.dim(0)?;
        let part = self.cfg.micro_batch_size.unwrap_or(n).clamp(1, n.max(1));
        let (mut loss_sum, mut correct, mut grads) = (0f64, 0u32, None::<GradStore>);
        for (k, start) in (0..n).step_by(part).enumerate() {
            let len = part.min(n - start);
            let (xp, yp) = if len == n {
                (x.clone(), y.clone())
            } else {
                (x.narrow(0, start, len)?, y.narrow(0, start, len)?)
            };
            // Part 0 draws the masks a whole-batch step draws; the others their own stream.
            let seed = batch_seed(self.cfg.seed ^ DROPOUT_SALT, epoch, batch)
                ^ (k as u64).wrapping_mul(PART_SALT);
            let mut drop_rng = ChaCha8Rng::seed_from_u64(seed);
            let logits = model.forward(&xp, Mode::Train(&mut drop_rng))?;
            let mean_loss = cross_entropy(&logits, &yp, self.cfg.label_smoothing)?;
            // The part's share of the batch's loss: mean over the batch, or sum.
            let loss = match self.cfg.loss_reduction {
                LossReduction::Mean if len == n => mean_loss.clone(),
                LossReduction::Mean => (&mean_loss * (len as f64 / n as f64))?,
                LossReduction::Sum => (&mean_loss * len as f64)?,
            };
            // Reading the loss synchronises the device.
            let loss_value = mean_loss.to_scalar::<f32>()?;
            if !loss_value.is_finite() {
                return Err(Error::NonFinite {
                    epoch,
                    batch,
                    value: loss_value,
                });
            }
            loss_sum += f64::from(loss_value) * len as f64;
            let g = loss.backward()?;
            grads = Some(match grads {
                None => g,
                Some(acc) => Self::add_grads(model, acc, &g)?,
            });
            correct += logits
                .argmax(D::Minus1)?
                .eq(&yp)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()?;
        }
        let loss_value = (loss_sum / n.max(1) as f64) as f32;
        if let Some(grads) = grads {
            self.optimizer.step(&grads)?;
        }
        if let Some(a) = self.average.as_mut() {
            a.after_step(model, step + 1, self.plan.total_steps)?;
        }
        self.state.loss_sum += f64::from(loss_value) * n as f64;
        self.state.correct += u64::from(correct);
        self.state.seen += n as u64;
        self.state.next_batch = batch + 1;
        Ok(StepOutput {
            loss: loss_value,
            correct,
            lr,
        })
    }

    /// Adds a micro-batch's gradients `g` to the sum so far (`acc`) for every trainable parameter of `model`.
    fn add_grads(model: &dyn Classifier, mut acc: GradStore, g: &GradStore) -> Result<GradStore> {
        for (_, var) in model.params().iter() {
            let t = var.as_tensor();
            if let Some(new) = g.get(t) {
                let sum = match acc.get(t) {
                    Some(old) => (old + new)?,
                    None => new.clone(),
                };
                acc.insert(t, sum);
            }
        }
        Ok(acc)
    }
}
