//! Fuzzing the batch-file decoders on stable Rust: a seeded mutation loop over valid CIFAR-10 and CIFAR-100
//! batch files, class-name files and whole data directories. Every mutated input must decode or give a typed
//! [`Error`], never a panic. The inputs that once failed are kept in `tests/fixtures/regressions/`.
//!
//! `FUZZ_CASES=N` runs N cases per target instead of the default.

use cifar10_dataset::{
    Dataset, Error, Labels, Layout, decode_batch, decode_records, load_with, parse_class_names,
    parse_class_names_n,
};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// SplitMix64: a seeded generator with no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len().max(1);
        let at = rng.below(n);
        match rng.below(6) {
            0 => {
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                if let Some(x) = b.get_mut(at) {
                    *x = [0u8, 9, 10, 19, 20, 99, 100, 0xFF, b'\n', b'\r', 0x80][rng.below(11)];
                }
            }
            2 => b.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(4000)).min(b.len());
                b.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + 1 + rng.below(4000)).min(b.len());
                let run: Vec<u8> = b[at.min(end)..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, run);
            }
            _ => {
                let run: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                let at = at.min(b.len());
                b.splice(at..at, run);
            }
        }
    }
    b
}

fn cases() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// `records` CIFAR records of `label_bytes` label bytes each, labels `0, 1, 2, ...`.
fn batch(records: usize, label_bytes: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for r in 0..records {
        for k in 0..label_bytes {
            b.push((r + k) as u8 % 10);
        }
        b.extend((0..3072).map(|i| ((i * 7 + r * 13) % 256) as u8));
    }
    b
}

/// Runs `f` on every mutant of `seed`; returns how many decoded, panics listing the inputs that panicked.
fn fuzz(name: &str, seed: &[u8], salt: u64, f: impl FnMut(&[u8]) -> bool) {
    fuzz_n(name, seed, salt, cases(), f)
}

fn fuzz_n(name: &str, seed: &[u8], salt: u64, n: usize, mut f: impl FnMut(&[u8]) -> bool) {
    let mut rng = Rng(0xDA7A_0000 + salt);
    let (mut ok, mut panics) = (0, Vec::new());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..n {
        let m = mutate(seed, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| f(&m))) {
            Ok(true) => ok += 1,
            Ok(false) => {}
            Err(_) => {
                let path = std::env::temp_dir().join(format!("dataset-fuzz-{name}-{case}.bin"));
                let _ = std::fs::write(&path, &m);
                panics.push(path.display().to_string());
            }
        }
    }
    std::panic::set_hook(hook);
    println!("{name}: {n} cases, {ok} decoded, {} panics", panics.len());
    assert!(
        panics.is_empty(),
        "{name}: panics on inputs saved as {panics:?}"
    );
}

/// A typed error names the file it was given (`name`), so a user knows which file is damaged.
fn names_file(e: &Error, name: &str) -> bool {
    e.to_string().contains(name)
}

#[test]
fn mutated_cifar10_batches_decode_or_give_typed_errors() {
    let seed = batch(4, 1);
    fuzz("cifar10-batch", &seed, 1, |m| {
        match decode_batch(m, "data_batch_1.bin") {
            Ok(set) => {
                assert_eq!(set.len(), m.len() / 3073);
                true
            }
            Err(e) => {
                assert!(names_file(&e, "data_batch_1.bin"), "{e}");
                false
            }
        }
    });
}

#[test]
fn mutated_cifar100_batches_decode_or_give_typed_errors() {
    let seed = batch(4, 2);
    let fine: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
    let coarse: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    fuzz("cifar100-batch", &seed, 2, |m| {
        let a = decode_records(
            m,
            "train.bin",
            Dataset::Cifar100,
            Labels::Fine,
            fine.clone(),
        );
        let b = decode_records(
            m,
            "train.bin",
            Dataset::Cifar100,
            Labels::Coarse,
            coarse.clone(),
        );
        for r in [&a, &b] {
            if let Err(e) = r {
                assert!(names_file(e, "train.bin"), "{e}");
            }
        }
        a.is_ok()
    });
}

#[test]
fn mutated_class_name_files_parse_or_give_typed_errors() {
    let seed = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n".to_vec();
    fuzz("class-names", &seed, 3, |m| {
        let text = String::from_utf8_lossy(m);
        let a = parse_class_names(&text, "batches.meta.txt");
        let _ = parse_class_names_n(&text, "fine_label_names.txt", 100);
        a.is_ok()
    });
}

#[test]
fn mutated_data_directories_load_or_give_typed_errors() {
    const SMALL: Layout = Layout::new(Dataset::Cifar10, 3);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(cifar10_dataset::BATCH_DIR);
    std::fs::create_dir(&dir).unwrap();
    let meta = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n".to_vec();
    let files: Vec<(&str, Vec<u8>)> = cifar10_dataset::TRAIN_FILES
        .iter()
        .map(|f| (*f, batch(3, 1)))
        .chain([
            (cifar10_dataset::TEST_FILE, batch(3, 1)),
            (cifar10_dataset::META_FILE, meta),
        ])
        .collect();
    let write_all = || {
        for (f, b) in &files {
            std::fs::write(dir.join(f), b).unwrap();
        }
    };
    write_all();
    assert!(load_with(root.path(), SMALL).is_ok());
    // Each case damages one file of the directory.
    let mut rng = Rng(0xD1);
    let seed_index: Vec<u8> = (0..files.len() as u8).collect();
    // A quarter of the cases: each writes and reads a directory.
    fuzz_n("data-dir", &seed_index, 4, cases() / 4, |_| {
        write_all();
        let (f, b) = &files[rng_pick(&mut rng, files.len())];
        let m = mutate(b, &mut rng);
        std::fs::write(dir.join(f), &m).unwrap();
        match load_with(root.path(), SMALL) {
            Ok(_) => true,
            Err(e) => {
                assert!(names_file(&e, f), "{f}: {e}");
                false
            }
        }
    });
}

fn rng_pick(rng: &mut Rng, n: usize) -> usize {
    rng.below(n)
}
