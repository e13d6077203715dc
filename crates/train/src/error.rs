use std::path::PathBuf;

/// Errors of the training crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error of the `model` crate (building, running, reading or writing a model), boxed.
    #[error(transparent)]
    Model(Box<model::Error>),
    /// The augmentation or the batch loader failed.
    #[error(transparent)]
    Augment(#[from] augment::Error),
    /// A run file could not be read or written (the error names it), or data was inconsistent (e.g. the
    /// predictions).
    #[error(transparent)]
    Files(#[from] cifar_types::Error),
    /// The config, the data and the trainer's pieces do not fit together (e.g. fewer training images than one
    /// batch, resuming without a run directory).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A [`TrainConfig`](crate::TrainConfig) setting is out of range: `setting` is its field name (nested ones as
    /// `augment.flip_prob`), so that a front end can name its own flag.
    #[error("{setting}: {message}")]
    Setting {
        /// The field name.
        setting: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// The training loss became NaN or infinite: the run stops, and the checkpoints already written are kept.
    #[error(
        "training diverged: the loss became {value} at epoch {epoch}, batch {batch}; stopping (the last good checkpoints are kept)"
    )]
    NonFinite {
        /// The epoch (1-based).
        epoch: usize,
        /// The batch of the epoch (0-based).
        batch: usize,
        /// The batch's mean loss.
        value: f32,
    },
    /// `last.safetensors` cannot be resumed from (its training state, optimizer state or weight average is missing
    /// or does not match), or the training state cannot be written into it.
    #[error("{path}: {reason}")]
    Resume {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The run directory cannot take a new run: it already holds one, or cannot be created or written to.
    #[error("{path}: {reason}")]
    OutDir {
        /// The run directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl From<model::Error> for Error {
    fn from(e: model::Error) -> Self {
        Error::Model(Box::new(e))
    }
}
