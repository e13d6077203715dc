//! `cifar sweep`: bad input is a clear error, before any run starts.

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

/// A URL nothing answers, so that a sweep that gets as far as fetching data fails at once.
const NO_URL: &str = "http://127.0.0.1:9/cifar-10-binary.tar.gz";

#[test]
fn bad_grids_name_the_flag_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["sweep", "--seeds", "0..2"], "--out: required"),
        (
            vec!["sweep", "--out", "s", "--seeds", "5..5"],
            "--seeds: seeds \"5..5\": the range 5..5 is empty",
        ),
        (
            vec!["sweep", "--out", "s", "--seeds", "3,x"],
            "expected a number",
        ),
        (
            vec!["sweep", "--out", "s", "--set", "learning_rate=0.1"],
            "--set: setting \"learning_rate\": unknown setting; expected one of",
        ),
        (
            vec!["sweep", "--out", "s", "--set", "lr=fast"],
            "setting \"lr\": cannot take the value fast",
        ),
        (
            vec!["sweep", "--out", "s", "--set", "lr=-1"],
            "expected a positive number",
        ),
        (vec!["sweep", "--out", "s", "--set", "seed=1,2"], "--seeds"),
        (
            vec!["sweep", "--out", "s", "--set", "lr"],
            "expected setting=value",
        ),
        (vec!["sweep", "--out", "s", "--jobs", "0"], "--jobs"),
        (vec!["sweep", "--out", "s", "--submit"], "--slurm"),
    ] {
        let o = cifar(&args, dir.path());
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!dir.path().join("s").exists());
    assert!(!dir.path().join("data").exists());
}

#[test]
fn sbatch_missing_from_path_is_named_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(["sweep", "--out", "s", "--slurm", "--submit"])
        .current_dir(dir.path())
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--submit: sbatch is not on PATH"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("s").exists());
}

#[test]
fn another_grid_is_refused_unless_forced_and_indices_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "sweep",
        "--preset",
        "fast",
        "--out",
        "s",
        "--data-dir",
        "d",
        "--url",
        NO_URL,
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        cifar(&a, dir.path())
    };
    // The grid is recorded, then fetching the data fails (nothing answers the URL).
    let o = with(&["--seeds", "0..2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot fetch"), "{}", stderr(&o));
    let sweep_json = dir.path().join("s/sweep.json");
    assert!(sweep_json.is_file());
    // The same grid continues; another one is refused, naming what differs and the way out.
    let o = with(&["--seeds", "0..3"]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("holds a sweep of another grid")
            && err.contains("seeds differ")
            && err.contains("--force"),
        "{err}"
    );
    let o = with(&["--seeds", "0..2", "--set", "lr=0.001,0.002"]);
    assert!(
        stderr(&o).contains("swept settings differ"),
        "{}",
        stderr(&o)
    );
    let o = with(&["--seeds", "0..3", "--force"]);
    assert!(stderr(&o).contains("cannot fetch"), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sweep_json).unwrap()).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 3);
    // Task indices.
    let o = cifar(&["sweep", "run-one", "s", "--index", "3"], dir.path());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "--index 3: run index 3 is out of range: the sweep has 3 runs (indices 0 to 2)"
        ),
        "{}",
        stderr(&o)
    );
    let o = cifar(&["sweep", "run-one", "nowhere", "--index", "0"], dir.path());
    assert!(
        stderr(&o).contains("nowhere: not a sweep directory: no sweep.json"),
        "{}",
        stderr(&o)
    );
    // A run without its data fails and says where the data should be; status reports it.
    let o = cifar(&["sweep", "run-one", "s", "--index", "1"], dir.path());
    assert!(!o.status.success());
    let o = cifar(&["sweep", "status", "s"], dir.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = out
        .lines()
        .find(|l| l.contains("seed-1"))
        .unwrap_or_default();
    assert!(line.contains("failed"), "{out}");
    assert!(
        out.contains("3 runs: 0 finished, 0 running, 0 interrupted, 1 failed, 2 missing"),
        "{out}"
    );
    // A report of nothing finished is still written.
    let o = cifar(&["sweep", "report", "s"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("s/sweep.html").is_file());
}

#[test]
fn bad_slurm_values_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, needle) in [
        (vec!["--partition", "a b"], "--partition: expected one word"),
        (vec!["--time", "1;rm"], "--time: expected one word"),
        (
            vec!["--cpus-per-task", "0"],
            "--cpus-per-task: expected at least 1",
        ),
        (
            vec!["--array-limit", "0"],
            "--array-limit: expected at least 1",
        ),
    ] {
        let mut args = vec!["sweep", "--out", "s", "--url", NO_URL, "--slurm"];
        args.extend(extra.iter());
        let o = cifar(&args, dir.path());
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    assert!(!dir.path().join("s").exists());
}

const SHARED_ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/cifar-10-binary.tar.gz"
);

/// A local sweep on the real data, two runs at once: Ctrl-C (SIGINT to the driver) while the first runs train
/// leaves them interrupted with a checkpoint; the same command refuses to start over them; with `--resume` it
/// continues them (from their checkpoints) and finishes the sweep with its report.
#[test]
#[ignore = "needs ../shared/data/cifar-10-binary.tar.gz and trains 2 short runs: cargo test --release -p cli --test sweep -- --ignored"]
fn local_sweep_interrupted_and_resumed() {
    let archive = Path::new(SHARED_ARCHIVE);
    if !archive.is_file() {
        eprintln!("SKIPPED: no {}", archive.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let opts = dataset::FetchOptions {
        from: Some(archive.to_path_buf()),
        ..Default::default()
    };
    dataset::fetch(&data, &opts, &mut |_, _| {}).unwrap();
    let args = [
        "sweep",
        "--preset",
        "fast",
        "--seeds",
        "0..2",
        "--set",
        "epochs=3",
        "--set",
        "limit_train=5000",
        "--device",
        "cpu",
        "--data-dir",
        "data",
        "--out",
        "s",
        "--jobs",
        "2",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(args)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both runs are past their first epoch: interrupt the driver.
    let start = std::time::Instant::now();
    let log = |i: usize| {
        std::fs::read_to_string(dir.path().join(format!("s/logs/{i}.log"))).unwrap_or_default()
    };
    while !(log(0).contains("epoch   1/3") && log(1).contains("epoch   1/3")) {
        assert!(
            start.elapsed().as_secs() < 300,
            "no epoch within 5 minutes:\n{}\n{}",
            log(0),
            log(1)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let status = cifar(&["sweep", "status", "s"], dir.path());
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("2 interrupted"), "{out}");
    for i in 0..2 {
        assert!(
            dir.path()
                .join(format!("s/seed-{i}/last.safetensors"))
                .is_file()
        );
    }
    // Not over interrupted runs without --resume.
    let o = cifar(&args, dir.path());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("continue them with --resume"),
        "{}",
        stderr(&o)
    );
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let o = Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(&resumed)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 0..2 {
        assert!(log(i).contains("resuming"), "{}", log(i));
        assert!(
            dir.path()
                .join(format!("s/seed-{i}/test_report.json"))
                .is_file()
        );
    }
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("2/2"), "{table}");
    assert!(dir.path().join("s/sweep.html").is_file());
}
