//! Augmentation throughput (images/s) on synthetic images: `cargo bench -p cifar10-augment`.
use candle_core::Device;
use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
use cifar10_augment::{Augment, batch_to_tensor};
use std::time::Instant;

fn main() {
    let n = 10_000;
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let px = (0..n * IMAGE_BYTES).map(|i| (i * 31 % 256) as u8).collect();
    let Ok(set) = ImageSet::new(px, vec![0; n], names) else {
        eprintln!("could not build the synthetic set");
        return;
    };
    let mut rates = Vec::new();
    for rep in 0..7 {
        let t = Instant::now();
        for (k, chunk) in (0..n).collect::<Vec<_>>().chunks(64).enumerate() {
            if batch_to_tensor(
                &set,
                chunk,
                &Augment::default(),
                rep * 1000 + k as u64,
                &Device::Cpu,
            )
            .is_err()
            {
                eprintln!("batch failed");
                return;
            }
        }
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "augment (flip + pad-crop + normalize, batch 64, 1 thread): median {median:.0} img/s over 7 runs"
    );
    println!("{{\"bench\": \"data\", \"batch\": 64, \"img_per_s\": {median:.1}}}");
}
