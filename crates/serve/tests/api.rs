//! `cifar serve`'s HTTP API against a server on an ephemeral loopback port: good images of every format, every
//! kind of bad request (each answered with a JSON 4xx while the server keeps serving), 200 concurrent requests,
//! the busy and timeout answers, the page and the run files, and shutdown.

mod common;

use common::*;
use image::{DynamicImage, ImageBuffer, Luma, Rgba};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

type Resp = (StatusCode, reqwest::header::HeaderMap, Value);

async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Resp {
    let mut r = client.post(url).body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:?}"));
    (status, headers, v)
}

async fn get_json(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text:?}")),
    )
}

async fn assert_healthy(client: &reqwest::Client, s: &TestServer, after: &str) {
    let (status, v) = get_json(client, &format!("{}/health", s.url)).await;
    assert_eq!(status, StatusCode::OK, "after {after}: {v}");
    assert_eq!(v["status"], "ok", "after {after}: {v}");
}

/// A form part: field name, file name, content type, content.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart/form-data body of `parts`: (its Content-Type, the body).
fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "----cifar-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, file, ct, data) in parts {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").bytes(),
        );
        if let Some(f) = file {
            body.extend(format!("; filename=\"{f}\"").bytes());
        }
        body.extend(b"\r\n");
        if let Some(ct) = ct {
            body.extend(format!("Content-Type: {ct}\r\n").bytes());
        }
        body.extend(b"\r\n");
        body.extend_from_slice(data);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_images_of_every_format_get_the_predict_librarys_answer() {
    let s = TestServer::start(cifar10_serve::Config::default());
    let lib = session(&s.checkpoint);
    let client = reqwest::Client::new();
    let rgb = picture(40, 30, 1);
    let rgba = ImageBuffer::from_fn(40, 30, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        Rgba([p[0], p[1], p[2], 255])
    });
    let grey = ImageBuffer::from_fn(33, 33, |x, y| Luma([((x * 5 + y * 3) % 256) as u8]));
    let grey16 = ImageBuffer::from_fn(33, 33, |x, y| {
        Luma([u16::from(grey.get_pixel(x, y).0[0]) * 257])
    });
    use image::ImageFormat as F;
    let files: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "png",
            "image/png",
            encode(&DynamicImage::ImageRgb8(rgb.clone()), F::Png),
        ),
        (
            "png16",
            "image/png",
            encode(&DynamicImage::ImageLuma16(grey16), F::Png),
        ),
        (
            "jpeg",
            "image/jpeg",
            encode(&DynamicImage::ImageRgb8(rgb.clone()), F::Jpeg),
        ),
        (
            "bmp",
            "image/bmp",
            encode(&DynamicImage::ImageRgb8(rgb.clone()), F::Bmp),
        ),
        (
            "gif",
            "image/gif",
            encode(&DynamicImage::ImageRgba8(rgba.clone()), F::Gif),
        ),
        (
            "webp",
            "image/webp",
            encode(&DynamicImage::ImageRgba8(rgba), F::WebP),
        ),
        (
            "tiff",
            "image/tiff",
            encode(&DynamicImage::ImageLuma8(grey), F::Tiff),
        ),
        // The content decides, not the declared type; no type at all is a raw body too.
        (
            "png as octet-stream",
            "application/octet-stream",
            png(64, 64, 2),
        ),
        (
            "jpeg declared png",
            "image/png",
            encode(&DynamicImage::ImageRgb8(rgb), F::Jpeg),
        ),
    ];
    for (what, ct, bytes) in &files {
        let (status, _, v) = post(
            &client,
            &format!("{}/predict", s.url),
            Some(ct),
            bytes.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{what}: {v}");
        assert_eq!(v["model"], "cnn-dnn");
        assert!(v["ms"].as_f64().unwrap() >= 0.0);
        assert_same(&predictions(&v), &library_top(&lib, bytes, 5), what);
    }
    let bytes = png(50, 20, 3);
    let (status, h, v) = post(
        &client,
        &format!("{}/predict?top_k=10", s.url),
        None,
        bytes.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(h["cache-control"], "no-store");
    let all = predictions(&v);
    assert_same(&all, &library_top(&lib, &bytes, 10), "top_k=10");
    assert!((all.iter().map(|(_, p)| p).sum::<f32>() - 1.0).abs() < 1e-4);
    assert_eq!(v["image"]["format"], "png");
    assert_eq!(
        (v["image"]["width"].as_u64(), v["image"]["height"].as_u64()),
        (Some(50), Some(20))
    );
    // A multipart form, as a browser's <form> sends it (a text field first, then the file).
    let (ct, body) = multipart(&[
        ("note", None, None, b"hello"),
        ("image", Some("x.png"), Some("image/png"), &bytes),
    ]);
    let (status, _, v) = post(
        &client,
        &format!("{}/predict?top_k=10", s.url),
        Some(&ct),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_same(&predictions(&v), &all, "multipart");
    assert_healthy(&client, &s, "good images").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_a_json_4xx_and_the_server_keeps_serving() {
    let s = TestServer::start(cifar10_serve::Config {
        max_body: 1024 * 1024,
        ..cifar10_serve::Config::default()
    });
    let client = reqwest::Client::new();
    let url = format!("{}/predict", s.url);
    let good = png(64, 64, 4);
    let (two_files_ct, two_files) = multipart(&[
        ("a", Some("a.png"), Some("image/png"), &good),
        ("b", Some("b.png"), Some("image/png"), &good),
    ]);
    let (no_file_ct, no_file) = multipart(&[("a", None, None, b""), ("b", None, None, b"x")]);
    // (what, Content-Type, body, expected status, expected in the error message)
    type Case<'a> = (&'a str, Option<String>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated png",
            Some("image/png".into()),
            good[..good.len() / 2].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot decode as Png",
        ),
        (
            "text body",
            Some("image/png".into()),
            b"this is not a picture\n".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image",
        ),
        (
            "text content type",
            Some("text/plain".into()),
            b"hello".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Type \"text/plain\"",
        ),
        (
            "json content type",
            Some("application/json".into()),
            good.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Type",
        ),
        (
            "empty body",
            Some("image/png".into()),
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "the body is empty",
        ),
        (
            "bomb",
            Some("image/png".into()),
            bomb(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large to decode safely",
        ),
        (
            "oversized body",
            Some("image/png".into()),
            vec![0u8; 1024 * 1024 + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit of 1 MiB",
        ),
        (
            "two files",
            Some(two_files_ct),
            two_files,
            StatusCode::BAD_REQUEST,
            "one image per request",
        ),
        (
            "no file",
            Some(no_file_ct),
            no_file,
            StatusCode::BAD_REQUEST,
            "no image in the multipart form",
        ),
        (
            "no boundary",
            Some("multipart/form-data".into()),
            good.clone(),
            StatusCode::BAD_REQUEST,
            "bad multipart form",
        ),
        (
            "broken multipart",
            Some("multipart/form-data; boundary=x".into()),
            b"--x\r\nbroken".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad multipart form",
        ),
    ];
    for (what, ct, body, want, needle) in cases {
        let (status, _, v) = post(&client, &url, ct.as_deref(), body).await;
        assert_eq!(status, want, "{what}: {v}");
        let e = v["error"].as_str().unwrap_or_else(|| panic!("{what}: {v}"));
        assert!(e.contains(needle), "{what}: {e}");
        assert_healthy(&client, &s, what).await;
    }
    // Refused before its body is read (here a 3 MiB body of the wrong type, over the 1 MiB limit too): the server
    // reads the rest without keeping it, so the client gets the answer, not a reset, and may reuse the connection.
    for _ in 0..3 {
        let (status, h, _) = post(&client, &url, Some("text/plain"), vec![b'x'; 3 << 20]).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(h.get("connection").is_none(), "{h:?}");
        assert_healthy(&client, &s, "a large refused body").await;
    }
    for (what, q, needle) in [
        ("top_k=0", "?top_k=0", "top_k"),
        ("top_k=abc", "?top_k=abc", "bad query"),
    ] {
        let (status, _, v) = post(
            &client,
            &format!("{url}{q}"),
            Some("image/png"),
            good.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{what}: {v}");
    }
    // An oversized body without a Content-Length (chunked): cut off at the limit.
    let chunk = vec![b'x'; 64 * 1024];
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    for _ in 0..17 {
        let mut p = format!("{:x}\r\n", chunk.len()).into_bytes();
        p.extend_from_slice(&chunk);
        p.extend_from_slice(b"\r\n");
        pieces.push(p);
    }
    pieces.push(b"0\r\n\r\n".to_vec());
    let refs: Vec<&[u8]> = pieces.iter().map(|p| p.as_slice()).collect();
    let (status, body) = raw(
        s.addr,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        &refs,
        None,
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    assert_healthy(&client, &s, "chunked oversized body").await;
    // Other methods and paths: JSON errors too.
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(v["error"].is_string(), "{v}");
    for path in [
        "/nope",
        "/run/..%2F..%2Fetc%2Fpasswd",
        "/run/best.safetensors",
        "/samples/zebra.png",
    ] {
        let (status, v) = get_json(&client, &format!("{}{path}", s.url)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    // Still serving good requests.
    let (status, _, v) = post(&client, &url, Some("image/png"), good).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_are_answered_like_predict_in_shared_batches() {
    let s = TestServer::start(cifar10_serve::Config::default());
    let lib = session(&s.checkpoint);
    let images: Vec<Vec<u8>> = (0..20).map(|i| png(24 + i, 40 - i, i)).collect();
    let want: Vec<Vec<(String, f32)>> = images.iter().map(|b| library_top(&lib, b, 3)).collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let rss_before = rss_kib();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (client, url, body) = (
            client.clone(),
            format!("{}/predict?top_k=3", s.url),
            images[i % 20].clone(),
        );
        tasks.spawn(async move { (i, post(&client, &url, Some("image/png"), body).await) });
    }
    let mut answered = 0;
    while let Some(r) = tasks.join_next().await {
        let (i, (status, _, v)) = r.unwrap();
        assert_eq!(status, StatusCode::OK, "request {i}: {v}");
        assert_same(&predictions(&v), &want[i % 20], &format!("request {i}"));
        answered += 1;
    }
    assert_eq!(answered, 200);
    let (_, h) = get_json(&client, &format!("{}/health", s.url)).await;
    assert_eq!(h["images"].as_u64(), Some(200), "{h}");
    assert!(h["largest_batch"].as_u64().unwrap() > 1, "no batching: {h}");
    assert!(h["batches"].as_u64().unwrap() < 200, "{h}");
    assert_eq!(h["in_flight"].as_u64(), Some(0), "{h}");
    if let (Some(a), Some(b)) = (rss_before, rss_kib()) {
        let grown_mib = b.saturating_sub(a) / 1024;
        assert!(
            grown_mib < 256,
            "memory grew by {grown_mib} MiB for 200 small requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_503_and_a_slow_body_408() {
    let s = TestServer::start(cifar10_serve::Config {
        max_concurrent: 1,
        timeout: Duration::from_millis(1500),
        ..cifar10_serve::Config::default()
    });
    let addr = s.addr;
    // One request holds the only slot: its body arrives slowly and never completes.
    let slow = std::thread::spawn(move || {
        raw(
            addr,
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n",
            &[b"\x89PNG", b"\r\n", b"\x1a\n"],
            Some(Duration::from_millis(100)),
        )
    });
    let client = reqwest::Client::new();
    let url = format!("{}/predict", s.url);
    let mut busy = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (status, h, v) = post(&client, &url, Some("image/png"), png(32, 32, 1)).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            busy = Some((h, v));
            break;
        }
    }
    let (h, v) = busy.expect("never 503 while the only slot was taken");
    assert!(v["error"].as_str().unwrap().contains("busy"), "{v}");
    assert_eq!(h["retry-after"], "1");
    let (status, body) = slow.join().unwrap();
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("did not arrive within 1.5s"), "{body}");
    // The slot is free again.
    let (status, _, v) = post(&client, &url, Some("image/png"), png(32, 32, 1)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, h) = get_json(&client, &format!("{}/health", s.url)).await;
    assert!(h["rejected_busy"].as_u64().unwrap() >= 1, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_model_samples_and_run_files() {
    let report = r#"{"accuracy":0.806,"loss":0.6,"tta":"mirror","accuracy_without_tta":0.8012,"per_class":[],"confusion_matrix":[]}"#;
    let s = TestServer::start_with(cifar10_serve::Config::default(), |dir| {
        std::fs::write(dir.join("test_report.json"), report).unwrap();
        std::fs::write(
            dir.join("report.html"),
            "<html><body>the report</body></html>",
        )
        .unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
    });
    let client = reqwest::Client::new();
    let r = client.get(&s.url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<script>") && page.contains("/predict"),
        "{page}"
    );
    for external in ["http://", "https://", "src=\"//", "@import", "url("] {
        assert!(
            !page.contains(external),
            "the page loads something external: {external}"
        );
    }
    let (status, m) = get_json(&client, &format!("{}/model", s.url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["model"], "cnn-dnn");
    assert_eq!(m["class_names"][3], "cat");
    assert_eq!(m["input_size"], serde_json::json!([3, 32, 32]));
    assert_eq!(m["checkpoint"], "best.safetensors");
    assert_eq!(
        m["normalize"]["mean"][0].as_f64().map(|x| x as f32),
        Some(0.4914)
    );
    // The server runs without TTA: the report's figure without it.
    assert_eq!(
        m["test_accuracy"],
        serde_json::json!({"accuracy": 0.8012, "tta": "none"})
    );
    assert_eq!(m["report"], "/run/report.html");
    assert_eq!(m["limits"]["max_body_bytes"], 8 * 1024 * 1024);
    let r = client
        .get(format!("{}/run/report.html", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(r.text().await.unwrap().contains("the report"));
    let (status, _) = get_json(&client, &format!("{}/run/config.json", s.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The samples are PNGs the model classifies.
    let (_, list) = get_json(&client, &format!("{}/samples", s.url)).await;
    let list = list.as_array().unwrap();
    assert!(list.len() >= 4, "{list:?}");
    for sample in list {
        let r = client
            .get(format!("{}{}", s.url, sample["url"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "image/png");
        let bytes = r.bytes().await.unwrap().to_vec();
        let (status, _, v) = post(
            &client,
            &format!("{}/predict", s.url),
            Some("image/png"),
            bytes,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{sample}: {v}");
        assert_eq!(
            (v["image"]["width"].as_u64(), v["image"]["height"].as_u64()),
            (Some(32), Some(32))
        );
    }
}

#[test]
fn shutdown_answers_the_request_in_flight_then_stops() {
    let mut s = TestServer::start(cifar10_serve::Config {
        timeout: Duration::from_secs(2),
        ..cifar10_serve::Config::default()
    });
    let addr = s.addr;
    // A client that never finishes its headers does not hold the shutdown up for more than the grace period.
    let mut stuck = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut stuck, b"POST /predict HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A request whose body is still arriving when the shutdown begins.
    let image = png(48, 48, 5);
    let (first, second) = image.split_at(image.len() / 2);
    let (first, second) = (first.to_vec(), second.to_vec());
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        image.len()
    );
    let in_flight = std::thread::spawn(move || {
        raw(
            addr,
            &head,
            &[&first, &second],
            Some(Duration::from_millis(400)),
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    let t = std::time::Instant::now();
    s.stop().expect("the server did not stop cleanly");
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"predictions\""), "{body}");
    // The grace period is the timeout + 1 s.
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening after shutdown"
    );
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_does_not_run_or_a_taken_port_fails_at_start() {
    let s = TestServer::start(cifar10_serve::Config::default());
    let taken = cifar10_serve::Config {
        addr: s.addr,
        ..cifar10_serve::Config::default()
    };
    match cifar10_serve::Server::bind(session(&s.checkpoint), taken).await {
        Err(cifar10_serve::Error::Bind { .. }) => {}
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("bound a port already in use"),
    }
    let bad = cifar10_serve::Config {
        max_batch: 0,
        ..cifar10_serve::Config::default()
    };
    match cifar10_serve::Server::bind(session(&s.checkpoint), bad).await {
        Err(cifar10_serve::Error::Setting { setting, .. }) => assert_eq!(setting, "max_batch"),
        Err(e) => panic!("expected a setting error, got {e}"),
        Ok(_) => panic!("accepted max_batch 0"),
    }
    // A model whose outputs do not match its class names fails its warm-up.
    let net = model::registry::build("cnn-dnn", &candle_core::Device::Cpu, 1, 10).unwrap();
    let meta = model::checkpoint::ModelMeta::for_model(
        net.as_ref(),
        Default::default(),
        vec!["a".into(), "b".into()],
    );
    let wrong = predict::Session::new(net, meta, predict::Tta::None);
    let cfg = cifar10_serve::Config {
        addr: ([127, 0, 0, 1], 0).into(),
        ..cifar10_serve::Config::default()
    };
    match cifar10_serve::Server::bind(wrong, cfg).await {
        Err(e @ cifar10_serve::Error::Model(_)) => {
            assert!(e.to_string().contains("10 outputs"), "{e}")
        }
        Err(e) => panic!("expected a model error, got {e}"),
        Ok(_) => panic!("served a model with 10 outputs and 2 class names"),
    }
}

/// A client that trickles its header lines (one byte every 100 ms, never finishing) loses its connection once
/// the timeout has passed; the server answers others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_cut_off_at_the_timeout() {
    use std::io::{Read, Write};
    let s = TestServer::start(cifar10_serve::Config {
        timeout: Duration::from_millis(1500),
        ..cifar10_serve::Config::default()
    });
    let addr = s.addr;
    let trickler = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let t0 = std::time::Instant::now();
        let mut buf = [0u8; 256];
        while t0.elapsed() < Duration::from_secs(10) {
            if c.write_all(b"a").is_err() {
                return t0.elapsed();
            }
            match c.read(&mut buf) {
                Ok(0) => return t0.elapsed(),
                Ok(_) => {} // an error answer (e.g. 408) before the close
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return t0.elapsed(),
            }
        }
        panic!("the connection was still open after 10 s of trickled headers");
    });
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_healthy(&client, &s, "while a client trickles its headers").await;
    let cut = tokio::task::spawn_blocking(move || trickler.join().unwrap())
        .await
        .unwrap();
    assert!(
        cut >= Duration::from_millis(1000) && cut < Duration::from_millis(4500),
        "cut off after {cut:?} (timeout 1.5 s)"
    );
    assert_healthy(&client, &s, "after cutting it off").await;
}
