//! `cifar sweep`: a grid of runs (seeds × settings) trained one after another or N at a time on this machine,
//! or written as a Slurm job array (`--slurm`, `--submit`); `run-one` trains one run of a sweep (what each task
//! runs), `status` says what every run is doing, `report` writes the statistics (the `sweep` library).

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use sweep::{Axis, Grid, RunStatus, SweepDir, SweepFile, TaskRecord, TaskState};
use train::{RunDir, StopFlag, TrainConfig};

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
    let axes: Vec<String> = g
        .axes
        .iter()
        .map(|a| {
            format!(
                "{}={}",
                a.setting,
                a.values
                    .iter()
                    .map(sweep::grid::value_text)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
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

/// Asks `squeue` whether Slurm task `job` (`JOBID_TASK`) is still queued or running; None when there is no
/// `squeue` or its answer is unclear (then a task recorded as running on another machine is believed).
fn slurm_job_alive(job: &str) -> Option<bool> {
    let squeue = find_on_path("squeue")?;
    let o = std::process::Command::new(squeue)
        .args(["-h", "-o", "%i", "-j", job])
        .output()
        .ok()?;
    if o.status.success() {
        return Some(!String::from_utf8_lossy(&o.stdout).trim().is_empty());
    }
    String::from_utf8_lossy(&o.stderr)
        .contains("Invalid job id")
        .then_some(false)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The batch script of the sweep in `out`.
fn sbatch_script(a: &GridArgs, out: &Path, file: &SweepFile) -> Result<String> {
    let opts = sweep::SlurmOptions {
        partition: a.partition.clone(),
        time: a.time.clone(),
        cpus_per_task: a.cpus_per_task,
        mem: a.mem.clone(),
        array_limit: a.array_limit,
        ..sweep::SlurmOptions::default()
    };
    let bin = match &a.cifar_bin {
        Some(b) => {
            std::path::absolute(b).with_context(|| format!("--cifar-bin {}", b.display()))?
        }
        None => {
            std::env::current_exe().context("cannot find this binary's path (use --cifar-bin)")?
        }
    };
    let sweep_abs = std::path::absolute(out).with_context(|| format!("--out {}", out.display()))?;
    let (Some(bin_text), Some(dir_text)) = (bin.to_str(), sweep_abs.to_str()) else {
        bail!("--out / --cifar-bin: paths in a batch script must be UTF-8");
    };
    let task = format!(
        "{} sweep run-one {} --index \"$SLURM_ARRAY_TASK_ID\" --resume",
        sweep::slurm::shell_quote(bin_text),
        sweep::slurm::shell_quote(dir_text)
    );
    let about = format!(
        "{}\nWritten by `cifar sweep --slurm`. Submit: sbatch submit.sbatch, or the same cifar sweep command with\n\
         --submit (it submits only the runs not finished). Resubmit chosen runs: sbatch --array=2,5 submit.sbatch.\n\
         Status: cifar sweep status {dir_text}",
        grid_text(file)
    );
    sweep::slurm::sbatch_script(&opts, &task, &sweep_abs, file.runs.len(), &about).map_err(|e| {
        match e {
            sweep::Error::Setting { setting, reason } => {
                anyhow!("{}: {reason}", crate::errors::flag_of(&setting))
            }
            e => e.into(),
        }
    })
}

fn slurm_cmd(
    a: &GridArgs,
    dir: &SweepDir,
    file: &SweepFile,
    script: &str,
    sbatch: Option<&Path>,
) -> Result<ExitCode> {
    let script_path = dir.path().join(sweep::SBATCH_FILE);
    cifar_types::atomic::write_bytes(&script_path, script.as_bytes())?;
    println!(
        "wrote {} ({} array tasks)",
        script_path.display(),
        file.runs.len()
    );
    let Some(sbatch) = sbatch else {
        println!(
            "submit it with: sbatch {}   (or run this command again with --submit: it submits only the runs not finished)",
            script_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let statuses = dir.status_with(file, &host_name(), &slurm_job_alive);
    let todo: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| s.needs_work())
        .map(|(i, _)| i)
        .collect();
    if todo.is_empty() {
        println!("every run is finished or running: nothing to submit");
        return Ok(ExitCode::SUCCESS);
    }
    let spec = sweep::slurm::array_spec(&todo, a.array_limit);
    let o = std::process::Command::new(sbatch)
        .arg("--parsable")
        .arg(format!("--array={spec}"))
        .arg(&script_path)
        .output()
        .with_context(|| format!("cannot run {}", sbatch.display()))?;
    if !o.status.success() {
        bail!(
            "sbatch --array={spec} {} failed ({}): {}",
            script_path.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let job = sweep::slurm::parse_job_id(&stdout)
        .ok_or_else(|| anyhow!("sbatch answered {:?}: no job id", stdout.trim()))?;
    println!("submitted job {job}: {} tasks (array {spec})", todo.len());
    println!(
        "follow it with: squeue -j {job}; cifar sweep status {}",
        dir.path().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the sweep's unfinished runs here, `--jobs` at a time, each as a `cifar sweep run-one` child process
/// (logging to logs/<index>.log), with a progress bar over the runs; then writes the report.
fn local_cmd(a: &GridArgs, dir: &SweepDir, file: &SweepFile, quiet: bool) -> Result<ExitCode> {
    let host = host_name();
    let statuses = dir.status_with(file, &host, &slurm_job_alive);
    let mut todo = Vec::new();
    let mut stuck = Vec::new();
    for (spec, s) in file.runs.iter().zip(&statuses) {
        match s {
            RunStatus::Finished => {}
            RunStatus::Running { host, pid } => {
                tracing::warn!(
                    "run {} ({}) is running elsewhere (pid {pid} on {host}): left alone",
                    spec.index,
                    spec.name
                );
            }
            RunStatus::Interrupted { resumable: true } if !a.resume => stuck.push(spec),
            _ => todo.push(spec.index),
        }
    }
    if !stuck.is_empty() {
        bail!(
            "{} interrupted run(s) in {}: {}; continue them with --resume (or delete their directories to start them again)",
            stuck.len(),
            dir.path().display(),
            stuck
                .iter()
                .map(|s| format!("{} ({})", s.index, s.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let done_before = statuses
        .iter()
        .filter(|s| **s == RunStatus::Finished)
        .count();
    if todo.is_empty() {
        println!("all {} runs are finished or running", file.runs.len());
    } else {
        tracing::info!(
            "{} runs to train ({} finished already), {} at a time",
            todo.len(),
            done_before,
            a.jobs
        );
    }
    let cores = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let threads = (cores / a.jobs).max(1);
    let exe = std::env::current_exe().context("cannot find this binary's path")?;

    // Ctrl-C: the children run in their own process groups (the terminal's SIGINT reaches only this process),
    // so each hears it exactly once, from here: they save a checkpoint and stop. A second Ctrl-C is passed on too
    // (the children then exit at once) and ends this process.
    let children: Arc<Mutex<Vec<u32>>> = Arc::default();
    let stop = StopFlag::default();
    let presses = Arc::new(AtomicUsize::new(0));
    {
        let (children, stop, presses) = (children.clone(), stop.clone(), presses.clone());
        ctrlc::set_handler(move || {
            let n = presses.fetch_add(1, Ordering::SeqCst);
            if let Ok(pids) = children.lock() {
                for &pid in pids.iter() {
                    // SAFETY: kill(2) with a pid of our own child and a valid signal number has no memory effects.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGINT);
                    }
                }
            }
            if n == 0 {
                eprintln!("\nstopping: the running runs save a checkpoint (Ctrl-C again to abort them now)...");
                stop.request();
            } else {
                std::process::exit(130);
            }
        })
        .map_err(|e| anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    }

    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "sweep [{bar:30}] {pos}/{len} runs, elapsed {elapsed_precise}, eta {eta} | {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut queue: std::collections::VecDeque<usize> = todo.into_iter().collect();
    let mut running: Vec<(usize, std::process::Child)> = Vec::new();
    let mut failed = Vec::new();
    let mut interrupted = Vec::new();
    loop {
        while !stop.is_requested() && running.len() < a.jobs {
            let Some(index) = queue.pop_front() else {
                break;
            };
            let spec = &file.runs[index];
            let log_path = dir.log_file(index);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot open {}", log_path.display()))?;
            let log2 = log
                .try_clone()
                .with_context(|| log_path.display().to_string())?;
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg("sweep")
                .arg("run-one")
                .arg(dir.path())
                .arg("--index")
                .arg(index.to_string())
                .env("RAYON_NUM_THREADS", threads.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(log)
                .stderr(log2);
            if a.resume {
                cmd.arg("--resume");
            }
            if a.plots {
                cmd.arg("--plots");
            }
            {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
            }
            // Holding the lock while spawning: a Ctrl-C in between reaches the child too.
            let mut pids = children
                .lock()
                .map_err(|_| anyhow!("internal: poisoned lock"))?;
            let child = cmd
                .spawn()
                .with_context(|| format!("cannot start {} sweep run-one", exe.display()))?;
            pids.push(child.id());
            drop(pids);
            bar.suspend(|| {
                if !quiet {
                    eprintln!(
                        "run {index} ({}) started, {threads} threads, log {}",
                        spec.name,
                        log_path.display()
                    )
                }
            });
            bar.set_message(format!("training {}", spec.name));
            running.push((index, child));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut k = 0;
        while k < running.len() {
            let exited = running[k]
                .1
                .try_wait()
                .with_context(|| format!("run {}: cannot wait for its process", running[k].0))?;
            let Some(code) = exited else {
                k += 1;
                continue;
            };
            let (index, child) = running.swap_remove(k);
            if let Ok(mut pids) = children.lock() {
                pids.retain(|&p| p != child.id());
            }
            let spec = &file.runs[index];
            let line = match sweep::run_status(&dir.run_dir(spec), &host) {
                RunStatus::Finished => {
                    bar.inc(1);
                    match sweep::report::read_run(&dir.run_dir(spec), spec) {
                        Ok(r) => format!(
                            "run {index} ({}) finished: test accuracy {:.2}%{}{}",
                            spec.name,
                            r.accuracy,
                            r.accuracy_without_tta
                                .map(|p| format!(" ({p:.2}% without TTA)"))
                                .unwrap_or_default(),
                            r.wall_secs
                                .map(|w| format!(" in {}", crate::time::duration(w)))
                                .unwrap_or_default()
                        ),
                        Err(e) => format!("run {index} ({}) finished, but: {e}", spec.name),
                    }
                }
                RunStatus::Interrupted { .. } => {
                    interrupted.push(index);
                    format!(
                        "run {index} ({}) interrupted (resumable with --resume)",
                        spec.name
                    )
                }
                s => {
                    failed.push(index);
                    format!(
                        "run {index} ({}) failed ({code}{}): see {}",
                        spec.name,
                        match s {
                            RunStatus::Failed { reason, .. } => format!("; {reason}"),
                            _ => String::new(),
                        },
                        dir.log_file(index).display()
                    )
                }
            };
            bar.suspend(|| {
                if !quiet || line.contains("failed") {
                    eprintln!("{line}")
                }
            });
        }
    }
    bar.finish_and_clear();
    let statuses = dir.status_with(file, &host, &slurm_job_alive);
    let report = sweep::report::build(dir, file, &statuses);
    let written = sweep::report::write(dir, &report)?;
    print!("{}", sweep::report::text_table(&report));
    println!(
        "report: {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if stop.is_requested() || !interrupted.is_empty() {
        println!(
            "interrupted; continue with the same command and --resume ({} not finished)",
            crate::time::count(file.runs.len() - report.counts.finished, "run")
        );
        return Ok(ExitCode::from(130));
    }
    if !failed.is_empty() {
        bail!(
            "{} run(s) failed: {} (cifar sweep status {} says why; the same command runs them again)",
            failed.len(),
            failed
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            dir.path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether two configurations describe the same run (the data directory and the device aside).
fn same_run(a: &TrainConfig, b: &TrainConfig) -> bool {
    let strip = |c: &TrainConfig| {
        let mut c = c.clone();
        c.data_dir = PathBuf::new();
        c.device = String::new();
        c
    };
    strip(a) == strip(b)
}

fn run_one(a: RunOneArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let (dir, file) = load_sweep(&a.dir)?;
    let spec = file
        .run(a.index)
        .map_err(|e| anyhow!("--index {}: {e} ({})", a.index, dir.sweep_file().display()))?
        .clone();
    let cfg = file
        .config(a.index)
        .with_context(|| format!("{}: run {}", dir.sweep_file().display(), a.index))?;
    let run_dir = dir.run_dir(&spec);
    let host = host_name();
    match sweep::run_status_with(&run_dir, &host, &slurm_job_alive) {
        RunStatus::Finished => {
            println!("run {} ({}) is already finished", a.index, spec.name);
            return Ok(ExitCode::SUCCESS);
        }
        RunStatus::Running { host, pid } => {
            bail!(
                "run {} ({}) is already running (pid {pid} on {host})",
                a.index,
                spec.name
            )
        }
        _ => {}
    }
    let rd = RunDir::new(&run_dir);
    let resume = if rd.file(RunDir::CONFIG).is_file() {
        let existing = rd
            .read_config()
            .with_context(|| format!("run {} ({})", a.index, spec.name))?;
        if !same_run(&existing, &cfg) {
            bail!(
                "{}: holds a run of other settings than run {} of the sweep in {}; delete it, or use another sweep directory",
                run_dir.display(),
                a.index,
                dir.path().display()
            );
        }
        a.resume && rd.file(RunDir::LAST).is_file()
    } else {
        false
    };
    if !resume && run_dir.exists() {
        // A failed or interrupted attempt, started again from scratch: only the run's own files go.
        tracing::info!("starting {} again from scratch", run_dir.display());
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("cannot clear {}", run_dir.display()))?;
    }
    if !resume {
        rd.prepare_new()
            .with_context(|| format!("run {}", a.index))?;
    }
    let slurm_job = match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(j), Ok(t)) => Some(format!("{j}_{t}")),
        _ => std::env::var("SLURM_JOB_ID").ok(),
    };
    let record = TaskRecord::starting(host, slurm_job);
    record.write(&run_dir)?;
    tracing::info!(
        "sweep {} run {} ({}): {}",
        dir.path().display(),
        a.index,
        spec.name,
        if resume { "resuming" } else { "starting" }
    );
    match train_run(&cfg, &run_dir, resume, a.plots, started) {
        Ok(true) => {
            record.ended(TaskState::Finished, None).write(&run_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            record.ended(TaskState::Interrupted, None).write(&run_dir)?;
            println!(
                "interrupted; continue with: cifar sweep run-one {} --index {} --resume",
                dir.path().display(),
                a.index
            );
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            let message = crate::errors::message(&e);
            if let Err(w) = record
                .ended(TaskState::Failed, Some(message))
                .write(&run_dir)
            {
                tracing::warn!("{w}");
            }
            Err(e)
        }
    }
}

/// Trains one run in this process, as `cifar train` does (progress bar, Ctrl-C saves a checkpoint, run
/// summary, optional charts); true when it finished, false when interrupted.
fn train_run(
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    plots: bool,
    started: std::time::Instant,
) -> Result<bool> {
    // No download here: `cifar sweep` fetched the data before any task started.
    let data = crate::data::load_data(cfg).with_context(|| {
        format!(
            "the sweep's data ({}; `cifar sweep` fetches it before starting runs)",
            cfg.data_dir.display()
        )
    })?;
    let stop = StopFlag::default();
    crate::progress::install_ctrl_c(&stop)?;
    let classes = data.train.num_classes();
    let (net, device) =
        train::build_model(cfg, classes).map_err(crate::errors::train_flag_error)?;
    let outcome = train::TrainerBuilder::new(net.as_ref(), cfg.clone())
        .run_dir(out)
        .resume(resume)
        .stop_flag(stop)
        .device_description(device)
        .callback(crate::progress::Progress::new(cfg.patience))
        .build()
        .map_err(crate::errors::train_flag_error)?
        .fit(&data)?;
    if outcome.interrupted {
        return Ok(false);
    }
    crate::compare::write_run_summary(
        out,
        &cfg.model,
        classes,
        started.elapsed().as_secs_f64(),
        crate::commands::rayon_threads(),
    );
    if plots
        && let Err(e) = crate::commands::plot_run(out, Some(Arc::new(data.test)), viz::Format::Png)
    {
        tracing::warn!("charts not drawn: {e:#}");
    }
    Ok(true)
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
