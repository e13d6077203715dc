//! Image data sets for small classifiers: CIFAR-10 and CIFAR-100 (download with progress, retries, resume and
//! checksums; safe extraction; fast decoding into [`ImageSet`]s; CIFAR-100's fine or coarse labels), a user's
//! own image folders (feature `folder`), and seeded train/validation splits.
//!
//! Download and extraction (`fetch`, `download_to`, `extract_archive`, `DownloadBar`, with reqwest, tokio,
//! flate2, tar and indicatif) are behind the default-on cargo feature `download`; a project that only decodes
//! local files can depend on `dataset` with `default-features = false`.
//!
//! Image-folder data sets (a user's pictures in `ROOT/{train,test,val}/<class>/`: `load_folder`, see the
//! `folder` module), decoded by `cifar10-imagefile` like `predict` decodes a picture, in parallel, with a cache, are
//! behind the default-on cargo feature `folder`.
//!
//! ```no_run
//! use std::path::Path;
//! let dir = Path::new("data");
//! cifar10_dataset::fetch(dir, &cifar10_dataset::FetchOptions::default(), &mut |_, _| {})?;
//! let data = cifar10_dataset::load(dir)?;
//! let (train, val) = cifar10_dataset::split(&data.train, 0.1, 42, true)?;
//! assert_eq!((train.len(), val.len(), data.test.len()), (45_000, 5_000, 10_000));
//! # Ok::<(), cifar10_dataset::Error>(())
//! ```

#![warn(missing_docs)]

mod decode;
#[cfg(feature = "download")]
mod download;
mod error;
#[cfg(feature = "download")]
mod extract;
#[cfg(feature = "download")]
mod fetch;
#[cfg(feature = "folder")]
pub mod folder;
mod layout;
#[cfg(feature = "download")]
mod progress;
mod split;

pub use cifar_types::ImageSet;
pub use decode::{
    decode_batch, decode_records, load_labels, load_with, parse_class_names, parse_class_names_n,
    read_class_names, read_class_names_n,
};
#[cfg(feature = "download")]
pub use download::{
    Checksum, DownloadOptions, download_to, md5_file, part_path, sha256_file, verify_all,
    verify_file,
};
pub use error::{Error, Result};
#[cfg(feature = "download")]
pub use extract::{extract_archive, extract_archive_with};
#[cfg(feature = "download")]
pub use fetch::{
    ARCHIVE_NAME, CIFAR100_ARCHIVE_NAME, CIFAR100_MD5, CIFAR100_URL, DEFAULT_RETRIES, FetchConfig,
    FetchOptions, FetchOutcome, OFFICIAL_MD5, OFFICIAL_URL, URL_ENV, fetch, fetch_with,
    resolve_url, url_from_env,
};
#[cfg(feature = "folder")]
pub use folder::{
    CACHE_FILE, CacheMode, CacheStats, FolderData, FolderOptions, IMAGE_EXTENSIONS, ImageOrder,
    MAX_CLASSES, SkippedImage, cache_file, is_folder_layout, load_folder,
};
pub use layout::{
    BATCH_DIR, Dataset, Labels, Layout, MAX_META_BYTES, META_FILE, MemberSize, RECORD_BYTES,
    TEST_FILE, TRAIN_FILES, cifar100,
};
#[cfg(feature = "download")]
pub use progress::DownloadBar;
pub use split::{split, split_indices};

use std::path::Path;

/// A data set's official training and test images (CIFAR-10 and CIFAR-100: 50,000 and 10,000).
#[derive(Debug, Clone)]
pub struct TrainTest {
    /// The training files concatenated in order (CIFAR-10: `data_batch_1..5`; CIFAR-100: `train.bin`).
    pub train: ImageSet,
    /// The test file (`test_batch.bin`, `test.bin`).
    pub test: ImageSet,
}

/// The name this type had when the crate read CIFAR-10 only.
pub type Cifar10 = TrainTest;

/// Reads `<data_dir>/cifar-10-batches-bin` (train = `data_batch_1..5` in order, test = `test_batch`), checking
/// 10,000 records per file, labels below 10 and 10 class names in `batches.meta.txt`.
///
/// ```no_run
/// let data = cifar10_dataset::load("data".as_ref())?;
/// assert_eq!(data.train.class_counts(), vec![5000; 10]);
/// # Ok::<(), cifar10_dataset::Error>(())
/// ```
pub fn load(data_dir: &Path) -> Result<TrainTest> {
    load_with(data_dir, Layout::OFFICIAL)
}

/// True when the extracted files are present with the right sizes.
///
/// ```
/// assert!(!cifar10_dataset::is_present("/nonexistent".as_ref()));
/// ```
pub fn is_present(data_dir: &Path) -> bool {
    Layout::OFFICIAL.is_present(data_dir)
}

/// What is wrong with the extracted files, if anything: the first missing file or file of the wrong size
/// ([`Layout::check`] of the official layout; the contents are checked by [`load`]).
///
/// ```
/// let err = cifar10_dataset::check("/nonexistent".as_ref()).unwrap_err();
/// assert!(err.to_string().contains("batches.meta.txt") || err.to_string().contains("data_batch_1.bin"));
/// ```
pub fn check(data_dir: &Path) -> Result<()> {
    Layout::OFFICIAL.check(data_dir)
}
