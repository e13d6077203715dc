use std::path::PathBuf;

/// Everything that can go wrong while drawing charts or reading a run directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// plotters failed while drawing a chart.
    #[error("{path}: drawing the chart failed: {message}")]
    Draw {
        /// The chart file being written.
        path: PathBuf,
        /// plotters' error message.
        message: String,
    },
    /// The rendered bitmap could not be encoded as PNG.
    #[error("{path}: PNG encoding failed: {source}")]
    Png {
        /// The chart file being written.
        path: PathBuf,
        /// The PNG encoder's error.
        #[source]
        source: png::EncodingError,
    },
    /// The chart has nothing to show (an empty history, no samples to draw...).
    #[error("{chart}: nothing to draw: {reason}")]
    NoData {
        /// The chart (e.g. `loss curve`).
        chart: String,
        /// What is missing.
        reason: String,
    },
    /// Inputs that do not fit together (matrix not square, index out of range, ...).
    #[error("{0}")]
    Invalid(String),
    /// The bundled font could not be parsed (a broken build).
    #[error("the bundled DejaVu Sans font could not be loaded")]
    Font,
    /// A run directory that cannot be used.
    #[error("run directory {path}: {reason}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be used (missing, or lacking a required file).
        reason: String,
    },
    /// File I/O and JSON errors from the shared types (they name the file).
    #[error(transparent)]
    Types(#[from] cifar_types::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn no_data(chart: &str, reason: impl Into<String>) -> Self {
        Error::NoData {
            chart: chart.to_string(),
            reason: reason.into(),
        }
    }
}
