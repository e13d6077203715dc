//! `CPU_OPS_MAX_ISA` really changes the kernels a run picks: `cifar bench --json` reports the build of each
//! kernel family that ran, read here with and without the cap (issue 28: the AVX2 path measured on an AVX-512
//! machine must be the one an AVX2-only CPU runs).

use std::collections::BTreeMap;
use std::process::Command;

/// What a tiny bench run reports (see [`bench_report`]).
struct Report {
    /// The kernel families' builds.
    families: BTreeMap<String, String>,
    /// The level the kernels were picked for.
    level: String,
    /// The CPU's own level.
    cpu: String,
    /// The measured GEMM speeds (`null` where bf16 does not run).
    gemm: serde_json::Value,
    /// The precision the train step ran in.
    precision: String,
    stderr: String,
}

impl Report {
    /// bf16's measured GEMM speed over f32's, where bf16 runs.
    fn gemm_ratio(&self) -> Option<f64> {
        Some(self.gemm["bf16"].as_f64()? / self.gemm["f32"].as_f64()?)
    }
}

/// Runs a tiny airbench94 bench (training step, inference, TTA) with `CPU_OPS_MAX_ISA=cap` (unset for `None`) and
/// `--precision precision`; returns what its JSON report and stderr say.
fn bench_report(cap: Option<&str>, precision: &str) -> Report {
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
    let train: serde_json::Value = stdout
        .lines()
        .find(|l| l.contains("\"bench\": \"train\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("no train line in {stdout}"));
    let families = v["kernels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    Report {
        families,
        level: v["isa"].as_str().unwrap().into(),
        cpu: v["cpu_isa"].as_str().unwrap().into(),
        gemm: v["gemm_gflops"].clone(),
        precision: train["precision"].as_str().unwrap().into(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`bench_report`]'s builds, level and CPU level.
fn builds(cap: Option<&str>, precision: &str) -> (BTreeMap<String, String>, String, String) {
    let r = bench_report(cap, precision);
    (r.families, r.level, r.cpu)
}

#[test]
fn the_isa_cap_changes_the_kernels_that_run() {
    let (free, level, cpu) = builds(None, "f32");
    assert_eq!(level, cpu, "no cap: the CPU's own level");
    // Every family airbench94 uses ran, each at the CPU's level.
    for f in ["sparse-backward", "pool", "patch-conv", "gelu"] {
        assert_eq!(free.get(f), Some(&cpu), "{f} without a cap: {free:?}");
    }
    // An f32 run never runs the bf16 GEMM (the speed measurement beside it must not be recorded as run).
    assert!(!free.contains_key("bf16-gemm"), "{free:?}");
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

#[test]
fn the_bf16_gemm_speed_is_reported_and_a_slower_bf16_is_warned_of() {
    let Report { cpu, gemm, .. } = bench_report(None, "f32");
    if gemm.is_null() {
        eprintln!(
            "skipped: this CPU ({cpu}) does not run the bf16 GEMM, so there is no speed to report"
        );
        return;
    }
    let (bf16, f32) = (
        gemm["bf16"].as_f64().unwrap(),
        gemm["f32"].as_f64().unwrap(),
    );
    assert!(bf16 > 0.0 && f32 > 0.0, "{gemm}");
    // Under the AVX2 cap bf16 does not run, so nothing is measured.
    let capped = bench_report(Some("avx2"), "f32").gemm;
    assert!(capped.is_null(), "{capped}");
    // bf16 asked for: a warning exactly where this process measures bf16 slower than f32 (its own
    // measurement, which the report carries).
    let r = bench_report(None, "bf16");
    assert_eq!(
        r.families.get("bf16-gemm").map(String::as_str),
        Some("avx512")
    );
    let ratio = r.gemm_ratio().unwrap();
    let warned = r
        .stderr
        .contains("bf16 convolutions will be slower than f32 on this CPU");
    assert_eq!(warned, ratio < 1.0, "ratio {ratio:.2}: {}", r.stderr);
}

/// `--precision auto` runs bf16 exactly where this process measured its bf16 GEMM faster than its f32 one, f32
/// everywhere else (no AVX512-BF16, or capped below AVX-512), and says which it chose and why.
#[test]
fn precision_auto_picks_the_faster_arithmetic_measured_here() {
    let r = bench_report(None, "auto");
    let want = match r.gemm_ratio() {
        Some(ratio) if ratio > 1.0 => "bf16",
        _ => "f32",
    };
    assert_eq!(r.precision, want, "{}: {}", r.gemm, r.stderr);
    assert_eq!(r.families.contains_key("bf16-gemm"), want == "bf16");
    assert!(
        r.stderr.contains(&format!("--precision auto: {want} (")),
        "{}",
        r.stderr
    );
    // Never a warning that the chosen arithmetic is the slower one.
    assert!(!r.stderr.contains("will be slower"), "{}", r.stderr);
    // Capped below AVX-512: f32, whatever the CPU.
    let capped = bench_report(Some("avx2"), "auto");
    assert_eq!(capped.precision, "f32", "{}", capped.stderr);
    assert!(
        capped.stderr.contains("no AVX512-BF16"),
        "{}",
        capped.stderr
    );
}
