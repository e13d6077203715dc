//! [`TrainerBuilder`]: the model and the config, and the pieces a user may replace.

use super::{Plan, StopFlag, Trainer};
use crate::averaging::Averaging;
use crate::callback::Callback;
use crate::optim::Optimizer;
use crate::policies::{
    BestValidationAccuracy, CheckpointPolicy, EarlyStoppingPolicy, ValLossPatience,
};
use crate::run::build_optimizer;
use crate::schedule::LrSchedule;
use crate::state::TrainState;
use crate::{Error, Result, RunDir, TrainConfig};
use model::Classifier;
use std::path::PathBuf;

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
