/// Errors of the predict crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// The content is not one of the supported image formats (recognised by content, not by name).
    #[error("not an image: expected PNG, JPEG, BMP, GIF, WebP or TIFF content, found {found}")]
    NotAnImage { found: String },
    /// The image is larger than the decoder limits allow (a decompression bomb, or simply too big).
    #[error("too large to decode safely: {detail}")]
    TooLarge { detail: String },
    /// The content starts like an image of `format` but does not decode (truncated, corrupt).
    #[error("cannot decode as {format}: {source}")]
    Decode {
        format: String,
        #[source]
        source: image::ImageError,
    },
    /// The image has no pixels.
    #[error("an empty image ({width}x{height} pixels)")]
    EmptyImage { width: u32, height: u32 },
    /// Input pixels of the wrong size were handed to [`Session::probabilities`](crate::Session::probabilities).
    #[error("expected {expected} bytes per image (3x32x32 RGB), found {found}")]
    InputSize { expected: usize, found: usize },
    /// The model's output does not match the class names of its metadata.
    #[error("the model has {outputs} outputs but the metadata names {classes} classes")]
    ClassCount { outputs: usize, classes: usize },
    /// Loading the checkpoint or building its model failed (boxed: `model::Error` is large).
    #[error(transparent)]
    Model(Box<model::Error>),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// What kind of failure an [`Error`] is, for front ends that answer a client (e.g. an HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is not an image of a supported format.
    NotAnImage,
    /// The image exceeds the decoder limits.
    TooLarge,
    /// The image is damaged (truncated, corrupt) or empty.
    Corrupt,
    /// Reading a file failed.
    Io,
    /// A problem of the model or the machine, not of the input.
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Read(_) => ErrorKind::Io,
            Error::NotAnImage { .. } => ErrorKind::NotAnImage,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Decode { .. } | Error::EmptyImage { .. } => ErrorKind::Corrupt,
            Error::InputSize { .. }
            | Error::ClassCount { .. }
            | Error::Model(_)
            | Error::Candle(_) => ErrorKind::Internal,
        }
    }
}

impl From<model::Error> for Error {
    fn from(e: model::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, Error>;
