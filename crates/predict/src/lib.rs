//! Classify a user's own images with a saved CIFAR-10 model: what `cifar predict` and `cifar serve` share.
//!
//! Each image (a file, [`load_path`], or bytes in memory, [`load_bytes`]) is decoded by `cifar10-imagefile` (PNG,
//! JPEG, BMP, GIF's first frame, WebP, TIFF; any colour type and bit depth; the format recognised by content,
//! never by name) under [`DecodeLimits`] against decompression bombs, turned upright by its EXIF orientation,
//! cropped to its centred square ([`Crop::Center`]), converted to 8-bit RGB (grey is replicated, alpha is
//! dropped, 16-bit is rounded to 8-bit), resized to 32x32 with an antialiased triangle (bilinear) filter whose
//! support widens with the scale factor, so a downscale averages every source pixel under the output pixel
//! (Pillow's `BILINEAR` resize; an image already 32x32 is not resampled). A [`Session`] then normalizes the
//! pixels with the checkpoint's mean/std and returns the class probabilities (with the chosen test-time
//! augmentation), and [`top_k`] ranks them.
//!
//! ```
//! use cifar10_predict::{Crop, DecodeLimits, Session};
//! let dir = tempfile::tempdir().unwrap();
//! let ckpt = dir.path().join("best.safetensors");
//! let dev = candle_core::Device::Cpu;
//! let net = model::registry::build("cnn-dnn", &dev, 1, 10).unwrap();
//! model::checkpoint::save_model(net.as_ref(), &ckpt, Default::default()).unwrap();
//!
//! let session = Session::load(&ckpt, &dev, cifar10_predict::Tta::None).unwrap();
//! let mut png = Vec::new();
//! image::DynamicImage::new_rgb8(48, 40)
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .unwrap();
//! let input = cifar10_predict::load_bytes(&png, Crop::Center, DecodeLimits::default()).unwrap();
//! let p = session.probabilities(&[&input.pixels]).unwrap();
//! let top = cifar10_predict::top_k(&p[0], session.class_names(), 3);
//! assert_eq!(top.len(), 3);
//! assert!(top[0].probability >= top[1].probability);
//! ```

#![warn(missing_docs)]

mod error;
mod session;

pub use error::{Error, ErrorKind, Result};
pub use imagefile::{
    Crop, DecodeLimits, INPUT_BYTES, Input, MAX_DECODED_BYTES, MAX_SIDE, SIDE, Truncation, to_input,
};

/// Decodes the file `path` into the model's input ([`imagefile::load_path`]).
pub fn load_path(path: &std::path::Path, crop: Crop, limits: DecodeLimits) -> Result<Input> {
    Ok(imagefile::load_path(path, crop, limits)?)
}

/// Decodes an image held in memory into the model's input ([`imagefile::load_bytes`]).
pub fn load_bytes(bytes: &[u8], crop: Crop, limits: DecodeLimits) -> Result<Input> {
    Ok(imagefile::load_bytes(bytes, crop, limits)?)
}
/// What decoding `bytes` would take at most, from its header alone ([`imagefile::footprint`]).
pub fn footprint(bytes: &[u8], limits: DecodeLimits) -> Result<u64> {
    Ok(imagefile::footprint(bytes, limits)?)
}
pub use model::KernelConfig;
pub use model::infer::Tta;
pub use session::{Ranked, Session, note_defaults, top_k};
