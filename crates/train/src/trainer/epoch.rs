//! A run's course: [`Trainer::start`], [`Trainer::epoch`], [`Trainer::finish`] and [`Trainer::fit`].

use super::{
    Data, EpochEndKind, ORDER_SALT, Outcome, Plan, Trainer, check_classes, checkpoint_write_failed,
    init_from_data, save_best,
};
use crate::averaging::{Averaging, WeightAverage};
use crate::callback::{Control, EpochEnd, RunStart, StepEnd};
use crate::evaluate::{Tta, evaluate};
use crate::state::{load_last, save_last};
use crate::{Error, Result, RunDir};
use augment::{EpochPlan, Loader, batch_seed};
use cifar_types::{EpochMetrics, TestReport};
use model::checkpoint;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Instant;

impl<'m> Trainer<'m> {
    /// Prepares the run: plans the steps, creates the run directory (or, resuming, loads `last.safetensors`),
    /// runs the model's data-dependent initialisation, and tells the callbacks. [`Trainer::epoch`] calls it when
    /// it has not run yet.
    pub fn start(&mut self, data: &Data) -> Result<()> {
        if self.started {
            return Ok(());
        }
        check_classes(self.model, data)?;
        self.class_names = data.train.class_names().to_vec();
        self.plan(data.train.len())?;
        if self.resume {
            self.ensure_average()?;
            let dir = self.dir.as_ref().ok_or_else(|| {
                Error::Config("resuming needs the run directory (TrainerBuilder::run_dir)".into())
            })?;
            self.state = load_last(
                dir,
                self.model,
                self.optimizer.as_mut(),
                self.average.as_mut(),
                self.model.device(),
            )?;
        } else {
            if let Some(dir) = &self.dir {
                dir.create(&self.cfg)?;
            }
            init_from_data(self.model, &data.train, &self.cfg)?;
            // The average starts from the initialised weights (airbench's whitening filters included).
            self.ensure_average()?;
        }
        self.started = true;
        self.sets = Some((Arc::new(data.train.clone()), Arc::new(data.val.clone())));
        let start = RunStart {
            model: self.model.name(),
            parameters: self.model.params().count(),
            device: &self.device,
            precision: self.model.kernels().precision(),
            optimizer: self.optimizer.name(),
            train_images: data.train.len(),
            val_images: data.val.len(),
            test_images: data.test.len(),
            total_steps: self.plan.total_steps,
            epochs: self.plan.epochs,
            preset: &self.cfg.preset,
            dir: self.dir.as_ref().map(|d| d.path()),
            resumed_at: self
                .resume
                .then_some((self.state.epoch, self.state.next_batch)),
        };
        for cb in &mut self.callbacks {
            cb.on_start(&start);
        }
        Ok(())
    }

    /// Whether the run has no epoch left to train.
    pub fn is_finished(&self) -> bool {
        self.started && (self.state.finished || self.state.epoch > self.plan.epochs)
    }

    /// Trains the next epoch (or the rest of one, when resuming), validates, applies the policies, writes
    /// `last.safetensors` and the history, and tells the callbacks.
    pub fn epoch(&mut self, data: &Data) -> Result<EpochEndKind> {
        self.start(data)?;
        if self.is_finished() {
            return Ok(EpochEndKind::Finished);
        }
        let Some((train, val)) = self.sets.clone() else {
            return Err(Error::Config("the trainer did not start".into()));
        };
        let Plan {
            steps_per_epoch,
            total_steps,
            epochs,
        } = self.plan;
        let epoch = self.state.epoch;
        self.model.start_epoch(epoch);
        let t_epoch = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(batch_seed(
            self.cfg.seed ^ ORDER_SALT,
            epoch,
            0,
        )));
        let first_step = (epoch - 1) * steps_per_epoch;
        let steps_now = steps_per_epoch.min(total_steps - first_step);
        order.truncate((steps_now * self.cfg.batch_size).min(order.len()));
        let plan = EpochPlan {
            order,
            batch_size: self.cfg.batch_size,
            augment: self.cfg.augment,
            seed: self.cfg.seed,
            epoch,
            start_batch: self.state.next_batch,
        };
        for cb in &mut self.callbacks {
            cb.on_epoch_start(epoch, epochs, steps_now, self.state.next_batch);
        }
        let mut lr = self.optimizer.lr();
        let mut interrupted = false;
        let device = self.model.device().clone();
        for batch in Loader::spawn(train.clone(), plan, 2) {
            let b = batch?;
            // The loader starts at `next_batch`, so its indices and the trainer's agree.
            self.state.next_batch = b.index;
            let x = b.images.to_device(&device)?;
            let y = b.labels.to_device(&device)?;
            let out = self.step(&x, &y)?;
            lr = out.lr;
            let end = StepEnd {
                epoch,
                batch: b.index,
                batches: steps_now,
                step: first_step + b.index,
                lr,
                loss: out.loss,
                epoch_loss: self.state.loss_sum / self.state.seen.max(1) as f64,
                epoch_accuracy: self.state.correct as f64 / self.state.seen.max(1) as f64,
            };
            let mut stop = self.stop.is_requested();
            for cb in &mut self.callbacks {
                stop |= cb.on_step(&end) == Control::Stop;
            }
            if stop {
                interrupted = true;
                break;
            }
        }
        let train_secs = t_epoch.elapsed().as_secs_f64();
        self.state.train_secs += train_secs;
        if interrupted {
            self.state.epoch_secs += train_secs;
            self.save_last(epoch)?;
            return Ok(EpochEndKind::Interrupted);
        }
        let last_epoch = epoch == epochs;
        if last_epoch && let Some(a) = self.average.as_mut() {
            a.finish(self.model)?;
        }
        let (val_loss, val_acc) = if val.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            let v = evaluate(
                self.model,
                &val,
                self.cfg.eval_batch_size,
                self.cfg.augment.normalize,
                self.cfg.tta,
            )?;
            (v.loss, v.accuracy)
        };
        self.state.epoch_secs += t_epoch.elapsed().as_secs_f64();
        let st = &self.state;
        let metrics = EpochMetrics {
            epoch,
            train_loss: st.loss_sum / st.seen.max(1) as f64,
            train_acc: st.correct as f64 / st.seen.max(1) as f64,
            val_loss,
            val_acc,
            lr,
            epoch_secs: st.epoch_secs,
            train_images_per_sec: st.seen as f64 / st.train_secs.max(1e-9),
        };
        let mut record = self.state.record();
        let is_best = self.checkpoint.is_best(&metrics, &record);
        record.observe_val_loss(&metrics);
        if is_best {
            if metrics.val_acc.is_finite() {
                record.best_val_acc = metrics.val_acc;
            }
            record.best_epoch = epoch;
        }
        let stop_early = self.early_stopping.should_stop(&metrics, &record);
        self.state.set_record(&record);
        if is_best && let Some(dir) = &self.dir {
            let path = dir.file(RunDir::BEST);
            save_best(self.model, &path, &self.cfg, &self.class_names, &metrics)
                .map_err(|e| checkpoint_write_failed(&path, epoch, e))?;
            for cb in &mut self.callbacks {
                cb.on_checkpoint(&path, epoch);
            }
        }
        let end = EpochEnd {
            metrics: &metrics,
            epochs,
            saved_best: is_best && self.dir.is_some(),
            stopping_early: stop_early,
        };
        let mut stop = stop_early;
        for cb in &mut self.callbacks {
            stop |= cb.on_epoch_end(&end) == Control::Stop;
        }
        self.state.history.epochs.push(metrics);
        self.state.epoch += 1;
        self.state.next_batch = 0;
        self.state.loss_sum = 0.0;
        self.state.correct = 0;
        self.state.seen = 0;
        self.state.epoch_secs = 0.0;
        self.state.train_secs = 0.0;
        if stop {
            self.state.stopped_early = true;
            self.state.finished = true;
        }
        if self.state.epoch > epochs {
            self.state.finished = true;
        }
        self.save_last(epoch)?;
        if let Some(dir) = &self.dir {
            dir.write_history(&self.state.history)?;
        }
        Ok(if self.state.finished {
            EpochEndKind::Finished
        } else {
            EpochEndKind::Continue
        })
    }

    /// Makes the weight average from the model's current weights, once.
    pub(super) fn ensure_average(&mut self) -> Result<()> {
        if self.average.is_none() && self.averaging != Averaging::None {
            self.average = WeightAverage::new(self.averaging, self.model)?;
        }
        Ok(())
    }

    fn save_last(&mut self, epoch: usize) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let path = dir.file(RunDir::LAST);
        save_last(
            dir,
            self.model,
            self.optimizer.as_ref(),
            self.average.as_ref(),
            &self.state,
            &self.class_names,
        )
        .map_err(|e| checkpoint_write_failed(&path, epoch, e))?;
        for cb in &mut self.callbacks {
            cb.on_checkpoint(&path, epoch);
        }
        Ok(())
    }

    /// Ends the run: loads the run's model (`best.safetensors`), evaluates it on the test set with the config's
    /// TTA (and without, when TTA is on), writes `test_report.json` and `predictions.json`, and tells the
    /// callbacks. Call it after the last epoch, or after an interrupt (then it only reports).
    pub fn finish(mut self, data: &Data, interrupted: bool) -> Result<Outcome> {
        let tta = self.cfg.tta;
        let report = if interrupted || data.test.is_empty() {
            None
        } else {
            if let Some(dir) = &self.dir {
                checkpoint::load_into(self.model, &dir.file(RunDir::BEST))?;
            }
            let test = Arc::new(data.test.clone());
            // Selective TTA's plain forward gives the accuracy without TTA too; full TTA needs a pass of its own.
            let (e, plain_accuracy) = match self.cfg.tta_threshold {
                Some(threshold) if tta != Tta::None => {
                    let s = crate::evaluate::evaluate_selective(
                        self.model,
                        &test,
                        self.cfg.eval_batch_size,
                        self.cfg.augment.normalize,
                        crate::evaluate::Selective { tta, threshold },
                    )?;
                    tracing::info!(
                        "selective TTA: {tta} for {} of {} test images (plain-view confidence below {threshold})",
                        s.augmented,
                        test.len()
                    );
                    (s.evaluation, Some(s.plain_accuracy))
                }
                _ => (
                    evaluate(
                        self.model,
                        &test,
                        self.cfg.eval_batch_size,
                        self.cfg.augment.normalize,
                        tta,
                    )?,
                    None,
                ),
            };
            let mut report =
                TestReport::from_predictions(&e.predictions, e.loss, test.class_names());
            report.tta = Some(tta.name().to_string());
            if let Some(a) = plain_accuracy {
                report.accuracy_without_tta = Some(a);
            } else if tta != Tta::None {
                let plain = evaluate(
                    self.model,
                    &test,
                    self.cfg.eval_batch_size,
                    self.cfg.augment.normalize,
                    Tta::None,
                )?;
                report.accuracy_without_tta = Some(plain.accuracy);
            }
            if let Some(dir) = &self.dir {
                dir.write_test(&report, &e.predictions)?;
            }
            Some(report)
        };
        let record = self.state.record();
        let outcome = Outcome {
            history: self.state.history.clone(),
            test_report: report,
            interrupted,
            stopped_early: self.state.stopped_early,
            best_epoch: record.best_epoch,
            best_val_acc: if record.best_val_acc.is_finite() {
                record.best_val_acc
            } else {
                f64::NAN
            },
            device: self.device.clone(),
            tta,
        };
        for cb in &mut self.callbacks {
            cb.on_finish(&outcome);
        }
        Ok(outcome)
    }

    /// Runs the whole training: epochs until the plan, the early-stopping policy, a callback or the stop flag
    /// ends it, then [`Trainer::finish`].
    pub fn fit(mut self, data: &Data) -> Result<Outcome> {
        self.start(data)?;
        loop {
            match self.epoch(data)? {
                EpochEndKind::Continue => {}
                EpochEndKind::Finished => return self.finish(data, false),
                EpochEndKind::Interrupted => return self.finish(data, true),
            }
        }
    }
}
