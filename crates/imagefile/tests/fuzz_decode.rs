//! Fuzzing the decoder on stable Rust: a seeded mutation loop over valid PNG, JPEG (baseline and progressive),
//! GIF, WebP (lossy and lossless), BMP and TIFF files. Every mutated input must give an image or a typed
//! [`Error`], never a panic, and never allocate beyond the limits it runs under. The inputs that once failed are
//! kept in `tests/fixtures/regressions/` and decoded first.
//!
//! `FUZZ_CASES=N` runs N cases per seed file instead of the default (a few seconds in all).

use cifar10_imagefile::{Crop, DecodeLimits, ImageFormat, load_bytes};
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::path::{Path, PathBuf};
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

/// The tests of this file measure one at a time (the counter and the panic hook are process-wide).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// SplitMix64: a seeded generator with no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits: bit flips, interesting bytes, big 16/32-bit values, cuts, deletions, duplicated
/// or inserted runs.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len().max(1);
        let at = rng.below(n);
        match rng.below(8) {
            0 => {
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                const INTERESTING: [u8; 8] = [0, 1, 0x7F, 0x80, 0xFE, 0xFF, 0x10, 0x40];
                if let Some(x) = b.get_mut(at) {
                    *x = INTERESTING[rng.below(8)];
                }
            }
            2 => {
                let v: [u8; 4] = match rng.below(4) {
                    0 => [0xFF; 4],
                    1 => [0; 4],
                    2 => [0x7F, 0xFF, 0xFF, 0xFF],
                    _ => (rng.next() as u32).to_be_bytes(),
                };
                let k = if rng.below(2) == 0 { 2 } else { 4 };
                for (i, x) in v.iter().take(k).enumerate() {
                    if let Some(y) = b.get_mut(at + i) {
                        *y = *x;
                    }
                }
            }
            3 => b.truncate(at),
            4 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                b.drain(at.min(end)..end);
            }
            5 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                let run: Vec<u8> = b[at.min(end)..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, run);
            }
            6 => {
                let run: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(at.min(b.len())..at.min(b.len()), run);
            }
            _ => {
                if let Some(x) = b.get_mut(at) {
                    *x = x.wrapping_add(1 + rng.below(4) as u8);
                }
            }
        }
    }
    b
}

/// CRC-32 (IEEE), as PNG chunks carry.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Rewrites the CRC of every whole chunk of a PNG, so that a mutant reaches the decoder past the checksum.
fn fix_png_crcs(b: &mut [u8]) {
    let mut i = 8;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let Some(end) = (i + 8).checked_add(len).filter(|&e| e + 4 <= b.len()) else {
            return;
        };
        let crc = crc32(&b[i + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        i = end + 4;
    }
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let rgb = RgbImage::from_fn(40, 24, |x, y| {
        Rgb([x as u8 * 6, y as u8 * 9, (x ^ y) as u8])
    });
    let rgba = RgbaImage::from_fn(20, 20, |x, y| {
        Rgba([x as u8 * 9, y as u8 * 9, 50, (x + y) as u8 * 5])
    });
    let grey = GrayImage::from_fn(33, 17, |x, y| Luma([(x * y) as u8]));
    let read = |n: &str| std::fs::read(fixtures().join(n)).unwrap();
    vec![
        (
            "png-rgb",
            encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png),
        ),
        (
            "png-rgba",
            encode(DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png),
        ),
        (
            "png-grey",
            encode(DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Png),
        ),
        (
            "png-16",
            encode(
                DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(rgb.clone()).to_rgb16()),
                ImageFormat::Png,
            ),
        ),
        (
            "jpeg",
            encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Jpeg),
        ),
        (
            "jpeg-grey",
            encode(DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Jpeg),
        ),
        ("jpeg-progressive", read("progressive.jpg")),
        ("gif", read("palette.gif")),
        (
            "gif-small",
            encode(DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Gif),
        ),
        ("webp-lossy", read("lossy.webp")),
        (
            "webp-lossless",
            encode(DynamicImage::ImageRgba8(rgba), ImageFormat::WebP),
        ),
        (
            "bmp",
            encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Bmp),
        ),
        (
            "bmp-grey",
            encode(DynamicImage::ImageLuma8(grey), ImageFormat::Bmp),
        ),
        (
            "tiff",
            encode(DynamicImage::ImageRgb8(rgb), ImageFormat::Tiff),
        ),
    ]
}

/// The limits the mutants run under: small, so that a header claiming a huge image is refused and an allocation
/// beyond the limit shows.
const LIMITS: DecodeLimits = DecodeLimits {
    max_side: 4096,
    max_decoded_bytes: 4 * 1024 * 1024,
    allow_partial: false,
};
/// What decoders may allocate beyond the limit in small bookkeeping (tables, row buffers, a zlib window).
const SLACK: usize = 1024 * 1024;
/// A damaged lossy WebP can make `image-webp` (0.2) allocate a partition buffer of the size its header claims
/// (a 24-bit field: at most 16 MiB) before it finds the data missing; found by this test (12 MiB under a 4 MiB
/// limit) and documented with [`DecodeLimits`].
const WEBP_PARTITION: usize = 16 * 1024 * 1024;

/// Decodes `bytes` under [`LIMITS`] (and with partial images allowed); `Err` describes a panic or an
/// allocation beyond the limit.
fn check(bytes: &[u8]) -> Result<bool, String> {
    let mut ok = false;
    for limits in [
        LIMITS,
        DecodeLimits {
            allow_partial: true,
            ..LIMITS
        },
    ] {
        let base = NOW.load(Ordering::SeqCst);
        PEAK.store(base, Ordering::SeqCst);
        let r = std::panic::catch_unwind(|| load_bytes(bytes, Crop::Center, limits));
        let peak = PEAK.load(Ordering::SeqCst) - base;
        match r {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(format!("panic: {msg}"));
            }
            Ok(r) => ok |= r.is_ok(),
        }
        let webp = bytes.get(8..12) == Some(b"WEBP");
        if peak > LIMITS.max_decoded_bytes as usize + SLACK + if webp { WEBP_PARTITION } else { 0 }
        {
            return Err(format!(
                "allocated {} KiB under a limit of {} KiB",
                peak / 1024,
                LIMITS.max_decoded_bytes / 1024
            ));
        }
    }
    Ok(ok)
}

#[test]
fn regressions_decode_without_panic() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = fixtures().join("regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        if let Err(why) = check(&bytes) {
            panic!("{}: {why}", e.path().display());
        }
        n += 1;
    }
    println!("{n} regression inputs");
}

#[test]
fn mutated_images_give_images_or_typed_errors() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // Panics are caught and reported below; keep the default hook from printing each one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut total = 0;
    for (s, (name, seed)) in seeds().into_iter().enumerate() {
        assert!(
            check(&seed).unwrap(),
            "{name}: the seed itself does not decode"
        );
        let mut rng = Rng(0x5EED_0000 + s as u64);
        let mut decoded = 0;
        for case in 0..cases {
            let mut m = mutate(&seed, &mut rng);
            // Half the PNG mutants get their checksums mended: the rest test the checksum itself.
            if name.starts_with("png") && case % 2 == 0 {
                fix_png_crcs(&mut m);
            }
            total += 1;
            match check(&m) {
                Ok(ok) => decoded += usize::from(ok),
                Err(why) => {
                    let path =
                        std::env::temp_dir().join(format!("imagefile-fuzz-{name}-{case}.bin"));
                    let _ = std::fs::write(&path, &m);
                    failures.push(format!(
                        "{name} case {case}: {why} (input saved as {})",
                        path.display()
                    ));
                }
            }
        }
        println!("{name}: {cases} cases, {decoded} still decoded");
    }
    std::panic::set_hook(hook);
    println!("{total} cases in all");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
