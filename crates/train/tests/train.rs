//! End-to-end training runs on small synthetic data.

mod common;

use cifar_types::History;
use cifar10_train::{Error, RunDir, StopFlag, run};

fn strip_times(h: &History) -> Vec<(usize, f64, f64, f64, f64, f64)> {
    h.epochs
        .iter()
        .map(|e| {
            (
                e.epoch,
                e.train_loss,
                e.train_acc,
                e.val_loss,
                e.val_acc,
                e.lr,
            )
        })
        .collect()
}

#[test]
fn learns_a_learnable_task_and_writes_the_run_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let data = common::data();
    let o = run(
        &common::tiny_config(3),
        &data,
        &out,
        &StopFlag::default(),
        false,
    )
    .unwrap();
    let h = &o.history.epochs;
    assert_eq!(h.len(), 3);
    assert!(h[2].train_loss < h[0].train_loss, "{h:?}");
    let report = o.test_report.unwrap();
    assert!(report.accuracy > 0.5, "test accuracy {}", report.accuracy);
    assert_eq!(report.confusion_matrix.iter().flatten().sum::<u64>(), 200);
    assert_eq!(report.per_class.len(), 10);
    for f in [
        RunDir::CONFIG,
        RunDir::HISTORY,
        RunDir::METRICS,
        RunDir::BEST,
        RunDir::LAST,
        RunDir::TEST_REPORT,
        RunDir::PREDICTIONS,
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(out.join(RunDir::METRICS)).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.starts_with("epoch,train_loss,train_acc,val_loss,val_acc"));
    // No temporary files are left behind.
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".tmp"), "{name}");
    }
    // The same directory cannot be reused for a new run.
    let err = run(
        &common::tiny_config(1),
        &data,
        &out,
        &StopFlag::default(),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("resume"), "{err}");
}

#[test]
fn resume_equals_uninterrupted() {
    let data = common::data();
    let cfg = common::tiny_config(2);
    let dir = tempfile::tempdir().unwrap();
    let whole = run(
        &cfg,
        &data,
        &dir.path().join("a"),
        &StopFlag::default(),
        false,
    )
    .unwrap();

    // Interrupt after the very first batch, then resume twice more with interruptions mid-run.
    let out = dir.path().join("b");
    let stop = StopFlag::default();
    stop.request();
    let first = run(&cfg, &data, &out, &stop, false).unwrap();
    assert!(first.interrupted && first.test_report.is_none());
    let rd = RunDir::new(&out);
    let saved = rd.read_config().unwrap();
    assert_eq!(saved, cfg);
    let second = run(&saved, &data, &out, &stop, true).unwrap();
    assert!(second.interrupted);
    let done = run(&saved, &data, &out, &StopFlag::default(), true).unwrap();
    assert!(!done.interrupted);
    assert_eq!(strip_times(&whole.history), strip_times(&done.history));
    assert_eq!(whole.test_report, done.test_report);
    assert_eq!(whole.best_epoch, done.best_epoch);
}

#[test]
fn divergence_is_a_clear_error_and_keeps_good_checkpoints() {
    let data = common::data();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nan");
    let cfg = cifar10_train::TrainConfig {
        lr: 1e38,
        ..common::tiny_config(2)
    };
    let err = run(&cfg, &data, &out, &StopFlag::default(), false).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("diverged"));
    // Nothing half-written: no checkpoint was saved for the diverged run.
    assert!(!out.join(RunDir::LAST).exists());
}

#[test]
fn resume_of_a_missing_run_is_a_clear_error() {
    let data = common::data();
    let dir = tempfile::tempdir().unwrap();
    let err = run(
        &common::tiny_config(1),
        &data,
        &dir.path().join("none"),
        &StopFlag::default(),
        true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("last.safetensors"), "{err}");
}

#[test]
fn early_stopping_and_schedule_are_recorded() {
    let data = common::data();
    let dir = tempfile::tempdir().unwrap();
    let cfg = cifar10_train::TrainConfig {
        patience: Some(1),
        schedule: cifar10_train::Schedule::Cosine,
        lr: 3e-3,
        ..common::tiny_config(12)
    };
    let o = run(
        &cfg,
        &data,
        &dir.path().join("es"),
        &StopFlag::default(),
        false,
    )
    .unwrap();
    let n = o.history.epochs.len();
    // Cosine: the LR falls epoch over epoch.
    assert!(o.history.epochs.windows(2).all(|w| w[1].lr < w[0].lr));
    if o.stopped_early {
        assert!(n < 12);
        let last = &o.history.epochs[n - 1];
        let best = o.history.epochs[..n - 1]
            .iter()
            .map(|e| e.val_loss)
            .fold(f64::INFINITY, f64::min);
        assert!(
            last.val_loss >= best,
            "stopped although the val loss improved"
        );
    } else {
        assert_eq!(n, 12);
    }
}
