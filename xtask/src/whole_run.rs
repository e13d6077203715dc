//! `cargo xtask bench --whole-run`: the same recipe trained end to end on both sides, on the real archive, one
//! after the other, with wall time, test accuracy and peak memory side by side.
//!
//! * `airbench94` (`--model airbench94`): ours `cifar train --preset airbench94 --precision bf16 --seed S`,
//!   PyTorch's `bench/airbench94_torch.py --seed S` (same network, recipe, data order scheme and 6-view TTA, fp32);
//! * `airbench94-muon` (`--model airbench94-muon`): ours `cifar train --preset airbench94-muon --precision bf16
//!   --seed S`, PyTorch's `bench/airbench94_muon_torch.py --seed S --epochs E` (the same recipe in fp32, eager; `E`
//!   our run's length as its config.json records it, so the preset alone says how long both train);
//! * the `fast` preset (`--model cnn-dnn`): ours `cifar train --preset fast --seed S` (f32), PyTorch's
//!   `bench/reference_seed.py --preset fast --seed S` (one-cycle LR, AdamW, label smoothing, batch 128, 18
//!   epochs, flip TTA, best epoch by validation accuracy).
//!
//! PyTorch runs with the setup of the step benches (threads equal to ours, the allocator of
//! `--torch-allocators`' first entry, checked against what the process reports), in `--whole-run-layout`, eager
//! unless `--whole-run-compile`. Wall time is measured here around each process (data loading included); peak
//! memory is each process's own peak resident size (`VmHWM` for ours, `ru_maxrss` for PyTorch). Ours reads the
//! extracted archive in `--data-dir` (`cargo xtask fetch-data --from ARCHIVE`), PyTorch the archive itself.

use crate::bench::{ModelSel, last_line, torch_available};
use crate::torch_env::{Allocator, TorchSetup, library_dirs, load_average};
use anyhow::{Context as _, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(clap::Args)]
pub struct WholeRunArgs {
    /// Train whole recipes on both sides (airbench94 and/or the fast preset, per --model) instead of timing
    /// steps; takes 10-40 minutes per recipe and side on two cores.
    #[arg(long)]
    pub whole_run: bool,
    /// --whole-run: the seed, both sides.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// --whole-run: our convolution arithmetic [default: bf16 for airbench94, f32 for the fast preset].
    #[arg(long)]
    pub whole_run_precision: Option<String>,
    /// --whole-run: our Winograd tiles (`cifar train --winograd`).
    #[arg(long, default_value = "auto")]
    pub whole_run_winograd: String,
    /// --whole-run: PyTorch's memory layout (nchw or channels_last).
    #[arg(long, default_value = "nchw")]
    pub whole_run_layout: String,
    /// --whole-run: PyTorch trains under torch.compile (inductor).
    #[arg(long)]
    pub whole_run_compile: bool,
}

/// What `--whole-run` takes from the bench's other flags.
pub struct Context {
    /// The workspace root (the bench scripts are under `bench/`).
    pub root: PathBuf,
    pub archive: PathBuf,
    pub data_dir: PathBuf,
    pub python: String,
    /// A prebuilt `cifar` (`--cifar`), else the release build.
    pub cifar: Option<PathBuf>,
    pub threads: usize,
    pub allocator: Allocator,
    pub model: ModelSel,
    pub reference: PathBuf,
    pub airbench_reference: PathBuf,
}

/// One recipe on both sides.
struct Recipe {
    name: &'static str,
    preset: &'static str,
    precision: &'static str,
    script: PathBuf,
    torch_args: Vec<String>,
    /// Whether the script takes `--epochs E` (fractions allowed): then it is given our run's length, read from our
    /// run's config.json, so the preset stays the one place that says how long the recipe trains.
    torch_epochs: bool,
}

/// The 1-minute load average over a run: mean and highest.
type Load = Option<(f64, f64)>;

/// One side's finished run.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    wall_s: f64,
    /// Test accuracy with the recipe's TTA and without, in [0, 1].
    acc: Option<f64>,
    acc_plain: Option<f64>,
    peak_rss_bytes: Option<u64>,
    /// The process's own summary (PyTorch's epoch times; ours, its last-epoch line).
    detail: String,
    /// The 1-minute load average sampled every 30 s during the run: mean and highest.
    load: Load,
}

fn recipes(a: &WholeRunArgs, c: &Context) -> Vec<Recipe> {
    let mut torch_common = vec![
        "--archive".to_string(),
        c.archive.display().to_string(),
        "--seed".into(),
        a.seed.to_string(),
        "--threads".into(),
        c.threads.to_string(),
    ];
    if a.whole_run_layout == "channels_last" {
        torch_common.push("--channels-last".into());
    }
    if a.whole_run_compile {
        torch_common.push("--compile".into());
    }
    let mut out = Vec::new();
    if c.model.has(ModelSel::Airbench94Muon) {
        // The Muon script has no torch.compile mode: it runs eager.
        let torch_args = torch_common
            .iter()
            .filter(|a| *a != "--compile")
            .cloned()
            .collect();
        out.push(Recipe {
            name: "airbench94-muon",
            preset: "airbench94-muon",
            precision: "bf16",
            script: c.root.join("bench/airbench94_muon_torch.py"),
            torch_args,
            torch_epochs: true,
        });
    }
    if c.model.has(ModelSel::Airbench94) {
        out.push(Recipe {
            name: "airbench94",
            preset: "airbench94",
            precision: "bf16",
            script: c.airbench_reference.clone(),
            torch_args: torch_common.clone(),
            torch_epochs: false,
        });
    }
    if c.model.has(ModelSel::CnnDnn) {
        let mut torch_args = torch_common;
        torch_args.extend(["--preset".into(), "fast".into()]);
        out.push(Recipe {
            name: "fast (cnn-dnn)",
            preset: "fast",
            precision: "f32",
            script: c.reference.clone(),
            torch_args,
            torch_epochs: false,
        });
    }
    out
}

pub fn run(a: &WholeRunArgs, c: &Context) -> Result<()> {
    if !matches!(a.whole_run_layout.as_str(), "nchw" | "channels_last") {
        bail!(
            "--whole-run-layout: expected nchw or channels_last, found {}",
            a.whole_run_layout
        );
    }
    if !c.archive.is_file() {
        bail!(
            "--whole-run: no CIFAR-10 binary archive at {} (--archive)",
            c.archive.display()
        );
    }
    if !c.data_dir.join("cifar-10-batches-bin").is_dir() {
        bail!(
            "--whole-run: no cifar-10-batches-bin in {} (--data-dir); extract the archive first: cargo xtask \
             fetch-data --from {} --data-dir {}",
            c.data_dir.display(),
            c.archive.display(),
            c.data_dir.display()
        );
    }
    if !torch_available(&c.python) {
        bail!(
            "--whole-run: {} -c 'import torch, numpy' fails (--python)",
            c.python
        );
    }
    let cifar = match &c.cifar {
        Some(p) => p.clone(),
        None => crate::build::release_cifar()?,
    };
    let cache = tempfile::Builder::new()
        .prefix("xtask-whole-run-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let setup = TorchSetup::resolve(
        c.allocator,
        c.threads,
        &library_dirs(),
        Some(cache.path().join("inductor")),
    )?;
    let mut results = Vec::new();
    for r in recipes(a, c) {
        let precision = a.whole_run_precision.as_deref().unwrap_or(r.precision);
        let out_dir = cache.path().join(format!("ours-{}", r.preset));
        let mut ours = Command::new(&cifar);
        ours.args(["train", "--preset", r.preset, "--precision", precision])
            .args(["--winograd", &a.whole_run_winograd])
            .args(["--seed", &a.seed.to_string(), "--device", "cpu"])
            .args(["--no-plots", "--quiet"])
            .arg("--data-dir")
            .arg(&c.data_dir)
            .arg("--out")
            .arg(&out_dir)
            .env("RAYON_NUM_THREADS", c.threads.to_string());
        eprintln!("whole run {}: ours ({precision})", r.name);
        let (wall_s, stdout, load) = timed_run(ours, "cifar train")?;
        let mut o = parse_ours(&stdout);
        o.wall_s = wall_s;
        o.load = load;
        let ours = o;

        let mut theirs = Command::new(&c.python);
        theirs.arg(&r.script).args(&r.torch_args);
        if r.torch_epochs {
            let config = out_dir.join("config.json");
            let epochs = run_epochs(&config)
                .with_context(|| format!("{}: our run's length", config.display()))?;
            theirs.args(["--epochs", &epochs.to_string()]);
        }
        setup.apply(&mut theirs);
        eprintln!(
            "whole run {}: PyTorch ({}, {}, {})",
            r.name,
            a.whole_run_layout,
            if a.whole_run_compile {
                "inductor"
            } else {
                "eager"
            },
            setup.name()
        );
        let (wall_s, stdout, load) = timed_run(theirs, &r.script.display().to_string())?;
        let (mut o, last) = parse_torch(&stdout).with_context(|| {
            format!(
                "{}: no final JSON line with \"test_acc\" in its output",
                r.script.display()
            )
        })?;
        setup.check_row(&last, &r.script)?;
        o.wall_s = wall_s;
        o.load = load;
        results.push((r.name, precision, ours, o, last));
    }
    report(&results, a, &setup);
    Ok(())
}

/// Runs `cmd` to the end, echoing its stdout to stderr as it comes; (wall seconds, stdout, load average mean
/// and highest).
fn timed_run(mut cmd: Command, what: &str) -> Result<(f64, String, Load)> {
    let t = Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut loads = Vec::new();
            let mut last = Instant::now() - std::time::Duration::from_secs(30);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if last.elapsed().as_secs() >= 30 {
                    loads.extend(load_average());
                    last = Instant::now();
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            loads
        })
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = stderr {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                eprintln!("  {line}");
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let mut out = String::new();
    if let Some(o) = child.stdout.take() {
        for line in BufReader::new(o).lines().map_while(Result::ok) {
            eprintln!("  {line}");
            out.push_str(&line);
            out.push('\n');
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {what}"))?;
    let wall = t.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let loads = sampler.join().unwrap_or_default();
    let load = (!loads.is_empty()).then(|| {
        (
            loads.iter().sum::<f64>() / loads.len() as f64,
            loads.iter().copied().fold(f64::MIN, f64::max),
        )
    });
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        bail!("{what} failed ({status}): {}", last_line(&err));
    }
    Ok((wall, out, load))
}

/// Reads `cifar train`'s summary lines: `test accuracy 90.84% (89.98% without TTA), loss ...`, `peak memory:
/// 1441 MiB`, `last epoch ...`.
/// A run's length in epochs from its config.json: `fractional_epochs` where set, else `epochs`.
fn run_epochs(config: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(config).context("cannot read it")?;
    let v: serde_json::Value = serde_json::from_str(&text).context("not JSON")?;
    v["fractional_epochs"]
        .as_f64()
        .or_else(|| v["epochs"].as_f64())
        .context("no fractional_epochs or epochs number in it")
}

fn parse_ours(stdout: &str) -> Outcome {
    let mut o = Outcome::default();
    let percent = |s: &str| {
        s.trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .map(|p| p / 100.0)
    };
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test accuracy ") {
            let (first, tail) = rest.split_once([' ', ',']).unwrap_or((rest, ""));
            o.acc = percent(first);
            o.acc_plain = tail
                .split_once('(')
                .and_then(|(_, t)| t.split_once(" without TTA"))
                .and_then(|(p, _)| percent(p))
                .or(o.acc);
        } else if let Some(rest) = line.strip_prefix("peak memory: ") {
            o.peak_rss_bytes = rest
                .trim()
                .trim_end_matches("MiB")
                .trim()
                .parse::<f64>()
                .ok()
                .map(|m| (m * 1024.0 * 1024.0) as u64);
        } else if line.starts_with("last epoch") {
            o.detail = line.to_string();
        }
    }
    o
}

/// PyTorch's last JSON line with `test_acc` (the scripts' final summary), and the outcome read from it.
fn parse_torch(stdout: &str) -> Option<(Outcome, serde_json::Value)> {
    let last = stdout
        .lines()
        .rev()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["test_acc"].is_f64())?;
    // airbench94: test_acc (plain) and test_acc_tta; reference_seed.py: test_acc (with the preset's TTA) and
    // test_acc_plain.
    let (acc, plain) = if last["test_acc_tta"].is_f64() {
        (last["test_acc_tta"].as_f64(), last["test_acc"].as_f64())
    } else {
        (
            last["test_acc"].as_f64(),
            last["test_acc_plain"]
                .as_f64()
                .or(last["test_acc"].as_f64()),
        )
    };
    let epochs: Vec<f64> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"epoch\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["epoch_s"].as_f64())
        .collect();
    let detail = if epochs.is_empty() {
        String::new()
    } else {
        let mut s = epochs.clone();
        s.sort_by(f64::total_cmp);
        format!(
            "{} epochs, {:.1}-{:.1} s each (median {:.1})",
            epochs.len(),
            s[0],
            s[s.len() - 1],
            s[s.len() / 2]
        )
    };
    let o = Outcome {
        acc,
        acc_plain: plain,
        peak_rss_bytes: last["peak_rss_kib"].as_u64().map(|k| k * 1024),
        detail,
        ..Default::default()
    };
    Some((o, last))
}

fn pct(x: Option<f64>) -> String {
    x.map(|a| format!("{:.2}%", 100.0 * a))
        .unwrap_or_else(|| "?".into())
}

fn gib(x: Option<u64>) -> String {
    x.map(|b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_else(|| "?".into())
}

fn minutes(s: f64) -> String {
    format!("{}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
}

fn report(
    results: &[(&str, &str, Outcome, Outcome, serde_json::Value)],
    a: &WholeRunArgs,
    setup: &TorchSetup,
) {
    println!(
        "{:<16} {:<40} {:>9}  {:>17}  {:>9}  {:>13}  detail",
        "recipe", "side", "wall", "test acc TTA/none", "peak RSS", "load mean/max"
    );
    for (name, precision, ours, theirs, last) in results {
        let torch_side = format!(
            "PyTorch {} {} {}",
            a.whole_run_layout,
            if a.whole_run_compile {
                "inductor"
            } else {
                "eager"
            },
            setup.name()
        );
        let ours_side = match a.whole_run_winograd.as_str() {
            "auto" => format!("ours {precision}"),
            w => format!("ours {precision} winograd {w}"),
        };
        for (side, o) in [(ours_side, ours), (torch_side, theirs)] {
            let load = o
                .load
                .map(|(m, x)| format!("{m:.1}/{x:.1}"))
                .unwrap_or_default();
            println!(
                "{name:<16} {side:<40} {:>9}  {:>8}/{:<8}  {:>9}  {load:>13}  {}",
                minutes(o.wall_s),
                pct(o.acc),
                pct(o.acc_plain),
                gib(o.peak_rss_bytes),
                o.detail
            );
        }
        println!(
            "{name:<16} PyTorch wall / ours: {:.2}x",
            theirs.wall_s / ours.wall_s
        );
        for (side, o) in [("rust", ours), ("torch", theirs)] {
            let mut line = serde_json::json!({
                "whole_run": name, "side": side, "seed": a.seed, "wall_s": (o.wall_s * 10.0).round() / 10.0,
                "test_acc": o.acc, "test_acc_plain": o.acc_plain, "peak_rss_bytes": o.peak_rss_bytes,
                "load_avg_mean_max": o.load, "detail": o.detail,
            });
            if side == "rust" {
                line["precision"] = (*precision).into();
                line["winograd"] = a.whole_run_winograd.as_str().into();
            } else {
                line["config"] = last.clone();
            }
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_length_is_read_from_our_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"epochs": 8, "fractional_epochs": 7.59}"#).unwrap();
        assert_eq!(run_epochs(&p).unwrap(), 7.59);
        std::fs::write(&p, r#"{"epochs": 8, "fractional_epochs": null}"#).unwrap();
        assert_eq!(run_epochs(&p).unwrap(), 8.0);
        std::fs::write(&p, r#"{"seed": 0}"#).unwrap();
        let e = format!("{:#}", run_epochs(&p).unwrap_err());
        assert!(e.contains("no fractional_epochs or epochs"), "{e}");
        let e = format!(
            "{:#}",
            run_epochs(&dir.path().join("none.json")).unwrap_err()
        );
        assert!(e.contains("cannot read it"), "{e}");
    }

    #[test]
    fn ours_summary_lines_are_read() {
        let out = "run directory: x\nlast epoch 10: 70.1s, 700 train img/s\n\
                   test accuracy 90.84% (89.98% without TTA), loss 0.5123\npeak memory: 1441 MiB\n";
        let o = parse_ours(out);
        assert!((o.acc.unwrap() - 0.9084).abs() < 1e-9);
        assert!((o.acc_plain.unwrap() - 0.8998).abs() < 1e-9);
        assert_eq!(o.peak_rss_bytes, Some(1441 * 1024 * 1024));
        assert_eq!(o.detail, "last epoch 10: 70.1s, 700 train img/s");
        let o = parse_ours("test accuracy 80.15%, loss 0.6\n");
        assert!((o.acc.unwrap() - 0.8015).abs() < 1e-9 && o.acc == o.acc_plain);
        assert_eq!(parse_ours("nothing\n"), Outcome::default());
    }

    #[test]
    fn torch_summaries_of_both_scripts_are_read() {
        let ab = "{\"epoch\": 1, \"epoch_s\": 110.0}\n{\"epoch\": 2, \"epoch_s\": 100.0}\n\
                  {\"model\": \"airbench94\", \"test_acc\": 0.8962, \"test_acc_tta\": 0.9042, \"peak_rss_kib\": 1024, \"threads\": 2, \"allocator\": \"jemalloc\"}\n";
        let (o, last) = parse_torch(ab).unwrap();
        assert_eq!((o.acc, o.acc_plain), (Some(0.9042), Some(0.8962)));
        assert_eq!(o.peak_rss_bytes, Some(1024 * 1024));
        assert!(
            o.detail.starts_with("2 epochs, 100.0-110.0 s"),
            "{}",
            o.detail
        );
        assert_eq!(last["allocator"], "jemalloc");
        let fast = "{\"preset\": \"fast\", \"test_acc\": 0.81, \"test_acc_plain\": 0.8, \"peak_rss_kib\": 2}\n";
        let (o, _) = parse_torch(fast).unwrap();
        assert_eq!((o.acc, o.acc_plain), (Some(0.81), Some(0.8)));
        assert!(parse_torch("{\"epoch\": 1}\n").is_none());
    }
}
