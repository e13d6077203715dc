//! The report of a sweep of fake run directories: the files a finished run writes, with accuracies chosen so
//! that every figure can be worked out by hand.

use cifar10_sweep::{Axis, Grid, RunStatus, SweepDir, SweepFile, report};
use serde_json::json;
use std::path::Path;

/// Writes what a finished run leaves: test_report.json (accuracy with and without TTA), history.json (two
/// epochs at the given throughputs) and run_summary.json (the wall time).
fn fake_run(dir: &Path, acc: f64, plain: f64, wall: f64, ips: [f64; 2]) {
    std::fs::create_dir_all(dir).unwrap();
    let test = json!({
        "accuracy": acc / 100.0, "loss": 1.0, "tta": "mirror", "accuracy_without_tta": plain / 100.0,
        "per_class": [], "confusion_matrix": []
    });
    std::fs::write(dir.join("test_report.json"), test.to_string()).unwrap();
    let epoch = |e: usize, ips: f64| {
        json!({"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.001,
               "epoch_secs": 10.0, "train_images_per_sec": ips})
    };
    let history = json!({"epochs": [epoch(1, ips[0]), epoch(2, ips[1])]});
    std::fs::write(dir.join("history.json"), history.to_string()).unwrap();
    std::fs::write(
        dir.join("run_summary.json"),
        json!({"wall_secs": wall}).to_string(),
    )
    .unwrap();
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn report_of_fake_runs_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let base = train::TrainConfig::preset("fast").unwrap();
    let grid = Grid::new(
        &base,
        vec![Axis::parse("lr=0.002,0.004").unwrap()],
        vec![0, 1, 2],
    )
    .unwrap();
    let file = SweepFile::new(grid, tmp.path().join("data"), "cpu".into());
    let dir = SweepDir::new(tmp.path().join("sweep"));
    dir.init(&file, false).unwrap();
    // Runs in index order: (lr 0.002, seed 0), (0.004, 0), (0.002, 1), (0.004, 1), (0.002, 2), (0.004, 2).
    // lr=0.002: 90, 91, 89 (without TTA 89, 90, 88); lr=0.004: 91, 91.5, 90.5 (without TTA: 90, 90.5, -).
    let figures = [
        (90.0, 89.0),
        (91.0, 90.0),
        (91.0, 90.0),
        (91.5, 90.5),
        (89.0, 88.0),
    ];
    for (k, (acc, plain)) in figures.iter().enumerate() {
        fake_run(
            &dir.run_dir(&file.runs[k]),
            *acc,
            *plain,
            100.0 + k as f64,
            [1000.0, 2000.0],
        );
    }
    // The sixth (lr 0.004, seed 2) was killed: a record of a dead process on this machine.
    let last = dir.run_dir(&file.runs[5]);
    std::fs::create_dir_all(&last).unwrap();
    let mut rec = cifar10_sweep::TaskRecord::starting("here".into(), Some("7_5".into()));
    rec.pid = u32::MAX - 3;
    rec.write(&last).unwrap();

    let statuses = dir.status(&file, "here");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == RunStatus::Finished)
            .count(),
        5
    );
    assert!(matches!(statuses[5], RunStatus::Failed { .. }));
    let r = report::build(&dir, &file, &statuses);
    assert_eq!(
        (r.counts.total, r.counts.finished, r.counts.failed),
        (6, 5, 1)
    );
    assert_eq!(r.configs.len(), 2);
    let a = &r.configs[0];
    assert_eq!((a.label.as_str(), a.runs, a.finished), ("lr=0.002", 3, 3));
    let acc = a.accuracy.unwrap();
    // Mean 90, deviations 0, 1, -1: variance 2/2 = 1, std 1; half-width t(0.975, 2) / sqrt(3) = 2.484138.
    assert!(close(acc.mean, 90.0) && close(acc.std.unwrap(), 1.0));
    assert_eq!((acc.min, acc.max), (89.0, 91.0));
    let (lo, hi) = acc.ci95.unwrap();
    assert!((hi - 90.0 - 2.484_138).abs() < 1e-5 && (90.0 - lo - 2.484_138).abs() < 1e-5);
    assert!(close(a.accuracy_without_tta.unwrap().mean, 89.0));
    // Wall times 100, 102, 104; throughput the mean over epochs, 1500.
    assert!(close(a.wall_secs.unwrap().mean, 102.0));
    assert!(close(a.train_images_per_sec.unwrap().mean, 1500.0));
    let b = &r.configs[1];
    assert_eq!((b.runs, b.finished), (3, 2));
    assert!(close(b.accuracy.unwrap().mean, 91.25));
    // Seeds differ (0, 1, 2 against 0, 1): Welch. a: mean 90, var 1, n 3; b: 91, 91.5: mean 91.25, var 0.125,
    // n 2. se² = 1/3 + 0.0625 = 0.395833.
    let d = r.comparisons[0].accuracy.unwrap();
    assert_eq!(d.method, cifar10_sweep::stats::Method::Welch);
    assert!(close(d.estimate, 1.25));
    assert!(close(d.std_error, (1.0f64 / 3.0 + 0.0625).sqrt()));
    let va: f64 = 1.0 / 3.0;
    let vb: f64 = 0.0625;
    let df = (va + vb).powi(2) / (va * va / 2.0 + vb * vb / 1.0);
    assert!(close(d.df, df));
    // Report files: the chart (SVG, one dot per run and per run without TTA), the tables, JSON.
    let written = report::write(&dir, &r).unwrap();
    assert_eq!(written.len(), 2);
    let html = std::fs::read_to_string(dir.path().join(report::HTML_FILE)).unwrap();
    assert!(html.contains("<svg"));
    assert_eq!(
        html.matches("<circle").count(),
        2 * 5 + 2,
        "5 runs x 2 + legend"
    );
    assert!(html.contains("lr=0.004 − lr=0.002"));
    assert!(html.contains("1 failed"));
    let json: report::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(report::JSON_FILE)).unwrap())
            .unwrap();
    // (Floats go through JSON's shortest decimal form, so the intervals may differ in the last bit.)
    assert_eq!((&json.runs, &json.counts), (&r.runs, &r.counts));
    assert!(close(json.configs[0].accuracy.unwrap().mean, 90.0));
    let table = report::text_table(&r);
    assert!(
        table.contains("lr=0.002") && table.contains("3/3") && table.contains("2/3"),
        "{table}"
    );
    assert!(table.contains("Welch"), "{table}");
}

#[test]
fn paired_when_the_seeds_match() {
    let tmp = tempfile::tempdir().unwrap();
    let base = train::TrainConfig::preset("fast").unwrap();
    let grid = Grid::new(
        &base,
        vec![Axis::parse("lr=0.002,0.004").unwrap()],
        vec![0, 1, 2],
    )
    .unwrap();
    let file = SweepFile::new(grid, tmp.path().join("data"), "cpu".into());
    let dir = SweepDir::new(tmp.path().join("sweep"));
    dir.init(&file, false).unwrap();
    // Pairs by seed: (90, 91), (91, 91.5), (89, 90.5) as in the statistics' own test: +1 ± 1.242069.
    for (k, acc) in [90.0, 91.0, 91.0, 91.5, 89.0, 90.5].iter().enumerate() {
        fake_run(&dir.run_dir(&file.runs[k]), *acc, *acc, 1.0, [1.0, 1.0]);
    }
    let r = report::build(&dir, &file, &dir.status(&file, "here"));
    let d = r.comparisons[0].accuracy.unwrap();
    assert_eq!(d.method, cifar10_sweep::stats::Method::Paired);
    assert!(close(d.estimate, 1.0));
    assert!((d.ci95.1 - 1.0 - 1.242_069).abs() < 1e-5, "{:?}", d.ci95);
    // A report of a sweep with no finished run says so instead of failing.
    let empty = SweepDir::new(tmp.path().join("empty"));
    empty.init(&file, false).unwrap();
    let r = report::build(&empty, &file, &empty.status(&file, "here"));
    assert_eq!(r.counts.missing, 6);
    assert!(report::html(&r).contains("no finished runs yet"));
}
