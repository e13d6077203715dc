//! `cifar predict` and `cifar inspect` on images and checkpoints the tests write themselves.

use candle_core::{Device, Tensor};
use image::{DynamicImage, ImageBuffer, ImageEncoder, Luma, LumaA, Rgb, Rgba};
use model::checkpoint;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CIFAR10_NORM: &str = r#"{"mean":[0.4914,0.4822,0.4465],"std":[0.247,0.2435,0.2616]}"#;

fn cifar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A seeded cnn-dnn checkpoint with a non-default normalization.
fn make_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("best.safetensors");
    let m = model::registry::build("cnn-dnn", &Device::Cpu, 7, 10).unwrap();
    let meta = HashMap::from([("normalize".to_string(), CIFAR10_NORM.to_string())]);
    checkpoint::save_model(m.as_ref(), &path, meta).unwrap();
    path
}

/// `cifar predict --json --top-k 10` → file name → (probabilities by class index) or error.
fn predict_json(
    ckpt: &Path,
    inputs: &[&Path],
    extra: &[&str],
) -> (Output, HashMap<String, Result<Vec<f32>, String>>) {
    let mut args: Vec<String> = vec![
        "predict".into(),
        "--checkpoint".into(),
        ckpt.display().to_string(),
        "--json".into(),
        "--top-k".into(),
        "10".into(),
        "--device".into(),
        "cpu".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    let o = Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(&args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let mut out = HashMap::new();
    for line in text(&o.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let file = Path::new(v["file"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if let Some(e) = v.get("error") {
            out.insert(file, Err(e.as_str().unwrap().to_string()));
        } else {
            let mut p = vec![0f32; 10];
            for t in v["top"].as_array().unwrap() {
                p[t["index"].as_u64().unwrap() as usize] =
                    t["probability"].as_f64().unwrap() as f32;
            }
            out.insert(file, Ok(p));
        }
    }
    (o, out)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A deterministic 8-bit RGB test picture (smooth gradients plus blocks).
fn picture(w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
            if (x / 8 + y / 8) % 2 == 0 { 200 } else { 40 },
        ])
    })
}

fn save(img: &DynamicImage, path: &Path) {
    img.save(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn every_format_and_colour_type_is_read_and_lossless_ones_agree_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let rgb = picture(40, 40);
    let grey = ImageBuffer::from_fn(40, 40, |x, y| Luma([((x * 5 + y * 3) % 256) as u8]));
    let grey16 = ImageBuffer::from_fn(40, 40, |x, y| {
        Luma([u16::from(grey.get_pixel(x, y).0[0]) * 257])
    });
    let rgba = ImageBuffer::from_fn(40, 40, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        Rgba([p[0], p[1], p[2], 255])
    });
    let rgb16 = ImageBuffer::from_fn(40, 40, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        Rgb([
            u16::from(p[0]) * 257,
            u16::from(p[1]) * 257,
            u16::from(p[2]) * 257,
        ])
    });
    let rgba16 = ImageBuffer::from_fn(40, 40, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        Rgba([
            u16::from(p[0]) * 257,
            u16::from(p[1]) * 257,
            u16::from(p[2]) * 257,
            65535,
        ])
    });
    let grey_alpha = ImageBuffer::from_fn(40, 40, |x, y| LumaA([grey.get_pixel(x, y).0[0], 255]));
    let grey_as_rgb = DynamicImage::ImageLuma8(grey.clone()).to_rgb8();
    // Lossless files grouped by the RGB8 image they must decode to.
    let rgb_group = [
        ("rgb8.png", DynamicImage::ImageRgb8(rgb.clone())),
        ("rgba8.png", DynamicImage::ImageRgba8(rgba.clone())),
        ("rgb16.png", DynamicImage::ImageRgb16(rgb16.clone())),
        ("rgba16.png", DynamicImage::ImageRgba16(rgba16)),
        ("rgb8.bmp", DynamicImage::ImageRgb8(rgb.clone())),
        ("rgba8.bmp", DynamicImage::ImageRgba8(rgba.clone())),
        ("rgb8.webp", DynamicImage::ImageRgb8(rgb.clone())),
        ("rgba8.webp", DynamicImage::ImageRgba8(rgba.clone())),
        ("rgb8.tiff", DynamicImage::ImageRgb8(rgb.clone())),
        ("rgb16.tif", DynamicImage::ImageRgb16(rgb16)),
    ];
    let grey_group = [
        ("grey_as_rgb.png", DynamicImage::ImageRgb8(grey_as_rgb)),
        ("l8.png", DynamicImage::ImageLuma8(grey.clone())),
        ("la8.png", DynamicImage::ImageLumaA8(grey_alpha)),
        ("l16.png", DynamicImage::ImageLuma16(grey16.clone())),
        ("l8.tiff", DynamicImage::ImageLuma8(grey.clone())),
        ("l16.tiff", DynamicImage::ImageLuma16(grey16)),
        ("l8.bmp", DynamicImage::ImageLuma8(grey.clone())),
    ];
    for (name, img) in rgb_group.iter().chain(&grey_group) {
        save(img, &imgs.join(name));
    }
    // Lossy or palette formats: only that they are read.
    save(
        &DynamicImage::ImageRgb8(rgb.clone()),
        &imgs.join("rgb8.jpg"),
    );
    save(
        &DynamicImage::ImageLuma8(grey.clone()),
        &imgs.join("l8.jpeg"),
    );
    save(
        &DynamicImage::ImageRgba8(rgba.clone()),
        &imgs.join("anim.gif"),
    );
    // A GIF of two frames: the first is used.
    {
        let f = std::fs::File::create(imgs.join("two_frames.gif")).unwrap();
        let mut enc = image::codecs::gif::GifEncoder::new(f);
        let frames = [
            rgba.clone(),
            ImageBuffer::from_pixel(40, 40, Rgba([0, 0, 0, 255])),
        ];
        enc.encode_frames(frames.into_iter().map(image::Frame::new))
            .unwrap();
    }
    let (o, got) = predict_json(&ckpt, &[&imgs], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(got.len(), rgb_group.len() + grey_group.len() + 4, "{got:?}");
    for (name, r) in &got {
        let p = r.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        let sum: f32 = p.iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-4,
            "{name}: probabilities sum to {sum}"
        );
    }
    for group in [&rgb_group[..], &grey_group[..]] {
        let first = got[group[0].0].as_ref().unwrap();
        for (name, _) in group {
            assert_eq!(
                got[*name].as_ref().unwrap(),
                first,
                "{name} vs {}",
                group[0].0
            );
        }
    }
    // The JPEG of the same picture is close; the GIF's first frame is the picture (quantised), not black.
    let p_png = got["rgb8.png"].as_ref().unwrap();
    assert!(max_diff(got["rgb8.jpg"].as_ref().unwrap(), p_png) < 0.05);
    assert!(
        max_diff(
            got["two_frames.gif"].as_ref().unwrap(),
            got["anim.gif"].as_ref().unwrap()
        ) < 1e-6,
        "the GIF's second frame was used"
    );
}

#[test]
fn a_32x32_png_gives_exactly_the_models_own_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let img = ImageBuffer::from_fn(32, 32, |x, y| {
        Rgb([(x * 7 + y) as u8, (y * 5) as u8, ((x ^ y) * 8) as u8])
    });
    let file = dir.path().join("x.png");
    save(&DynamicImage::ImageRgb8(img.clone()), &file);
    let (o, got) = predict_json(&ckpt, &[&file], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The same image through the library directly: CHW, normalize, forward, softmax.
    let (net, meta) = checkpoint::load_model_with_meta(&ckpt, &Device::Cpu).unwrap();
    assert_eq!(meta.normalize.mean, [0.4914, 0.4822, 0.4465]);
    let mut chw = vec![0u8; 3 * 1024];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            chw[c * 1024 + i] = p.0[c];
        }
    }
    let mut x = vec![0f32; chw.len()];
    let norm = augment::Normalize {
        mean: meta.normalize.mean,
        std: meta.normalize.std,
    };
    augment::normalize_into(&chw, &mut x, &norm);
    let x = Tensor::from_vec(x, (1, 3, 32, 32), &Device::Cpu).unwrap();
    let logits = net.forward(&x, model::Mode::Eval).unwrap();
    let want = candle_nn::ops::softmax_last_dim(&logits)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(got["x.png"].as_ref().unwrap(), &want[0]);
    // TTA runs and still gives a distribution.
    let (o, got) = predict_json(&ckpt, &[&file], &["--tta"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s: f32 = got["x.png"].as_ref().unwrap().iter().sum();
    assert!((s - 1.0).abs() < 1e-4);
    // bf16 convolutions: close to f32, not equal (where the CPU has AVX512-BF16; elsewhere a --precision error).
    let (o, got16) = predict_json(&ckpt, &[&file], &["--precision", "bf16"]);
    if cpu_ops::bf16_supported() {
        assert!(o.status.success(), "{}", text(&o.stderr));
        let d = max_diff(got16["x.png"].as_ref().unwrap(), &want[0]);
        assert!(
            d > 0.0 && d < 1e-2,
            "bf16 vs f32 probabilities differ by {d}"
        );
    } else {
        assert!(!o.status.success());
        assert!(
            text(&o.stderr).contains("--precision"),
            "{}",
            text(&o.stderr)
        );
    }
}

/// A checkpoint that records its evaluation (metadata `tta`, as training writes it) is predicted with that TTA
/// unless `--tta=...` says otherwise, and the log line says which.
#[test]
fn predict_follows_the_checkpoints_own_tta() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.safetensors");
    let m = model::registry::build("cnn-dnn", &Device::Cpu, 9, 10).unwrap();
    let meta = HashMap::from([("tta".to_string(), "mirror".to_string())]);
    checkpoint::save_model(m.as_ref(), &path, meta).unwrap();
    let img = ImageBuffer::from_fn(32, 32, |x, y| Rgb([(x * 8) as u8, (y * 3) as u8, 40]));
    let file = dir.path().join("x.png");
    save(&DynamicImage::ImageRgb8(img), &file);
    let (o, default) = predict_json(&path, &[&file], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("TTA mirror"),
        "{}",
        text(&o.stderr)
    );
    let (_, mirror) = predict_json(&path, &[&file], &["--tta=mirror"]);
    let (o, none) = predict_json(&path, &[&file], &["--tta=none"]);
    assert!(text(&o.stderr).contains("TTA none"), "{}", text(&o.stderr));
    let (default, mirror, none) = (
        default["x.png"].as_ref().unwrap(),
        mirror["x.png"].as_ref().unwrap(),
        none["x.png"].as_ref().unwrap(),
    );
    assert_eq!(default, mirror);
    assert!(max_diff(default, none) > 0.0, "mirror TTA changed nothing");
    // A checkpoint without the key: no TTA unless asked for.
    let plain = make_checkpoint(dir.path());
    let (o, _) = predict_json(&plain, &[&file], &[]);
    assert!(text(&o.stderr).contains("TTA none"), "{}", text(&o.stderr));
}

#[test]
fn non_square_images_are_centre_cropped_or_squashed() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let wide = picture(96, 32);
    let centre = image::imageops::crop_imm(&wide, 32, 0, 32, 32).to_image();
    save(
        &DynamicImage::ImageRgb8(wide.clone()),
        &dir.path().join("wide.png"),
    );
    save(
        &DynamicImage::ImageRgb8(centre),
        &dir.path().join("centre.png"),
    );
    let (o, got) = predict_json(
        &ckpt,
        &[&dir.path().join("wide.png"), &dir.path().join("centre.png")],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        got["wide.png"], got["centre.png"],
        "--crop center keeps the centred square"
    );
    // --crop none squashes the whole image: the same as resizing it to 32x32 ourselves.
    let squashed = image::imageops::resize(&wide, 32, 32, image::imageops::FilterType::Triangle);
    save(
        &DynamicImage::ImageRgb8(squashed),
        &dir.path().join("squashed.png"),
    );
    let (o, got) = predict_json(
        &ckpt,
        &[
            &dir.path().join("wide.png"),
            &dir.path().join("squashed.png"),
        ],
        &["--crop", "none"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(got["wide.png"], got["squashed.png"]);
    assert_ne!(got["wide.png"].as_ref().unwrap(), &vec![0f32; 10]);
}

/// A TIFF EXIF block holding only Orientation = `o`.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut v = b"II*\0".to_vec();
    v.extend(8u32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(0x0112u16.to_le_bytes());
    v.extend(3u16.to_le_bytes());
    v.extend(1u32.to_le_bytes());
    v.extend(o.to_le_bytes());
    v.extend([0, 0]);
    v.extend(0u32.to_le_bytes());
    v
}

#[test]
fn exif_orientation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    // The upright picture, and the same picture stored rotated 90° counter-clockwise with EXIF orientation 6
    // ("rotate 90° clockwise to display").
    let upright = picture(32, 32);
    let stored = image::imageops::rotate270(&upright);
    save(
        &DynamicImage::ImageRgb8(upright.clone()),
        &dir.path().join("upright.png"),
    );
    let write = |name: &str, exif: bool, jpeg: bool| {
        let f = std::fs::File::create(dir.path().join(name)).unwrap();
        if jpeg {
            let mut e = image::codecs::jpeg::JpegEncoder::new_with_quality(f, 100);
            if exif {
                e.set_exif_metadata(exif_orientation(6)).unwrap();
            }
            e.write_image(stored.as_raw(), 32, 32, image::ExtendedColorType::Rgb8)
                .unwrap();
        } else {
            let mut e = image::codecs::webp::WebPEncoder::new_lossless(f);
            if exif {
                e.set_exif_metadata(exif_orientation(6)).unwrap();
            }
            e.write_image(stored.as_raw(), 32, 32, image::ExtendedColorType::Rgb8)
                .unwrap();
        }
    };
    write("rotated.webp", true, false);
    write("rotated.jpg", true, true);
    write("raw.jpg", false, true);
    let d = dir.path();
    let (o, got) = predict_json(
        &ckpt,
        &[
            &d.join("upright.png"),
            &d.join("rotated.webp"),
            &d.join("rotated.jpg"),
            &d.join("raw.jpg"),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let up = got["upright.png"].as_ref().unwrap();
    assert_eq!(
        got["rotated.webp"].as_ref().unwrap(),
        up,
        "lossless WebP with EXIF orientation 6"
    );
    let with = max_diff(got["rotated.jpg"].as_ref().unwrap(), up);
    let without = max_diff(got["raw.jpg"].as_ref().unwrap(), up);
    assert!(
        with < without,
        "JPEG EXIF orientation not applied: {with} vs {without}"
    );
}

/// A 50,000 x 50,000 1-bit PNG of ~300 KB: 2.5 gigapixels when decoded.
fn write_bomb(path: &Path) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(f, 50_000, 50_000);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    enc.set_compression(png::Compression::Fastest);
    let mut w = enc.write_header().unwrap();
    let mut s = w.stream_writer().unwrap();
    let row = vec![0u8; 50_000 / 8];
    for _ in 0..2_000 {
        std::io::Write::write_all(&mut s, &row).unwrap();
    }
    // Left unfinished: the rest of the data is missing, like a truncated bomb; the header is what counts.
    drop(s);
}

#[test]
fn bad_images_are_reported_by_name_and_the_rest_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let imgs = dir.path().join("mixed");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    save(
        &DynamicImage::ImageRgb8(picture(32, 32)),
        &imgs.join("a_good.png"),
    );
    save(
        &DynamicImage::ImageRgb8(picture(50, 20)),
        &imgs.join("sub/b_good.jpg"),
    );
    std::fs::write(imgs.join("empty.png"), b"").unwrap();
    std::fs::write(imgs.join("text.png"), b"this is not a picture\n").unwrap();
    let mut good = Vec::new();
    DynamicImage::ImageRgb8(picture(64, 64))
        .write_to(
            &mut std::io::Cursor::new(&mut good),
            image::ImageFormat::Png,
        )
        .unwrap();
    std::fs::write(imgs.join("truncated.png"), &good[..good.len() / 2]).unwrap();
    write_bomb(&imgs.join("bomb.png"));
    std::fs::write(imgs.join("notes.txt"), b"not an image").unwrap();
    let (o, got) = predict_json(&ckpt, &[&imgs, &dir.path().join("missing.png")], &[]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        got["a_good.png"].is_ok() && got["b_good.jpg"].is_ok(),
        "{got:?}"
    );
    for (name, needle) in [
        ("empty.png", "empty file"),
        ("text.png", "not an image"),
        ("truncated.png", "cannot decode"),
        ("bomb.png", "too large"),
        ("missing.png", "cannot read"),
    ] {
        let e = got[name].as_ref().expect_err(name);
        assert!(e.contains(needle), "{name}: {e}");
        assert!(err.contains(name), "{name} not named on stderr: {err}");
    }
    assert!(
        err.contains("notes.txt") && err.contains("skipping"),
        "{err}"
    );
    assert!(!got.contains_key("notes.txt"));
    // The table output: a header and one row per predicted image, in the walk's sorted order.
    let o = cifar(&[
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--device",
        "cpu",
        "--top-k",
        "2",
        imgs.to_str().unwrap(),
    ]);
    let out = text(&o.stdout);
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].starts_with("file") && rows[0].contains("top-2"),
        "{out}"
    );
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[1].contains("a_good.png") && rows[2].contains("b_good.jpg"),
        "{out}"
    );
    assert!(rows[1].contains('%'), "{out}");
}

#[test]
fn bad_checkpoints_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.png");
    save(&DynamicImage::ImageRgb8(picture(32, 32)), &img);
    let m = model::registry::build("cnn-dnn", &Device::Cpu, 1, 10).unwrap();
    let tensors = checkpoint::model_tensors(m.as_ref());
    type Case<'a> = (
        &'a str,
        HashMap<String, String>,
        Vec<(String, Tensor)>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "newer.safetensors",
            HashMap::new(),
            tensors.clone(),
            "newer",
        ),
        (
            "other_model.safetensors",
            HashMap::from([("model".to_string(), "resnet50".to_string())]),
            tensors.clone(),
            "resnet50",
        ),
        (
            "foreign.safetensors",
            HashMap::new(),
            vec![(
                "fc.weight".to_string(),
                Tensor::zeros((10, 4), candle_core::DType::F32, &Device::Cpu).unwrap(),
            )],
            "missing",
        ),
    ];
    for (name, meta, t, needle) in cases {
        let path = dir.path().join(name);
        checkpoint::write(&path, &t, meta).unwrap();
        if name == "newer.safetensors" {
            // Rewrite the format to a future version.
            let bytes = std::fs::read(&path).unwrap();
            let s = String::from_utf8_lossy(&bytes).replace("cifar10-rs/2", "cifar10-rs/9");
            let mut fixed = bytes.clone();
            let pos = s.find("cifar10-rs/9").unwrap();
            fixed[pos..pos + 12].copy_from_slice(b"cifar10-rs/9");
            std::fs::write(&path, fixed).unwrap();
        }
        for cmd in [
            &["predict", "--device", "cpu", "--checkpoint"][..],
            &["inspect"][..],
        ] {
            let mut args: Vec<&str> = cmd.to_vec();
            args.push(path.to_str().unwrap());
            if cmd[0] == "predict" {
                args.push(img.to_str().unwrap());
            }
            if cmd[0] == "inspect" && name != "newer.safetensors" {
                continue;
            }
            let o = cifar(&args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{name}: {err}");
            assert!(err.contains(name) && err.contains(needle), "{name}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert_eq!(
                err.lines().filter(|l| l.starts_with("error")).count(),
                1,
                "{err}"
            );
        }
    }
}

#[test]
fn checkpoints_without_the_new_metadata_still_load_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let m = model::registry::build("cnn-dnn", &Device::Cpu, 3, 10).unwrap();
    let path = dir.path().join("old.safetensors");
    // What the previous version wrote: the tensors, `model` and format 1.
    let tensors = checkpoint::model_tensors(m.as_ref());
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let bytes = safetensors::serialize(
        named,
        Some(HashMap::from([
            ("model".to_string(), "cnn-dnn".to_string()),
            ("format".to_string(), "cifar10-rs/1".to_string()),
        ])),
    )
    .unwrap();
    std::fs::write(&path, bytes).unwrap();
    let img = dir.path().join("x.png");
    save(&DynamicImage::ImageRgb8(picture(32, 32)), &img);
    let (o, got) = predict_json(&path, &[&img], &[]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(got["x.png"].is_ok());
    assert!(
        err.contains("using defaults") && err.contains("normalize"),
        "{err}"
    );
    let o = cifar(&["inspect", path.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        out.contains("mean [0.5, 0.5, 0.5]") && out.contains("(default: not in the file)"),
        "{out}"
    );
}

#[test]
fn inspect_prints_metadata_count_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let o = cifar(&["inspect", ckpt.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for needle in [
        "format       cifar10-rs/2",
        "model        cnn-dnn",
        "mean [0.4914, 0.4822, 0.4465]",
        "airplane, automobile, bird",
        "input_size   3x32x32",
        "parameters   1,307,850",
        "dnn.9.weight",
        "[10, 128]",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
}

#[test]
fn a_truncated_jpeg_is_refused_unless_allow_partial() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let full = dir.path().join("full.jpg");
    save(&DynamicImage::ImageRgb8(picture(320, 240)), &full);
    let bytes = std::fs::read(&full).unwrap();
    for pct in [25, 50, 90] {
        let cut = dir.path().join(format!("cut{pct}.jpg"));
        std::fs::write(&cut, &bytes[..bytes.len() * pct / 100]).unwrap();
        let c = ckpt.to_str().unwrap();
        let p = cut.to_str().unwrap();
        let o = cifar(&["predict", "--checkpoint", c, p]);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{pct}%: {err}");
        assert!(
            err.contains(&format!("cut{pct}.jpg"))
                && err.contains("truncated")
                && err.contains("rows missing"),
            "{pct}%: {err}"
        );
        let o = cifar(&["predict", "--checkpoint", c, "--allow-partial", p]);
        let out = text(&o.stdout);
        let err = text(&o.stderr);
        assert!(o.status.success(), "{pct}% --allow-partial: {err}");
        assert!(
            err.contains("truncated"),
            "{pct}%: the warning is missing: {err}"
        );
        assert!(out.contains("cut"), "{pct}%: {out}");
    }
    // The whole file is predicted without a word about truncation.
    let o = cifar(&[
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        full.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(!text(&o.stderr).contains("truncated"));
}
