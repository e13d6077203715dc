//! A long-running server gives its memory back: resident memory, read from `/proc/self/status`, is back within
//! 100 MiB of its idle figure 10 s after a burst of decompression bombs and large images. The test process uses
//! mimalloc with its default settings, as `cifar serve` does (the binary keeps freed memory only for training).

mod common;
use common::*;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A 12000x12000 grey PNG (~140 KB): 144 MB decoded, within the default limits.
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

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> u16 {
    client
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_to_the_os_after_a_burst_of_bombs_and_large_images() {
    let Some(_) = rss_kib() else {
        eprintln!("skipped: no /proc/self/status on this system");
        return;
    };
    let s = TestServer::start(cifar10_serve::Config::default());
    let client = reqwest::Client::new();
    let url = format!("{}/predict", s.url);
    // Warm up: the model, the runtime's threads, a few ordinary requests.
    for i in 0..8 {
        assert_eq!(post(&client, &url, png(64, 48, i)).await, 200);
    }
    let grey = grey_bomb();
    let huge = bomb();
    let large = encode(
        &image::DynamicImage::ImageRgb8(picture(3000, 2000, 1)),
        image::ImageFormat::Jpeg,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib().unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let body = match i % 3 {
            0 => grey.clone(),
            1 => huge.clone(),
            _ => large.clone(),
        };
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { (i % 3, post(&client, &url, body).await) });
    }
    let mut peak = idle;
    let mut answers = Vec::new();
    while let Some(r) = tasks.join_next().await {
        answers.push(r.unwrap());
        peak = peak.max(rss_kib().unwrap());
    }
    answers.sort();
    // The grey bombs and the large images are classified; the 2.5-gigapixel bomb is refused (413).
    for (kind, status) in &answers {
        let want = if *kind == 1 { 413 } else { 200 };
        assert_eq!(*status, want, "{answers:?}");
    }
    drop((grey, huge, large));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = rss_kib().unwrap();
    // The server still answers.
    assert_eq!(post(&client, &url, png(64, 48, 9)).await, 200);
    eprintln!(
        "resident memory: idle {} MiB, peak seen {} MiB, 10 s after the burst {} MiB",
        idle / 1024,
        peak / 1024,
        after / 1024
    );
    assert!(
        after <= idle + 100 * 1024,
        "resident memory {} MiB 10 s after the burst, idle {} MiB (peak {} MiB)",
        after / 1024,
        idle / 1024,
        peak / 1024
    );
}
