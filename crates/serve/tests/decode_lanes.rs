//! Large images wait for their share of the decode memory (`Config::decode_memory`) without holding up small
//! images or `/health`: a client cannot stall the server with a handful of maximal images.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A 12000x12000 grey PNG (~140 KB): 144 MB decoded, within the default limits, far beyond `SMALL_DECODE`.
fn grey_bomb() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, 12_000, 12_000);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_compression(png::Compression::Fastest);
        let mut w = enc.write_header().unwrap();
        let mut s = w.stream_writer().unwrap();
        let row = vec![0u8; 12_000];
        for _ in 0..12_000 {
            std::io::Write::write_all(&mut s, &row).unwrap();
        }
        s.finish().unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_images_and_health_are_not_stuck_behind_large_decodes() {
    // One decode thread: before the two lanes, a small image queued behind every large one.
    let s = TestServer::start(cifar10_serve::Config {
        decode_threads: 1,
        ..cifar10_serve::Config::default()
    });
    let client = reqwest::Client::new();
    let url = format!("{}/predict", s.url);
    let bomb = grey_bomb();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    const BOMBS: usize = 3;
    for _ in 0..BOMBS {
        let (client, url, body, finished) =
            (client.clone(), url.clone(), bomb.clone(), finished.clone());
        tasks.spawn(async move {
            let r = client.post(&url).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            finished.fetch_add(1, Ordering::SeqCst);
            status
        });
    }
    // Wait until the server holds all of them.
    loop {
        let text = client
            .get(format!("{}/health", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let h: serde_json::Value = serde_json::from_str(&text).unwrap();
        if h["in_flight"].as_u64() == Some(BOMBS as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Large images decode one at a time (256 MiB of decode memory, ~150 MB each): while the first is decoding
    // the others wait, and a small image and /health are answered meanwhile.
    let small = client
        .post(&url)
        .header("content-type", "image/png")
        .body(png(64, 48, 3))
        .send()
        .await
        .unwrap();
    let finished_when_small = finished.load(Ordering::SeqCst);
    assert_eq!(small.status().as_u16(), 200);
    let health = client
        .get(format!("{}/health", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        finished_when_small < BOMBS - 1,
        "the small image was answered only after {finished_when_small} of {BOMBS} large ones"
    );
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap(), 200);
    }
}

#[test]
fn the_decode_memory_setting_is_checked() {
    let e = cifar10_serve::Config {
        decode_memory: 1000,
        ..cifar10_serve::Config::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("decode_memory"), "{e}");
}
