//! Checks a CIFAR-10 data directory, loads it, and prints what it holds: the per-class counts of the training and
//! test sets and the sizes of a seeded, stratified train/validation split.
//!
//! ```sh
//! cargo run --release -p cifar10-dataset --example inspect_data             # the data directory `data`
//! cargo run --release -p cifar10-dataset --example inspect_data -- DIR      # another one
//! ```
//!
//! The directory must hold the extracted binary version, `DIR/cifar-10-batches-bin/`. Without it the example says
//! how to get it (`cargo xtask fetch-data`, or `cifar10_dataset::fetch` from code) and exits with status 1.

use std::path::PathBuf;
use std::time::Instant;

/// The validation fraction and seed of the split shown (`cifar10_train::TrainConfig`'s defaults; stratified here).
const VAL_FRACTION: f64 = 0.1;
const SEED: u64 = 42;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args_os().nth(1).unwrap_or_else(|| "data".into()));

    // `is_present` is the yes/no question; `check` says which file is missing or has the wrong size. Neither reads
    // the batches.
    if !cifar10_dataset::is_present(&dir) {
        let why = match cifar10_dataset::check(&dir) {
            Err(e) => e.to_string(),
            Ok(()) => "incomplete".to_string(),
        };
        eprintln!(
            "No usable CIFAR-10 data in {dir}: {why}\n\n\
             To get it, run from the cifar10-rs workspace\n\n    \
             cargo xtask fetch-data --data-dir {dir}\n\n\
             (add `--from FILE` to extract an archive already downloaded), or call\n\
             `cifar10_dataset::fetch(dir, &FetchOptions::default(), &mut |_, _| {{}})` from code.",
            dir = dir.display()
        );
        std::process::exit(1);
    }

    let started = Instant::now();
    let data = cifar10_dataset::load(&dir)?;
    println!(
        "loaded {} in {:.2?}: {} training and {} test images",
        dir.join(cifar10_dataset::BATCH_DIR).display(),
        started.elapsed(),
        data.train.len(),
        data.test.len()
    );

    let (train, val) = cifar10_dataset::split(&data.train, VAL_FRACTION, SEED, true)?;
    println!(
        "stratified split, validation fraction {VAL_FRACTION}, seed {SEED}: {} train + {} validation",
        train.len(),
        val.len()
    );

    println!(
        "\n{:<12} {:>7} {:>7} {:>13} {:>11}",
        "class", "train", "test", "split: train", "validation"
    );
    let counts = [
        data.train.class_counts(),
        data.test.class_counts(),
        train.class_counts(),
        val.class_counts(),
    ];
    for (c, name) in data.train.class_names().iter().enumerate() {
        let [a, b, s, v] = counts.each_ref().map(|k| k.get(c).copied().unwrap_or(0));
        println!("{name:<12} {a:>7} {b:>7} {s:>13} {v:>11}");
    }
    let [a, b, s, v] = counts.each_ref().map(|k| k.iter().sum::<usize>());
    println!("{:<12} {a:>7} {b:>7} {s:>13} {v:>11}", "total");

    // One pixel, to show the layout: planar R, G, B planes of 32x32, row-major.
    if !data.train.is_empty() {
        let [r, g, b] = data.train.rgb(0, 16, 16);
        let class = data
            .train
            .class_names()
            .get(usize::from(data.train.label(0)));
        println!(
            "\ntraining image 0 ({}): centre pixel RGB ({r}, {g}, {b})",
            class.map_or("?", String::as_str)
        );
    }
    Ok(())
}
