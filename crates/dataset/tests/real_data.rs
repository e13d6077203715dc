//! Checks against the real CIFAR-10 data set, which a fresh clone does not have: the test is `#[ignore]`d, so
//! `cargo test` lists it as ignored (with the reason) instead of passing without checking anything. Run it with
//! `cargo test -p cifar10-dataset --test real_data -- --ignored` once data exists; it looks, in order, at:
//!
//! - env `CIFAR10_DATA_DIR`, an already extracted data dir (the folder holding `cifar-10-batches-bin/`);
//! - `<workspace>/data`, where `cargo xtask fetch-data` and `cifar train` put it;
//! - `<workspace>/../shared/data/cifar-10-binary.tar.gz` (outside the repository), fetched with `from` into a
//!   temporary directory (verified by structure, extracted, loaded).
//!
//! With none of them it fails, saying where it looked.

use cifar_types::CIFAR10_CLASS_NAMES;
use std::path::{Path, PathBuf};

const SHARED_ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/cifar-10-binary.tar.gz"
);
const WORKSPACE_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

fn check(data_dir: &Path) {
    let data = cifar10_dataset::load(data_dir).unwrap();
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    assert_eq!(data.train.class_counts(), vec![5_000; 10]);
    assert_eq!(data.test.class_counts(), vec![1_000; 10]);
    assert_eq!(
        data.train.class_names(),
        CIFAR10_CLASS_NAMES.map(String::from).as_slice()
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

    let (train, val) = cifar10_dataset::split(&data.train, 0.1, 42, true).unwrap();
    assert_eq!(val.class_counts(), vec![500; 10]);
    assert_eq!(train.len(), 45_000);
}

#[test]
#[ignore = "needs CIFAR-10 (data/, CIFAR10_DATA_DIR or ../shared/data): cargo test -p cifar10-dataset --test real_data -- --ignored"]
fn real_cifar10_loads_with_official_counts() {
    if let Some(dir) = std::env::var_os("CIFAR10_DATA_DIR") {
        let dir = PathBuf::from(dir);
        if !cifar10_dataset::is_present(&dir) {
            panic!(
                "CIFAR10_DATA_DIR={} does not hold an extracted CIFAR-10",
                dir.display()
            );
        }
        check(&dir);
        return;
    }
    let workspace_data = Path::new(WORKSPACE_DATA);
    if cifar10_dataset::is_present(workspace_data) {
        check(workspace_data);
        return;
    }
    let archive = Path::new(SHARED_ARCHIVE);
    assert!(
        archive.is_file(),
        "no CIFAR-10 to check: CIFAR10_DATA_DIR is not set, {} holds no data (cargo xtask fetch-data) and {} is absent",
        workspace_data.display(),
        archive.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let opts = cifar10_dataset::FetchOptions {
        from: Some(archive.to_path_buf()),
        ..Default::default()
    };
    let out = cifar10_dataset::fetch(tmp.path(), &opts, &mut |_, _| {}).unwrap();
    assert_eq!(
        out,
        cifar10_dataset::FetchOutcome::Extracted {
            from: archive.to_path_buf()
        }
    );
    assert!(cifar10_dataset::is_present(tmp.path()));
    check(tmp.path());
}
