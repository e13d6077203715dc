//! The trainer: a [`Trainer`] built by [`TrainerBuilder`] from a model, a [`TrainConfig`] and the pieces a user
//! may replace (optimizer, learning-rate schedule, weight averaging, checkpoint and early-stopping policies,
//! callbacks), with a [`Trainer::step`], a [`Trainer::epoch`] and a [`Trainer::finish`] (the benchmark calls the
//! same step). [`run`] and [`run_model`] are thin wrappers for the common case.

mod builder;
mod epoch;
mod step;
mod support;

pub use builder::TrainerBuilder;
pub(crate) use support::class_names_meta;
use support::{check_classes, checkpoint_write_failed, init_from_data, save_best};

use crate::averaging::{Averaging, WeightAverage};
use crate::callback::Callback;
use crate::evaluate::Tta;
use crate::optim::Optimizer;
use crate::policies::{CheckpointPolicy, EarlyStoppingPolicy};
use crate::schedule::{ConfigSchedule, LrSchedule};
use crate::state::TrainState;
use crate::{Error, Result, RunDir, TrainConfig};
use cifar_types::{ImageSet, TestReport};
use model::Classifier;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
}
