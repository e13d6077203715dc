//! The `cifar` binary: bad input is a clear error before any work starts.

use std::path::Path;
use std::process::{Command, Output};

fn cifar(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env_remove("CIFAR10_URL")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_flags_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["train", "--lr=-1"], "--lr"),
        (vec!["train", "--lr", "0"], "--lr"),
        (vec!["train", "--val-fraction", "1.5"], "--val-fraction"),
        (vec!["train", "--epochs", "0"], "--epochs"),
        (vec!["train", "--model", "resnet"], "cnn-dnn"),
        (vec!["train", "--preset", "turbo"], "fast"),
        (vec!["train", "--schedule", "linear"], "onecycle"),
        (vec!["train", "--device", "tpu"], "tpu"),
        (vec!["train", "--batch-size", "many"], "--batch-size"),
    ] {
        let o = cifar(&args, dir.path());
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Nothing was created: no run directory, no data download attempted.
    assert!(!dir.path().join("runs").exists());
    assert!(!dir.path().join("data").exists());
}

#[test]
fn missing_or_corrupt_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = cifar(
        &[
            "evaluate",
            "--checkpoint",
            "nope.safetensors",
            "--device",
            "cpu",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope.safetensors"), "{}", stderr(&o));
    std::fs::write(dir.path().join("bad.safetensors"), b"garbage").unwrap();
    let o = cifar(
        &[
            "evaluate",
            "--checkpoint",
            "bad.safetensors",
            "--device",
            "cpu",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.safetensors") && err.contains("safetensors"),
        "{err}"
    );
}

#[test]
fn resume_of_a_non_run_and_plot_of_a_bad_dir_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = cifar(&["train", "--resume", "runs/none"], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("runs/none"), "{}", stderr(&o));
    let o = cifar(&["plot", "--run", "runs/none"], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("runs/none"), "{}", stderr(&o));
}

#[test]
fn unwritable_out_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the run directory should go.
    std::fs::write(dir.path().join("taken"), b"x").unwrap();
    let data = dir.path().join("data");
    let o = cifar(
        &[
            "train",
            "--out",
            "taken/run",
            "--data-dir",
            data.to_str().unwrap(),
            "--epochs",
            "1",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("taken"), "{err}");
    assert!(
        !data.exists(),
        "data was fetched before the --out check: {err}"
    );
}

#[test]
fn list_shows_models_and_presets() {
    let dir = tempfile::tempdir().unwrap();
    let o = cifar(&["list"], dir.path());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("cnn-dnn") && out.contains("reference") && out.contains("fast"),
        "{out}"
    );
}
