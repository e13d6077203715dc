//! The training state stored in `last.safetensors` (metadata `train_state`, JSON) beside the weights and the Adam
//! moments, so a run resumes exactly, mid-epoch included.

use crate::optim::Adam;
use crate::{Error, Result, RunDir};
use candle_core::Device;
use cifar_types::History;
use model::{Classifier, checkpoint};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub adam_steps: u64,
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
            adam_steps: 0,
            finished: false,
            stopped_early: false,
        }
    }
}

const KEY: &str = "train_state";

/// Writes `last.safetensors`: weights, optimizer moments, and the state.
pub(crate) fn save_last(
    dir: &RunDir,
    model: &dyn Classifier,
    opt: &Adam,
    state: &TrainState,
) -> Result<()> {
    let mut tensors = model.params().tensors();
    let (moments, steps) = opt.state()?;
    tensors.extend(moments);
    let mut st = state.clone();
    st.adam_steps = steps;
    // JSON cannot hold infinities: the "nothing yet" markers are stored as null.
    let json = serde_json::to_string(&StoredState::from(&st)).map_err(|e| Error::Resume {
        path: dir.file(RunDir::LAST),
        reason: format!("cannot serialise the training state: {e}"),
    })?;
    let meta = HashMap::from([
        (KEY.to_string(), json),
        ("model".to_string(), model.name().to_string()),
    ]);
    checkpoint::write(&dir.file(RunDir::LAST), &tensors, meta)?;
    Ok(())
}

/// Reads `last.safetensors` into `model` and `opt`; returns the state.
pub(crate) fn load_last(
    dir: &RunDir,
    model: &dyn Classifier,
    opt: &mut Adam,
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
    opt.load_state(&c.tensors, state.adam_steps, &path)?;
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
