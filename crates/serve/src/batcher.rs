//! The inference thread: owns the model, collects the images of concurrent requests into one batch, runs one
//! forward pass and answers each request through its own oneshot channel.

use crate::{Error, Result};
use predict::Session;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One image to classify and where its answer goes.
struct Job {
    pixels: Vec<u8>,
    reply: oneshot::Sender<std::result::Result<Vec<f32>, String>>,
}

enum Msg {
    Job(Job),
    /// Finish what is queued, then end the thread.
    Stop,
}

/// What the inference thread has done (for `/health` and the tests).
#[derive(Debug, Default)]
pub struct Stats {
    /// Forward passes run, failed and panicked ones included.
    pub batches: AtomicU64,
    /// Images in those forward passes (requests withdrawn before their batch ran are not counted).
    pub images: AtomicU64,
    /// The most images one forward pass has taken (at most `max_batch`).
    pub largest_batch: AtomicUsize,
    /// Whether the inference thread is taking requests: set after the warm-up image, cleared when it ends.
    pub alive: AtomicBool,
}

/// The handle the request handlers use: send an image, await its probabilities.
pub struct Batcher {
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The inference thread's counters, shared with it.
    pub stats: Arc<Stats>,
}

/// What tells the inference thread how many requests are still on their way (receiving or decoding), so that it
/// waits for them only when there are some.
pub type InFlight = Arc<dyn Fn() -> usize + Send + Sync>;

impl Batcher {
    /// Starts the inference thread with `session` and runs one image through the model first, so that a model
    /// that cannot run (outputs that do not match its class names) fails here, not on the first request.
    pub fn start(
        session: Session,
        max_batch: usize,
        batch_wait: Duration,
        in_flight: InFlight,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), predict::Error>>();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("cifar-inference".into())
            .spawn(move || {
                let warm = session
                    .probabilities(&[&[0u8; predict::INPUT_BYTES]])
                    .map(|_| ());
                let ok = warm.is_ok();
                if ready_tx.send(warm).is_err() || !ok {
                    return;
                }
                thread_stats.alive.store(true, Ordering::SeqCst);
                run(
                    &session,
                    &rx,
                    max_batch,
                    batch_wait,
                    &in_flight,
                    &thread_stats,
                );
                thread_stats.alive.store(false, Ordering::SeqCst);
            })
            .map_err(|e| Error::Worker(format!("cannot start the inference thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                tx,
                thread: Mutex::new(Some(thread)),
                stats,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(Error::Model(e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Worker(
                    "the inference thread ended while loading".into(),
                ))
            }
        }
    }

    /// Queues `pixels` (`[3, 32, 32]` u8) and waits for its class probabilities. Dropping the returned future
    /// (a request that timed out) withdraws the image if its batch has not started.
    pub async fn classify(&self, pixels: Vec<u8>) -> std::result::Result<Vec<f32>, String> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Job(Job { pixels, reply })).is_err() {
            return Err("the inference thread has stopped".into());
        }
        rx.await
            .map_err(|_| "the inference thread has stopped".to_string())?
    }

    /// Answers what is queued, then ends the inference thread and waits for it.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::error!("the inference thread panicked");
        }
    }
}

fn run(
    session: &Session,
    rx: &mpsc::Receiver<Msg>,
    max_batch: usize,
    batch_wait: Duration,
    in_flight: &InFlight,
    stats: &Stats,
) {
    let mut stopping = false;
    while !stopping {
        let first = match rx.recv() {
            Ok(Msg::Job(j)) => j,
            Ok(Msg::Stop) | Err(_) => break,
        };
        let mut jobs = vec![first];
        let deadline = Instant::now() + batch_wait;
        while jobs.len() < max_batch {
            let next = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Disconnected) => {
                    stopping = true;
                    None
                }
                Err(TryRecvError::Empty) => {
                    // Nothing queued: wait a little only for requests already on their way.
                    let now = Instant::now();
                    if in_flight() <= jobs.len() || now >= deadline {
                        None
                    } else {
                        match rx.recv_timeout(deadline - now) {
                            Ok(m) => Some(m),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => {
                                stopping = true;
                                None
                            }
                        }
                    }
                }
            };
            match next {
                Some(Msg::Job(j)) => jobs.push(j),
                Some(Msg::Stop) => {
                    stopping = true;
                    break;
                }
                None => break,
            }
        }
        // Requests that gave up (timed out, client gone) are not computed.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let images: Vec<&[u8]> = jobs.iter().map(|j| j.pixels.as_slice()).collect();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            session.probabilities(&images)
        }));
        let n = jobs.len();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.images.fetch_add(n as u64, Ordering::Relaxed);
        stats.largest_batch.fetch_max(n, Ordering::Relaxed);
        match result {
            Ok(Ok(rows)) if rows.len() == n => {
                for (job, row) in jobs.into_iter().zip(rows) {
                    let _ = job.reply.send(Ok(row));
                }
            }
            Ok(Ok(rows)) => answer_all(
                jobs,
                &format!("the model returned {} rows for {n} images", rows.len()),
            ),
            Ok(Err(e)) => {
                tracing::error!("inference failed: {e}");
                answer_all(jobs, &format!("inference failed: {e}"));
            }
            Err(_) => {
                tracing::error!("inference panicked on a batch of {n}");
                answer_all(jobs, "inference failed (internal error)");
            }
        }
    }
    // Anything still queued after Stop gets an answer rather than a dropped channel.
    while let Ok(Msg::Job(j)) = rx.try_recv() {
        let _ = j.reply.send(Err("the server is shutting down".into()));
    }
}

fn answer_all(jobs: Vec<Job>, e: &str) {
    for j in jobs {
        let _ = j.reply.send(Err(e.to_string()));
    }
}
