use crate::{Error, Result};
use predict::{Crop, DecodeLimits};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the server listens, limits and batches. [`Config::default`] is safe: loopback only, 8 MiB bodies, 30 s per
/// request, at most 256 requests in flight.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (port 0: any free port, see [`Server::local_addr`](crate::Server::local_addr)).
    pub addr: SocketAddr,
    /// How many classes a prediction lists unless the request asks (`?top_k=`).
    pub top_k: usize,
    /// The largest request body accepted, in bytes (larger ones get 413).
    pub max_body: usize,
    /// The longest a request may take, from its headers to its answer (reading the body, decoding, waiting for
    /// and running the model); later it gets 408 (body not received) or 503 (not classified in time). Also the
    /// longest a client may take to send a request's headers: then its connection is closed.
    pub timeout: Duration,
    /// The most images one forward pass takes.
    pub max_batch: usize,
    /// How long the inference thread waits for requests still being received or decoded before it runs a batch
    /// (it never waits when no other request is in flight).
    pub batch_wait: Duration,
    /// The most `/predict` requests in flight (receiving, decoding, queued or running); more get 503 at once. It
    /// bounds the memory: at most this many bodies of `max_body` bytes.
    pub max_concurrent: usize,
    /// The most images decoded at the same time (each may take up to `limits.max_decoded_bytes`).
    pub decode_threads: usize,
    /// Decoder limits against decompression bombs.
    pub limits: DecodeLimits,
    /// What happens to non-square images.
    pub crop: Crop,
    /// The run directory whose test accuracy and report the page shows [default: the checkpoint's folder].
    pub run_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            top_k: 5,
            max_body: 8 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_batch: 64,
            batch_wait: Duration::from_millis(2),
            max_concurrent: 256,
            decode_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            limits: DecodeLimits::default(),
            crop: Crop::Center,
            run_dir: None,
        }
    }
}

impl Config {
    /// Checks every setting's range; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let positive = |setting: &'static str, v: usize| {
            if v == 0 {
                Err(Error::Setting {
                    setting,
                    message: "expected at least 1, found 0".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("top_k", self.top_k)?;
        positive("max_body", self.max_body)?;
        positive("max_batch", self.max_batch)?;
        positive("max_concurrent", self.max_concurrent)?;
        positive("decode_threads", self.decode_threads)?;
        if self.timeout.is_zero() {
            return Err(Error::Setting {
                setting: "timeout",
                message: "expected a positive duration".into(),
            });
        }
        if self.batch_wait > self.timeout {
            return Err(Error::Setting {
                setting: "batch_wait",
                message: format!(
                    "{:?} is longer than the request timeout {:?}",
                    self.batch_wait, self.timeout
                ),
            });
        }
        Ok(())
    }
}
