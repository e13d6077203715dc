//! The trainer's helpers: checkpoint writes and their errors, the checks on a run's classes, the
//! data-dependent initialisation, and the policies' view of the state.

use super::Data;
use crate::policies::Record;
use crate::state::TrainState;
use crate::{Error, Result, RunDir, TrainConfig};
use augment::batch_to_tensor;
use cifar_types::{EpochMetrics, ImageSet};
use model::{Classifier, checkpoint};
use std::time::Instant;

/// The error of a checkpoint write that failed (disk full, a quota, a read-only directory) in `epoch`: it names
/// the file and what the system said, and that the previous checkpoints are untouched (each is written to a
/// temporary file first, then renamed), so the run can be resumed once the cause is fixed.
pub(super) fn checkpoint_write_failed(path: &std::path::Path, epoch: usize, e: Error) -> Error {
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
pub(super) fn save_best(
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
pub(super) fn check_classes(model: &dyn Classifier, data: &Data) -> Result<()> {
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
pub(super) fn init_from_data(
    model: &dyn Classifier,
    train: &ImageSet,
    cfg: &TrainConfig,
) -> Result<()> {
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
