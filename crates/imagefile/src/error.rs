/// Errors of decoding one image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// The content is not one of the supported image formats (recognised by content, not by name).
    #[error("not an image: expected PNG, JPEG, BMP, GIF, WebP or TIFF content, found {found}")]
    NotAnImage {
        /// What the content is instead: `an empty file` or `unrecognised content (N bytes)`.
        found: String,
    },
    /// The image is larger than the decoder limits allow (a decompression bomb, or simply too big).
    #[error("too large to decode safely: {detail}")]
    TooLarge {
        /// Which limit was exceeded, with the limits in force.
        detail: String,
    },
    /// The content starts like an image of `format` but does not decode (truncated, corrupt).
    #[error("cannot decode as {format}: {source}")]
    Decode {
        /// The format the content was recognised as (its `Debug` name, e.g. `Png`).
        format: String,
        /// The `image` crate's error.
        #[source]
        source: image::ImageError,
    },
    /// The file is cut short: the decoder would have filled what is missing (a JPEG's decoder fills the missing
    /// rows with grey and reports success). Refused unless [`DecodeLimits::allow_partial`](crate::DecodeLimits)
    /// is set; then the decoded [`Input`](crate::Input) carries the [`Truncation`](crate::Truncation) instead.
    #[error("{truncation}")]
    Truncated {
        /// What is missing.
        truncation: crate::Truncation,
    },
    /// The content starts like an image of `format` but its structure is damaged (found before decoding).
    #[error("cannot decode as {format}: {detail}")]
    Corrupt {
        /// The format the content was recognised as (its `Debug` name, e.g. `Tiff`).
        format: String,
        /// What is wrong.
        detail: String,
    },
    /// The image has no pixels.
    #[error("an empty image ({width}x{height} pixels)")]
    EmptyImage {
        /// Width from the image's header.
        width: u32,
        /// Height from the image's header.
        height: u32,
    },
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
}

impl Error {
    /// What kind of failure this is: the input's fault ([`ErrorKind::NotAnImage`], [`ErrorKind::TooLarge`],
    /// [`ErrorKind::Corrupt`]) or a file read ([`ErrorKind::Io`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Read(_) => ErrorKind::Io,
            Error::NotAnImage { .. } => ErrorKind::NotAnImage,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Decode { .. }
            | Error::Corrupt { .. }
            | Error::EmptyImage { .. }
            | Error::Truncated { .. } => ErrorKind::Corrupt,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
