//! `cifar sweep`: a grid of runs (seeds × settings) trained one after another or N at a time on this machine,
//! or written as a Slurm job array (`--slurm`, `--submit`); `run-one` trains one run of a sweep (what each task
//! runs), `status` says what every run is doing, `report` writes the statistics (the `sweep` library).

mod local;
mod run_one;
mod slurm;

use local::local_cmd;
use run_one::run_one;
use slurm::{find_on_path, sbatch_script, slurm_cmd, slurm_job_alive};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use sweep::{Axis, Grid, RunStatus, SweepDir, SweepFile};
use train::TrainConfig;

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  cifar sweep --preset fast --seeds 0..5 --out runs/sweep-fast\n  cifar sweep --preset fast \
--seeds 0..10 --set precision=f32,bf16 --out runs/bf16 --jobs 2\n  cifar sweep --preset airbench94 --seeds 0..50 --out \
/shared/sweeps/a94 --slurm --cpus-per-task 8 --time 01:00:00 --submit\n  cifar sweep status runs/bf16\n  cifar sweep \
report runs/bf16"
)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    #[command(flatten)]
    pub grid: GridArgs,
}

#[derive(Subcommand, Debug)]
pub enum SweepAction {
    /// Train one run of a sweep (what each Slurm array task runs; resumable, Ctrl-C safe).
    RunOne(RunOneArgs),
    /// Say what every run of a sweep is doing: finished, running, interrupted, failed or missing.
    Status(StatusArgs),
    /// Write the statistics of the finished runs: sweep.html (chart and tables), sweep_report.json, and a table.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
pub struct GridArgs {
    /// The sweep directory: sweep.json, one run directory per run (named by its settings and seed), logs/
    /// [default: none, required].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The base configuration: a preset; `--set` overrides it.
    #[arg(long, default_value = "reference", value_parser = clap::builder::PossibleValuesParser::new(train::PRESETS.iter().map(|p| p.name)))]
    pub preset: String,
    /// The base configuration from a file (a run's config.json) instead of a preset [default: the preset].
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Seeds: numbers, ranges A..B (A to B-1) or A..=B, separated by commas (e.g. 0..20 or 1,5,9).
    #[arg(long, default_value = "0..5")]
    pub seeds: String,
    /// A training setting with one or more values, as in config.json (repeatable): lr=0.002,0.004,
    /// precision=f32,bf16, epochs=1, limit_train=1000, augment.flip_prob=0 [default: none].
    #[arg(long = "set", value_name = "SETTING=V1,V2,...")]
    pub set: Vec<String>,
    /// Directory holding (or receiving) cifar-10-batches-bin, fetched once before any run starts; every run (and
    /// every Slurm node) reads it [default: the base configuration's, data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the runs train: auto | cpu | cuda | cuda:N [default: the base configuration's, auto].
    #[arg(long)]
    pub device: Option<String>,
    /// Download URL when the data is missing [default: $CIFAR10_URL, else the official URL].
    #[arg(long)]
    pub url: Option<String>,
    /// Runs trained at once on this machine; the cores are split between them.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Continue interrupted runs from their last checkpoint [default: refuse to start while runs are
    /// interrupted].
    #[arg(long)]
    pub resume: bool,
    /// Replace the sweep.json of another grid in --out (its run directories are kept; a run directory that
    /// holds other settings than its new run is refused when that run starts) [default: refuse].
    #[arg(long)]
    pub force: bool,
    /// Draw each run's charts and report.html [default: off; the sweep's report is always written].
    #[arg(long)]
    pub plots: bool,
    /// Write a Slurm job array (submit.sbatch in --out, one task per run) instead of training here
    /// [default: train here].
    #[arg(long)]
    pub slurm: bool,
    /// With --slurm: submit the runs that are not finished or running with sbatch, and print the job id
    /// [default: only write the script].
    #[arg(long, requires = "slurm")]
    pub submit: bool,
    /// With --slurm: the partition [default: the cluster's default].
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: time limit per task, in Slurm's syntax (MM, HH:MM:SS, D-HH) [default: the partition's].
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// With --slurm: CPUs per task (the kernels use that many threads).
    #[arg(long, default_value_t = 2)]
    pub cpus_per_task: usize,
    /// With --slurm: memory per task (e.g. 4G) [default: the partition's].
    #[arg(long, requires = "slurm")]
    pub mem: Option<String>,
    /// With --slurm: at most K tasks at once (%K of --array) [default: no limit].
    #[arg(long, requires = "slurm")]
    pub array_limit: Option<usize>,
    /// With --slurm: the cifar binary the tasks run (an absolute path every node can reach) [default: this
    /// binary].
    #[arg(long, requires = "slurm")]
    pub cifar_bin: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunOneArgs {
    /// The sweep directory (holds sweep.json).
    pub dir: PathBuf,
    /// The run's index in the sweep (Slurm's $SLURM_ARRAY_TASK_ID; `cifar sweep status` lists them).
    #[arg(long)]
    pub index: usize,
    /// Continue an interrupted or failed run from its last checkpoint [default: start it again].
    #[arg(long)]
    pub resume: bool,
    /// Draw the run's charts and report.html [default: off].
    #[arg(long)]
    pub plots: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The sweep directory.
    pub dir: PathBuf,
    /// Print the statuses as JSON (one array) instead of the table [default: table].
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The sweep directory.
    pub dir: PathBuf,
    /// Print the report as JSON on stdout instead of the table (sweep_report.json is written either way)
    /// [default: table].
    #[arg(long)]
    pub json: bool,
}

pub fn sweep_cmd(a: SweepArgs, quiet: bool) -> Result<ExitCode> {
    match a.action {
        Some(SweepAction::RunOne(r)) => run_one(r),
        Some(SweepAction::Status(s)) => status_cmd(s),
        Some(SweepAction::Report(r)) => report_cmd(r),
        None => grid_cmd(a.grid, quiet),
    }
}

/// This machine's name, as the task records hold it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

fn load_sweep(dir: &Path) -> Result<(SweepDir, SweepFile)> {
    let d = SweepDir::new(dir);
    let f = d.load()?;
    Ok((d, f))
}

/// A one-paragraph description of the grid (for logs and the batch script).
fn grid_text(f: &SweepFile) -> String {
    let g = &f.grid;
    let axes: Vec<String> = g.axes.iter().map(Axis::to_string).collect();
    format!(
        "preset {}, {}, {} seeds: {} runs",
        g.preset(),
        if axes.is_empty() {
            "no settings swept".to_string()
        } else {
            format!("swept {}", axes.join(" "))
        },
        g.seeds.len(),
        f.runs.len()
    )
}

fn grid_cmd(a: GridArgs, quiet: bool) -> Result<ExitCode> {
    let Some(out) = a.out.clone() else {
        bail!("--out: required: the sweep directory (holds sweep.json and one directory per run)");
    };
    if a.jobs == 0 {
        bail!("--jobs: expected at least 1, found 0");
    }
    // Before anything is written or fetched.
    let sbatch = if a.submit {
        Some(find_on_path("sbatch").ok_or_else(|| {
            anyhow!(
                "--submit: sbatch is not on PATH ({}); install Slurm's client commands, or write the script without --submit and submit it from a machine that has them",
                std::env::var("PATH").unwrap_or_default()
            )
        })?)
    } else {
        None
    };
    let base = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--config {}", path.display()))?;
            let cfg = TrainConfig::from_json(&text).with_context(|| {
                format!("--config {}: not a training configuration", path.display())
            })?;
            cfg.validate().map_err(|e| {
                anyhow::Error::new(e).context(format!("--config {}", path.display()))
            })?;
            cfg
        }
        None => TrainConfig::preset(&a.preset).map_err(crate::errors::train_flag_error)?,
    };
    let seeds = sweep::parse_seeds(&a.seeds).context("--seeds")?;
    let axes = a
        .set
        .iter()
        .map(|s| Axis::parse(s).with_context(|| format!("--set {s}")))
        .collect::<Result<Vec<_>>>()?;
    let grid = Grid::new(&base, axes, seeds).map_err(|e| match e {
        sweep::Error::Setting { setting, .. } if setting == "seed" => {
            anyhow!("--set seed: the seeds are not a setting to sweep; list them with --seeds (e.g. --seeds 0..5)")
        }
        e => anyhow::Error::new(e).context("--set"),
    })?;
    let data_dir = a.data_dir.clone().unwrap_or_else(|| base.data_dir.clone());
    let data_dir = std::path::absolute(&data_dir)
        .with_context(|| format!("--data-dir {}", data_dir.display()))?;
    let device = a.device.clone().unwrap_or_else(|| base.device.clone());
    let file = SweepFile::new(grid, data_dir, device);
    // Every run's configuration is valid (the model, the device on this build) before anything is written.
    for r in &file.runs {
        file.config(r.index).map_err(|e| match e {
            sweep::Error::Train(t @ train::Error::Setting { .. }) => {
                crate::errors::train_flag_error(t)
            }
            e => anyhow::Error::new(e).context(format!("run {} ({})", r.index, r.name)),
        })?;
    }
    // The batch script is made (and its values checked) before anything is written.
    let script = if a.slurm {
        Some(sbatch_script(&a, &out, &file)?)
    } else {
        None
    };
    let dir = SweepDir::new(&out);
    let init = dir.init(&file, a.force).map_err(|e| match e {
        sweep::Error::OtherGrid { .. } => anyhow!(
            "--out {}: {e}; choose another --out, or pass --force to replace its sweep.json",
            out.display()
        ),
        e => anyhow::Error::new(e).context(format!("--out {}", out.display())),
    })?;
    tracing::info!(
        "{} {}: {}",
        match init {
            sweep::Init::Created => "new sweep",
            sweep::Init::Continued => "continuing the sweep",
            sweep::Init::Replaced => "replaced the grid of",
        },
        out.display(),
        grid_text(&file)
    );
    // The data is fetched once, here, before any run (or Slurm task) starts.
    let mut sources = Vec::new();
    for r in &file.runs {
        let source = file.config(r.index)?.dataset;
        if !sources.contains(&source) {
            crate::data::ensure(&file.data_dir, source, a.url.as_deref())?;
            sources.push(source);
        }
    }
    if let Some(script) = script {
        slurm_cmd(&a, &dir, &file, &script, sbatch.as_deref())
    } else {
        local_cmd(&a, &dir, &file, quiet)
    }
}

fn status_cmd(a: StatusArgs) -> Result<ExitCode> {
    let (dir, file) = load_sweep(&a.dir)?;
    let statuses = dir.status_with(&file, &host_name(), &slurm_job_alive);
    if a.json {
        let rows: Vec<serde_json::Value> = file
            .runs
            .iter()
            .zip(&statuses)
            .map(|(r, s)| serde_json::json!({"index": r.index, "name": r.name, "seed": r.seed, "label": r.label, "status": s}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {}", dir.path().display(), grid_text(&file));
    println!("{:>5}  {:<11}  {:<36}  detail", "index", "state", "run");
    for (r, s) in file.runs.iter().zip(&statuses) {
        let detail = match s {
            RunStatus::Finished => sweep::report::read_run(&dir.run_dir(r), r)
                .map(|x| format!("test accuracy {:.2}%", x.accuracy))
                .unwrap_or_else(|e| e.to_string()),
            RunStatus::Running { host, pid } => format!("pid {pid} on {host}"),
            RunStatus::Interrupted { resumable } => {
                if *resumable {
                    "resumable".into()
                } else {
                    "no checkpoint yet".into()
                }
            }
            RunStatus::Failed { reason, resumable } => {
                format!("{reason}{}", if *resumable { " (resumable)" } else { "" })
            }
            RunStatus::Missing => String::new(),
        };
        println!("{:>5}  {:<11}  {:<36}  {detail}", r.index, s.word(), r.name);
    }
    let c = sweep::report::Counts::of(&statuses);
    println!(
        "{} runs: {} finished, {} running, {} interrupted, {} failed, {} missing",
        c.total, c.finished, c.running, c.interrupted, c.failed, c.missing
    );
    let redo: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| s.needs_work())
        .map(|(i, _)| i)
        .collect();
    if !redo.is_empty() {
        let script = dir.path().join(sweep::SBATCH_FILE);
        if script.is_file() {
            println!(
                "resubmit them: sbatch --array={} {}",
                sweep::slurm::array_spec(&redo, None),
                script.display()
            );
        }
        println!(
            "or here: the sweep's command again with --resume, or cifar sweep run-one {} --index N --resume",
            dir.path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn report_cmd(a: ReportArgs) -> Result<ExitCode> {
    let (dir, file) = load_sweep(&a.dir)?;
    let statuses = dir.status_with(&file, &host_name(), &slurm_job_alive);
    let report = sweep::report::build(&dir, &file, &statuses);
    let written = sweep::report::write(&dir, &report)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", sweep::report::text_table(&report));
        for p in written {
            println!("{}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
