//! Decodes image files as prediction does and prints what came out, the time it took and the process's peak
//! resident memory (Linux), e.g. to measure the worst case of the decoder limits:
//!
//! ```sh
//! cargo run --release -p cifar10-imagefile --example decode -- [--allow-partial] IMAGE...
//! ```

use cifar10_imagefile::{Crop, DecodeLimits, load_path};
use std::time::Instant;

fn main() {
    let mut limits = DecodeLimits::default();
    for arg in std::env::args().skip(1) {
        if arg == "--allow-partial" {
            limits.allow_partial = true;
            continue;
        }
        let t = Instant::now();
        let r = load_path(std::path::Path::new(&arg), Crop::Center, limits);
        let s = t.elapsed().as_secs_f64();
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|st| {
                st.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            })
            .unwrap_or_else(|| "?".into());
        match r {
            Ok(i) => println!(
                "{arg}: {:?} {}x{} in {s:.2} s, peak RSS {peak} kB{}",
                i.format,
                i.width,
                i.height,
                i.partial
                    .map(|t| format!(" (partial: {t})"))
                    .unwrap_or_default()
            ),
            Err(e) => println!("{arg}: error: {e} ({s:.2} s, peak RSS {peak} kB)"),
        }
    }
}
