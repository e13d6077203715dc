//! Fuzzing `POST /predict` with mutated multipart bodies (and mutated raw image bodies): a seeded mutation loop on
//! stable Rust. Every answer must be 200 or a 4xx with a JSON `{"error": ...}` body (never a 5xx: a handler that
//! panics is answered 500 by the panic layer), and the server must stay healthy. The inputs that once failed are
//! kept in `tests/fixtures/regressions/` and sent first.
//!
//! `FUZZ_CASES=N` runs N cases per seed body instead of the default.

mod common;
use common::*;
use std::path::Path;

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

/// Tokens a multipart parser cares about, spliced in at random places.
const TOKENS: [&[u8]; 10] = [
    b"\r\n",
    b"--XyZ",
    b"--XyZ--",
    b"\r\n\r\n",
    b"Content-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n",
    b"Content-Type: image/png\r\n",
    b"Content-Disposition: form-data; name=\"\xff\xfe\"\r\n",
    b"filename*=UTF-8''%FF%00",
    b"\0",
    b";;;;====\"\"\"",
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len().max(1);
        let at = rng.below(n);
        match rng.below(7) {
            0 => {
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                if let Some(x) = b.get_mut(at) {
                    *x = [0u8, b'-', b'\r', b'\n', b'"', b':', 0xFF][rng.below(7)];
                }
            }
            2 => b.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                b.drain(at.min(end)..end);
            }
            4 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = at.min(b.len());
                b.splice(at..at, t.iter().copied());
            }
            5 => {
                let end = (at + 1 + rng.below(128)).min(b.len());
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

/// One part of a form: name, file name, content type, content.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, ct, data) in parts {
        b.extend_from_slice(b"--XyZ\r\n");
        let mut disp = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = filename {
            disp.push_str(&format!("; filename=\"{f}\""));
        }
        b.extend_from_slice(disp.as_bytes());
        b.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            b.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--XyZ--\r\n");
    b
}

/// Sends `body`; `Err` describes an answer that is neither 200 nor a 4xx with a JSON error.
async fn check(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<u16, String> {
    let r = client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = r.status().as_u16();
    let text = r
        .text()
        .await
        .map_err(|e| format!("{status}, no body: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{status}, not JSON ({e}): {text}"))?;
    match status {
        200 if v["predictions"].is_array() => Ok(status),
        400..=499 if v["error"].is_string() => Ok(status),
        _ => Err(format!("{status}: {text}")),
    }
}

const MULTIPART: &str = "multipart/form-data; boundary=XyZ";

fn regressions() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/regressions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_multipart_and_image_bodies_get_200_or_a_json_4xx() {
    let s = TestServer::start(cifar10_serve::Config::default());
    let client = reqwest::Client::new();
    let url = format!("{}/predict", s.url);
    for e in std::fs::read_dir(regressions())
        .into_iter()
        .flatten()
        .flatten()
    {
        let body = std::fs::read(e.path()).unwrap();
        let ct = if e.path().extension().is_some_and(|x| x == "multipart") {
            MULTIPART
        } else {
            "image/png"
        };
        if let Err(why) = check(&client, &url, ct, body).await {
            panic!("{}: {why}", e.path().display());
        }
    }
    let png = png(40, 30, 1);
    let jpeg = encode(
        &image::DynamicImage::ImageRgb8(picture(40, 30, 2)),
        image::ImageFormat::Jpeg,
    );
    let seeds: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "file",
            MULTIPART,
            form(&[("image", Some("a.png"), Some("image/png"), &png)]),
        ),
        ("only-part", MULTIPART, form(&[("x", None, None, &jpeg)])),
        (
            "two-parts",
            MULTIPART,
            form(&[
                ("note", None, Some("text/plain"), b"hello"),
                ("image", Some("b.jpg"), None, &jpeg),
            ]),
        ),
        ("raw-png", "image/png", png.clone()),
        ("raw-jpeg", "image/jpeg", jpeg.clone()),
    ];
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut failures = Vec::new();
    let mut total = 0;
    for (k, (name, ct, seed)) in seeds.iter().enumerate() {
        assert_eq!(
            check(&client, &url, ct, seed.clone()).await,
            Ok(200),
            "{name}: the seed itself"
        );
        let mut rng = Rng(0xF0_0D00 + k as u64);
        let mut statuses = std::collections::BTreeMap::new();
        for case in 0..cases {
            let body = mutate(seed, &mut rng);
            total += 1;
            match check(&client, &url, ct, body.clone()).await {
                Ok(st) => *statuses.entry(st).or_insert(0) += 1,
                Err(why) => {
                    let ext = if *ct == MULTIPART { "multipart" } else { "bin" };
                    let path = std::env::temp_dir().join(format!("serve-fuzz-{name}-{case}.{ext}"));
                    let _ = std::fs::write(&path, &body);
                    failures.push(format!(
                        "{name} case {case}: {why} (body saved as {})",
                        path.display()
                    ));
                }
            }
        }
        println!("{name}: {cases} cases, answers {statuses:?}");
    }
    println!("{total} cases in all");
    let health = client
        .get(format!("{}/health", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
