//! Image-folder data sets (torchvision's `ImageFolder` layout): a user's own pictures sorted into one folder per
//! class, decoded into [`ImageSet`]s exactly as prediction decodes a picture.
//!
//! # Layout
//!
//! ```text
//! ROOT/train/<class>/<image>   required
//! ROOT/test/<class>/<image>    required
//! ROOT/val/<class>/<image>     optional (FolderData::val)
//! ```
//!
//! - **Classes** are the sub-folders of `train/`, sorted by the bytes of their UTF-8 names (Rust's `String`
//!   order: `"Zebra" < "apple" < "Äpfel"`); a label is the index of its class in that list, in every split.
//!   A class folder of `test/` or `val/` that `train/` lacks is an error; a split may lack some training
//!   classes. At most [`MAX_CLASSES`] (256) classes: labels are bytes. A class folder's name that is not valid
//!   UTF-8 is an error.
//! - **Images** are the files under a class folder (sub-folders followed) whose extension is one of
//!   [`IMAGE_EXTENSIONS`] (any case). Within a class they are taken in the order of their paths (byte order of
//!   the names, component by component). The content decides the format, not the extension.
//! - **Ignored, with one warning**: files with another extension (e.g. `README.txt`), and files directly in
//!   `train/`, `test/` or `val/` (outside a class folder); they are listed in [`FolderData::ignored`].
//!   Hidden entries (names starting with `.`, e.g. `.DS_Store`, the cache file) are skipped silently.
//! - **Errors**: a missing `train/` or `test/`, a split without class folders, a class folder without any image
//!   file ([`Error::Folder`], naming the folder and what it holds).
//!
//! # Pixels
//!
//! Every image goes through [`imagefile::load_path`], the decoder `cifar predict` and `cifar serve` use: the
//! same formats, EXIF orientation, [`DecodeLimits`], crop ([`FolderOptions::crop`], centre square by default)
//! and antialiased resize to 32x32, so a model is trained on the pixels it will be queried with. An image that is
//! already 32x32 is not resampled: a lossless 32x32 file (PNG, BMP, lossless WebP) loads bit for bit.
//!
//! # Bad images
//!
//! A file with an image extension that does not decode (corrupt, truncated, not an image, over the limits) is a
//! bad image. By default the load fails with [`Error::BadImages`], naming every bad file and its reason, before
//! any training. With [`FolderOptions::skip_bad_images`] the bad images are left out and listed in
//! [`FolderData::skipped`].
//!
//! # Order
//!
//! [`ImageOrder::ClassMajor`] (the default): class by class in label order, and within a class in path order.
//! [`ImageOrder::FileName`]: all images of a split sorted by file name (then label, then path), which gives back
//! an archive's own order when its images are named by their index in it (zero-padded, as `cargo xtask
//! export-folder` writes them).
//!
//! # Cache
//!
//! Decoding tens of thousands of files takes a while; the decoded set is cached in one file ([`CacheMode`]:
//! `ROOT/.cifar10-folder-cache.bin` by default, or a file named after the root in another folder, or none) that
//! holds, for every image file, its path relative to `ROOT`, size, modification time (nanoseconds) and decoded
//! pixels (or the reason it is bad), plus the cache format version and the decode settings (crop, limits). The
//! next load stats the files and takes every image whose path, size and modification time match from the
//! cache; only new or changed files are decoded, and the cache is rewritten (atomically) when anything changed.
//! The file ends with a CRC-32 of its content: a cache that is corrupt, truncated, of another version or made
//! with other settings is ignored with a warning and rebuilt. An unwritable cache location (a read-only data
//! folder) gives a warning, never an error. A file rewritten with the same size within the file system's
//! timestamp resolution is not noticed (as with `make`).
//!
//! ```no_run
//! use cifar10_dataset::{FolderOptions, load_folder};
//! let data = load_folder("my-pictures".as_ref(), &FolderOptions::default(), &mut |done, total| {
//!     eprint!("\rdecoded {done}/{total}");
//! })?;
//! println!("{} classes: {:?}", data.train.num_classes(), data.train.class_names());
//! # Ok::<(), cifar10_dataset::Error>(())
//! ```

mod cache;
mod scan;

use crate::{Error, Result};
use cifar_types::{IMAGE_BYTES, ImageSet};
pub use imagefile::{Crop, DecodeLimits};
use rayon::prelude::*;
use scan::FileEntry;
use std::path::{Path, PathBuf};

/// File extensions (compared without regard to case) of the files taken as images.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jpe", "jfif", "bmp", "dib", "gif", "webp", "tif", "tiff",
];

/// The most classes a data set can have (labels are bytes): [`cifar_types::MAX_CLASSES`].
pub use cifar_types::MAX_CLASSES;

/// The cache's file name inside the data folder ([`CacheMode::BesideData`]).
pub const CACHE_FILE: &str = ".cifar10-folder-cache.bin";

/// Where the decoded set is cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// No cache: every image is decoded on every load.
    Off,
    /// `ROOT/`[`CACHE_FILE`], beside the data.
    #[default]
    BesideData,
    /// A file in this folder (created if needed) named after the root's absolute path, e.g. a run cache when
    /// the data folder is read-only.
    In(PathBuf),
}

/// The order of the images within each split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageOrder {
    /// Class by class in label order; within a class, by path.
    #[default]
    ClassMajor,
    /// Every image of the split sorted by its file name, then by label, then by path.
    FileName,
}

/// How [`load_folder`] reads an image folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderOptions {
    /// Leave out images that cannot be decoded (listed in [`FolderData::skipped`]) instead of failing.
    pub skip_bad_images: bool,
    /// Decoder limits against decompression bombs (a larger image is a bad image).
    pub limits: DecodeLimits,
    /// What happens to a non-square image before the resize to 32x32.
    pub crop: Crop,
    /// Where the decoded set is cached.
    pub cache: CacheMode,
    /// The order of the images within each split.
    pub order: ImageOrder,
    /// Decoding threads: 0 uses the current rayon pool (all cores by default).
    pub threads: usize,
}

impl Default for FolderOptions {
    /// Fail on bad images, default limits, centre crop, cache beside the data, class-major order, all cores.
    fn default() -> Self {
        Self {
            skip_bad_images: false,
            limits: DecodeLimits::default(),
            crop: Crop::Center,
            cache: CacheMode::BesideData,
            order: ImageOrder::ClassMajor,
            threads: 0,
        }
    }
}

/// An image left out because it could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedImage {
    /// The file (the root joined with its relative path).
    pub path: PathBuf,
    /// Why it could not be decoded.
    pub reason: String,
}

/// What the cache did during a load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The cache file, `None` with [`CacheMode::Off`].
    pub file: Option<PathBuf>,
    /// Images taken from the cache.
    pub reused: usize,
    /// Images decoded (not in the cache, or changed since).
    pub decoded: usize,
    /// True when the cache file was (re)written.
    pub written: bool,
}

impl CacheStats {
    /// True when every image came from the cache (nothing was decoded).
    pub fn all_cached(&self) -> bool {
        self.decoded == 0 && self.reused > 0
    }
}

/// An image folder, decoded.
#[derive(Debug, Clone)]
pub struct FolderData {
    /// `train/`'s images. Its class names (the sorted class folders of `train/`) are every split's.
    pub train: ImageSet,
    /// `val/`'s images, when the folder exists.
    pub val: Option<ImageSet>,
    /// `test/`'s images.
    pub test: ImageSet,
    /// Bad images left out (only with [`FolderOptions::skip_bad_images`]), in path order.
    pub skipped: Vec<SkippedImage>,
    /// Files that were not taken as images (relative to the root): other extensions, files outside a class
    /// folder.
    pub ignored: Vec<PathBuf>,
    /// What the cache did.
    pub cache: CacheStats,
}

/// True when `root` looks like an image folder: `root/train` and `root/test` are folders that each hold at least
/// one (non-hidden) sub-folder. Cheap: only those two folders are listed.
///
/// ```
/// assert!(!cifar10_dataset::is_folder_layout("/nonexistent".as_ref()));
/// ```
pub fn is_folder_layout(root: &Path) -> bool {
    scan::has_class_folders(&root.join("train")) && scan::has_class_folders(&root.join("test"))
}

/// The cache file [`load_folder`] uses for `root` with `mode` (`None` for [`CacheMode::Off`]).
pub fn cache_file(root: &Path, mode: &CacheMode) -> Option<PathBuf> {
    match mode {
        CacheMode::Off => None,
        CacheMode::BesideData => Some(root.join(CACHE_FILE)),
        CacheMode::In(dir) => {
            let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
            let name: String = abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(64)
                .collect();
            let hash = crc32fast::hash(abs.as_os_str().as_encoded_bytes());
            Some(dir.join(format!("folder-{name}-{hash:08x}.bin")))
        }
    }
}

/// The decode settings a cache is only valid for.
fn settings_key(opts: &FolderOptions) -> String {
    format!(
        "side={} crop={:?} limits={:?}",
        imagefile::SIDE,
        opts.crop,
        opts.limits
    )
}

fn decode_one(path: &Path, opts: &FolderOptions) -> std::result::Result<Vec<u8>, String> {
    let run = || imagefile::load_path(path, opts.crop, opts.limits);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(input)) if input.pixels.len() == IMAGE_BYTES => Ok(input.pixels),
        Ok(Ok(input)) => Err(format!(
            "the decoder returned {} bytes instead of {IMAGE_BYTES}",
            input.pixels.len()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the image decoder panicked on this file".into()),
    }
}

/// Images decoded per task (and per progress report).
const CHUNK: usize = 16;

/// Decodes `paths` in parallel; `progress(done, total)` is called on this thread after each chunk of images.
fn decode_all(
    paths: &[PathBuf],
    opts: &FolderOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<std::result::Result<Vec<u8>, String>>> {
    let total = paths.len();
    progress(0, total);
    let mut out: Vec<Option<std::result::Result<Vec<u8>, String>>> = vec![None; total];
    if total == 0 {
        return Ok(Vec::new());
    }
    let pool = match opts.threads {
        0 => None,
        n => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Error::InvalidArgument {
                    name: "threads",
                    message: format!("cannot start {n} decoding threads: {e}"),
                })?,
        ),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            // Small chunks: one message (and one wake-up of this thread) per chunk, not per image.
            let work = move || {
                paths
                    .par_chunks(CHUNK)
                    .enumerate()
                    .for_each_with(tx, |tx, (c, chunk)| {
                        let decoded: Vec<_> = chunk.iter().map(|p| decode_one(p, opts)).collect();
                        // The receiver lives until every sender is gone.
                        let _ = tx.send((c * CHUNK, decoded));
                    })
            };
            match &pool {
                Some(pool) => pool.install(work),
                None => work(),
            }
        });
        let mut done = 0;
        for (start, decoded) in rx.iter() {
            done += decoded.len();
            for (k, r) in decoded.into_iter().enumerate() {
                out[start + k] = Some(r);
            }
            progress(done, total);
        }
    });
    out.into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.ok_or_else(|| Error::Folder {
                path: paths[i].clone(),
                message: "internal error: the image was not decoded".into(),
            })
        })
        .collect()
}

fn build_set(
    files: &[(&FileEntry, cache::Outcome<'_>)],
    order: ImageOrder,
    class_names: &[String],
) -> Result<ImageSet> {
    let mut picked: Vec<(&FileEntry, &[u8])> = files
        .iter()
        .filter_map(|(f, o)| o.ok().map(|px| (*f, px)))
        .collect();
    if order == ImageOrder::FileName {
        picked.sort_by(|a, b| {
            fn name(f: &FileEntry) -> Option<&[u8]> {
                f.rel.file_name().map(|n| n.as_encoded_bytes())
            }
            name(a.0)
                .cmp(&name(b.0))
                .then(a.0.label.cmp(&b.0.label))
                .then(a.0.rel.cmp(&b.0.rel))
        });
    }
    let mut pixels = Vec::with_capacity(picked.len() * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(picked.len());
    for (f, px) in picked {
        pixels.extend_from_slice(px);
        labels.push(f.label);
    }
    Ok(ImageSet::new(pixels, labels, class_names.to_vec())?)
}

/// Reads the image folder at `root` (layout, pixels, bad images, order and cache: see the [module
/// documentation](crate::folder)). `progress(done, total)` reports the decoding of the images the cache did not hold:
/// called with `(0, total)` first, then after every few images (on the calling thread), last with `(total, total)`;
/// `total` is 0 when every image came from the cache.
pub fn load_folder(
    root: &Path,
    opts: &FolderOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FolderData> {
    let tree = scan::scan(root)?;
    if let Some(first) = tree.ignored.first() {
        tracing::warn!(
            "{}: ignored {} file(s) that are not images by their extension or lie outside a class folder, e.g. {}",
            root.display(),
            tree.ignored.len(),
            first.display()
        );
    }
    let all: Vec<&FileEntry> = tree
        .train
        .files
        .iter()
        .chain(tree.val.iter().flat_map(|v| v.files.iter()))
        .chain(tree.test.files.iter())
        .collect();

    let settings = settings_key(opts);
    let cache_path = cache_file(root, &opts.cache);
    let old = match &cache_path {
        None => cache::Cache::default(),
        Some(p) => match cache::Cache::read(p, &settings) {
            Ok(c) => c.unwrap_or_default(),
            Err(reason) => {
                tracing::warn!(
                    "{}: the decoded-image cache is not used ({reason}); it is rebuilt",
                    p.display()
                );
                cache::Cache::default()
            }
        },
    };

    let hits: Vec<Option<cache::Outcome<'_>>> = all.iter().map(|f| old.get(f)).collect();
    let misses: Vec<PathBuf> = all
        .iter()
        .zip(&hits)
        .filter(|(_, h)| h.is_none())
        .map(|(f, _)| root.join(&f.rel))
        .collect();
    let decoded = decode_all(&misses, opts, progress)?;
    let mut fresh = decoded.iter();
    let mut outcomes: Vec<(&FileEntry, cache::Outcome<'_>)> = Vec::with_capacity(all.len());
    for (f, h) in all.iter().zip(hits) {
        let o = match h {
            Some(o) => o,
            None => match fresh.next() {
                Some(Ok(px)) => Ok(px.as_slice()),
                Some(Err(reason)) => Err(reason.as_str()),
                None => {
                    return Err(Error::Folder {
                        path: root.join(&f.rel),
                        message: "internal error: the image was not decoded".into(),
                    });
                }
            },
        };
        outcomes.push((f, o));
    }

    let mut stats = CacheStats {
        file: cache_path.clone(),
        reused: all.len() - misses.len(),
        decoded: misses.len(),
        written: false,
    };
    if let Some(p) = &cache_path
        && (!misses.is_empty() || old.len() != all.len())
    {
        let written = match &opts.cache {
            CacheMode::In(dir) => std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e)),
            _ => Ok(()),
        }
        .and_then(|()| cache::write(p, &settings, &outcomes));
        match written {
            Ok(()) => stats.written = true,
            Err(e) => tracing::warn!("the decoded-image cache is not saved: {e}"),
        }
    }

    let bad: Vec<SkippedImage> = outcomes
        .iter()
        .filter_map(|(f, o)| {
            o.err().map(|reason| SkippedImage {
                path: root.join(&f.rel),
                reason: reason.to_string(),
            })
        })
        .collect();
    if !bad.is_empty() && !opts.skip_bad_images {
        return Err(Error::BadImages {
            images: bad.into_iter().map(|b| (b.path, b.reason)).collect(),
        });
    }
    if !bad.is_empty() {
        tracing::warn!(
            "{}: skipped {} image(s) that cannot be decoded, e.g. {}: {}",
            root.display(),
            bad.len(),
            bad[0].path.display(),
            bad[0].reason
        );
    }

    let (n_train, n_val) = (
        tree.train.files.len(),
        tree.val.as_ref().map_or(0, |v| v.files.len()),
    );
    let (train, rest) = outcomes.split_at(n_train);
    let (val, test) = rest.split_at(n_val);
    let names = &tree.class_names;
    Ok(FolderData {
        train: build_set(train, opts.order, names)?,
        val: match tree.val {
            Some(_) => Some(build_set(val, opts.order, names)?),
            None => None,
        },
        test: build_set(test, opts.order, names)?,
        skipped: bad,
        ignored: tree.ignored,
        cache: stats,
    })
}
