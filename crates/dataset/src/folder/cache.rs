//! The decoded-set cache: one file holding every image's decoded pixels (or the reason it could not be
//! decoded), keyed by the image's path relative to the root, its size and its modification time.
//!
//! Format (little-endian): the magic `C10FOLD\0`, the format version (u32), the decode settings as text (u32
//! length + UTF-8), the entry count (u64), then per entry: the relative path (u32 length + its bytes), the size
//! (u64), the modification time in nanoseconds (i128), a tag (0 = decoded: 3072 pixel bytes follow; 1 = bad:
//! u32 length + the UTF-8 reason follow); last, the CRC-32 of everything before it (u32). A file whose magic,
//! version, settings, structure or checksum does not match is not used.

use super::scan::{FileEntry, UNKNOWN_MTIME};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"C10FOLD\0";
/// Bump when the file format or the pixels the decoder produces change.
pub(crate) const FORMAT_VERSION: u32 = 1;
const TAG_PIXELS: u8 = 0;
const TAG_BAD: u8 = 1;
const PIXELS: usize = imagefile::INPUT_BYTES;

/// One cached image: where its pixels lie in the file, or why it could not be decoded.
#[derive(Debug)]
enum Stored {
    Pixels(usize),
    Bad(String),
}

#[derive(Debug)]
struct Entry {
    size: u64,
    mtime_ns: i128,
    stored: Stored,
}

/// A cache file read into memory and checked.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    bytes: Vec<u8>,
    entries: HashMap<Vec<u8>, Entry>,
}

/// A cached outcome: the pixels, or the reason the image could not be decoded.
pub(crate) type Outcome<'a> = std::result::Result<&'a [u8], &'a str>;

fn key(rel: &Path) -> &[u8] {
    rel.as_os_str().as_encoded_bytes()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn i128(&mut self) -> Option<i128> {
        self.array().map(i128::from_le_bytes)
    }
    fn blob(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

impl Cache {
    /// Reads and checks the cache file. `Ok(None)` when there is none; `Err(reason)` when it exists but cannot
    /// be used (unreadable, corrupt, another format version or other decode settings).
    pub(crate) fn read(path: &Path, settings: &str) -> std::result::Result<Option<Cache>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        Self::parse(bytes, settings).map(Some)
    }

    fn parse(bytes: Vec<u8>, settings: &str) -> std::result::Result<Cache, String> {
        let corrupt = || "corrupt or truncated".to_string();
        let body_len = bytes.len().checked_sub(4).ok_or_else(corrupt)?;
        let (body, crc) = bytes.split_at(body_len);
        let stored_crc = u32::from_le_bytes(crc.try_into().map_err(|_| corrupt())?);
        if !body.starts_with(MAGIC) {
            return Err("not a folder cache (wrong magic bytes)".into());
        }
        if crc32fast::hash(body) != stored_crc {
            return Err("checksum mismatch (corrupt or truncated)".into());
        }
        let mut r = Reader {
            bytes: body,
            pos: MAGIC.len(),
        };
        let version = r.u32().ok_or_else(corrupt)?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version}, this build writes version {FORMAT_VERSION}"
            ));
        }
        if r.blob().ok_or_else(corrupt)? != settings.as_bytes() {
            return Err("made with other decode settings".into());
        }
        let count = r.u64().ok_or_else(corrupt)?;
        // Each entry takes at least 4 + 8 + 16 + 1 bytes: a count larger than that is corrupt.
        if count > (body.len() / 29) as u64 {
            return Err(corrupt());
        }
        let mut entries = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let path = r.blob().ok_or_else(corrupt)?.to_vec();
            let size = r.u64().ok_or_else(corrupt)?;
            let mtime_ns = r.i128().ok_or_else(corrupt)?;
            let stored = match r.array::<1>().ok_or_else(corrupt)?[0] {
                TAG_PIXELS => {
                    let at = r.pos;
                    r.take(PIXELS).ok_or_else(corrupt)?;
                    Stored::Pixels(at)
                }
                TAG_BAD => {
                    let reason = r.blob().ok_or_else(corrupt)?;
                    Stored::Bad(String::from_utf8_lossy(reason).into_owned())
                }
                _ => return Err(corrupt()),
            };
            entries.insert(
                path,
                Entry {
                    size,
                    mtime_ns,
                    stored,
                },
            );
        }
        if r.pos != body.len() {
            return Err(corrupt());
        }
        Ok(Cache { bytes, entries })
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The cached outcome for `file` when the cache holds its path with the same size and modification time.
    pub(crate) fn get(&self, file: &FileEntry) -> Option<Outcome<'_>> {
        let e = self.entries.get(key(&file.rel))?;
        if e.size != file.size || e.mtime_ns != file.mtime_ns || file.mtime_ns == UNKNOWN_MTIME {
            return None;
        }
        Some(match &e.stored {
            Stored::Pixels(at) => Ok(&self.bytes[*at..*at + PIXELS]),
            Stored::Bad(reason) => Err(reason.as_str()),
        })
    }
}

/// Writes through to `inner`, keeping the CRC-32 of what went through.
struct CrcWriter<'a> {
    inner: &'a mut dyn Write,
    crc: crc32fast::Hasher,
}

impl Write for CrcWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn blob(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let n = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("a cache entry's text is longer than 4 GiB"))?;
    w.write_all(&n.to_le_bytes())?;
    w.write_all(bytes)
}

/// Writes the cache file atomically: every file with its outcome.
pub(crate) fn write<'a>(
    path: &Path,
    settings: &str,
    entries: &[(&'a FileEntry, Outcome<'a>)],
) -> crate::Result<()> {
    cifar_types::atomic::write_with(path, |inner| {
        let mut w = CrcWriter {
            inner,
            crc: crc32fast::Hasher::new(),
        };
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT_VERSION.to_le_bytes())?;
        blob(&mut w, settings.as_bytes())?;
        w.write_all(&(entries.len() as u64).to_le_bytes())?;
        for (file, outcome) in entries {
            blob(&mut w, key(&file.rel))?;
            w.write_all(&file.size.to_le_bytes())?;
            w.write_all(&file.mtime_ns.to_le_bytes())?;
            match outcome {
                Ok(pixels) => {
                    w.write_all(&[TAG_PIXELS])?;
                    w.write_all(pixels)?;
                }
                Err(reason) => {
                    w.write_all(&[TAG_BAD])?;
                    blob(&mut w, reason.as_bytes())?;
                }
            }
        }
        let crc = w.crc.finalize();
        w.inner.write_all(&crc.to_le_bytes())
    })?;
    Ok(())
}
