//! The sweep directory: `sweep.json` (the grid), one run directory per run, `logs/`, and each run's
//! `sweep_task.json` (what its task is doing), from which the status of every run is read.

use crate::grid::{Grid, RunSpec};
use crate::{Error, Result};
use cifar_types::atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The grid's file in a sweep directory.
pub const SWEEP_FILE: &str = "sweep.json";
/// The per-task record inside a run directory.
pub const TASK_FILE: &str = "sweep_task.json";
/// The Slurm batch script in a sweep directory.
pub const SBATCH_FILE: &str = "submit.sbatch";
/// The folder of the tasks' logs.
pub const LOGS_DIR: &str = "logs";
/// The version of `sweep.json`'s layout.
pub const FORMAT: u32 = 1;

/// `sweep.json`: the grid, the sweep-wide settings and the runs it expands to (written for scripts; the grid
/// decides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepFile {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The grid.
    pub grid: Grid,
    /// Where every run reads its data (absolute, so that every node finds it).
    pub data_dir: PathBuf,
    /// The device every run trains on (`auto`, `cpu`, `cuda:N`).
    pub device: String,
    /// The runs, as [`Grid::runs`] expands them.
    pub runs: Vec<RunSpec>,
}

impl SweepFile {
    /// The file for a grid.
    pub fn new(grid: Grid, data_dir: PathBuf, device: String) -> Self {
        let runs = grid.runs();
        SweepFile {
            format: FORMAT,
            grid,
            data_dir,
            device,
            runs,
        }
    }

    /// Run `index`, or [`Error::IndexOutOfRange`].
    pub fn run(&self, index: usize) -> Result<&RunSpec> {
        self.runs.get(index).ok_or(Error::IndexOutOfRange {
            index,
            runs: self.runs.len(),
        })
    }

    /// The full configuration of run `index`.
    pub fn config(&self, index: usize) -> Result<train::TrainConfig> {
        self.grid.config(index, &self.data_dir, &self.device)
    }
}

/// What [`SweepDir::init`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// A new sweep: `sweep.json` written.
    Created,
    /// The same grid was there already (the sweep-wide settings were updated).
    Continued,
    /// Another grid was there and was replaced (forced).
    Replaced,
}

/// A sweep directory.
#[derive(Debug, Clone)]
pub struct SweepDir {
    path: PathBuf,
}

impl SweepDir {
    /// The sweep directory at `path` (nothing is touched).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SweepDir { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `sweep.json`'s path.
    pub fn sweep_file(&self) -> PathBuf {
        self.path.join(SWEEP_FILE)
    }

    /// The run directory of `run`.
    pub fn run_dir(&self, run: &RunSpec) -> PathBuf {
        self.path.join(&run.name)
    }

    /// The log file of run `index` (the Slurm script and the local driver write the same one).
    pub fn log_file(&self, index: usize) -> PathBuf {
        self.path.join(LOGS_DIR).join(format!("{index}.log"))
    }

    /// Reads `sweep.json`; the error says when the directory holds no sweep.
    pub fn load(&self) -> Result<SweepFile> {
        let path = self.sweep_file();
        if !path.is_file() {
            return Err(Error::Invalid {
                path: self.path.clone(),
                reason: format!("not a sweep directory: no {SWEEP_FILE}"),
            });
        }
        let file: SweepFile = atomic::read_json(&path)?;
        if file.format != FORMAT {
            return Err(Error::Invalid {
                path,
                reason: format!(
                    "layout version {} (this version reads {FORMAT})",
                    file.format
                ),
            });
        }
        if file.runs != file.grid.runs() {
            return Err(Error::Invalid {
                path,
                reason: "its runs do not match its grid (edited by hand?)".into(),
            });
        }
        Ok(file)
    }

    /// Writes `file` as this directory's `sweep.json`, creating the directory. When a sweep is already there,
    /// its grid must be the same (an [`Error::OtherGrid`] otherwise) unless `force`; the sweep-wide settings
    /// (data directory, device) are updated either way.
    pub fn init(&self, file: &SweepFile, force: bool) -> Result<Init> {
        let path = self.sweep_file();
        let outcome = if path.exists() {
            match self.load() {
                Ok(old) => match old.grid.difference(&file.grid) {
                    None => Init::Continued,
                    Some(_) if force => Init::Replaced,
                    Some(difference) => return Err(Error::OtherGrid { path, difference }),
                },
                Err(_) if force => Init::Replaced,
                Err(e) => return Err(e),
            }
        } else {
            if self.path.is_dir()
                && std::fs::read_dir(&self.path)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(false)
                && !force
            {
                return Err(Error::Invalid {
                    path: self.path.clone(),
                    reason: format!(
                        "exists, is not empty and holds no {SWEEP_FILE}: not a sweep directory"
                    ),
                });
            }
            Init::Created
        };
        std::fs::create_dir_all(self.path.join(LOGS_DIR))
            .map_err(|e| cifar_types::Error::io(self.path.join(LOGS_DIR), e))?;
        atomic::write_json(&path, file)?;
        Ok(outcome)
    }

    /// The status of every run, in index order. `this_host` is the name of the machine asking: a run recorded
    /// as running on it whose process is gone is reported as failed.
    pub fn status(&self, file: &SweepFile, this_host: &str) -> Vec<RunStatus> {
        self.status_with(file, this_host, &|_| None)
    }

    /// [`SweepDir::status`], also asking `slurm_job_alive` about a task recorded as running under Slurm
    /// (`JOBID_TASK`; Some(false): no longer queued or running, so the task died; None: unknown). That is how a
    /// task lost on another node is told from one still training there.
    pub fn status_with(
        &self,
        file: &SweepFile,
        this_host: &str,
        slurm_job_alive: &dyn Fn(&str) -> Option<bool>,
    ) -> Vec<RunStatus> {
        file.runs
            .iter()
            .map(|r| run_status_with(&self.run_dir(r), this_host, slurm_job_alive))
            .collect()
    }
}

/// What a run's task last said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Training (or about to).
    Running,
    /// Done: the test report is written.
    Finished,
    /// Stopped by an error (the message says which).
    Failed,
    /// Stopped on request (Ctrl-C, or Slurm's warning signal before the time limit); the last checkpoint can be
    /// resumed.
    Interrupted,
}

/// `sweep_task.json`: who runs (or ran) a run, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The state.
    pub state: TaskState,
    /// The machine's name.
    pub host: String,
    /// The process id on it.
    pub pid: u32,
    /// When the task started (seconds since the Unix epoch).
    pub started_unix: f64,
    /// When it ended.
    pub ended_unix: Option<f64>,
    /// Why it failed.
    pub message: Option<String>,
    /// The Slurm job (`JOBID_TASK`) when run by Slurm.
    pub slurm_job: Option<String>,
}

impl TaskRecord {
    /// A record of a task starting now in this process.
    pub fn starting(host: String, slurm_job: Option<String>) -> Self {
        TaskRecord {
            state: TaskState::Running,
            host,
            pid: std::process::id(),
            started_unix: now_unix(),
            ended_unix: None,
            message: None,
            slurm_job,
        }
    }

    /// The record ended with `state`.
    pub fn ended(&self, state: TaskState, message: Option<String>) -> Self {
        TaskRecord {
            state,
            ended_unix: Some(now_unix()),
            message,
            ..self.clone()
        }
    }

    /// Writes it into `run_dir` (atomically).
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        Ok(atomic::write_json(&run_dir.join(TASK_FILE), self)?)
    }
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The status of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RunStatus {
    /// Its test report is written.
    Finished,
    /// A task is training it (or was, on another machine, when last heard of).
    Running {
        /// Where.
        host: String,
        /// Its process id there.
        pid: u32,
    },
    /// Stopped on request; `resumable` when a checkpoint is there.
    Interrupted {
        /// Whether `last.safetensors` exists.
        resumable: bool,
    },
    /// Its task failed, or died without a word (killed, out of memory, node lost).
    Failed {
        /// What is known.
        reason: String,
        /// Whether `last.safetensors` exists.
        resumable: bool,
    },
    /// Never started.
    Missing,
}

impl RunStatus {
    /// One word: finished, running, interrupted, failed, missing.
    pub fn word(&self) -> &'static str {
        match self {
            RunStatus::Finished => "finished",
            RunStatus::Running { .. } => "running",
            RunStatus::Interrupted { .. } => "interrupted",
            RunStatus::Failed { .. } => "failed",
            RunStatus::Missing => "missing",
        }
    }

    /// Whether a task should (re)start it: not finished and not running.
    pub fn needs_work(&self) -> bool {
        !matches!(self, RunStatus::Finished | RunStatus::Running { .. })
    }
}

/// The status of the run in `run_dir` (see [`SweepDir::status`]).
pub fn run_status(run_dir: &Path, this_host: &str) -> RunStatus {
    run_status_with(run_dir, this_host, &|_| None)
}

/// The status of the run in `run_dir` (see [`SweepDir::status_with`]).
pub fn run_status_with(
    run_dir: &Path,
    this_host: &str,
    slurm_job_alive: &dyn Fn(&str) -> Option<bool>,
) -> RunStatus {
    if run_dir.join(cifar_types::run_files::TEST_REPORT).is_file() {
        return RunStatus::Finished;
    }
    if !run_dir.exists() {
        return RunStatus::Missing;
    }
    let resumable = run_dir.join(cifar_types::run_files::LAST).is_file();
    let record: Option<TaskRecord> = atomic::read_json(&run_dir.join(TASK_FILE)).ok();
    match record {
        None if resumable => RunStatus::Interrupted { resumable },
        None => RunStatus::Missing,
        Some(r) => match r.state {
            TaskState::Running => {
                let job_gone = r
                    .slurm_job
                    .as_deref()
                    .is_some_and(|j| slurm_job_alive(j) == Some(false));
                if r.host == this_host && !process_alive(r.pid) {
                    RunStatus::Failed {
                        reason: format!(
                            "its task (pid {} on {}) ended without a word: killed, out of memory?",
                            r.pid, r.host
                        ),
                        resumable,
                    }
                } else if job_gone {
                    RunStatus::Failed {
                        reason: format!(
                            "its Slurm task {} (pid {} on {}) is no longer queued or running: it ended without a word (killed, node lost, time limit?)",
                            r.slurm_job.as_deref().unwrap_or(""),
                            r.pid,
                            r.host
                        ),
                        resumable,
                    }
                } else {
                    RunStatus::Running {
                        host: r.host,
                        pid: r.pid,
                    }
                }
            }
            // Finished, yet no test report: deleted since.
            TaskState::Finished => RunStatus::Failed {
                reason: "recorded as finished, but its test report is gone".into(),
                resumable,
            },
            TaskState::Failed => RunStatus::Failed {
                reason: r.message.unwrap_or_else(|| "failed".into()),
                resumable,
            },
            TaskState::Interrupted => RunStatus::Interrupted { resumable },
        },
    }
}

/// Whether process `pid` of this machine is alive and a `cifar` task (Linux: `/proc`); elsewhere assumed alive.
fn process_alive(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let proc_dir = Path::new("/proc").join(pid.to_string());
    // A reused pid of another program does not count; a zombie (exited, not yet reaped) does not either.
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    if state == "Z" || state == "X" {
        return false;
    }
    std::fs::read(proc_dir.join("cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("run-one"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::Axis;

    fn file() -> SweepFile {
        let g = Grid::new(
            &train::TrainConfig::preset("fast").unwrap(),
            vec![Axis::parse("lr=0.001,0.002").unwrap()],
            vec![0, 1],
        )
        .unwrap();
        SweepFile::new(g, "/data".into(), "cpu".into())
    }

    #[test]
    fn init_refuses_another_grid_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let d = SweepDir::new(tmp.path().join("s"));
        let f = file();
        assert_eq!(d.init(&f, false).unwrap(), Init::Created);
        assert_eq!(d.init(&f, false).unwrap(), Init::Continued);
        assert_eq!(d.load().unwrap(), f);
        let mut other = f.clone();
        other.grid.seeds = vec![0, 1, 2];
        other.runs = other.grid.runs();
        let e = d.init(&other, false).unwrap_err();
        assert!(matches!(e, Error::OtherGrid { .. }), "{e}");
        assert!(e.to_string().contains("seeds differ"), "{e}");
        assert_eq!(d.init(&other, true).unwrap(), Init::Replaced);
        assert_eq!(d.load().unwrap().runs.len(), 6);
        // A non-empty directory without sweep.json is not taken over.
        let busy = tmp.path().join("busy");
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::write(busy.join("x"), b"").unwrap();
        let e = SweepDir::new(&busy).init(&f, false).unwrap_err();
        assert!(e.to_string().contains("not a sweep directory"), "{e}");
        let e = SweepDir::new(tmp.path().join("none")).load().unwrap_err();
        assert!(e.to_string().contains("no sweep.json"), "{e}");
    }

    #[test]
    fn statuses_from_the_run_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = SweepDir::new(tmp.path());
        let f = file();
        d.init(&f, false).unwrap();
        let dirs: Vec<PathBuf> = f.runs.iter().map(|r| d.run_dir(r)).collect();
        // 0: finished; 1: running here in a dead process; 2: interrupted with a checkpoint; 3: missing.
        std::fs::create_dir_all(&dirs[0]).unwrap();
        std::fs::write(dirs[0].join("test_report.json"), b"{}").unwrap();
        std::fs::create_dir_all(&dirs[1]).unwrap();
        let mut rec = TaskRecord::starting("here".into(), None);
        rec.pid = u32::MAX - 1;
        rec.write(&dirs[1]).unwrap();
        std::fs::create_dir_all(&dirs[2]).unwrap();
        std::fs::write(dirs[2].join("last.safetensors"), b"").unwrap();
        rec.ended(TaskState::Interrupted, None)
            .write(&dirs[2])
            .unwrap();
        let s = d.status(&f, "here");
        assert_eq!(s[0], RunStatus::Finished);
        assert!(
            matches!(&s[1], RunStatus::Failed { reason, resumable: false } if reason.contains("without a word")),
            "{:?}",
            s[1]
        );
        assert_eq!(s[2], RunStatus::Interrupted { resumable: true });
        assert_eq!(s[3], RunStatus::Missing);
        // On another machine, a running record is believed, unless Slurm says its task is gone.
        let s = d.status(&f, "elsewhere");
        assert!(matches!(s[1], RunStatus::Running { .. }));
        let mut slurm = TaskRecord::starting("node7".into(), Some("12_1".into()));
        slurm.pid = 1;
        slurm.write(&dirs[1]).unwrap();
        let alive = |j: &str| Some(j != "12_1");
        let s = d.status_with(&f, "here", &alive);
        assert!(
            matches!(&s[1], RunStatus::Failed { reason, .. } if reason.contains("12_1")),
            "{:?}",
            s[1]
        );
        let s = d.status_with(&f, "here", &|_| None);
        assert!(matches!(s[1], RunStatus::Running { .. }));
        assert!(!s[0].needs_work() && !s[1].needs_work() && s[2].needs_work() && s[3].needs_work());
    }
}
