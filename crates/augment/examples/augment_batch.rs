//! Turns u8 images into augmented, normalized candle batches: one batch with `batch_to_tensor`, then a whole epoch
//! prepared on a background thread by a `Loader`.
//!
//! ```sh
//! cargo run --release -p cifar10-augment --example augment_batch
//! ```
//!
//! The images are synthetic (random pixels, 500 of them), so the example needs no data set; a real one comes from
//! `cifar10_dataset::load` as the same `ImageSet` type.

use candle_core::{Device, Tensor};
use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet, Normalize};
use cifar10_augment::{Augment, EpochPlan, Loader, batch_to_tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// `n` images of uniformly random pixels, labels cycling through the 10 classes.
fn synthetic(n: usize, seed: u64) -> Result<ImageSet, cifar_types::Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = vec![0u8; n * IMAGE_BYTES];
    rng.fill(&mut pixels[..]);
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    ImageSet::new(pixels, labels, names)
}

/// Per-channel mean and standard deviation of `[B, 3, H, W]` images.
fn channel_stats(x: &Tensor) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    let mean = x.mean_keepdim((0, 2, 3))?;
    let std = x.broadcast_sub(&mean)?.sqr()?.mean((0, 2, 3))?.sqrt()?;
    Ok((mean.flatten_all()?.to_vec1()?, std.to_vec1()?))
}

fn print_stats(what: &str, x: &Tensor) -> candle_core::Result<()> {
    let (mean, std) = channel_stats(x)?;
    println!(
        "  {what:<34} mean R/G/B [{:+.3}, {:+.3}, {:+.3}]  std [{:.3}, {:.3}, {:.3}]",
        mean[0], mean[1], mean[2], std[0], std[1], std[2]
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let set = synthetic(500, 1)?;
    let device = Device::Cpu;
    println!(
        "{} synthetic images, {} classes",
        set.len(),
        set.num_classes()
    );

    // 1. One batch: the first 8 images, with each recipe. The same seed gives the same batch on every run.
    let indices: Vec<usize> = (0..8).collect();
    let recipes = [
        ("Augment::none()", Augment::none()),
        ("Augment::default() (flip + crop)", Augment::default()),
        ("Augment::airbench()", Augment::airbench()),
    ];
    let plain = batch_to_tensor(&set, &indices, &Augment::none(), 7, &device)?;
    println!(
        "one batch: images {:?} {:?}, labels {:?} {:?} = {:?}",
        plain.images.dims(),
        plain.images.dtype(),
        plain.labels.dims(),
        plain.labels.dtype(),
        plain.label_bytes
    );
    for (name, aug) in &recipes {
        let batch = batch_to_tensor(&set, &indices, aug, 7, &device)?;
        print_stats(name, &batch.images)?;
    }
    let (half, cifar) = (Normalize::default(), Normalize::CIFAR10);
    println!(
        "  (none and default: (pixel / 255 - {:?}) / {:?}, so the crop's zero padding becomes -1;\n   \
         airbench: reflect padding, mean {:?} / std {:?})",
        half.mean, half.std, cifar.mean, cifar.std
    );

    // 2. One epoch on a background thread: batches of 128 in a shuffled order, 2 prepared ahead.
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(2));
    let plan = EpochPlan {
        order,
        batch_size: 128,
        augment: Augment::default(),
        seed: 42,
        epoch: 1,
        start_batch: 0,
    };
    let loader = Loader::spawn(Arc::new(set), plan, 2);
    println!("epoch 1 through a Loader ({} batches):", loader.remaining());
    let mut seen = 0;
    for batch in loader {
        let batch = batch?;
        seen += batch.label_bytes.len();
        print_stats(
            &format!("batch {} {:?}", batch.index, batch.images.dims()),
            &batch.images,
        )?;
    }
    println!("{seen} images in the epoch");
    Ok(())
}
