//! Training for CIFAR-10 classifiers: the reference recipe (Adam 1e-3, cross-entropy, batch 64, 50 epochs, best
//! model by validation accuracy) and the levers beyond it (LR schedules with warm-up, early stopping, label
//! smoothing, weight decay, flip test-time augmentation), with resumable, atomic checkpoints.
//!
//! A run directory holds `config.json`, `metrics.csv`, `history.json`, `best.safetensors`, `last.safetensors`
//! (weights, Adam moments and the training state, so a resumed run continues exactly), `test_report.json` and
//! `predictions.json`.
//!
//! CPU training is ~25% faster with two process-wide settings that a library must not make on its own: call
//! [`tune_cpu_process`] first thing in `main` (the `cifar` binary does; with the `mimalloc` feature and mimalloc
//! as the global allocator for the allocator half).
//!
//! ```no_run
//! use cifar10_train::{TrainConfig, Data, run};
//! # fn main() -> cifar10_train::Result<()> {
//! # let (train_set, val, test): (cifar_types::ImageSet, cifar_types::ImageSet, cifar_types::ImageSet) = todo!();
//! let cfg = TrainConfig::default();
//! let data = Data { train: train_set, val, test };
//! let outcome = run(&cfg, &data, std::path::Path::new("runs/demo"), &cifar10_train::StopFlag::default(), false)?;
//! println!("{:?}", outcome.test_report.map(|r| r.accuracy));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod averaging;
pub mod bench;
mod callback;
mod config;
mod error;
pub mod evaluate;
pub mod loss;
pub mod optim;
mod policies;
mod process;
mod run;
mod run_dir;
pub mod schedule;
mod state;
mod trainer;

pub use averaging::Averaging;
pub use callback::{Callback, Control, EpochEnd, RunStart, StepEnd};
pub use config::{
    DataSource, LossReduction, MuonSettings, OptimizerKind, PRESETS, Preset, TrainConfig,
};
pub use error::{Error, Result};
pub use evaluate::{Evaluation, Selective, SelectiveEvaluation, Tta, evaluate, evaluate_selective};
pub use policies::{
    BestValidationAccuracy, CheckpointPolicy, EarlyStoppingPolicy, LatestWeights, Record,
    ValLossPatience,
};
pub use process::{CpuProcess, tune_cpu_process, tune_cpu_process_with};
pub use run::{build_model, build_optimizer, run, run_model};
pub use run_dir::RunDir;
pub use schedule::{ConfigSchedule, LrSchedule, Schedule};
pub use trainer::{
    Data, EpochEndKind, Outcome, Plan, StepOutput, StopFlag, Trainer, TrainerBuilder,
};

/// The metadata key of `best.safetensors` and `last.safetensors` holding the input normalization (JSON
/// `{"mean": [..], "std": [..]}`); checkpoints without it use mean 0.5 / std 0.5 (the reference's). Defined with
/// the other checkpoint metadata keys in [`model::checkpoint::keys`].
pub use model::checkpoint::keys::NORMALIZE as NORMALIZE_KEY;
