//! Decoding of batch files (CIFAR-10: records of 1 label byte + 3072 pixel bytes; CIFAR-100: 2 label bytes +
//! 3072) and of the class-name files.

use crate::layout::{Dataset, Labels, Layout, MAX_META_BYTES};
use crate::{Error, Result, TrainTest};
use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
use std::path::Path;

/// Decodes the records of one CIFAR-10 batch file (any record count) into an [`ImageSet`] named with CIFAR-10's
/// class names ([`CIFAR10_CLASS_NAMES`]). `name` is used in error messages.
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
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    decode_records(bytes, name, Dataset::Cifar10, Labels::Fine, names)
}

/// Decodes the records of one file of `dataset` (any record count) into an [`ImageSet`] labelled with `labels`
/// (CIFAR-100: fine or coarse) and named `class_names`. Every label byte of every record is checked against its
/// range (CIFAR-100: coarse below 20 and fine below 100) whichever labels are kept.
///
/// ```
/// use cifar10_dataset::{Dataset, Labels, decode_records};
/// let mut record = vec![3u8, 42]; // coarse 3, fine 42
/// record.extend((0..3072).map(|i| (i % 251) as u8));
/// let fine: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
/// let set = decode_records(&record, "train.bin", Dataset::Cifar100, Labels::Fine, fine).unwrap();
/// assert_eq!(set.label(0), 42);
/// let coarse: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
/// let set = decode_records(&record, "train.bin", Dataset::Cifar100, Labels::Coarse, coarse).unwrap();
/// assert_eq!(set.label(0), 3);
/// ```
pub fn decode_records(
    bytes: &[u8],
    name: &str,
    dataset: Dataset,
    labels: Labels,
    class_names: Vec<String>,
) -> Result<ImageSet> {
    let n = bytes.len() / dataset.record_bytes();
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut out = Vec::with_capacity(n);
    append_records(bytes, name, dataset, labels, None, &mut pixels, &mut out)?;
    Ok(ImageSet::new(pixels, out, class_names)?)
}

/// Checks and appends the records of one file. `expected_records`, when given, must match exactly.
fn append_records(
    bytes: &[u8],
    name: &str,
    dataset: Dataset,
    labels: Labels,
    expected_records: Option<usize>,
    pixels: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let n = check_records(bytes, name, dataset, expected_records)?;
    let rec_bytes = dataset.record_bytes();
    let label_bytes = rec_bytes - IMAGE_BYTES;
    let at = dataset.label_offset(labels);
    pixels.reserve(n * IMAGE_BYTES);
    out.reserve(n);
    for rec in bytes.chunks_exact(rec_bytes) {
        out.push(rec[at]);
        pixels.extend_from_slice(&rec[label_bytes..]);
    }
    Ok(())
}

/// Checks the records of one file (size, count, every label byte) and returns how many there are.
fn check_records(
    bytes: &[u8],
    name: &str,
    dataset: Dataset,
    expected_records: Option<usize>,
) -> Result<usize> {
    let rec_bytes = dataset.record_bytes();
    let label_bytes = rec_bytes - IMAGE_BYTES;
    if !bytes.len().is_multiple_of(rec_bytes) {
        return Err(Error::decode(
            name,
            format!(
                "size {} bytes is not a multiple of the {rec_bytes}-byte record ({label_bytes} label {} + {IMAGE_BYTES} pixels)",
                bytes.len(),
                if label_bytes == 1 { "byte" } else { "bytes" }
            ),
        ));
    }
    let n = bytes.len() / rec_bytes;
    if let Some(expected) = expected_records
        && n != expected
    {
        return Err(Error::decode(
            name,
            format!("expected {expected} records, found {n}"),
        ));
    }
    // Validate every label first (cheap), then copy: no per-byte work beyond the copy itself.
    for (k, &range) in dataset.label_ranges().iter().enumerate() {
        if let Some((i, rec)) = bytes
            .chunks_exact(rec_bytes)
            .enumerate()
            .find(|(_, rec)| usize::from(rec[k]) >= range)
        {
            let which = match (dataset, k) {
                (Dataset::Cifar100, 0) => "coarse label",
                (Dataset::Cifar100, _) => "fine label",
                _ => "label",
            };
            return Err(Error::decode(
                name,
                format!(
                    "record {i}: {which} {} out of range (expected 0..={})",
                    rec[k],
                    range - 1
                ),
            ));
        }
    }
    Ok(n)
}

/// Checks every file of the extracted data set as [`load_with`] would (record counts, labels, class names)
/// without keeping the images: one file in memory at a time.
#[cfg(feature = "download")]
pub(crate) fn check_contents(data_dir: &Path, layout: Layout) -> Result<()> {
    let dir = data_dir.join(layout.dataset.dir());
    for labels in [Labels::Fine, Labels::Coarse] {
        let (file, count) = layout.dataset.names_file(labels);
        read_class_names_n(&dir.join(file), count)?;
    }
    for (f, records) in layout.data_files() {
        let path = dir.join(f);
        let bytes = read_required(&path)?;
        check_records(
            &bytes,
            &path.display().to_string(),
            layout.dataset,
            Some(records),
        )?;
    }
    Ok(())
}

/// Parses a CIFAR-10 class-name file: non-empty lines (trimmed), exactly 10 of them.
///
/// ```
/// let names = cifar10_dataset::parse_class_names("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n", "meta").unwrap();
/// assert_eq!(names.len(), 10);
/// assert!(cifar10_dataset::parse_class_names("a\nb\n", "meta").is_err());
/// ```
pub fn parse_class_names(text: &str, name: &str) -> Result<Vec<String>> {
    parse_class_names_n(text, name, CIFAR10_CLASS_NAMES.len())
}

/// Parses a class-name file: non-empty lines (trimmed), exactly `expected` of them.
pub fn parse_class_names_n(text: &str, name: &str, expected: usize) -> Result<Vec<String>> {
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != expected {
        return Err(Error::decode(
            name,
            format!(
                "expected {expected} class names (non-empty lines), found {}",
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// Reads and parses CIFAR-10's `batches.meta.txt`.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    read_class_names_n(path, CIFAR10_CLASS_NAMES.len())
}

/// Reads and parses a class-name file of `expected` names.
pub fn read_class_names_n(path: &Path, expected: usize) -> Result<Vec<String>> {
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
    parse_class_names_n(text, &path.display().to_string(), expected)
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

/// Loads the extracted data set of `layout` from `data_dir` with its default labels (CIFAR-100: fine); see
/// [`load_labels`].
pub fn load_with(data_dir: &Path, layout: Layout) -> Result<TrainTest> {
    load_labels(data_dir, layout, Labels::Fine)
}

/// Loads `<data_dir>/<dataset dir>` with the given layout and labels: the training files concatenated in order
/// and the test file, every record count, label and the class names checked.
pub fn load_labels(data_dir: &Path, layout: Layout, labels: Labels) -> Result<TrainTest> {
    let dataset = layout.dataset;
    let dir = data_dir.join(dataset.dir());
    let (names_file, count) = dataset.names_file(labels);
    let class_names = read_class_names_n(&dir.join(names_file), count)?;
    let rec = layout.records_per_train_file();

    let mut pixels = Vec::with_capacity(layout.train_records() * IMAGE_BYTES);
    let mut out = Vec::with_capacity(layout.train_records());
    for f in dataset.train_files() {
        let path = dir.join(f);
        let bytes = read_required(&path)?;
        append_records(
            &bytes,
            &path.display().to_string(),
            dataset,
            labels,
            Some(rec),
            &mut pixels,
            &mut out,
        )?;
    }
    let train = ImageSet::new(pixels, out, class_names.clone())?;

    let path = dir.join(dataset.test_file());
    let bytes = read_required(&path)?;
    let mut pixels = Vec::with_capacity(layout.test_records() * IMAGE_BYTES);
    let mut out = Vec::with_capacity(layout.test_records());
    append_records(
        &bytes,
        &path.display().to_string(),
        dataset,
        labels,
        Some(layout.test_records()),
        &mut pixels,
        &mut out,
    )?;
    let test = ImageSet::new(pixels, out, class_names)?;
    tracing::debug!(
        train = train.len(),
        test = test.len(),
        dir = %dir.display(),
        "loaded {dataset}"
    );
    Ok(TrainTest { train, test })
}
