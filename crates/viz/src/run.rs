//! A run directory: loading its JSON files and rendering every chart plus the HTML report.

use crate::{
    Error, Format, Result, accuracy_curve, confusion_matrix, loss_curve, pick_probability_samples,
    probability_bars, sample_grid, write_report_html,
};
use cifar_types::{History, ImageSet, Predictions, TestReport};
use std::path::{Path, PathBuf};

/// Training history in a run directory (required).
pub const HISTORY_FILE: &str = cifar_types::run_files::HISTORY;
/// Test-set evaluation (optional).
pub const TEST_REPORT_FILE: &str = cifar_types::run_files::TEST_REPORT;
/// Per-image test probabilities (optional).
pub const PREDICTIONS_FILE: &str = cifar_types::run_files::PREDICTIONS;
/// The run's configuration (optional, shown verbatim).
pub const CONFIG_FILE: &str = cifar_types::run_files::CONFIG;

/// Chart file stem of [`loss_curve`]; the extension comes from [`Format::extension`].
pub const LOSS_CURVE: &str = "loss_curve";
/// Chart file stem of [`accuracy_curve`].
pub const ACCURACY_CURVE: &str = "accuracy_curve";
/// Chart file stem of the [`confusion_matrix`] in counts.
pub const CONFUSION_MATRIX: &str = "confusion_matrix";
/// Chart file stem of the row-normalized [`confusion_matrix`].
pub const CONFUSION_MATRIX_NORMALIZED: &str = "confusion_matrix_normalized";
/// Chart file stem of the [`sample_grid`] of misclassified test images, most confident first.
pub const MISCLASSIFIED_SAMPLES: &str = "misclassified_samples";
/// Chart file stem of the [`sample_grid`] of correctly classified test images with the lowest confidence.
pub const CORRECT_LOW_CONFIDENCE: &str = "correct_low_confidence";
/// Chart file stem of the [`probability_bars`].
pub const PREDICTION_PROBABILITIES: &str = "prediction_probabilities";

/// Images per sample grid (5x5).
pub const GRID_SAMPLES: usize = 25;
/// Images in the probability chart.
pub const PROBABILITY_SAMPLES: usize = 6;

/// Everything a run directory offers; missing parts are skipped (curves need only the history).
#[derive(Debug, Clone, Default)]
pub struct RunArtifacts {
    /// `history.json`: the per-epoch metrics.
    pub history: History,
    /// `test_report.json`, when present.
    pub report: Option<TestReport>,
    /// `predictions.json` (every test image's probabilities), when present.
    pub predictions: Option<Predictions>,
    /// The test images the predictions belong to (same order); [`load_run`] leaves this `None`.
    pub test_images: Option<ImageSet>,
    /// The text of `config.json`.
    pub config: Option<String>,
}

/// Path of the chart `stem` in `out_dir` for `format`, e.g. `out_dir/loss_curve.png`.
pub fn chart_path(out_dir: &Path, stem: &str, format: Format) -> PathBuf {
    out_dir.join(format!("{stem}.{}", format.extension()))
}

/// Reads `history.json` (required), `test_report.json`, `predictions.json` and `config.json` (each optional)
/// from `run_dir`. A missing directory or history is [`Error::RunDir`]; a file that exists but does not parse is
/// an error naming it. `test_images` is left `None`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(cifar10_viz::load_run(dir.path()).unwrap_err().to_string().contains("history.json"));
/// cifar_types::atomic::write_json(&dir.path().join("history.json"), &cifar_types::History::default()).unwrap();
/// let run = cifar10_viz::load_run(dir.path()).unwrap();
/// assert!(run.report.is_none() && run.config.is_none());
/// ```
pub fn load_run(run_dir: &Path) -> Result<RunArtifacts> {
    if !run_dir.is_dir() {
        return Err(Error::RunDir {
            path: run_dir.to_path_buf(),
            reason: "does not exist or is not a directory".into(),
        });
    }
    let history_path = run_dir.join(HISTORY_FILE);
    if !history_path.is_file() {
        return Err(Error::RunDir {
            path: run_dir.to_path_buf(),
            reason: format!(
                "{HISTORY_FILE} is missing (expected the training history written during training)"
            ),
        });
    }
    let history: History = cifar_types::atomic::read_json(&history_path)?;
    let optional = |name: &str| {
        let p = run_dir.join(name);
        p.is_file().then_some(p)
    };
    let report = optional(TEST_REPORT_FILE)
        .map(|p| cifar_types::atomic::read_json::<TestReport>(&p))
        .transpose()?;
    let predictions = match optional(PREDICTIONS_FILE) {
        Some(p) => {
            let raw: Predictions = cifar_types::atomic::read_json(&p)?;
            // Re-check the invariants serde cannot.
            let checked = Predictions::new(raw.classes, raw.labels, raw.probs)
                .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
            Some(checked)
        }
        None => None,
    };
    let config = optional(CONFIG_FILE)
        .map(|p| std::fs::read_to_string(&p).map_err(|e| cifar_types::Error::io(&p, e)))
        .transpose()?;
    Ok(RunArtifacts {
        history,
        report,
        predictions,
        test_images: None,
        config,
    })
}

/// Class names for an `n`-class matrix: the images', else the report's, else
/// [`cifar_types::default_class_names`].
fn class_names(run: &RunArtifacts, n: usize) -> Vec<String> {
    if let Some(img) = &run.test_images
        && img.num_classes() == n
    {
        return img.class_names().to_vec();
    }
    if let Some(r) = &run.report
        && r.per_class.len() == n
    {
        return r.per_class.iter().map(|c| c.class.clone()).collect();
    }
    cifar_types::default_class_names(n)
}

/// Writes every chart it can into `out_dir` (created if missing) plus `report.html`; returns the paths
/// written, the report last. Charts whose inputs are absent (no epochs, no predictions, no test images, no
/// misclassified images...) are skipped with a log line.
///
/// ```
/// use cifar_types::{EpochMetrics, History};
/// let e = EpochMetrics { epoch: 1, train_loss: 2.0, train_acc: 0.3, val_loss: 1.9, val_acc: 0.32,
///     lr: 1e-3, epoch_secs: 10.0, train_images_per_sec: 500.0 };
/// let run = cifar10_viz::RunArtifacts { history: History { epochs: vec![e] }, ..Default::default() };
/// let dir = tempfile::tempdir().unwrap();
/// let written = cifar10_viz::render_run(dir.path(), &run, cifar10_viz::Format::Png).unwrap();
/// assert_eq!(written.len(), 3); // two curves and report.html
/// ```
pub fn render_run(out_dir: &Path, run: &RunArtifacts, format: Format) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(|e| cifar_types::Error::io(out_dir, e))?;
    let mut written = Vec::new();
    let mut out = |stem: &str| {
        let p = chart_path(out_dir, stem, format);
        written.push(p.clone());
        p
    };

    if run.history.epochs.is_empty() {
        tracing::warn!("the history has no epochs: loss and accuracy curves skipped");
    } else {
        loss_curve(&run.history, &out(LOSS_CURVE), format)?;
        accuracy_curve(&run.history, &out(ACCURACY_CURVE), format)?;
    }

    let preds = run.predictions.as_ref().filter(|p| !p.is_empty());
    let cm = match (&run.report, preds) {
        (Some(r), _) => Some(r.confusion_matrix.clone()),
        (None, Some(p)) => Some(p.confusion_matrix().rows().to_vec()),
        (None, None) => None,
    };
    match cm {
        Some(cm) if cm.iter().flatten().any(|&v| v > 0) => {
            let names = class_names(run, cm.len());
            confusion_matrix(&cm, &names, false, &out(CONFUSION_MATRIX), format)?;
            let p = out(CONFUSION_MATRIX_NORMALIZED);
            confusion_matrix(&cm, &names, true, &p, format)?;
        }
        _ => tracing::info!("no test report or predictions: confusion matrices skipped"),
    }

    match (preds, &run.test_images) {
        (Some(p), Some(images)) => {
            let wrong = p.misclassified();
            if wrong.is_empty() {
                tracing::info!("no misclassified test images: {MISCLASSIFIED_SAMPLES} skipped");
            } else {
                let pick = &wrong[..wrong.len().min(GRID_SAMPLES)];
                let title = format!(
                    "Misclassified test images, most confident first ({} of {} shown)",
                    pick.len(),
                    wrong.len()
                );
                sample_grid(images, p, pick, &title, &out(MISCLASSIFIED_SAMPLES), format)?;
            }
            let right = p.correct_least_confident();
            if right.is_empty() {
                tracing::info!(
                    "no correctly classified test images: {CORRECT_LOW_CONFIDENCE} skipped"
                );
            } else {
                let pick = &right[..right.len().min(GRID_SAMPLES)];
                let title = format!(
                    "Correctly classified test images with the lowest confidence ({} of {})",
                    pick.len(),
                    right.len()
                );
                sample_grid(
                    images,
                    p,
                    pick,
                    &title,
                    &out(CORRECT_LOW_CONFIDENCE),
                    format,
                )?;
            }
            let pick = pick_probability_samples(p, PROBABILITY_SAMPLES);
            probability_bars(images, p, &pick, &out(PREDICTION_PROBABILITIES), format)?;
        }
        (Some(_), None) => tracing::info!("test images not loaded: sample charts skipped"),
        _ => tracing::info!("no predictions: sample charts skipped"),
    }

    let page = write_report_html(out_dir, run, &written)?;
    written.push(page);
    Ok(written)
}
