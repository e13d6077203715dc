//! Run directories: loading them, rendering every chart and the HTML report.

mod common;

use cifar10_viz::{Error, Format, RunArtifacts};
use common::*;

const ALL_CHARTS: [&str; 7] = [
    cifar10_viz::LOSS_CURVE,
    cifar10_viz::ACCURACY_CURVE,
    cifar10_viz::CONFUSION_MATRIX,
    cifar10_viz::CONFUSION_MATRIX_NORMALIZED,
    cifar10_viz::MISCLASSIFIED_SAMPLES,
    cifar10_viz::CORRECT_LOW_CONFIDENCE,
    cifar10_viz::PREDICTION_PROBABILITIES,
];

#[test]
fn render_run_writes_every_chart_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(300, 12);
    let written = cifar10_viz::render_run(dir.path(), &run, Format::Png).unwrap();
    let mut expected: Vec<_> = ALL_CHARTS
        .iter()
        .map(|s| cifar10_viz::chart_path(dir.path(), s, Format::Png))
        .collect();
    expected.push(dir.path().join(cifar10_viz::REPORT_FILE));
    assert_eq!(written, expected);
    for p in &written[..7] {
        let (w, h, rgb) = decode_png(p);
        assert!(w > 500 && h > 300, "{}", p.display());
        assert!(distinct_colours(&rgb) > 30, "{} looks blank", p.display());
    }
    let html = std::fs::read_to_string(&written[7]).unwrap();
    assert_eq!(html.matches("data:image/png;base64,").count(), 7);
    // Config text is escaped, pretty-printed and shown.
    assert!(html.contains("&lt;resnet &amp; co&gt;"));
    assert!(!html.contains("<resnet"));
    assert!(html.contains("<pre>{\n  &quot;epochs&quot;: 20"));
    for needle in [
        "Test accuracy",
        "Best epoch",
        "automobile",
        "precision",
        "Per-epoch history",
        "images/s",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    // The per-epoch table has one row per epoch, the best one marked.
    assert_eq!(html.matches("<tr class=\"best\">").count(), 1);
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        temp_files(dir.path())
    );
}

#[test]
fn render_run_svg_inlines_charts() {
    let dir = tempfile::tempdir().unwrap();
    let written = cifar10_viz::render_run(dir.path(), &run(100, 3), Format::Svg).unwrap();
    assert_eq!(written.len(), 8);
    assert!(written[..7].iter().all(|p| p.extension().unwrap() == "svg"));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 7);
    // Sample images are embedded inside the inline SVGs.
    assert!(html.contains("<image") && !html.contains("VIZ-IMAGE"));
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn missing_parts_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // Predictions without images: curves and confusion matrices only.
    let mut r = run(50, 2);
    r.test_images = None;
    r.report = None;
    let written = cifar10_viz::render_run(dir.path(), &r, Format::Png).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "loss_curve.png",
            "accuracy_curve.png",
            "confusion_matrix.png",
            "confusion_matrix_normalized.png",
            "report.html"
        ]
    );

    // Empty history and empty predictions: only the report.
    let empty = RunArtifacts {
        predictions: Some(cifar_types::Predictions::new(10, vec![], vec![]).unwrap()),
        test_images: Some(images(0)),
        ..Default::default()
    };
    let out = dir.path().join("empty");
    let written = cifar10_viz::render_run(&out, &empty, Format::Png).unwrap();
    assert_eq!(written, vec![out.join("report.html")]);
    let html = std::fs::read_to_string(&written[0]).unwrap();
    assert!(html.contains("No epochs and no test report yet"));
}

#[test]
fn all_correct_predictions_skip_the_mistake_grid() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30;
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let mut probs = vec![0.0f32; n * 10];
    for i in 0..n {
        probs[i * 10 + i % 10] = 1.0;
    }
    let preds = cifar_types::Predictions::new(10, labels, probs).unwrap();
    let r = RunArtifacts {
        history: history(2),
        predictions: Some(preds),
        test_images: Some(images(n)),
        ..Default::default()
    };
    let written = cifar10_viz::render_run(dir.path(), &r, Format::Png).unwrap();
    assert!(
        !written
            .iter()
            .any(|p| p.ends_with("misclassified_samples.png"))
    );
    assert!(
        written
            .iter()
            .any(|p| p.ends_with("correct_low_confidence.png"))
    );
    assert!(!dir.path().join("misclassified_samples.png").exists());
}

#[test]
fn load_run_reads_what_training_writes() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(40, 4);
    let at = |name: &str| dir.path().join(name);
    cifar_types::atomic::write_json(&at("history.json"), &r.history).unwrap();
    cifar_types::atomic::write_json(&at("test_report.json"), r.report.as_ref().unwrap()).unwrap();
    cifar_types::atomic::write_json(&at("predictions.json"), r.predictions.as_ref().unwrap())
        .unwrap();
    std::fs::write(dir.path().join("config.json"), r.config.as_deref().unwrap()).unwrap();
    let loaded = cifar10_viz::load_run(dir.path()).unwrap();
    assert_eq!(loaded.history, r.history);
    assert_eq!(loaded.report, r.report);
    assert_eq!(loaded.predictions, r.predictions);
    assert_eq!(loaded.config, r.config);
    assert!(loaded.test_images.is_none());

    // Optional files are optional.
    std::fs::remove_file(dir.path().join("predictions.json")).unwrap();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let loaded = cifar10_viz::load_run(dir.path()).unwrap();
    assert!(loaded.predictions.is_none() && loaded.config.is_none() && loaded.report.is_some());
}

#[test]
fn bad_run_directories_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    let e = cifar10_viz::load_run(&missing).unwrap_err();
    assert!(matches!(e, Error::RunDir { .. }));
    assert!(e.to_string().contains("no-such-run"), "{e}");

    let e = cifar10_viz::load_run(dir.path()).unwrap_err();
    assert!(e.to_string().contains("history.json is missing"), "{e}");

    std::fs::write(dir.path().join("history.json"), b"{ not json").unwrap();
    let e = cifar10_viz::load_run(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("history.json") && e.contains("invalid JSON"),
        "{e}"
    );

    cifar_types::atomic::write_json(&dir.path().join("history.json"), &history(2)).unwrap();
    std::fs::write(
        dir.path().join("predictions.json"),
        br#"{"classes":2,"labels":[0],"probs":[1.0]}"#,
    )
    .unwrap();
    let e = cifar10_viz::load_run(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("predictions.json") && e.contains("1 probabilities for 1 labels"),
        "{e}"
    );
}

/// A 100-class run (CIFAR-100-like names, some with spaces and non-ASCII letters): every chart and the report
/// are drawn, the report shows top-5 accuracy. Set `VIZ_KEEP_DIR` to keep the charts for a look.
#[test]
fn a_100_class_run_renders_every_chart() {
    use cifar_types::{IMAGE_BYTES, ImageSet, Predictions, TestReport};
    let classes = 100;
    let n = 500;
    let names: Vec<String> = (0..classes)
        .map(|k| match k {
            7 => "maple tree".to_string(),
            8 => "élan n°8".to_string(),
            _ => format!("class_{k}"),
        })
        .collect();
    let base = common::images(n);
    let labels: Vec<u8> = (0..n).map(|i| (i * 7 % classes) as u8).collect();
    let images = ImageSet::new(
        base.pixels()[..n * IMAGE_BYTES].to_vec(),
        labels.clone(),
        names.clone(),
    )
    .unwrap();
    let mut probs = vec![0.001f32; n * classes];
    for (i, &l) in labels.iter().enumerate() {
        let guess = if i % 3 == 0 {
            (l as usize + 1) % classes
        } else {
            l as usize
        };
        probs[i * classes + guess] = 0.6;
        probs[i * classes + (guess + 5) % classes] = 0.2;
    }
    let preds = Predictions::new(classes, labels, probs).unwrap();
    let report = TestReport::from_predictions(&preds, 1.9, &names);
    assert!(report.top5_accuracy.is_some());
    let run = cifar10_viz::RunArtifacts {
        history: common::history(4),
        report: Some(report),
        predictions: Some(preds),
        test_images: Some(images),
        config: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let out = std::env::var_os("VIZ_KEEP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    let written = cifar10_viz::render_run(&out, &run, Format::Png).unwrap();
    assert!(written.len() >= 5, "{written:?}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Test top-5 accuracy"), "top-5 missing");
    assert!(
        html.contains("élan n°8") || html.contains("&eacute;lan"),
        "class names missing"
    );
}
