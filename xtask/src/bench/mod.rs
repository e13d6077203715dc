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

mod results;
mod sides;
#[cfg(test)]
mod tests;

use results::{Key, Sample, collect, report, rows};
use sides::sides;

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
    /// Our convolution arithmetics to measure (f32, bf16), each against the same PyTorch figures; `P+TILES` also
    /// sets our Winograd tiles (`bf16+f4`: `cifar bench --precision bf16 --winograd f4`, row `rust-bf16-f4`).
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
                let (arith, tiles) = precision.split_once('+').unwrap_or((precision, "auto"));
                let out = Command::new(&cifar)
                    .args([
                        "bench",
                        "--device",
                        "cpu",
                        "--repeats",
                        &a.repeats.to_string(),
                        "--precision",
                        arith,
                        "--winograd",
                        tiles,
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
