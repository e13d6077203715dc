//! `cifar serve`: the web page and JSON API of the `serve` crate for a saved model, until Ctrl-C.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_long_help = "\
Routes: GET / (the page: drop or pick images, or try the built-in CIFAR-10 samples), POST /predict[?top_k=N] \
(the image as the body, Content-Type image/* or application/octet-stream, or one file of a multipart/form-data \
form; answers {\"predictions\":[{\"class\":\"cat\",\"p\":0.81},...],\"model\":...,\"ms\":...}), GET /model \
(the checkpoint's metadata, the run's test accuracy, the limits), GET /health, GET /run/report.html (the run's \
report, when the checkpoint's folder has one).

Images are decoded as `cifar predict` decodes them (same formats, EXIF orientation, crop and resize, same \
decoder limits: 30000 pixels a side, 256 MiB for all of one image's buffers; an image cut short is refused with \
422 unless --allow-partial). Small images (up to 16 MiB to decode) are decoded at once, one per core; larger \
ones one at a time (at most 256 MiB decoding at once), so that they never hold up small images, /health or the \
page. Nothing a client sends is written to disk. Every bad request gets a 4xx answer {\"error\": \"...\"}; \
when --max-concurrent requests are in flight, more get 503. Memory freed after a large image goes back to the \
system within seconds (the allocator setting that keeps it, for training, is not applied to the server).

The server listens on the loopback interface only unless --addr says otherwise; it has no authentication, so \
expose it (e.g. --addr 0.0.0.0:8080) only on a network you trust. Ctrl-C (or SIGTERM) stops it cleanly: no \
new connections, the requests in flight are answered (open connections get --timeout + 1 s); a second Ctrl-C \
exits at once.")]
pub struct ServeArgs {
    /// A model checkpoint (a run's best.safetensors or last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Address and port to listen on (port 0: any free port; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub compute: crate::shared_args::ComputeArgs,
    /// How many of the most probable classes a prediction lists (a request may ask for others: ?top_k=N).
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// The largest request body accepted, in MiB.
    #[arg(long, default_value_t = 8.0)]
    pub max_body: f64,
    /// Seconds a request may take from its headers to its answer (and a client to send its headers).
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// The most images in one forward pass (concurrent requests are batched).
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// Milliseconds the model waits for requests still arriving before it runs a batch (only when some are).
    #[arg(long, default_value_t = 2.0)]
    pub batch_wait_ms: f64,
    /// The most /predict requests in flight; more are answered 503 at once.
    #[arg(long, default_value_t = 256)]
    pub max_concurrent: usize,
    #[command(flatten)]
    pub tta: crate::shared_args::TtaArgs,
    /// What happens to non-square images before the resize to 32x32 (see `cifar predict --help`).
    #[arg(long, value_enum, default_value_t = crate::predict::Crop::Center)]
    pub crop: crate::predict::Crop,
    /// Classify images that are cut short too (a truncated JPEG, whose missing rows the decoder fills with grey);
    /// without it they are answered 422 naming what is missing.
    #[arg(long)]
    pub allow_partial: bool,
}

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    if !(v.is_finite() && v >= 0.0) {
        bail!("{flag}: expected a number of seconds >= 0, found {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn serve_cmd(a: ServeArgs) -> Result<ExitCode> {
    if !(a.max_body.is_finite() && a.max_body > 0.0 && a.max_body <= 4096.0) {
        bail!(
            "--max-body: expected a size in MiB in (0, 4096], found {}",
            a.max_body
        );
    }
    let config = serve::Config {
        addr: a.addr,
        top_k: a.top_k,
        max_body: (a.max_body * 1024.0 * 1024.0) as usize,
        timeout: seconds("--timeout", a.timeout)?,
        max_batch: a.max_batch,
        batch_wait: seconds("--batch-wait-ms", a.batch_wait_ms / 1000.0)?,
        max_concurrent: a.max_concurrent,
        crop: a.crop.into(),
        limits: predict::DecodeLimits {
            allow_partial: a.allow_partial,
            ..predict::DecodeLimits::default()
        },
        ..serve::Config::default()
    };
    config.validate().map_err(|e| match e {
        serve::Error::Setting { setting, message } => {
            anyhow::anyhow!("{}: {message}", crate::errors::flag_of(setting))
        }
        e => e.into(),
    })?;
    let (session, desc) = crate::shared_args::open_session(&a.checkpoint, &a.compute, &a.tta)?;
    let tta = session.tta();
    let model_name = session.model_name();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
        .thread_name("cifar-serve")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = serve::Server::bind(session, config)
            .await
            .map_err(|e| match e {
                serve::Error::Bind { .. } => anyhow::anyhow!("--addr: {e}"),
                e => anyhow::Error::new(e),
            })?;
        let addr = server.local_addr();
        tracing::info!(
            "serving {} ({model_name}, TTA {}) on {desc}",
            a.checkpoint.display(),
            tta.name()
        );
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "listening on {addr}: reachable from other machines, without authentication; use --addr 127.0.0.1:PORT to keep it local"
            );
        }
        // On stdout, so that scripts can read the address (the port chosen for --addr ...:0).
        println!("cifar serve: open {} (Ctrl-C stops)", server.url());
        // The first Ctrl-C stops cleanly (open connections get the timeout + 1 s); a second one does not wait.
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let first = async move {
            shutdown_signal().await;
            let _ = first_tx.send(());
        };
        let second = async move {
            if first_rx.await.is_ok() {
                let _ = tokio::signal::ctrl_c().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = server.run(first) => r?,
            () = second => {
                tracing::warn!("second Ctrl-C: exiting without waiting for the open connections");
                return Ok(ExitCode::from(130));
            }
        }
        tracing::info!("shut down cleanly");
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}
