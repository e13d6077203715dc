//! Fuzzing the safe extraction on stable Rust: a seeded mutation loop over a valid small CIFAR-10 `.tar.gz`
//! (half the mutants damage the tar stream and are compressed again, half damage the compressed bytes). Every
//! mutant must extract or give a typed [`Error`], never panic, and never write anything outside the data
//! directory or leave anything under the final name on failure.
//!
//! `FUZZ_CASES=N` runs N cases instead of the default.

mod common;

use cifar10_dataset::{BATCH_DIR, extract_archive_with};
use common::{SMALL, build_targz, good_entries, tree};
use std::io::{Read, Write};
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

/// Edits aimed at tar headers (512-byte blocks: names, sizes in octal, type flags, checksums) as well as
/// anywhere.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        let n = b.len().max(1);
        // Half the edits land in a header block's first 512 bytes.
        let at = if rng.below(2) == 0 {
            (rng.below(n / 512 + 1) * 512 + rng.below(512)).min(n - 1)
        } else {
            rng.below(n)
        };
        match rng.below(7) {
            0 => {
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                if let Some(x) = b.get_mut(at) {
                    *x = [0u8, b'0', b'7', b'1', b'2', b'5', b'/', b'.', 0xFF, b' '][rng.below(10)];
                }
            }
            2 => b.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(1024)).min(b.len());
                b.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + 1 + rng.below(1024)).min(b.len());
                let run: Vec<u8> = b[at.min(end)..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, run);
            }
            5 => {
                let t: &[u8] = [
                    &b"../"[..],
                    b"/etc/x",
                    b"77777777777",
                    b"cifar-10-batches-bin/",
                ][rng.below(4)];
                for (i, x) in t.iter().enumerate() {
                    if let Some(y) = b.get_mut(at + i) {
                        *y = *x;
                    }
                }
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

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(tar).unwrap();
    e.finish().unwrap()
}

#[test]
fn mutated_archives_extract_or_give_typed_errors() {
    let targz = build_targz(&good_entries(SMALL));
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&targz[..])
        .read_to_end(&mut tar)
        .unwrap();
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut rng = Rng(0x7A2);
    let (mut ok, mut errors, mut failures) = (0, 0, Vec::new());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..cases {
        let archive_bytes = if case % 2 == 0 {
            gzip(&mutate(&tar, &mut rng))
        } else {
            mutate(&targz, &mut rng)
        };
        let root = tempfile::tempdir().unwrap();
        let archive = root.path().join("a.tar.gz");
        std::fs::write(&archive, &archive_bytes).unwrap();
        let data = root.path().join("data");
        let r = catch_unwind(AssertUnwindSafe(|| {
            extract_archive_with(&archive, &data, SMALL)
        }));
        let what = match r {
            Err(_) => Some("panic".to_string()),
            Ok(Ok(dir)) => {
                ok += 1;
                (dir != data.join(BATCH_DIR)).then(|| format!("extracted into {}", dir.display()))
            }
            Ok(Err(e)) => {
                errors += 1;
                // Nothing outside `data`, nothing under the final name, no temp dir left.
                let left = tree(root.path());
                (left != ["a.tar.gz", "data"] && left != ["a.tar.gz"])
                    .then(|| format!("error {e} left {left:?}"))
            }
        };
        // Nothing ever escapes the data directory.
        let outside: Vec<String> = tree(root.path())
            .into_iter()
            .filter(|p| p != "a.tar.gz" && !p.starts_with("data"))
            .collect();
        let what = what.or_else(|| (!outside.is_empty()).then(|| format!("wrote {outside:?}")));
        if let Some(w) = what {
            let path = std::env::temp_dir().join(format!("dataset-fuzz-extract-{case}.tar.gz"));
            let _ = std::fs::write(&path, &archive_bytes);
            failures.push(format!(
                "case {case}: {w} (archive saved as {})",
                path.display()
            ));
        }
    }
    std::panic::set_hook(hook);
    println!(
        "tar.gz: {cases} cases, {ok} extracted, {errors} typed errors, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
