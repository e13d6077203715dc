//! `cifar compare`: several runs side by side — validation curves overlaid, per-class test accuracy as grouped
//! bars and a table of cost and accuracy, in `compare.html` plus the charts.

mod charts;
mod html;
#[cfg(test)]
mod tests;

use charts::{Metric, Overlay, PerClass};
pub use html::{thousands, write_compare_html};

use crate::encode::write_chart;
use crate::run::{CONFIG_FILE, HISTORY_FILE, TEST_REPORT_FILE, chart_path};
use crate::{Error, Format, Result};
use cifar_types::{History, RUN_SUMMARY_FILE, RunSummary, TestReport};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// File name of the comparison page.
pub const COMPARE_FILE: &str = "compare.html";
/// Chart stem of the overlaid validation accuracy curves; the extension comes from [`Format::extension`].
pub const COMPARE_VAL_ACCURACY: &str = "compare_val_accuracy";
/// Chart stem of the overlaid validation loss curves.
pub const COMPARE_VAL_LOSS: &str = "compare_val_loss";
/// Chart stem of the per-class test accuracy (recall), one bar per run in each class's group.
pub const COMPARE_PER_CLASS: &str = "compare_per_class_accuracy";

/// One run of a comparison, as read from its directory by [`load_compared_run`].
#[derive(Debug, Clone)]
pub struct ComparedRun {
    /// The name shown in the charts and the table (the directory's name, made unique by [`compare_runs`]).
    pub label: String,
    /// The run directory, as given to [`load_compared_run`].
    pub dir: PathBuf,
    /// `config.json`, parsed.
    pub config: serde_json::Value,
    /// `history.json`.
    pub history: History,
    /// `test_report.json`, when the run has one.
    pub report: Option<TestReport>,
    /// `run_summary.json` (all fields empty when the run has none). Callers may fill in what it lacks, such as
    /// the parameter and FLOP counts of a registered model.
    pub summary: RunSummary,
}

impl ComparedRun {
    /// The model's registry name: the summary's, else `config.json`'s `model`.
    pub fn model(&self) -> Option<String> {
        self.summary
            .model
            .clone()
            .or_else(|| self.config_str("model"))
    }

    fn config_str(&self, key: &str) -> Option<String> {
        self.config.get(key)?.as_str().map(str::to_string)
    }

    /// Whether any epoch has a validation accuracy (runs trained without a validation split have none).
    pub fn has_validation(&self) -> bool {
        self.history.epochs.iter().any(|e| e.val_acc.is_finite())
    }

    /// Seconds the run took: the summary's wall time, else the sum of the epochs' times (`false`: the latter).
    pub fn wall_secs(&self) -> Option<(f64, bool)> {
        match self.summary.wall_secs {
            Some(s) if s.is_finite() => Some((s, true)),
            _ if !self.history.epochs.is_empty() => Some((self.history.total_secs(), false)),
            _ => None,
        }
    }

    /// Mean training throughput over the epochs, images/s.
    pub fn train_images_per_sec(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .history
            .epochs
            .iter()
            .map(|e| e.train_images_per_sec)
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// Reads a run directory for a comparison: `config.json` and `history.json` are required (a directory without
/// them is not a run and is refused with [`Error::RunDir`]); `test_report.json` and `run_summary.json` are
/// optional. A file that exists but does not parse is an error naming it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let err = cifar10_viz::load_compared_run(dir.path()).unwrap_err().to_string();
/// assert!(err.contains("not a training run"), "{err}");
/// ```
pub fn load_compared_run(dir: &Path) -> Result<ComparedRun> {
    let refuse = |reason: String| Error::RunDir {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(refuse("does not exist or is not a directory".into()));
    }
    let missing: Vec<&str> = [CONFIG_FILE, HISTORY_FILE]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(refuse(format!(
            "not a training run: {} missing (a run directory holds the config.json and history.json that \
             `cifar train` writes)",
            if missing.len() == 2 {
                "config.json and history.json are".to_string()
            } else {
                format!("{} is", missing[0])
            }
        )));
    }
    let config: serde_json::Value = cifar_types::atomic::read_json(&dir.join(CONFIG_FILE))?;
    if !config.is_object() {
        return Err(refuse(format!(
            "{CONFIG_FILE}: expected a JSON object (a training configuration)"
        )));
    }
    let history: History = cifar_types::atomic::read_json(&dir.join(HISTORY_FILE))?;
    let optional = |name: &str| {
        let p = dir.join(name);
        p.is_file().then_some(p)
    };
    let report = optional(TEST_REPORT_FILE)
        .map(|p| cifar_types::atomic::read_json::<TestReport>(&p))
        .transpose()?;
    let summary = optional(RUN_SUMMARY_FILE)
        .map(|p| cifar_types::atomic::read_json::<RunSummary>(&p))
        .transpose()?
        .unwrap_or_default();
    let label = dir
        .canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    Ok(ComparedRun {
        label,
        dir: dir.to_path_buf(),
        config,
        history,
        report,
        summary,
    })
}

/// matplotlib's "tab10" colours, one per run (repeating after ten).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Writes the comparison charts and `compare.html` into `out_dir` (created if missing); returns the paths
/// written, the page last. Charts without data (no run with validation, no test report) are skipped. Labels
/// that repeat (two runs named alike in different folders) get a `#2`, `#3`... suffix.
pub fn compare_runs(out_dir: &Path, runs: &[ComparedRun], format: Format) -> Result<Vec<PathBuf>> {
    if runs.is_empty() {
        return Err(Error::no_data("comparison", "no runs given"));
    }
    let mut runs = runs.to_vec();
    for i in 1..runs.len() {
        let same = runs[..i]
            .iter()
            .filter(|r| r.label == runs[i].label)
            .count();
        if same > 0 {
            runs[i].label = format!("{} #{}", runs[i].label, same + 1);
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| cifar_types::Error::io(out_dir, e))?;
    let mut written = Vec::new();
    if runs.iter().any(ComparedRun::has_validation) {
        for kind in [Metric::ValAccuracy, Metric::ValLoss] {
            let stem = match kind {
                Metric::ValAccuracy => COMPARE_VAL_ACCURACY,
                Metric::ValLoss => COMPARE_VAL_LOSS,
            };
            let p = chart_path(out_dir, stem, format);
            write_chart(&Overlay { runs: &runs, kind }, &p, format)?;
            written.push(p);
        }
    } else {
        tracing::info!("no run has a validation split: validation curves skipped");
    }
    if runs.iter().any(|r| r.report.is_some()) {
        let p = chart_path(out_dir, COMPARE_PER_CLASS, format);
        write_chart(&PerClass::new(&runs)?, &p, format)?;
        written.push(p);
    } else {
        tracing::info!("no run has a test report: per-class chart skipped");
    }
    let page = write_compare_html(out_dir, &runs, &written)?;
    written.push(page);
    Ok(written)
}
