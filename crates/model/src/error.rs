use std::path::PathBuf;

/// Errors of the model crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A candle tensor operation failed; also a `cpu-ops` shape check, or a model's own check of its arguments
    /// and inputs (e.g. a zero airbench94 width).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// No registered model has this name ([`crate::registry::build`]).
    #[error("unknown model {name:?}; available: {available}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        available: String,
    },
    /// A model was asked for fewer than two classes ([`crate::registry::build`] and every constructor).
    #[error("a classifier needs at least 2 classes, found {found}")]
    NumClasses {
        /// The number of classes asked for.
        found: usize,
    },
    /// A device spec that does not parse, names CUDA in a build without it, or cannot be opened
    /// ([`crate::device::parse`], [`crate::device::select`]).
    #[error("invalid device {spec:?}: {reason}")]
    Device {
        /// The spec as given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },
    /// A precision not available on the device or with the chosen ops ([`crate::device::kernels`]).
    #[error("precision {precision}: {reason}")]
    Precision {
        /// The precision asked for (`f32`, `bf16`).
        precision: String,
        /// Why it is refused.
        reason: String,
    },
    /// Winograd tiles asked for where the cpu-ops kernels do not run ([`crate::device::kernels`]).
    #[error("winograd {tiles}: {reason}")]
    Winograd {
        /// The tiles asked for (`off`, `f2`, `f4`).
        tiles: String,
        /// Why they are refused.
        reason: String,
    },
    /// A model refuses kernel settings ([`crate::Classifier::set_kernels`]).
    #[error("model {model}: {reason}")]
    Kernels {
        /// The model's registry name.
        model: String,
        /// Why it refuses them.
        reason: String,
    },
    /// A checkpoint cannot be read, written or used: I/O, not a safetensors file, bad or newer-format metadata,
    /// or another model than the one loading it ([`crate::checkpoint`]).
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    #[error(
        "{path}: tensor {name:?} has shape {found:?}, but model {model} expects {expected:?} (a checkpoint of another architecture?)"
    )]
    /// A checkpoint tensor's shape differs from the model's parameter or buffer of that name
    /// ([`crate::checkpoint::assign`]).
    ShapeMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The model's registry name.
        model: String,
        /// The shape of the model's tensor.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    #[error(
        "{path}: tensor {name:?} of model {model} is missing (a checkpoint of another architecture?)"
    )]
    /// A parameter or buffer of the model is absent from the checkpoint ([`crate::checkpoint::assign`]).
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The missing tensor's name.
        name: String,
        /// The model's registry name.
        model: String,
    },
    /// Writing a file failed (the atomic write of [`crate::checkpoint::write`]).
    #[error(transparent)]
    Io(#[from] cifar_types::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
