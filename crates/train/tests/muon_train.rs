//! The `airbench94-muon` recipe end to end on a small airbench94 (widths 8/16/16) and the synthetic task: it
//! learns, a resumed run (Muon's and SGD's state through `last.safetensors`) equals an uninterrupted one, and the
//! final evaluation's selective TTA with a threshold every image falls below is the full TTA.

mod common;

use candle_core::Device;
use cifar10_train::{Outcome, StopFlag, TrainConfig, Tta, run_model};
use model::AirBench94;

fn config() -> TrainConfig {
    TrainConfig {
        batch_size: 64,
        epochs: 3,
        fractional_epochs: None,
        eval_batch_size: 100,
        device: "cpu".into(),
        ..TrainConfig::preset("airbench94-muon").unwrap()
    }
}

fn train(cfg: &TrainConfig, out: &std::path::Path, stop: &StopFlag, resume: bool) -> Outcome {
    let net = AirBench94::with_widths(&Device::Cpu, cfg.seed, [8, 16, 16], 10).unwrap();
    run_model(&net, "cpu", cfg, &common::data(), out, stop, resume).unwrap()
}

#[test]
fn muon_recipe_learns_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let whole = train(&cfg, &dir.path().join("a"), &StopFlag::default(), false);
    let h = &whole.history.epochs;
    assert!(h[2].train_loss < h[0].train_loss, "{h:?}");
    let report = whole.test_report.clone().unwrap();
    assert!(report.accuracy > 0.5, "test accuracy {}", report.accuracy);
    assert_eq!(report.tta.as_deref(), Some(Tta::MirrorShift.name()));

    let out = dir.path().join("b");
    let stop = StopFlag::default();
    stop.request();
    assert!(train(&cfg, &out, &stop, false).interrupted);
    let done = train(&cfg, &out, &StopFlag::default(), true);
    let losses =
        |o: &Outcome| -> Vec<f64> { o.history.epochs.iter().map(|e| e.train_loss).collect() };
    assert_eq!(losses(&whole), losses(&done));
    assert_eq!(whole.test_report, done.test_report);

    // Every top probability is below 1.0 + ε: the selective evaluation gives every image the 6 views.
    let all = TrainConfig {
        tta_threshold: Some(1.0),
        ..cfg.clone()
    };
    let sel = train(&all, &dir.path().join("c"), &StopFlag::default(), false);
    let (a, b) = (sel.test_report.unwrap(), report);
    assert_eq!(a.accuracy, b.accuracy);
    assert!((a.loss - b.loss).abs() < 1e-9, "{} {}", a.loss, b.loss);
    // The accuracy without TTA: from the selective pass's own plain forward, the same as the separate pass's.
    assert!(b.accuracy_without_tta.is_some());
    assert_eq!(a.accuracy_without_tta, b.accuracy_without_tta);
}
