//! The sweep's report: per configuration n, mean, standard deviation, range and 95% interval of the test
//! accuracy (with and without TTA), wall time and throughput; each configuration's difference from the first
//! (paired by seed when the seeds match, else Welch's); `sweep.html` (one chart and the tables) and
//! `sweep_report.json`. Partial sweeps report what has finished.

use crate::stats::{self, Difference, Summary};
use crate::sweep_dir::{RunStatus, SweepDir, SweepFile};
use crate::{Result, grid::RunSpec};
use cifar_types::{History, RunSummary, TestReport, atomic, run_files};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The report's HTML file in the sweep directory.
pub const HTML_FILE: &str = "sweep.html";
/// The report's JSON file in the sweep directory.
pub const JSON_FILE: &str = "sweep_report.json";

/// One finished run's figures (accuracies in percent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Its index in the sweep.
    pub index: usize,
    /// Its directory name.
    pub name: String,
    /// Its configuration's label.
    pub label: String,
    /// Its seed.
    pub seed: u64,
    /// Test accuracy in percent (with the run's TTA when it has one).
    pub accuracy: f64,
    /// Test accuracy in percent without TTA (runs with TTA only).
    pub accuracy_without_tta: Option<f64>,
    /// The TTA (`mirror`, `mirror+shift`), if any.
    pub tta: Option<String>,
    /// Wall time of the run in seconds (its `run_summary.json`, else the sum of its epochs).
    pub wall_secs: Option<f64>,
    /// Mean training throughput over its epochs (images per second).
    pub train_images_per_sec: Option<f64>,
    /// Epochs trained.
    pub epochs: usize,
}

/// The statistics of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigStats {
    /// Its label.
    pub label: String,
    /// Runs of it in the grid.
    pub runs: usize,
    /// Runs of it finished (the n of the statistics).
    pub finished: usize,
    /// Test accuracy (percent).
    pub accuracy: Option<Summary>,
    /// Test accuracy without TTA (percent), when its runs use TTA.
    pub accuracy_without_tta: Option<Summary>,
    /// Wall time per run (seconds).
    pub wall_secs: Option<Summary>,
    /// Training throughput (images per second).
    pub train_images_per_sec: Option<Summary>,
}

/// A configuration against the first: `b − a`, in percentage points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The reference configuration (the first with finished runs).
    pub a: String,
    /// The other.
    pub b: String,
    /// Difference of test accuracy.
    pub accuracy: Option<Difference>,
    /// Difference of test accuracy without TTA.
    pub accuracy_without_tta: Option<Difference>,
}

/// How many runs are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// All runs of the grid.
    pub total: usize,
    /// Finished.
    pub finished: usize,
    /// Running.
    pub running: usize,
    /// Interrupted.
    pub interrupted: usize,
    /// Failed.
    pub failed: usize,
    /// Never started.
    pub missing: usize,
}

impl Counts {
    /// Counts of a list of statuses.
    pub fn of(statuses: &[RunStatus]) -> Counts {
        let mut c = Counts {
            total: statuses.len(),
            ..Counts::default()
        };
        for s in statuses {
            match s {
                RunStatus::Finished => c.finished += 1,
                RunStatus::Running { .. } => c.running += 1,
                RunStatus::Interrupted { .. } => c.interrupted += 1,
                RunStatus::Failed { .. } => c.failed += 1,
                RunStatus::Missing => c.missing += 1,
            }
        }
        c
    }
}

/// The whole report (`sweep_report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The preset of the base configuration.
    pub preset: String,
    /// The swept settings, as `setting=v1,v2`.
    pub axes: Vec<String>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Runs per state.
    pub counts: Counts,
    /// Per configuration, in the grid's order.
    pub configs: Vec<ConfigStats>,
    /// Each other configuration against the first.
    pub comparisons: Vec<Comparison>,
    /// Every finished run.
    pub runs: Vec<RunResult>,
    /// Finished runs whose files could not be read (file and error).
    pub unreadable: Vec<String>,
}

/// Reads a finished run's figures.
pub fn read_run(dir: &std::path::Path, spec: &RunSpec) -> Result<RunResult> {
    let test: TestReport = atomic::read_json(&dir.join(run_files::TEST_REPORT))?;
    let history: Option<History> = atomic::read_json(&dir.join(run_files::HISTORY)).ok();
    let summary: Option<RunSummary> = atomic::read_json(&dir.join(run_files::SUMMARY)).ok();
    let epochs = history.as_ref().map_or(0, |h| h.epochs.len());
    let ips: Vec<f64> = history
        .iter()
        .flat_map(|h| h.epochs.iter().map(|e| e.train_images_per_sec))
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    Ok(RunResult {
        index: spec.index,
        name: spec.name.clone(),
        label: spec.label.clone(),
        seed: spec.seed,
        accuracy: 100.0 * test.accuracy,
        accuracy_without_tta: test.accuracy_without_tta.map(|a| 100.0 * a),
        tta: test.tta.clone(),
        wall_secs: summary
            .and_then(|s| s.wall_secs)
            .or_else(|| history.as_ref().map(History::total_secs)),
        train_images_per_sec: (!ips.is_empty()).then(|| ips.iter().sum::<f64>() / ips.len() as f64),
        epochs,
    })
}

/// Builds the report from the run directories (statuses as [`SweepDir::status`] gives them).
pub fn build(dir: &SweepDir, file: &SweepFile, statuses: &[RunStatus]) -> Report {
    let mut runs = Vec::new();
    let mut unreadable = Vec::new();
    for (spec, status) in file.runs.iter().zip(statuses) {
        if *status != RunStatus::Finished {
            continue;
        }
        match read_run(&dir.run_dir(spec), spec) {
            Ok(r) => runs.push(r),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    let labels: Vec<String> = file
        .grid
        .combinations()
        .iter()
        .map(|c| file.grid.label(c))
        .collect();
    let configs: Vec<ConfigStats> = labels
        .iter()
        .map(|label| {
            let mine: Vec<&RunResult> = runs.iter().filter(|r| &r.label == label).collect();
            let col = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
                stats::summarize(&v)
            };
            ConfigStats {
                label: label.clone(),
                runs: file.runs.iter().filter(|r| &r.label == label).count(),
                finished: mine.len(),
                accuracy: col(&|r| Some(r.accuracy)),
                accuracy_without_tta: col(&|r| r.accuracy_without_tta),
                wall_secs: col(&|r| r.wall_secs),
                train_images_per_sec: col(&|r| r.train_images_per_sec),
            }
        })
        .collect();
    let comparisons = compare_to_first(&configs, &runs);
    Report {
        preset: file.grid.preset().to_string(),
        axes: file.grid.axes.iter().map(|a| a.to_string()).collect(),
        seeds: file.grid.seeds.clone(),
        counts: Counts::of(statuses),
        configs,
        comparisons,
        runs,
        unreadable,
    }
}

/// Each configuration with finished runs against the first one: paired by seed when both ran exactly the
/// same seeds (two or more), else Welch's.
fn compare_to_first(configs: &[ConfigStats], runs: &[RunResult]) -> Vec<Comparison> {
    let with_runs: Vec<&ConfigStats> = configs.iter().filter(|c| c.finished > 0).collect();
    let Some((first, rest)) = with_runs.split_first() else {
        return Vec::new();
    };
    let of =
        |label: &str| -> Vec<&RunResult> { runs.iter().filter(|r| r.label == label).collect() };
    let a_runs = of(&first.label);
    rest.iter()
        .map(|b| {
            let b_runs = of(&b.label);
            let diff = |f: &dyn Fn(&RunResult) -> Option<f64>| -> Option<Difference> {
                let mut a_seeds: Vec<u64> = a_runs
                    .iter()
                    .filter(|r| f(r).is_some())
                    .map(|r| r.seed)
                    .collect();
                let mut b_seeds: Vec<u64> = b_runs
                    .iter()
                    .filter(|r| f(r).is_some())
                    .map(|r| r.seed)
                    .collect();
                a_seeds.sort_unstable();
                b_seeds.sort_unstable();
                if a_seeds == b_seeds && a_seeds.len() >= 2 {
                    let pairs: Vec<(f64, f64)> = a_runs
                        .iter()
                        .filter_map(|ra| {
                            let rb = b_runs.iter().find(|rb| rb.seed == ra.seed)?;
                            Some((f(ra)?, f(rb)?))
                        })
                        .collect();
                    stats::paired(&pairs)
                } else {
                    let a: Vec<f64> = a_runs.iter().filter_map(|r| f(r)).collect();
                    let b: Vec<f64> = b_runs.iter().filter_map(|r| f(r)).collect();
                    stats::welch(&a, &b)
                }
            };
            Comparison {
                a: first.label.clone(),
                b: b.label.clone(),
                accuracy: diff(&|r| Some(r.accuracy)),
                accuracy_without_tta: diff(&|r| r.accuracy_without_tta),
            }
        })
        .collect()
}

/// Writes `sweep_report.json` and `sweep.html` into the sweep directory (atomically); returns their paths.
pub fn write(dir: &SweepDir, report: &Report) -> Result<Vec<PathBuf>> {
    let json = dir.path().join(JSON_FILE);
    atomic::write_json(&json, report)?;
    let html = dir.path().join(HTML_FILE);
    atomic::write_bytes(&html, self::html(report).as_bytes())?;
    Ok(vec![html, json])
}

mod chart;
mod html;
mod text;

pub use chart::svg_chart;
pub use html::html;
pub use text::{difference_text, text_table};
