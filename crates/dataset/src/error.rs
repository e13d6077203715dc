use std::path::PathBuf;

/// Everything that can go wrong while fetching, extracting, decoding or splitting CIFAR-10.
///
/// Every variant names the file, URL or argument involved, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered with an HTTP error status (4xx are never retried; 5xx only after the retries ran out).
    #[error("download of {url} failed: HTTP {status} (after {attempts} attempt(s))")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code of the last answer.
        status: u16,
        /// Attempts made (1 for a status that is not retried).
        attempts: u32,
    },
    /// The network failed (connect error, timeout, body cut off) and the retries ran out.
    #[error("download of {url} failed after {attempts} attempt(s): {message}")]
    Network {
        /// The URL requested.
        url: String,
        /// Attempts made (0 when the HTTP client could not even be created).
        attempts: u32,
        /// What went wrong on the last attempt.
        message: String,
    },
    /// A downloaded or supplied file does not have the expected checksum. A downloaded file has been removed; a
    /// file the caller supplied (`verify_file`, `verify_all`, `FetchOptions::from`) is left alone.
    #[error("{what}: {algorithm} mismatch: expected {expected}, found {found}")]
    ChecksumMismatch {
        /// The source checked: a URL or a file's path.
        what: String,
        /// `md5` or `sha256`.
        algorithm: &'static str,
        /// The expected digest, lowercase hex.
        expected: String,
        /// The file's digest, lowercase hex.
        found: String,
    },
    /// The archive cannot be read (not gzip, truncated, corrupt) or its content is not what was expected.
    #[error("archive {path}: {message}")]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The archive holds a member that would be unsafe to extract (path escape, link, device).
    #[error("archive {path}: refusing unsafe member {member:?}: {reason}")]
    UnsafeMember {
        /// The archive file.
        path: PathBuf,
        /// The member's name as stored in the archive (invalid UTF-8 replaced).
        member: String,
        /// Why it is refused (e.g. absolute path, `..`, a link where a file is expected).
        reason: String,
    },
    /// An expected member is missing from the archive.
    #[error("archive {path}: missing member {member}")]
    MissingMember {
        /// The archive file.
        path: PathBuf,
        /// The missing member, e.g. `cifar-10-batches-bin/test_batch.bin`.
        member: String,
    },
    /// A batch file or the class-name file is malformed.
    #[error("{file}: {message}")]
    Decode {
        /// The file: its path, or the `name` handed to `decode_batch` / `parse_class_names`.
        file: String,
        /// What is malformed (size, label, line count, encoding).
        message: String,
    },
    /// A required extracted file is missing.
    #[error("{path}: missing (CIFAR-10 is not extracted there: fetch it first)")]
    MissingFile {
        /// The expected file.
        path: PathBuf,
    },
    /// A caller-supplied argument is out of range or malformed.
    #[error("invalid argument {name}: {message}")]
    InvalidArgument {
        /// The argument or option, e.g. `url`, `sha256`, `val_fraction`.
        name: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// An image folder's layout is not usable: a missing `train/` or `test/`, a split without class folders, a
    /// class folder without images, a test or validation class that training lacks, too many classes.
    #[error("{path}: {message}")]
    Folder {
        /// The folder (or data root) concerned.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// Image files of an image folder could not be decoded (and skipping bad images was not asked for).
    #[error("{}", bad_images_text(images))]
    BadImages {
        /// Each bad file with the reason it could not be decoded, in path order.
        images: Vec<(PathBuf, String)>,
    },
    /// An image set could not be built.
    #[error(transparent)]
    Types(#[from] cifar_types::Error),
}

/// The message of [`Error::BadImages`]: the count, the first few files with their reasons, and the way out.
fn bad_images_text(images: &[(PathBuf, String)]) -> String {
    const SHOWN: usize = 5;
    let mut s = format!("{} image file(s) cannot be decoded: ", images.len());
    let listed: Vec<String> = images
        .iter()
        .take(SHOWN)
        .map(|(p, r)| format!("{}: {r}", p.display()))
        .collect();
    s.push_str(&listed.join("; "));
    if images.len() > SHOWN {
        s.push_str(&format!("; and {} more", images.len() - SHOWN));
    }
    s.push_str(" (fix or remove them, or set skip_bad_images to leave them out)");
    s
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
