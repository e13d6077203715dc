//! Models by name. Add an architecture by implementing [`crate::Classifier`] and listing it in [`MODELS`]; the
//! trainer and the CLI pick it up through `--model NAME`. Every model's head has as many outputs as the data set
//! has classes: the number is an argument of [`build`], never a constant.

use crate::{AirBench94, Classifier, CnnDnn, Error, LeNet5, Mlp, Result};
use candle_core::Device;

/// One registered architecture.
pub struct ModelSpec {
    /// The registry name (`cnn-dnn`, `airbench94`, ...), as `--model` and checkpoints spell it.
    pub name: &'static str,
    /// A one-line description of the architecture, for listings.
    pub description: &'static str,
    /// Builds the model on a device with `num_classes` outputs and its weights initialised from a seed:
    /// `(device, seed, num_classes)`.
    pub build: fn(&Device, u64, usize) -> Result<Box<dyn Classifier>>,
    /// Forward-pass FLOPs per image for a head of `num_classes` outputs (2 × the multiply-adds of the
    /// convolutions and linear layers; see [`crate::flops`]).
    pub flops: fn(usize) -> u64,
}

impl ModelSpec {
    /// The number of trainable parameters with a head of `num_classes` outputs (the model is built on the CPU to
    /// count them).
    pub fn param_count(&self, num_classes: usize) -> Result<usize> {
        Ok((self.build)(&Device::Cpu, 0, num_classes)?.params().count())
    }

    /// Forward-pass FLOPs per image with a head of `num_classes` outputs.
    pub fn flops_per_image(&self, num_classes: usize) -> u64 {
        (self.flops)(num_classes)
    }

    /// Forward-pass MFLOP per image with a head of `num_classes` outputs.
    pub fn mflops_per_image(&self, num_classes: usize) -> f64 {
        self.flops_per_image(num_classes) as f64 / 1e6
    }
}

/// Every registered model; the first is the default.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: CnnDnn::NAME,
        description: "the reference CNN+DNN: 3 conv blocks (32/64/128) + MLP 2048-512-256-128-classes, dropout 0.2",
        build: |device, seed, classes| Ok(Box::new(CnnDnn::new(device, seed, classes)?)),
        flops: CnnDnn::flops_per_image,
    },
    ModelSpec {
        name: AirBench94::NAME,
        description: "airbench94 (Keller Jordan, MIT): 2x2 whitening conv + 3 conv groups (64/256/256) with BatchNorm and GELU",
        build: |device, seed, classes| Ok(Box::new(AirBench94::new(device, seed, classes)?)),
        flops: AirBench94::flops_per_image,
    },
    ModelSpec {
        name: Mlp::NAME,
        description: "the write-up's ANN: MLP on the flattened pixels 3072-512-256-128-classes, ReLU, dropout 0.2 (cnn-dnn's head)",
        build: |device, seed, classes| Ok(Box::new(Mlp::new(device, seed, classes)?)),
        flops: Mlp::flops_per_image,
    },
    ModelSpec {
        name: LeNet5::NAME,
        description: "LeNet-5 for 3x32x32: 5x5 convs (6, 16) with ReLU and 2x2 max-pool, then 400-120-84-classes",
        build: |device, seed, classes| Ok(Box::new(LeNet5::new(device, seed, classes)?)),
        flops: LeNet5::flops_per_image,
    },
];

/// The default model's name.
pub const DEFAULT_MODEL: &str = CnnDnn::NAME;

/// Builds model `name` on `device` with `num_classes` outputs, initialised from `seed`.
pub fn build(
    name: &str,
    device: &Device,
    seed: u64,
    num_classes: usize,
) -> Result<Box<dyn Classifier>> {
    let spec = MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Error::UnknownModel {
            name: name.to_string(),
            available: names().join(", "),
        })?;
    (spec.build)(device, seed, num_classes)
}

/// The registered model `name`, if any.
pub fn spec(name: &str) -> Option<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name)
}

/// Names of all registered models.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}
