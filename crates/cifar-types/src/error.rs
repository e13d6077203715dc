use std::path::PathBuf;

/// Errors of the shared types: file I/O and (de)serialisation, always naming the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or renaming a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (or, when the temporary file cannot be created, its directory).
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value could not be serialised to JSON, or a file's content is not the expected JSON.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file being written or read.
        path: PathBuf,
        /// The serde_json error (with line and column when reading).
        #[source]
        source: serde_json::Error,
    },
    /// Inconsistent data handed to a constructor (e.g. pixel bytes that do not match the labels, a label not
    /// below the number of classes, a non-square confusion matrix); the message says which.
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] naming `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
