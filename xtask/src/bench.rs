//! `cargo xtask bench`: this project's throughput next to PyTorch's, measured in the same run.
//!
//! Builds the `cifar` binary in release, then, `--rounds` times and for each `--model`, runs `cifar bench
//! --model M` and, when `PYTHON -c "import torch, numpy"` works, the matching PyTorch script's `--bench`, so
//! both see the same machine load. The scripts live in the workspace's `bench/` folder:
//!
//! * `cnn-dnn`: `bench/reference_seed.py` (the seed's recipe; batches 64 and 128, inference at 256);
//! * `airbench94`: `bench/airbench94_torch.py` (training batches `--airbench-batches`, plain and TTA
//!   inference at `--airbench-infer-batch`, `--airbench-steps` timed steps).
//!
//! Prints each side's median per measurement, the ratio to the best PyTorch layout, and JSON lines in the
//! scripts' format (`{"bench": ..., "model": ..., "batch": n, "img_per_s": f}`, ours with `"impl": "rust"`, or
//! `"rust-bf16"` for the bf16 convolutions: each of `--precisions` is one `cifar bench` call per round; bf16 is
//! skipped with a message on a CPU without AVX512-BF16).
//! The model a line belongs to is its `"model"` key, or else the model that was asked for. A model the
//! `cifar` binary does not know (yet) is skipped with a message. `--epoch` also trains one real epoch (the
//! reference recipe) and reports its wall time and peak memory.
//!
//! Paths default to the workspace root (found from this crate's manifest directory), so the command works
//! from any directory; the Python interpreter is `--python`, or `$CIFAR_PYTHON`, or `python3`.

use crate::build::workspace_root;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
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
    /// Which models to measure.
    #[arg(long, value_enum, default_value_t = ModelSel::All)]
    model: ModelSel,
    /// Our convolution arithmetics to measure (f32, bf16), each against the same PyTorch figures.
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16")]
    precisions: Vec<String>,
    /// Skip PyTorch even when it is installed.
    #[arg(long)]
    no_torch: bool,
    /// Python interpreter that has torch and numpy.
    #[arg(long, env = "CIFAR_PYTHON", default_value = "python3")]
    python: String,
    /// The cnn-dnn reference script [default: <workspace>/bench/reference_seed.py].
    #[arg(long)]
    reference: Option<PathBuf>,
    /// The airbench94 PyTorch script [default: <workspace>/bench/airbench94_torch.py].
    #[arg(long)]
    airbench_reference: Option<PathBuf>,
    /// airbench94: training batch sizes, both sides.
    #[arg(long, default_value = "1024,256")]
    airbench_batches: String,
    /// airbench94: inference batch (plain and test-time-augmented), both sides.
    #[arg(long, default_value_t = 256)]
    airbench_infer_batch: usize,
    /// airbench94: timed steps per measurement, both sides (a batch-1024 step takes seconds on a CPU).
    #[arg(long, default_value_t = 2)]
    airbench_steps: usize,
    /// Threads for both sides.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also time one real training epoch (needs the data in --data-dir).
    #[arg(long)]
    epoch: bool,
    /// Data directory for --epoch [default: <workspace>/data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum ModelSel {
    Airbench94,
    CnnDnn,
    All,
}

const CNN_DNN: &str = "cnn-dnn";
const AIRBENCH94: &str = "airbench94";

/// (model, bench, batch, implementation)
type Key = (String, String, usize, String);

/// One model's two sides: the `cifar bench` arguments and the PyTorch script with its arguments.
struct Side {
    model: &'static str,
    rust_args: Vec<String>,
    script: PathBuf,
    torch_args: Vec<String>,
}

fn sides(a: &Args, root: &Path) -> Vec<Side> {
    let threads = a.threads.to_string();
    let mut out = Vec::new();
    if matches!(a.model, ModelSel::CnnDnn | ModelSel::All) {
        out.push(Side {
            model: CNN_DNN,
            rust_args: vec!["--model".into(), CNN_DNN.into()],
            script: a
                .reference
                .clone()
                .unwrap_or_else(|| root.join("bench/reference_seed.py")),
            torch_args: vec!["--bench".into(), "--threads".into(), threads.clone()],
        });
    }
    if matches!(a.model, ModelSel::Airbench94 | ModelSel::All) {
        let steps = a.airbench_steps.max(1).to_string();
        let infer = a.airbench_infer_batch.to_string();
        out.push(Side {
            model: AIRBENCH94,
            rust_args: vec![
                "--model".into(),
                AIRBENCH94.into(),
                "--train-batches".into(),
                a.airbench_batches.clone(),
                "--infer-batch".into(),
                infer.clone(),
                "--steps".into(),
                steps.clone(),
            ],
            script: a
                .airbench_reference
                .clone()
                .unwrap_or_else(|| root.join("bench/airbench94_torch.py")),
            torch_args: vec![
                "--bench".into(),
                "--threads".into(),
                threads,
                "--batch".into(),
                a.airbench_batches.clone(),
                "--infer-batch".into(),
                infer,
                "--steps".into(),
                steps,
            ],
        });
    }
    out
}

pub fn run(a: Args) -> Result<()> {
    let root = workspace_root();
    let cifar = crate::build::release_cifar()?;
    let torch = !a.no_torch && torch_available(&a.python);
    if !torch {
        println!(
            "# PyTorch side skipped ({} -c 'import torch, numpy' fails, or --no-torch)",
            a.python
        );
    }
    let sides = sides(&a, &root);
    let mut skip_rust: BTreeSet<&str> = BTreeSet::new();
    let mut skip_torch: BTreeSet<&str> = BTreeSet::new();
    let mut skip_precision: BTreeSet<String> = BTreeSet::new();
    for s in &sides {
        if torch && !s.script.is_file() {
            println!(
                "# PyTorch {} skipped: no script at {}",
                s.model,
                s.script.display()
            );
            skip_torch.insert(s.model);
        }
    }
    let mut samples: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for round in 1..=a.rounds.max(1) {
        for s in &sides {
            for precision in &a.precisions {
                if skip_rust.contains(s.model) || skip_precision.contains(precision) {
                    continue;
                }
                eprintln!("round {round}/{}: rust {} {precision}", a.rounds, s.model);
                let out = Command::new(&cifar)
                    .args([
                        "bench",
                        "--device",
                        "cpu",
                        "--repeats",
                        &a.repeats.to_string(),
                        "--precision",
                        precision,
                    ])
                    .args(&s.rust_args)
                    .args(["--quiet", "--json"])
                    .env("RAYON_NUM_THREADS", a.threads.to_string())
                    .output()
                    .with_context(|| format!("cannot run {} bench", cifar.display()))?;
                if out.status.success() {
                    collect(
                        &String::from_utf8_lossy(&out.stdout),
                        s.model,
                        "rust",
                        &mut samples,
                    );
                } else if precision != "f32" {
                    // bf16 on a CPU without AVX512-BF16 (or an unknown name): say so once and go on.
                    println!(
                        "# rust {precision} skipped: {}",
                        last_line(&String::from_utf8_lossy(&out.stderr))
                    );
                    skip_precision.insert(precision.clone());
                } else if s.model == CNN_DNN {
                    bail!(
                        "cifar bench failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                } else {
                    // A model the binary does not have yet (or a flag it lacks): report and go on.
                    let err = String::from_utf8_lossy(&out.stderr);
                    let why = last_line(&err);
                    println!("# rust {} skipped: `cifar bench` failed: {why}", s.model);
                    skip_rust.insert(s.model);
                }
            }
            if torch && !skip_torch.contains(s.model) {
                eprintln!("round {round}/{}: pytorch {}", a.rounds, s.model);
                let out = Command::new(&a.python)
                    .arg(&s.script)
                    .args(&s.torch_args)
                    .output()
                    .with_context(|| format!("cannot run {}", s.script.display()))?;
                if !out.status.success() {
                    bail!(
                        "{} --bench failed: {}",
                        s.script.display(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                collect(
                    &String::from_utf8_lossy(&out.stdout),
                    s.model,
                    "torch",
                    &mut samples,
                );
            }
        }
    }
    report(&samples);
    if a.epoch {
        epoch(&cifar, &a, &root)?;
    }
    Ok(())
}

/// The last non-empty line of a program's error output.
fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
}

fn torch_available(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import torch, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Reads `{"bench": ..., "batch": ..., "img_per_s": ..., "layout"?: ..., "model"?: ...}` lines; a line
/// without `"model"` belongs to `model`, the one that was asked for.
fn collect(stdout: &str, model: &str, side: &str, samples: &mut BTreeMap<Key, Vec<f64>>) {
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
        // PyTorch's layouts and our non-default precision tell implementations apart.
        let impl_name = match (v["layout"].as_str(), v["precision"].as_str()) {
            (Some(layout), _) => format!("{side}-{layout}"),
            (None, Some(p)) if p != "f32" => format!("{side}-{p}"),
            _ => side.to_string(),
        };
        let model = v["model"].as_str().unwrap_or(model);
        samples
            .entry((
                model.to_string(),
                bench.to_string(),
                batch as usize,
                impl_name,
            ))
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
        "{:<10} {:<9} {:>5}  {:<20} {:>10}  {:>8}",
        "model", "bench", "batch", "implementation", "img/s", "vs torch"
    );
    let mut keys: Vec<(String, String, usize)> = samples
        .keys()
        .map(|(m, b, n, _)| (m.clone(), b.clone(), *n))
        .collect();
    keys.dedup();
    for (model, bench, batch) in keys {
        let same = |(m, b, n, _): &Key| *m == model && *b == bench && *n == batch;
        // The best PyTorch layout measured for this model, bench and batch.
        let best_torch = samples
            .iter()
            .filter(|(k, _)| same(k) && k.3.starts_with("torch"))
            .map(|(_, v)| median(v))
            .fold(f64::NAN, f64::max);
        for ((m, b, n, imp), v) in samples.iter().filter(|(k, _)| same(k)) {
            let med = median(v);
            let ratio = if imp.starts_with("rust") && best_torch.is_finite() {
                format!("{:.2}x", med / best_torch)
            } else {
                String::new()
            };
            println!("{m:<10} {b:<9} {n:>5}  {imp:<20} {med:>10.1}  {ratio:>8}");
        }
    }
    for ((m, b, n, imp), v) in samples {
        println!(
            "{{\"bench\": \"{b}\", \"model\": \"{m}\", \"batch\": {n}, \"impl\": \"{imp}\", \"img_per_s\": {:.1}, \"runs\": {}}}",
            median(v),
            v.len()
        );
    }
}

fn epoch(cifar: &Path, a: &Args, root: &Path) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("xtask-bench-epoch-{}", std::process::id()));
    let data_dir = a.data_dir.clone().unwrap_or_else(|| root.join("data"));
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
        .arg(&data_dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_keys_lines_by_model_and_layout() {
        let mut s = BTreeMap::new();
        let rust = "# header\n{\"bench\": \"train\", \"batch\": 64, \"img_per_s\": 100.0}\n\
                    {\"bench\":\"train\",\"model\":\"airbench94\",\"batch\":1024,\"impl\":\"rust\",\"img_per_s\":50.0}\n";
        collect(rust, CNN_DNN, "rust", &mut s);
        let torch = "{\"model\": \"airbench94\", \"params_trainable\": 1}\n\
                     {\"bench\": \"train\", \"model\": \"airbench94\", \"batch\": 1024, \"layout\": \"nchw\", \"img_per_s\": 40.0}\n";
        collect(torch, AIRBENCH94, "torch", &mut s);
        let key = |m: &str, b: &str, n, i: &str| (m.into(), b.into(), n, i.into());
        assert_eq!(s[&key(CNN_DNN, "train", 64, "rust")], vec![100.0]);
        assert_eq!(s[&key(AIRBENCH94, "train", 1024, "rust")], vec![50.0]);
        assert_eq!(s[&key(AIRBENCH94, "train", 1024, "torch-nchw")], vec![40.0]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn workspace_root_holds_the_bench_scripts() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("bench/reference_seed.py").is_file());
        assert!(root.join("bench/airbench94_torch.py").is_file());
    }
}
