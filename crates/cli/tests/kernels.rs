//! `CPU_OPS_MAX_ISA` really changes the kernels a run picks: `cifar bench --json` reports the build of each
//! kernel family that ran, read here with and without the cap (issue 28: the AVX2 path measured on an AVX-512
//! machine must be the one an AVX2-only CPU runs).

use std::collections::BTreeMap;
use std::process::Command;

/// Runs a tiny airbench94 bench (training step, inference, TTA) with `CPU_OPS_MAX_ISA=cap` (unset for `None`);
/// returns the kernel families' builds, the level and the CPU's level from the JSON report.
fn builds(cap: Option<&str>, precision: &str) -> (BTreeMap<String, String>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cifar"));
    cmd.args([
        "bench",
        "--model",
        "airbench94",
        "--precision",
        precision,
        "--train-batches",
        "4",
        "--infer-batch",
        "4",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--json",
        "--quiet",
    ]);
    match cap {
        Some(c) => cmd.env("CPU_OPS_MAX_ISA", c),
        None => cmd.env_remove("CPU_OPS_MAX_ISA"),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("\"kernels\""))
        .unwrap_or_else(|| panic!("no kernels line in {stdout}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let families = v["kernels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (
        families,
        v["isa"].as_str().unwrap().into(),
        v["cpu_isa"].as_str().unwrap().into(),
    )
}

#[test]
fn the_isa_cap_changes_the_kernels_that_run() {
    let (free, level, cpu) = builds(None, "f32");
    assert_eq!(level, cpu, "no cap: the CPU's own level");
    // Every family airbench94 uses ran, each at the CPU's level.
    for f in ["sparse-backward", "pool", "patch-conv", "gelu"] {
        assert_eq!(free.get(f), Some(&cpu), "{f} without a cap: {free:?}");
    }
    // Winograd's transforms: in f32 the F(4x4) ones, AVX2 builds on every AVX2 or AVX-512 CPU; none on the portable
    // path (the direct convolution runs).
    if cpu != "baseline" {
        assert_eq!(
            free.get("winograd").map(String::as_str),
            Some("avx2"),
            "{free:?}"
        );
    }
    let mut caps = vec!["baseline"];
    if cpu != "baseline" {
        caps.push("avx2");
    }
    for cap in caps {
        let (capped, level, cpu_again) = builds(Some(cap), "f32");
        assert_eq!((level.as_str(), &cpu_again), (cap, &cpu));
        for f in ["sparse-backward", "pool", "patch-conv", "gelu"] {
            assert_eq!(
                capped.get(f).map(String::as_str),
                Some(cap),
                "{f} at {cap}: {capped:?}"
            );
        }
        // Winograd at the cap's level (none at baseline); the AVX-512-only bf16 GEMM not at all.
        let wino = (cap != "baseline").then_some(cap);
        assert_eq!(
            capped.get("winograd").map(String::as_str),
            wino,
            "{capped:?}"
        );
        assert!(!capped.contains_key("bf16-gemm"), "{cap}: {capped:?}");
    }
}

#[test]
fn bf16_is_refused_under_the_cap_and_a_bad_cap_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args([
            "bench",
            "--precision",
            "bf16",
            "--steps",
            "1",
            "--repeats",
            "1",
        ])
        .env("CPU_OPS_MAX_ISA", "avx2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bf16"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_cifar"))
        .args(["bench", "--steps", "1", "--repeats", "1"])
        .env("CPU_OPS_MAX_ISA", "sse4")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("CPU_OPS_MAX_ISA=\"sse4\": expected avx512, avx2 or baseline"),
        "{err}"
    );
}
