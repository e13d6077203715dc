//! [`TrainConfig`]: every setting of a run as one value (serde: the run's `config.json`), and its checks.
//! The named presets are in `presets`.

mod presets;
#[cfg(test)]
mod tests;

pub use presets::{PRESETS, Preset};

use crate::averaging::Averaging;
use crate::{Error, Result, Schedule, Tta};
use augment::Augment;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which data set a run trains on (the application loads it; the trainer only records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// CIFAR-10's binary version.
    #[default]
    Cifar10,
    /// CIFAR-100's binary version with its 100 fine labels.
    Cifar100,
    /// CIFAR-100's binary version with its 20 coarse labels (superclasses).
    Cifar100Coarse,
    /// A user's image folders (`train/<class>/*`, `test/<class>/*`, optional `val/<class>/*`).
    Folder,
}

impl DataSource {
    /// The name as `config.json` spells it (`cifar10`, `cifar100`, `cifar100-coarse`, `folder`).
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Cifar10 => "cifar10",
            DataSource::Cifar100 => "cifar100",
            DataSource::Cifar100Coarse => "cifar100-coarse",
            DataSource::Folder => "folder",
        }
    }
}

/// Which optimizer trains the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (AdamW when `weight_decay` > 0), the reference's.
    #[default]
    Adam,
    /// SGD with momentum (Nesterov with `nesterov`), coupled weight decay as PyTorch's.
    Sgd,
    /// airbench94_muon's pair: Muon (rate `lr`, the settings in `muon`) on every parameter of 4 dimensions (the
    /// conv filters), and SGD (`momentum`, `nesterov`) on the rest, in groups whose rates are `lr` times a scale:
    /// normalisation parameters `norm_lr_scale`, other vectors (biases) `muon.bias_lr_scale`, matrices (the
    /// head) `muon.head_lr_scale`; each SGD group's coupled weight decay is `weight_decay / its scale`, so all
    /// decay by `lr · weight_decay` per step. Muon itself has no weight decay.
    Muon,
}

/// The settings of [`OptimizerKind::Muon`] beyond the shared ones (`lr`, `momentum`, `nesterov`, `norm_lr_scale`,
/// `weight_decay`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MuonSettings {
    /// Muon's momentum factor (the SGD groups use `momentum`).
    pub momentum: f64,
    /// Muon's Nesterov momentum.
    pub nesterov: bool,
    /// Newton–Schulz iterations per step.
    pub ns_steps: usize,
    /// Renormalise each filter bank to Frobenius norm `sqrt(output channels)` before each update.
    pub normalize_weights: bool,
    /// The SGD rate of matrices (the linear head) as a multiple of `lr`.
    pub head_lr_scale: f64,
    /// The SGD rate of vectors other than normalisation parameters (airbench's whitening bias) as a multiple of
    /// `lr`.
    pub bias_lr_scale: f64,
    /// Those vectors' rate decays linearly from its start to zero over this many epochs instead of following the
    /// schedule (airbench: 3, the epochs the whitening bias trains). None: the schedule.
    pub bias_decay_epochs: Option<f64>,
}

impl Default for MuonSettings {
    /// Muon's own settings of `airbench94_muon.py` (momentum 0.6 Nesterov, 3 iterations, filters renormalised);
    /// every SGD group at the base rate, following the schedule.
    fn default() -> Self {
        Self {
            momentum: 0.6,
            nesterov: true,
            ns_steps: 3,
            normalize_weights: true,
            head_lr_scale: 1.0,
            bias_lr_scale: 1.0,
            bias_decay_epochs: None,
        }
    }
}

/// How the per-image training losses of a batch are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossReduction {
    /// The mean (the reference).
    #[default]
    Mean,
    /// The sum (airbench: its learning rates are per example).
    Sum,
}

/// Everything that defines a training run; saved as `config.json` in the run directory.
/// The default is the reference recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The preset the run started from (`reference` is the plain reference recipe).
    pub preset: String,
    /// Registry name of the architecture.
    pub model: String,
    /// Length of the run in epochs (at least 1); with `fractional_epochs`, its ceiling.
    pub epochs: usize,
    /// A fractional run length in epochs (airbench's 9.9): the run takes `ceil(steps_per_epoch × this)` steps,
    /// and `epochs` is its ceiling. None: `epochs` whole epochs.
    pub fractional_epochs: Option<f64>,
    /// Training images per optimizer step (at least 1).
    pub batch_size: usize,
    /// Gradient accumulation: a batch larger than this runs through the model in parts of at most this many
    /// images, their gradients summed before the one optimizer step (less memory: the activations of one part
    /// at a time). BatchNorm normalises each part by its own statistics and updates its running statistics once
    /// per part. None: the whole batch at once.
    pub micro_batch_size: Option<usize>,
    /// Drop each epoch's incomplete last batch.
    pub drop_last: bool,
    /// The optimizer, set up from `lr`, `weight_decay` and (SGD) `momentum`, `nesterov`, `norm_lr_scale`.
    pub optimizer: OptimizerKind,
    /// Base (peak) learning rate.
    pub lr: f64,
    /// Adam: decoupled weight decay (AdamW; 0 = Adam as in the reference). SGD: PyTorch's (coupled) weight decay
    /// of the non-normalisation parameters; normalisation parameters get `weight_decay / norm_lr_scale`, so every
    /// parameter decays by the same amount per step.
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD: Nesterov momentum.
    pub nesterov: bool,
    /// SGD: learning-rate multiplier of normalisation-layer parameters (airbench: 64 for BatchNorm biases).
    pub norm_lr_scale: f64,
    /// The settings of the Muon optimizer (`optimizer: muon`); ignored by the others.
    pub muon: MuonSettings,
    /// How a batch's losses are combined.
    pub loss_reduction: LossReduction,
    /// Weight averaging (airbench: Lookahead).
    pub averaging: Averaging,
    /// The shape of the learning rate over the run's steps, peaking at `lr` (warm-up length: `warmup_epochs`).
    pub schedule: Schedule,
    /// Linear warm-up length in epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// Label smoothing ε of the training loss (validation and test losses are plain cross-entropy).
    pub label_smoothing: f64,
    /// Early stopping: stop when the validation loss has not improved for this many epochs.
    pub patience: Option<usize>,
    /// Fraction of the training images held out for validation.
    pub val_fraction: f64,
    /// Hold out the same fraction of every class.
    pub stratified: bool,
    /// Seeds the run's randomness: the model's initialisation ([`build_model`](crate::build_model)), the epoch
    /// order, the augmentation and the dropout masks (and the validation split the application makes).
    pub seed: u64,
    /// `auto | cpu | cuda[:N]`.
    pub device: String,
    /// Use only the first N training images (before the validation split).
    pub limit_train: Option<usize>,
    /// Training augmentation.
    pub augment: Augment,
    /// Test-time augmentation at evaluation (validation and test): `none`, `mirror` (the image and its mirror
    /// image, probabilities averaged) or `mirror+shift` (airbench's level 2: also the 1-pixel reflect-shifted
    /// views, 6 in all, logits averaged). Files written before it was one setting (`"tta": true`,
    /// `"tta_shift": true`) are read by [`TrainConfig::from_json`].
    pub tta: Tta,
    /// Selective TTA at the final test evaluation: `tta`'s views only for the images whose plain-view top
    /// probability is below this (the others keep their plain-view prediction). None: every image.
    pub tta_threshold: Option<f32>,
    /// Images per forward pass when evaluating (validation and test; at least 1).
    pub eval_batch_size: usize,
    /// Where the application keeps the data (`cifar-10-batches-bin/` or `cifar-100-binary/` inside, or an image
    /// folder tree); recorded in `config.json`, not read by the trainer, which takes its images as
    /// [`Data`](crate::Data).
    pub data_dir: PathBuf,
    /// Which data set `data_dir` holds; recorded so a resumed run, its charts and a sweep load the same images.
    pub dataset: DataSource,
    /// Image folders: skip (and count) images that do not decode instead of refusing the data set.
    pub skip_bad_images: bool,
    /// Candle's stock CPU ops instead of the cpu-ops kernels (for comparisons; slow).
    pub stock_ops: bool,
    /// The arithmetic of the convolutions: f32, or bf16 products with f32 sums (CPUs with AVX512-BF16).
    pub precision: model::Precision,
    /// The Winograd tiles of the 3x3 convolutions on the CPU kernels (`auto`: F(4x4, 3x3) in f32, F(2x2, 3x3) in
    /// bf16). Files written before it was a setting read `auto`, which is what those runs used.
    pub winograd: model::Winograd,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            preset: "reference".into(),
            model: model::registry::DEFAULT_MODEL.into(),
            epochs: 50,
            fractional_epochs: None,
            batch_size: 64,
            micro_batch_size: None,
            drop_last: false,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            nesterov: false,
            norm_lr_scale: 1.0,
            muon: MuonSettings::default(),
            loss_reduction: LossReduction::Mean,
            averaging: Averaging::None,
            schedule: Schedule::Constant,
            warmup_epochs: 0.0,
            label_smoothing: 0.0,
            patience: None,
            val_fraction: 0.1,
            stratified: false,
            seed: 42,
            device: "auto".into(),
            limit_train: None,
            augment: Augment::default(),
            tta: Tta::None,
            tta_threshold: None,
            eval_batch_size: 512,
            data_dir: PathBuf::from("data"),
            dataset: DataSource::default(),
            skip_bad_images: false,
            stock_ops: false,
            precision: model::Precision::F32,
            winograd: model::Winograd::Auto,
        }
    }
}

impl TrainConfig {
    /// Reads a config written by any version of this crate (`config.json`): the TTA of files written before it
    /// was one setting (`"tta": true|false` and `"tta_shift": true|false`) becomes the one value.
    pub fn from_json(json: &str) -> std::result::Result<Self, serde_json::Error> {
        let mut v: serde_json::Value = serde_json::from_str(json)?;
        if let Some(obj) = v.as_object_mut() {
            let shift = obj.remove("tta_shift").and_then(|s| s.as_bool());
            if let Some(on) = obj.get("tta").and_then(|t| t.as_bool()) {
                let tta = match (on, shift.unwrap_or(false)) {
                    (false, _) => Tta::None,
                    (true, false) => Tta::Mirror,
                    (true, true) => Tta::MirrorShift,
                };
                obj.insert("tta".into(), serde_json::Value::String(tta.name().into()));
            }
        }
        serde_json::from_value(v)
    }

    /// Checks every value; the first bad one is an [`Error::Setting`] naming its field (`lr`, `batch_size`,
    /// `augment.flip_prob`, ...: a front end maps the name to its own flag). The model must be a registered one,
    /// and a CUDA device needs a build with the `cuda` feature, so a bad device is refused before any work.
    pub fn validate(&self) -> Result<()> {
        self.validate_recipe()?;
        if !model::registry::names().contains(&self.model.as_str()) {
            return Err(Error::Setting {
                setting: "model",
                message: format!(
                    "expected one of {}, found {:?}",
                    model::registry::names().join(", "),
                    self.model
                ),
            });
        }
        Ok(())
    }

    /// Checks every value but the model name (for a model the registry does not know, see `cifar10_train::run_model`).
    pub fn validate_recipe(&self) -> Result<()> {
        let bad = |setting: &'static str, want: &str, found: String| {
            Err(Error::Setting {
                setting,
                message: format!("expected {want}, found {found}"),
            })
        };
        if self.epochs == 0 {
            return bad("epochs", "at least 1", "0".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "at least 1", "0".into());
        }
        if self.eval_batch_size == 0 {
            return bad("eval_batch_size", "at least 1", "0".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "a positive number", self.lr.to_string());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                "a number >= 0",
                self.weight_decay.to_string(),
            );
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return bad(
                "warmup_epochs",
                "a number >= 0",
                self.warmup_epochs.to_string(),
            );
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(
                "label_smoothing",
                "a number in [0, 1)",
                self.label_smoothing.to_string(),
            );
        }
        if !(self.val_fraction >= 0.0 && self.val_fraction < 1.0) {
            return bad(
                "val_fraction",
                "a number in [0, 1)",
                self.val_fraction.to_string(),
            );
        }
        if let Some(e) = self.fractional_epochs
            && !(e.is_finite() && e > 0.0 && e.ceil() as usize <= self.epochs.max(1))
        {
            return bad(
                "fractional_epochs",
                &format!("a positive number of epochs up to {}", self.epochs),
                e.to_string(),
            );
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad("momentum", "a number in [0, 1)", self.momentum.to_string());
        }
        if !(self.norm_lr_scale.is_finite() && self.norm_lr_scale > 0.0) {
            return bad(
                "norm_lr_scale",
                "a positive number",
                self.norm_lr_scale.to_string(),
            );
        }
        let m = &self.muon;
        if !(m.momentum.is_finite() && (0.0..1.0).contains(&m.momentum)) {
            return bad(
                "muon.momentum",
                "a number in [0, 1)",
                m.momentum.to_string(),
            );
        }
        for (setting, v) in [
            ("muon.head_lr_scale", m.head_lr_scale),
            ("muon.bias_lr_scale", m.bias_lr_scale),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(setting, "a positive number", v.to_string());
            }
        }
        if let Some(e) = m.bias_decay_epochs
            && !(e.is_finite() && e > 0.0)
        {
            return bad("muon.bias_decay_epochs", "a positive number", e.to_string());
        }
        if self.micro_batch_size == Some(0) {
            return bad("micro_batch_size", "at least 1", "0".into());
        }
        if let Some(t) = self.tta_threshold
            && !(t > 0.0 && t <= 1.0)
        {
            return bad("tta_threshold", "a probability in (0, 1]", t.to_string());
        }
        if let Err(e) = self.averaging.validate() {
            return bad("averaging", "valid settings", e);
        }
        if self.patience == Some(0) {
            return bad("patience", "at least 1", "0".into());
        }
        if self.stock_ops && self.winograd != model::Winograd::Auto {
            return bad(
                "winograd",
                "auto with the stock ops (the tiles are a choice of the cpu-ops kernels)",
                self.winograd.to_string(),
            );
        }
        if self.limit_train == Some(0) {
            return bad("limit_train", "at least 1", "0".into());
        }
        if !(0.0..=1.0).contains(&self.augment.flip_prob) {
            return bad(
                "augment.flip_prob",
                "a probability in [0, 1]",
                self.augment.flip_prob.to_string(),
            );
        }
        if self.augment.crop_pad > 16 {
            return bad(
                "augment.crop_pad",
                "at most 16",
                self.augment.crop_pad.to_string(),
            );
        }
        // The device grammar has one parser, model's; it also refuses CUDA on a build without it.
        if let Err(e) = model::device::parse(&self.device) {
            return Err(Error::Setting {
                setting: "device",
                message: e.to_string(),
            });
        }
        Ok(())
    }

    /// The number of optimizer steps of a run over `train_images` images: (steps per epoch, total steps, epochs).
    pub fn steps(&self, train_images: usize) -> (usize, usize, usize) {
        let bs = self.batch_size.max(1);
        let per_epoch = if self.drop_last {
            train_images / bs
        } else {
            train_images.div_ceil(bs)
        };
        let total = match self.fractional_epochs {
            Some(e) => (per_epoch as f64 * e).ceil() as usize,
            None => per_epoch * self.epochs,
        };
        let epochs = if per_epoch == 0 {
            0
        } else {
            total.div_ceil(per_epoch)
        };
        (per_epoch, total, epochs)
    }
}
