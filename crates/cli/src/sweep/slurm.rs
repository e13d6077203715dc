//! `cifar sweep --slurm`: the batch script of a job array, its submission, and whether a task is still alive.

use super::{GridArgs, grid_text, host_name};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use sweep::{SweepDir, SweepFile};

/// Asks `squeue` whether Slurm task `job` (`JOBID_TASK`) is still queued or running; None when there is no
/// `squeue` or its answer is unclear (then a task recorded as running on another machine is believed).
pub(super) fn slurm_job_alive(job: &str) -> Option<bool> {
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

pub(super) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The batch script of the sweep in `out`.
pub(super) fn sbatch_script(a: &GridArgs, out: &Path, file: &SweepFile) -> Result<String> {
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

pub(super) fn slurm_cmd(
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
