use crate::{Augment, Error, ImageAt, Result};
use candle_core::{Device, Tensor};
use cifar_types::{IMAGE_BYTES, IMAGE_SIDE, ImageSet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// One prepared batch: normalized images `[B, 3, 32, 32]` f32, labels `[B]` u32, and the labels as bytes.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Position of the batch in its epoch (0-based).
    pub index: usize,
    /// Augmented, normalized images `[B, 3, 32, 32]` f32 (on the CPU when the batch comes from a [`Loader`]).
    pub images: Tensor,
    /// The labels `[B]` u32, on the same device as `images`.
    pub labels: Tensor,
    /// The same labels as bytes, for host-side bookkeeping without reading the tensor back.
    pub label_bytes: Vec<u8>,
}

/// The seed of batch `batch` of epoch `epoch` for a run seeded with `seed` (SplitMix64 mixing), so every batch
/// has its own independent, reproducible random stream.
pub fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (batch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Builds one batch from the images at `indices` of `set`, augmented with `aug` using an RNG seeded by `seed`.
pub fn batch_to_tensor(
    set: &ImageSet,
    indices: &[usize],
    aug: &Augment,
    seed: u64,
    device: &Device,
) -> Result<Batch> {
    batch_at(set, indices, aug, seed, (0, 0), device)
}

/// [`batch_to_tensor`] within a run: `(run_seed, epoch)` place the images for the alternating flip.
fn batch_at(
    set: &ImageSet,
    indices: &[usize],
    aug: &Augment,
    seed: u64,
    (run_seed, epoch): (u64, usize),
    device: &Device,
) -> Result<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0f32; indices.len() * IMAGE_BYTES];
    let mut label_bytes = Vec::with_capacity(indices.len());
    for (&i, dst) in indices.iter().zip(data.chunks_exact_mut(IMAGE_BYTES)) {
        if i >= set.len() {
            return Err(Error::IndexOutOfRange {
                index: i,
                len: set.len(),
            });
        }
        let at = ImageAt {
            index: i,
            epoch,
            run_seed,
        };
        aug.apply_at(set.image(i), dst, &mut rng, at);
        label_bytes.push(set.label(i));
    }
    let n = indices.len();
    let images = Tensor::from_vec(data, (n, 3, IMAGE_SIDE, IMAGE_SIDE), device)?;
    let labels: Vec<u32> = label_bytes.iter().map(|&l| u32::from(l)).collect();
    let labels = Tensor::from_vec(labels, n, device)?;
    Ok(Batch {
        index: 0,
        images,
        labels,
        label_bytes,
    })
}

/// Prepares the batches of one epoch on a background thread, a few ahead of the consumer.
///
/// Batch `k` holds `order[k*batch_size..]` (the last one may be smaller) and is augmented with the seed
/// `batch_seed(seed, epoch, k)`, so the output does not depend on timing and a run can restart at any batch.
/// Dropping the loader stops the thread.
pub struct Loader {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
    remaining: usize,
}

/// What a [`Loader`] iterates over.
#[derive(Debug, Clone)]
pub struct EpochPlan {
    /// Indices into the set, in the order the batches take them (e.g. a seeded shuffle).
    pub order: Vec<usize>,
    /// Images per batch (0 is treated as 1); the last batch holds the rest.
    pub batch_size: usize,
    /// The augmentation applied to every image.
    pub augment: Augment,
    /// The run's seed, mixed with `epoch` and the batch index by [`batch_seed`].
    pub seed: u64,
    /// The epoch (1-based in training; 0 outside it): part of each batch's seed and, with
    /// [`Augment::alternating_flip`], what decides whether the epoch is mirrored.
    pub epoch: usize,
    /// First batch to produce (to resume mid-epoch).
    pub start_batch: usize,
}

impl Loader {
    /// Starts the background thread; `prefetch` batches are prepared ahead (at least 1).
    pub fn spawn(set: Arc<ImageSet>, plan: EpochPlan, prefetch: usize) -> Self {
        let batch_size = plan.batch_size.max(1);
        let total = plan.order.len().div_ceil(batch_size);
        let remaining = total.saturating_sub(plan.start_batch);
        let (tx, rx) = sync_channel(prefetch.max(1));
        let handle = std::thread::Builder::new()
            .name("batch-loader".into())
            .spawn(move || produce(&set, &plan, batch_size, total, &tx))
            .ok();
        Self {
            rx: handle.as_ref().map(|_| rx),
            handle,
            remaining,
        }
    }

    /// Number of batches still to come.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

fn produce(
    set: &ImageSet,
    plan: &EpochPlan,
    batch_size: usize,
    total: usize,
    tx: &SyncSender<Result<Batch>>,
) {
    for k in plan.start_batch..total {
        let end = ((k + 1) * batch_size).min(plan.order.len());
        let idx = &plan.order[k * batch_size..end];
        let seed = batch_seed(plan.seed, plan.epoch, k);
        let ctx = (plan.seed, plan.epoch);
        let batch = batch_at(set, idx, &plan.augment, seed, ctx, &Device::Cpu).map(|mut b| {
            b.index = k;
            b
        });
        let failed = batch.is_err();
        if tx.send(batch).is_err() || failed {
            return;
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let Some(rx) = self.rx.as_ref() else {
            self.remaining = 0;
            return Some(Err(Error::LoaderStopped));
        };
        match rx.recv() {
            Ok(b) => {
                self.remaining -= 1;
                if b.is_err() {
                    self.remaining = 0;
                }
                Some(b)
            }
            Err(_) => {
                self.remaining = 0;
                Some(Err(Error::LoaderStopped))
            }
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the channel makes the producer's next send fail, so it exits.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
