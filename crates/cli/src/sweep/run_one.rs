//! `cifar sweep run-one`: one run of a sweep, trained in this process (what each task runs).

use super::{RunOneArgs, host_name, load_sweep, slurm_job_alive};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use sweep::{RunStatus, TaskRecord, TaskState};
use train::{RunDir, TrainConfig};

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

pub(super) fn run_one(a: RunOneArgs) -> Result<ExitCode> {
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
    let classes = data.train.num_classes();
    let outcome = crate::commands::fit_here(cfg, &data, out, resume)?;
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
