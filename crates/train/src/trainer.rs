//! The trainer: a [`Trainer`] built by [`TrainerBuilder`] from a model, a [`TrainConfig`] and the pieces a user
//! may replace (optimizer, learning-rate schedule, weight averaging, checkpoint and early-stopping policies,
//! callbacks), with a [`Trainer::step`], a [`Trainer::epoch`] and a [`Trainer::finish`] (the benchmark calls the
//! same step). [`run`] and [`run_model`] are thin wrappers for the common case.

use crate::averaging::{Averaging, WeightAverage};
use crate::callback::{Callback, Control, EpochEnd, RunStart, StepEnd};
use crate::config::LossReduction;
use crate::evaluate::{Tta, evaluate};
use crate::loss::cross_entropy;
use crate::optim::Optimizer;
use crate::policies::{
    BestValidationAccuracy, CheckpointPolicy, EarlyStoppingPolicy, Record, ValLossPatience,
};
use crate::run::build_optimizer;
use crate::schedule::{ConfigSchedule, LrSchedule};
use crate::state::{TrainState, load_last, save_last};
use crate::{Error, Result, RunDir, TrainConfig};
use augment::{EpochPlan, Loader, batch_seed, batch_to_tensor};
use candle_core::backprop::GradStore;
use candle_core::{D, DType, Tensor};
use cifar_types::{EpochMetrics, ImageSet, TestReport};
use model::{Classifier, Mode, checkpoint};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

const ORDER_SALT: u64 = 0x6f72_6465_725f_7368; // "order_sh"
const DROPOUT_SALT: u64 = 0x6472_6f70_6f75_7421; // "dropout!"
const PART_SALT: u64 = 0x7061_7274_5f6d_6173; // "part_mas"

/// A cooperative stop request (e.g. from a Ctrl-C handler the application installs): training finishes the
/// current batch, writes `last`, and returns.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Asks the run to stop after the current batch.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The images of a run. `val` may be empty (no validation: the final weights are the run's model).
#[derive(Debug, Clone)]
pub struct Data {
    /// Training images.
    pub train: ImageSet,
    /// Validation images (may be empty).
    pub val: ImageSet,
    /// Test images (may be empty: no test report).
    pub test: ImageSet,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every finished epoch's metrics.
    pub history: cifar_types::History,
    /// None when the run was interrupted before the end (or had no test images).
    pub test_report: Option<TestReport>,
    /// Stopped by the stop flag or a callback mid-epoch: resumable.
    pub interrupted: bool,
    /// Ended by the early-stopping policy (or a callback at an epoch's end).
    pub stopped_early: bool,
    /// The epoch whose weights are the run's model.
    pub best_epoch: usize,
    /// Its validation accuracy (NaN without validation).
    pub best_val_acc: f64,
    /// The device, as described by the caller.
    pub device: String,
    /// The TTA of the test report.
    pub tta: Tta,
}

/// The step plan of a run over a training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// Optimizer steps of the run.
    pub total_steps: usize,
    /// Epochs of the run (the last may be partial).
    pub epochs: usize,
}

/// What one [`Trainer::step`] measured.
#[derive(Debug, Clone, Copy)]
pub struct StepOutput {
    /// The batch's mean loss (label smoothing included).
    pub loss: f32,
    /// Correct top-1 predictions in the batch.
    pub correct: u32,
    /// The learning rate used.
    pub lr: f64,
}

/// Builds a [`Trainer`]: the model and the config are required, every other piece defaults to what the config
/// describes and may be replaced.
///
/// ```no_run
/// # fn main() -> cifar10_train::Result<()> {
/// use cifar10_train::{TrainConfig, TrainerBuilder, optim::{Sgd, SgdConfig, ParamGroup}};
/// let net = model::CnnDnn::new(&candle_core::Device::Cpu, 1, 10)?;
/// let cfg = TrainConfig { epochs: 2, ..TrainConfig::default() };
/// let params = model::Classifier::params(&net).iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
/// let sgd = Sgd::new(vec![ParamGroup { params, lr_scale: 1.0, weight_decay: 0.0 }],
///                    SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true })?;
/// let trainer = TrainerBuilder::new(&net, cfg)
///     .run_dir("runs/mine")
///     .optimizer(Box::new(sgd))
///     .schedule(|step: usize, total: usize| 0.05 * (1.0 - step as f64 / total as f64))
///     .build()?;
/// # let data: cifar10_train::Data = todo!();
/// let outcome = trainer.fit(&data)?;
/// # Ok(()) }
/// ```
pub struct TrainerBuilder<'m> {
    model: &'m dyn Classifier,
    cfg: TrainConfig,
    dir: Option<PathBuf>,
    resume: bool,
    optimizer: Option<Box<dyn Optimizer>>,
    schedule: Option<Box<dyn LrSchedule>>,
    averaging: Option<Averaging>,
    checkpoint: Box<dyn CheckpointPolicy>,
    early_stopping: Option<Box<dyn EarlyStoppingPolicy>>,
    callbacks: Vec<Box<dyn Callback>>,
    stop: StopFlag,
    device: Option<String>,
}

impl<'m> TrainerBuilder<'m> {
    /// A trainer for `model` (built on the device it trains on, with the kernel settings it trains with) per `cfg`
    /// (whose `model` field only names it in the run's files).
    pub fn new(model: &'m dyn Classifier, cfg: TrainConfig) -> Self {
        TrainerBuilder {
            model,
            cfg,
            dir: None,
            resume: false,
            optimizer: None,
            schedule: None,
            averaging: None,
            checkpoint: Box::new(BestValidationAccuracy),
            early_stopping: None,
            callbacks: Vec::new(),
            stop: StopFlag::default(),
            device: None,
        }
    }

    /// Writes the run into `dir` (`config.json`, checkpoints, history, test report). Without one nothing is
    /// written and the test set is evaluated on the final weights.
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Continues the run in the run directory from its `last.safetensors` (`cfg` must be the run's own config,
    /// `RunDir::read_config`).
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Trains with this optimizer instead of the config's (`optimizer`, `lr`, `weight_decay`, ...).
    pub fn optimizer(mut self, optimizer: Box<dyn Optimizer>) -> Self {
        self.optimizer = Some(optimizer);
        self
    }

    /// Sets the learning rate before every step from this schedule instead of the config's.
    pub fn schedule(mut self, schedule: impl LrSchedule + 'static) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// Keeps this weight average instead of the config's `averaging`.
    pub fn averaging(mut self, averaging: Averaging) -> Self {
        self.averaging = Some(averaging);
        self
    }

    /// Decides which weights become the run's model with this policy (default: [`BestValidationAccuracy`]).
    pub fn checkpointing(mut self, policy: impl CheckpointPolicy + 'static) -> Self {
        self.checkpoint = Box::new(policy);
        self
    }

    /// Stops early by this policy (default: [`ValLossPatience`] with the config's `patience`).
    pub fn early_stopping(mut self, policy: impl EarlyStoppingPolicy + 'static) -> Self {
        self.early_stopping = Some(Box::new(policy));
        self
    }

    /// Adds a callback (several may be added; they are called in order).
    pub fn callback(mut self, callback: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Adds a boxed callback.
    pub fn boxed_callback(mut self, callback: Box<dyn Callback>) -> Self {
        self.callbacks.push(callback);
        self
    }

    /// Stops the run after the current batch once `stop` is requested.
    pub fn stop_flag(mut self, stop: StopFlag) -> Self {
        self.stop = stop;
        self
    }

    /// Describes the device in callbacks and the outcome (default: candle's name of the model's device).
    pub fn device_description(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    /// Checks the config and builds the optimizer: creates nothing on disk yet.
    pub fn build(self) -> Result<Trainer<'m>> {
        self.cfg.validate_recipe()?;
        let kernels = self.model.kernels();
        if kernels.precision() != self.cfg.precision {
            return Err(Error::Setting {
                setting: "precision",
                message: format!(
                    "the model runs with {} convolutions but the config asks for {}: build the model with \
                     `model::device::kernels` and `Classifier::set_kernels`",
                    kernels.precision(),
                    self.cfg.precision
                ),
            });
        }
        if kernels.stock_ops() != self.cfg.stock_ops {
            return Err(Error::Setting {
                setting: "stock_ops",
                message: format!(
                    "the model runs {} but the config asks for {}",
                    ops_name(kernels.stock_ops()),
                    ops_name(self.cfg.stock_ops)
                ),
            });
        }
        let optimizer = match self.optimizer {
            Some(o) => o,
            None => build_optimizer(&self.cfg, self.model)?,
        };
        let averaging = self.averaging.unwrap_or(self.cfg.averaging);
        averaging.validate().map_err(|message| Error::Setting {
            setting: "averaging",
            message,
        })?;
        let early_stopping = self.early_stopping.unwrap_or_else(|| {
            Box::new(ValLossPatience {
                patience: self.cfg.patience,
            })
        });
        let device = self
            .device
            .unwrap_or_else(|| format!("{:?}", self.model.device().location()));
        Ok(Trainer {
            model: self.model,
            cfg: self.cfg,
            dir: self.dir.map(RunDir::new),
            resume: self.resume,
            optimizer,
            schedule: self.schedule,
            averaging,
            average: None,
            checkpoint: self.checkpoint,
            early_stopping,
            callbacks: self.callbacks,
            stop: self.stop,
            device,
            state: TrainState::default(),
            plan: Plan {
                steps_per_epoch: 1,
                total_steps: 1,
                epochs: 1,
            },
            started: false,
            class_names: Vec::new(),
            sets: None,
        })
    }
}

fn ops_name(stock: bool) -> &'static str {
    if stock {
        "candle's stock ops"
    } else {
        "the cpu-ops kernels"
    }
}

/// A training run in progress: see [`TrainerBuilder`]. [`Trainer::fit`] runs it whole; [`Trainer::step`],
/// [`Trainer::epoch`] and [`Trainer::finish`] are its parts.
pub struct Trainer<'m> {
    model: &'m dyn Classifier,
    cfg: TrainConfig,
    dir: Option<RunDir>,
    resume: bool,
    optimizer: Box<dyn Optimizer>,
    schedule: Option<Box<dyn LrSchedule>>,
    averaging: Averaging,
    /// The running average, made once the weights it starts from exist (after the data-dependent init).
    average: Option<WeightAverage>,
    checkpoint: Box<dyn CheckpointPolicy>,
    early_stopping: Box<dyn EarlyStoppingPolicy>,
    callbacks: Vec<Box<dyn Callback>>,
    stop: StopFlag,
    device: String,
    state: TrainState,
    plan: Plan,
    started: bool,
    /// The training set's class names (set by `start`), recorded in every checkpoint.
    class_names: Vec<String>,
    /// The training and validation images, shared with the batch loader (made once, in [`Trainer::start`]).
    sets: Option<(Arc<ImageSet>, Arc<ImageSet>)>,
}

/// How an epoch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochEndKind {
    /// More epochs follow.
    Continue,
    /// It was the run's last (planned, early-stopped or stopped by a callback at its end).
    Finished,
    /// Stopped mid-epoch (stop flag or a callback): `last.safetensors` holds the state to resume.
    Interrupted,
}

impl<'m> Trainer<'m> {
    /// The config the run trains with.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// The step plan (set by [`Trainer::plan`] or at the start of [`Trainer::fit`]).
    pub fn steps(&self) -> Plan {
        self.plan
    }

    /// Plans the run's steps for a training set of `train_images` (the schedule and the averaging need the
    /// total). [`Trainer::fit`] calls it; a caller driving [`Trainer::step`] alone (a benchmark) calls it first.
    pub fn plan(&mut self, train_images: usize) -> Result<Plan> {
        let (steps_per_epoch, total_steps, epochs) = self.cfg.steps(train_images);
        if steps_per_epoch == 0 {
            return Err(Error::Config(format!(
                "need at least one batch of {} training images per epoch, found {train_images} images",
                self.cfg.batch_size
            )));
        }
        self.plan = Plan {
            steps_per_epoch,
            total_steps,
            epochs,
        };
        self.optimizer.plan(steps_per_epoch, total_steps);
        Ok(self.plan)
    }

    fn lr_at(&self, step: usize) -> f64 {
        match &self.schedule {
            Some(s) => s.lr(step, self.plan.total_steps),
            None => ConfigSchedule {
                kind: self.cfg.schedule,
                base: self.cfg.lr,
                warmup_steps: (self.cfg.warmup_epochs * self.plan.steps_per_epoch as f64).round()
                    as usize,
            }
            .lr(step, self.plan.total_steps),
        }
    }

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
    fn ensure_average(&mut self) -> Result<()> {
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

/// The error of a checkpoint write that failed (disk full, a quota, a read-only directory) in `epoch`: it names
/// the file and what the system said, and that the previous checkpoints are untouched (each is written to a
/// temporary file first, then renamed), so the run can be resumed once the cause is fixed.
fn checkpoint_write_failed(path: &std::path::Path, epoch: usize, e: Error) -> Error {
    // The system's own words (e.g. "No space left on device (os error 28)"), without the path repeated.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut io = None;
    while let Some(c) = cause {
        if let Some(i) = c.downcast_ref::<std::io::Error>() {
            io = Some(i.to_string());
        }
        cause = c.source();
    }
    let Some(io) = io else {
        return e;
    };
    Error::OutDir {
        path: path.to_path_buf(),
        reason: format!(
            "cannot write this checkpoint in epoch {epoch}: {io}. The run stopped; {} and {} still hold what \
             was saved before (each checkpoint goes to a temporary file that only replaces the old one once \
             complete). Free space (or make the directory writable) and resume the run.",
            RunDir::BEST,
            RunDir::LAST
        ),
    }
}

/// Writes the run's model with its metadata (the normalization it expects, the epoch and validation accuracy).
fn save_best(
    model: &dyn Classifier,
    path: &std::path::Path,
    cfg: &TrainConfig,
    class_names: &[String],
    m: &EpochMetrics,
) -> Result<()> {
    let normalize = serde_json::to_string(&cfg.augment.normalize)
        .map_err(|e| Error::Config(format!("cannot serialise the normalization: {e}")))?;
    let mut meta = vec![
        (crate::NORMALIZE_KEY.to_string(), normalize),
        (
            model::checkpoint::keys::TTA.to_string(),
            cfg.tta.name().to_string(),
        ),
        ("epoch".to_string(), m.epoch.to_string()),
        class_names_meta(class_names)?,
    ];
    if m.val_acc.is_finite() {
        meta.push(("val_acc".to_string(), m.val_acc.to_string()));
    }
    checkpoint::save_model(model, path, meta.into_iter().collect())?;
    Ok(())
}

/// The checkpoint metadata entry naming the classes.
pub(crate) fn class_names_meta(class_names: &[String]) -> Result<(String, String)> {
    let json = serde_json::to_string(class_names)
        .map_err(|e| Error::Config(format!("cannot serialise the class names: {e}")))?;
    Ok((model::checkpoint::keys::CLASS_NAMES.to_string(), json))
}

/// Refuses data whose classes the model cannot learn: a head of another width than the training set's classes, or
/// validation and test sets that name other classes than the training set.
fn check_classes(model: &dyn Classifier, data: &Data) -> Result<()> {
    let names = data.train.class_names();
    if model.num_classes() != names.len() {
        return Err(Error::Config(format!(
            "the model {} has {} outputs but the training set has {} classes",
            model.name(),
            model.num_classes(),
            names.len()
        )));
    }
    for (what, set) in [("validation", &data.val), ("test", &data.test)] {
        if !set.is_empty() && set.class_names() != names {
            return Err(Error::Config(format!(
                "the {what} set's classes ({}) differ from the training set's ({})",
                abbreviated(set.class_names()),
                abbreviated(names)
            )));
        }
    }
    Ok(())
}

/// Up to 5 names, then a count.
fn abbreviated(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(", ... ({} in all)", names.len()));
    }
    s
}

/// Runs the model's data-dependent initialisation on the first `model.init_images()` training images, normalized
/// as the run normalizes.
fn init_from_data(model: &dyn Classifier, train: &ImageSet, cfg: &TrainConfig) -> Result<()> {
    let n = model.init_images().min(train.len());
    if n == 0 {
        return Ok(());
    }
    let t = Instant::now();
    let idx: Vec<usize> = (0..n).collect();
    let aug = augment::Augment {
        normalize: cfg.augment.normalize,
        ..augment::Augment::none()
    };
    let batch = batch_to_tensor(train, &idx, &aug, 0, model.device())?;
    model.init_from_data(&batch.images)?;
    tracing::info!(
        "data-dependent initialisation from {n} training images in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

impl TrainState {
    /// The policies' view of the state.
    pub(crate) fn record(&self) -> Record {
        Record {
            best_val_acc: self.best_val_acc,
            best_epoch: self.best_epoch,
            best_val_loss: self.best_val_loss,
            epochs_since_val_loss_improved: self.epochs_since_val_loss_improved,
        }
    }

    pub(crate) fn set_record(&mut self, r: &Record) {
        self.best_val_acc = r.best_val_acc;
        self.best_epoch = r.best_epoch;
        self.best_val_loss = r.best_val_loss;
        self.epochs_since_val_loss_improved = r.epochs_since_val_loss_improved;
    }
}
