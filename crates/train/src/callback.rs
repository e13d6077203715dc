//! What a running [`crate::Trainer`] tells the outside: a [`Callback`] trait whose methods all have defaults, so a
//! user implements only the events they care about. Progress bars and log lines are callbacks of the application
//! (the `cifar` binary's lives in its own crate); the library itself draws and prints nothing per step or epoch.

use crate::Outcome;
use cifar_types::EpochMetrics;
use std::path::Path;

/// A callback's answer: go on, or stop the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Go on.
    #[default]
    Continue,
    /// Stop. From [`Callback::on_step`]: as an interrupt (Ctrl-C): the state is saved in `last.safetensors` and the
    /// run can be resumed, no test evaluation. From [`Callback::on_epoch_end`]: as early stopping: the run ends
    /// after this epoch and its model is evaluated on the test set.
    Stop,
}

/// The run about to train, for [`Callback::on_start`].
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    /// The model's name.
    pub model: &'a str,
    /// Its trainable parameters.
    pub parameters: usize,
    /// The device, as described by the caller (e.g. `cpu (auto: ...)`).
    pub device: &'a str,
    /// The convolution arithmetic of the model's kernels.
    pub precision: model::Precision,
    /// The optimizer's name.
    pub optimizer: &'a str,
    /// Training images.
    pub train_images: usize,
    /// Validation images (0: no validation).
    pub val_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Optimizer steps of the whole run.
    pub total_steps: usize,
    /// Epochs of the whole run.
    pub epochs: usize,
    /// The preset named in the config.
    pub preset: &'a str,
    /// The run directory, if the run writes one.
    pub dir: Option<&'a Path>,
    /// When resuming: the epoch and batch it continues at.
    pub resumed_at: Option<(usize, usize)>,
}

/// One optimizer step done, for [`Callback::on_step`].
#[derive(Debug, Clone, Copy)]
pub struct StepEnd {
    /// The epoch (1-based).
    pub epoch: usize,
    /// The batch of the epoch that was just trained (0-based).
    pub batch: usize,
    /// Batches this epoch trains.
    pub batches: usize,
    /// The global step (0-based) of the run.
    pub step: usize,
    /// The learning rate the step used.
    pub lr: f64,
    /// The batch's mean training loss.
    pub loss: f32,
    /// The epoch's mean training loss so far.
    pub epoch_loss: f64,
    /// The epoch's training accuracy so far.
    pub epoch_accuracy: f64,
}

/// One epoch done (validation included), for [`Callback::on_epoch_end`].
#[derive(Debug, Clone, Copy)]
pub struct EpochEnd<'a> {
    /// The epoch's metrics, as written to `history.json`.
    pub metrics: &'a EpochMetrics,
    /// Epochs of the whole run.
    pub epochs: usize,
    /// Whether these weights became the run's model (`best.safetensors`).
    pub saved_best: bool,
    /// Whether the early-stopping policy ends the run after this epoch.
    pub stopping_early: bool,
}

/// Hooks into a training run. Every method has a default that does nothing (and continues).
///
/// ```
/// use cifar10_train::{Callback, Control, EpochEnd};
/// /// Stops the run once the training accuracy passes 90%.
/// struct StopAt90;
/// impl Callback for StopAt90 {
///     fn on_epoch_end(&mut self, e: &EpochEnd<'_>) -> Control {
///         if e.metrics.train_acc > 0.9 { Control::Stop } else { Control::Continue }
///     }
/// }
/// ```
pub trait Callback: Send {
    /// Before the first step (of a new or a resumed run).
    fn on_start(&mut self, _run: &RunStart<'_>) {}
    /// Before an epoch: `batches` to train, the first being `first_batch` (non-zero when resuming mid-epoch).
    fn on_epoch_start(
        &mut self,
        _epoch: usize,
        _epochs: usize,
        _batches: usize,
        _first_batch: usize,
    ) {
    }
    /// After every optimizer step.
    fn on_step(&mut self, _step: &StepEnd) -> Control {
        Control::Continue
    }
    /// After every epoch, once validation ran and the policies decided.
    fn on_epoch_end(&mut self, _epoch: &EpochEnd<'_>) -> Control {
        Control::Continue
    }
    /// After a checkpoint file was written (`best.safetensors` or `last.safetensors`).
    fn on_checkpoint(&mut self, _path: &Path, _epoch: usize) {}
    /// Once at the end: the run finished (with its test report), stopped early, or was interrupted.
    fn on_finish(&mut self, _outcome: &Outcome) {}
}
