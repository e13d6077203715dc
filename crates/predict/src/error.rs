/// Errors of the predict crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image could not be decoded (unreadable, not an image, too large, damaged).
    #[error(transparent)]
    Image(#[from] imagefile::Error),
    /// Input pixels of the wrong size were handed to [`Session::probabilities`](crate::Session::probabilities).
    #[error("expected {expected} bytes per image (3x32x32 RGB), found {found}")]
    InputSize {
        /// Bytes an image must have: [`INPUT_BYTES`](crate::INPUT_BYTES).
        expected: usize,
        /// Bytes the offending image has.
        found: usize,
    },
    /// The model's output does not match the class names of its metadata.
    #[error("the model has {outputs} outputs but the metadata names {classes} classes")]
    ClassCount {
        /// Probabilities per image the model returned.
        outputs: usize,
        /// Class names in the checkpoint's metadata.
        classes: usize,
    },
    /// Loading the checkpoint or building its model failed (boxed: `model::Error` is large).
    #[error(transparent)]
    Model(Box<model::Error>),
    /// A candle operation failed (building the input tensor, running the model, reading the result).
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
    /// What kind of failure this is: the input's fault ([`ErrorKind::NotAnImage`], [`ErrorKind::TooLarge`],
    /// [`ErrorKind::Corrupt`]), a file read ([`ErrorKind::Io`]) or [`ErrorKind::Internal`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Image(e) => match e.kind() {
                imagefile::ErrorKind::NotAnImage => ErrorKind::NotAnImage,
                imagefile::ErrorKind::TooLarge => ErrorKind::TooLarge,
                imagefile::ErrorKind::Corrupt => ErrorKind::Corrupt,
                imagefile::ErrorKind::Io => ErrorKind::Io,
            },
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

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
