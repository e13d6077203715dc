//! A partially decoded image is an error naming what is missing, unless the caller allows partial images.

use cifar10_imagefile::{Crop, DecodeLimits, ErrorKind, ImageFormat, load_bytes, load_path};
use image::{DynamicImage, Rgb, RgbImage};
use std::io::Cursor;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A 256x192 photo-like baseline JPEG (gradients and texture), as a camera or browser would write one.
fn photo_jpeg() -> Vec<u8> {
    let img = RgbImage::from_fn(256, 192, |x, y| {
        Rgb([
            x as u8,
            (y * 4 / 3) as u8,
            ((x * 7 + y * 13) % 97 + 80) as u8,
        ])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

fn allow() -> DecodeLimits {
    DecodeLimits {
        allow_partial: true,
        ..DecodeLimits::default()
    }
}

#[test]
fn a_jpeg_cut_at_25_50_90_percent_is_refused_with_the_rows_missing() {
    let j = photo_jpeg();
    let whole = load_bytes(&j, Crop::Center, DecodeLimits::default()).unwrap();
    assert_eq!(whole.partial, None);
    let mut last = 100;
    for pct in [25, 50, 90] {
        let cut = &j[..j.len() * pct / 100];
        let e = load_bytes(cut, Crop::Center, DecodeLimits::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{pct}%: {e}");
        let msg = e.to_string();
        assert!(msg.starts_with("truncated: "), "{pct}%: {msg}");
        // "truncated: N% of the rows missing ...": fewer rows missing the more bytes there are.
        let missing: u32 = msg["truncated: ".len()..]
            .split('%')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{pct}%: no percentage in {msg}"));
        assert!(missing > 0 && missing < last, "{pct}%: {msg}");
        assert!(msg.contains("of the rows missing"), "{msg}");
        last = missing;
        // Allowed, the same bytes decode and say what is missing.
        let partial = load_bytes(cut, Crop::Center, allow()).unwrap();
        let t = partial.partial.expect("a partial image says so");
        assert_eq!((t.format, t.rows), (ImageFormat::Jpeg, 192));
        assert!(t.rows_missing.is_some_and(|m| m > 0 && m < 192), "{t:?}");
        assert_eq!(t.to_string(), msg);
    }
}

#[test]
fn a_jpeg_missing_only_its_end_marker_or_with_trailing_bytes() {
    let j = photo_jpeg();
    // Only the end-of-image marker missing: every row decodes, but the file is still cut short.
    let e = load_bytes(&j[..j.len() - 2], Crop::Center, DecodeLimits::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("truncated: the JPEG data ends before"),
        "{e}"
    );
    // Bytes after the end-of-image marker (some cameras append data) are not damage.
    let mut longer = j.clone();
    longer.extend_from_slice(b"\0\0trailing data");
    assert_eq!(
        load_bytes(&longer, Crop::Center, DecodeLimits::default())
            .unwrap()
            .pixels,
        load_bytes(&j, Crop::Center, DecodeLimits::default())
            .unwrap()
            .pixels
    );
}

#[test]
fn a_progressive_jpeg_cut_short_is_refused() {
    let j = fixture("progressive.jpg");
    assert!(load_bytes(&j, Crop::Center, DecodeLimits::default()).is_ok());
    for pct in [25, 50, 90] {
        let cut = &j[..j.len() * pct / 100];
        let e = load_bytes(cut, Crop::Center, DecodeLimits::default()).unwrap_err();
        assert!(e.to_string().starts_with("truncated: "), "{pct}%: {e}");
        assert!(
            load_bytes(cut, Crop::Center, allow())
                .unwrap()
                .partial
                .is_some()
        );
    }
}

#[test]
fn other_formats_cut_short_are_decoder_errors_even_when_partial_is_allowed() {
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(RgbImage::from_fn(64, 64, |x, y| Rgb([x as u8, y as u8, 3])))
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    for (name, bytes) in [
        ("png", png),
        ("webp", fixture("lossy.webp")),
        ("gif", fixture("palette.gif")),
    ] {
        for pct in [25, 50, 90] {
            let cut = &bytes[..bytes.len() * pct / 100];
            for limits in [DecodeLimits::default(), allow()] {
                let e = load_bytes(cut, Crop::Center, limits).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{name} {pct}%: {e}");
            }
        }
    }
}

#[test]
fn a_truncated_file_on_disk_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.jpg");
    let j = photo_jpeg();
    std::fs::write(&path, &j[..j.len() / 2]).unwrap();
    let e = load_path(&path, Crop::Center, DecodeLimits::default()).unwrap_err();
    assert!(e.to_string().contains("of the rows missing"), "{e}");
}
