//! Names and sizes of the files in the extracted binary versions of CIFAR-10 and CIFAR-100.

use crate::{Error, Result};
use cifar_types::IMAGE_BYTES;
use std::path::Path;

/// Folder, inside the data dir and inside the archive, that holds CIFAR-10's batch files.
pub const BATCH_DIR: &str = "cifar-10-batches-bin";
/// The five training batches, in the order [`crate::load`] concatenates them.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch.
pub const TEST_FILE: &str = "test_batch.bin";
/// CIFAR-10's class names, one per line.
pub const META_FILE: &str = "batches.meta.txt";
/// Bytes per CIFAR-10 record: one label byte followed by 3072 pixel bytes (R, G, B planes of 32x32).
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;

/// CIFAR-100's binary version: `cifar-100-binary/{train.bin, test.bin, coarse_label_names.txt,
/// fine_label_names.txt}`, records of `<coarse label><fine label><3072 pixels>`.
pub mod cifar100 {
    use cifar_types::IMAGE_BYTES;
    /// Folder, inside the data dir and inside the archive, that holds the files.
    pub const DIR: &str = "cifar-100-binary";
    /// The training set (50,000 records).
    pub const TRAIN_FILE: &str = "train.bin";
    /// The test set (10,000 records).
    pub const TEST_FILE: &str = "test.bin";
    /// The 20 superclass names, one per line, in coarse-label order.
    pub const COARSE_NAMES_FILE: &str = "coarse_label_names.txt";
    /// The 100 class names, one per line, in fine-label order.
    pub const FINE_NAMES_FILE: &str = "fine_label_names.txt";
    /// Bytes per record: the coarse label, the fine label, 3072 pixel bytes.
    pub const RECORD_BYTES: usize = 2 + IMAGE_BYTES;
    /// Number of fine classes.
    pub const FINE_CLASSES: usize = 100;
    /// Number of coarse classes (superclasses).
    pub const COARSE_CLASSES: usize = 20;
}

/// Which binary data set a directory or archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// CIFAR-10: 10 classes, five training batches and a test batch.
    #[default]
    Cifar10,
    /// CIFAR-100: 100 classes (20 superclasses), one training and one test file.
    Cifar100,
}

/// Which of CIFAR-100's two labels an image set uses. CIFAR-10 has one label per image ([`Labels::Fine`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Labels {
    /// The 100 classes (CIFAR-10: its 10 classes).
    #[default]
    Fine,
    /// CIFAR-100's 20 superclasses.
    Coarse,
}

impl Dataset {
    /// The short name (`cifar10`, `cifar100`), as command lines and configs spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar10",
            Dataset::Cifar100 => "cifar100",
        }
    }

    /// The name people write (`CIFAR-10`, `CIFAR-100`).
    pub const fn title(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "CIFAR-10",
            Dataset::Cifar100 => "CIFAR-100",
        }
    }

    /// The folder holding the extracted files, inside the data dir and the archive.
    pub const fn dir(self) -> &'static str {
        match self {
            Dataset::Cifar10 => BATCH_DIR,
            Dataset::Cifar100 => cifar100::DIR,
        }
    }

    /// Bytes per record (label bytes + 3072 pixel bytes).
    pub const fn record_bytes(self) -> usize {
        match self {
            Dataset::Cifar10 => RECORD_BYTES,
            Dataset::Cifar100 => cifar100::RECORD_BYTES,
        }
    }

    /// The training files, in the order they are concatenated.
    pub const fn train_files(self) -> &'static [&'static str] {
        match self {
            Dataset::Cifar10 => &TRAIN_FILES,
            Dataset::Cifar100 => &[cifar100::TRAIN_FILE],
        }
    }

    /// The test file.
    pub const fn test_file(self) -> &'static str {
        match self {
            Dataset::Cifar10 => TEST_FILE,
            Dataset::Cifar100 => cifar100::TEST_FILE,
        }
    }

    /// The class-name files.
    pub const fn name_files(self) -> &'static [&'static str] {
        match self {
            Dataset::Cifar10 => &[META_FILE],
            Dataset::Cifar100 => &[cifar100::COARSE_NAMES_FILE, cifar100::FINE_NAMES_FILE],
        }
    }

    /// The class-name file of `labels` and how many names it must hold.
    pub const fn names_file(self, labels: Labels) -> (&'static str, usize) {
        match (self, labels) {
            (Dataset::Cifar10, _) => (META_FILE, 10),
            (Dataset::Cifar100, Labels::Fine) => {
                (cifar100::FINE_NAMES_FILE, cifar100::FINE_CLASSES)
            }
            (Dataset::Cifar100, Labels::Coarse) => {
                (cifar100::COARSE_NAMES_FILE, cifar100::COARSE_CLASSES)
            }
        }
    }

    /// The number of values each label byte of a record may take, in record order (CIFAR-100: coarse, fine).
    pub const fn label_ranges(self) -> &'static [usize] {
        match self {
            Dataset::Cifar10 => &[10],
            Dataset::Cifar100 => &[cifar100::COARSE_CLASSES, cifar100::FINE_CLASSES],
        }
    }

    /// Which byte of a record holds the label of `labels`.
    pub const fn label_offset(self, labels: Labels) -> usize {
        match (self, labels) {
            (Dataset::Cifar10, _) | (Dataset::Cifar100, Labels::Coarse) => 0,
            (Dataset::Cifar100, Labels::Fine) => 1,
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.title())
    }
}
/// Largest accepted `batches.meta.txt` (the official one is about 60 bytes).
pub const MAX_META_BYTES: u64 = 64 * 1024;

/// Expected shape of the extracted files. [`Layout::OFFICIAL`] is the real CIFAR-10 (10,000 records per batch),
/// [`Layout::CIFAR100`] the real CIFAR-100 (50,000 training and 10,000 test records); tests use small layouts so
/// archives stay tiny.
///
/// ```
/// use cifar10_dataset::{Dataset, Layout};
/// assert_eq!(Layout::OFFICIAL.batch_bytes(), 30_730_000);
/// assert_eq!(Layout::new(Dataset::Cifar10, 2).batch_bytes(), 6146);
/// assert_eq!(Layout::CIFAR100.train_records(), 50_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The data set.
    pub dataset: Dataset,
    /// Records in each of CIFAR-10's six batch files; CIFAR-100's training file holds five times as many and its
    /// test file this many (as in the official sets).
    pub records_per_batch: usize,
}

/// How large one expected member must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSize {
    /// Exactly this many bytes (batch files).
    Exact(u64),
    /// Between 1 and this many bytes (the class-name file).
    AtMost(u64),
}

impl Layout {
    /// The official CIFAR-10 binary version.
    pub const OFFICIAL: Layout = Layout {
        dataset: Dataset::Cifar10,
        records_per_batch: 10_000,
    };

    /// The official CIFAR-100 binary version.
    pub const CIFAR100: Layout = Layout {
        dataset: Dataset::Cifar100,
        records_per_batch: 10_000,
    };

    /// A layout of `dataset` with `records_per_batch` (see the field).
    pub const fn new(dataset: Dataset, records_per_batch: usize) -> Self {
        Self {
            dataset,
            records_per_batch,
        }
    }

    /// The official layout of `dataset`.
    pub const fn official(dataset: Dataset) -> Self {
        Self::new(dataset, 10_000)
    }

    /// Size in bytes of one CIFAR-10 batch file (of `records_per_batch` records of this data set).
    pub fn batch_bytes(&self) -> u64 {
        (self.records_per_batch * self.dataset.record_bytes()) as u64
    }

    /// Records in the training set.
    pub fn train_records(&self) -> usize {
        5 * self.records_per_batch
    }

    /// Records in the test set.
    pub fn test_records(&self) -> usize {
        self.records_per_batch
    }

    /// Records each training file holds.
    pub fn records_per_train_file(&self) -> usize {
        self.train_records() / self.dataset.train_files().len()
    }

    /// All six CIFAR-10 batch file names: the five training batches then the test batch.
    pub fn batch_files() -> [&'static str; 6] {
        let [a, b, c, d, e] = TRAIN_FILES;
        [a, b, c, d, e, TEST_FILE]
    }

    /// The data files (training files, then the test file) with the records each holds.
    pub fn data_files(&self) -> Vec<(&'static str, usize)> {
        let mut v: Vec<_> = self
            .dataset
            .train_files()
            .iter()
            .map(|&f| (f, self.records_per_train_file()))
            .collect();
        v.push((self.dataset.test_file(), self.test_records()));
        v
    }

    /// Every expected file name (inside the data set's folder, [`Dataset::dir`]) with its size rule.
    pub fn members(&self) -> Vec<(&'static str, MemberSize)> {
        let rec = self.dataset.record_bytes() as u64;
        let mut m: Vec<_> = self
            .data_files()
            .into_iter()
            .map(|(f, n)| (f, MemberSize::Exact(n as u64 * rec)))
            .collect();
        for &f in self.dataset.name_files() {
            m.push((f, MemberSize::AtMost(MAX_META_BYTES)));
        }
        m
    }

    /// Upper bound of the bytes all expected members take together.
    pub fn max_total_bytes(&self) -> u64 {
        self.members()
            .iter()
            .map(|(_, s)| match s {
                MemberSize::Exact(n) | MemberSize::AtMost(n) => *n,
            })
            .sum()
    }

    /// True when `<data_dir>/<dataset dir>` holds every expected file with an acceptable size.
    pub fn is_present(&self, data_dir: &Path) -> bool {
        self.check(data_dir).is_ok()
    }

    /// Checks that `<data_dir>/<dataset dir>` (e.g. `cifar-10-batches-bin`) holds every expected file with an
    /// acceptable size, without reading them; the first problem names the file and what is wrong with it
    /// ([`Error::MissingFile`], or [`Error::Decode`] for a file of the wrong size, e.g. a truncated batch).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let err = cifar10_dataset::Layout::OFFICIAL.check(dir.path()).unwrap_err();
    /// assert!(matches!(err, cifar10_dataset::Error::MissingFile { .. }));
    /// ```
    pub fn check(&self, data_dir: &Path) -> Result<()> {
        match self.problems(data_dir).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem of the extracted files, file by file (missing, not a regular file, wrong size), without
    /// reading them; empty when all are present with acceptable sizes.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// assert_eq!(cifar10_dataset::Layout::OFFICIAL.problems(dir.path()).len(), 7);
    /// ```
    pub fn problems(&self, data_dir: &Path) -> Vec<Error> {
        let dir = data_dir.join(self.dataset.dir());
        let rec = self.dataset.record_bytes();
        let mut out = Vec::new();
        for (name, size) in self.members() {
            let path = dir.join(name);
            let md = match std::fs::metadata(&path) {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    out.push(Error::MissingFile { path });
                    continue;
                }
                Err(e) => {
                    out.push(Error::io(path, e));
                    continue;
                }
            };
            let wrong = |message: String| Error::decode(path.display().to_string(), message);
            if !md.is_file() {
                out.push(wrong("not a regular file".into()));
                continue;
            }
            match size {
                MemberSize::Exact(n) if md.len() != n => {
                    let whole = md.len() / rec as u64;
                    out.push(wrong(format!(
                        "{} bytes, expected {n} ({} records of {rec} bytes): {}",
                        md.len(),
                        n / rec as u64,
                        if md.len() < n {
                            format!(
                                "truncated ({:.0}% missing, {whole} whole records)",
                                100.0 * (n - md.len()) as f64 / n as f64
                            )
                        } else {
                            "too long, damaged".to_string()
                        }
                    )));
                }
                MemberSize::AtMost(n) if md.len() == 0 || md.len() > n => {
                    out.push(wrong(format!("{} bytes, expected 1 to {n}", md.len())));
                }
                _ => {}
            }
        }
        out
    }
}
