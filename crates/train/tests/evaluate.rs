//! Evaluation and flip test-time augmentation.

mod common;

use augment::{Normalize, hflip};
use candle_core::Device;
use cifar_types::{IMAGE_BYTES, ImageSet};
use cifar10_train::{Selective, Tta, evaluate, evaluate_selective};
use std::sync::Arc;

fn flipped(set: &ImageSet) -> ImageSet {
    let mut px = set.pixels().to_vec();
    for img in px.chunks_exact_mut(IMAGE_BYTES) {
        hflip(img);
    }
    ImageSet::new(px, set.labels().to_vec(), set.class_names().to_vec()).unwrap()
}

#[test]
fn tta_averages_the_image_and_its_mirror() {
    let set = common::synthetic(37, 9);
    let model = model::registry::build("cnn-dnn", &Device::Cpu, 3, 10).unwrap();
    let plain = evaluate(
        model.as_ref(),
        &Arc::new(set.clone()),
        16,
        Normalize::default(),
        Tta::None,
    )
    .unwrap();
    let mirror = evaluate(
        model.as_ref(),
        &Arc::new(flipped(&set)),
        16,
        Normalize::default(),
        Tta::None,
    )
    .unwrap();
    let tta = evaluate(
        model.as_ref(),
        &Arc::new(set.clone()),
        16,
        Normalize::default(),
        Tta::Mirror,
    )
    .unwrap();
    assert_eq!(tta.predictions.len(), 37);
    let mut differs = false;
    for i in 0..37 {
        for c in 0..10 {
            let want = 0.5 * (plain.predictions.row(i)[c] + mirror.predictions.row(i)[c]);
            let got = tta.predictions.row(i)[c];
            assert!(
                (want - got).abs() < 1e-5,
                "image {i} class {c}: {got} vs {want}"
            );
            differs |= (plain.predictions.row(i)[c] - got).abs() > 1e-7;
        }
    }
    assert!(
        differs,
        "TTA changed nothing: the synthetic images are not asymmetric enough"
    );
    // The loss of averaged probabilities is the mean NLL of those probabilities.
    let nll: f64 = (0..37)
        .map(|i| -f64::from(tta.predictions.row(i)[usize::from(set.label(i))]).ln())
        .sum::<f64>()
        / 37.0;
    assert!((nll - tta.loss).abs() < 1e-4, "{nll} vs {}", tta.loss);
}

#[test]
fn evaluation_batches_do_not_change_results() {
    let set = Arc::new(common::synthetic(50, 4));
    let model = model::registry::build("cnn-dnn", &Device::Cpu, 1, 10).unwrap();
    let a = evaluate(model.as_ref(), &set, 7, Normalize::default(), Tta::None).unwrap();
    let b = evaluate(model.as_ref(), &set, 50, Normalize::default(), Tta::None).unwrap();
    assert_eq!(a.accuracy, b.accuracy);
    assert!((a.loss - b.loss).abs() < 1e-5);
    for i in 0..50 {
        for c in 0..10 {
            assert!((a.predictions.row(i)[c] - b.predictions.row(i)[c]).abs() < 1e-5);
        }
    }
}

/// Selective TTA reports the plain view's accuracy from its own forward passes: the same as a plain evaluation,
/// at a threshold that sends every image to the extra views (then the result is full TTA's) and at one that
/// sends none.
#[test]
fn selective_evaluation_reports_the_plain_accuracy() {
    let set = Arc::new(common::synthetic(60, 11));
    let model = model::registry::build("cnn-dnn", &Device::Cpu, 2, 10).unwrap();
    let norm = Normalize::default();
    let plain = evaluate(model.as_ref(), &set, 16, norm, Tta::None).unwrap();
    let full = evaluate(model.as_ref(), &set, 16, norm, Tta::Mirror).unwrap();
    for (threshold, want, augmented) in [(1.0, &full, 60), (1e-6, &plain, 0)] {
        let s = evaluate_selective(
            model.as_ref(),
            &set,
            16,
            norm,
            Selective {
                tta: Tta::Mirror,
                threshold,
            },
        )
        .unwrap();
        assert_eq!(s.augmented, augmented, "threshold {threshold}");
        assert_eq!(s.plain_accuracy, plain.accuracy, "threshold {threshold}");
        assert_eq!(
            s.evaluation.accuracy, want.accuracy,
            "threshold {threshold}"
        );
        assert!((s.evaluation.loss - want.loss).abs() < 1e-5);
    }
}
