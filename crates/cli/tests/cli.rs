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
        // A negative number is a value, so our own validation speaks (not clap's "unexpected argument").
        (
            vec!["train", "--lr", "-1"],
            "--lr: expected a positive number",
        ),
        (vec!["train", "--momentum", "-0.5"], "--momentum: expected"),
        (vec!["train", "--flip-prob", "2"], "--flip-prob: expected"),
        (vec!["train", "--lr", "0"], "--lr"),
        (vec!["train", "--val-fraction", "1.5"], "--val-fraction"),
        (vec!["train", "--epochs", "0"], "--epochs"),
        (vec!["train", "--model", "resnet"], "cnn-dnn"),
        (vec!["train", "--preset", "turbo"], "fast"),
        (vec!["train", "--schedule", "step"], "onecycle"),
        (vec!["train", "--device", "tpu"], "tpu"),
        (vec!["train", "--batch-size", "many"], "--batch-size"),
        (
            vec!["train", "--precision", "fp16"],
            "expected f32, bf16 or auto, found \"fp16\"",
        ),
        (
            vec!["train", "--winograd", "f6"],
            "expected off, f2, f4 or auto, found \"f6\"",
        ),
        (
            vec!["train", "--stock-ops", "--winograd", "f4"],
            "--winograd: expected auto with the stock ops",
        ),
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

/// A failed step names each thing once: no path twice, no OS cause twice.
fn says_once(err: &str, needle: &str) {
    assert_eq!(
        err.matches(needle).count(),
        1,
        "{needle:?} not exactly once in: {err}"
    );
}

#[test]
fn errors_say_each_thing_once() {
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
    let err = stderr(&o);
    says_once(&err, "nope.safetensors");
    assert!(err.matches("os error 2").count() <= 1, "{err}");
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
    says_once(&stderr(&o), "bad.safetensors");
    let o = cifar(&["plot", "--run", "runs/none"], dir.path());
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.matches("os error 2").count() <= 1, "{err}");
}

#[test]
fn cuda_on_a_cpu_build_is_refused_before_any_work() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for device in ["cuda", "cuda:1"] {
        for precision in ["f32", "auto"] {
            let o = cifar(
                &[
                    "train",
                    "--device",
                    device,
                    "--precision",
                    precision,
                    "--epochs",
                    "1",
                ],
                dir.path(),
            );
            assert!(!o.status.success());
            let err = stderr(&o);
            assert!(err.contains("--device") && err.contains("CUDA"), "{err}");
        }
    }
    assert!(!dir.path().join("runs").exists());
    assert!(!dir.path().join("data").exists());
}

/// Sparse files of the official sizes (no disk use), with one batch cut short.
fn damaged_data(data: &std::path::Path) {
    let dir = data.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
    for f in 1..=5 {
        let file = std::fs::File::create(dir.join(format!("data_batch_{f}.bin"))).unwrap();
        file.set_len(30_730_000).unwrap();
    }
    let file = std::fs::File::create(dir.join("test_batch.bin")).unwrap();
    file.set_len(1_000).unwrap();
}

#[test]
fn failed_fetch_leaves_no_run_dir_and_damaged_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // No data: the fetch fails (an unsupported URL fails at once) and neither the run directory nor the data
    // directory is left behind.
    let o = cifar(
        &[
            "train",
            "--out",
            "runs/a",
            "--data-dir",
            "fresh",
            "--url",
            "ftp://example.invalid/x.tar.gz",
            "--no-plots",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("ftp://example.invalid"), "{err}");
    assert!(!dir.path().join("runs").exists(), "{err}");
    assert!(!dir.path().join("fresh").exists(), "{err}");

    // Damaged data: an error names the data as damaged, file by file, with the command that repairs it, before
    // any download is attempted.
    damaged_data(&dir.path().join("data"));
    let o = cifar(
        &[
            "train",
            "--out",
            "runs/b",
            "--data-dir",
            "data",
            "--url",
            "ftp://example.invalid/x.tar.gz",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("test_batch.bin") && err.contains("truncated (100% missing"),
        "{err}"
    );
    assert!(
        err.contains("is damaged (1 of its files)")
            && err.contains("cargo xtask fetch-data --force --data-dir data"),
        "{err}"
    );
    assert!(!err.contains("ftp://example.invalid"), "{err}");
    assert!(!err.contains("no CIFAR-10 data"), "{err}");
    assert!(!dir.path().join("runs").exists(), "{err}");
}

#[test]
fn every_flag_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let top = cifar(&["--help"], dir.path());
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    let subcommands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.iter().any(|c| c == "train"), "{top}");
    for sub in &subcommands {
        let o = cifar(&[sub, "--help"], dir.path());
        let help = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<&str> = help.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if !(t.starts_with("--") || t.starts_with("-h") || t.starts_with("-V"))
                || !l.starts_with("  ")
            {
                continue;
            }
            // Long help puts the text on the next, further indented line; short help after the flag.
            let next = lines.get(i + 1).copied().unwrap_or("");
            let indent = |s: &str| s.len() - s.trim_start().len();
            let described =
                t.contains("  ") || (indent(next) > indent(l) && !next.trim().is_empty());
            assert!(described, "cifar {sub}: {t:?} has no help text:\n{help}");
        }
    }
    // Train's flags say what the presets set.
    let o = cifar(&["train", "--help"], dir.path());
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "[reference: 64",
        "[reference: 1e-3",
        "[default: 42]",
        "[default: reference]",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}
