//! `compare_runs`: several run directories side by side.

mod common;

use cifar_types::{History, RunSummary, TestReport, atomic};
use cifar10_viz::{Error, Format};
use common::*;
use std::path::{Path, PathBuf};

/// A synthetic run directory: `epochs` epochs (validation values NaN when `val` is false), a test report whose
/// predictions are shifted by `skill`, an optional run summary.
fn write_run(
    root: &Path,
    name: &str,
    model: &str,
    epochs: usize,
    val: bool,
    skill: f64,
    summary: bool,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut history: History = history(epochs);
    for e in &mut history.epochs {
        e.val_acc = if val {
            (e.val_acc + skill).min(0.99)
        } else {
            f64::NAN
        };
        if !val {
            e.val_loss = f64::NAN;
        }
        e.train_images_per_sec = 1000.0 + 100.0 * skill;
    }
    atomic::write_json(&dir.join("history.json"), &history).unwrap();
    let config = serde_json::json!({"preset": "fast", "model": model, "epochs": epochs, "val_fraction": if val { 0.1 } else { 0.0 }});
    atomic::write_json(&dir.join("config.json"), &config).unwrap();
    let mut report = TestReport::from_predictions(&predictions(500), 0.7, &names());
    for (i, c) in report.per_class.iter_mut().enumerate() {
        c.recall = (c.recall + skill - 0.02 * i as f64).clamp(0.0, 1.0);
    }
    report.accuracy = (report.accuracy + skill).min(1.0);
    if !val {
        report.tta = Some("mirror+shift".into());
        report.accuracy_without_tta = Some(report.accuracy - 0.01);
    }
    atomic::write_json(&dir.join("test_report.json"), &report).unwrap();
    if summary {
        let s = RunSummary {
            model: Some(model.into()),
            parameters: Some(1_307_850),
            flops_per_image: Some(23_071_232),
            wall_secs: Some(245.0),
            peak_rss_bytes: Some(555 * 1024 * 1024),
            ..Default::default()
        };
        atomic::write_json(&dir.join("run_summary.json"), &s).unwrap();
    }
    dir
}

fn load(dirs: &[PathBuf]) -> Vec<cifar10_viz::ComparedRun> {
    dirs.iter()
        .map(|d| cifar10_viz::load_compared_run(d).unwrap())
        .collect()
}

#[test]
fn two_runs_of_different_lengths() {
    let root = tempfile::tempdir().unwrap();
    let a = write_run(root.path(), "cnn", "cnn-dnn", 18, true, 0.05, true);
    let b = write_run(root.path(), "mlp", "mlp", 30, true, -0.2, false);
    let out = root.path().join("cmp");
    let written = cifar10_viz::compare_runs(&out, &load(&[a, b]), Format::Png).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "compare_val_accuracy.png",
            "compare_val_loss.png",
            "compare_per_class_accuracy.png",
            "compare.html"
        ]
    );
    for p in &written[..3] {
        let (w, h, rgb) = decode_png(p);
        assert!(w >= 1000 && h > 600, "{}: {w}x{h}", p.display());
        assert!(distinct_colours(&rgb) > 30, "{} looks blank", p.display());
    }
    let html = std::fs::read_to_string(&written[3]).unwrap();
    assert_eq!(html.matches("data:image/png;base64,").count(), 3);
    for needle in [
        "cnn-dnn (fast)",
        "1,307,850",
        "23.07",
        "4 min 05 s",
        "555 MiB",
        "mlp (fast)",
        "automobile",
        "≈ ",
    ] {
        assert!(html.contains(needle), "compare.html lacks {needle}");
    }
    assert!(temp_files(&out).is_empty());
}

#[test]
fn five_runs_one_without_validation_svg_too() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![
        write_run(root.path(), "mlp-s1", "mlp", 30, true, -0.25, true),
        write_run(root.path(), "lenet5-s1", "lenet5", 30, true, -0.15, true),
        write_run(root.path(), "cnn-dnn-s1", "cnn-dnn", 18, true, 0.0, true),
        write_run(
            root.path(),
            "cnn-dnn-long",
            "cnn-dnn",
            40,
            true,
            0.03,
            false,
        ),
        write_run(root.path(), "ab94-s1", "airbench94", 10, false, 0.09, true),
    ];
    let runs = load(&dirs);
    assert!(!runs[4].has_validation() && runs[0].has_validation());
    let out = std::env::var_os("VIZ_COMPARE_DEMO")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.path().join("cmp"));
    let written = cifar10_viz::compare_runs(&out, &runs, Format::Png).unwrap();
    assert_eq!(written.len(), 4);
    let html = std::fs::read_to_string(out.join("compare.html")).unwrap();
    assert!(html.contains("— (no validation)"));
    assert!(html.contains("(TTA mirror+shift; "));
    // Epochs as run (config.json's epochs match the history here).
    assert!(html.contains("<td>18</td>") && html.contains("<td>40</td>"));
    assert_eq!(html.matches("<tr><td title=").count(), 5);
    let svg = cifar10_viz::compare_runs(&root.path().join("svg"), &runs, Format::Svg).unwrap();
    assert_eq!(svg.len(), 4);
    let html = std::fs::read_to_string(root.path().join("svg/compare.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
}

#[test]
fn only_runs_without_validation_skip_the_curves() {
    let root = tempfile::tempdir().unwrap();
    let a = write_run(root.path(), "ab94-s1", "airbench94", 10, false, 0.09, true);
    let b = write_run(
        root.path().join("other").as_path(),
        "ab94-s1",
        "airbench94",
        10,
        false,
        0.08,
        false,
    );
    let runs = load(&[a, b]);
    let written = cifar10_viz::compare_runs(&root.path().join("cmp"), &runs, Format::Png).unwrap();
    assert_eq!(written.len(), 2, "{written:?}");
    let html = std::fs::read_to_string(&written[1]).unwrap();
    // Two runs with the same directory name are told apart.
    assert!(html.contains("ab94-s1 #2"));
}

/// A run still going (or stopped early): its epochs as "n of N".
#[test]
fn unfinished_runs_show_their_progress() {
    let root = tempfile::tempdir().unwrap();
    let a = write_run(root.path(), "going", "cnn-dnn", 5, true, 0.0, false);
    let mut config: serde_json::Value = atomic::read_json(&a.join("config.json")).unwrap();
    config["epochs"] = 18.into();
    atomic::write_json(&a.join("config.json"), &config).unwrap();
    std::fs::remove_file(a.join("test_report.json")).unwrap();
    let written =
        cifar10_viz::compare_runs(&root.path().join("cmp"), &load(&[a]), Format::Png).unwrap();
    assert_eq!(
        written.len(),
        3,
        "no per-class chart without a test report: {written:?}"
    );
    let html = std::fs::read_to_string(&written[2]).unwrap();
    assert!(html.contains("<td>5 of 18</td>"), "{html}");
}

#[test]
fn directories_that_are_not_runs_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nope");
    let e = cifar10_viz::load_compared_run(&missing).unwrap_err();
    assert!(matches!(e, Error::RunDir { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"));

    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = cifar10_viz::load_compared_run(&empty)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a training run") && e.contains("config.json and history.json"),
        "{e}"
    );

    let half = root.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("history.json"), "{\"epochs\": []}").unwrap();
    let e = cifar10_viz::load_compared_run(&half)
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json is missing"), "{e}");

    std::fs::write(half.join("config.json"), "[1, 2]").unwrap();
    let e = cifar10_viz::load_compared_run(&half)
        .unwrap_err()
        .to_string();
    assert!(e.contains("JSON object"), "{e}");

    std::fs::write(half.join("config.json"), "{ not json").unwrap();
    let e = cifar10_viz::load_compared_run(&half)
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json"), "{e}");

    let file = root.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    assert!(cifar10_viz::load_compared_run(&file).is_err());

    assert!(cifar10_viz::compare_runs(&root.path().join("cmp"), &[], Format::Png).is_err());
}

/// report.html: the charts come right after the summary, the long per-epoch table last.
#[test]
fn report_puts_charts_first_and_the_epoch_table_last() {
    let dir = tempfile::tempdir().unwrap();
    cifar10_viz::render_run(dir.path(), &run(100, 12), Format::Png).unwrap();
    let html = std::fs::read_to_string(dir.path().join(cifar10_viz::REPORT_FILE)).unwrap();
    let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("report lacks {s}"));
    assert!(at("<h2>Summary") < at("<h2>Charts"));
    assert!(at("<h2>Charts") < at("<h2>Per-class results"));
    assert!(at("<h2>Per-class results") < at("<h2>Configuration"));
    assert!(at("<h2>Configuration") < at("<h2>Per-epoch history"));
}
