use std::path::PathBuf;

/// Everything that can go wrong while fetching, extracting, decoding or splitting CIFAR-10.
///
/// Every variant names the file, URL or argument involved, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server answered with an HTTP error status (4xx are never retried; 5xx only after the retries ran out).
    #[error("download of {url} failed: HTTP {status} (after {attempts} attempt(s))")]
    HttpStatus {
        url: String,
        status: u16,
        attempts: u32,
    },
    /// The network failed (connect error, timeout, body cut off) and the retries ran out.
    #[error("download of {url} failed after {attempts} attempt(s): {message}")]
    Network {
        url: String,
        attempts: u32,
        message: String,
    },
    /// A downloaded or supplied file does not have the expected checksum; the file has been removed.
    #[error("{what}: {algorithm} mismatch: expected {expected}, found {found}")]
    ChecksumMismatch {
        what: String,
        algorithm: &'static str,
        expected: String,
        found: String,
    },
    /// The archive cannot be read (not gzip, truncated, corrupt) or its content is not what was expected.
    #[error("archive {path}: {message}")]
    Archive { path: PathBuf, message: String },
    /// The archive holds a member that would be unsafe to extract (path escape, link, device).
    #[error("archive {path}: refusing unsafe member {member:?}: {reason}")]
    UnsafeMember {
        path: PathBuf,
        member: String,
        reason: String,
    },
    /// An expected member is missing from the archive.
    #[error("archive {path}: missing member {member}")]
    MissingMember { path: PathBuf, member: String },
    /// A batch file or the class-name file is malformed.
    #[error("{file}: {message}")]
    Decode { file: String, message: String },
    /// A required extracted file is missing.
    #[error("{path}: missing (CIFAR-10 is not extracted there: fetch it first)")]
    MissingFile { path: PathBuf },
    /// A caller-supplied argument is out of range or malformed.
    #[error("invalid argument {name}: {message}")]
    InvalidArgument { name: &'static str, message: String },
    /// An image set could not be built.
    #[error(transparent)]
    Types(#[from] cifar_types::Error),
}

/// Result alias of the dataset crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn decode(file: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Decode {
            file: file.into(),
            message: message.into(),
        }
    }

    #[cfg(feature = "download")]
    pub(crate) fn archive(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Archive {
            path: path.into(),
            message: message.into(),
        }
    }
}
