//! Models by name. Add an architecture by implementing [`crate::Classifier`] and listing it in [`MODELS`]; the
//! trainer and the CLI pick it up through `--model NAME`.

use crate::{Classifier, CnnDnn, Error, Result};
use candle_core::Device;

/// One registered architecture.
pub struct ModelSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub build: fn(&Device, u64) -> Result<Box<dyn Classifier>>,
}

/// Every registered model; the first is the default.
pub const MODELS: &[ModelSpec] = &[ModelSpec {
    name: CnnDnn::NAME,
    description: "the reference CNN+DNN: 3 conv blocks (32/64/128) + MLP 2048-512-256-128-10, dropout 0.2",
    build: |device, seed| Ok(Box::new(CnnDnn::new(device, seed)?)),
}];

/// The default model's name.
pub const DEFAULT_MODEL: &str = CnnDnn::NAME;

/// Builds model `name` on `device`, initialised from `seed`.
pub fn build(name: &str, device: &Device, seed: u64) -> Result<Box<dyn Classifier>> {
    let spec = MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Error::UnknownModel {
            name: name.to_string(),
            available: names().join(", "),
        })?;
    (spec.build)(device, seed)
}

/// Names of all registered models.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}
