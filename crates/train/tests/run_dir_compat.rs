//! Run directories written by earlier versions stay readable: `config.json` and `history.json` of a run made by
//! version 0.1.0 (`cifar train --epochs 1 --limit-train 5000`, fixtures/run-0.1.0; its 15 MB checkpoints are not
//! committed: the checkpoint's training state has its own compatibility test in `state.rs`), and files that lack
//! fields added since (every saved struct has `#[serde(default)]`).

use cifar10_train::{RunDir, TrainConfig};
use std::path::Path;

fn fixture() -> RunDir {
    RunDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-0.1.0"))
}

#[test]
fn reads_a_run_dir_of_version_0_1_0() {
    let rd = fixture();
    let cfg = rd.read_config().unwrap();
    cfg.validate().unwrap();
    let expected = TrainConfig {
        epochs: 1,
        limit_train: Some(5000),
        ..TrainConfig::preset("reference").unwrap()
    };
    assert_eq!(cfg, expected);
    let h = rd.read_history().unwrap();
    assert_eq!(h.epochs.len(), 1);
}

#[test]
fn missing_fields_take_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    // Nested structs with fields left out, as an older (or a hand-written) config.json has them.
    std::fs::write(
        dir.path().join(RunDir::CONFIG),
        r#"{"epochs": 3, "augment": {"crop_pad": 2, "normalize": {"mean": [0.4, 0.4, 0.4]}}}"#,
    )
    .unwrap();
    let cfg = RunDir::new(dir.path()).read_config().unwrap();
    let d = TrainConfig::default();
    assert_eq!(cfg.epochs, 3);
    assert_eq!(cfg.augment.crop_pad, 2);
    assert_eq!(cfg.augment.flip_prob, d.augment.flip_prob);
    assert_eq!(cfg.augment.normalize.mean, [0.4; 3]);
    assert_eq!(cfg.augment.normalize.std, d.augment.normalize.std);
    assert_eq!((cfg.lr, cfg.batch_size), (d.lr, d.batch_size));
    cfg.validate().unwrap();
}
