//! Decoding a user's image (a file or bytes in memory) into 32x32 RGB pixels, the input of a CIFAR-sized model.
//!
//! Each image (a file, [`load_path`], or bytes in memory, [`load_bytes`]) is decoded with the `image` crate (PNG,
//! JPEG, BMP, GIF's first frame, WebP, TIFF; any colour type and bit depth; the format recognised by content,
//! never by name) under [`DecodeLimits`] against decompression bombs, turned upright by its EXIF orientation,
//! cropped to its centred square ([`Crop::Center`]), converted to 8-bit RGB (grey is replicated, alpha is
//! dropped, 16-bit is rounded to 8-bit), resized to 32x32 with an antialiased triangle (bilinear) filter whose
//! support widens with the scale factor, so a downscale averages every source pixel under the output pixel
//! (Pillow's `BILINEAR` resize; an image already 32x32 is not resampled).
//!
//! Prediction (`cifar10-predict`) and image-folder data sets (`cifar10-dataset`'s `folder` feature) both decode
//! through this crate, so a model is trained and queried on the same pixels.
//!
//! ```
//! use cifar10_imagefile::{Crop, DecodeLimits, load_bytes};
//! let mut png = Vec::new();
//! image::DynamicImage::new_rgb8(48, 40)
//!     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
//!     .unwrap();
//! let input = load_bytes(&png, Crop::Center, DecodeLimits::default()).unwrap();
//! assert_eq!(input.pixels.len(), 3 * 32 * 32);
//! ```

#![warn(missing_docs)]

mod error;

pub use error::{Error, ErrorKind, Result};
pub use image::ImageFormat;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

/// Side of the model's input images.
pub const SIDE: u32 = 32;
/// Bytes of one decoded input image, `[3, 32, 32]` u8.
pub const INPUT_BYTES: usize = 3 * (SIDE as usize) * (SIDE as usize);
/// Default decoder limit against decompression bombs: the largest width or height accepted...
pub const MAX_SIDE: u32 = 30_000;
/// ... and the most bytes one decoded image may take (e.g. 89 megapixels of 8-bit RGB).
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// Decoder limits against decompression bombs: checked from the header before any pixel is decoded, and
/// enforced by the decoders on their allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest width or height accepted.
    pub max_side: u32,
    /// The most bytes one decoded image may take (at the file's own colour type and bit depth).
    pub max_decoded_bytes: u64,
}

impl Default for DecodeLimits {
    /// [`MAX_SIDE`] and [`MAX_DECODED_BYTES`].
    fn default() -> Self {
        Self {
            max_side: MAX_SIDE,
            max_decoded_bytes: MAX_DECODED_BYTES,
        }
    }
}

/// What happens to a non-square image before the resize to 32x32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Crop {
    /// Keep the centred square (side = the shorter side).
    #[default]
    Center,
    /// Squash the whole image to a square (aspect ratio not kept).
    None,
}

/// A decoded image turned into the model's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// 32x32 RGB pixels, channel-major (`[3, 32, 32]`, u8).
    pub pixels: Vec<u8>,
    /// The image's format, recognised by its content.
    pub format: ImageFormat,
    /// Its width as stored (before the EXIF orientation is applied).
    pub width: u32,
    /// Its height as stored (before the EXIF orientation is applied).
    pub height: u32,
}

/// Decodes the file `path` (its format recognised by content, not by name) into the model's input, as described
/// in the crate documentation.
pub fn load_path(path: &Path, crop: Crop, limits: DecodeLimits) -> Result<Input> {
    let file = std::fs::File::open(path).map_err(Error::Read)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(Error::Read)?;
    decode(reader, len, crop, limits)
}

/// Decodes an image held in memory (e.g. an HTTP request body) into the model's input; nothing is written to
/// disk.
pub fn load_bytes(bytes: &[u8], crop: Crop, limits: DecodeLimits) -> Result<Input> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(Error::Read)?;
    decode(reader, bytes.len() as u64, crop, limits)
}

fn decode<R: BufRead + Seek>(
    mut reader: ImageReader<R>,
    len: u64,
    crop: Crop,
    limits: DecodeLimits,
) -> Result<Input> {
    let Some(format) = reader.format() else {
        return Err(Error::NotAnImage {
            found: if len == 0 {
                "an empty file".to_string()
            } else {
                format!("unrecognised content ({len} bytes)")
            },
        });
    };
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(l);
    let mib = limits.max_decoded_bytes / (1024 * 1024);
    let bad = |e: image::ImageError| -> Error {
        match e {
            image::ImageError::Limits(l) => Error::TooLarge {
                detail: format!(
                    "{l} (the limits are {} pixels a side and {mib} MiB decoded)",
                    limits.max_side
                ),
            },
            source => Error::Decode {
                format: format!("{format:?}"),
                source,
            },
        }
    };
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (width, height) = decoder.dimensions();
    if decoder.total_bytes() > limits.max_decoded_bytes {
        return Err(Error::TooLarge {
            detail: format!(
                "{width}x{height} pixels would take {} MiB (the limit is {mib} MiB)",
                decoder.total_bytes() / (1024 * 1024)
            ),
        });
    }
    if width == 0 || height == 0 {
        return Err(Error::EmptyImage { width, height });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    Ok(Input {
        pixels: to_input(&img, crop),
        format,
        width,
        height,
    })
}

/// Crop, convert to RGB8, resize to 32x32 and reorder to channel-major.
pub fn to_input(img: &DynamicImage, crop: Crop) -> Vec<u8> {
    let (w, h) = (img.width(), img.height());
    let cropped;
    let img = if crop == Crop::Center && w != h {
        let s = w.min(h);
        cropped = img.crop_imm((w - s) / 2, (h - s) / 2, s, s);
        &cropped
    } else {
        img
    };
    let rgb = img.to_rgb8();
    let rgb = if rgb.dimensions() == (SIDE, SIDE) {
        rgb
    } else {
        image::imageops::resize(&rgb, SIDE, SIDE, image::imageops::FilterType::Triangle)
    };
    let plane = (SIDE * SIDE) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = px.0[c];
        }
    }
    chw
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = ImageBuffer::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn bytes_and_files_decode_the_same() {
        let bytes = png(50, 40);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        std::fs::write(&path, &bytes).unwrap();
        let a = load_bytes(&bytes, Crop::Center, DecodeLimits::default()).unwrap();
        let b = load_path(&path, Crop::Center, DecodeLimits::default()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.pixels.len(), INPUT_BYTES);
        assert_eq!((a.width, a.height, a.format), (50, 40, ImageFormat::Png));
    }

    #[test]
    fn a_32x32_image_is_not_resampled() {
        let bytes = png(32, 32);
        let a = load_bytes(&bytes, Crop::Center, DecodeLimits::default()).unwrap();
        // Pixel (x=5, y=3) of the red plane, of green, of blue.
        assert_eq!(a.pixels[3 * 32 + 5], 5);
        assert_eq!(a.pixels[1024 + 3 * 32 + 5], 3);
        assert_eq!(a.pixels[2048 + 3 * 32 + 5], 5 ^ 3);
    }

    #[test]
    fn bad_inputs_are_errors_of_the_right_kind() {
        let limits = DecodeLimits::default();
        let kind = |b: &[u8], l| load_bytes(b, Crop::Center, l).unwrap_err().kind();
        assert_eq!(kind(b"", limits), ErrorKind::NotAnImage);
        assert_eq!(kind(b"hello, world", limits), ErrorKind::NotAnImage);
        let good = png(64, 64);
        assert_eq!(kind(&good[..good.len() / 2], limits), ErrorKind::Corrupt);
        let small = DecodeLimits {
            max_side: 63,
            ..limits
        };
        assert_eq!(kind(&good, small), ErrorKind::TooLarge);
        let tiny = DecodeLimits {
            max_decoded_bytes: 1000,
            ..limits
        };
        let e = load_bytes(&good, Crop::Center, tiny).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(
            e.to_string().starts_with("too large to decode safely"),
            "{e}"
        );
        let missing = load_path(Path::new("/nonexistent/x.png"), Crop::Center, limits);
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .starts_with("cannot read: ")
        );
    }
}
