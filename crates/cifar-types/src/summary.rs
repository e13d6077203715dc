//! `run_summary.json`: what a finished `cifar train` measured about the run as a whole (optional when reading:
//! runs of earlier versions have none).

use serde::{Deserialize, Serialize};

/// File name of the run summary inside a run directory.
pub const RUN_SUMMARY_FILE: &str = crate::run_files::SUMMARY;

/// Whole-run measurements written at the end of training. Every field is optional, so older or partial files
/// still parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSummary {
    /// The registry name of the model.
    pub model: Option<String>,
    /// Trainable parameters.
    pub parameters: Option<u64>,
    /// Forward-pass FLOPs per image (2 × multiply-adds of the convolutions and linear layers).
    pub flops_per_image: Option<u64>,
    /// Wall-clock seconds of the whole `train` command up to the test report (data loading, every epoch,
    /// validation and test evaluation).
    pub wall_secs: Option<f64>,
    /// Peak resident memory of the process, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Threads of the CPU kernels.
    pub threads: Option<usize>,
}
