//! Building the release `cifar` binary that `bench` and `screenshot-serve` run, exactly as `cargo build --release
//! -p cli` would from a shell, so that switching between them and `cargo run --release -p cli` rebuilds nothing.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (xtask's parent folder).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The variables `cargo run` sets for the program it runs (xtask). Passed on to a nested `cargo build` they
/// would differ from a shell's environment, and build scripts that watch them (ring's does, through
/// `CARGO_MANIFEST_DIR`) would rerun and rebuild ring, rustls, reqwest and everything above them, twice per
/// switch.
fn is_run_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

/// `cargo build --release -p cli` in the workspace root with cargo's progress shown, the run-time variables
/// removed; returns the path of `cifar`.
pub fn release_cifar() -> Result<PathBuf> {
    let root = workspace_root();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "-p", "cli"])
        .current_dir(&root);
    for (name, _) in std::env::vars_os() {
        if let Some(n) = name.to_str()
            && is_run_variable(n)
        {
            cmd.env_remove(n);
        }
    }
    let status = cmd.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p cli failed");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join("release/cifar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_run_variables_are_removed() {
        for n in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
        ] {
            assert!(is_run_variable(n), "{n}");
        }
        for n in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO",
            "PATH",
        ] {
            assert!(!is_run_variable(n), "{n}");
        }
    }
}
