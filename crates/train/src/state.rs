//! The training state stored in `last.safetensors` (metadata `train_state`, JSON) beside the weights and the Adam
//! moments, so a run resumes exactly, mid-epoch included.

use crate::averaging::WeightAverage;
use crate::optim::Optimizer;
use crate::{Error, Result, RunDir};
use candle_core::Device;
use cifar_types::History;
use model::{Classifier, checkpoint};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct TrainState {
    /// The epoch in progress or next to run (1-based).
    pub epoch: usize,
    /// The next batch of that epoch.
    pub next_batch: usize,
    /// Running sums of the epoch in progress.
    pub loss_sum: f64,
    pub correct: u64,
    pub seen: u64,
    pub epoch_secs: f64,
    pub train_secs: f64,
    pub history: History,
    pub best_val_acc: f64,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub epochs_since_val_loss_improved: usize,
    /// Optimizer steps taken (`adam_steps` in files written before the optimizer trait).
    #[serde(alias = "adam_steps")]
    pub optimizer_steps: u64,
    pub finished: bool,
    pub stopped_early: bool,
}

impl Default for TrainState {
    fn default() -> Self {
        Self {
            epoch: 1,
            next_batch: 0,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            epoch_secs: 0.0,
            train_secs: 0.0,
            history: History::default(),
            best_val_acc: f64::NEG_INFINITY,
            best_epoch: 0,
            best_val_loss: f64::INFINITY,
            epochs_since_val_loss_improved: 0,
            optimizer_steps: 0,
            finished: false,
            stopped_early: false,
        }
    }
}

const KEY: &str = "train_state";

/// Writes `last.safetensors`: weights and buffers, optimizer state, weight average, and the training state.
pub(crate) fn save_last(
    dir: &RunDir,
    model: &dyn Classifier,
    opt: &dyn Optimizer,
    avg: Option<&WeightAverage>,
    state: &TrainState,
    class_names: &[String],
) -> Result<()> {
    let mut tensors = checkpoint::model_tensors(model);
    let (moments, steps) = opt.state()?;
    tensors.extend(moments);
    if let Some(a) = avg {
        tensors.extend(a.state()?);
    }
    let mut st = state.clone();
    st.optimizer_steps = steps;
    // JSON cannot hold infinities: the "nothing yet" markers are stored as null.
    let json = serde_json::to_string(&StoredState::from(&st)).map_err(|e| Error::Resume {
        path: dir.file(RunDir::LAST),
        reason: format!("cannot serialise the training state: {e}"),
    })?;
    let mut meta = HashMap::from([
        (KEY.to_string(), json),
        ("optimizer".to_string(), opt.name().to_string()),
        crate::trainer::class_names_meta(class_names)?,
    ]);
    // The normalization the model trains with is the run's config.json's (written when the run was created).
    let config = dir.read_config().ok();
    if let Some(c) = &config {
        meta.insert(checkpoint::keys::TTA.to_string(), c.tta.name().to_string());
    }
    match config.and_then(|c| serde_json::to_string(&c.augment.normalize).ok()) {
        Some(n) => {
            meta.insert(checkpoint::keys::NORMALIZE.to_string(), n);
        }
        None => tracing::warn!(
            "{}: no readable config.json; last.safetensors gets the default normalization metadata",
            dir.path().display()
        ),
    }
    let meta = checkpoint::with_model_meta(model, meta);
    checkpoint::write(&dir.file(RunDir::LAST), &tensors, meta)?;
    Ok(())
}

/// Reads `last.safetensors` into `model`, `opt` and `avg`; returns the state.
pub(crate) fn load_last(
    dir: &RunDir,
    model: &dyn Classifier,
    opt: &mut dyn Optimizer,
    avg: Option<&mut WeightAverage>,
    device: &Device,
) -> Result<TrainState> {
    let path = dir.file(RunDir::LAST);
    let c = checkpoint::read(&path, device)?;
    let json = c.metadata.get(KEY).ok_or_else(|| Error::Resume {
        path: path.clone(),
        reason: "holds no training state (is it a `last` checkpoint of this tool?)".into(),
    })?;
    let stored: StoredState = serde_json::from_str(json).map_err(|e| Error::Resume {
        path: path.clone(),
        reason: format!("invalid training state: {e}"),
    })?;
    let state = TrainState::from(stored);
    checkpoint::assign(model, &c.tensors, &path)?;
    opt.load_state(&c.tensors, state.optimizer_steps, &path)?;
    if let Some(a) = avg {
        a.load_state(&c.tensors, &path)?;
    }
    Ok(state)
}

#[derive(Serialize, Deserialize)]
struct StoredState {
    #[serde(flatten)]
    base: TrainState,
    best_val_acc_opt: Option<f64>,
    best_val_loss_opt: Option<f64>,
}

impl From<&TrainState> for StoredState {
    fn from(s: &TrainState) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        let mut base = s.clone();
        base.best_val_acc = 0.0;
        base.best_val_loss = 0.0;
        Self {
            base,
            best_val_acc_opt: finite(s.best_val_acc),
            best_val_loss_opt: finite(s.best_val_loss),
        }
    }
}

impl From<StoredState> for TrainState {
    fn from(s: StoredState) -> Self {
        let mut t = s.base;
        t.best_val_acc = s.best_val_acc_opt.unwrap_or(f64::NEG_INFINITY);
        t.best_val_loss = s.best_val_loss_opt.unwrap_or(f64::INFINITY);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The training state of a `last.safetensors` written before the optimizer trait (`adam_steps`, no newer
    /// fields) still reads.
    #[test]
    fn state_written_by_the_previous_version_reads() {
        let old = r#"{"epoch":3,"next_batch":0,"loss_sum":0.0,"correct":0,"seen":0,"epoch_secs":0.0,
            "train_secs":0.0,"history":{"epochs":[]},"best_val_acc":0.0,"best_epoch":2,"best_val_loss":0.0,
            "epochs_since_val_loss_improved":0,"adam_steps":1406,"finished":false,"stopped_early":false,
            "best_val_acc_opt":0.61,"best_val_loss_opt":1.1}"#;
        let s: StoredState = serde_json::from_str(old).unwrap();
        let t = TrainState::from(s);
        assert_eq!((t.epoch, t.optimizer_steps, t.best_epoch), (3, 1406, 2));
        assert_eq!(t.best_val_acc, 0.61);
    }
}
