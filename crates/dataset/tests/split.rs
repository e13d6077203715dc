//! Seeded train/validation splits.

use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
use cifar10_dataset::split;

/// `n` images whose first pixel byte encodes their index (mod 256) and second byte index / 256, so the
/// original index of any image can be recovered; labels follow `label_of`.
fn set(n: usize, label_of: impl Fn(usize) -> u8) -> ImageSet {
    let mut px = vec![0u8; n * IMAGE_BYTES];
    for i in 0..n {
        px[i * IMAGE_BYTES] = (i % 256) as u8;
        px[i * IMAGE_BYTES + 1] = (i / 256) as u8;
    }
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    ImageSet::new(px, (0..n).map(label_of).collect(), names).unwrap()
}

fn ids(s: &ImageSet) -> Vec<usize> {
    (0..s.len())
        .map(|i| s.image(i)[0] as usize + 256 * s.image(i)[1] as usize)
        .collect()
}

#[test]
fn deterministic_for_a_seed_and_different_for_another() {
    let s = set(1000, |i| (i % 10) as u8);
    let (t1, v1) = split(&s, 0.2, 7, false).unwrap();
    let (t2, v2) = split(&s, 0.2, 7, false).unwrap();
    assert_eq!(t1, t2);
    assert_eq!(v1, v2);
    let (_, v3) = split(&s, 0.2, 8, false).unwrap();
    assert_ne!(ids(&v1), ids(&v3));
}

#[test]
fn disjoint_complete_and_sized_by_floor() {
    let s = set(1003, |i| (i * 7 % 10) as u8);
    for (frac, stratified) in [
        (0.1, false),
        (0.1, true),
        (0.29, false),
        (0.0, true),
        (0.999, true),
    ] {
        let (t, v) = split(&s, frac, 3, stratified).unwrap();
        assert_eq!(
            v.len(),
            (1003.0 * frac + 1e-9_f64).floor() as usize,
            "{frac}"
        );
        let mut all = ids(&t);
        all.extend(ids(&v));
        all.sort();
        assert_eq!(all, (0..1003).collect::<Vec<_>>(), "{frac} {stratified}");
        // Labels travel with their images.
        for (set, id) in [(&t, ids(&t)), (&v, ids(&v))] {
            for (k, &i) in id.iter().enumerate() {
                assert_eq!(set.label(k), (i * 7 % 10) as u8);
            }
        }
    }
    assert_eq!(split(&set(100, |_| 0), 0.29, 1, false).unwrap().1.len(), 29);
}

#[test]
fn stratified_counts_are_exact() {
    // Unbalanced classes: class c has 100 + 10 c images.
    let mut labels = Vec::new();
    for c in 0..10u8 {
        labels.extend(std::iter::repeat_n(c, 100 + 10 * c as usize));
    }
    let s = set(labels.len(), |i| labels[i]);
    let (t, v) = split(&s, 0.1, 11, true).unwrap();
    let want: Vec<usize> = (0..10).map(|c| 10 + c).collect();
    assert_eq!(v.class_counts(), want);
    let train_want: Vec<usize> = (0..10).map(|c| 90 + 9 * c).collect();
    assert_eq!(t.class_counts(), train_want);

    // 5,000 balanced per class like CIFAR-10 training: exactly 500 per class at 0.1.
    let s = set(50_000, |i| (i % 10) as u8);
    let (_, v) = split(&s, 0.1, 42, true).unwrap();
    assert_eq!(v.class_counts(), vec![500; 10]);
}

#[test]
fn stratified_remainder_goes_to_largest_fractions() {
    // 7 images of class 0 and 3 of class 1 at 0.5: floor gives 3 + 1 = 4, total wants 5 -> one extra
    // to a class with remainder 0.5 (tie: class 0 first).
    let s = set(10, |i| if i < 7 { 0 } else { 1 });
    let (_, v) = split(&s, 0.5, 1, true).unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(&v.class_counts()[..2], &[4, 1]);
}

#[test]
fn fraction_out_of_range_is_an_error() {
    let s = set(10, |_| 0);
    for f in [1.0, -0.1, f64::NAN, 2.0] {
        let err = split(&s, f, 0, false).unwrap_err();
        assert!(err.to_string().contains("val_fraction"), "{err}");
    }
}
