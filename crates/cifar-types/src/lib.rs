//! Shared types that connect the crates (CIFAR-10, CIFAR-100, image folders: any number of classes) without
//! pulling in candle or a network stack.
//!
//! - [`ImageSet`]: u8 images `[N, 3, 32, 32]` (planar R, G, B, row-major) with their labels and class names.
//! - [`EpochMetrics`] and [`History`]: what training reports per epoch.
//! - [`ConfusionMatrix`], [`ClassReport`], [`TestReport`]: evaluation results.
//! - [`Predictions`]: per-image class probabilities, the input of the charts.
//! - [`run_files`]: the file names of a run directory.
//! - [`RunSummary`]: whole-run measurements (`run_summary.json`: wall time, peak memory, model size).
//! - [`Normalize`]: a model's input normalization.
//! - [`atomic`]: write a file under its final name only once it is complete.
//! - [`error_text`]: an error and its causes as one `error: ...` paragraph.
//! - [`html`]: text escaped for the HTML reports.
//!
//! ```
//! use cifar10_types::ConfusionMatrix;
//! let mut cm = ConfusionMatrix::new(10);
//! cm.add(3, 3);
//! cm.add(3, 5);
//! assert_eq!(cm.total(), 2);
//! assert_eq!(cm.accuracy(), 0.5);
//! ```

#![warn(missing_docs)]

pub mod atomic;
mod error;
pub mod error_text;
pub mod html;
mod images;
mod metrics;
mod normalize;
pub mod run_files;
mod summary;

pub use error::{Error, Result};
pub use images::{
    CHANNELS, CIFAR10_CLASS_NAMES, IMAGE_BYTES, IMAGE_SIDE, ImageSet, MAX_CLASSES,
    default_class_names,
};
pub use metrics::{ClassReport, ConfusionMatrix, EpochMetrics, History, Predictions, TestReport};
pub use normalize::Normalize;
pub use summary::{RUN_SUMMARY_FILE, RunSummary};
