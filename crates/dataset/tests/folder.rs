//! Image-folder data sets: layout, formats, bad inputs, order, exact pixels and the cache, on trees the tests
//! write into temporary folders.

use cifar10_dataset::{
    CacheMode, Error, FolderData, FolderOptions, ImageOrder, MAX_CLASSES, is_folder_layout,
    load_folder,
};
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A CMYK JPEG (40x24, every pixel C=0 M=255 Y=255 K=0, i.e. red; Adobe APP14 marker, transform 0), written by
/// Pillow 13 (`Image.new("CMYK", (40, 24), (0, 255, 255, 0)).save("cmyk.jpg", quality=95)`): the `image` crate
/// cannot write CMYK.
const CMYK_JPEG: &[u8] = include_bytes!("fixtures/cmyk.jpg");

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// An RGB image with a pattern that depends on `seed`.
fn pattern(w: u32, h: u32, seed: u8) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (x as u8).wrapping_mul(7).wrapping_add(seed),
            (y as u8).wrapping_mul(5).wrapping_add(seed),
            ((x ^ y) as u8).wrapping_add(seed.wrapping_mul(3)),
        ])
    }))
}

fn uniform(w: u32, h: u32, rgb: [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_pixel(w, h, Rgb(rgb)))
}

fn put(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn png(img: &DynamicImage) -> Vec<u8> {
    encode(img, ImageFormat::Png)
}

fn no_cache() -> FolderOptions {
    FolderOptions {
        cache: CacheMode::Off,
        ..FolderOptions::default()
    }
}

fn load(root: &Path, opts: &FolderOptions) -> cifar10_dataset::Result<FolderData> {
    let mut last = (usize::MAX, usize::MAX);
    let r = load_folder(root, opts, &mut |d, t| {
        assert!(d <= t);
        last = (d, t);
    });
    if r.is_ok() {
        assert_eq!(last.0, last.1, "progress ends at the total");
    }
    r
}

/// The mean of each colour plane of image `i`.
fn means(set: &cifar10_dataset::ImageSet, i: usize) -> [f64; 3] {
    let img = set.image(i);
    let m = |c: usize| {
        img[c * 1024..(c + 1) * 1024]
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / 1024.0
    };
    [m(0), m(1), m(2)]
}

#[test]
fn mixed_formats_sizes_and_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Class "cat": every format, several sizes.
    put(root, "train/cat/a.png", &png(&pattern(48, 40, 1)));
    put(
        root,
        "train/cat/b.JPG",
        &encode(&uniform(64, 64, [200, 30, 40]), ImageFormat::Jpeg),
    );
    let bmp32 = pattern(32, 32, 9);
    put(root, "train/cat/c.bmp", &encode(&bmp32, ImageFormat::Bmp));
    put(
        root,
        "train/cat/d.gif",
        &encode(&uniform(20, 30, [0, 0, 255]), ImageFormat::Gif),
    );
    put(
        root,
        "train/cat/e.webp",
        &encode(&pattern(50, 50, 3), ImageFormat::WebP),
    );
    put(
        root,
        "train/cat/f.tiff",
        &encode(&pattern(33, 31, 4), ImageFormat::Tiff),
    );
    put(root, "train/cat/g-cmyk.jpg", CMYK_JPEG);
    // A 16-bit PNG: 0x8080 rounds to 128, 0xFFFF to 255, 0 to 0.
    let deep =
        DynamicImage::ImageRgb16(ImageBuffer::from_pixel(40, 40, Rgb([0x8080u16, 0xFFFF, 0])));
    put(root, "train/cat/h-16bit.png", &png(&deep));
    // Sub-folders of a class folder are followed; non-images and hidden files are not images.
    put(root, "train/cat/more/i.png", &png(&pattern(32, 32, 5)));
    put(root, "train/cat/notes.txt", b"not an image");
    put(root, "train/cat/.DS_Store", b"\0\0\0\x01Bud1");
    put(root, "train/README", b"loose file outside a class folder");
    // Spaces and non-ASCII letters in class names; the order is the bytes' order.
    put(root, "train/red fox/x.png", &png(&pattern(32, 32, 6)));
    put(root, "train/Äpfel/y.png", &png(&pattern(70, 35, 7)));
    put(root, "train/Zebra/z.png", &png(&pattern(32, 32, 8)));
    put(root, "test/cat/t.png", &png(&pattern(32, 32, 10)));
    put(
        root,
        "test/Äpfel/u.jpeg",
        &encode(&pattern(90, 90, 11), ImageFormat::Jpeg),
    );
    assert!(is_folder_layout(root));

    let data = load(root, &no_cache()).unwrap();
    let names = ["Zebra", "cat", "red fox", "Äpfel"];
    assert_eq!(data.train.class_names(), &names);
    assert_eq!(data.test.class_names(), &names);
    assert!(data.val.is_none());
    // Class-major; within "cat" by path: a.png, b.JPG, c.bmp, d.gif, e.webp, f.tiff, g-cmyk.jpg, h-16bit.png,
    // more/i.png.
    assert_eq!(data.train.labels(), &[0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3]);
    assert_eq!(data.test.labels(), &[1, 3]);
    assert!(data.skipped.is_empty());
    let mut ignored: Vec<String> = data
        .ignored
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    ignored.sort();
    assert_eq!(ignored, ["train/README", "train/cat/notes.txt"]);
    assert_eq!(data.cache.file, None);

    // The 32x32 BMP is not resampled: bit for bit.
    let bmp_expected = imagefile_chw(&bmp32);
    assert_eq!(data.train.image(3), bmp_expected.as_slice());
    // JPEG (lossy) close to its colour, GIF exact for a flat colour.
    let jpeg = means(&data.train, 2);
    assert!(
        (jpeg[0] - 200.0).abs() < 3.0 && (jpeg[1] - 30.0).abs() < 3.0,
        "{jpeg:?}"
    );
    assert_eq!(means(&data.train, 4), [0.0, 0.0, 255.0]);
    // The CMYK JPEG is converted to RGB: C=0 M=255 Y=255 K=0 is red.
    let cmyk = means(&data.train, 7);
    eprintln!("CMYK JPEG decoded to mean RGB {cmyk:?}");
    assert!(
        cmyk[0] > 240.0 && cmyk[1] < 15.0 && cmyk[2] < 15.0,
        "{cmyk:?}"
    );
    assert_eq!(means(&data.train, 8), [128.0, 255.0, 0.0]);
}

/// `[3, 32, 32]` planar bytes of a 32x32 RGB image.
fn imagefile_chw(img: &DynamicImage) -> Vec<u8> {
    let rgb = img.to_rgb8();
    assert_eq!(rgb.dimensions(), (32, 32));
    let mut out = vec![0u8; 3072];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * 1024 + i] = px.0[c];
        }
    }
    out
}

#[test]
fn bad_images_stop_the_load_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let good = png(&pattern(40, 40, 1));
    put(root, "train/a/1.png", &good);
    put(root, "train/a/2-truncated.png", &good[..good.len() / 2]);
    put(root, "train/b/3.jpg", b"this is text with an image's name");
    put(root, "train/b/4.png", &good);
    put(root, "test/a/5.gif", b"");
    put(root, "test/b/6.png", &good);

    let err = load(root, &no_cache()).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    match &err {
        Error::BadImages { images } => {
            let files: Vec<_> = images
                .iter()
                .map(|(p, _)| p.strip_prefix(root).unwrap().to_path_buf())
                .collect();
            assert_eq!(
                files,
                [
                    Path::new("train/a/2-truncated.png"),
                    Path::new("train/b/3.jpg"),
                    Path::new("test/a/5.gif")
                ]
            );
        }
        other => panic!("expected BadImages, got {other:?}"),
    }
    assert!(
        msg.starts_with("3 image file(s) cannot be decoded: "),
        "{msg}"
    );
    assert!(msg.contains("2-truncated.png: "), "{msg}");
    assert!(msg.contains("3.jpg: not an image"), "{msg}");
    assert!(msg.contains("5.gif: not an image: expected PNG, JPEG, BMP, GIF, WebP or TIFF content, found an empty file"), "{msg}");
    assert!(msg.contains("skip_bad_images"), "{msg}");

    let opts = FolderOptions {
        skip_bad_images: true,
        ..no_cache()
    };
    let data = load(root, &opts).unwrap();
    assert_eq!(data.train.labels(), &[0, 1]);
    assert_eq!(data.test.labels(), &[1]);
    assert_eq!(data.skipped.len(), 3);
    assert_eq!(data.skipped[0].path, root.join("train/a/2-truncated.png"));
    assert!(
        data.skipped[2].reason.contains("empty file"),
        "{:?}",
        data.skipped[2]
    );
}

#[test]
fn an_image_over_the_decoder_limits_is_a_bad_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "train/a/big.png", &png(&pattern(200, 100, 1)));
    put(root, "test/a/small.png", &png(&pattern(32, 32, 1)));
    let opts = FolderOptions {
        limits: cifar10_dataset::folder::DecodeLimits {
            max_side: 100,
            ..Default::default()
        },
        ..no_cache()
    };
    let msg = load(root, &opts).unwrap_err().to_string();
    assert!(msg.contains("big.png: too large to decode safely"), "{msg}");
}

fn folder_error(root: &Path) -> (PathBuf, String) {
    match load(root, &no_cache()) {
        Err(Error::Folder { path, message }) => (path, message),
        other => panic!("expected a folder error, got {other:?}"),
    }
}

#[test]
fn layout_errors_name_the_folder_and_what_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let img = png(&pattern(32, 32, 1));

    // Nothing there.
    let (path, msg) = folder_error(root);
    assert_eq!(path, root);
    assert!(msg.contains("train/ is missing (an empty folder)"), "{msg}");
    assert!(!is_folder_layout(root));

    // train/ but no test/.
    put(root, "train/cat/1.png", &img);
    put(root, "notes.txt", b"x");
    let (_, msg) = folder_error(root);
    assert!(
        msg.contains("test/ is missing (found \"notes.txt\", \"train/\")"),
        "{msg}"
    );
    assert!(!is_folder_layout(root));

    // A test class that training lacks.
    put(root, "test/dog/1.png", &img);
    assert!(is_folder_layout(root));
    let (path, msg) = folder_error(root);
    assert_eq!(path, root.join("test/dog"));
    assert!(msg.contains("class \"dog\" has no folder in"), "{msg}");
    assert!(msg.contains("the training classes are \"cat\""), "{msg}");
    std::fs::remove_dir_all(root.join("test/dog")).unwrap();

    // test/ without class folders.
    put(root, "test/loose.png", &img);
    let (path, msg) = folder_error(root);
    assert_eq!(path, root.join("test"));
    assert!(msg.contains("found no sub-folder"), "{msg}");
    put(root, "test/cat/2.png", &img);

    // An empty class folder, then one with only a text file.
    std::fs::create_dir_all(root.join("train/empty")).unwrap();
    let (path, msg) = folder_error(root);
    assert_eq!(path, root.join("train/empty"));
    assert!(msg.contains("the class folder is empty"), "{msg}");
    put(root, "train/empty/readme.txt", b"x");
    let (path, msg) = folder_error(root);
    assert_eq!(path, root.join("train/empty"));
    assert!(
        msg.contains("holds no image file (1 other file(s)"),
        "{msg}"
    );
    std::fs::remove_dir_all(root.join("train/empty")).unwrap();

    // A val/ class that training lacks.
    put(root, "val/owl/1.png", &img);
    let (path, _) = folder_error(root);
    assert_eq!(path, root.join("val/owl"));
    std::fs::remove_dir_all(root.join("val/owl")).unwrap();
    put(root, "val/cat/1.png", &img);
    let data = load(root, &no_cache()).unwrap();
    assert_eq!(data.val.as_ref().map(|v| v.len()), Some(1));
    assert_eq!(data.test.len(), 1);
}

#[test]
fn more_than_256_classes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..=MAX_CLASSES {
        std::fs::create_dir_all(root.join(format!("train/c{i:03}"))).unwrap();
    }
    std::fs::create_dir_all(root.join("test/c000")).unwrap();
    let (path, msg) = folder_error(root);
    assert_eq!(path, root.join("train"));
    assert!(
        msg.contains("257 class folders: at most 256 classes"),
        "{msg}"
    );
}

/// CIFAR-style images: `n` random `[3, 32, 32]` images with labels `k % classes`.
fn cifar_like(n: usize, classes: usize, seed: u64) -> Vec<(Vec<u8>, u8)> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|k| {
            let px = (0..3072)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 32) as u8
                })
                .collect();
            (px, (k % classes) as u8)
        })
        .collect()
}

fn chw_to_png(chw: &[u8]) -> Vec<u8> {
    let img = ImageBuffer::from_fn(32, 32, |x, y| {
        let o = (y * 32 + x) as usize;
        Rgb([chw[o], chw[1024 + o], chw[2048 + o]])
    });
    png(&DynamicImage::ImageRgb8(img))
}

#[test]
fn lossless_32x32_pngs_load_bit_for_bit_in_either_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let names = ["airplane", "automobile", "bird"];
    let train = cifar_like(30, 3, 1);
    let test = cifar_like(9, 3, 2);
    // Named by the index in the "archive" (as `cargo xtask export-folder` does), so that ImageOrder::FileName
    // gives the archive's order back.
    for (split, set) in [("train", &train), ("test", &test)] {
        for (k, (px, label)) in set.iter().enumerate() {
            put(
                root,
                &format!("{split}/{}/{k:05}.png", names[*label as usize]),
                &chw_to_png(px),
            );
        }
    }
    let by_name = load(
        root,
        &FolderOptions {
            order: ImageOrder::FileName,
            ..no_cache()
        },
    )
    .unwrap();
    for (set, orig) in [(&by_name.train, &train), (&by_name.test, &test)] {
        assert_eq!(set.class_names(), &names);
        let pixels: Vec<u8> = orig.iter().flat_map(|(p, _)| p.iter().copied()).collect();
        let labels: Vec<u8> = orig.iter().map(|(_, l)| *l).collect();
        assert_eq!(set.labels(), labels.as_slice());
        assert!(set.pixels() == pixels.as_slice(), "pixels differ");
    }
    // Class-major: the archive's order, stably sorted by label.
    let class_major = load(root, &no_cache()).unwrap();
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.sort_by_key(|&k| train[k].1);
    assert_eq!(class_major.train, by_name.train.subset(&order));
}

#[test]
fn the_cache_is_used_then_rebuilt_when_a_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let n_per_class = 150;
    for c in ["a", "b"] {
        for i in 0..n_per_class {
            put(
                root,
                &format!("train/{c}/{i:04}.png"),
                &png(&pattern(64, 48, i as u8)),
            );
        }
        put(
            root,
            &format!("test/{c}/0.jpg"),
            &encode(&pattern(40, 40, 3), ImageFormat::Jpeg),
        );
    }
    put(root, "train/b/bad.png", b"broken");
    let total = 2 * n_per_class + 2 + 1;
    let opts = FolderOptions {
        skip_bad_images: true,
        ..FolderOptions::default()
    };
    let cache_file = root.join(cifar10_dataset::CACHE_FILE);

    let t = Instant::now();
    let first = load(root, &opts).unwrap();
    eprintln!(
        "first load ({total} files, decoded): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        (first.cache.decoded, first.cache.reused, first.cache.written),
        (total, 0, true)
    );
    assert_eq!(first.cache.file.as_deref(), Some(cache_file.as_path()));
    assert!(cache_file.is_file());
    assert_eq!(first.skipped.len(), 1);

    let t = Instant::now();
    let mut calls = Vec::new();
    let second = load_folder(root, &opts, &mut |d, t| calls.push((d, t))).unwrap();
    eprintln!(
        "second load (from the cache): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(calls, [(0, 0)]);
    assert!(second.cache.all_cached());
    assert_eq!((second.cache.reused, second.cache.written), (total, false));
    assert_eq!((&second.train, &second.test), (&first.train, &first.test));
    // The bad image's reason comes from the cache too.
    assert_eq!(second.skipped, first.skipped);
    // Without skip_bad_images the cached bad image still stops the load.
    let err = load(root, &FolderOptions::default()).unwrap_err();
    assert!(matches!(err, Error::BadImages { .. }), "{err}");

    // A changed file (new content and size) is decoded again, the others are reused.
    let changed = root.join("train/a/0007.png");
    std::fs::write(&changed, png(&uniform(32, 32, [1, 2, 3]))).unwrap();
    let third = load(root, &opts).unwrap();
    assert_eq!(
        (third.cache.decoded, third.cache.reused, third.cache.written),
        (1, total - 1, true)
    );
    assert_eq!(means(&third.train, 7), [1.0, 2.0, 3.0]);
    assert_ne!(third.train, first.train);

    // Same size, only the modification time changes: decoded again.
    let f = std::fs::File::options().write(true).open(&changed).unwrap();
    f.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000),
    )
    .unwrap();
    drop(f);
    let fourth = load(root, &opts).unwrap();
    assert_eq!((fourth.cache.decoded, fourth.cache.reused), (1, total - 1));
    assert_eq!(fourth.train, third.train);

    // A removed file: nothing to decode, but the cache is rewritten without it.
    std::fs::remove_file(root.join("train/b/bad.png")).unwrap();
    let fifth = load(root, &opts).unwrap();
    assert_eq!((fifth.cache.decoded, fifth.cache.written), (0, true));
    assert!(fifth.skipped.is_empty());

    // Other decode settings do not use the cache.
    let other = FolderOptions {
        crop: cifar10_dataset::folder::Crop::None,
        ..opts.clone()
    };
    assert_eq!(load(root, &other).unwrap().cache.decoded, total - 1);
    assert_eq!(load(root, &opts).unwrap().cache.decoded, total - 1);
    assert!(load(root, &opts).unwrap().cache.all_cached());

    // A corrupt cache (one flipped byte, then a truncated file) is not trusted: everything is decoded again.
    let mut bytes = std::fs::read(&cache_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&cache_file, &bytes).unwrap();
    let rebuilt = load(root, &opts).unwrap();
    assert_eq!(
        (rebuilt.cache.decoded, rebuilt.cache.written),
        (total - 1, true)
    );
    assert_eq!(rebuilt.train, fifth.train);
    let bytes = std::fs::read(&cache_file).unwrap();
    std::fs::write(&cache_file, &bytes[..bytes.len() - 100]).unwrap();
    assert_eq!(load(root, &opts).unwrap().cache.decoded, total - 1);
    std::fs::write(&cache_file, b"").unwrap();
    assert_eq!(load(root, &opts).unwrap().cache.decoded, total - 1);
    assert!(load(root, &opts).unwrap().cache.all_cached());
}

#[test]
fn the_cache_can_live_in_another_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let caches = dir.path().join("cache");
    put(&root, "train/a/1.png", &png(&pattern(40, 40, 1)));
    put(&root, "test/a/2.png", &png(&pattern(40, 40, 2)));
    let opts = FolderOptions {
        cache: CacheMode::In(caches.clone()),
        threads: 1,
        ..FolderOptions::default()
    };
    let first = load(&root, &opts).unwrap();
    let file = first.cache.file.clone().unwrap();
    assert_eq!(file.parent(), Some(caches.as_path()));
    assert!(file.is_file());
    assert!(!root.join(cifar10_dataset::CACHE_FILE).exists());
    assert_eq!(cifar10_dataset::cache_file(&root, &opts.cache), Some(file));
    assert!(load(&root, &opts).unwrap().cache.all_cached());

    // A cache location that cannot be written (here a file where the folder should be; a read-only data folder
    // alike) costs a warning, not the load.
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, b"x").unwrap();
    let opts = FolderOptions {
        cache: CacheMode::In(blocked),
        ..opts
    };
    let data = load(&root, &opts).unwrap();
    assert_eq!((data.cache.decoded, data.cache.written), (2, false));
    assert_eq!(data.train.len() + data.test.len(), 2);
}
