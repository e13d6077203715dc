//! Decoding of batch files (records of 1 label byte + 3072 pixel bytes) and of `batches.meta.txt`.

use crate::layout::{
    BATCH_DIR, Layout, MAX_META_BYTES, META_FILE, RECORD_BYTES, TEST_FILE, TRAIN_FILES,
};
use crate::{Cifar10, Error, Result};
use cifar_types::{CLASS_NAMES, IMAGE_BYTES, ImageSet, NUM_CLASSES};
use std::path::Path;

/// Decodes the records of one batch file (any record count) into an [`ImageSet`] named with the official
/// [`CLASS_NAMES`]. `name` is used in error messages.
///
/// Pixels are kept exactly as stored: `[N, 3, 32, 32]`, planar R, G, B, each plane row-major.
///
/// ```
/// let mut record = vec![7u8]; // label 7 = horse
/// record.extend((0..3072).map(|i| (i % 251) as u8));
/// let set = cifar10_dataset::decode_batch(&record, "one.bin").unwrap();
/// assert_eq!(set.len(), 1);
/// assert_eq!(set.label(0), 7);
/// assert_eq!(set.image(0), &record[1..]);
/// assert!(cifar10_dataset::decode_batch(&record[..3072], "short.bin").is_err());
/// ```
pub fn decode_batch(bytes: &[u8], name: &str) -> Result<ImageSet> {
    let n = bytes.len() / RECORD_BYTES;
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    append_records(bytes, name, None, &mut pixels, &mut labels)?;
    let names = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    Ok(ImageSet::new(pixels, labels, names)?)
}

/// Checks and appends the records of one batch file. `expected_records`, when given, must match exactly.
fn append_records(
    bytes: &[u8],
    name: &str,
    expected_records: Option<usize>,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<()> {
    let n = check_records(bytes, name, expected_records)?;
    pixels.reserve(n * IMAGE_BYTES);
    labels.reserve(n);
    for rec in bytes.chunks_exact(RECORD_BYTES) {
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// Checks the records of one batch file (size, count, every label) and returns how many there are.
fn check_records(bytes: &[u8], name: &str, expected_records: Option<usize>) -> Result<usize> {
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(Error::decode(
            name,
            format!(
                "size {} bytes is not a multiple of the {RECORD_BYTES}-byte record (1 label + {IMAGE_BYTES} pixels)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD_BYTES;
    if let Some(expected) = expected_records
        && n != expected
    {
        return Err(Error::decode(
            name,
            format!("expected {expected} records, found {n}"),
        ));
    }
    // Validate every label first (cheap), then copy: no per-byte work beyond the copy itself.
    if let Some((i, rec)) = bytes
        .chunks_exact(RECORD_BYTES)
        .enumerate()
        .find(|(_, rec)| usize::from(rec[0]) >= NUM_CLASSES)
    {
        return Err(Error::decode(
            name,
            format!(
                "record {i}: label {} out of range (expected 0..={})",
                rec[0],
                NUM_CLASSES - 1
            ),
        ));
    }
    Ok(n)
}

/// Checks every file of `<data_dir>/cifar-10-batches-bin` as [`load_with`] would (record counts, labels, class
/// names) without keeping the images: one batch file in memory at a time.
#[cfg(feature = "download")]
pub(crate) fn check_contents(data_dir: &Path, layout: Layout) -> Result<()> {
    let dir = data_dir.join(BATCH_DIR);
    read_class_names(&dir.join(META_FILE))?;
    for f in Layout::batch_files() {
        let path = dir.join(f);
        let bytes = read_required(&path)?;
        check_records(
            &bytes,
            &path.display().to_string(),
            Some(layout.records_per_batch),
        )?;
    }
    Ok(())
}

/// Parses the class-name file: non-empty lines (trimmed), exactly [`NUM_CLASSES`] of them.
///
/// ```
/// let names = cifar10_dataset::parse_class_names("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n", "meta").unwrap();
/// assert_eq!(names.len(), 10);
/// assert!(cifar10_dataset::parse_class_names("a\nb\n", "meta").is_err());
/// ```
pub fn parse_class_names(text: &str, name: &str) -> Result<Vec<String>> {
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != NUM_CLASSES {
        return Err(Error::decode(
            name,
            format!(
                "expected {NUM_CLASSES} class names (non-empty lines), found {}",
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// Reads and parses `batches.meta.txt`.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let bytes = read_required(path)?;
    if bytes.len() as u64 > MAX_META_BYTES {
        return Err(Error::decode(
            path.display().to_string(),
            format!(
                "{} bytes, larger than the {MAX_META_BYTES}-byte limit for a class-name file",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Error::decode(path.display().to_string(), format!("not UTF-8 text: {e}")))?;
    parse_class_names(text, &path.display().to_string())
}

fn read_required(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            Error::io(path, e)
        }
    })
}

/// Loads `<data_dir>/cifar-10-batches-bin` with the given layout (the public [`crate::load`] uses
/// [`Layout::OFFICIAL`]).
pub fn load_with(data_dir: &Path, layout: Layout) -> Result<Cifar10> {
    let dir = data_dir.join(BATCH_DIR);
    let class_names = read_class_names(&dir.join(META_FILE))?;
    let per_batch = layout.records_per_batch;

    let mut pixels = Vec::with_capacity(TRAIN_FILES.len() * per_batch * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(TRAIN_FILES.len() * per_batch);
    for f in TRAIN_FILES {
        let path = dir.join(f);
        let bytes = read_required(&path)?;
        append_records(
            &bytes,
            &path.display().to_string(),
            Some(per_batch),
            &mut pixels,
            &mut labels,
        )?;
    }
    let train = ImageSet::new(pixels, labels, class_names.clone())?;

    let path = dir.join(TEST_FILE);
    let bytes = read_required(&path)?;
    let mut pixels = Vec::with_capacity(per_batch * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(per_batch);
    append_records(
        &bytes,
        &path.display().to_string(),
        Some(per_batch),
        &mut pixels,
        &mut labels,
    )?;
    let test = ImageSet::new(pixels, labels, class_names)?;
    tracing::debug!(
        train = train.len(),
        test = test.len(),
        dir = %dir.display(),
        "loaded CIFAR-10"
    );
    Ok(Cifar10 { train, test })
}
