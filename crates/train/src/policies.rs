//! Small policies the training loop calls after each epoch.

use crate::Result;
use crate::state::TrainState;
use cifar_types::EpochMetrics;
use model::{Classifier, checkpoint};
use std::path::PathBuf;

/// Keeps the run's model in `best.safetensors`: the weights of the epoch with the highest validation accuracy,
/// or, for a run without validation, the latest weights (rewritten after every epoch).
pub struct BestCheckpoint {
    path: PathBuf,
    by_validation: bool,
    /// Metadata written into every file (e.g. the normalization the model expects).
    metadata: Vec<(String, String)>,
}

impl BestCheckpoint {
    pub fn new(path: PathBuf, by_validation: bool, metadata: Vec<(String, String)>) -> Self {
        Self {
            path,
            by_validation,
            metadata,
        }
    }

    /// Saves when the epoch is the best so far (always without validation); returns whether it saved.
    pub fn after_epoch(
        &self,
        model: &dyn Classifier,
        m: &EpochMetrics,
        state: &mut TrainState,
    ) -> Result<bool> {
        let improved = !self.by_validation || m.val_acc > state.best_val_acc;
        if !improved {
            return Ok(false);
        }
        if self.by_validation {
            state.best_val_acc = m.val_acc;
        }
        state.best_epoch = m.epoch;
        let mut meta = self.metadata.clone();
        meta.push(("epoch".to_string(), m.epoch.to_string()));
        if m.val_acc.is_finite() {
            meta.push(("val_acc".to_string(), m.val_acc.to_string()));
        }
        checkpoint::save_model(model, &self.path, meta.into_iter().collect())?;
        Ok(true)
    }
}

/// Stops the run when the validation loss has not improved for `patience` epochs (never without validation).
pub struct EarlyStopping {
    pub patience: Option<usize>,
}

impl EarlyStopping {
    /// Updates the counters; returns whether to stop.
    pub fn after_epoch(&self, m: &EpochMetrics, state: &mut TrainState) -> bool {
        if !m.val_loss.is_finite() {
            return false;
        }
        if m.val_loss < state.best_val_loss {
            state.best_val_loss = m.val_loss;
            state.epochs_since_val_loss_improved = 0;
        } else {
            state.epochs_since_val_loss_improved += 1;
        }
        self.patience
            .is_some_and(|p| state.epochs_since_val_loss_improved >= p)
    }
}
