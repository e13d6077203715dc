//! A small load generator for `cifar serve`: N clients each send `POST /predict` back to back (keep-alive) for a
//! fixed time; per concurrency level it reports requests/s and the p50/p99 latency of the answered requests.
//!
//! ```text
//! cargo run --release -p cli -- serve --checkpoint runs/NAME/best.safetensors --device cpu &
//! cargo run --release -p cifar10-serve --example loadgen -- --url http://127.0.0.1:8080 [--concurrency 1,8,64]
//!     [--seconds 10] [--image PHOTO.jpg]
//! cargo run --release -p cifar10-serve --example loadgen -- --checkpoint runs/NAME/best.safetensors   # in-process
//! ```
//!
//! The image defaults to the built-in `cat` sample (a 32x32 PNG); `--image` sends a file of yours instead (any
//! size: decoding a large photo is then part of each request).

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Requests/s and latency of cifar serve at several concurrency levels")]
struct Args {
    /// The server to load (`cifar serve` running elsewhere).
    #[arg(long, conflicts_with = "checkpoint")]
    url: Option<String>,
    /// Start a server in this process for this checkpoint instead (default settings, CPU, loopback).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The image every request sends [default: the built-in cat sample].
    #[arg(long)]
    image: Option<PathBuf>,
    /// Concurrent clients, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Measured seconds per level (after a one-second warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

/// One level's figures.
struct Level {
    clients: usize,
    ok: usize,
    failed: usize,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn level(url: &str, image: &[u8], clients: usize, seconds: f64) -> Result<Level> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, url, body) = (client.clone(), format!("{url}/predict"), image.to_vec());
        tasks.spawn(async move {
            let (mut lat, mut failed) = (Vec::new(), 0usize);
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let r = client
                    .post(&url)
                    .header("content-type", "image/png")
                    .body(body.clone())
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let done = Instant::now();
                if t >= warm_until && done <= end {
                    if ok {
                        lat.push(done.duration_since(t).as_secs_f64() * 1e3);
                    } else {
                        failed += 1;
                    }
                }
            }
            (lat, failed)
        });
    }
    let (mut lat, mut failed) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        let (l, f) = r?;
        lat.extend(l);
        failed += f;
    }
    lat.sort_by(f64::total_cmp);
    Ok(Level {
        clients,
        ok: lat.len(),
        failed,
        per_s: lat.len() as f64 / seconds,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    })
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.concurrency.contains(&0) || !(a.seconds.is_finite() && a.seconds > 0.0) {
        bail!("--concurrency and --seconds must be positive");
    }
    let image = match &a.image {
        Some(p) => std::fs::read(p).with_context(|| format!("{}", p.display()))?,
        None => cifar10_serve::samples::get("cat")
            .context("no built-in cat sample")?
            .to_vec(),
    };
    // An in-process server runs on its own runtime and threads, apart from the clients'.
    let mut local = None;
    let url = match (&a.url, &a.checkpoint) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(ckpt)) => {
            let session =
                predict::Session::load(ckpt, &candle_core::Device::Cpu, predict::Tta::None)?;
            let (tx, rx) = std::sync::mpsc::channel();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let config = cifar10_serve::Config {
                        addr: ([127, 0, 0, 1], 0).into(),
                        ..cifar10_serve::Config::default()
                    };
                    let server = cifar10_serve::Server::bind(session, config).await?;
                    let _ = tx.send(server.url());
                    server
                        .run(async {
                            let _ = stopped.await;
                        })
                        .await?;
                    Ok(())
                })
            });
            let url = rx.recv().context("the in-process server did not start")?;
            local = Some((stop, thread));
            url.trim_end_matches('/').to_string()
        }
        (None, None) => bail!("give --url of a running server or --checkpoint to start one"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "# {url}/predict, {} bytes per request, {}s per level",
        image.len(),
        a.seconds
    );
    println!("| clients | requests/s | p50 ms | p99 ms | answered | failed |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &c in &a.concurrency {
        let l = rt.block_on(level(&url, &image, c, a.seconds))?;
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            l.clients, l.per_s, l.p50_ms, l.p99_ms, l.ok, l.failed
        );
    }
    if let Some((stop, thread)) = local {
        let _ = stop.send(());
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    }
    Ok(())
}
