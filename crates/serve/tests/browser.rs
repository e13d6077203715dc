//! The page in a real browser: headless Chromium loads `/?demo`, whose script fetches the model's description
//! and the built-in samples and posts each to `/predict`, and the resulting DOM shows every sample's bars.
//! Skipped with a message where no Chromium is installed (Debian: `apt-get install chromium`; or set CHROMIUM).

mod common;

use common::TestServer;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(b));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
    .find(|p| p.is_file())
}

/// The page's DOM after its scripts ran (`--dump-dom`; virtual time waits for the page's fetches).
fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).map(|_| s)
    });
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within 90 s", browser.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap().unwrap()
}

#[test]
#[ignore = "needs headless Chromium (apt-get install chromium, or CHROMIUM=path): cargo test -p cifar10-serve --test browser -- --ignored"]
fn headless_chromium_shows_the_predictions_of_the_samples() {
    let browser = chromium().expect(
        "no Chromium found: install Debian's `chromium` package, or set CHROMIUM to the browser's path",
    );
    let s = TestServer::start(cifar10_serve::Config::default());
    let dom = dump_dom(&browser, &format!("{}/?demo", s.url));
    let n = cifar10_serve::samples::SAMPLES.len();
    assert_eq!(dom.matches("class=\"card done").count(), n, "{dom}");
    assert!(!dom.contains("card failed"), "{dom}");
    for (name, _) in cifar10_serve::samples::SAMPLES {
        assert!(
            dom.contains(&format!("sample: true {name}, predicted ")),
            "{name}: {dom}"
        );
    }
    // Each card: the top-5 bars (the first one highlighted) and the image line.
    assert_eq!(dom.matches("class=\"fill top").count(), n, "{dom}");
    assert_eq!(dom.matches("class=\"fill").count(), 5 * n, "{dom}");
    assert_eq!(dom.matches("PNG 32x32").count(), n, "{dom}");
    // The model line, filled in from GET /model.
    assert!(dom.contains("id=\"model\">model <b>cnn-dnn</b>"), "{dom}");
}
