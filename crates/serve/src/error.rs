use std::net::SocketAddr;

/// Errors of the serve crate (starting and running the server; what a client sends is answered with an HTTP
/// error, never returned here).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A setting out of range: `setting` is its [`Config`](crate::Config) field name.
    #[error("{setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
    /// The model failed its first forward pass (e.g. its outputs do not match its class names).
    #[error("the model does not run: {0}")]
    Model(#[source] predict::Error),
    /// The inference thread could not be started or ended abnormally.
    #[error("inference worker: {0}")]
    Worker(String),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
