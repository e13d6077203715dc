//! Synthetic runs shared by the tests and the `render_demo` example.
#![allow(dead_code)]

use cifar_types::{
    CIFAR10_CLASS_NAMES, EpochMetrics, History, IMAGE_BYTES, IMAGE_SIDE, ImageSet, Predictions,
    TestReport,
};
use cifar10_viz::RunArtifacts;

pub fn names() -> Vec<String> {
    CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect()
}

/// `n` epochs of a plausible training run; the best validation accuracy is at epoch `n - 2` (or 1).
pub fn history(n: usize) -> History {
    let best = n.saturating_sub(2).max(1);
    History {
        epochs: (1..=n)
            .map(|epoch| {
                let t = epoch as f64;
                let curve = |t: f64| 0.40 + 0.45 * (1.0 - (-t / 4.0).exp());
                // The best epoch beats the (rising) curve's last value.
                let val_acc = if epoch == best {
                    curve(n as f64) + 0.015
                } else {
                    curve(t)
                };
                EpochMetrics {
                    epoch,
                    train_loss: 2.0 * (-t / 5.0).exp() + 0.2,
                    train_acc: 0.35 + 0.6 * (1.0 - (-t / 5.0).exp()),
                    val_loss: 1.9 * (-t / 6.0).exp() + 0.45,
                    val_acc,
                    lr: 1e-3 * 0.9f64.powi(epoch as i32),
                    epoch_secs: 30.0 + t,
                    train_images_per_sec: 1500.0,
                }
            })
            .collect(),
    }
}

/// A tiny deterministic generator.
fn lcg(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 33) as f32) / ((1u64 << 31) as f32)
}

/// `n` colourful images, label `i % 10`.
pub fn images(n: usize) -> ImageSet {
    let mut px = vec![0u8; n * IMAGE_BYTES];
    let plane = IMAGE_SIDE * IMAGE_SIDE;
    for i in 0..n {
        let c = i % 10;
        let img = &mut px[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES];
        for y in 0..IMAGE_SIDE {
            for x in 0..IMAGE_SIDE {
                let o = y * IMAGE_SIDE + x;
                let ring = ((x as i32 - 16).pow(2) + (y as i32 - 16).pow(2)) < (6 + c as i32) * 6;
                img[o] = (x * 8 + c * 23) as u8;
                img[plane + o] = (y * 8 + i * 3) as u8;
                img[2 * plane + o] = if ring {
                    250 - c as u8 * 10
                } else {
                    (c * 25) as u8
                };
            }
        }
    }
    ImageSet::new(px, (0..n).map(|i| (i % 10) as u8).collect(), names()).unwrap()
}

/// Predictions for [`images`]`(n)`: about 70% right, confidences spread out.
pub fn predictions(n: usize) -> Predictions {
    let mut s = 42u64;
    let mut probs = Vec::with_capacity(n * 10);
    for i in 0..n {
        let label = i % 10;
        let pred = if lcg(&mut s) < 0.7 {
            label
        } else {
            (label + 1 + i % 3) % 10
        };
        let top = 0.25 + 0.7 * lcg(&mut s);
        let mut row: Vec<f32> = (0..10).map(|_| lcg(&mut s) * 0.2).collect();
        row[pred] = 0.0;
        let rest: f32 = row.iter().sum();
        for v in &mut row {
            *v *= (1.0 - top) / rest;
        }
        row[pred] = top;
        probs.extend(row);
    }
    Predictions::new(10, (0..n).map(|i| (i % 10) as u8).collect(), probs).unwrap()
}

/// A full synthetic run with `n` test images.
pub fn run(n: usize, epochs: usize) -> RunArtifacts {
    let preds = predictions(n);
    let report = TestReport::from_predictions(&preds, 0.61, &names());
    RunArtifacts {
        history: history(epochs),
        report: Some(report),
        predictions: Some(preds),
        test_images: Some(images(n)),
        config: Some(r#"{"epochs": 20, "model": "<resnet & co>", "lr": 0.001}"#.into()),
    }
}

/// A decoded PNG: (width, height, RGB bytes).
pub fn decode_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// How many distinct colours the image has.
pub fn distinct_colours(rgb: &[u8]) -> usize {
    let mut set = std::collections::HashSet::new();
    for p in rgb.chunks_exact(3) {
        set.insert([p[0], p[1], p[2]]);
    }
    set.len()
}

/// Files in `dir` whose names mark them as temporary.
pub fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".part") || n.ends_with(".tmp"))
        .collect()
}
