//! The decoded-size limit covers every buffer decoding one image makes (the RGB conversion included), measured
//! with a counting allocator: the grey bomb of issue 26 (a 136 KB PNG of 12000x12000 grey pixels) took 144 MB
//! decoded plus 432 MB converted to RGB.

use cifar10_imagefile::{Crop, DecodeLimits, ErrorKind, ImageFormat, load_bytes};
use image::{DynamicImage, GrayImage, ImageEncoder, Rgb, RgbImage};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's layout goes to the system allocator unchanged.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = NOW.fetch_add(l.size(), Ordering::SeqCst) + l.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Ordering::SeqCst);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The tests of this file measure one at a time (the counter is process-wide).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Bytes allocated at the peak of `f`, above what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = NOW.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

const MIB: usize = 1024 * 1024;

fn grey_png(side: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let img = GrayImage::new(side, side);
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), side, side, image::ExtendedColorType::L8)
        .unwrap();
    out
}

#[test]
fn the_grey_bomb_stays_within_the_limit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let png = grey_png(12_000);
    assert!(png.len() < 1024 * 1024, "{} bytes", png.len());
    let limits = DecodeLimits::default();
    let (input, peak) = peak_of(|| load_bytes(&png, Crop::Center, limits));
    let input = input.unwrap();
    assert_eq!((input.width, input.height), (12_000, 12_000));
    assert!(
        peak as u64 <= limits.max_decoded_bytes,
        "peak {} MiB over the {} MiB limit",
        peak / MIB,
        limits.max_decoded_bytes / MIB as u64
    );
    // 144 MB of grey and nothing near its 432 MB RGB copy.
    assert!(peak < 160 * MIB, "peak {} MiB", peak / MIB);
    // Under a limit below what it needs it is refused before its pixels are decoded.
    let tight = DecodeLimits {
        max_decoded_bytes: 140 * MIB as u64,
        ..limits
    };
    let (e, peak) = peak_of(|| load_bytes(&png, Crop::Center, tight));
    let e = e.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(
        e.to_string().contains("12000x12000 pixels would take"),
        "{e}"
    );
    assert!(peak < 10 * MIB, "refused after {} MiB", peak / MIB);
}

#[test]
fn every_format_and_shape_stays_within_the_limit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let rgb = RgbImage::from_fn(3000, 1000, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]));
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::WebP,
    ] {
        for img in [
            DynamicImage::ImageRgb8(rgb.clone()),
            DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb.clone()).to_luma8()),
        ] {
            let mut bytes = Vec::new();
            if img.write_to(&mut Cursor::new(&mut bytes), format).is_err() {
                continue; // e.g. grey WebP: not written by `image`
            }
            // At the colour type the file decodes to (a grey BMP is stored with a palette and decodes to RGB).
            let pixels = image::load_from_memory(&bytes).unwrap().as_bytes().len() as u64;
            // The limit: the file, its pixels, WebP's working buffer, the resize's scratch and 1 MiB for the decoders'
            // row buffers.
            let decoder = if format == ImageFormat::WebP {
                4 * 3000 * 1000
            } else {
                0
            };
            let limit = bytes.len() as u64 + pixels + decoder + 3000 * 32 * 16 + MIB as u64;
            for crop in [Crop::Center, Crop::None] {
                let limits = DecodeLimits {
                    max_decoded_bytes: limit,
                    ..DecodeLimits::default()
                };
                let (r, peak) = peak_of(|| load_bytes(&bytes, crop, limits));
                r.unwrap_or_else(|e| panic!("{format:?} {:?}: {e}", img.color()));
                assert!(
                    peak as u64 <= limit,
                    "{format:?} {:?} {crop:?}: peak {} KiB over the limit {} KiB",
                    img.color(),
                    peak / 1024,
                    limit / 1024
                );
            }
        }
    }
}

#[test]
fn a_progressive_jpeg_counts_its_coefficients() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // 3000x2000, 4:4:4, progressive (written by Pillow): the decoder keeps 2 bytes per sample of coefficients.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/progressive_3000x2000.jpg");
    let bytes = std::fs::read(path).unwrap();
    let pixels = 3000 * 2000 * 3;
    let need = bytes.len() as u64 + pixels + 2 * pixels + 3000 * 32 * 16;
    let limits = DecodeLimits {
        max_decoded_bytes: need + MIB as u64,
        ..DecodeLimits::default()
    };
    let (r, peak) = peak_of(|| load_bytes(&bytes, Crop::Center, limits));
    r.unwrap();
    assert!(
        peak as u64 <= limits.max_decoded_bytes,
        "peak {} KiB, limit {} KiB",
        peak / 1024,
        limits.max_decoded_bytes / 1024
    );
    // Counting only the pixels would let it through a limit it overruns.
    let pixels_only = DecodeLimits {
        max_decoded_bytes: bytes.len() as u64 + pixels + 3000 * 32 * 16 + MIB as u64,
        ..DecodeLimits::default()
    };
    assert_eq!(
        load_bytes(&bytes, Crop::Center, pixels_only)
            .unwrap_err()
            .kind(),
        ErrorKind::TooLarge
    );
}
