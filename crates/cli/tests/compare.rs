//! `cifar compare` and `cifar list` on synthetic run directories (no data set, no training).

use std::path::Path;
use std::process::{Command, Output};

fn cifar(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// A run directory as `cifar train` leaves it (without weights); `val: false` writes null validation values.
fn write_run(dir: &Path, model: &str, epochs: usize, val: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"preset": "{model}", "model": "{model}", "epochs": {epochs}}}"#),
    )
    .unwrap();
    let rows: Vec<String> = (1..=epochs)
        .map(|e| {
            let acc = 0.3 + 0.02 * e as f64;
            let (vl, va) = if val {
                (format!("{}", 2.0 - 0.05 * e as f64), format!("{acc}"))
            } else {
                ("null".into(), "null".into())
            };
            format!(
                r#"{{"epoch": {e}, "train_loss": 1.5, "train_acc": {acc}, "val_loss": {vl}, "val_acc": {va},
                "lr": 0.001, "epoch_secs": 10.0, "train_images_per_sec": 4500.0}}"#
            )
        })
        .collect();
    std::fs::write(
        dir.join("history.json"),
        format!(r#"{{"epochs": [{}]}}"#, rows.join(",")),
    )
    .unwrap();
    let per_class: Vec<String> = CLASSES
        .iter()
        .map(|c| format!(r#"{{"class": "{c}", "precision": 0.5, "recall": 0.55, "f1": 0.52, "support": 1000}}"#))
        .collect();
    let cm: Vec<String> = (0..10)
        .map(|i| {
            let row: Vec<String> = (0..10)
                .map(|j| if i == j { "550" } else { "50" }.to_string())
                .collect();
            format!("[{}]", row.join(","))
        })
        .collect();
    std::fs::write(
        dir.join("test_report.json"),
        format!(
            r#"{{"accuracy": 0.55, "loss": 1.3, "per_class": [{}], "confusion_matrix": [{}]}}"#,
            per_class.join(","),
            cm.join(",")
        ),
    )
    .unwrap();
}

#[test]
fn compare_writes_the_page_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_run(&root.join("mlp-s1"), "mlp", 30, true);
    write_run(&root.join("lenet-s1"), "lenet5", 12, true);
    write_run(&root.join("ab94"), "airbench94", 10, false);
    let o = cifar(
        &["compare", "mlp-s1", "lenet-s1", "ab94", "--out", "cmp"],
        root,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "compare.html",
        "compare_val_accuracy.png",
        "compare_val_loss.png",
        "compare_per_class_accuracy.png",
    ] {
        assert!(root.join("cmp").join(f).is_file(), "{f} missing");
    }
    let html = std::fs::read_to_string(root.join("cmp/compare.html")).unwrap();
    // Parameters and FLOPs come from the registry for runs without run_summary.json.
    for needle in [
        "1,738,890",
        "3.48",
        "62,006",
        "1.30",
        "1,971,352",
        "236.29",
        "— (no validation)",
    ] {
        assert!(html.contains(needle), "compare.html lacks {needle}");
    }
}

#[test]
fn compare_refuses_directories_that_are_not_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_run(&root.join("ok"), "mlp", 3, true);
    std::fs::create_dir_all(root.join("photos")).unwrap();
    let o = cifar(&["compare", "ok", "photos", "--out", "cmp"], root);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("photos") && err.contains("not a training run"),
        "{err}"
    );
    assert!(
        !root.join("cmp").exists(),
        "nothing written on a refused directory"
    );
    let o = cifar(&["compare", "--out", "cmp"], root);
    assert!(!o.status.success());
}

#[test]
fn list_shows_size_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let o = cifar(&["list"], dir.path());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "MFLOP/image",
        "mlp",
        "1738890",
        "lenet5",
        "62006",
        "1.30",
        "23.07",
    ] {
        assert!(out.contains(needle), "list lacks {needle}: {out}");
    }
}
