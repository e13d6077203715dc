//! Sweeps of CIFAR-10 training runs: a grid (a base configuration, settings with several values, seeds), one
//! ordinary run directory per run, the status of every run, honest statistics over seeds (mean, sample standard
//! deviation, Student-t 95% intervals, Welch and paired differences), Slurm job-array scripts and a report
//! (`sweep.html` with one chart, `sweep_report.json`).
//!
//! The library decides nothing about processes: the application (the `cifar sweep` command) trains each run
//! (`cifar sweep run-one`), locally or as a Slurm array task, and records it with [`TaskRecord`].
//!
//! ```
//! use cifar10_sweep::{Axis, Grid, parse_seeds};
//! let base = train::TrainConfig::preset("fast").unwrap();
//! let grid = Grid::new(&base, vec![Axis::parse("precision=f32,bf16").unwrap()], parse_seeds("0..3").unwrap()).unwrap();
//! let runs = grid.runs();
//! assert_eq!(runs.len(), 6);
//! assert_eq!(runs[1].name, "precision-bf16_seed-0");
//! assert_eq!(runs[1].label, "precision=bf16");
//! ```

#![warn(missing_docs)]

mod error;
pub mod grid;
pub mod report;
pub mod slurm;
pub mod stats;
mod sweep_dir;

pub use error::{Error, Result};
pub use grid::{Axis, Grid, RunSpec, parse_seeds};
pub use report::Report;
pub use slurm::SlurmOptions;
pub use sweep_dir::{
    FORMAT, Init, LOGS_DIR, RunStatus, SBATCH_FILE, SWEEP_FILE, SweepDir, SweepFile, TASK_FILE,
    TaskRecord, TaskState, run_status, run_status_with,
};
