//! Seeded, repeatable train/validation splits.

use crate::{Error, Result};
use cifar_types::ImageSet;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Splits `set` into `(train, validation)`, repeatably for a given `seed` (a `ChaCha8Rng` seeded with it).
///
/// `val_fraction` must lie in `[0, 1)`; the validation set gets `floor(len * val_fraction)` images (a 1e-9
/// tolerance absorbs floating-point noise such as `0.29 * 100 = 28.999…`). With `stratified`, each class
/// contributes `floor(count * val_fraction)` images and the few left to reach the total go to the classes with
/// the largest remainders (ties: lower class first), so every class is within one image of its exact share.
/// Both halves keep the original order of `set`; together they hold every image exactly once.
///
/// ```
/// use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
/// let names: Vec<String> = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
/// let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
/// let set = ImageSet::new(vec![0; 100 * IMAGE_BYTES], labels, names).unwrap();
/// let (train, val) = cifar10_dataset::split(&set, 0.2, 42, true).unwrap();
/// assert_eq!((train.len(), val.len()), (80, 20));
/// assert!(val.class_counts().iter().all(|&c| c == 2));
/// ```
pub fn split(
    set: &ImageSet,
    val_fraction: f64,
    seed: u64,
    stratified: bool,
) -> Result<(ImageSet, ImageSet)> {
    let (train_idx, val_idx) = split_indices(
        set.labels(),
        set.num_classes(),
        val_fraction,
        seed,
        stratified,
    )?;
    Ok((set.subset(&train_idx), set.subset(&val_idx)))
}

/// The index form of [`split`]: `(train_indices, validation_indices)`, both ascending.
pub fn split_indices(
    labels: &[u8],
    num_classes: usize,
    val_fraction: f64,
    seed: u64,
    stratified: bool,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::InvalidArgument {
            name: "val_fraction",
            message: format!("must be in [0, 1), got {val_fraction}"),
        });
    }
    let n = labels.len();
    let n_val = share(n, val_fraction);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut is_val = vec![false; n];

    if stratified {
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
        for (i, &l) in labels.iter().enumerate() {
            let c = usize::from(l);
            if c >= num_classes {
                return Err(Error::InvalidArgument {
                    name: "set",
                    message: format!("image {i} has label {l} but there are {num_classes} classes"),
                });
            }
            by_class[c].push(i);
        }
        let mut quota: Vec<usize> = by_class
            .iter()
            .map(|v| share(v.len(), val_fraction))
            .collect();
        let assigned: usize = quota.iter().sum();
        // Largest remainder: hand the missing images to the classes whose exact share was cut the most.
        let mut order: Vec<usize> = (0..num_classes).collect();
        let rem: Vec<f64> = (0..num_classes)
            .map(|c| by_class[c].len() as f64 * val_fraction - quota[c] as f64)
            .collect();
        order.sort_by(|&a, &b| rem[b].total_cmp(&rem[a]).then(a.cmp(&b)));
        for &c in order.iter().take(n_val.saturating_sub(assigned)) {
            quota[c] = (quota[c] + 1).min(by_class[c].len());
        }
        for (c, members) in by_class.iter_mut().enumerate() {
            members.shuffle(&mut rng);
            for &i in &members[..quota[c]] {
                is_val[i] = true;
            }
        }
    } else {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rng);
        for &i in &idx[..n_val] {
            is_val[i] = true;
        }
    }
    let (val, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| is_val[i]);
    Ok((train, val))
}

fn share(count: usize, fraction: f64) -> usize {
    (((count as f64) * fraction + 1e-9).floor() as usize).min(count)
}
