//! `cifar serve` as a user runs it: the URL on stdout, the same answers as `cifar predict`, bad flags as one-line
//! errors, and a clean exit on Ctrl-C (SIGINT).

use candle_core::Device;
use image::{DynamicImage, ImageBuffer, Rgb};
use model::checkpoint;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn make_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("best.safetensors");
    let m = model::registry::build("cnn-dnn", &Device::Cpu, 7, 10).unwrap();
    let meta = HashMap::from([(
        "normalize".to_string(),
        r#"{"mean":[0.4914,0.4822,0.4465],"std":[0.247,0.2435,0.2616]}"#.to_string(),
    )]);
    checkpoint::save_model(m.as_ref(), &path, meta).unwrap();
    path
}

fn cifar() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cifar"));
    c.env("RUST_LOG", "info");
    c
}

/// One HTTP/1.1 request on a fresh connection; (status, body).
fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// A `cifar serve` child, killed if the test ends without stopping it (a failed assertion).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `cifar serve` on a free loopback port; the child and `host:port` read from its first stdout line.
fn start(ckpt: &Path, extra: &[&str]) -> (Server, String) {
    let mut child = cifar()
        .args([
            "serve",
            "--device",
            "cpu",
            "--addr",
            "127.0.0.1:0",
            "--checkpoint",
        ])
        .arg(ckpt)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(str::to_string);
    match addr {
        Some(a) => (Server(child), a),
        None => {
            let _ = child.kill();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("no URL on stdout: {line:?}\n{err}");
        }
    }
}

#[test]
fn serve_answers_like_predict_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let img = ImageBuffer::from_fn(45, 30, |x, y| {
        Rgb([(x * 5) as u8, (y * 7) as u8, ((x ^ y) * 3) as u8])
    });
    let file = dir.path().join("x.png");
    DynamicImage::ImageRgb8(img).save(&file).unwrap();
    let o = cifar()
        .args([
            "predict",
            "--json",
            "--top-k",
            "5",
            "--device",
            "cpu",
            "--checkpoint",
        ])
        .arg(&ckpt)
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let want: Vec<(String, f64)> = line["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["class"].as_str().unwrap().to_string(),
                t["probability"].as_f64().unwrap(),
            )
        })
        .collect();

    let (mut server, addr) = start(&ckpt, &[]);
    let child = &mut server.0;
    let (status, body) = http(&addr, "GET", "/health", "text/plain", b"");
    assert_eq!(status, 200, "{body}");
    let bytes = std::fs::read(&file).unwrap();
    let (status, body) = http(&addr, "POST", "/predict", "image/png", &bytes);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let got: Vec<(String, f64)> = v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["class"].as_str().unwrap().to_string(),
                p["p"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for ((gc, gp), (wc, wp)) in got.iter().zip(&want) {
        assert_eq!(gc, wc, "{got:?} vs {want:?}");
        assert!((gp - wp).abs() <= 1e-6, "{got:?} vs {want:?}");
    }
    let (status, body) = http(&addr, "POST", "/predict", "text/plain", b"hello");
    assert_eq!(status, 415, "{body}");
    // The icon browsers ask for is there (no 404 in the log).
    let (status, body) = http(&addr, "GET", "/favicon.ico", "text/plain", b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("<svg"), "{body}");

    // Ctrl-C.
    // SAFETY: kill(2) with the id of the child this test started and still owns.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("cifar serve did not stop within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(
        err.contains("Ctrl-C: shutting down") && err.contains("shut down cleanly"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The access log: a line per request with method, path, status, time and size; no image content.
    for line in [
        "GET /health 200 ",
        "POST /predict 200 ",
        "POST /predict 415 ",
        "GET /favicon.ico 200 ",
    ] {
        assert!(err.contains(line), "no access-log line {line:?} in:\n{err}");
    }
    assert!(
        err.lines()
            .any(|l| l.contains("GET /health 200") && l.ends_with(" B")),
        "{err}"
    );
    assert!(TcpStream::connect(&addr).is_err(), "still listening");
}

#[test]
fn bad_serve_flags_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = make_checkpoint(dir.path());
    let (_running, addr) = start(&ckpt, &[]);
    let cases: [(&[&str], &str); 6] = [
        (&["--max-body", "0"], "--max-body: expected a size in MiB"),
        (&["--max-batch", "0"], "--max-batch: expected at least 1"),
        (&["--top-k", "0"], "--top-k: expected at least 1"),
        (&["--timeout=-1"], "--timeout: expected a number of seconds"),
        (&["--tta-shift"], "--tta-shift: needs --tta"),
        (&["--addr", &addr], "--addr: cannot listen on"),
    ];
    for (args, needle) in cases {
        let o = cifar()
            .args(["serve", "--device", "cpu", "--checkpoint"])
            .arg(&ckpt)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{err}"
        );
    }
    let o = cifar()
        .args([
            "serve",
            "--device",
            "cpu",
            "--addr",
            "127.0.0.1:0",
            "--checkpoint",
        ])
        .arg(dir.path().join("missing.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--checkpoint") && err.contains("missing.safetensors"),
        "{err}"
    );
}
