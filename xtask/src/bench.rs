//! `cargo xtask bench`: this project's throughput next to PyTorch's, measured in the same run.
//!
//! Builds the `cifar` binary in release, then alternates `cifar bench` and, when `python3 -c "import torch"`
//! works, the reference script's `--bench` (`../shared/bench/reference_seed.py`), `--rounds` times, so both see
//! the same machine load. Prints each side's median per measurement, the ratio, and JSON lines in the reference
//! script's format (`{"bench": ..., "batch": n, "img_per_s": f}`, ours with `"impl": "rust"`).
//! `--epoch` also trains one real epoch (the reference recipe) and reports its wall time and peak memory.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Alternating rounds of ours and PyTorch's.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Timed repeats inside each `cifar bench` call.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Skip PyTorch even when it is installed.
    #[arg(long)]
    no_torch: bool,
    /// The reference script.
    #[arg(long, default_value = "../shared/bench/reference_seed.py")]
    reference: PathBuf,
    /// Threads for both sides.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also time one real training epoch (needs the data in --data-dir).
    #[arg(long)]
    epoch: bool,
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

type Key = (String, usize, String);

pub fn run(a: Args) -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "cli"])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p cli failed");
    }
    let cifar = Path::new("target/release/cifar");
    let torch = !a.no_torch && a.reference.is_file() && torch_available();
    if !torch {
        println!(
            "# PyTorch side skipped (python3 -c 'import torch' fails, --no-torch, or no reference script)"
        );
    }
    let mut samples: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for round in 1..=a.rounds.max(1) {
        eprintln!("round {round}/{}: rust", a.rounds);
        let out = Command::new(cifar)
            .args([
                "bench",
                "--device",
                "cpu",
                "--repeats",
                &a.repeats.to_string(),
                "--quiet",
            ])
            .env("RAYON_NUM_THREADS", a.threads.to_string())
            .output()
            .context("cannot run target/release/cifar bench")?;
        if !out.status.success() {
            bail!(
                "cifar bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        collect(&String::from_utf8_lossy(&out.stdout), "rust", &mut samples);
        if torch {
            eprintln!("round {round}/{}: pytorch", a.rounds);
            let out = Command::new("python3")
                .arg(&a.reference)
                .args(["--bench", "--threads", &a.threads.to_string()])
                .output()
                .context("cannot run the reference script")?;
            if !out.status.success() {
                bail!(
                    "reference --bench failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            collect(&String::from_utf8_lossy(&out.stdout), "torch", &mut samples);
        }
    }
    report(&samples);
    if a.epoch {
        epoch(cifar, &a)?;
    }
    Ok(())
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Reads `{"bench": ..., "batch": ..., "img_per_s": ..., "layout"?: ...}` lines.
fn collect(stdout: &str, side: &str, samples: &mut BTreeMap<Key, Vec<f64>>) {
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(bench), Some(batch), Some(rate)) = (
            v["bench"].as_str(),
            v["batch"].as_u64(),
            v["img_per_s"].as_f64(),
        ) else {
            continue;
        };
        let impl_name = match v["layout"].as_str() {
            Some(layout) => format!("{side}-{layout}"),
            None => side.to_string(),
        };
        samples
            .entry((bench.to_string(), batch as usize, impl_name))
            .or_default()
            .push(rate);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(samples: &BTreeMap<Key, Vec<f64>>) {
    println!(
        "{:<6} {:>5}  {:<20} {:>10}  {:>8}",
        "bench", "batch", "implementation", "img/s", "vs torch"
    );
    let mut keys: Vec<(String, usize)> = samples.keys().map(|(b, n, _)| (b.clone(), *n)).collect();
    keys.dedup();
    for (bench, batch) in keys {
        // The best PyTorch layout measured for this bench and batch.
        let best_torch = samples
            .iter()
            .filter(|((b, n, i), _)| *b == bench && *n == batch && i.starts_with("torch"))
            .map(|(_, v)| median(v))
            .fold(f64::NAN, f64::max);
        for ((b, n, imp), v) in samples
            .iter()
            .filter(|((b, n, _), _)| *b == bench && *n == batch)
        {
            let m = median(v);
            let ratio = if imp == "rust" && best_torch.is_finite() {
                format!("{:.2}x", m / best_torch)
            } else {
                String::new()
            };
            println!("{b:<6} {n:>5}  {imp:<20} {m:>10.1}  {ratio:>8}");
        }
    }
    for ((b, n, imp), v) in samples {
        println!(
            "{{\"bench\": \"{b}\", \"batch\": {n}, \"impl\": \"{imp}\", \"img_per_s\": {:.1}, \"runs\": {}}}",
            median(v),
            v.len()
        );
    }
}

fn epoch(cifar: &Path, a: &Args) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("xtask-bench-epoch-{}", std::process::id()));
    let out = Command::new(cifar)
        .args([
            "train",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--no-plots",
            "--quiet",
        ])
        .arg("--data-dir")
        .arg(&a.data_dir)
        .arg("--out")
        .arg(&tmp)
        .env("RAYON_NUM_THREADS", a.threads.to_string())
        .output()
        .context("cannot run cifar train")?;
    let _ = std::fs::remove_dir_all(&tmp);
    if !out.status.success() {
        bail!(
            "one-epoch training run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout
        .lines()
        .filter(|l| l.contains("epoch") || l.contains("peak memory"))
    {
        println!("epoch: {line}");
    }
    Ok(())
}
