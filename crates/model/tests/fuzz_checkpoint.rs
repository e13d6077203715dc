//! Fuzzing checkpoint loading on stable Rust: a seeded mutation loop over valid safetensors checkpoints (a
//! LeNet-5 and a small AirBench94 with its `model_args`), mutating the JSON header (numbers, names, dtypes,
//! offsets, metadata), the length prefix and the tensor data. Loading must give a model or a typed
//! [`model::Error`] naming the file, never a panic, and never build a model larger than the file's tensors. The
//! inputs that once failed are kept in `tests/fixtures/regressions/`.
//!
//! `FUZZ_CASES=N` runs N cases per seed instead of the default.

use candle_core::Device;
use cifar10_model as model;
use model::checkpoint;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

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

/// A mutant of the checkpoint `seed`: edits in its JSON header (numbers made huge, zero or negative, names and
/// dtypes changed, JSON syntax broken), in its length prefix, or in its tensor data.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let n = u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let mut header = seed[8..8 + n].to_vec();
    let mut data = seed[8 + n..].to_vec();
    let mut prefix: Option<u64> = None;
    for _ in 0..1 + rng.below(3) {
        match rng.below(10) {
            // A number in the header (shape, offset, width, version, mean) replaced.
            0..=3 => {
                let digits: Vec<usize> = (0..header.len())
                    .filter(|&i| header[i].is_ascii_digit())
                    .collect();
                if let Some(&at) = digits.get(rng.below(digits.len())) {
                    let end = (at..header.len())
                        .find(|&i| !header[i].is_ascii_digit())
                        .unwrap_or(header.len());
                    let with: &[u8] = [
                        &b"0"[..],
                        b"1",
                        b"999999999",
                        b"18446744073709551615",
                        b"4294967296",
                        b"-1",
                        b"1e308",
                        b"65536",
                    ][rng.below(8)];
                    header.splice(at..end, with.iter().copied());
                }
            }
            // A string token changed.
            4 => {
                let quotes: Vec<usize> = (0..header.len()).filter(|&i| header[i] == b'"').collect();
                if let Some(&at) = quotes.get(rng.below(quotes.len())) {
                    let with: &[u8] = [
                        &b"\"F16"[..],
                        b"\"BOOL",
                        b"\"__metadata__",
                        b"\"",
                        b"\"\\u0000",
                        b"\"airbench94",
                        b"\"lenet5",
                    ][rng.below(7)];
                    header.splice(at..at + 1, with.iter().copied());
                }
            }
            // Raw header bytes.
            5 => {
                let at = rng.below(header.len());
                header[at] = [b'{', b'}', b'[', b']', b',', b':', b' ', 0xFF, b'x'][rng.below(9)];
            }
            6 => {
                let at = rng.below(header.len());
                let end = (at + 1 + rng.below(40)).min(header.len());
                header.drain(at..end);
            }
            // The length prefix.
            7 => {
                prefix =
                    Some([0, 1, n as u64 + 1, n as u64 - 1, u64::MAX, 100_000_001][rng.below(6)])
            }
            // Tensor data: bytes, truncation.
            8 => {
                let at = rng.below(data.len());
                data[at] ^= 0xFF;
            }
            _ => {
                let at = rng.below(data.len() + 1);
                data.truncate(at);
            }
        }
    }
    let mut out = prefix.unwrap_or(header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}

fn seeds(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let dev = Device::Cpu;
    let lenet = model::registry::build("lenet5", &dev, 1, 10).unwrap();
    let a = dir.join("lenet5.safetensors");
    checkpoint::save_model(lenet.as_ref(), &a, HashMap::new()).unwrap();
    let air = model::AirBench94::with_widths(&dev, 2, [4, 8, 8], 10).unwrap();
    let b = dir.join("airbench.safetensors");
    checkpoint::save_model(&air, &b, HashMap::new()).unwrap();
    vec![
        ("lenet5", std::fs::read(a).unwrap()),
        ("airbench94", std::fs::read(b).unwrap()),
    ]
}

/// Loads `bytes` as a checkpoint every way a user can; `Err` describes a panic, an error that does not name the
/// file, or a model with more parameters than the file has bytes.
fn check(path: &Path, bytes: &[u8]) -> Result<bool, String> {
    std::fs::write(path, bytes).unwrap();
    let dev = Device::Cpu;
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = checkpoint::read_header(path);
        let _ = checkpoint::read(path, &dev);
        checkpoint::load_model_with_meta(path, &dev).map_err(Box::new)
    }));
    match r {
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(Err(e)) => {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if e.to_string().contains(&name) {
                Ok(false)
            } else {
                Err(format!("error without the file's name: {e}"))
            }
        }
        Ok(Ok((m, _))) => {
            let params: usize = checkpoint::model_tensors(m.as_ref())
                .iter()
                .map(|(_, t)| t.elem_count())
                .sum();
            if params * 4 > bytes.len() * 2 {
                Err(format!(
                    "a model of {params} parameters from {} bytes",
                    bytes.len()
                ))
            } else {
                Ok(true)
            }
        }
    }
}

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/regressions")
}

#[test]
fn regressions_load_or_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regression.safetensors");
    for e in std::fs::read_dir(regressions())
        .into_iter()
        .flatten()
        .flatten()
    {
        let bytes = std::fs::read(e.path()).unwrap();
        if let Err(why) = check(&path, &bytes) {
            panic!("{}: {why}", e.path().display());
        }
    }
}

#[test]
fn mutated_checkpoints_load_or_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let path = dir.path().join("mutant.safetensors");
    let mut failures = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (k, (name, seed)) in seeds(dir.path()).into_iter().enumerate() {
        assert_eq!(check(&path, &seed), Ok(true), "{name}: the seed itself");
        let mut rng = Rng(0xC4EC_0000 + k as u64);
        let mut loaded = 0;
        for case in 0..cases {
            let m = mutate(&seed, &mut rng);
            match check(&path, &m) {
                Ok(ok) => loaded += usize::from(ok),
                Err(why) => {
                    let saved =
                        std::env::temp_dir().join(format!("model-fuzz-{name}-{case}.safetensors"));
                    let _ = std::fs::write(&saved, &m);
                    failures.push(format!(
                        "{name} case {case}: {why} (saved as {})",
                        saved.display()
                    ));
                }
            }
        }
        println!("{name}: {cases} cases, {loaded} loaded");
    }
    std::panic::set_hook(hook);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
