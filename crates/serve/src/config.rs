use crate::{Error, Result};
use predict::{Crop, DecodeLimits};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The most bytes an image may need to decode (`predict::footprint`) and still count as small: decoded at once
/// on one of the `decode_threads`, never behind the large ones ([`Config::decode_memory`]).
pub const SMALL_DECODE: u64 = 16 * 1024 * 1024;

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
    /// The most small images decoded at the same time (each needs at most [`SMALL_DECODE`] bytes; a 2-megapixel
    /// RGB photo is small).
    pub decode_threads: usize,
    /// The most bytes the large images decoded at the same time may take together, each counted by what its
    /// header says decoding it takes (`predict::footprint`: pixels, working buffers, the encoded bytes; at most
    /// `limits.max_decoded_bytes`). A large image waits for its share (until the request's deadline: then 503);
    /// small images and the other routes never wait behind it. The default, `limits.max_decoded_bytes`, decodes
    /// one maximal image at a time: the server's decoding peak is about this plus `decode_threads` x
    /// [`SMALL_DECODE`].
    pub decode_memory: u64,
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
            decode_memory: DecodeLimits::default().max_decoded_bytes,
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
        if self.decode_memory < 1024 * 1024 {
            return Err(Error::Setting {
                setting: "decode_memory",
                message: format!(
                    "expected at least 1 MiB, found {} bytes",
                    self.decode_memory
                ),
            });
        }
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
