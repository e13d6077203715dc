//! `cifar serve`: a saved CIFAR-10 model behind a local web page and a JSON API, on axum + tokio.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the page: drop or pick images (or try the built-in samples), see each with its top-k classes as bars |
//! | `POST /predict[?top_k=N]` | the image as the raw body (`image/*`, `application/octet-stream`) or one file of a `multipart/form-data` form → `{"predictions":[{"class":"cat","p":0.81},...],"model":"cnn-dnn","ms":3.1,"image":{...}}` |
//! | `GET /model` | the checkpoint's metadata, the run's test accuracy and report link, the server's limits |
//! | `GET /health` | `{"status":"ok",...}` with request and batch counts |
//! | `GET /samples`, `GET /samples/NAME.png` | a few CIFAR-10 test images to try |
//! | `GET /run/report.html` | the run's report (and its charts), when the checkpoint's folder holds one |
//!
//! Every error is `{"error": "..."}` with a 4xx status for what the client sent (400 bad request, 413 body or
//! image too large, 415 not an image or a wrong content type, 422 a damaged image, 408 a body that does not
//! arrive in time) and 503 when the server is busy or a request could not be classified in time; the server
//! keeps serving. The body is read into memory only (never written to disk), up to [`Config::max_body`];
//! decoding runs under [`predict::DecodeLimits`] on a bounded number of blocking threads.
//!
//! The model lives on one inference thread ([`batcher`]): it takes the images that are queued (waiting up to
//! [`Config::batch_wait`] for requests still being received or decoded, never when none are), runs them as one
//! batch and answers each request; under load, concurrent requests share forward passes.
//!
//! ```no_run
//! # async fn demo() -> cifar10_serve::Result<()> {
//! let device = candle_core::Device::Cpu;
//! # let path = std::path::Path::new("runs/x/best.safetensors");
//! let session = predict::Session::load(path, &device, predict::Tta::None).expect("a checkpoint");
//! let server = cifar10_serve::Server::bind(session, cifar10_serve::Config::default()).await?;
//! println!("{}", server.url());
//! // Serves until `stop.send(())` (`cifar serve` waits for Ctrl-C or SIGTERM).
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! server.run(async { stopped.await.ok(); }).await
//! # }
//! ```

#![warn(missing_docs)]

mod api;
mod api_error;
pub mod batcher;
mod config;
mod error;
mod run_info;
pub mod samples;

pub use config::{Config, SMALL_DECODE};
pub use error::{Error, Result};
pub use run_info::{RunInfo, TestAccuracy};

use api::model_meta::{Limits, ModelInfo};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

/// A bound server: listening, with its inference thread started; [`Server::run`] serves until a shutdown
/// signal.
pub struct Server {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: Arc<api::AppState>,
}

impl Server {
    /// Checks `config`, starts the inference thread with `session` (one warm-up image through the model) and
    /// binds `config.addr`.
    pub async fn bind(session: predict::Session, config: Config) -> Result<Self> {
        config.validate()?;
        let tta = session.tta().name();
        let meta = session.meta().clone();
        let run_dir = config.run_dir.clone().or_else(|| {
            session.checkpoint().parent().map(|p| {
                if p.as_os_str().is_empty() {
                    ".".as_ref()
                } else {
                    p
                }
                .to_path_buf()
            })
        });
        let run = run_dir
            .as_deref()
            .map(|d| RunInfo::read(d, tta))
            .unwrap_or_default();
        let info = ModelInfo {
            model: session.model_name().to_string(),
            model_args: meta.model_args.clone(),
            format_version: meta.format_version,
            class_names: meta.class_names.clone(),
            normalize: serde_json::json!({"mean": meta.normalize.mean, "std": meta.normalize.std}),
            input_size: meta.input_size,
            defaulted: meta.defaulted.clone(),
            checkpoint: session
                .checkpoint()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            run: run.dir_name.clone(),
            test_accuracy: run.test_accuracy.clone(),
            report: run.report_url(),
            tta,
            device: session.device_name(),
            crop: match config.crop {
                predict::Crop::Center => "center",
                predict::Crop::None => "none",
            },
            top_k: config.top_k,
            limits: Limits {
                max_body_bytes: config.max_body,
                max_side: config.limits.max_side,
                max_decoded_bytes: config.limits.max_decoded_bytes,
                allow_partial: config.limits.allow_partial,
                timeout_s: config.timeout.as_secs_f64(),
                max_batch: config.max_batch,
                max_concurrent: config.max_concurrent,
            },
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent));
        let counted = permits.clone();
        let max = config.max_concurrent;
        let in_flight: batcher::InFlight = Arc::new(move || max - counted.available_permits());
        let batcher = {
            let (max_batch, wait) = (config.max_batch, config.batch_wait);
            tokio::task::spawn_blocking(move || {
                batcher::Batcher::start(session, max_batch, wait, in_flight)
            })
            .await
            .map_err(|e| Error::Worker(e.to_string()))??
        };
        let listener = match tokio::net::TcpListener::bind(config.addr).await {
            Ok(l) => l,
            Err(source) => {
                batcher.stop();
                return Err(Error::Bind {
                    addr: config.addr,
                    source,
                });
            }
        };
        let addr = listener.local_addr()?;
        let state = Arc::new(api::AppState {
            decode_permits: tokio::sync::Semaphore::new(config.decode_threads),
            decode_memory: tokio::sync::Semaphore::new(
                usize::try_from(config.decode_memory / 1024)
                    .unwrap_or(usize::MAX)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            ),
            class_names: meta.class_names,
            config,
            batcher,
            permits,
            info,
            run,
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            started: Instant::now(),
        });
        Ok(Self {
            listener,
            addr,
            state,
        })
    }

    /// The address listened on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/` (for an unspecified address such as `0.0.0.0`, the loopback address of its family, which a
    /// browser on this machine can open).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}/")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets the requests in flight finish (each is
    /// bounded by the timeout), answers what the inference thread has queued and ends it.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let state = self.state.clone();
        let app = api::router(self.state.clone())
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                api::outer_timeout(&state.config),
            ))
            .layer(CatchPanicLayer::custom(|_| {
                api::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                    .into_response()
            }))
            .layer(axum::middleware::map_response(api::json_errors))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(axum::middleware::from_fn(api::access_log));
        // Our own accept loop over hyper's HTTP/1 connections, so that a client gets at most `timeout` to send its
        // headers (axum::serve sets no such limit: a client trickling a header line kept its connection forever).
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(state.config.timeout);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // Out of file descriptors and the like: the listener itself is fine, try again shortly.
                            tracing::warn!("accepting a connection failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!("connection ended: {e}");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        // No new connections; the open ones finish their requests (each bounded by `outer_timeout`) and close,
        // or are dropped after that long.
        drop(self.listener);
        let grace = api::outer_timeout(&state.config);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!("connections still open {grace:?} after the shutdown signal: closing them");
            }
        }
        tracing::info!("stopped accepting; finishing the inference queue");
        let _ = tokio::task::spawn_blocking(move || state.batcher.stop()).await;
        Ok(())
    }
}
