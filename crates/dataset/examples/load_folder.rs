//! Loads an image folder (`DIR/train/<class>/*`, `DIR/test/<class>/*`, optionally `DIR/val/<class>/*`) and prints
//! what it holds and what the cache did, with the load's wall time.
//!
//! ```sh
//! cargo run --release -p cifar10-dataset --example load_folder -- DIR            # cache beside the data
//! cargo run --release -p cifar10-dataset --example load_folder -- DIR --skip     # leave out bad images
//! ```
//!
//! Run it twice: the second load takes the decoded images from the cache (`DIR/.cifar10-folder-cache.bin`).

use cifar10_dataset::{FolderOptions, load_folder};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: load_folder DIR [--skip]")?);
    let opts = FolderOptions {
        skip_bad_images: args.any(|a| a == "--skip"),
        ..FolderOptions::default()
    };
    let start = Instant::now();
    let mut shown = 0;
    let data = load_folder(&dir, &opts, &mut |done, total| {
        // A line per tenth.
        if total > 0 && done * 10 / total > shown {
            shown = done * 10 / total;
            eprintln!("decoded {done}/{total}");
        }
    })?;
    let secs = start.elapsed().as_secs_f64();
    let c = &data.cache;
    println!(
        "loaded in {secs:.2} s: {} images from the cache, {} decoded{}",
        c.reused,
        c.decoded,
        if c.written { ", cache written" } else { "" }
    );
    let val = data.val.as_ref().map(|v| v.class_counts());
    println!("{:<20} {:>7} {:>7} {:>7}", "class", "train", "val", "test");
    let (train, test) = (data.train.class_counts(), data.test.class_counts());
    for (i, name) in data.train.class_names().iter().enumerate() {
        let v = val.as_ref().map_or("-".to_string(), |v| v[i].to_string());
        println!("{name:<20} {:>7} {v:>7} {:>7}", train[i], test[i]);
    }
    for s in &data.skipped {
        println!("skipped {}: {}", s.path.display(), s.reason);
    }
    if !data.ignored.is_empty() {
        println!("{} non-image file(s) ignored", data.ignored.len());
    }
    Ok(())
}
