use std::path::PathBuf;

/// Errors of the model crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("unknown model {name:?}; available: {available}")]
    UnknownModel { name: String, available: String },
    #[error("invalid device {spec:?}: {reason}")]
    Device { spec: String, reason: String },
    #[error("precision {precision}: {reason}")]
    Precision { precision: String, reason: String },
    #[error("model {model}: {reason}")]
    Kernels { model: String, reason: String },
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error(
        "{path}: tensor {name:?} has shape {found:?}, but model {model} expects {expected:?} (a checkpoint of another architecture?)"
    )]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        model: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "{path}: tensor {name:?} of model {model} is missing (a checkpoint of another architecture?)"
    )]
    MissingTensor {
        path: PathBuf,
        name: String,
        model: String,
    },
    #[error(transparent)]
    Io(#[from] cifar_types::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
