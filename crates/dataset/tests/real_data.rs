//! Checks against the real CIFAR-10 data set. Uses `../shared` (outside the repository):
//!
//! - if env `CIFAR10_DATA_DIR` is set, it names an already extracted data dir (the folder holding
//!   `cifar-10-batches-bin/`), which is loaded as is;
//! - else if `<workspace>/../shared/data/cifar-10-binary.tar.gz` exists, it is fetched with `from` into a
//!   temporary directory (verified by structure, extracted, loaded);
//! - otherwise the test prints "skipping: ..." and returns.

use cifar_types::CLASS_NAMES;
use std::path::{Path, PathBuf};

const SHARED_ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/cifar-10-binary.tar.gz"
);

fn check(data_dir: &Path) {
    let data = dataset::load(data_dir).unwrap();
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    assert_eq!(data.train.class_counts(), vec![5_000; 10]);
    assert_eq!(data.test.class_counts(), vec![1_000; 10]);
    assert_eq!(
        data.train.class_names(),
        CLASS_NAMES.map(String::from).as_slice()
    );
    assert_eq!(data.test.class_names(), data.train.class_names());
    assert!(data.train.labels().iter().all(|&l| l < 10));

    // Published per-channel means of the CIFAR-10 training set (0.4914, 0.4822, 0.4465) * 255.
    let px = data.train.pixels();
    let mut sums = [0u64; 3];
    for img in px.chunks_exact(3072) {
        for (c, plane) in img.chunks_exact(1024).enumerate() {
            sums[c] += plane.iter().map(|&b| u64::from(b)).sum::<u64>();
        }
    }
    let n = (data.train.len() * 1024) as f64;
    for (c, want) in [125.31, 122.96, 113.86].into_iter().enumerate() {
        let mean = sums[c] as f64 / n;
        assert!(
            (mean - want).abs() < 0.5,
            "channel {c}: mean {mean}, expected about {want}"
        );
    }

    let (train, val) = dataset::split(&data.train, 0.1, 42, true).unwrap();
    assert_eq!(val.class_counts(), vec![500; 10]);
    assert_eq!(train.len(), 45_000);
}

#[test]
fn real_cifar10_loads_with_official_counts() {
    if let Some(dir) = std::env::var_os("CIFAR10_DATA_DIR") {
        let dir = PathBuf::from(dir);
        if !dataset::is_present(&dir) {
            panic!(
                "CIFAR10_DATA_DIR={} does not hold an extracted CIFAR-10",
                dir.display()
            );
        }
        check(&dir);
        return;
    }
    let archive = Path::new(SHARED_ARCHIVE);
    if !archive.is_file() {
        println!(
            "skipping: CIFAR10_DATA_DIR is not set and {} is absent",
            archive.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let opts = dataset::FetchOptions {
        from: Some(archive.to_path_buf()),
        ..Default::default()
    };
    let out = dataset::fetch(tmp.path(), &opts, &mut |_, _| {}).unwrap();
    assert_eq!(
        out,
        dataset::FetchOutcome::Extracted {
            from: archive.to_path_buf()
        }
    );
    assert!(dataset::is_present(tmp.path()));
    check(tmp.path());
}
