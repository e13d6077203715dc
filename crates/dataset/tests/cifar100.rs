//! CIFAR-100 on a synthetic archive in the official format (real member names, `<coarse><fine><3072 pixels>`
//! records, both class-name files): fetched from a local file and from a loopback server with the archive's md5,
//! fine and coarse labels, and the damaged archives that must be refused with nothing left behind.

mod common;

use cifar_types::IMAGE_BYTES;
use cifar10_dataset::{
    Dataset, FetchConfig, FetchOptions, FetchOutcome, Labels, Layout, cifar100, fetch_with,
    load_labels,
};
use common::{Entry, Reply, build_targz, hex_md5, serve, tree};
use std::time::Duration;

/// 40 records per 10,000 of the real set: 200 training and 40 test images.
const SMALL100: Layout = Layout::new(Dataset::Cifar100, 40);

fn fine_names() -> String {
    (0..100).map(|i| format!("fine_{i}\n")).collect()
}

fn coarse_names() -> String {
    (0..20).map(|i| format!("coarse_{i}\n")).collect()
}

/// `records` records: fine label `(i + offset) % 100`, coarse label `fine / 5`, pixels from (record, byte).
fn records(records: usize, offset: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(records * cifar100::RECORD_BYTES);
    for i in 0..records {
        let fine = (i + offset) % 100;
        out.push((fine / 5) as u8);
        out.push(fine as u8);
        out.extend((0..IMAGE_BYTES).map(|j| ((j * 5 + i * 11 + offset) % 256) as u8));
    }
    out
}

fn entries(layout: Layout, train: Vec<u8>, test: Vec<u8>) -> Vec<Entry> {
    let d = cifar100::DIR;
    let _ = layout;
    vec![
        Entry::Dir(format!("{d}/")),
        Entry::File(format!("{d}/{}", cifar100::TRAIN_FILE), train),
        Entry::File(format!("{d}/{}", cifar100::TEST_FILE), test),
        Entry::File(
            format!("{d}/{}", cifar100::FINE_NAMES_FILE),
            fine_names().into_bytes(),
        ),
        Entry::File(
            format!("{d}/{}", cifar100::COARSE_NAMES_FILE),
            coarse_names().into_bytes(),
        ),
    ]
}

fn good_archive() -> Vec<u8> {
    build_targz(&entries(
        SMALL100,
        records(SMALL100.train_records(), 0),
        records(SMALL100.test_records(), 7),
    ))
}

fn cfg() -> FetchConfig {
    FetchConfig {
        layout: SMALL100,
        retry_base_delay: Duration::from_millis(5),
        ..FetchConfig::for_dataset(Dataset::Cifar100)
    }
}

fn opts() -> FetchOptions {
    FetchOptions {
        dataset: Dataset::Cifar100,
        ..Default::default()
    }
}

#[test]
fn official_constants_are_cifar100s() {
    let c = FetchConfig::for_dataset(Dataset::Cifar100);
    assert_eq!(c.official_md5, "03b5dce01913d631647c71ecec9e9cb8");
    assert!(c.official_url.ends_with("/cifar-100-binary.tar.gz"));
    assert_eq!(Layout::CIFAR100.train_records(), 50_000);
    assert_eq!(
        Layout::CIFAR100.members()[0],
        (
            "train.bin",
            cifar10_dataset::MemberSize::Exact(50_000 * 3074)
        )
    );
}

#[test]
fn from_a_local_archive_with_fine_and_coarse_labels() {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("cifar-100-binary.tar.gz");
    std::fs::write(&archive, good_archive()).unwrap();
    let data = root.path().join("data");
    let o = FetchOptions {
        from: Some(archive.clone()),
        ..opts()
    };
    let out = fetch_with(&data, &o, &cfg(), &mut |_, _| {}).unwrap();
    assert_eq!(out, FetchOutcome::Extracted { from: archive });
    assert!(SMALL100.is_present(&data));

    let fine = load_labels(&data, SMALL100, Labels::Fine).unwrap();
    assert_eq!((fine.train.len(), fine.test.len()), (200, 40));
    assert_eq!(fine.train.num_classes(), 100);
    assert_eq!(fine.train.class_names()[42], "fine_42");
    assert_eq!(fine.train.label(42), 42);
    assert_eq!(fine.test.label(0), 7);
    let raw = records(1, 0);
    assert_eq!(fine.train.image(0), &raw[2..]);

    let coarse = load_labels(&data, SMALL100, Labels::Coarse).unwrap();
    assert_eq!(coarse.train.num_classes(), 20);
    assert_eq!(coarse.train.class_names()[8], "coarse_8");
    assert_eq!(coarse.train.label(42), 8);
    assert_eq!(coarse.train.pixels(), fine.train.pixels());

    // Fetching again finds it present.
    let again = fetch_with(&data, &opts(), &cfg(), &mut |_, _| {}).unwrap();
    assert_eq!(again, FetchOutcome::AlreadyPresent);
}

#[test]
fn from_a_loopback_server_checked_by_md5() {
    let archive = good_archive();
    let server = serve(archive.clone(), vec![Reply::Body { ranges: true }]);
    let dir = tempfile::tempdir().unwrap();
    let c = FetchConfig {
        official_url: server.url.clone(),
        official_md5: hex_md5(&archive),
        ..cfg()
    };
    let o = FetchOptions {
        url: Some(server.url.clone()),
        ..opts()
    };
    let out = fetch_with(dir.path(), &o, &c, &mut |_, _| {}).unwrap();
    assert_eq!(
        out,
        FetchOutcome::Downloaded {
            url: server.url.clone()
        }
    );
    assert_eq!(
        std::fs::read(dir.path().join(cifar10_dataset::CIFAR100_ARCHIVE_NAME)).unwrap(),
        archive
    );
    assert_eq!(
        load_labels(dir.path(), SMALL100, Labels::Fine)
            .unwrap()
            .train
            .len(),
        200
    );

    // A wrong md5 is refused and nothing is extracted.
    let server = serve(archive.clone(), vec![Reply::Body { ranges: true }]);
    let dir = tempfile::tempdir().unwrap();
    let c = FetchConfig {
        official_url: server.url.clone(),
        official_md5: "0".repeat(32),
        ..cfg()
    };
    let o = FetchOptions {
        url: Some(server.url.clone()),
        ..opts()
    };
    let err = fetch_with(dir.path(), &o, &c, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("md5"), "{err}");
    assert!(!dir.path().join(cifar100::DIR).exists());
}

#[test]
fn damaged_archives_are_refused_and_leave_nothing() {
    let good = good_archive();
    // A label past 99 (fine) and past 19 (coarse), a truncated archive, a missing names file.
    let mut bad_fine = records(SMALL100.train_records(), 0);
    bad_fine[cifar100::RECORD_BYTES * 3 + 1] = 100;
    let mut bad_coarse = records(SMALL100.train_records(), 0);
    bad_coarse[cifar100::RECORD_BYTES * 5] = 20;
    let mut no_names = entries(
        SMALL100,
        records(SMALL100.train_records(), 0),
        records(SMALL100.test_records(), 7),
    );
    no_names.pop();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "fine label 100",
            build_targz(&entries(
                SMALL100,
                bad_fine,
                records(SMALL100.test_records(), 7),
            )),
            "record 3: fine label 100 out of range (expected 0..=99)",
        ),
        (
            "coarse label 20",
            build_targz(&entries(
                SMALL100,
                bad_coarse,
                records(SMALL100.test_records(), 7),
            )),
            "record 5: coarse label 20 out of range (expected 0..=19)",
        ),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        (
            "names missing",
            build_targz(&no_names),
            "coarse_label_names.txt",
        ),
    ];
    for (what, bytes, expect) in cases {
        let root = tempfile::tempdir().unwrap();
        let archive = root.path().join("a.tar.gz");
        std::fs::write(&archive, &bytes).unwrap();
        let data = root.path().join("data");
        let o = FetchOptions {
            from: Some(archive.clone()),
            ..opts()
        };
        let err = fetch_with(&data, &o, &cfg(), &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains(expect), "{what}: {err}");
        // Only the archive remains: no data directory, no temporary directory.
        assert_eq!(tree(root.path()), vec!["a.tar.gz".to_string()], "{what}");
    }
}

#[test]
fn a_truncated_test_file_is_named_with_what_is_missing() {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.gz");
    std::fs::write(&archive, good_archive()).unwrap();
    let o = FetchOptions {
        from: Some(archive),
        ..opts()
    };
    fetch_with(root.path(), &o, &cfg(), &mut |_, _| {}).unwrap();
    let test = root.path().join(cifar100::DIR).join(cifar100::TEST_FILE);
    let bytes = std::fs::read(&test).unwrap();
    std::fs::write(&test, &bytes[..bytes.len() / 4]).unwrap();
    let problems = SMALL100.problems(root.path());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let msg = problems[0].to_string();
    assert!(
        msg.contains("test.bin") && msg.contains("truncated (75% missing"),
        "{msg}"
    );
}

#[test]
fn options_and_config_must_name_the_same_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_with(dir.path(), &FetchOptions::default(), &cfg(), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("CIFAR-10"), "{err}");
}
