//! The routes and their handlers (error answers: `api_error.rs`).

pub use crate::api_error::{ApiError, json_errors};
use crate::batcher::Batcher;
use crate::run_info::{RunInfo, TestAccuracy};
use crate::{Config, samples};
use axum::body::Body;
use axum::extract::{FromRequest, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use model_meta::ModelInfo;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The page: one self-contained HTML file (inline CSS and JS, no external resources).
const PAGE: &str = include_str!("page.html");
/// What the page may load: only itself, this server and the images the user picks.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// Run files (report.html, charts) may not run scripts.
const FILE_CSP: &str = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The state every handler shares.
pub struct AppState {
    pub config: Config,
    pub batcher: Batcher,
    /// One permit per `/predict` request in flight (`config.max_concurrent`).
    pub permits: Arc<Semaphore>,
    /// One permit per small image being decoded (`config.decode_threads`).
    pub decode_permits: Semaphore,
    /// One permit per KiB of the large images being decoded (`config.decode_memory`).
    pub decode_memory: Semaphore,
    pub info: ModelInfo,
    pub class_names: Vec<String>,
    pub run: RunInfo,
    pub requests: AtomicU64,
    pub rejected: AtomicU64,
    pub started: Instant,
}

impl AppState {
    /// `/predict` requests holding a permit.
    pub fn in_flight(&self) -> usize {
        self.config.max_concurrent - self.permits.available_permits()
    }
}

/// The checkpoint's metadata and the server's settings, as `GET /model` answers.
pub mod model_meta {
    use super::*;

    #[derive(Debug, Clone, Serialize)]
    pub struct Limits {
        pub max_body_bytes: usize,
        pub max_side: u32,
        pub max_decoded_bytes: u64,
        pub allow_partial: bool,
        pub timeout_s: f64,
        pub max_batch: usize,
        pub max_concurrent: usize,
    }

    #[derive(Debug, Clone, Serialize)]
    pub struct ModelInfo {
        pub model: String,
        pub model_args: serde_json::Value,
        pub format_version: u32,
        pub class_names: Vec<String>,
        pub normalize: serde_json::Value,
        pub input_size: [usize; 3],
        /// Metadata keys the (older) checkpoint lacks, whose defaults are used.
        pub defaulted: Vec<&'static str>,
        /// The checkpoint's file name and its folder's name (no full paths).
        pub checkpoint: String,
        pub run: Option<String>,
        pub test_accuracy: Option<TestAccuracy>,
        /// Where the run's report.html is served, when the run has one.
        pub report: Option<String>,
        pub tta: &'static str,
        pub device: String,
        pub crop: &'static str,
        pub top_k: usize,
        pub limits: Limits,
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/model", get(model))
        .route("/predict", post(predict))
        .route("/samples", get(sample_list))
        .route("/samples/{name}", get(sample))
        .route("/run/{name}", get(run_file))
        .route("/favicon.ico", get(favicon))
        .fallback(not_found)
        .with_state(state)
}

/// The access log: one line per request at info level with the method, the path (no query string), the
/// status, the milliseconds taken and the response's size in bytes when known. Nothing a client sent (no image,
/// no header) is logged.
pub async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::body::HttpBody;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let bytes = resp
        .body()
        .size_hint()
        .exact()
        .map_or_else(|| "?".to_string(), |b| b.to_string());
    tracing::info!(
        "{method} {path} {} {ms:.1} ms {bytes} B",
        resp.status().as_u16()
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such page: try GET /, POST /predict, GET /model or GET /health",
    )
}

/// The page's icon (an SVG: three bars in the page's colours), so that browsers' automatic request is no 404.
const FAVICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' rx='3' fill='#fafbfc'/><rect x='2' y='3' width='12' height='3' fill='#2ca02c'/><rect x='2' y='7' width='7' height='3' fill='#98a8bf'/><rect x='2' y='11' width='4' height='3' fill='#98a8bf'/></svg>";

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    model: String,
    uptime_s: f64,
    in_flight: usize,
    requests: u64,
    rejected_busy: u64,
    batches: u64,
    images: u64,
    largest_batch: usize,
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    let st = &s.batcher.stats;
    let alive = st.alive.load(Ordering::SeqCst);
    let body = Health {
        status: if alive { "ok" } else { "inference stopped" },
        model: s.info.model.clone(),
        uptime_s: s.started.elapsed().as_secs_f64(),
        in_flight: s.in_flight(),
        requests: s.requests.load(Ordering::Relaxed),
        rejected_busy: s.rejected.load(Ordering::Relaxed),
        batches: st.batches.load(Ordering::Relaxed),
        images: st.images.load(Ordering::Relaxed),
        largest_batch: st.largest_batch.load(Ordering::Relaxed),
    };
    let status = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn model(State(s): State<Arc<AppState>>) -> Json<ModelInfo> {
    Json(s.info.clone())
}

#[derive(Serialize)]
struct Sample {
    name: &'static str,
    url: String,
}

async fn sample_list() -> Json<Vec<Sample>> {
    Json(
        samples::SAMPLES
            .iter()
            .map(|(name, _)| Sample {
                name,
                url: format!("/samples/{name}.png"),
            })
            .collect(),
    )
}

async fn sample(UrlPath(name): UrlPath<String>) -> Result<Response, ApiError> {
    let bytes = name
        .strip_suffix(".png")
        .and_then(samples::get)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no sample {name:?}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

async fn run_file(
    State(s): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let (path, ty) = s.run.file(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run file {name:?} (only report.html and the charts of the run are served)"),
        )
    })?;
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        tracing::warn!("{}: {e}", path.display());
        ApiError::new(StatusCode::NOT_FOUND, format!("{name}: cannot be read"))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, ty),
            (header::CONTENT_SECURITY_POLICY, FILE_CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
struct PredictQuery {
    top_k: Option<usize>,
}

#[derive(Serialize)]
struct Prediction<'a> {
    class: &'a str,
    p: f32,
}

#[derive(Serialize)]
struct ImageInfo {
    format: String,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct PredictResponse<'a> {
    predictions: Vec<Prediction<'a>>,
    model: &'a str,
    /// Milliseconds from the request's headers to its answer (receiving, decoding, waiting, the model).
    ms: f64,
    image: ImageInfo,
}

/// How the body holds the image.
enum BodyKind {
    Raw,
    Multipart,
}

const ACCEPTED: &str = "send the image as the body (Content-Type image/* or application/octet-stream) or as a \
    file of a multipart/form-data form";

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Raw);
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "application/octet-stream" | "" => Ok(BodyKind::Raw),
        e if e.starts_with("image/") => Ok(BodyKind::Raw),
        e => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type {e:?}: {ACCEPTED}"),
        )),
    }
}

/// `POST /predict`: checks the content type and the query, takes a permit (503 when none is left), reads the body
/// (or its multipart file) into memory, decodes it on a blocking thread and waits for the inference thread, all
/// before the request's deadline.
async fn predict(State(s): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    s.requests.fetch_add(1, Ordering::Relaxed);
    let deadline = t0 + s.config.timeout;
    let timeout_s = s.config.timeout.as_secs_f64();
    let max_body = s.config.max_body;
    let (parts, body) = req.into_parts();
    let (kind, top_k, _permit) = match precheck(&s, &parts) {
        Ok(v) => v,
        Err(e) => {
            // Refused before its body was read: read the rest (without keeping it) so that the client, still
            // sending, gets this answer rather than a reset connection; close the connection if it does not come.
            // At most 4x the body limit: a larger body is cut off.
            let cap = 4 * max_body;
            let drained = drain(body, cap, deadline.min(t0 + DRAIN_TIME)).await;
            return Err(if drained { e } else { e.closing() });
        }
    };
    // The body, in memory only, up to the limit; after an error here the connection is closed (its state is
    // unknown).
    let bytes = match tokio::time::timeout_at(deadline.into(), axum::body::to_bytes(body, max_body))
        .await
    {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {timeout_s}s"),
            )
            .closing());
        }
        Ok(Err(e)) if is_length_limit(&e) => return Err(too_large(max_body).closing()),
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
            .closing());
        }
        Ok(Ok(b)) => b,
    };
    let image = match kind {
        BodyKind::Raw => bytes,
        BodyKind::Multipart => {
            let req = Request::from_parts(parts, Body::from(bytes));
            multipart_image(req).await?
        }
    };
    if image.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("no image: the body is empty; {ACCEPTED}"),
        ));
    }

    let work = async {
        let decoded = {
            let (crop, limits) = (s.config.crop, s.config.limits);
            // What decoding takes, from the header alone (refused here when over the limits).
            let need = predict::footprint(&image, limits).map_err(decode_error)?;
            let closing = |_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is shutting down",
                )
            };
            // Small images on the decode threads; large ones wait for their share of the decode memory,
            // never in front of small ones.
            let _decoding = if need <= crate::config::SMALL_DECODE {
                s.decode_permits.acquire().await.map_err(closing)?
            } else {
                let budget_kib = s.config.decode_memory / 1024;
                let kib = u32::try_from(need.div_ceil(1024).min(budget_kib)).unwrap_or(u32::MAX);
                s.decode_memory.acquire_many(kib).await.map_err(closing)?
            };
            tokio::task::spawn_blocking(move || predict::load_bytes(&image, crop, limits))
                .await
                // A decoder that panics on this input: the image is refused, the server goes on.
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "cannot decode: the decoder failed on this image",
                    )
                })?
                .map_err(decode_error)?
        };
        let info = ImageInfo {
            format: format!("{:?}", decoded.format).to_ascii_lowercase(),
            width: decoded.width,
            height: decoded.height,
        };
        let p = s
            .batcher
            .classify(decoded.pixels)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        Ok::<_, ApiError>((p, info))
    };
    let (p, image) = match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "not classified within {timeout_s}s (the server's timeout setting): the server is overloaded"
                    ),
                )
            });
        }
    };
    let top = predict::top_k(&p, &s.class_names, top_k.min(p.len()));
    let body = PredictResponse {
        predictions: top
            .iter()
            .map(|r| Prediction {
                class: r.class,
                p: r.probability,
            })
            .collect(),
        model: &s.info.model,
        ms: (t0.elapsed().as_secs_f64() * 1e4).round() / 10.0,
        image,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// The longest a refused request's body is drained.
const DRAIN_TIME: Duration = Duration::from_secs(5);

fn too_large(max_body: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is larger than the limit of {} (the server's max_body setting)",
            bytes_text(max_body)
        ),
    )
}

/// What `/predict` checks before it reads the body: the content type, the query, the declared length and a free
/// slot (503 when `max_concurrent` requests are in flight).
fn precheck(
    s: &Arc<AppState>,
    parts: &axum::http::request::Parts,
) -> Result<(BodyKind, usize, tokio::sync::OwnedSemaphorePermit), ApiError> {
    let kind = body_kind(&parts.headers)?;
    let top_k = match Query::<PredictQuery>::try_from_uri(&parts.uri) {
        Ok(Query(q)) => q.top_k.unwrap_or(s.config.top_k),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("bad query: {} (expected ?top_k=N)", e.body_text()),
            ));
        }
    };
    if top_k == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "top_k: expected at least 1",
        ));
    }
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > s.config.max_body as u64
    {
        return Err(too_large(s.config.max_body));
    }
    let Ok(permit) = s.permits.clone().try_acquire_owned() else {
        s.rejected.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "busy: {} requests are in flight (the server's max_concurrent setting); try again",
                    s.config.max_concurrent
                ),
            )
        });
    };
    Ok((kind, top_k, permit))
}

/// Reads and discards a body, at most `cap` bytes and until `deadline`; whether it ended in time.
async fn drain(mut body: Body, cap: usize, deadline: Instant) -> bool {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    loop {
        match tokio::time::timeout_at(deadline.into(), body.frame()).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > cap {
                    return false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// The one image file of a multipart form: the first part with a file name or an image content type (or the
/// only part).
async fn multipart_image(req: Request) -> Result<axum::body::Bytes, ApiError> {
    let mut form = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(e.status(), format!("bad multipart form: {}", e.body_text())))?;
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(e.status(), format!("bad multipart form: {}", e.body_text()))
    };
    let mut file = None;
    let mut only = None;
    let mut parts = 0usize;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        parts += 1;
        let is_file = field.file_name().is_some()
            || field
                .content_type()
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("image/"));
        let bytes = field.bytes().await.map_err(bad)?;
        if is_file {
            if file.is_some() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "one image per request: send several requests (the server batches them)",
                ));
            }
            file = Some(bytes);
        } else {
            only = Some(bytes);
        }
    }
    // A file part; else the form's only part.
    file.or(if parts == 1 { only } else { None })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "no image in the multipart form: add a file part",
            )
        })
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn decode_error(e: predict::Error) -> ApiError {
    use predict::ErrorKind;
    let status = match e.kind() {
        ErrorKind::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Corrupt => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Io | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

fn bytes_text(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{n} bytes")
    }
}

/// How long a request may take at most, for the outer timeout layer (a safety net behind the handlers' own) and
/// the connections' grace period at shutdown.
pub fn outer_timeout(c: &Config) -> Duration {
    c.timeout + Duration::from_secs(1)
}
