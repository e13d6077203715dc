//! CIFAR-10 classifiers in candle, on CPU or CUDA.
//!
//! - [`CnnDnn`]: the reference "CNN+DNN" (3 conv blocks 3->32->64->128, then 2048->512->256->128->10 with ReLU and
//!   Dropout(0.2)), 1,307,850 parameters, PyTorch's default initialisation, seeded.
//! - [`registry`]: models by name (`--model cnn-dnn`), so new architectures need no change in the trainer.
//! - [`checkpoint`]: safetensors files with stable tensor names (the PyTorch reference's `state_dict` keys).
//! - [`device`]: `auto | cpu | cuda[:N]`.
//!
//! ```
//! use model::{registry, Mode};
//! let device = candle_core::Device::Cpu;
//! let net = registry::build("cnn-dnn", &device, 42).unwrap();
//! let x = candle_core::Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &device).unwrap();
//! let logits = net.forward(&x, Mode::Eval).unwrap();
//! assert_eq!(logits.dims(), &[2, 10]);
//! assert_eq!(net.params().count(), 1_307_850);
//! ```

pub mod checkpoint;
mod cnn_dnn;
pub mod device;
mod error;
pub mod init;
mod layers;
mod params;
pub mod registry;

pub use cnn_dnn::CnnDnn;
pub use error::{Error, Result};
pub use layers::{Dropout, softmax};
pub use params::Params;

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

/// Whether a forward pass trains (dropout active, drawing its masks from the given seeded RNG) or evaluates.
pub enum Mode<'a> {
    Eval,
    Train(&'a mut ChaCha8Rng),
}

impl Mode<'_> {
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

/// A CIFAR-10 classifier: images `[B, 3, 32, 32]` (normalized f32) in, logits `[B, classes]` out.
pub trait Classifier: Send {
    /// The registry name (e.g. `cnn-dnn`).
    fn name(&self) -> &'static str;
    fn forward(&self, x: &Tensor, mode: Mode<'_>) -> Result<Tensor>;
    /// All trainable parameters under their stable names.
    fn params(&self) -> &Params;
    fn device(&self) -> &Device;
}
