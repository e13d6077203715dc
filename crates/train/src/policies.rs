//! The decisions the training loop asks for after each epoch, as replaceable values: which weights become the
//! run's model ([`CheckpointPolicy`]) and when to stop early ([`EarlyStoppingPolicy`]). Both read a [`Record`] of
//! the run so far, which the trainer keeps (and saves in `last.safetensors`, so a resumed run decides the same).

use cifar_types::EpochMetrics;
use serde::{Deserialize, Serialize};

/// What the run has achieved so far, updated by the trainer after every epoch *before* the policies are asked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The best validation accuracy of the earlier epochs (−∞ before any).
    pub best_val_acc: f64,
    /// The epoch whose weights are the run's model so far (0: none yet).
    pub best_epoch: usize,
    /// The lowest validation loss, this epoch's included (+∞ before any).
    pub best_val_loss: f64,
    /// Epochs since the validation loss last improved (0 when this epoch improved it).
    pub epochs_since_val_loss_improved: usize,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            best_val_acc: f64::NEG_INFINITY,
            best_epoch: 0,
            best_val_loss: f64::INFINITY,
            epochs_since_val_loss_improved: 0,
        }
    }
}

impl Record {
    /// Takes a finished epoch's validation loss into account (a NaN loss, i.e. no validation, changes nothing).
    pub fn observe_val_loss(&mut self, m: &EpochMetrics) {
        if !m.val_loss.is_finite() {
            return;
        }
        if m.val_loss < self.best_val_loss {
            self.best_val_loss = m.val_loss;
            self.epochs_since_val_loss_improved = 0;
        } else {
            self.epochs_since_val_loss_improved += 1;
        }
    }
}

/// Decides whether an epoch's weights become the run's model (`best.safetensors`, evaluated on the test set at the
/// end).
pub trait CheckpointPolicy: Send {
    /// Whether the weights after epoch `m` are the run's model from now on. `record` holds the earlier epochs'.
    fn is_best(&self, m: &EpochMetrics, record: &Record) -> bool;
}

/// The default: the highest validation accuracy; with no validation (NaN accuracy), the latest weights.
#[derive(Debug, Clone, Copy, Default)]
pub struct BestValidationAccuracy;

impl CheckpointPolicy for BestValidationAccuracy {
    fn is_best(&self, m: &EpochMetrics, record: &Record) -> bool {
        m.val_acc.is_nan() || m.val_acc > record.best_val_acc
    }
}

/// Always the latest weights (the run's model is its final one).
#[derive(Debug, Clone, Copy, Default)]
pub struct LatestWeights;

impl CheckpointPolicy for LatestWeights {
    fn is_best(&self, _m: &EpochMetrics, _record: &Record) -> bool {
        true
    }
}

/// Decides whether the run ends after an epoch.
pub trait EarlyStoppingPolicy: Send {
    /// Whether to stop after epoch `m`; `record` already includes it.
    fn should_stop(&self, m: &EpochMetrics, record: &Record) -> bool;
}

/// Stops when the validation loss has not improved for `patience` epochs (never without validation, or with
/// `patience` None: the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct ValLossPatience {
    /// Epochs without improvement before stopping; None never stops.
    pub patience: Option<usize>,
}

impl EarlyStoppingPolicy for ValLossPatience {
    fn should_stop(&self, m: &EpochMetrics, record: &Record) -> bool {
        m.val_loss.is_finite()
            && self
                .patience
                .is_some_and(|p| record.epochs_since_val_loss_improved >= p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, val_loss: f64, val_acc: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 1.0,
            train_acc: 0.5,
            val_loss,
            val_acc,
            lr: 1e-3,
            epoch_secs: 1.0,
            train_images_per_sec: 1.0,
        }
    }

    #[test]
    fn patience_counts_epochs_without_improvement() {
        let stop = ValLossPatience { patience: Some(2) };
        let mut r = Record::default();
        let mut stops = Vec::new();
        for (i, loss) in [1.0, 0.9, 0.95, 0.92, 0.8].into_iter().enumerate() {
            let m = epoch(i + 1, loss, 0.5);
            r.observe_val_loss(&m);
            stops.push(stop.should_stop(&m, &r));
        }
        assert_eq!(stops, [false, false, false, true, false]);
        // No validation: never.
        let m = epoch(6, f64::NAN, f64::NAN);
        r.epochs_since_val_loss_improved = 10;
        assert!(!stop.should_stop(&m, &r));
    }

    #[test]
    fn best_accuracy_or_latest_without_validation() {
        let p = BestValidationAccuracy;
        let r = Record {
            best_val_acc: 0.7,
            ..Record::default()
        };
        assert!(p.is_best(&epoch(2, 1.0, 0.71), &r));
        assert!(!p.is_best(&epoch(2, 1.0, 0.7), &r));
        assert!(p.is_best(&epoch(2, f64::NAN, f64::NAN), &r));
        assert!(LatestWeights.is_best(&epoch(2, 1.0, 0.1), &r));
    }
}
