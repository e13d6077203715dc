//! Charts of a CIFAR-10 training run, drawn with plotters and written atomically as PNG (default) or SVG,
//! plus a self-contained `report.html`.
//!
//! | function | file |
//! |---|---|
//! | [`loss_curve`] | `loss_curve.png` |
//! | [`accuracy_curve`] | `accuracy_curve.png` (best epoch marked) |
//! | [`confusion_matrix`] | `confusion_matrix.png`, `confusion_matrix_normalized.png` |
//! | [`sample_grid`] | `misclassified_samples.png`, `correct_low_confidence.png` |
//! | [`probability_bars`] | `prediction_probabilities.png` |
//! | [`render_run`] | all of the above plus `report.html` |
//! | [`compare_runs`] | several runs side by side: `compare_val_accuracy.png`, `compare_val_loss.png`, `compare_per_class_accuracy.png`, `compare.html` |
//!
//! Text uses a bundled DejaVu Sans through plotters' `ab_glyph` renderer, so no system fonts are needed.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! cifar_types::atomic::write_json(&dir.path().join("history.json"), &cifar_types::History::default()).unwrap();
//! let run = cifar10_viz::load_run(dir.path()).unwrap();
//! let written = cifar10_viz::render_run(dir.path(), &run, cifar10_viz::Format::Png).unwrap();
//! assert_eq!(written, vec![dir.path().join("report.html")]); // nothing to chart yet
//! ```

#![warn(missing_docs)]

mod compare;
mod confusion;
mod curves;
mod encode;
mod error;
mod font;
mod report;
mod run;
mod samples;
mod text;
mod theme;

pub use compare::{
    COMPARE_FILE, COMPARE_PER_CLASS, COMPARE_VAL_ACCURACY, COMPARE_VAL_LOSS, ComparedRun,
    compare_runs, load_compared_run, thousands, write_compare_html,
};
pub use confusion::confusion_matrix;
pub use curves::{accuracy_curve, loss_curve};
pub use encode::Format;
pub use error::{Error, Result};
pub use report::{REPORT_FILE, write_report_html};
pub use run::{
    ACCURACY_CURVE, CONFIG_FILE, CONFUSION_MATRIX, CONFUSION_MATRIX_NORMALIZED,
    CORRECT_LOW_CONFIDENCE, GRID_SAMPLES, HISTORY_FILE, LOSS_CURVE, MISCLASSIFIED_SAMPLES,
    PREDICTION_PROBABILITIES, PREDICTIONS_FILE, PROBABILITY_SAMPLES, RunArtifacts,
    TEST_REPORT_FILE, chart_path, load_run, render_run,
};
pub use samples::{MAX_GRID_IMAGES, pick_probability_samples, probability_bars, sample_grid};
