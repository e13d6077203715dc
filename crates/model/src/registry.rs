//! Models by name. Add an architecture by implementing [`crate::Classifier`] and listing it in [`MODELS`]; the
//! trainer and the CLI pick it up through `--model NAME`.

use crate::{AirBench94, Classifier, CnnDnn, Error, LeNet5, Mlp, Result};
use candle_core::Device;

/// One registered architecture.
pub struct ModelSpec {
    /// The registry name (`cnn-dnn`, `airbench94`, ...), as `--model` and checkpoints spell it.
    pub name: &'static str,
    /// A one-line description of the architecture, for listings.
    pub description: &'static str,
    /// Builds the model on a device with its weights initialised from a seed.
    pub build: fn(&Device, u64) -> Result<Box<dyn Classifier>>,
    /// Forward-pass FLOPs per image (2 × the multiply-adds of the convolutions and linear layers; see
    /// [`crate::flops`]).
    pub flops_per_image: u64,
}

impl ModelSpec {
    /// The number of trainable parameters (the model is built on the CPU to count them).
    pub fn param_count(&self) -> Result<usize> {
        Ok((self.build)(&Device::Cpu, 0)?.params().count())
    }

    /// Forward-pass MFLOP per image.
    pub fn mflops_per_image(&self) -> f64 {
        self.flops_per_image as f64 / 1e6
    }
}

/// Every registered model; the first is the default.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: CnnDnn::NAME,
        description: "the reference CNN+DNN: 3 conv blocks (32/64/128) + MLP 2048-512-256-128-10, dropout 0.2",
        build: |device, seed| Ok(Box::new(CnnDnn::new(device, seed)?)),
        flops_per_image: CnnDnn::flops_per_image(),
    },
    ModelSpec {
        name: AirBench94::NAME,
        description: "airbench94 (Keller Jordan, MIT): 2x2 whitening conv + 3 conv groups (64/256/256) with BatchNorm and GELU",
        build: |device, seed| Ok(Box::new(AirBench94::new(device, seed)?)),
        flops_per_image: AirBench94::flops_per_image(),
    },
    ModelSpec {
        name: Mlp::NAME,
        description: "the write-up's ANN: MLP on the flattened pixels 3072-512-256-128-10, ReLU, dropout 0.2 (cnn-dnn's head)",
        build: |device, seed| Ok(Box::new(Mlp::new(device, seed)?)),
        flops_per_image: Mlp::flops_per_image(),
    },
    ModelSpec {
        name: LeNet5::NAME,
        description: "LeNet-5 for 3x32x32: 5x5 convs (6, 16) with ReLU and 2x2 max-pool, then 400-120-84-10",
        build: |device, seed| Ok(Box::new(LeNet5::new(device, seed)?)),
        flops_per_image: LeNet5::flops_per_image(),
    },
];

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

/// The registered model `name`, if any.
pub fn spec(name: &str) -> Option<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name)
}

/// Names of all registered models.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}
