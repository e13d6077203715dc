//! `CPU_OPS_MAX_ISA` caps this crate's dispatch and the GEMM crate's alike (the workspace's patched
//! gemm-common, vendor/README.md). The cap is read once per process, so each case runs in a child process: this
//! test binary itself, re-run on one test with the variable set.
//!
//! x86-64 only: the cap names x86-64 levels, and the GEMM crate's feature checks here are x86 ones.
#![cfg(target_arch = "x86_64")]

use candle_cpu_ops::{Isa, MAX_ISA_VAR, bf16_supported};
use std::process::Command;

/// In the child: what the dispatch sees, as one line.
fn report() -> String {
    format!(
        "isa={} hw={} bf16={} gemm_avx512={} gemm_fma={}",
        Isa::detect(),
        Isa::hardware(),
        bf16_supported(),
        gemm_common::feature_detected!("avx512f"),
        gemm_common::feature_detected!("fma"),
    )
}

/// Runs `child_reports` in a child process with the cap; returns its report line.
fn child(cap: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_reports",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MAX_ISA_VAR, cap)
        .env("ISA_CAP_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    stdout
        .lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no report in {stdout}"))
}

#[test]
fn child_reports() {
    if std::env::var_os("ISA_CAP_CHILD").is_some() {
        println!("REPORT {}", report());
    }
}

#[test]
fn the_cap_reaches_every_dispatch() {
    if std::env::var_os("ISA_CAP_CHILD").is_some() {
        return;
    }
    let hw = Isa::hardware();
    let free = child("");
    assert!(free.starts_with(&format!("isa={hw} hw={hw} ")), "{free}");
    if hw == Isa::Avx512 {
        assert!(free.contains("gemm_avx512=true"), "{free}");
    }
    if hw >= Isa::Avx2 {
        let avx2 = child("avx2");
        assert_eq!(
            avx2,
            format!("isa=avx2 hw={hw} bf16=false gemm_avx512=false gemm_fma=true"),
        );
    }
    let base = child("baseline");
    assert_eq!(
        base,
        format!("isa=baseline hw={hw} bf16=false gemm_avx512=false gemm_fma=false"),
    );
}
