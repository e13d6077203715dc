use std::path::PathBuf;

/// Errors of sweeps: bad grids, bad sweep directories, unreadable run files. Each names the setting, the file or
/// the value at fault, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed (the error names the file).
    #[error(transparent)]
    Files(#[from] cifar_types::Error),
    /// A run's configuration is not a valid training configuration.
    #[error(transparent)]
    Train(#[from] train::Error),
    /// The list of seeds cannot be read or is empty.
    #[error("seeds {spec:?}: {reason}")]
    Seeds {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An override of a training setting is malformed, names no setting, or gives a value the setting cannot
    /// take.
    #[error("setting {setting:?}: {reason}")]
    Setting {
        /// The setting as written (`lr`, `augment.flip_prob`, or the whole `key=values` text when there is no
        /// key).
        setting: String,
        /// What is wrong.
        reason: String,
    },
    /// The sweep directory already holds a sweep of another grid.
    #[error("{path}: holds a sweep of another grid ({difference})")]
    OtherGrid {
        /// The existing `sweep.json`.
        path: PathBuf,
        /// What differs.
        difference: String,
    },
    /// A run index outside the sweep.
    #[error("run index {index} is out of range: the sweep has {runs} runs (indices 0 to {last})", last = runs.saturating_sub(1))]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// How many runs the sweep has.
        runs: usize,
    },
    /// A file or directory that is not what a sweep expects.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
