//! Safe extraction of the CIFAR-10 `.tar.gz`: only the expected regular files, each with its expected size,
//! copied byte by byte into files this code creates inside a temporary directory, then renamed into place.

use crate::layout::{Layout, MemberSize};
use crate::{Error, Result};
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// Slack allowed on top of the expected members for tar headers and small extra files (e.g. `readme.html`).
const EXTRA_ARCHIVE_BYTES: u64 = 16 * 1024 * 1024;

/// Extracts the official archive layout into `<data_dir>/cifar-10-batches-bin` and returns that path.
/// See [`extract_archive_with`].
pub fn extract_archive(archive: &Path, data_dir: &Path) -> Result<PathBuf> {
    extract_archive_with(archive, data_dir, Layout::OFFICIAL)
}

/// Extracts `archive` (a `.tar.gz`) into `<data_dir>/cifar-10-batches-bin` (CIFAR-100: `cifar-100-binary`),
/// checking it against `layout`.
///
/// Only the layout's members (CIFAR-10: `cifar-10-batches-bin/{data_batch_1..5.bin, test_batch.bin,
/// batches.meta.txt}`; CIFAR-100: `cifar-100-binary/{train.bin, test.bin, coarse_label_names.txt,
/// fine_label_names.txt}`) are written; other
/// regular files and directories are skipped. Absolute paths and `..` components anywhere, and links or devices
/// under an expected name, are refused. Each member must have its expected size and the decompressed stream is
/// capped. Everything is written into a temporary directory inside `data_dir`, checked as [`crate::load`] would
/// check it (record counts, every label, the class names) and only then renamed into place, replacing a previous
/// extraction; on any error nothing new appears under the final name.
///
/// ```no_run
/// let dir = cifar10_dataset::extract_archive_with(
///     "cifar-10-binary.tar.gz".as_ref(),
///     "data".as_ref(),
///     cifar10_dataset::Layout::OFFICIAL,
/// )?;
/// assert!(dir.ends_with("cifar-10-batches-bin"));
/// # Ok::<(), cifar10_dataset::Error>(())
/// ```
pub fn extract_archive_with(archive: &Path, data_dir: &Path, layout: Layout) -> Result<PathBuf> {
    let batch_dir = layout.dataset.dir();
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".extract-")
        .tempdir_in(data_dir)
        .map_err(|e| Error::io(data_dir, e))?;
    let staged = tmp.path().join(batch_dir);
    std::fs::create_dir(&staged).map_err(|e| Error::io(&staged, e))?;
    tracing::info!(archive = %archive.display(), "extracting");
    unpack_members(archive, &staged, layout)?;
    // The labels and class names, before anything takes the final name: a bad archive must not leave a data
    // directory that every later load refuses.
    crate::decode::check_contents(tmp.path(), layout).map_err(|e| match e {
        Error::Decode { file, message } => {
            let member = Path::new(&file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(file);
            Error::archive(archive, format!("{batch_dir}/{member}: {message}"))
        }
        other => other,
    })?;

    let final_dir = data_dir.join(batch_dir);
    let old = tmp.path().join("previous");
    let had_old = match std::fs::symlink_metadata(&final_dir) {
        Ok(_) => {
            std::fs::rename(&final_dir, &old).map_err(|e| Error::io(&final_dir, e))?;
            true
        }
        Err(_) => false,
    };
    if let Err(e) = std::fs::rename(&staged, &final_dir) {
        if had_old {
            // Put the previous extraction back; the error below is what matters.
            let _ = std::fs::rename(&old, &final_dir);
        }
        return Err(Error::io(&final_dir, e));
    }
    // Dropping `tmp` removes the temporary directory and any previous extraction moved into it.
    drop(tmp);
    tracing::info!(dir = %final_dir.display(), "extracted");
    Ok(final_dir)
}

/// Reads at most `remaining` bytes, then fails: caps how much a (possibly malicious) archive can decompress to.
struct CappedReader<R> {
    inner: R,
    remaining: u64,
    cap: u64,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            // Allow a clean end of stream exactly at the cap.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "decompressed archive exceeds the {}-byte limit",
                    self.cap
                ))),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn corrupt(archive: &Path, e: &std::io::Error) -> Error {
    Error::archive(archive, format!("truncated or corrupt .tar.gz: {e}"))
}

/// The entry's path as components, refusing absolute paths and `..`; `.` components are dropped.
fn safe_components(archive: &Path, raw: &[u8]) -> Result<Vec<String>> {
    let name = String::from_utf8_lossy(raw).into_owned();
    let unsafe_member = |reason: &str| Error::UnsafeMember {
        path: archive.to_path_buf(),
        member: name.clone(),
        reason: reason.to_string(),
    };
    if raw.first() == Some(&b'/') || raw.first() == Some(&b'\\') {
        return Err(unsafe_member("absolute path"));
    }
    let mut out = Vec::new();
    for c in Path::new(&name).components() {
        match c {
            Component::Normal(s) => {
                let s = s.to_string_lossy();
                // A Windows-style `..\` hidden inside one component is just as suspicious.
                if s.split('\\').any(|p| p == "..") {
                    return Err(unsafe_member("`..` component"));
                }
                out.push(s.into_owned());
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_member("`..` component")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_member("absolute path"));
            }
        }
    }
    Ok(out)
}

fn kind_name(t: EntryType) -> &'static str {
    match t {
        EntryType::Symlink => "symbolic link",
        EntryType::Link => "hard link",
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Fifo => "FIFO",
        EntryType::Directory => "directory",
        _ => "non-regular entry",
    }
}

fn unpack_members(archive: &Path, staged: &Path, layout: Layout) -> Result<()> {
    let batch_dir = layout.dataset.dir();
    let mut file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut magic = [0u8; 2];
    let got = file.read(&mut magic).map_err(|e| Error::io(archive, e))?;
    if got < 2 || magic != [0x1f, 0x8b] {
        return Err(Error::archive(
            archive,
            format!(
                "not a gzip file (expected the {} binary .tar.gz)",
                layout.dataset
            ),
        ));
    }
    drop(file);
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let cap = layout.max_total_bytes() + EXTRA_ARCHIVE_BYTES;
    let reader = CappedReader {
        inner: GzDecoder::new(BufReader::with_capacity(1 << 20, file)),
        remaining: cap,
        cap,
    };
    let mut tar = tar::Archive::new(reader);
    let members = layout.members();
    let mut found = vec![false; members.len()];

    let entries = tar.entries().map_err(|e| corrupt(archive, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(archive, &e))?;
        let raw = entry.path_bytes().into_owned();
        let parts = safe_components(archive, &raw)?;
        let name = String::from_utf8_lossy(&raw).into_owned();
        let expected = match parts.as_slice() {
            [dir, file] if dir == batch_dir => members.iter().position(|(m, _)| m == file),
            _ => None,
        };
        let kind = entry.header().entry_type();
        let Some(idx) = expected else {
            tracing::debug!(member = %name, "skipping archive member");
            continue;
        };
        let (member, size_rule) = members[idx];
        if !(kind.is_file() || kind == EntryType::Continuous) {
            return Err(Error::UnsafeMember {
                path: archive.to_path_buf(),
                member: name,
                reason: format!("a {} is not allowed for an expected file", kind_name(kind)),
            });
        }
        if found[idx] {
            return Err(Error::archive(
                archive,
                format!("member {batch_dir}/{member} appears twice"),
            ));
        }
        let size = entry.size();
        let ok = match size_rule {
            MemberSize::Exact(n) => size == n,
            MemberSize::AtMost(n) => size > 0 && size <= n,
        };
        if !ok {
            let want = match size_rule {
                MemberSize::Exact(n) => format!("{n} bytes"),
                MemberSize::AtMost(n) => format!("1 to {n} bytes"),
            };
            return Err(Error::archive(
                archive,
                format!("member {batch_dir}/{member} has {size} bytes, expected {want}"),
            ));
        }
        let out_path = staged.join(member);
        let mut out = File::create_new(&out_path).map_err(|e| Error::io(&out_path, e))?;
        let copied = copy_exact(&mut entry, &mut out, size, &out_path).map_err(|e| match e {
            CopyError::Read(e) => corrupt(archive, &e),
            CopyError::Write(e) => e,
        })?;
        if copied != size {
            return Err(Error::archive(
                archive,
                format!(
                    "truncated .tar.gz: member {batch_dir}/{member} ends after {copied} of {size} bytes"
                ),
            ));
        }
        out.sync_all().map_err(|e| Error::io(&out_path, e))?;
        found[idx] = true;
    }
    // Read the rest of the stream so that a truncated or corrupt gzip trailer (CRC, length) is noticed.
    let mut rest = tar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| corrupt(archive, &e))?;

    if let Some(i) = found.iter().position(|f| !f) {
        return Err(Error::MissingMember {
            path: archive.to_path_buf(),
            member: format!("{batch_dir}/{}", members[i].0),
        });
    }
    Ok(())
}

enum CopyError {
    Read(std::io::Error),
    Write(Error),
}

/// Copies up to `limit` bytes; returns how many were copied.
fn copy_exact(
    src: &mut impl Read,
    dst: &mut File,
    limit: u64,
    dst_path: &Path,
) -> std::result::Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut copied = 0u64;
    while copied < limit {
        let want = buf
            .len()
            .min(usize::try_from(limit - copied).unwrap_or(usize::MAX));
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        dst.write_all(&buf[..n])
            .map_err(|e| CopyError::Write(Error::io(dst_path, e)))?;
        copied += n as u64;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_checks() {
        let a = Path::new("a.tgz");
        assert_eq!(
            safe_components(a, b"./cifar-10-batches-bin/x").unwrap(),
            vec!["cifar-10-batches-bin", "x"]
        );
        assert!(safe_components(a, b"/etc/passwd").is_err());
        assert!(safe_components(a, b"a/../../b").is_err());
        assert!(safe_components(a, b"a\\..\\b").is_err());
    }

    #[test]
    fn capped_reader_stops() {
        let data = [1u8; 100];
        let mut r = CappedReader {
            inner: &data[..],
            remaining: 50,
            cap: 50,
        };
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        let mut exact = CappedReader {
            inner: &data[..],
            remaining: 100,
            cap: 100,
        };
        let mut out = Vec::new();
        assert_eq!(exact.read_to_end(&mut out).unwrap(), 100);
    }
}
