//! Augmentation output statistics, determinism and the prefetching loader.

use candle_core::{DType, Device};
use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
use cifar10_augment::{Augment, EpochPlan, Loader, batch_to_tensor};
use std::sync::Arc;

fn set(n: usize, value: u8) -> ImageSet {
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    ImageSet::new(vec![value; n * IMAGE_BYTES], labels, names).unwrap()
}

#[test]
fn eval_batch_is_only_normalized() {
    let s = set(4, 255);
    let b = batch_to_tensor(&s, &[0, 1, 2, 3], &Augment::none(), 1, &Device::Cpu).unwrap();
    assert_eq!(b.images.dims(), &[4, 3, 32, 32]);
    assert_eq!(b.images.dtype(), DType::F32);
    let v: Vec<f32> = b.images.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|&x| (x - 1.0).abs() < 1e-6));
    assert_eq!(b.labels.to_vec1::<u32>().unwrap(), vec![0, 1, 2, 3]);
}

#[test]
fn padded_crop_statistics_match_torchvision() {
    // A white image: a random crop with 4-pixel zero padding shows on average
    // E[(32-|dy-4|)(32-|dx-4|)]/1024 of white, with dy, dx uniform on 0..=8. Per axis E[|d-4|] = 20/9.
    let n = 2000;
    let s = set(n, 255);
    let idx: Vec<usize> = (0..n).collect();
    let b = batch_to_tensor(&s, &idx, &Augment::default(), 3, &Device::Cpu).unwrap();
    let v: Vec<f32> = b.images.flatten_all().unwrap().to_vec1().unwrap();
    let white = v.iter().filter(|&&x| x > 0.99).count() as f64 / v.len() as f64;
    let black = v.iter().filter(|&&x| x < -0.99).count() as f64 / v.len() as f64;
    let axis = (32.0 - 20.0 / 9.0) / 32.0;
    let expected = axis * axis;
    assert!(
        (white - expected).abs() < 0.01,
        "white {white} vs {expected}"
    );
    assert!(
        (white + black - 1.0).abs() < 1e-9,
        "values are only -1 or 1"
    );
    // With padding and crop fully random, some images must be uncropped (dy = dx = 4) and some shifted.
    let per_image: Vec<usize> = v
        .chunks(IMAGE_BYTES)
        .map(|c| c.iter().filter(|&&x| x > 0.99).count())
        .collect();
    assert!(per_image.contains(&IMAGE_BYTES));
    assert!(per_image.iter().any(|&c| c < IMAGE_BYTES));
}

#[test]
fn flip_rate_is_half() {
    // Left half dark, right half bright: a flip swaps them. No crop so only flips change the picture.
    let n = 4000;
    let mut px = vec![0u8; n * IMAGE_BYTES];
    for (i, p) in px.iter_mut().enumerate() {
        if i % 32 >= 16 {
            *p = 255;
        }
    }
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let s = ImageSet::new(px, vec![0; n], names).unwrap();
    let aug = Augment {
        crop_pad: 0,
        ..Augment::default()
    };
    let idx: Vec<usize> = (0..n).collect();
    let b = batch_to_tensor(&s, &idx, &aug, 11, &Device::Cpu).unwrap();
    let v: Vec<f32> = b.images.flatten_all().unwrap().to_vec1().unwrap();
    let flipped = v.chunks(IMAGE_BYTES).filter(|c| c[0] > 0.0).count();
    let rate = flipped as f64 / n as f64;
    assert!((rate - 0.5).abs() < 0.04, "flip rate {rate}");
}

#[test]
fn loader_is_deterministic_and_complete() {
    let s = Arc::new(set(50, 128));
    let plan = |seed| EpochPlan {
        order: (0..50).rev().collect(),
        batch_size: 16,
        augment: Augment::default(),
        seed,
        epoch: 2,
        start_batch: 0,
    };
    let collect = |seed| {
        Loader::spawn(s.clone(), plan(seed), 2)
            .map(|b| b.unwrap())
            .map(|b| {
                (
                    b.index,
                    b.label_bytes.clone(),
                    b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = collect(5);
    assert_eq!(a.len(), 4);
    assert_eq!(a[3].1.len(), 2);
    assert_eq!(a.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(a, collect(5));
    assert_ne!(a, collect(6));
    // Starting mid-epoch gives the same later batches.
    let resumed: Vec<_> = Loader::spawn(
        s.clone(),
        EpochPlan {
            start_batch: 2,
            ..plan(5)
        },
        2,
    )
    .map(|b| {
        b.unwrap()
            .images
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    })
    .collect();
    assert_eq!(resumed.len(), 2);
    assert_eq!(resumed[0], a[2].2);
}

#[test]
fn loader_reports_bad_index_and_early_drop_is_clean() {
    let s = Arc::new(set(4, 1));
    let mut l = Loader::spawn(
        s.clone(),
        EpochPlan {
            order: vec![0, 9],
            batch_size: 2,
            augment: Augment::none(),
            seed: 0,
            epoch: 0,
            start_batch: 0,
        },
        1,
    );
    let err = l.next().unwrap().unwrap_err().to_string();
    assert!(err.contains("9"), "{err}");
    assert!(l.next().is_none());
    let l = Loader::spawn(
        s,
        EpochPlan {
            order: (0..4).cycle().take(400).collect(),
            batch_size: 1,
            augment: Augment::default(),
            seed: 0,
            epoch: 0,
            start_batch: 0,
        },
        2,
    );
    drop(l); // must not hang
}
