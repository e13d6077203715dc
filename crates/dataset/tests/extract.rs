//! Safe extraction of archives built in the test with the `tar` crate (small fake batches).

mod common;

use cifar10_dataset::{
    BATCH_DIR, Error, FetchConfig, FetchOptions, FetchOutcome, Layout, extract_archive_with,
    fetch_with, load_with,
};
use common::{Entry, SMALL, build_targz, good_entries, tree, write_good_archive};
use std::path::Path;

/// Extracts `entries` into `<tmp>/data`, returning the error and asserting nothing was written except the
/// archive itself (nothing outside `data`, nothing under the final name, no leftover temp dir).
fn refused(entries: Vec<Entry>) -> Error {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.gz");
    std::fs::write(&archive, build_targz(&entries)).unwrap();
    let data = root.path().join("data");
    let err = extract_archive_with(&archive, &data, SMALL).unwrap_err();
    assert_eq!(tree(root.path()), vec!["a.tar.gz", "data"], "{err}");
    err
}

fn with_extra(extra: Entry) -> Vec<Entry> {
    let mut v = vec![extra];
    v.extend(good_entries(SMALL));
    v
}

#[test]
fn good_archive_extracts_only_expected_files_and_loads() {
    let root = tempfile::tempdir().unwrap();
    let archive = write_good_archive(root.path(), SMALL);
    let data = root.path().join("data");
    let dir = extract_archive_with(&archive, &data, SMALL).unwrap();
    assert_eq!(dir, data.join(BATCH_DIR));
    let mut names = tree(&dir);
    names.sort();
    assert_eq!(
        names,
        vec![
            "batches.meta.txt",
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin"
        ]
    );
    assert_eq!(tree(&data).len(), 8, "no temp dir left: {:?}", tree(&data));
    assert!(SMALL.is_present(&data));
    let set = load_with(&data, SMALL).unwrap();
    assert_eq!(set.train.len(), 15);
    assert_eq!(set.test.len(), 3);
    // Batch k has label offset k: train record 3 is batch 2's first record (label 1), test starts at 5.
    assert_eq!(set.train.label(3), 1);
    assert_eq!(set.test.label(0), 5);
    assert_eq!(set.test.image(0), &common::fake_batch(3, 5)[1..3073]);

    // Extracting again replaces the previous extraction atomically.
    extract_archive_with(&archive, &data, SMALL).unwrap();
    assert_eq!(tree(&data).len(), 8);
}

#[test]
fn parent_dir_member_is_refused() {
    let err = refused(with_extra(Entry::File("../evil".into(), b"x".to_vec())));
    assert!(matches!(err, Error::UnsafeMember { .. }), "{err:?}");
    assert!(err.to_string().contains("../evil"), "{err}");
}

#[test]
fn nested_parent_dir_member_is_refused() {
    let err = refused(with_extra(Entry::File(
        format!("{BATCH_DIR}/../../evil"),
        b"x".to_vec(),
    )));
    assert!(matches!(err, Error::UnsafeMember { .. }), "{err:?}");
}

#[test]
fn absolute_member_is_refused() {
    let err = refused(with_extra(Entry::File(
        "/tmp/evil-cifar-test".into(),
        b"x".to_vec(),
    )));
    assert!(err.to_string().contains("absolute"), "{err}");
    assert!(!Path::new("/tmp/evil-cifar-test").exists());
}

#[test]
fn symlink_under_an_expected_name_is_refused() {
    let mut entries = vec![Entry::Symlink(
        format!("{BATCH_DIR}/data_batch_1.bin"),
        "/etc/passwd".into(),
    )];
    entries.extend(
        good_entries(SMALL)
            .into_iter()
            .filter(|e| !matches!(e, Entry::File(n, _) if n.ends_with("data_batch_1.bin"))),
    );
    let err = refused(entries);
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn hardlink_under_an_expected_name_is_refused() {
    let mut entries = good_entries(SMALL);
    entries.retain(|e| !matches!(e, Entry::File(n, _) if n.ends_with("test_batch.bin")));
    entries.push(Entry::HardLink(
        format!("{BATCH_DIR}/test_batch.bin"),
        format!("{BATCH_DIR}/data_batch_1.bin"),
    ));
    let err = refused(entries);
    assert!(err.to_string().contains("hard link"), "{err}");
}

#[test]
fn wrong_member_size_is_refused() {
    let mut entries = good_entries(SMALL);
    for e in &mut entries {
        if let Entry::File(n, d) = e
            && n.ends_with("data_batch_3.bin")
        {
            d.truncate(d.len() - 1);
        }
    }
    let err = refused(entries);
    let msg = err.to_string();
    assert!(
        msg.contains("data_batch_3.bin") && msg.contains("9218"),
        "{msg}"
    );
}

#[test]
fn missing_member_is_named() {
    let mut entries = good_entries(SMALL);
    entries.retain(|e| !matches!(e, Entry::File(n, _) if n.ends_with("data_batch_4.bin")));
    let err = refused(entries);
    assert!(matches!(err, Error::MissingMember { .. }), "{err:?}");
    assert!(err.to_string().contains("data_batch_4.bin"), "{err}");
}

#[test]
fn truncated_targz_is_a_clear_error() {
    let full = build_targz(&good_entries(Layout::new(
        cifar10_dataset::Dataset::Cifar10,
        40,
    )));
    for cut in [full.len() / 2, full.len() - 5] {
        let root = tempfile::tempdir().unwrap();
        let archive = root.path().join("a.tar.gz");
        std::fs::write(&archive, &full[..cut]).unwrap();
        let data = root.path().join("data");
        let err = extract_archive_with(
            &archive,
            &data,
            Layout::new(cifar10_dataset::Dataset::Cifar10, 40),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("truncated"),
            "cut at {cut} of {}: {err}",
            full.len()
        );
        assert_eq!(tree(root.path()), vec!["a.tar.gz", "data"]);
    }
}

#[test]
fn not_gzip_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.gz");
    std::fs::write(&archive, b"<html>not found</html>").unwrap();
    let err = extract_archive_with(&archive, &root.path().join("data"), SMALL).unwrap_err();
    assert!(err.to_string().contains("not a gzip file"), "{err}");
}

#[test]
fn failed_re_extraction_keeps_previous_data() {
    let root = tempfile::tempdir().unwrap();
    let good = write_good_archive(root.path(), SMALL);
    let data = root.path().join("data");
    extract_archive_with(&good, &data, SMALL).unwrap();
    let before = std::fs::read(data.join(BATCH_DIR).join("test_batch.bin")).unwrap();
    let bad = root.path().join("bad.tar.gz");
    std::fs::write(
        &bad,
        build_targz(&with_extra(Entry::File("../evil".into(), vec![1]))),
    )
    .unwrap();
    assert!(extract_archive_with(&bad, &data, SMALL).is_err());
    assert_eq!(
        std::fs::read(data.join(BATCH_DIR).join("test_batch.bin")).unwrap(),
        before
    );
    assert_eq!(tree(&data).len(), 8);
}

#[test]
fn fetch_from_local_file_is_idempotent_and_checks_sha256() {
    let root = tempfile::tempdir().unwrap();
    let archive = write_good_archive(root.path(), SMALL);
    let data = root.path().join("data");
    let cfg = FetchConfig {
        layout: SMALL,
        ..Default::default()
    };
    let bytes = std::fs::read(&archive).unwrap();

    let wrong = FetchOptions {
        from: Some(archive.clone()),
        sha256: Some("00".repeat(32)),
        ..Default::default()
    };
    let err = fetch_with(&data, &wrong, &cfg, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    assert!(archive.exists(), "the user's file must not be deleted");
    assert!(!data.join(BATCH_DIR).exists());

    let opts = FetchOptions {
        from: Some(archive.clone()),
        sha256: Some(common::hex_sha256(&bytes).to_uppercase()),
        ..Default::default()
    };
    let out = fetch_with(&data, &opts, &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(
        out,
        FetchOutcome::Extracted {
            from: archive.clone()
        }
    );
    let stamp = std::fs::metadata(data.join(BATCH_DIR).join("data_batch_1.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        fetch_with(&data, &opts, &cfg, &mut |_, _| {}).unwrap(),
        FetchOutcome::AlreadyPresent
    );
    let stamp2 = std::fs::metadata(data.join(BATCH_DIR).join("data_batch_1.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(stamp, stamp2);

    let forced = FetchOptions {
        force: true,
        ..opts
    };
    assert!(matches!(
        fetch_with(&data, &forced, &cfg, &mut |_, _| {}).unwrap(),
        FetchOutcome::Extracted { .. }
    ));
    // The official layout does not accept the small files: a mirror is verified by structure.
    let official = FetchConfig::default();
    let err = fetch_with(&root.path().join("d2"), &forced, &official, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("30730000"), "{err}");
}

#[test]
fn url_and_from_together_are_rejected() {
    let opts = FetchOptions {
        url: Some("http://127.0.0.1:1/x".into()),
        from: Some("x.tar.gz".into()),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = cifar10_dataset::fetch(dir.path(), &opts, &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { name: "from", .. }),
        "{err:?}"
    );
}

/// An archive whose test batch has a label out of range: refused before anything takes the final name, the
/// error names the member, the record and the label, and `fetch` leaves no data directory behind.
#[test]
fn a_bad_label_is_refused_before_the_rename_and_fetch_leaves_nothing() {
    let bad_entries = || {
        let mut entries = good_entries(SMALL);
        for e in &mut entries {
            if let Entry::File(name, bytes) = e
                && name.ends_with(cifar10_dataset::TEST_FILE)
            {
                bytes[common::fake_batch(1, 0).len()] = 12; // record 1's label
            }
        }
        entries
    };
    let err = refused(bad_entries()).to_string();
    assert!(
        err.contains("test_batch.bin") && err.contains("record 1") && err.contains("label 12"),
        "{err}"
    );

    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.gz");
    std::fs::write(&archive, build_targz(&bad_entries())).unwrap();
    let data = root.path().join("data");
    let opts = FetchOptions {
        from: Some(archive),
        ..Default::default()
    };
    let cfg = FetchConfig {
        layout: SMALL,
        ..Default::default()
    };
    let err = fetch_with(&data, &opts, &cfg, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("label 12"), "{err}");
    assert_eq!(tree(root.path()), vec!["a.tar.gz"], "{err}");
}

/// A truncated batch is named with what is wrong, without reading the files.
#[test]
fn check_names_a_truncated_file() {
    let root = tempfile::tempdir().unwrap();
    let archive = write_good_archive(root.path(), SMALL);
    let data = root.path().join("data");
    extract_archive_with(&archive, &data, SMALL).unwrap();
    SMALL.check(&data).unwrap();
    let test = data.join(BATCH_DIR).join(cifar10_dataset::TEST_FILE);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&test)
        .unwrap()
        .set_len(100)
        .unwrap();
    let err = SMALL.check(&data).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("test_batch.bin") && msg.contains("100 bytes") && msg.contains("truncated"),
        "{msg}"
    );
    std::fs::remove_file(&test).unwrap();
    assert!(matches!(
        SMALL.check(&data),
        Err(Error::MissingFile { path }) if path == test
    ));
}
