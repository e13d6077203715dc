use std::path::PathBuf;

/// Errors of the training crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(Box<model::Error>),
    #[error(transparent)]
    Augment(#[from] augment::Error),
    #[error(transparent)]
    Files(#[from] cifar_types::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A [`TrainConfig`](crate::TrainConfig) setting is out of range: `setting` is its field name (nested ones as
    /// `augment.flip_prob`), so that a front end can name its own flag.
    #[error("{setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
    #[error(
        "training diverged: the loss became {value} at epoch {epoch}, batch {batch}; stopping (the last good checkpoints are kept)"
    )]
    NonFinite {
        epoch: usize,
        batch: usize,
        value: f32,
    },
    #[error("{path}: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    OutDir { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<model::Error> for Error {
    fn from(e: model::Error) -> Self {
        Error::Model(Box::new(e))
    }
}
