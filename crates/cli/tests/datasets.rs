//! `cifar train`, `evaluate` and `predict` on a user's image folders: classes named by the folders (spaces and
//! non-ASCII letters included), auto-detection, the decoded-set cache, bad images, and the class names carried
//! into the checkpoint and predictions.

use std::path::Path;
use std::process::{Command, Output};

fn cifar(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .env_remove("CIFAR10_URL")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const CLASSES: [&str; 3] = ["chat noir", "élan", "ship"];

/// A 40x40 PNG whose centre blob's colour tells its class, with a little per-image variation.
fn png(class: usize, i: usize) -> Vec<u8> {
    let colour = [[220u8, 30, 30], [30, 220, 30], [30, 30, 220]][class];
    let img = image::RgbImage::from_fn(40, 40, |x, y| {
        let inside = (10..30).contains(&x) && (10..30).contains(&y);
        let jitter = ((x * 7 + y * 3 + i as u32 * 11) % 17) as u8;
        if inside {
            image::Rgb(colour.map(|c| c.saturating_sub(jitter)))
        } else {
            image::Rgb([120 + jitter, 120, 120])
        }
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// `root/{train,test}/<class>/NNN.png`: 24 training and 6 test images per class.
fn tree(root: &Path) {
    for (split, n) in [("train", 24), ("test", 6)] {
        for (c, name) in CLASSES.iter().enumerate() {
            let d = root.join(split).join(name);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                std::fs::write(d.join(format!("{i:03}.png")), png(c, i)).unwrap();
            }
        }
    }
}

#[test]
fn train_evaluate_and_predict_on_image_folders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("my photos");
    tree(&data);
    let data_s = data.to_str().unwrap();
    let args = [
        "train",
        "--data-dir",
        data_s,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--seed",
        "3",
        "--no-plots",
    ];
    // Auto-detected as image folders; 3 classes named by the folders.
    let mut a = args.to_vec();
    a.extend(["--out", "runs/a"]);
    let o = cifar(&a, dir.path());
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("image folders (3 classes)"), "{log}");
    let run = dir.path().join("runs/a");
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(cfg["dataset"], "folder", "{config}");
    let report = std::fs::read_to_string(run.join("test_report.json")).unwrap();
    for name in CLASSES {
        assert!(report.contains(&format!("\"{name}\"")), "{report}");
    }
    assert!(!report.contains("top5_accuracy"), "{report}");
    // The second run reads the decoded set from the cache beside the data, and trains to the same numbers.
    assert!(data.join(dataset_cache_file()).is_file());
    let mut b = args.to_vec();
    b.extend(["--out", "runs/b", "--dataset", "folder"]);
    let o = cifar(&b, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let history =
        |r: &str| std::fs::read_to_string(dir.path().join(r).join("history.json")).unwrap();
    let strip = |h: String| {
        // Per-epoch timings differ from run to run; the losses and accuracies must not.
        let v: serde_json::Value = serde_json::from_str(&h).unwrap();
        v["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["train_loss"].clone(),
                    e["val_loss"].clone(),
                    e["val_acc"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(history("runs/a")), strip(history("runs/b")));

    // `--precision auto` trains in the arithmetic it chose and records that one (never "auto") in config.json.
    let mut c = args.to_vec();
    c.extend(["--out", "runs/c", "--precision", "auto"]);
    let o = cifar(&c, dir.path());
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("runs/c/config.json")).unwrap(),
    )
    .unwrap();
    let chosen = cfg["precision"].as_str().unwrap();
    assert!(["f32", "bf16"].contains(&chosen), "{cfg}");
    assert!(
        log.contains(&format!("--precision auto: {chosen} (")),
        "{log}"
    );
    assert_eq!(cfg["winograd"], "auto", "{cfg}");

    // `--winograd` is recorded in config.json, so a resumed run keeps the kernels it started with.
    let mut c = args.to_vec();
    c.extend(["--out", "runs/d", "--winograd", "f2"]);
    let o = cifar(&c, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("runs/d/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["winograd"], "f2", "{cfg}");

    // evaluate on the same folders; a CIFAR-10 data dir would not match the checkpoint's classes.
    let ckpt = run.join("best.safetensors");
    let o = cifar(
        &[
            "evaluate",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data-dir",
            data_s,
        ],
        dir.path(),
    );
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("élan") && log.contains("chat noir"), "{log}");

    // predict names the checkpoint's own classes (JSON keeps the letters as they are).
    let img = data.join("test/élan/000.png");
    let o = cifar(
        &[
            "predict",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--json",
            img.to_str().unwrap(),
        ],
        dir.path(),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(CLASSES.iter().any(|c| out.contains(c)), "{out}");
}

fn dataset_cache_file() -> &'static str {
    ".cifar10-folder-cache.bin"
}

#[test]
fn bad_images_stop_the_run_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    let bad = data.join("train/ship/broken.png");
    let good = png(2, 0);
    std::fs::write(&bad, &good[..good.len() / 3]).unwrap();
    let data_s = data.to_str().unwrap();
    let o = cifar(
        &[
            "train",
            "--data-dir",
            data_s,
            "--epochs",
            "1",
            "--out",
            "runs/a",
            "--no-plots",
        ],
        dir.path(),
    );
    let log = text(&o);
    assert!(!o.status.success(), "{log}");
    assert!(log.contains("broken.png"), "{log}");
    assert!(!dir.path().join("runs/a").exists(), "{log}");

    let o = cifar(
        &[
            "train",
            "--data-dir",
            data_s,
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--out",
            "runs/b",
            "--no-plots",
            "--skip-bad-images",
        ],
        dir.path(),
    );
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("left out 1 image") && log.contains("broken.png"),
        "{log}"
    );
}

#[test]
fn labels_need_cifar100_and_folders_need_their_layout() {
    let dir = tempfile::tempdir().unwrap();
    let o = cifar(&["train", "--labels", "coarse"], dir.path());
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--labels coarse: only CIFAR-100"),
        "{}",
        text(&o)
    );
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let o = cifar(
        &["train", "--dataset", "folder", "--data-dir", "empty"],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("expected image folders (train/<class>/* and test/<class>/*)"),
        "{}",
        text(&o)
    );
    assert!(!dir.path().join("runs").exists());
}

/// CIFAR-100's files at their official sizes as sparse files (no disk use): every record reads as coarse label
/// 0, fine label 0 and black pixels, which is valid data.
fn sparse_cifar100(data: &Path) {
    let dir = data.join("cifar-100-binary");
    std::fs::create_dir_all(&dir).unwrap();
    let fine: String = (0..100).map(|k| format!("fine_{k}\n")).collect();
    let coarse: String = (0..20).map(|k| format!("coarse_{k}\n")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), fine).unwrap();
    std::fs::write(dir.join("coarse_label_names.txt"), coarse).unwrap();
    for (f, n) in [("train.bin", 50_000u64), ("test.bin", 10_000)] {
        std::fs::File::create(dir.join(f))
            .unwrap()
            .set_len(n * 3074)
            .unwrap();
    }
}

#[test]
fn cifar100_trains_with_fine_or_coarse_labels_and_reports_top5() {
    let dir = tempfile::tempdir().unwrap();
    sparse_cifar100(&dir.path().join("data"));
    for (labels, classes, out) in [("fine", 100, "runs/fine"), ("coarse", 20, "runs/coarse")] {
        let o = cifar(
            &[
                "train",
                "--data-dir",
                "data",
                "--labels",
                labels,
                "--model",
                "lenet5",
                "--epochs",
                "1",
                "--limit-train",
                "256",
                "--batch-size",
                "64",
                "--out",
                out,
                "--no-plots",
            ],
            dir.path(),
        );
        let log = text(&o);
        assert!(o.status.success(), "{labels}: {log}");
        assert!(
            log.contains(&format!("({classes} classes)")),
            "{labels}: {log}"
        );
        assert!(log.contains("top-5"), "{labels}: {log}");
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(out).join("test_report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["per_class"].as_array().unwrap().len(), classes);
        assert!(report["top5_accuracy"].as_f64().unwrap() >= report["accuracy"].as_f64().unwrap());
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(out).join("config.json")).unwrap(),
        )
        .unwrap();
        let want = if labels == "fine" {
            "cifar100"
        } else {
            "cifar100-coarse"
        };
        assert_eq!(config["dataset"], want);
    }
}
