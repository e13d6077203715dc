//! `fetch`: make sure the extracted data set is in the data dir, downloading or extracting as needed.

use crate::download::{Checksum, DownloadOptions, download_to, part_path, verify_all};
use crate::extract::extract_archive_with;
use crate::layout::{Dataset, Layout};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The official CIFAR-10 binary archive.
pub const OFFICIAL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// md5 of the archive at [`OFFICIAL_URL`].
pub const OFFICIAL_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Name under which a downloaded archive is kept in the data dir.
pub const ARCHIVE_NAME: &str = "cifar-10-binary.tar.gz";
/// The official CIFAR-100 binary archive.
pub const CIFAR100_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
/// md5 of the archive at [`CIFAR100_URL`].
pub const CIFAR100_MD5: &str = "03b5dce01913d631647c71ecec9e9cb8";
/// Name under which a downloaded CIFAR-100 archive is kept in the data dir.
pub const CIFAR100_ARCHIVE_NAME: &str = "cifar-100-binary.tar.gz";
/// The environment variable applications read a mirror URL from ([`url_from_env`]); this library never reads it
/// on its own.
pub const URL_ENV: &str = "CIFAR10_URL";
/// Retries used when [`FetchOptions::retries`] is 0.
pub const DEFAULT_RETRIES: u32 = 4;

/// What [`fetch`] should do.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Download from this URL (`None`: [`OFFICIAL_URL`]).
    pub url: Option<String>,
    /// Extract this local archive instead of downloading (exclusive with `url`).
    pub from: Option<PathBuf>,
    /// Expected sha256 (hex) of the archive, checked for any source.
    pub sha256: Option<String>,
    /// Download (or extract) again even when valid data is present; a kept archive is not reused.
    pub force: bool,
    /// Retries of a failed download (0 = [`DEFAULT_RETRIES`]).
    pub retries: u32,
    /// The data set to fetch ([`fetch`] builds its [`FetchConfig`] from it; [`fetch_with`] checks it matches).
    pub dataset: Dataset,
}

impl Dataset {
    /// The official download address.
    pub const fn official_url(self) -> &'static str {
        match self {
            Dataset::Cifar10 => OFFICIAL_URL,
            Dataset::Cifar100 => CIFAR100_URL,
        }
    }

    /// md5 of the official archive.
    pub const fn official_md5(self) -> &'static str {
        match self {
            Dataset::Cifar10 => OFFICIAL_MD5,
            Dataset::Cifar100 => CIFAR100_MD5,
        }
    }

    /// The name a downloaded archive is kept under in the data dir.
    pub const fn archive_name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => ARCHIVE_NAME,
            Dataset::Cifar100 => CIFAR100_ARCHIVE_NAME,
        }
    }
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Valid extracted data was already there; nothing was touched.
    AlreadyPresent,
    /// The archive was downloaded from `url`, verified and extracted.
    Downloaded {
        /// The URL the archive came from.
        url: String,
    },
    /// A local archive ([`FetchOptions::from`], or the archive kept from an earlier download) was verified and
    /// extracted.
    Extracted {
        /// The archive that was extracted.
        from: PathBuf,
    },
}

/// Lower-level knobs of [`fetch_with`], for tests and unusual setups.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Expected shape of the extracted files.
    pub layout: Layout,
    /// The URL whose archive is checked against `official_md5`.
    pub official_url: String,
    /// md5 the archive of `official_url` must have.
    pub official_md5: String,
    /// Delay before the first download retry (doubles each time).
    pub retry_base_delay: Duration,
}

impl Default for FetchConfig {
    /// CIFAR-10's ([`FetchConfig::for_dataset`]).
    fn default() -> Self {
        Self::for_dataset(Dataset::Cifar10)
    }
}

impl FetchConfig {
    /// The official layout, URL and md5 of `dataset`, with a 1 s first retry delay.
    pub fn for_dataset(dataset: Dataset) -> Self {
        Self {
            layout: Layout::official(dataset),
            official_url: dataset.official_url().to_string(),
            official_md5: dataset.official_md5().to_string(),
            retry_base_delay: Duration::from_secs(1),
        }
    }
}

/// Makes sure `<data_dir>/cifar-10-batches-bin` holds the CIFAR-10 binary version (`opts.dataset`:
/// `<data_dir>/cifar-100-binary` the CIFAR-100 one, from its own official URL and md5).
///
/// Idempotent: when valid data is present and `!opts.force`, returns [`FetchOutcome::AlreadyPresent`] without
/// touching anything. Otherwise extracts `opts.from`, or downloads from `opts.url` /
/// [`OFFICIAL_URL`] into `<data_dir>/cifar-10-binary.tar.gz` (kept, so that a later run without `force` can
/// re-extract it without downloading) and extracts it. The official URL's archive must match
/// [`OFFICIAL_MD5`]; any source must match `opts.sha256` when given; every source is checked by structure
/// during extraction. `progress(bytes_done, total)` follows the download.
///
/// ```no_run
/// use cifar10_dataset::{FetchOptions, FetchOutcome, fetch};
/// let opts = FetchOptions { from: Some("cifar-10-binary.tar.gz".into()), ..Default::default() };
/// match fetch("data".as_ref(), &opts, &mut |_, _| {})? {
///     FetchOutcome::AlreadyPresent => println!("already there"),
///     other => println!("{other:?}"),
/// }
/// let data = cifar10_dataset::load("data".as_ref())?;
/// assert_eq!(data.train.len(), 50_000);
/// # Ok::<(), cifar10_dataset::Error>(())
/// ```
pub fn fetch(
    data_dir: &Path,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<FetchOutcome> {
    fetch_with(
        data_dir,
        opts,
        &FetchConfig::for_dataset(opts.dataset),
        progress,
    )
}

/// [`fetch`] with explicit [`FetchConfig`]. On failure a `data_dir` this call created is removed again when
/// nothing is left in it (a partial download, kept for a later resume, keeps it).
pub fn fetch_with(
    data_dir: &Path,
    opts: &FetchOptions,
    cfg: &FetchConfig,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<FetchOutcome> {
    let created = std::fs::symlink_metadata(data_dir).is_err();
    let result = fetch_inner(data_dir, opts, cfg, progress);
    if result.is_err() && created {
        // Only succeeds on an empty directory.
        let _ = std::fs::remove_dir(data_dir);
    }
    result
}

fn fetch_inner(
    data_dir: &Path,
    opts: &FetchOptions,
    cfg: &FetchConfig,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<FetchOutcome> {
    let dataset = cfg.layout.dataset;
    if opts.dataset != dataset {
        return Err(Error::InvalidArgument {
            name: "dataset",
            message: format!(
                "the options ask for {} but the fetch configuration's layout is {}",
                opts.dataset, dataset
            ),
        });
    }
    if opts.url.is_some() && opts.from.is_some() {
        return Err(Error::InvalidArgument {
            name: "from",
            message: "give either a URL to download or a local archive, not both".into(),
        });
    }
    let sha256 = opts.sha256.as_deref().map(normalize_sha256).transpose()?;
    match cfg.layout.check(data_dir) {
        Ok(()) if !opts.force => {
            tracing::info!(dir = %data_dir.display(), "{dataset} already present");
            return Ok(FetchOutcome::AlreadyPresent);
        }
        Ok(()) => {}
        // Damaged data: say what is wrong before replacing it.
        Err(e) if data_dir.join(dataset.dir()).exists() => {
            tracing::info!("the extracted {dataset} is damaged ({e}); fetching it again");
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;

    if let Some(from) = &opts.from {
        std::fs::metadata(from).map_err(|e| Error::io(from, e))?;
        if let Some(sha) = &sha256 {
            // A mismatch leaves the user's file alone and extracts nothing.
            verify_all(
                from,
                &[Checksum::Sha256(sha.clone())],
                &from.display().to_string(),
            )?;
        }
        extract_archive_with(from, data_dir, cfg.layout)?;
        return Ok(FetchOutcome::Extracted { from: from.clone() });
    }

    let url = opts.url.clone().unwrap_or_else(|| cfg.official_url.clone());
    let mut checks = Vec::new();
    if url == cfg.official_url {
        checks.push(Checksum::Md5(cfg.official_md5.clone()));
    }
    if let Some(sha) = sha256 {
        checks.push(Checksum::Sha256(sha));
    }
    let archive = data_dir.join(dataset.archive_name());

    if opts.force {
        remove_quietly(&archive);
        remove_quietly(&part_path(&archive));
    } else if archive.is_file() {
        tracing::info!(archive = %archive.display(), "re-extracting the kept archive (the `force` option downloads it again)");
        let reused = verify_all(&archive, &checks, &archive.display().to_string())
            .and_then(|()| extract_archive_with(&archive, data_dir, cfg.layout));
        match reused {
            Ok(_) => return Ok(FetchOutcome::Extracted { from: archive }),
            Err(e) => {
                tracing::warn!("kept archive is not usable ({e}); downloading again");
                remove_quietly(&archive);
            }
        }
    }

    let dl = DownloadOptions {
        attempts: if opts.retries == 0 {
            DEFAULT_RETRIES
        } else {
            opts.retries
        } + 1,
        base_delay: cfg.retry_base_delay,
        expected: checks,
        ..Default::default()
    };
    tracing::info!(url, dest = %archive.display(), "downloading {dataset}");
    download_to(&url, &archive, &dl, progress)?;
    if let Err(e) = extract_archive_with(&archive, data_dir, cfg.layout) {
        if !matches!(e, Error::Io { .. }) {
            // The content is wrong: do not keep it for a later re-extraction.
            remove_quietly(&archive);
        }
        return Err(e);
    }
    Ok(FetchOutcome::Downloaded { url })
}

/// `url`, else [`OFFICIAL_URL`]. (Applications may read a mirror from the environment variable [`URL_ENV`];
/// this library reads no environment.)
pub fn resolve_url(url: Option<&str>) -> String {
    url.map(str::to_string)
        .unwrap_or_else(|| OFFICIAL_URL.to_string())
}

/// A non-empty value of the environment variable [`URL_ENV`], for applications that offer it as a default.
/// (A function the application calls: the library itself never reads it.)
pub fn url_from_env() -> Option<String> {
    std::env::var(URL_ENV).ok().filter(|u| !u.trim().is_empty())
}

fn normalize_sha256(hex: &str) -> Result<String> {
    let h = hex.trim().to_ascii_lowercase();
    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidArgument {
            name: "sha256",
            message: format!("expected 64 hex digits, got {hex:?}"),
        });
    }
    Ok(h)
}

fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "cannot remove: {e}"),
    }
}
