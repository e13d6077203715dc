//! Names and sizes of the files in the extracted CIFAR-10 binary version.

use crate::{Error, Result};
use cifar_types::IMAGE_BYTES;
use std::path::Path;

/// Folder, inside the data dir and inside the archive, that holds the batch files.
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
/// The class names, one per line.
pub const META_FILE: &str = "batches.meta.txt";
/// Bytes per record: one label byte followed by 3072 pixel bytes (R, G, B planes of 32x32).
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Largest accepted `batches.meta.txt` (the official one is about 60 bytes).
pub const MAX_META_BYTES: u64 = 64 * 1024;

/// Expected shape of the extracted files. [`Layout::OFFICIAL`] is the real data set (10,000 records per batch);
/// tests use small layouts so archives stay tiny.
///
/// ```
/// use cifar10_dataset::Layout;
/// assert_eq!(Layout::OFFICIAL.batch_bytes(), 30_730_000);
/// assert_eq!(Layout { records_per_batch: 2 }.batch_bytes(), 6146);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Records in each of the six batch files.
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
        records_per_batch: 10_000,
    };

    /// Size in bytes of one batch file.
    pub fn batch_bytes(&self) -> u64 {
        (self.records_per_batch * RECORD_BYTES) as u64
    }

    /// All six batch file names: the five training batches then the test batch.
    pub fn batch_files() -> [&'static str; 6] {
        let [a, b, c, d, e] = TRAIN_FILES;
        [a, b, c, d, e, TEST_FILE]
    }

    /// Every expected file name (inside [`BATCH_DIR`]) with its size rule.
    pub fn members(&self) -> Vec<(&'static str, MemberSize)> {
        let mut m: Vec<_> = Self::batch_files()
            .into_iter()
            .map(|f| (f, MemberSize::Exact(self.batch_bytes())))
            .collect();
        m.push((META_FILE, MemberSize::AtMost(MAX_META_BYTES)));
        m
    }

    /// Upper bound of the bytes all expected members take together.
    pub fn max_total_bytes(&self) -> u64 {
        6 * self.batch_bytes() + MAX_META_BYTES
    }

    /// True when `<data_dir>/cifar-10-batches-bin` holds every expected file with an acceptable size.
    pub fn is_present(&self, data_dir: &Path) -> bool {
        self.check(data_dir).is_ok()
    }

    /// Checks that `<data_dir>/cifar-10-batches-bin` holds every expected file with an acceptable size, without
    /// reading them; the first problem names the file and what is wrong with it ([`Error::MissingFile`], or
    /// [`Error::Decode`] for a file of the wrong size, e.g. a truncated batch).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let err = cifar10_dataset::Layout::OFFICIAL.check(dir.path()).unwrap_err();
    /// assert!(matches!(err, cifar10_dataset::Error::MissingFile { .. }));
    /// ```
    pub fn check(&self, data_dir: &Path) -> Result<()> {
        let dir = data_dir.join(BATCH_DIR);
        for (name, size) in self.members() {
            let path = dir.join(name);
            let md = match std::fs::metadata(&path) {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::MissingFile { path });
                }
                Err(e) => return Err(Error::io(path, e)),
            };
            let wrong = |message: String| Err(Error::decode(path.display().to_string(), message));
            if !md.is_file() {
                return wrong("not a regular file".into());
            }
            match size {
                MemberSize::Exact(n) if md.len() != n => {
                    return wrong(format!(
                        "{} bytes, expected {n} ({} records of {RECORD_BYTES} bytes): truncated or damaged",
                        md.len(),
                        self.records_per_batch
                    ));
                }
                MemberSize::AtMost(n) if md.len() == 0 || md.len() > n => {
                    return wrong(format!("{} bytes, expected 1 to {n}", md.len()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
