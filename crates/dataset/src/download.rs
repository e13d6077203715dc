//! HTTP download with progress, retries with exponential backoff, `Range` resume and checksum verification.

use crate::{Error, Result};
use md5::Md5;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An expected checksum of a file, as lowercase or uppercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// An md5 digest (32 hex digits).
    Md5(String),
    /// A sha256 digest (64 hex digits).
    Sha256(String),
}

impl Checksum {
    fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "md5",
            Checksum::Sha256(_) => "sha256",
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Md5(h) | Checksum::Sha256(h) => h,
        }
    }
}

/// How [`download_to`] retries and what it verifies.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Total attempts (at least 1) for transient failures: connect errors, a body cut off, HTTP 5xx.
    pub attempts: u32,
    /// Delay before the first retry; doubled on each further retry, capped at `max_delay`.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Longest wait for the connection, the response head or any single read of the body.
    pub read_timeout: Duration,
    /// Checksums the complete file must match before it is renamed into place.
    pub expected: Vec<Checksum>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            expected: Vec::new(),
        }
    }
}

/// The temporary file a download of `dest` streams into: `<dest>.part`, beside `dest`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest`: streams into `<dest>.part` calling `progress(bytes_done, total)`, retries
/// transient failures with exponential backoff, resumes a partial `.part` (also one left by an earlier run) with
/// `Range: bytes=N-` when the server answers 206 (restarting from 0 on 200), verifies every `opts.expected`
/// checksum, then renames the file into place.
///
/// HTTP 4xx errors are not retried. On a checksum mismatch neither `.part` nor `dest` is left behind.
///
/// ```no_run
/// use cifar10_dataset::{Checksum, DownloadOptions, download_to};
/// let opts = DownloadOptions {
///     expected: vec![Checksum::Md5(cifar10_dataset::OFFICIAL_MD5.into())],
///     ..Default::default()
/// };
/// download_to(cifar10_dataset::OFFICIAL_URL, "data/cifar-10-binary.tar.gz".as_ref(), &opts, &mut |done, total| {
///     eprintln!("{done} / {total:?}");
/// })?;
/// # Ok::<(), cifar10_dataset::Error>(())
/// ```
pub fn download_to(
    url: &str,
    dest: &Path,
    opts: &DownloadOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<()> {
    let client = build_client(url, opts)?;
    let part = part_path(dest);
    let resumed_old_part = part.is_file();
    download_part(&client, url, &part, opts, progress)?;
    if let Err(e) = verify_all(&part, &opts.expected, url) {
        remove_if_exists(&part)?;
        if !resumed_old_part {
            return Err(e);
        }
        // The partial file came from an earlier run and may belong to another file: start over once.
        tracing::warn!(
            "{e}; the resumed partial file was stale, downloading {url} again from the start"
        );
        download_part(&client, url, &part, opts, progress)?;
        if let Err(e) = verify_all(&part, &opts.expected, url) {
            remove_if_exists(&part)?;
            return Err(e);
        }
    }
    std::fs::rename(&part, dest).map_err(|e| Error::io(dest, e))?;
    tracing::info!(url, dest = %dest.display(), "download complete");
    Ok(())
}

fn build_client(url: &str, opts: &DownloadOptions) -> Result<Client> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::InvalidArgument {
        name: "url",
        message: format!("{url:?} is not a valid URL: {e}"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::InvalidArgument {
            name: "url",
            message: format!(
                "{url:?}: only http and https are supported (a local archive is extracted, not downloaded)"
            ),
        });
    }
    let loopback = parsed.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    let mut builder = Client::builder()
        .timeout(opts.read_timeout)
        .connect_timeout(opts.read_timeout)
        .user_agent(concat!("cifar10-dataset/", env!("CARGO_PKG_VERSION")));
    if loopback {
        // A proxy from the environment cannot reach this machine's loopback interface.
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| Error::Network {
        url: url.to_string(),
        attempts: 0,
        message: format!("cannot create the HTTP client: {e}"),
    })
}

/// One failed attempt: either worth retrying or final.
enum Failure {
    Transient {
        message: String,
        status: Option<u16>,
    },
    Fatal(Error),
}

fn download_part(
    client: &Client,
    url: &str,
    part: &Path,
    opts: &DownloadOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<()> {
    let attempts = opts.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_once(client, url, part, progress) {
            Ok(()) => return Ok(()),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient { message, status }) => {
                if attempt >= attempts {
                    return Err(match status {
                        Some(status) => Error::HttpStatus {
                            url: url.to_string(),
                            status,
                            attempts,
                        },
                        None => Error::Network {
                            url: url.to_string(),
                            attempts,
                            message,
                        },
                    });
                }
                let delay = backoff(opts, attempt);
                tracing::warn!(url, attempt, attempts, "{message}; retrying in {delay:?}");
                std::thread::sleep(delay);
            }
        }
    }
}

fn backoff(opts: &DownloadOptions, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    opts.base_delay.saturating_mul(factor).min(opts.max_delay)
}

fn attempt_once(
    client: &Client,
    url: &str,
    part: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> std::result::Result<(), Failure> {
    let fatal_io = |e: std::io::Error| Failure::Fatal(Error::io(part, e));
    let offset = match std::fs::metadata(part) {
        Ok(md) => md.len(),
        Err(_) => 0,
    };
    let mut request = client.get(url);
    if offset > 0 {
        tracing::info!(url, offset, "resuming partial download");
        request = request.header(RANGE, format!("bytes={offset}-"));
    }
    let mut response = request.send().map_err(|e| request_failure(url, e))?;
    let status = response.status();
    let content_length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let content_range = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(parse_content_range);

    let (mut file, mut done, total) = match status {
        StatusCode::PARTIAL_CONTENT if offset > 0 => match content_range {
            Some(Some((Some(start), total))) if start == offset => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(part)
                    .map_err(fatal_io)?;
                (file, offset, total.or(content_length.map(|l| l + offset)))
            }
            _ => {
                remove_if_exists(part).map_err(Failure::Fatal)?;
                return Err(Failure::Transient {
                    message: format!(
                        "206 answer does not start at byte {offset}; restarting from 0"
                    ),
                    status: None,
                });
            }
        },
        StatusCode::OK => {
            if offset > 0 {
                tracing::info!(url, "server does not support resuming; restarting from 0");
            }
            (File::create(part).map_err(fatal_io)?, 0, content_length)
        }
        StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
            if let Some(Some((None, Some(total)))) = content_range
                && total == offset
            {
                // The partial file is already complete.
                progress(offset, Some(total));
                return Ok(());
            }
            remove_if_exists(part).map_err(Failure::Fatal)?;
            return Err(Failure::Transient {
                message: "partial file does not fit the remote file; restarting from 0".to_string(),
                status: None,
            });
        }
        s if s.is_server_error() => {
            return Err(Failure::Transient {
                message: format!("HTTP {s}"),
                status: Some(s.as_u16()),
            });
        }
        s => {
            return Err(Failure::Fatal(Error::HttpStatus {
                url: url.to_string(),
                status: s.as_u16(),
                attempts: 1,
            }));
        }
    };

    progress(done, total);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                file.write_all(&buf[..n]).map_err(fatal_io)?;
                done += n as u64;
                progress(done, total);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(fatal_io)?;
                return Err(Failure::Transient {
                    message: format!("connection lost after {done} bytes: {e}"),
                    status: None,
                });
            }
        }
    }
    file.sync_all().map_err(fatal_io)?;
    match total {
        Some(t) if done < t => Err(Failure::Transient {
            message: format!("body cut off after {done} of {t} bytes"),
            status: None,
        }),
        Some(t) if done > t => {
            remove_if_exists(part).map_err(Failure::Fatal)?;
            Err(Failure::Transient {
                message: format!("received {done} bytes but {t} were announced; restarting"),
                status: None,
            })
        }
        _ => Ok(()),
    }
}

fn request_failure(url: &str, e: reqwest::Error) -> Failure {
    let e = e.without_url();
    if e.is_builder() {
        return Failure::Fatal(Error::InvalidArgument {
            name: "url",
            message: format!("{url}: {e}"),
        });
    }
    // Include the cause chain: reqwest's top-level message alone is often just "error sending request".
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    Failure::Transient {
        message,
        status: None,
    }
}

/// Parses `bytes START-END/TOTAL` or `bytes */TOTAL` into `(start, total)`; `None` if malformed.
fn parse_content_range(v: &str) -> Option<(Option<u64>, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let start = match range.trim() {
        "*" => None,
        r => Some(r.split_once('-')?.0.trim().parse().ok()?),
    };
    Some((start, total))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn hash_file<D: Digest>(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Lowercase hex md5 of a file.
pub fn md5_file(path: &Path) -> Result<String> {
    hash_file::<Md5>(path)
}

/// Lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    hash_file::<Sha256>(path)
}

/// Checks one checksum of `path`; `what` names the source in the error (a URL or the file itself).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("f");
/// std::fs::write(&p, b"abc").unwrap();
/// let md5 = cifar10_dataset::Checksum::Md5("900150983cd24fb0d6963f7d28e17f72".into());
/// cifar10_dataset::verify_file(&p, &md5, "f").unwrap();
/// let bad = cifar10_dataset::Checksum::Sha256("00".repeat(32));
/// assert!(cifar10_dataset::verify_file(&p, &bad, "f").is_err());
/// ```
pub fn verify_file(path: &Path, checksum: &Checksum, what: &str) -> Result<()> {
    let found = match checksum {
        Checksum::Md5(_) => md5_file(path)?,
        Checksum::Sha256(_) => sha256_file(path)?,
    };
    if found.eq_ignore_ascii_case(checksum.expected().trim()) {
        tracing::debug!(path = %path.display(), algorithm = checksum.algorithm(), "checksum ok");
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            what: what.to_string(),
            algorithm: checksum.algorithm(),
            expected: checksum.expected().to_ascii_lowercase(),
            found,
        })
    }
}

/// Checks every checksum of `path`.
pub fn verify_all(path: &Path, checksums: &[Checksum], what: &str) -> Result<()> {
    checksums
        .iter()
        .try_for_each(|c| verify_file(path, c, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((Some(10), Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((Some(10), None)));
        assert_eq!(parse_content_range("bytes */100"), Some((None, Some(100))));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let o = DownloadOptions {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..Default::default()
        };
        assert_eq!(backoff(&o, 1), Duration::from_millis(100));
        assert_eq!(backoff(&o, 2), Duration::from_millis(200));
        assert_eq!(backoff(&o, 3), Duration::from_millis(350));
        assert_eq!(backoff(&o, 40), Duration::from_millis(350));
    }

    #[test]
    fn part_path_is_beside_target() {
        assert_eq!(
            part_path(Path::new("d/cifar.tar.gz")),
            PathBuf::from("d/cifar.tar.gz.part")
        );
    }
}
