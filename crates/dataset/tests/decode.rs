//! Decoding of hand-made batch records and of a small extracted directory.

mod common;

use cifar_types::CIFAR10_CLASS_NAMES;
use cifar10_dataset::{
    BATCH_DIR, Error, META_FILE, TEST_FILE, TRAIN_FILES, decode_batch, load_with,
};
use common::{SMALL, fake_batch, meta_text};

#[test]
fn records_decode_to_exact_pixels_and_labels() {
    // Record 0: label 3, R plane all 10, G plane all 20, B plane = its index mod 256.
    let mut bytes = vec![3u8];
    bytes.extend([10u8; 1024]);
    bytes.extend([20u8; 1024]);
    bytes.extend((0..1024).map(|i| (i % 256) as u8));
    // Record 1: label 9, pixel (row 31, col 0) of the green plane set to 255.
    let mut rec = vec![0u8; 3073];
    rec[0] = 9;
    rec[1 + 1024 + 31 * 32] = 255;
    bytes.extend(&rec);

    let set = decode_batch(&bytes, "hand.bin").unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.labels(), &[3, 9]);
    assert_eq!(set.rgb(0, 0, 0), [10, 20, 0]);
    assert_eq!(set.rgb(0, 1, 2), [10, 20, 34]);
    assert_eq!(set.rgb(0, 31, 31), [10, 20, 255]);
    assert_eq!(set.rgb(1, 31, 0), [0, 255, 0]);
    assert_eq!(set.rgb(1, 30, 0), [0, 0, 0]);
    assert_eq!(set.image(0), &bytes[1..3073]);
    assert_eq!(set.class_names()[9], "truck");
    assert!(decode_batch(&[], "empty.bin").unwrap().is_empty());
}

#[test]
fn a_3072_byte_file_is_a_clear_error_naming_the_file() {
    let err = decode_batch(&[0u8; 3072], "short.bin").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("short.bin") && msg.contains("3072") && msg.contains("3073"),
        "{msg}"
    );
}

#[test]
fn label_10_is_an_error_naming_file_and_record() {
    let mut bytes = fake_batch(4, 0);
    bytes[2 * 3073] = 10;
    let err = decode_batch(&bytes, "bad_label.bin").unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("bad_label.bin") && msg.contains("record 2") && msg.contains("label 10"),
        "{msg}"
    );
}

fn write_dir(root: &std::path::Path) -> std::path::PathBuf {
    let dir = root.join(BATCH_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    for (k, f) in TRAIN_FILES.iter().chain([&TEST_FILE]).enumerate() {
        std::fs::write(dir.join(f), fake_batch(SMALL.records_per_batch, k)).unwrap();
    }
    std::fs::write(dir.join(META_FILE), meta_text()).unwrap();
    dir
}

#[test]
fn directory_loader_concatenates_in_order_with_class_names() {
    let root = tempfile::tempdir().unwrap();
    write_dir(root.path());
    let set = load_with(root.path(), SMALL).unwrap();
    let labels: Vec<u8> = set.train.labels().to_vec();
    assert_eq!(labels, vec![0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5, 4, 5, 6]);
    assert_eq!(set.test.labels(), &[5, 6, 7]);
    assert_eq!(
        set.train.class_names(),
        CIFAR10_CLASS_NAMES.map(String::from).as_slice()
    );
    assert_eq!(set.train.image(7), &fake_batch(3, 2)[3073 + 1..2 * 3073]);
}

#[test]
fn loader_errors_name_the_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_dir(root.path());
    // Wrong record count for the layout.
    std::fs::write(dir.join("data_batch_2.bin"), fake_batch(2, 0)).unwrap();
    let err = load_with(root.path(), SMALL).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_2.bin") && err.contains("expected 3 records, found 2"),
        "{err}"
    );

    // Missing meta file.
    write_dir(root.path());
    std::fs::remove_file(dir.join(META_FILE)).unwrap();
    let err = load_with(root.path(), SMALL).unwrap_err();
    assert!(matches!(err, Error::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains(META_FILE), "{err}");

    // Nine class names.
    std::fs::write(dir.join(META_FILE), "a\nb\nc\nd\ne\nf\ng\nh\ni\n").unwrap();
    let err = load_with(root.path(), SMALL).unwrap_err().to_string();
    assert!(err.contains(META_FILE) && err.contains("found 9"), "{err}");

    // Missing test batch.
    write_dir(root.path());
    std::fs::remove_file(dir.join(TEST_FILE)).unwrap();
    let err = load_with(root.path(), SMALL).unwrap_err().to_string();
    assert!(err.contains(TEST_FILE) && err.contains("missing"), "{err}");
}
