//! Shared helpers: a small synthetic data set that the model can learn.
#![allow(dead_code)] // each test binary uses its own subset of the helpers

use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
use cifar10_train::{Data, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` images whose class decides the colour of a centred blob (robust to flips and small crops), with noise.
pub fn synthetic(n: usize, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut px = vec![0u8; n * IMAGE_BYTES];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 10;
        labels.push(class as u8);
        let colour = [
            (class * 25) as i32,
            ((9 - class) * 25) as i32,
            ((class * 7) % 10 * 25) as i32,
        ];
        let img = &mut px[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES];
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let inside = (8..24).contains(&y) && (8..24).contains(&x);
                    let base = if inside { colour[c] } else { 128 };
                    let v = base + rng.random_range(-20..=20);
                    img[c * 1024 + y * 32 + x] = v.clamp(0, 255) as u8;
                }
            }
        }
    }
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    ImageSet::new(px, labels, names).unwrap()
}

pub fn data() -> Data {
    Data {
        train: synthetic(640, 1),
        val: synthetic(160, 2),
        test: synthetic(200, 3),
    }
}

pub fn tiny_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        device: "cpu".into(),
        ..TrainConfig::default()
    }
}

/// A preset's recipe cut down for the synthetic task: batch 64, `epochs` whole epochs, at most half an epoch of
/// warm-up, evaluation in batches of 100, on the CPU.
pub fn short_recipe(preset: &str, epochs: usize) -> TrainConfig {
    let base = TrainConfig::preset(preset).unwrap();
    TrainConfig {
        batch_size: 64,
        epochs,
        fractional_epochs: None,
        warmup_epochs: base.warmup_epochs.min(0.5),
        eval_batch_size: 100,
        device: "cpu".into(),
        ..base
    }
}

/// Asserts that two runs, each (per-epoch train losses, test accuracy), agree: every epoch's loss within
/// `loss_tol` (relative to `want`'s) and, with `acc_tol`, the test accuracies.
pub fn assert_runs_agree(
    name: &str,
    got: &(Vec<f64>, f64),
    want: &(Vec<f64>, f64),
    loss_tol: f64,
    acc_tol: Option<f64>,
) {
    assert_eq!(got.0.len(), want.0.len(), "{name}: epochs");
    for (e, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
        assert!(
            (g - w).abs() <= loss_tol * w.abs(),
            "{name}: epoch {}: train loss {g} against {w}",
            e + 1
        );
    }
    if let Some(tol) = acc_tol {
        assert!(
            (got.1 - want.1).abs() <= tol,
            "{name}: test accuracy {} against {}",
            got.1,
            want.1
        );
    }
}
