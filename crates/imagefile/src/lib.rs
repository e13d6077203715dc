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
//! Damaged input never passes silently: a JPEG cut short, whose decoder would fill the missing rows with grey and
//! report success, is an [`Error::Truncated`] ("truncated: 75% of the rows missing ...") unless
//! [`DecodeLimits::allow_partial`] is set (then [`Input::partial`] says what is missing); the other formats'
//! decoders refuse a cut file themselves. [`DecodeLimits`] count every buffer decoding one image makes, and
//! state the worst-case decode time.
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

mod container;
mod error;
mod jpeg;

pub use error::{Error, ErrorKind, Result};
pub use image::ImageFormat;
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageReader, Limits, Pixel};
use std::io::Cursor;
use std::path::Path;

/// Side of the model's input images.
pub const SIDE: u32 = 32;
/// Bytes of one decoded input image, `[3, 32, 32]` u8.
pub const INPUT_BYTES: usize = 3 * (SIDE as usize) * (SIDE as usize);
/// Default decoder limit against decompression bombs: the largest width or height accepted...
pub const MAX_SIDE: u32 = 30_000;
/// ... and the most memory decoding one image may take (e.g. 89 megapixels of 8-bit RGB, 268 of grey).
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// Decoder limits against decompression bombs, checked from the header before any pixel is decoded and
/// enforced by the decoders on their allocations; and whether a partially decoded image is accepted.
///
/// `max_decoded_bytes` covers every buffer decoding one image makes: the encoded bytes held in memory, the
/// decoded pixels at the file's own colour type and bit depth, the decoder's own working buffers (a progressive
/// JPEG's coefficients, 2 bytes per sample; WebP's 4 bytes per pixel), an 8-bit copy of 16-bit and float
/// images (their samples are rounded to 8 bits first) and the resize's scratch rows (`width` x 32 x 16 bytes).
/// No full-size RGB copy is made: the crop, the resize and the EXIF orientation work on the decoded pixels at
/// their own colour type (grey stays grey, a palette image stays 8-bit) and only the 32x32 result is converted
/// to RGB.
///
/// Decode time grows with the pixels, so `max_decoded_bytes` bounds it too. At the default 256 MiB the worst
/// cases are a 16,000 x 16,000 grey PNG (1.3 s to decode and resize, peak resident memory 255 MiB) and a
/// 10,000 x 8,700 RGB JPEG (1.1 s, 259 MiB), measured on one core of a 2-core Zen 4 server (a shared machine at
/// load 5.5, so upper figures); an RGB image reaches the limit at a third of a grey image's pixels.
///
/// One allowance: a damaged lossy WebP can make its decoder (`image-webp` 0.2) allocate a partition buffer of
/// the size the damaged header claims, at most 16 MiB, before it finds the data missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest width or height accepted.
    pub max_side: u32,
    /// The most bytes decoding one image may take, all its buffers together (see above).
    pub max_decoded_bytes: u64,
    /// Accept an image the decoder could only partly decode (a JPEG cut short, whose missing rows the decoder
    /// fills with grey): [`Input::partial`] then says what is missing. Off by default: such an image is an
    /// [`Error::Truncated`].
    pub allow_partial: bool,
}

impl Default for DecodeLimits {
    /// [`MAX_SIDE`] and [`MAX_DECODED_BYTES`]; partial images refused.
    fn default() -> Self {
        Self {
            max_side: MAX_SIDE,
            max_decoded_bytes: MAX_DECODED_BYTES,
            allow_partial: false,
        }
    }
}

/// What is missing from an image that was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// The image's format.
    pub format: ImageFormat,
    /// Rows the decoder had no data for and filled in (counted from the bottom; `None` when the decoder gives
    /// no sign of which rows, e.g. a progressive JPEG missing its last refinement scans).
    pub rows_missing: Option<u32>,
    /// The image's height as stored.
    pub rows: u32,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = format!("{:?}", self.format).to_ascii_uppercase();
        match self.rows_missing {
            Some(m) if m > 0 => {
                let pct = (f64::from(m) * 100.0 / f64::from(self.rows.max(1))).round();
                // Never "0%" nor "100%" when some rows are there and some are not.
                let pct = if m < self.rows {
                    pct.clamp(1.0, 99.0)
                } else {
                    100.0
                };
                write!(
                    f,
                    "truncated: {pct}% of the rows missing ({m} of {}; the {format} data ends before its \
                     end-of-image marker and the decoder would fill them with grey)",
                    self.rows
                )
            }
            _ => write!(
                f,
                "truncated: the {format} data ends before its end-of-image marker (the end of the picture or of \
                 its refinement scans is missing)"
            ),
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
    /// Set when the image was cut short and [`DecodeLimits::allow_partial`] let it through.
    pub partial: Option<Truncation>,
}

/// Decodes the file `path` (its format recognised by content, not by name) into the model's input, as described
/// in the crate documentation. The file is read into memory first (it counts towards
/// [`DecodeLimits::max_decoded_bytes`]; a larger file is refused before it is read).
pub fn load_path(path: &Path, crop: Crop, limits: DecodeLimits) -> Result<Input> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(Error::Read)?;
    let len = file.metadata().map_err(Error::Read)?.len();
    if len > limits.max_decoded_bytes {
        return Err(Error::TooLarge {
            detail: format!(
                "the file has {} MiB, more than the limit of {} MiB for all of one image's buffers",
                len / (1024 * 1024),
                limits.max_decoded_bytes / (1024 * 1024)
            ),
        });
    }
    let mut bytes = Vec::new();
    file.take(limits.max_decoded_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::Read)?;
    load_bytes(&bytes, crop, limits)
}

/// Decodes an image held in memory (e.g. an HTTP request body) into the model's input; nothing is written to
/// disk.
pub fn load_bytes(bytes: &[u8], crop: Crop, limits: DecodeLimits) -> Result<Input> {
    let p = prepare(bytes, limits)?;
    let Prepared {
        decoder,
        format,
        jpeg,
        width,
        height,
        ..
    } = p;
    let mut decoder = decoder;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| image_error(e, format, limits))?;
    let partial = match jpeg {
        Some(j) if !j.complete => Some(Truncation {
            format,
            rows_missing: Some(grey_rows_at_bottom(&img)).filter(|&n| n > 0),
            rows: height,
        }),
        _ => None,
    };
    if let Some(truncation) = partial
        && !limits.allow_partial
    {
        return Err(Error::Truncated { truncation });
    }
    Ok(Input {
        pixels: input_pixels(&img, crop, orientation),
        format,
        width,
        height,
        partial,
    })
}

/// The bytes decoding `bytes` into the model's input would take at most, all buffers together (the count
/// [`DecodeLimits::max_decoded_bytes`] limits), read from the image's header without decoding its pixels; the
/// same errors as [`load_bytes`] for a content that is not an image or exceeds the limits. A server uses it to
/// let small images through while large ones wait their turn.
pub fn footprint(bytes: &[u8], limits: DecodeLimits) -> Result<u64> {
    Ok(prepare(bytes, limits)?.need)
}

/// Bytes of the scratch image `image`'s resize to 32x32 makes (one `Rgba<f32>` row of `width` per output row).
fn resize_scratch(width: u32) -> u64 {
    u64::from(width) * u64::from(SIDE) * 16
}

/// An image whose header was read and checked against the limits, its pixels not yet decoded.
struct Prepared<'a> {
    decoder: Box<dyn ImageDecoder + 'a>,
    format: ImageFormat,
    jpeg: Option<jpeg::Structure>,
    width: u32,
    height: u32,
    /// Every buffer decoding it takes, in bytes.
    need: u64,
}

fn image_error(e: image::ImageError, format: ImageFormat, limits: DecodeLimits) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::TooLarge {
            detail: format!(
                "{l} (the limits are {} pixels a side and {} MiB for all of one image's buffers)",
                limits.max_side,
                limits.max_decoded_bytes / (1024 * 1024)
            ),
        },
        source => Error::Decode {
            format: format!("{format:?}"),
            source,
        },
    }
}

fn prepare(bytes: &[u8], limits: DecodeLimits) -> Result<Prepared<'_>> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(Error::Read)?;
    let len = bytes.len() as u64;
    let Some(format) = reader.format() else {
        return Err(Error::NotAnImage {
            found: if len == 0 {
                "an empty file".to_string()
            } else {
                format!("unrecognised content ({len} bytes)")
            },
        });
    };
    let jpeg = (format == ImageFormat::Jpeg).then(|| jpeg::structure(bytes));
    if format == ImageFormat::Tiff
        && let Some(claimed) = container::tiff_oversized_tag(bytes)
    {
        return Err(Error::Corrupt {
            format: format!("{format:?}"),
            detail: format!(
                "a tag of its first directory claims {claimed} bytes, more than the file's {len}"
            ),
        });
    }
    let mib = limits.max_decoded_bytes / (1024 * 1024);
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    // The encoded bytes are held already; the decoders get the rest of the budget.
    l.max_alloc = Some(limits.max_decoded_bytes.saturating_sub(len).max(1));
    reader.limits(l);
    let decoder = reader
        .into_decoder()
        .map_err(|e| image_error(e, format, limits))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::EmptyImage { width, height });
    }
    let pixels = decoder.total_bytes();
    // The decoder's own working buffers: a progressive JPEG's decoder keeps every coefficient (i16) of every
    // component, padded to 16 pixels; the WebP decoder works in 4 bytes per pixel (ARGB) before the copy into
    // `pixels`.
    let working = match jpeg {
        Some(j) if j.progressive => {
            let pad = |v: u32| u64::from(v).div_ceil(16) * 16;
            2 * u64::from(j.components.max(1)) * pad(width) * pad(height)
        }
        _ if format == ImageFormat::WebP => {
            // Its frames may be larger than the canvas the header states: the decoder allocates for them.
            let (fw, fh) = container::webp_largest_frame(bytes).unwrap_or((0, 0));
            let frame = u64::from(fw) * u64::from(fh);
            4 * (u64::from(width) * u64::from(height)).max(frame)
        }
        _ => 0,
    };
    // Samples wider than 8 bits are rounded to 8 bits before the resize, in a copy of their own.
    let colour = decoder.color_type();
    let eight_bit = if colour.bytes_per_pixel() > colour.channel_count() {
        u64::from(width) * u64::from(height) * u64::from(colour.channel_count())
    } else {
        0
    };
    let working = working.saturating_add(eight_bit);
    let need = len
        .saturating_add(pixels)
        .saturating_add(working)
        .saturating_add(resize_scratch(width));
    if need > limits.max_decoded_bytes {
        let working = if working > 0 {
            format!(
                ", {} MiB of the decoder's working buffers",
                working / (1024 * 1024)
            )
        } else {
            String::new()
        };
        return Err(Error::TooLarge {
            detail: format!(
                "{width}x{height} pixels would take {} MiB to decode ({} MiB of pixels{working}; the limit is \
                 {mib} MiB)",
                need / (1024 * 1024),
                pixels / (1024 * 1024),
            ),
        });
    }
    Ok(Prepared {
        decoder: Box::new(decoder),
        format,
        jpeg,
        width,
        height,
        need,
    })
}

/// Rows at the bottom of `img` whose every byte is 128: what zune-jpeg writes where the data ran out.
fn grey_rows_at_bottom(img: &DynamicImage) -> u32 {
    let row = img.as_bytes().len() / img.height().max(1) as usize;
    if row == 0 {
        return 0;
    }
    img.as_bytes()
        .rchunks_exact(row)
        .take_while(|r| r.iter().all(|&b| b == 128))
        .count() as u32
}

/// Crop, convert to RGB8, resize to 32x32 and reorder to channel-major, for an image that is already upright.
///
/// The crop and the resize work on `img` as it is (no full-size copy, no conversion); only the 32x32 result is
/// converted to RGB (grey replicated, alpha dropped, 16-bit rounded to 8-bit).
pub fn to_input(img: &DynamicImage, crop: Crop) -> Vec<u8> {
    input_pixels(img, crop, Orientation::NoTransforms)
}

/// [`to_input`] for an image stored with EXIF `orientation`: the centred square is chosen as it is in the upright
/// image, and the orientation is applied to the 32x32 result.
fn input_pixels(img: &DynamicImage, crop: Crop, orientation: Orientation) -> Vec<u8> {
    let (w, h) = (img.width(), img.height());
    let rect = match crop {
        Crop::None => (0, 0, w, h),
        Crop::Center => {
            // Which stored axes run backwards in the upright image; where the odd pixel of a centred crop goes
            // depends on it.
            let (x_rev, y_rev) = match orientation {
                Orientation::NoTransforms | Orientation::Rotate90FlipH => (false, false),
                Orientation::FlipHorizontal | Orientation::Rotate270 => (true, false),
                Orientation::FlipVertical | Orientation::Rotate90 => (false, true),
                Orientation::Rotate180 | Orientation::Rotate270FlipH => (true, true),
            };
            let s = w.min(h);
            let off = |len: u32, rev: bool| {
                if rev {
                    (len - s).div_ceil(2)
                } else {
                    (len - s) / 2
                }
            };
            (off(w, x_rev), off(h, y_rev), s, s)
        }
    };
    let mut small = match img {
        DynamicImage::ImageLuma8(b) => DynamicImage::from(crop_resize(b, rect)),
        DynamicImage::ImageLumaA8(b) => DynamicImage::from(crop_resize(b, rect)),
        DynamicImage::ImageRgb8(b) => DynamicImage::from(crop_resize(b, rect)),
        DynamicImage::ImageRgba8(b) => DynamicImage::from(crop_resize(b, rect)),
        // Wider samples are rounded to 8 bits first (a copy at 8 bits, counted in the limits), so that a 16-bit
        // image and its 8-bit version give the same pixels.
        DynamicImage::ImageLuma16(_) => DynamicImage::from(crop_resize(&img.to_luma8(), rect)),
        DynamicImage::ImageLumaA16(_) => {
            DynamicImage::from(crop_resize(&img.to_luma_alpha8(), rect))
        }
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgb32F(_) => {
            DynamicImage::from(crop_resize(&img.to_rgb8(), rect))
        }
        DynamicImage::ImageRgba16(_) | DynamicImage::ImageRgba32F(_) => {
            DynamicImage::from(crop_resize(&img.to_rgba8(), rect))
        }
        // A colour type added to `image` later: through RGB8 (a full-size copy).
        other => DynamicImage::from(crop_resize(&other.to_rgb8(), rect)),
    };
    small.apply_orientation(orientation);
    let rgb = small.to_rgb8();
    let plane = (SIDE * SIDE) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = px.0[c];
        }
    }
    chw
}

/// The `(x, y, w, h)` region of `b`, resized to 32x32 (not resampled when it is 32x32 already).
fn crop_resize<P>(
    b: &ImageBuffer<P, Vec<P::Subpixel>>,
    (x, y, w, h): (u32, u32, u32, u32),
) -> ImageBuffer<P, Vec<P::Subpixel>>
where
    P: Pixel + 'static,
    P::Subpixel: 'static,
{
    let view = image::imageops::crop_imm(b, x, y, w, h);
    if (w, h) == (SIDE, SIDE) {
        view.to_image()
    } else {
        image::imageops::resize(&*view, SIDE, SIDE, image::imageops::FilterType::Triangle)
    }
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
    fn orientation_applied_after_the_resize_matches_applying_it_first() {
        // Odd differences between the sides, so that where the centred square's odd pixel goes matters.
        let img = DynamicImage::ImageRgb8(ImageBuffer::from_fn(75, 44, |x, y| {
            Rgb([(x * 3) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
        }));
        for o in [
            Orientation::NoTransforms,
            Orientation::Rotate90,
            Orientation::Rotate180,
            Orientation::Rotate270,
            Orientation::FlipHorizontal,
            Orientation::FlipVertical,
            Orientation::Rotate90FlipH,
            Orientation::Rotate270FlipH,
        ] {
            for crop in [Crop::Center, Crop::None] {
                let mut upright = img.clone();
                upright.apply_orientation(o);
                let want = to_input(&upright, crop);
                let got = input_pixels(&img, crop, o);
                // The same pixels, up to the float rounding of the resize's two passes taken in the other order.
                let worst = want
                    .iter()
                    .zip(&got)
                    .map(|(a, b)| a.abs_diff(*b))
                    .max()
                    .unwrap();
                assert!(worst <= 1, "{o:?} {crop:?}: off by {worst}");
            }
        }
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
            max_decoded_bytes: 20_000,
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
