//! CIFAR-10 classifiers in candle, on CPU or CUDA.
//!
//! - [`CnnDnn`]: the reference "CNN+DNN" (3 conv blocks 3->32->64->128, then 2048->512->256->128->10 with ReLU and
//!   Dropout(0.2)), 1,307,850 parameters, PyTorch's default initialisation, seeded.
//! - [`Mlp`] (the write-up's ANN on flattened pixels, the same head as `CnnDnn`) and [`LeNet5`] (LeNet-5 for
//!   3x32x32 inputs with ReLU and max-pooling), the baselines of `cifar compare`.
//! - [`registry`]: models by name (`--model cnn-dnn`), so new architectures need no change in the trainer.
//! - [`checkpoint`]: safetensors files with stable tensor names (the PyTorch reference's `state_dict` keys).
//! - [`device`]: `auto | cpu | cuda[:N]`.
//!
//! ```
//! use cifar10_model::{registry, Mode};
//! let device = candle_core::Device::Cpu;
//! let net = registry::build("cnn-dnn", &device, 42, 10).unwrap();
//! let x = candle_core::Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &device).unwrap();
//! let logits = net.forward(&x, Mode::Eval).unwrap();
//! assert_eq!(logits.dims(), &[2, 10]);
//! assert_eq!(net.params().count(), 1_307_850);
//! ```

#![warn(missing_docs)]

mod airbench;
pub mod checkpoint;
mod cnn_dnn;
pub mod device;
mod error;
pub mod flops;
mod im2col;
pub mod infer;
pub mod init;
mod layers;
mod lenet;
mod mlp;
mod params;
pub mod registry;

pub use airbench::AirBench94;
pub use cnn_dnn::CnnDnn;
pub use cpu_ops::{KernelConfig, Precision, Winograd};
pub use error::{Error, Result};
pub use layers::{Dropout, conv_valid, softmax};
pub use lenet::LeNet5;
pub use mlp::Mlp;
pub use params::Params;

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

/// Refuses a head of fewer than two classes.
pub(crate) fn check_num_classes(num_classes: usize) -> Result<()> {
    if num_classes < 2 {
        return Err(Error::NumClasses { found: num_classes });
    }
    Ok(())
}

/// A layer table `(name, in, out)` whose last layer (the head) gets `num_classes` outputs.
pub(crate) fn with_head<const N: usize>(
    layers: [(&'static str, usize, usize); N],
    num_classes: usize,
) -> [(&'static str, usize, usize); N] {
    let mut layers = layers;
    if let Some(last) = layers.last_mut() {
        last.2 = num_classes;
    }
    layers
}

/// Whether a forward pass trains (dropout active, drawing its masks from the given seeded RNG) or evaluates.
pub enum Mode<'a> {
    /// Evaluation: dropout is the identity, BatchNorm uses its running statistics, no buffer changes.
    Eval,
    /// Training: dropout masks come from this RNG, BatchNorm normalizes with the batch statistics and updates its
    /// running statistics.
    Train(&'a mut ChaCha8Rng),
}

impl Mode<'_> {
    /// Whether this is [`Mode::Train`].
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

/// An image classifier: images `[B, 3, 32, 32]` (normalized f32) in, logits `[B, num_classes]` out.
///
/// Only `name`, `forward`, `params`, `device` and `num_classes` are required; the other methods have defaults for
/// models without buffers, data-dependent initialisation or per-epoch behaviour, so a library user's model
/// implements five methods and trains with `train::run_model`.
pub trait Classifier: Send {
    /// The registry name (e.g. `cnn-dnn`).
    fn name(&self) -> &'static str;
    /// Logits for `x`. In [`Mode::Train`] a model may update its buffers (BatchNorm running statistics).
    fn forward(&self, x: &Tensor, mode: Mode<'_>) -> Result<Tensor>;
    /// All trainable parameters under their stable names.
    fn params(&self) -> &Params;
    /// The device the parameters live on; inputs to [`Classifier::forward`] must be on it.
    fn device(&self) -> &Device;
    /// The number of classes: the width of the logits [`Classifier::forward`] returns.
    fn num_classes(&self) -> usize;
    /// State that is saved and restored with the parameters but not trained by the optimizer (BatchNorm running
    /// statistics, frozen layers), under stable names.
    fn buffers(&self) -> &Params {
        &NO_BUFFERS
    }
    /// How many training images [`Classifier::init_from_data`] wants (0: it needs none).
    fn init_images(&self) -> usize {
        0
    }
    /// Data-dependent initialisation from normalized training images `[N, 3, 32, 32]` (N ≤ `init_images`),
    /// called once before the first step of a new run.
    fn init_from_data(&self, _images: &Tensor) -> Result<()> {
        Ok(())
    }
    /// Called by the trainer before each epoch (1-based), e.g. to freeze a layer after some epochs.
    fn start_epoch(&self, _epoch: usize) {}
    /// The kernel settings (precision, stock ops, ...) of this model's forward and backward passes.
    fn kernels(&self) -> KernelConfig {
        KernelConfig::default()
    }
    /// Runs this model's passes with `kernels` from now on (set before training or inference). A model that does
    /// not take kernel settings (the default implementation) accepts only the default and refuses others.
    fn set_kernels(&mut self, kernels: KernelConfig) -> Result<()> {
        if kernels == KernelConfig::default() {
            Ok(())
        } else {
            Err(Error::Kernels {
                model: self.name().to_string(),
                reason: format!(
                    "it runs with the default kernel settings only, not {kernels:?} (implement \
                     `Classifier::set_kernels` to take others)"
                ),
            })
        }
    }
    /// Whether the parameter `name` is a normalisation layer's parameter (optimizers may give those their own
    /// learning rate and weight decay, as airbench does for BatchNorm biases).
    fn is_norm_param(&self, _name: &str) -> bool {
        false
    }
}

static NO_BUFFERS: std::sync::LazyLock<Params> = std::sync::LazyLock::new(Params::default);
