//! The file names of a run directory, shared by the trainer that writes them (`train::RunDir`) and the readers
//! (`viz`, the `cifar` binary), so that each name is written down once.

/// The run's configuration (JSON).
pub const CONFIG: &str = "config.json";
/// The per-epoch [`History`](crate::History) (JSON).
pub const HISTORY: &str = "history.json";
/// The same history as CSV, one row per epoch.
pub const METRICS: &str = "metrics.csv";
/// The run's model (best validation accuracy, or the final weights without validation).
pub const BEST: &str = "best.safetensors";
/// The latest checkpoint: weights, optimizer state and progress, to resume from.
pub const LAST: &str = "last.safetensors";
/// The test-set [`TestReport`](crate::TestReport) (JSON).
pub const TEST_REPORT: &str = "test_report.json";
/// Every test image's class probabilities, [`Predictions`](crate::Predictions) (JSON).
pub const PREDICTIONS: &str = "predictions.json";
/// The HTML report with the charts.
pub const REPORT_HTML: &str = "report.html";
/// What `cifar train` measured about the run as a whole ([`RunSummary`](crate::RunSummary), JSON; optional).
pub const SUMMARY: &str = "run_summary.json";
