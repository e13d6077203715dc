//! CIFAR-10 augmentation and batching: u8 images in, normalized f32 candle tensors `[B, 3, 32, 32]` out.
//!
//! Each transform is a small public function usable on its own ([`hflip`], [`pad_crop`], [`normalize_into`]);
//! [`Augment`] chains them, by default as the reference does (random horizontal flip with p = 0.5, random 32x32
//! crop of the image zero-padded by 4 pixels, normalize with mean 0.5 / std 0.5), and [`Loader`] prepares batches
//! on a background thread so the training loop never waits on data.
//!
//! Randomness comes from seeded Rust RNGs ([`rand_chacha::ChaCha8Rng`]): the same seed, epoch and batch index give
//! the same batch on every run, and a resumed run can restart mid-epoch.
//!
//! ```
//! use cifar10_augment::{Augment, batch_to_tensor};
//! use cifar_types::{ImageSet, IMAGE_BYTES, CIFAR10_CLASS_NAMES};
//! let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
//! let set = ImageSet::new(vec![255; 2 * IMAGE_BYTES], vec![0, 1], names).unwrap();
//! let batch = batch_to_tensor(&set, &[0, 1], &Augment::none(), 7, &candle_core::Device::Cpu).unwrap();
//! assert_eq!(batch.images.dims(), &[2, 3, 32, 32]);
//! ```

#![warn(missing_docs)]

mod loader;
mod transforms;

pub use cifar_types::Normalize;
pub use loader::{Batch, EpochPlan, Loader, batch_seed, batch_to_tensor};
pub use transforms::{Augment, ImageAt, hflip, normalize_into, pad_crop, reflect_crop};

/// Errors of the augmentation crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A candle operation failed while building a batch's tensors.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An image index of a batch (from `indices` or [`EpochPlan::order`]) is not below the set's length.
    #[error("batch index {index} is out of range for a set of {len} images")]
    IndexOutOfRange {
        /// The offending image index.
        index: usize,
        /// Number of images in the set.
        len: usize,
    },
    /// The [`Loader`]'s background thread could not be started or ended (e.g. panicked) before sending every
    /// batch.
    #[error("the batch loader thread stopped unexpectedly")]
    LoaderStopped,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
