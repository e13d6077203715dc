//! Shared by the integration tests: a tiny checkpoint, a server on an ephemeral loopback port, test images and a
//! raw HTTP/1.1 client for the requests reqwest will not send (partial bodies, chunked oversized bodies).
#![allow(dead_code)]

use image::{DynamicImage, ImageBuffer, Rgb};
use predict::{Crop, DecodeLimits, Session, Tta};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CIFAR10_NORM: &str = r#"{"mean":[0.4914,0.4822,0.4465],"std":[0.247,0.2435,0.2616]}"#;

/// A seeded cnn-dnn checkpoint with the CIFAR-10 normalization, as `crates/cli/tests` make theirs.
pub fn make_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("best.safetensors");
    let m = model::registry::build("cnn-dnn", &candle_core::Device::Cpu, 7, 10).unwrap();
    let meta = HashMap::from([("normalize".to_string(), CIFAR10_NORM.to_string())]);
    model::checkpoint::save_model(m.as_ref(), &path, meta).unwrap();
    path
}

pub fn session(ckpt: &Path) -> Session {
    Session::load(ckpt, &candle_core::Device::Cpu, Tta::None).unwrap()
}

/// A server on 127.0.0.1:0 in its own thread and runtime; stopped (and checked to stop cleanly) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    pub checkpoint: PathBuf,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<cifar10_serve::Result<()>>>,
}

impl TestServer {
    /// Starts a server for a fresh checkpoint in a temp dir; `prepare` may add run files before it starts.
    pub fn start_with(config: cifar10_serve::Config, prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = make_checkpoint(dir.path());
        prepare(dir.path());
        let config = cifar10_serve::Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..config
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ckpt = checkpoint.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = match cifar10_serve::Server::bind(session(&ckpt), config).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return Ok(());
                    }
                };
                tx.send(Ok(server.local_addr())).unwrap();
                server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        });
        let addr = rx.recv().unwrap().unwrap();
        TestServer {
            addr,
            url: format!("http://{addr}"),
            checkpoint,
            dir,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn start(config: cifar10_serve::Config) -> Self {
        Self::start_with(config, |_| {})
    }

    /// Sends the shutdown signal and waits for `Server::run` to return; its result.
    pub fn stop(&mut self) -> cifar10_serve::Result<()> {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().expect("the server thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop().unwrap();
        }
    }
}

/// A deterministic 8-bit RGB picture (gradients and blocks, different per `seed`).
pub fn picture(w: u32, h: u32, seed: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 255 / w.max(1) + seed * 37) % 256) as u8,
            ((y * 255 / h.max(1) + seed * 11) % 256) as u8,
            if (x / 8 + y / 8 + seed).is_multiple_of(2) {
                200
            } else {
                40
            },
        ])
    })
}

pub fn encode(img: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

pub fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(picture(w, h, seed)),
        image::ImageFormat::Png,
    )
}

/// A 50,000 x 50,000 1-bit PNG of ~300 KB: 2.5 gigapixels when decoded.
pub fn bomb() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, 50_000, 50_000);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        enc.set_compression(png::Compression::Fastest);
        let mut w = enc.write_header().unwrap();
        let mut s = w.stream_writer().unwrap();
        let row = vec![0u8; 50_000 / 8];
        for _ in 0..2_000 {
            s.write_all(&row).unwrap();
        }
    }
    out
}

/// What the predict library says about `bytes` (a batch of one): every class's probability by index.
pub fn library_probabilities(session: &Session, bytes: &[u8]) -> Vec<f32> {
    let input = predict::load_bytes(bytes, Crop::Center, DecodeLimits::default()).unwrap();
    session.probabilities(&[&input.pixels]).unwrap().remove(0)
}

/// `{"predictions":[...]}` → (class, p) pairs.
pub fn predictions(v: &serde_json::Value) -> Vec<(String, f32)> {
    v["predictions"]
        .as_array()
        .unwrap_or_else(|| panic!("no predictions in {v}"))
        .iter()
        .map(|p| {
            (
                p["class"].as_str().unwrap().to_string(),
                p["p"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

/// The library's top-k as (class, p) pairs.
pub fn library_top(session: &Session, bytes: &[u8], k: usize) -> Vec<(String, f32)> {
    let p = library_probabilities(session, bytes);
    predict::top_k(&p, session.class_names(), k)
        .into_iter()
        .map(|r| (r.class.to_string(), r.probability))
        .collect()
}

/// Asserts the server's answer lists the library's classes in the same order with the same probabilities, to
/// 1e-6: batched with other images, an image's probabilities can differ in the last bit (the GEMM's blocking
/// depends on the batch size; `cifar predict`'s batches of 256 are no different).
pub fn assert_same(got: &[(String, f32)], want: &[(String, f32)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for ((gc, gp), (wc, wp)) in got.iter().zip(want) {
        assert_eq!(gc, wc, "{what}: {got:?} vs {want:?}");
        assert!((gp - wp).abs() <= 1e-6, "{what}: {got:?} vs {want:?}");
    }
}

/// A raw HTTP/1.1 exchange: writes `head` then `body` (in pieces `pause` apart when `pause` is given), reads the
/// answer until the server closes or `Content-Length` bytes came; returns (status, body).
pub fn raw(addr: SocketAddr, head: &str, body: &[&[u8]], pause: Option<Duration>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    for piece in body {
        // The server may answer (413) and close before the whole body is sent.
        if s.write_all(piece).is_err() {
            break;
        }
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    read_response(&mut s)
}

pub fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(len) = len
                && buf.len() >= end + 4 + len
            {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Resident memory of this process in KiB (Linux), for bounds on what a burst of requests costs.
pub fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
