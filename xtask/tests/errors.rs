//! `cargo xtask` errors are one clean paragraph, also with `RUST_BACKTRACE=1` (common on developers' machines);
//! the backtrace only under `RUST_LIB_BACKTRACE`.

use std::process::Command;

fn fetch_missing(env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(["fetch-data", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--from")
        .arg(dir.path().join("missing.tar.gz"))
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("RUST_LOG", "off");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn errors_are_one_paragraph_even_with_rust_backtrace() {
    for env in [
        vec![],
        vec![("RUST_BACKTRACE", "1")],
        vec![("RUST_BACKTRACE", "full")],
    ] {
        let (ok, err) = fetch_missing(&env);
        assert!(!ok, "{env:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{env:?}: {err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains("missing.tar.gz"),
            "{env:?}: {err}"
        );
        assert!(!err.to_lowercase().contains("backtrace"), "{env:?}: {err}");
    }
    let (_, err) = fetch_missing(&[("RUST_LIB_BACKTRACE", "1")]);
    assert!(
        err.lines().count() > 1,
        "RUST_LIB_BACKTRACE shows the backtrace: {err}"
    );
}
