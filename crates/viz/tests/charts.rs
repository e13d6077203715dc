//! Each chart drawn from synthetic data: size, content, colours and error cases.

mod common;

use cifar10_viz::{Error, Format};
use common::*;

const TRAIN: [u8; 3] = [31, 119, 180];
const VAL: [u8; 3] = [255, 127, 14];
const GOOD: [u8; 3] = [44, 160, 44];
const BAD: [u8; 3] = [214, 39, 40];

fn count(rgb: &[u8], c: [u8; 3]) -> usize {
    rgb.chunks_exact(3).filter(|p| *p == c).count()
}

fn px(rgb: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let o = (y * w + x) as usize * 3;
    [rgb[o], rgb[o + 1], rgb[o + 2]]
}

fn luma(p: [u8; 3]) -> f64 {
    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
}

#[test]
fn curves_have_size_both_series_and_best_marker() {
    let dir = tempfile::tempdir().unwrap();
    let h = history(15);
    let loss = dir.path().join("loss_curve.png");
    cifar10_viz::loss_curve(&h, &loss, Format::Png).unwrap();
    let (w, hgt, rgb) = decode_png(&loss);
    assert_eq!((w, hgt), (1000, 620));
    assert!(distinct_colours(&rgb) > 50, "loss curve looks blank");
    assert!(count(&rgb, TRAIN) > 500 && count(&rgb, VAL) > 500);
    assert_eq!(
        count(&rgb, GOOD),
        0,
        "no best-epoch marker on the loss curve"
    );

    let acc = dir.path().join("accuracy_curve.png");
    cifar10_viz::accuracy_curve(&h, &acc, Format::Png).unwrap();
    let (_, _, rgb) = decode_png(&acc);
    assert!(count(&rgb, TRAIN) > 500 && count(&rgb, VAL) > 500);
    assert!(count(&rgb, GOOD) > 300, "best epoch is not marked");
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn empty_history_is_no_data_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("loss_curve.png");
    let empty = cifar_types::History::default();
    assert!(matches!(
        cifar10_viz::loss_curve(&empty, &p, Format::Png),
        Err(Error::NoData { .. })
    ));
    assert!(matches!(
        cifar10_viz::accuracy_curve(&empty, &p, Format::Svg),
        Err(Error::NoData { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn one_epoch_draws_single_points() {
    let dir = tempfile::tempdir().unwrap();
    let h = history(1);
    for (name, f) in [
        ("l.png", cifar10_viz::loss_curve as fn(&_, &_, _) -> _),
        ("a.png", cifar10_viz::accuracy_curve),
    ] {
        let p = dir.path().join(name);
        f(&h, &p, Format::Png).unwrap();
        let (_, _, rgb) = decode_png(&p);
        assert!(
            count(&rgb, TRAIN) > 20,
            "{name}: the single training point is missing"
        );
    }
}

#[test]
fn heatmap_diagonal_is_dark_and_text_contrasts() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10;
    let cm: Vec<Vec<u64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == j {
                        900
                    } else if j == (i + 1) % n {
                        100
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    let p = dir.path().join("cm.png");
    cifar10_viz::confusion_matrix(&cm, &names(), false, &p, Format::Png).unwrap();
    let (w, h, rgb) = decode_png(&p);
    assert!(distinct_colours(&rgb) > 20);
    // The matrix frame is the longest run of its outline colour: find its top edge.
    let frame = [90, 90, 90];
    let (mut x0, mut y0, mut side) = (0, 0, 0);
    'rows: for y in 0..h {
        let mut start = None;
        for x in 0..=w {
            let on = x < w && px(&rgb, w, x, y) == frame;
            match (on, start) {
                (true, None) => start = Some(x),
                (false, Some(s)) => {
                    if x - s > 300 {
                        (x0, y0, side) = (s, y, x - s);
                        break 'rows;
                    }
                    start = None;
                }
                _ => {}
            }
        }
    }
    assert!(side > 300, "matrix frame not found");
    let cell = side / n as u32;
    // A corner of each cell, away from its number.
    let corner = |r: u32, c: u32| px(&rgb, w, x0 + c * cell + cell / 6, y0 + r * cell + cell / 6);
    for i in 0..n as u32 {
        let diag = corner(i, i);
        let zero = corner(i, (i + 5) % n as u32);
        let some = corner(i, (i + 1) % n as u32);
        assert!(luma(diag) < 80.0, "diagonal cell {i} is not dark: {diag:?}");
        assert!(
            luma(zero) > 240.0,
            "zero cell in row {i} is not light: {zero:?}"
        );
        assert!(luma(diag) < luma(some) && luma(some) < luma(zero));
    }
    // The count in a dark cell is drawn light, in a light cell dark.
    let centre = |r: u32, c: u32| {
        let (cx, cy) = (x0 + c * cell + cell / 2, y0 + r * cell + cell / 2);
        let mut ls = Vec::new();
        for y in cy - cell / 5..cy + cell / 5 {
            for x in cx - cell / 3..cx + cell / 3 {
                ls.push(luma(px(&rgb, w, x, y)));
            }
        }
        ls
    };
    assert!(
        centre(0, 0).iter().any(|&l| l > 230.0),
        "no light text on the dark cell"
    );
    assert!(
        centre(0, 5).iter().any(|&l| l < 80.0),
        "no dark text on the light cell"
    );
}

#[test]
fn normalized_heatmap_and_bad_matrices() {
    let dir = tempfile::tempdir().unwrap();
    let names2: Vec<String> = vec!["a".into(), "b".into()];
    let p = dir.path().join("n.svg");
    cifar10_viz::confusion_matrix(&[vec![3, 1], vec![0, 0]], &names2, true, &p, Format::Svg)
        .unwrap();
    let svg = std::fs::read_to_string(&p).unwrap();
    assert!(svg.contains("<svg") && svg.contains("0.75") && svg.contains("0.25"));
    assert!(svg.contains("Predicted label") && svg.contains("True label"));

    let bad =
        cifar10_viz::confusion_matrix(&[vec![1, 2], vec![3]], &names2, false, &p, Format::Png);
    assert!(matches!(bad, Err(Error::Invalid(m)) if m.contains("row 1")));
    let bad = cifar10_viz::confusion_matrix(&[vec![1]], &names2, false, &p, Format::Png);
    assert!(matches!(bad, Err(Error::Invalid(m)) if m.contains("class names")));
    let bad = cifar10_viz::confusion_matrix(&[], &[], false, &p, Format::Png);
    assert!(matches!(bad, Err(Error::NoData { .. })));
}

/// `n` images that are entirely magenta, a colour nothing else in the charts uses.
fn magenta(n: usize) -> cifar_types::ImageSet {
    let mut px = vec![0u8; n * cifar_types::IMAGE_BYTES];
    for img in px.chunks_exact_mut(cifar_types::IMAGE_BYTES) {
        img[..1024].fill(255);
        img[2048..].fill(255);
    }
    cifar_types::ImageSet::new(px, (0..n).map(|i| (i % 10) as u8).collect(), names()).unwrap()
}

#[test]
fn sample_grid_draws_enlarged_images_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let preds = predictions(40);
    let solid = magenta(40);
    let p = dir.path().join("grid.png");
    let wrong = preds.misclassified();
    assert!(wrong.len() >= 3);
    cifar10_viz::sample_grid(
        &solid,
        &preds,
        &wrong[..3],
        "Three mistakes",
        &p,
        Format::Png,
    )
    .unwrap();
    let (w3, h3, rgb) = decode_png(&p);
    assert_eq!(
        count(&rgb, [255, 0, 255]),
        3 * 128 * 128,
        "three 4x images expected"
    );
    assert!(
        count(&rgb, BAD) > 50,
        "wrong predictions are labelled in red"
    );

    let idx: Vec<usize> = (0..25).collect();
    cifar10_viz::sample_grid(&solid, &preds, &idx, "All", &p, Format::Png).unwrap();
    let (w25, h25, rgb) = decode_png(&p);
    assert_eq!(count(&rgb, [255, 0, 255]), 25 * 128 * 128);
    assert!(
        w25 > w3 && h25 > h3 + 3 * 128,
        "5x5 grid should be larger than one row of 3"
    );

    let svg = dir.path().join("grid.svg");
    cifar10_viz::sample_grid(&images(40), &preds, &idx, "All", &svg, Format::Svg).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(s.matches("<image").count(), 25);
    assert!(!s.contains("VIZ-IMAGE"));
    assert!(s.contains(" -&gt; ") || s.contains(" -> "));
}

#[test]
fn sample_inputs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.png");
    let preds = predictions(20);
    let r = cifar10_viz::sample_grid(&images(20), &preds, &[20], "t", &p, Format::Png);
    assert!(matches!(r, Err(Error::Invalid(m)) if m.contains("index 20")));
    let r = cifar10_viz::sample_grid(&images(10), &preds, &[0], "t", &p, Format::Png);
    assert!(matches!(r, Err(Error::Invalid(m)) if m.contains("10 images but 20 predictions")));
    let r = cifar10_viz::probability_bars(&images(20), &preds, &[], &p, Format::Png);
    assert!(matches!(r, Err(Error::NoData { .. })));
    // Labels that disagree: the images are not the predicted set.
    let shifted = images(21).subset(&(1..21).collect::<Vec<_>>());
    let r = cifar10_viz::probability_bars(&shifted, &preds, &[0], &p, Format::Png);
    assert!(matches!(r, Err(Error::Invalid(m)) if m.contains("not of the same set")));
    assert!(!p.exists());
}

#[test]
fn probability_bars_highlight_true_and_wrong_classes() {
    let dir = tempfile::tempdir().unwrap();
    let preds = predictions(60);
    let pick = cifar10_viz::pick_probability_samples(&preds, 6);
    assert_eq!(pick, vec![0, 1, 2, 3, 4, 5]);
    let wrong = preds.misclassified()[0];
    let p = dir.path().join("bars.png");
    cifar10_viz::probability_bars(&magenta(60), &preds, &[pick[0], wrong], &p, Format::Png)
        .unwrap();
    let (w, h, rgb) = decode_png(&p);
    assert!(w > 1000 && h > 200);
    assert_eq!(count(&rgb, [255, 0, 255]), 2 * 128 * 128);
    assert!(count(&rgb, GOOD) > 200, "true-class bars are green");
    assert!(count(&rgb, BAD) > 200, "the wrong top prediction is red");

    let svg = dir.path().join("bars.svg");
    cifar10_viz::probability_bars(&images(60), &preds, &pick, &svg, Format::Svg).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("automobile") && s.contains("probability"));
    assert_eq!(s.matches("<image").count(), 6);
}

#[test]
fn svg_curves_contain_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("acc.svg");
    cifar10_viz::accuracy_curve(&history(5), &p, Format::Svg).unwrap();
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    for label in [
        "Epoch",
        "Accuracy (%)",
        "Training",
        "Validation",
        "Best epoch 3",
    ] {
        assert!(s.contains(label), "missing {label}");
    }
}

#[test]
fn non_finite_values_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.png");
    let mut h = history(4);
    h.epochs[2].val_loss = f64::NAN;
    h.epochs[3].train_loss = f64::INFINITY;
    cifar10_viz::loss_curve(&h, &p, Format::Png).unwrap();
    let (_, _, rgb) = decode_png(&p);
    assert!(count(&rgb, VAL) > 100 && count(&rgb, TRAIN) > 100);
    for e in &mut h.epochs {
        e.train_loss = f64::NAN;
        e.val_loss = f64::NAN;
    }
    let r = cifar10_viz::loss_curve(&h, &p, Format::Png);
    assert!(matches!(r, Err(Error::NoData { reason, .. }) if reason.contains("NaN")));
}
