//! `cargo xtask bench`: this project's throughput next to PyTorch's at its best, measured in the same run.
//!
//! Builds the `cifar` binary in release, then, `--rounds` times and for each `--model`, runs `cifar bench
//! --model M` (each of `--precisions`) and, when `PYTHON -c "import torch, numpy"` works, the matching PyTorch
//! script's `--bench` once per allocator of `--torch-allocators`, so both see the same machine load. The scripts
//! live in the workspace's `bench/` folder:
//!
//! * `cnn-dnn`: `bench/reference_seed.py` (the reference recipe's step: Adam; batches 64 and 128, inference at 256);
//! * `airbench94`: `bench/airbench94_torch.py` (the recipe's real step: SGD-Nesterov, schedule, Lookahead;
//!   training batches `--airbench-batches`, plain and 6-view TTA inference at `--airbench-infer-batch`).
//!
//! PyTorch gets its best known CPU setup (see `torch_env`): threads equal to ours (torch, OpenMP, MKL), NCHW and
//! channels_last, jemalloc or tcmalloc preloaded when installed (glibc with tunables otherwise), and
//! `torch.compile` (inductor) as one more row per model unless `--no-compile`, its compile time reported apart
//! (inductor's cache is a fresh directory per command, so round 1 compiles cold and later rounds reuse it). Each
//! PyTorch row times `--torch-steps`-scaled steps one by one after `--torch-warmup` untimed ones, on real CIFAR-10
//! images when `--archive` exists; every row it prints carries that setup, and a row whose allocator or thread
//! count is not the one asked for stops the command.
//!
//! Prints, per measurement, each implementation's median over the rounds (each round's figure is itself a median
//! step) with the slowest and fastest step or repeat seen, our best row against PyTorch's best row, and JSON lines
//! (`{"bench", "model", "batch", "impl", "img_per_s", "img_per_s_min", "img_per_s_max", "runs", "config"}`, then
//! `{"ratio": ...}` lines). `--epoch` also trains one real epoch (the reference recipe) and reports its wall time
//! and peak memory. `--whole-run` instead trains whole recipes on both sides (see `whole_run`).
//!
//! Paths default to the workspace root (found from this crate's manifest directory), so the command works
//! from any directory; the Python interpreter is `--python`, or `$CIFAR_PYTHON`, or `python3`.

use crate::build::workspace_root;
use crate::torch_env::{Allocator, TorchSetup, library_dirs, load_average};
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
    /// airbench94: steps per `cifar bench` repeat; PyTorch times `--repeats` times as many, one by one.
    #[arg(long, default_value_t = 4)]
    airbench_steps: usize,
    /// Threads for both sides.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// PyTorch's allocators, one PyTorch process per round each: auto (jemalloc when installed, else glibc
    /// with tunables), jemalloc, tcmalloc, glibc (with tunables), inherit (the environment untouched).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "auto")]
    torch_allocators: Vec<Allocator>,
    /// PyTorch layouts measured in eager mode.
    #[arg(long, default_value = "nchw,channels_last")]
    torch_layouts: String,
    /// Layouts also measured under torch.compile (inductor, CPU).
    #[arg(long, default_value = "channels_last")]
    torch_compile_layouts: String,
    /// No torch.compile rows.
    #[arg(long)]
    no_compile: bool,
    /// PyTorch: untimed training steps before the timed ones (its first steps are slow: oneDNN builds its
    /// kernels, the allocator grows).
    #[arg(long, default_value_t = 6)]
    torch_warmup: usize,
    /// The CIFAR-10 binary archive (cifar-10-binary.tar.gz): PyTorch's step benches run on its images when it
    /// exists; `--whole-run` needs it [default: <workspace>/data/cifar-10-binary.tar.gz].
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Also time one real training epoch (needs the data in --data-dir).
    #[arg(long)]
    epoch: bool,
    /// Data directory for --epoch and --whole-run [default: <workspace>/data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Our binary, instead of building `cifar` in release first.
    #[arg(long)]
    cifar: Option<PathBuf>,
    /// Cap both sides at this vector ISA, to measure what a CPU without AVX-512 runs: ours with
    /// CPU_OPS_MAX_ISA (our kernels and the GEMM crate's dispatch; bf16 needs AVX-512 and is skipped), PyTorch with
    /// ATEN_CPU_CAPABILITY and DNNL_MAX_CPU_ISA (checked against what each process reports) [default: each
    /// side's own pick for this CPU].
    #[arg(long, value_enum)]
    isa: Option<IsaCap>,
    /// airbench94-muon: training batch size, both sides.
    #[arg(long, default_value_t = 2000)]
    muon_batch: usize,
    /// Train whole recipes on both sides instead of timing steps (see `whole_run`).
    #[command(flatten)]
    whole: crate::whole_run::WholeRunArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ModelSel {
    Airbench94,
    /// airbench94's network with the Muon recipe (`cifar bench --preset airbench94-muon`,
    /// `bench/airbench94_muon_torch.py`): training step only.
    #[value(name = "airbench94-muon")]
    Airbench94Muon,
    CnnDnn,
    All,
}

impl ModelSel {
    /// Whether `m` is selected.
    pub(crate) fn has(self, m: ModelSel) -> bool {
        self == ModelSel::All || self == m
    }
}

/// A vector-ISA cap for both sides (`--isa`).
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum IsaCap {
    Avx2,
    Avx512,
}

impl IsaCap {
    /// Ours: `CPU_OPS_MAX_ISA`'s value.
    fn ours(self) -> &'static str {
        match self {
            IsaCap::Avx2 => "avx2",
            IsaCap::Avx512 => "avx512",
        }
    }

    /// PyTorch: (`ATEN_CPU_CAPABILITY`, `DNNL_MAX_CPU_ISA`, what `torch.backends.cpu.get_cpu_capability()` then
    /// reports).
    fn torch(self) -> (&'static str, &'static str, &'static str) {
        match self {
            IsaCap::Avx2 => ("avx2", "AVX2", "AVX2"),
            IsaCap::Avx512 => ("avx512", "AVX512_CORE_BF16", "AVX512"),
        }
    }

    /// Sets the cap on a PyTorch process.
    fn apply_torch(self, cmd: &mut Command) {
        let (aten, dnnl, _) = self.torch();
        cmd.env("ATEN_CPU_CAPABILITY", aten)
            .env("DNNL_MAX_CPU_ISA", dnnl);
    }

    /// Refuses a PyTorch row that does not run at the cap.
    fn check_torch_row(self, row: &serde_json::Value, script: &Path) -> Result<()> {
        let want = self.torch().2;
        match row["cpu_capability"].as_str() {
            Some(got) if got.eq_ignore_ascii_case(want) => Ok(()),
            got => bail!(
                "{}: asked for ATEN_CPU_CAPABILITY={}, the PyTorch process runs {got:?}",
                script.display(),
                self.torch().0
            ),
        }
    }
}

const CNN_DNN: &str = "cnn-dnn";
const AIRBENCH94: &str = "airbench94";
const AIRBENCH94_MUON: &str = "airbench94-muon";

/// (model, bench, batch, implementation)
type Key = (String, String, usize, String);

/// One implementation's figures for one measurement, over the rounds.
#[derive(Default)]
struct Sample {
    /// Each run's figure (a median step or repeat).
    rates: Vec<f64>,
    /// The slowest and fastest step (PyTorch) or run (ours) seen.
    min: f64,
    max: f64,
    /// Seconds the first compiled step took beyond a steady one, per run.
    compile_s: Vec<f64>,
    /// The PyTorch setup the row ran with (its JSON fields), or ours.
    config: serde_json::Map<String, serde_json::Value>,
    /// The 1-minute load average when each run started.
    loads: Vec<f64>,
}

/// One model's two sides: the `cifar bench` arguments and the PyTorch script with its arguments.
struct Side {
    model: &'static str,
    rust_args: Vec<String>,
    script: PathBuf,
    torch_args: Vec<String>,
}

/// The fields of a PyTorch row that describe its setup rather than its result.
const CONFIG_FIELDS: &[&str] = &[
    "layout",
    "compile",
    "data",
    "warmup",
    "steps",
    "torch",
    "threads",
    "interop_threads",
    "allocator",
    "malloc_conf",
    "glibc_tunables",
    "omp_num_threads",
    "mkldnn",
];

fn sides(a: &Args, root: &Path, archive: &Path) -> Vec<Side> {
    let threads = a.threads.to_string();
    let compile = if a.no_compile {
        String::new()
    } else {
        a.torch_compile_layouts.clone()
    };
    // The PyTorch scripts' bench arguments; the Muon script has no torch.compile mode (`compile_flag` false).
    let script_args = |steps: usize, warmup: usize, compile_flag: bool| -> Vec<String> {
        let mut v = vec![
            "--bench".into(),
            "--threads".into(),
            threads.clone(),
            "--archive".into(),
            archive.display().to_string(),
            "--layouts".into(),
            a.torch_layouts.clone(),
        ];
        if compile_flag {
            v.extend(["--compile-layouts".into(), compile.clone()]);
        }
        v.extend([
            "--warmup".into(),
            warmup.to_string(),
            "--steps".into(),
            steps.to_string(),
        ]);
        v
    };
    let common = |steps: usize| script_args(steps, a.torch_warmup, true);
    let mut out = Vec::new();
    if a.model.has(ModelSel::CnnDnn) {
        out.push(Side {
            model: CNN_DNN,
            rust_args: vec!["--model".into(), CNN_DNN.into()],
            script: a
                .reference
                .clone()
                .unwrap_or_else(|| root.join("bench/reference_seed.py")),
            // Ours: 20 steps per repeat (`cifar bench`'s default).
            torch_args: common(20 * a.repeats.max(1)),
        });
    }
    if a.model.has(ModelSel::Airbench94Muon) {
        let steps = a.airbench_steps.max(1);
        out.push(Side {
            model: AIRBENCH94_MUON,
            rust_args: vec![
                "--preset".into(),
                AIRBENCH94_MUON.into(),
                "--train-batches".into(),
                a.muon_batch.to_string(),
                "--steps".into(),
                steps.to_string(),
            ],
            script: root.join("bench/airbench94_muon_torch.py"),
            // Its step is 3-4x airbench94's: fewer untimed steps.
            torch_args: {
                let mut v = script_args(steps * a.repeats.max(1), a.torch_warmup.min(3), false);
                v.extend(["--batch".into(), a.muon_batch.to_string()]);
                v
            },
        });
    }
    if a.model.has(ModelSel::Airbench94) {
        let steps = a.airbench_steps.max(1);
        let infer = a.airbench_infer_batch.to_string();
        let mut torch_args = common(steps * a.repeats.max(1));
        torch_args.extend([
            "--batch".into(),
            a.airbench_batches.clone(),
            "--infer-batch".into(),
            infer.clone(),
        ]);
        out.push(Side {
            model: AIRBENCH94,
            rust_args: vec![
                "--model".into(),
                AIRBENCH94.into(),
                "--train-batches".into(),
                a.airbench_batches.clone(),
                "--infer-batch".into(),
                infer,
                "--steps".into(),
                steps.to_string(),
            ],
            script: a
                .airbench_reference
                .clone()
                .unwrap_or_else(|| root.join("bench/airbench94_torch.py")),
            torch_args,
        });
    }
    out
}

pub fn run(a: Args) -> Result<()> {
    let root = workspace_root();
    let archive = a
        .archive
        .clone()
        .unwrap_or_else(|| root.join("data/cifar-10-binary.tar.gz"));
    if a.whole.whole_run {
        return crate::whole_run::run(&a.whole, &a.whole_context(&root, &archive));
    }
    let cifar = match &a.cifar {
        Some(p) => p.clone(),
        None => crate::build::release_cifar()?,
    };
    let torch = !a.no_torch && torch_available(&a.python);
    if !torch {
        println!(
            "# PyTorch side skipped ({} -c 'import torch, numpy' fails, or --no-torch)",
            a.python
        );
    } else if !archive.is_file() {
        println!(
            "# PyTorch steps on random images: no archive at {} (--archive)",
            archive.display()
        );
    }
    // One fresh inductor cache for the whole command: round 1 compiles cold, later rounds hit the cache.
    let cache = tempfile::Builder::new()
        .prefix("xtask-bench-inductor-")
        .tempdir()
        .context("cannot create a temporary directory for inductor's cache")?;
    let mut setups = Vec::new();
    for &alloc in &a.torch_allocators {
        let s = TorchSetup::resolve(
            alloc,
            a.threads,
            &library_dirs(),
            Some(cache.path().to_path_buf()),
        )?;
        if !setups.contains(&s) {
            setups.push(s);
        }
    }
    let sides = sides(&a, &root, &archive);
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
    let mut samples: BTreeMap<Key, Sample> = BTreeMap::new();
    for round in 1..=a.rounds.max(1) {
        for s in &sides {
            for precision in &a.precisions {
                if skip_rust.contains(s.model) || skip_precision.contains(precision) {
                    continue;
                }
                eprintln!("round {round}/{}: rust {} {precision}", a.rounds, s.model);
                let load = load_average();
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
                    .env("CPU_OPS_MAX_ISA", a.isa.map_or("", IsaCap::ours))
                    .output()
                    .with_context(|| format!("cannot run {} bench", cifar.display()))?;
                if out.status.success() {
                    collect(
                        &String::from_utf8_lossy(&out.stdout),
                        s.model,
                        "rust",
                        load,
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
            if !torch || skip_torch.contains(s.model) {
                continue;
            }
            for setup in &setups {
                eprintln!(
                    "round {round}/{}: pytorch {} ({})",
                    a.rounds,
                    s.model,
                    setup.name()
                );
                let mut cmd = Command::new(&a.python);
                cmd.arg(&s.script).args(&s.torch_args);
                setup.apply(&mut cmd);
                if let Some(isa) = a.isa {
                    isa.apply_torch(&mut cmd);
                }
                let load = load_average();
                let out = cmd
                    .output()
                    .with_context(|| format!("cannot run {}", s.script.display()))?;
                if !out.status.success() {
                    bail!(
                        "{} --bench failed: {}",
                        s.script.display(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let stdout = String::from_utf8_lossy(&out.stdout);
                for row in rows(&stdout) {
                    setup.check_row(&row, &s.script)?;
                    if let Some(isa) = a.isa {
                        isa.check_torch_row(&row, &s.script)?;
                    }
                }
                collect(&stdout, s.model, "torch", load, &mut samples);
            }
        }
    }
    report(&samples);
    if a.epoch {
        epoch(&cifar, &a, &root)?;
    }
    Ok(())
}

impl Args {
    fn whole_context(&self, root: &Path, archive: &Path) -> crate::whole_run::Context {
        crate::whole_run::Context {
            root: root.to_path_buf(),
            archive: archive.to_path_buf(),
            data_dir: self.data_dir.clone().unwrap_or_else(|| root.join("data")),
            python: self.python.clone(),
            cifar: self.cifar.clone(),
            threads: self.threads,
            allocator: self
                .torch_allocators
                .first()
                .copied()
                .unwrap_or(Allocator::Auto),
            model: self.model,
            reference: self
                .reference
                .clone()
                .unwrap_or_else(|| root.join("bench/reference_seed.py")),
            airbench_reference: self
                .airbench_reference
                .clone()
                .unwrap_or_else(|| root.join("bench/airbench94_torch.py")),
        }
    }
}

/// The last non-empty line of a program's error output.
pub(crate) fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
}

pub(crate) fn torch_available(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import torch, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The JSON objects of a program's output that are bench rows (they have `"bench"`).
fn rows(stdout: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["bench"].is_string())
}

/// The implementation a row belongs to: ours `rust` (`rust-bf16` for a non-f32 precision); PyTorch's
/// `torch-<layout>[-inductor]-<allocator>`.
fn impl_name(v: &serde_json::Value, side: &str) -> String {
    match (v["layout"].as_str(), v["precision"].as_str()) {
        (Some(layout), _) => {
            let mut name = format!("{side}-{layout}");
            if let Some(c) = v["compile"].as_str().filter(|c| *c != "eager") {
                name.push('-');
                name.push_str(c);
            }
            if let Some(a) = v["allocator"].as_str() {
                name.push('-');
                name.push_str(a);
            }
            name
        }
        (None, Some(p)) if p != "f32" => format!("{side}-{p}"),
        _ => side.to_string(),
    }
}

/// Reads `{"bench": ..., "batch": ..., "img_per_s": ..., "layout"?: ..., "model"?: ...}` lines; a line
/// without `"model"` belongs to `model`, the one that was asked for. A row with `"error"` (a torch.compile that
/// failed here) is reported and skipped.
fn collect(
    stdout: &str,
    model: &str,
    side: &str,
    load: Option<f64>,
    samples: &mut BTreeMap<Key, Sample>,
) {
    for v in rows(stdout) {
        if let Some(err) = v["error"].as_str() {
            println!("# {} skipped: {err}", impl_name(&v, side));
            continue;
        }
        let (Some(bench), Some(batch), Some(rate)) = (
            v["bench"].as_str(),
            v["batch"].as_u64(),
            v["img_per_s"].as_f64(),
        ) else {
            continue;
        };
        let model = v["model"].as_str().unwrap_or(model);
        let s = samples
            .entry((
                model.to_string(),
                bench.to_string(),
                batch as usize,
                impl_name(&v, side),
            ))
            .or_insert_with(|| Sample {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                ..Default::default()
            });
        s.rates.push(rate);
        s.loads.extend(load);
        s.min = s.min.min(v["img_per_s_min"].as_f64().unwrap_or(rate));
        s.max = s.max.max(v["img_per_s_max"].as_f64().unwrap_or(rate));
        if let Some(c) = v["compile_s"].as_f64() {
            s.compile_s.push(c);
        }
        if s.config.is_empty() {
            s.config = if v["layout"].is_string() {
                CONFIG_FIELDS
                    .iter()
                    .filter_map(|f| v.get(*f).map(|x| (f.to_string(), x.clone())))
                    .collect()
            } else {
                let mut m = serde_json::Map::new();
                m.insert(
                    "precision".into(),
                    v.get("precision").cloned().unwrap_or("f32".into()),
                );
                m.insert("data".into(), "random".into());
                m
            };
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Per (model, bench, batch): the best implementation of each side by median and the ratio of ours to theirs.
fn best_pairs(samples: &BTreeMap<Key, Sample>) -> Vec<(Key, Key, f64)> {
    let mut keys: Vec<(String, String, usize)> = samples
        .keys()
        .map(|(m, b, n, _)| (m.clone(), b.clone(), *n))
        .collect();
    keys.dedup();
    let mut out = Vec::new();
    for (model, bench, batch) in keys {
        let best = |prefix: &str| {
            samples
                .iter()
                .filter(|((m, b, n, i), _)| {
                    *m == model && *b == bench && *n == batch && i.starts_with(prefix)
                })
                .map(|(k, s)| (k.clone(), median(&s.rates)))
                .max_by(|x, y| x.1.total_cmp(&y.1))
        };
        if let (Some((rk, r)), Some((tk, t))) = (best("rust"), best("torch")) {
            out.push((rk, tk, r / t));
        }
    }
    out
}

fn report(samples: &BTreeMap<Key, Sample>) {
    println!(
        "{:<10} {:<9} {:>5}  {:<36} {:>9}  {:>19}  {:>9}  {:>9}",
        "model",
        "bench",
        "batch",
        "implementation",
        "img/s",
        "slowest-fastest",
        "compile s",
        "load"
    );
    for ((m, b, n, imp), s) in samples {
        let compile = if s.compile_s.is_empty() {
            String::new()
        } else {
            s.compile_s
                .iter()
                .map(|c| format!("{c:.0}"))
                .collect::<Vec<_>>()
                .join("/")
        };
        println!(
            "{m:<10} {b:<9} {n:>5}  {imp:<36} {:>9.1}  {:>9.1}-{:<9.1}  {compile:>9}  {:>9}",
            median(&s.rates),
            s.min,
            s.max,
            s.loads
                .iter()
                .map(|l| format!("{l:.1}"))
                .collect::<Vec<_>>()
                .join("/")
        );
    }
    let pairs = best_pairs(samples);
    println!("\nours (best) against PyTorch (best), medians:");
    for ((m, b, n, r), (_, _, _, t), ratio) in &pairs {
        println!("{m:<10} {b:<9} {n:>5}  {r} / {t}: {ratio:.2}x");
    }
    for ((m, b, n, imp), s) in samples {
        let line = serde_json::json!({
            "bench": b, "model": m, "batch": n, "impl": imp,
            "img_per_s": round1(median(&s.rates)),
            "img_per_s_min": round1(s.min), "img_per_s_max": round1(s.max),
            "runs": s.rates.len(), "compile_s": s.compile_s.iter().map(|c| round1(*c)).collect::<Vec<_>>(),
            "config": s.config, "load_avg": s.loads,
        });
        println!("{line}");
    }
    for ((m, b, n, r), (_, _, _, t), ratio) in &pairs {
        let line = serde_json::json!({
            "ratio": (ratio * 100.0).round() / 100.0, "bench": b, "model": m, "batch": n,
            "ours": r, "pytorch": t,
        });
        println!("{line}");
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
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
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["bench"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap().args
    }

    #[test]
    fn collect_keys_lines_by_model_layout_compile_and_allocator() {
        let mut s = BTreeMap::new();
        let rust = "# header\n{\"bench\": \"train\", \"batch\": 64, \"img_per_s\": 100.0}\n\
                    {\"bench\":\"train\",\"model\":\"airbench94\",\"batch\":1024,\"img_per_s\":50.0,\"precision\":\"bf16\"}\n";
        collect(rust, CNN_DNN, "rust", Some(1.0), &mut s);
        let torch = "{\"model\": \"airbench94\", \"params_trainable\": 1}\n\
                     {\"bench\": \"train\", \"model\": \"airbench94\", \"batch\": 1024, \"layout\": \"nchw\", \"compile\": \"eager\", \"allocator\": \"jemalloc\", \"threads\": 2, \"img_per_s\": 40.0, \"img_per_s_min\": 38.0, \"img_per_s_max\": 41.0}\n\
                     {\"bench\": \"train\", \"model\": \"airbench94\", \"batch\": 1024, \"layout\": \"channels_last\", \"compile\": \"inductor\", \"allocator\": \"jemalloc\", \"img_per_s\": 45.0, \"compile_s\": 60.0}\n\
                     {\"bench\": \"infer\", \"model\": \"airbench94\", \"batch\": 256, \"layout\": \"nchw\", \"compile\": \"inductor\", \"allocator\": \"glibc\", \"error\": \"no compiler\"}\n";
        collect(torch, AIRBENCH94, "torch", None, &mut s);
        let key = |m: &str, b: &str, n, i: &str| (m.into(), b.into(), n, i.into());
        assert_eq!(s[&key(CNN_DNN, "train", 64, "rust")].rates, vec![100.0]);
        assert_eq!(
            s[&key(AIRBENCH94, "train", 1024, "rust-bf16")].rates,
            vec![50.0]
        );
        let eager = &s[&key(AIRBENCH94, "train", 1024, "torch-nchw-jemalloc")];
        assert_eq!(
            (eager.rates.clone(), eager.min, eager.max),
            (vec![40.0], 38.0, 41.0)
        );
        assert_eq!(eager.config["allocator"], "jemalloc");
        assert_eq!(eager.config["threads"], 2);
        let compiled = &s[&key(
            AIRBENCH94,
            "train",
            1024,
            "torch-channels_last-inductor-jemalloc",
        )];
        assert_eq!(compiled.compile_s, vec![60.0]);
        // The failed compile is not a row.
        assert_eq!(s.len(), 4);
        // Ours against their best row: 50 / 45.
        let pairs = best_pairs(&s);
        let (r, t, ratio) = pairs.iter().find(|(k, _, _)| k.0 == AIRBENCH94).unwrap();
        assert_eq!(
            (r.3.as_str(), t.3.as_str()),
            ("rust-bf16", "torch-channels_last-inductor-jemalloc")
        );
        assert!((ratio - 50.0 / 45.0).abs() < 1e-12);
    }

    #[test]
    fn pytorch_gets_the_fair_setup_by_default() {
        let a = args(&[]);
        assert_eq!(a.torch_allocators, vec![Allocator::Auto]);
        let root = workspace_root();
        let all = sides(&a, &root, Path::new("archive.tar.gz"));
        let ab = all.iter().find(|s| s.model == AIRBENCH94).unwrap();
        let flag = |f: &str| {
            let i = ab.torch_args.iter().position(|x| x == f).unwrap();
            ab.torch_args[i + 1].clone()
        };
        assert_eq!(flag("--threads"), "2");
        assert_eq!(flag("--archive"), "archive.tar.gz");
        assert_eq!(flag("--layouts"), "nchw,channels_last");
        assert_eq!(flag("--compile-layouts"), "channels_last");
        assert_eq!(flag("--warmup"), "6");
        // As many timed steps as ours: 4 per repeat, 3 repeats.
        assert_eq!(flag("--steps"), "12");
        let a = args(&[
            "--no-compile",
            "--threads",
            "4",
            "--torch-allocators",
            "jemalloc,glibc",
        ]);
        assert_eq!(
            a.torch_allocators,
            vec![Allocator::Jemalloc, Allocator::Glibc]
        );
        let sides = sides(&a, &root, Path::new("x"));
        for s in &sides {
            // The Muon script has no torch.compile mode and gets no such flag.
            let i = s.torch_args.iter().position(|x| x == "--compile-layouts");
            match i {
                Some(i) => assert_eq!(s.torch_args[i + 1], "", "{}", s.model),
                None => assert_eq!(s.model, AIRBENCH94_MUON),
            }
            let i = s.torch_args.iter().position(|x| x == "--threads").unwrap();
            assert_eq!(s.torch_args[i + 1], "4", "{}", s.model);
        }
    }

    #[test]
    fn workspace_root_holds_the_bench_scripts() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("bench/reference_seed.py").is_file());
        assert!(root.join("bench/airbench94_torch.py").is_file());
        assert!(root.join("bench/airbench94_muon_torch.py").is_file());
    }

    /// The Muon side times our preset's step against the Muon script at the same batch, as many steps.
    #[test]
    fn the_muon_side_times_the_preset_against_its_script() {
        let a = args(&["--model", "airbench94-muon", "--muon-batch", "1500"]);
        let all = sides(&a, &workspace_root(), Path::new("a.tar.gz"));
        assert_eq!(all.len(), 1);
        let s = &all[0];
        assert_eq!(s.model, AIRBENCH94_MUON);
        assert!(s.script.ends_with("bench/airbench94_muon_torch.py"));
        let flag = |args: &[String], f: &str| {
            let i = args.iter().position(|x| x == f).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(flag(&s.rust_args, "--preset"), "airbench94-muon");
        assert_eq!(flag(&s.rust_args, "--train-batches"), "1500");
        assert_eq!(flag(&s.torch_args, "--batch"), "1500");
        assert_eq!(flag(&s.torch_args, "--steps"), "12");
    }

    /// `--isa avx2` caps PyTorch through its two variables and refuses a row that ran another ISA.
    #[test]
    fn the_isa_cap_reaches_pytorch_and_is_checked() {
        let mut cmd = Command::new("true");
        IsaCap::Avx2.apply_torch(&mut cmd);
        let envs: Vec<_> = cmd
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        assert!(envs.contains(&("ATEN_CPU_CAPABILITY".into(), Some("avx2".into()))));
        assert!(envs.contains(&("DNNL_MAX_CPU_ISA".into(), Some("AVX2".into()))));
        let script = Path::new("s.py");
        let ok = serde_json::json!({"cpu_capability": "AVX2"});
        assert!(IsaCap::Avx2.check_torch_row(&ok, script).is_ok());
        let bad = serde_json::json!({"cpu_capability": "AVX512"});
        let e = IsaCap::Avx2
            .check_torch_row(&bad, script)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ATEN_CPU_CAPABILITY=avx2") && e.contains("AVX512"),
            "{e}"
        );
        assert!(
            IsaCap::Avx2
                .check_torch_row(&serde_json::json!({}), script)
                .is_err()
        );
    }
}
