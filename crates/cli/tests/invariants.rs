//! The "Architecture Invariant" lines of docs/architecture.md that a test can check, read from the source tree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The library crates (every crate but the binary).
fn libraries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "cli")
        .collect();
    v.sort();
    assert!(v.len() >= 9, "{v:?}");
    v
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Lines of a library's `src/` that are code (not comments), with their file and number, outside `#[cfg(test)]`
/// modules (everything after a line `#[cfg(test)]` in a file is skipped: the tests sit at the end).
fn code_lines(krate: &str) -> Vec<(PathBuf, usize, String)> {
    let mut out = Vec::new();
    for f in rust_files(&root().join("crates").join(krate).join("src")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") {
                break;
            }
            if t.starts_with("//") {
                continue;
            }
            out.push((f.clone(), i + 1, line.to_string()));
        }
    }
    out
}

/// The workspace crates `krate` depends on (normal dependencies), recursively.
fn workspace_deps(krate: &str, seen: &mut BTreeSet<String>) {
    let toml =
        std::fs::read_to_string(root().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    for line in toml.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[dependencies]";
            continue;
        }
        if !in_deps || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let name = t.split(['=', '.', ' ']).next().unwrap().trim().to_string();
        if root().join("crates").join(&name).is_dir() && seen.insert(name.clone()) {
            workspace_deps(&name, seen);
        }
    }
}

/// Architecture Invariant: no library crate reads or writes a process-wide setting on its own. Kernel settings
/// are values (`cpu_ops::KernelConfig`): no `set_*` switch, no mutable static; the environment is read or written
/// only by the functions an application calls for that (`train::tune_cpu_process`, `dataset::url_from_env`).
/// One documented exception: the vector-ISA cap `CPU_OPS_MAX_ISA`, which stands in for the hardware (read once in
/// `cpu_ops::Isa::cap`, as the CPU's own features are), and the record of which kernel builds ran (`RUN` in the same
/// file: diagnostics, it changes nothing the kernels do).
#[test]
fn libraries_keep_no_process_wide_switches() {
    let mut bad = Vec::new();
    for krate in libraries() {
        for (f, n, line) in code_lines(&krate) {
            let t = line.trim_start();
            let isa = f.ends_with("cpu-ops/src/isa.rs");
            let switch = t.starts_with("pub fn set_")
                || (t.starts_with("static ")
                    && t.contains("Atomic")
                    && !(isa && t.starts_with("static RUN:")))
                || t.starts_with("static mut ");
            let env = t.contains("env::set_var") || t.contains("env::var");
            let allowed_env = f.ends_with("train/src/process.rs")
                || (f.ends_with("dataset/src/fetch.rs") && t.contains("std::env::var(URL_ENV)"))
                || (isa && t.contains("std::env::var(MAX_ISA_VAR)"));
            if switch || (env && !allowed_env) {
                bad.push(format!("{}:{n}: {}", f.display(), t));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "process-wide settings in libraries:\n{}",
        bad.join("\n")
    );
}

/// Architecture Invariant: predict and serve do not link train (inference sits below training), and nothing they
/// link draws progress bars or installs signal handlers.
#[test]
fn inference_does_not_link_the_trainer() {
    for krate in ["predict", "serve"] {
        let mut deps = BTreeSet::new();
        workspace_deps(krate, &mut deps);
        assert!(
            !deps.contains("train"),
            "{krate} depends on train: {deps:?}"
        );
        assert!(
            !deps.contains("dataset"),
            "{krate} depends on dataset: {deps:?}"
        );
        for d in deps.iter().chain([&krate.to_string()]) {
            let toml =
                std::fs::read_to_string(root().join("crates").join(d).join("Cargo.toml")).unwrap();
            for forbidden in ["indicatif", "ctrlc"] {
                assert!(
                    !toml.contains(&format!("\n{forbidden}")),
                    "{krate} links {d}, which depends on {forbidden}"
                );
            }
        }
    }
}

/// Architecture Invariant: library errors name settings, the CLI maps them to flags: no string in a library's
/// code names a `--flag` of ours (cargo's `--features` aside).
#[test]
fn library_messages_name_settings_not_flags() {
    let mut bad = Vec::new();
    for krate in libraries() {
        for (f, n, line) in code_lines(&krate) {
            let Some(start) = line.find('"') else {
                continue;
            };
            // sbatch's own options in a generated batch script are not flags of ours.
            if line.contains("#SBATCH --") {
                continue;
            }
            let lit = &line[start..];
            let mut rest = lit;
            while let Some(i) = rest.find("--") {
                let after = &rest[i + 2..];
                if after.starts_with(|c: char| c.is_ascii_lowercase())
                    && !after.starts_with("features")
                {
                    bad.push(format!("{}:{n}: {}", f.display(), line.trim()));
                    break;
                }
                rest = after;
            }
        }
    }
    assert!(
        bad.is_empty(),
        "flags named in library code:\n{}",
        bad.join("\n")
    );
}

/// Architecture Invariant: every `unsafe` block or function in the libraries has a SAFETY note (a `// SAFETY:`
/// comment on one of the three lines above it, or a `# Safety` section for an `unsafe fn`).
#[test]
fn unsafe_has_safety_notes() {
    let mut bad = Vec::new();
    for krate in libraries() {
        for f in rust_files(&root().join("crates").join(&krate).join("src")) {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim_start();
                if t.starts_with("//") || !(t.contains("unsafe {") || t.contains("unsafe fn")) {
                    continue;
                }
                let above = &lines[i.saturating_sub(4)..i];
                let noted = above.iter().chain([line]).any(|l| {
                    l.contains("SAFETY") || l.contains("# Safety") || l.contains("target_feature")
                });
                // `unsafe fn` declarations document their contract in a `# Safety` section further up.
                let documented_fn = t.contains("unsafe fn")
                    && lines[i.saturating_sub(30)..i]
                        .iter()
                        .any(|l| l.contains("# Safety") || l.contains("target_feature"));
                if !noted && !documented_fn {
                    bad.push(format!("{}:{}: {}", f.display(), i + 1, t));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe without a SAFETY note:\n{}",
        bad.join("\n")
    );
}

#[test]
fn nothing_assumes_ten_classes() {
    // The class count comes from the data: no NUM_CLASSES constant, no head of a literal 10 outputs, and
    // CIFAR-10's names only where CIFAR-10 is meant.
    let allowed_cifar10_names = [
        "cifar-types/src/images.rs", // the definition and default_class_names
        "cifar-types/src/lib.rs",    // its re-export
        "dataset/src/decode.rs",     // CIFAR-10's own decoder
        "model/src/checkpoint.rs",   // files written before class names were recorded
        "train/src/bench.rs",        // the benches time CIFAR-10-shaped work
    ];
    let mut bad = Vec::new();
    for krate in libraries() {
        for (file, n, line) in code_lines(&krate) {
            let f = file.display().to_string();
            if line.contains("NUM_CLASSES") {
                bad.push(format!("{f}:{n}: {line}"));
            }
            if line.contains("CIFAR10_CLASS_NAMES")
                && !allowed_cifar10_names.iter().any(|a| f.ends_with(a))
            {
                bad.push(format!("{f}:{n}: {line}"));
            }
            let l = line.replace(' ', "");
            if l.contains("uniform((10,") || l.contains(",128,10)") || l.contains(",84,10)") {
                bad.push(format!("{f}:{n}: {line}"));
            }
        }
    }
    assert!(bad.is_empty(), "ten classes assumed:\n{}", bad.join("\n"));
}
