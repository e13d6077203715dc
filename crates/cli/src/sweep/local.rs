//! `cifar sweep` without `--slurm`: the unfinished runs on this machine, `--jobs` at a time.

use super::{GridArgs, host_name, slurm_job_alive};
use anyhow::{Context, Result, anyhow, bail};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use sweep::{RunStatus, SweepDir, SweepFile};
use train::StopFlag;

/// Runs the sweep's unfinished runs here, `--jobs` at a time, each as a `cifar sweep run-one` child process
/// (logging to logs/<index>.log), with a progress bar over the runs; then writes the report.
pub(super) fn local_cmd(
    a: &GridArgs,
    dir: &SweepDir,
    file: &SweepFile,
    quiet: bool,
) -> Result<ExitCode> {
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
