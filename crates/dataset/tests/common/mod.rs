//! Shared test helpers: a tiny loopback HTTP/1.1 server and builders of fake CIFAR-10 archives.
#![allow(dead_code)]

use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES};
use cifar10_dataset::{BATCH_DIR, Layout, META_FILE, RECORD_BYTES, TEST_FILE, TRAIN_FILES};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Small layout used by most tests: 3 records per batch.
pub const SMALL: Layout = Layout::new(cifar10_dataset::Dataset::Cifar10, 3);

/// What the server does for one connection.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Serve the body; with `ranges`, answer a `Range: bytes=N-` request with 206 and the rest.
    Body { ranges: bool },
    /// Like `Body { ranges: true }`, but close the connection after sending `n` body bytes (headers announce all).
    CutAfter(usize),
    /// Answer with this status and a short text body.
    Status(u16),
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub path: String,
    pub range_start: Option<u64>,
}

pub struct Server {
    pub url: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl Server {
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// Starts a loopback server that serves `body` at any path. Connection `i` follows `script[i]` (the last entry
/// repeats). The thread stops by itself after `script.len() + 4` connections or 30 seconds.
pub fn serve(body: Vec<u8>, script: Vec<Reply>) -> Server {
    assert!(!script.is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "http://{}/cifar-10-binary.tar.gz",
        listener.local_addr().unwrap()
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let max = script.len() + 4;
        let mut handled = 0;
        while handled < max && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    let reply = script[handled.min(script.len() - 1)].clone();
                    handled += 1;
                    let _ = handle(stream, &body, &reply, &seen2);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => break,
            }
        }
    });
    Server { url, seen }
}

fn handle(
    mut stream: TcpStream,
    body: &[u8],
    reply: &Reply,
    seen: &Mutex<Vec<SeenRequest>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let range_start = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.trim().eq_ignore_ascii_case("range") {
            return None;
        }
        v.trim()
            .strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse::<u64>()
            .ok()
    });
    seen.lock().unwrap().push(SeenRequest { path, range_start });

    let (ranges, cut) = match reply {
        Reply::Status(code) => {
            let text = format!("status {code}\n");
            write!(
                stream,
                "HTTP/1.1 {code} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )?;
            return stream.flush();
        }
        Reply::Body { ranges } => (*ranges, None),
        Reply::CutAfter(n) => (true, Some(*n)),
    };
    let total = body.len() as u64;
    let (status, start) = match range_start {
        Some(s) if ranges && s < total => ("206 Partial Content", s),
        _ => ("200 OK", 0),
    };
    let rest = &body[start as usize..];
    let mut headers = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n",
        rest.len()
    );
    if start > 0 {
        headers.push_str(&format!(
            "Content-Range: bytes {start}-{}/{total}\r\n",
            total - 1
        ));
    }
    headers.push_str("\r\n");
    stream.write_all(headers.as_bytes())?;
    let send = cut.map_or(rest.len(), |n| n.min(rest.len()));
    stream.write_all(&rest[..send])?;
    stream.flush()?;
    // Dropping the stream closes the connection (cutting the body short for `CutAfter`).
    Ok(())
}

/// A batch of `records` records with labels `(i + offset) % 10` and pixels derived from (record, byte, offset).
pub fn fake_batch(records: usize, offset: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(records * RECORD_BYTES);
    for i in 0..records {
        out.push(((i + offset) % 10) as u8);
        out.extend((0..IMAGE_BYTES).map(|j| ((j * 7 + i * 13 + offset * 31) % 256) as u8));
    }
    out
}

pub fn meta_text() -> String {
    let mut s = CIFAR10_CLASS_NAMES.join("\n");
    s.push_str("\n\n");
    s
}

/// A member of a test archive.
pub enum Entry {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    HardLink(String, String),
}

/// The members of a valid archive with `layout` (batch `k` uses label offset `k`), plus a readme to be ignored.
pub fn good_entries(layout: Layout) -> Vec<Entry> {
    let mut v = vec![Entry::Dir(format!("{BATCH_DIR}/"))];
    let files: Vec<&str> = TRAIN_FILES.iter().copied().chain([TEST_FILE]).collect();
    for (k, f) in files.iter().enumerate() {
        v.push(Entry::File(
            format!("{BATCH_DIR}/{f}"),
            fake_batch(layout.records_per_batch, k),
        ));
    }
    v.push(Entry::File(
        format!("{BATCH_DIR}/{META_FILE}"),
        meta_text().into_bytes(),
    ));
    v.push(Entry::File(
        format!("{BATCH_DIR}/readme.html"),
        b"<html>ignored</html>".to_vec(),
    ));
    v
}

/// Builds a `.tar.gz` from `entries`, writing names raw (so `../x` and `/x` can be produced).
pub fn build_targz(entries: &[Entry]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, data, kind, link): (&str, &[u8], tar::EntryType, Option<&str>) = match e {
            Entry::File(n, d) => (n, d, tar::EntryType::Regular, None),
            Entry::Dir(n) => (n, &[], tar::EntryType::Directory, None),
            Entry::Symlink(n, t) => (n, &[], tar::EntryType::Symlink, Some(t)),
            Entry::HardLink(n, t) => (n, &[], tar::EntryType::Link, Some(t)),
        };
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        if let Some(t) = link {
            h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// Writes a valid small archive into `dir` and returns its path.
pub fn write_good_archive(dir: &Path, layout: Layout) -> std::path::PathBuf {
    let p = dir.join("archive.tar.gz");
    std::fs::write(&p, build_targz(&good_entries(layout))).unwrap();
    p
}

/// Every path below `dir`, relative, sorted (to show that nothing else was written).
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

pub fn hex_md5(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
