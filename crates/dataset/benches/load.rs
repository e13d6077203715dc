//! Loads the real extracted CIFAR-10 (`$CIFAR10_DATA_DIR`, else `./data`, else the workspace's `data/`)
//! several times and prints the median time and images per second. Skips with a message when absent.
//!
//! `cargo bench -p cifar10-dataset --bench load` (add `-- N` to set the repetitions, default 7).

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let candidates: Vec<PathBuf> = match std::env::var_os("CIFAR10_DATA_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![
            PathBuf::from("data"),
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data")),
        ],
    };
    let Some(dir) = candidates.iter().find(|d| cifar10_dataset::is_present(d)) else {
        println!(
            "skipping: no extracted CIFAR-10 in {:?} (set CIFAR10_DATA_DIR or run `cargo xtask fetch-data`)",
            candidates
        );
        return;
    };
    let reps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let mut secs = Vec::with_capacity(reps);
    let mut images = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let data = match cifar10_dataset::load(dir) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("load failed: {e}");
                std::process::exit(1);
            }
        };
        secs.push(t.elapsed().as_secs_f64());
        images = data.train.len() + data.test.len();
        std::hint::black_box(&data);
    }
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    println!(
        "load {} ({images} images) x{}: median {median:.3} s (min {:.3} s, max {:.3} s), {:.0} images/s",
        dir.display(),
        secs.len(),
        secs[0],
        secs[secs.len() - 1],
        images as f64 / median
    );
}
