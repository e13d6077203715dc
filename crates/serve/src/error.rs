use std::net::SocketAddr;

/// Errors of the serve crate (starting and running the server; what a client sends is answered with an HTTP
/// error, never returned here).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not listen on [`Config::addr`](crate::Config::addr) (in use, not permitted, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// A setting out of range: `setting` is its [`Config`](crate::Config) field name.
    #[error("{setting}: {message}")]
    Setting {
        /// The field name (`max_body`, `timeout`, ...).
        setting: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// The model failed its first forward pass (e.g. its outputs do not match its class names).
    #[error("the model does not run: {0}")]
    Model(#[source] predict::Error),
    /// The inference thread could not be started or ended abnormally.
    #[error("inference worker: {0}")]
    Worker(String),
    /// Another I/O error of the listening socket (e.g. reading its local address).
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The result of the serve crate's fallible functions.
pub type Result<T> = std::result::Result<T, Error>;
