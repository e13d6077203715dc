//! `cargo xtask screenshot PATH`: a page of this project (a run's `report.html`, a comparison's `compare.html`)
//! as a user's browser shows it, rendered by headless Chromium into a PNG; `cargo xtask screenshot-serve`: the
//! same for `cifar serve`'s page, with its built-in samples classified by a real model. Skipped with a message where no
//! Chromium is installed (Debian: `apt-get install chromium`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// A run directory (its report.html), a comparison directory (its compare.html) or an HTML file.
    path: PathBuf,
    /// The PNG to write [default: target/screenshots/<dir>-<page>.png].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Browser window width in pixels.
    #[arg(long, default_value_t = 1400)]
    width: u32,
    /// Browser window height in pixels (what lies below is not captured).
    #[arg(long, default_value_t = 3000)]
    height: u32,
    /// The browser binary [default: $CHROMIUM, else chromium, chromium-browser, google-chrome on PATH].
    #[arg(long)]
    browser: Option<PathBuf>,
}

/// The HTML page `path` names: the file itself, or a directory's report.html or compare.html.
fn page(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        bail!("{}: no such file or directory", path.display());
    }
    for name in ["report.html", "compare.html"] {
        let p = path.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "{}: holds neither report.html (`cifar plot --run DIR`) nor compare.html (`cifar compare ... --out DIR`)",
        path.display()
    )
}

fn find_browser(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(b) = explicit {
        return Some(b.to_path_buf());
    }
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
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

pub fn run(a: Args) -> Result<()> {
    let page = page(&a.path)?
        .canonicalize()
        .with_context(|| format!("{}", a.path.display()))?;
    let Some(browser) = find_browser(a.browser.as_deref()) else {
        println!(
            "screenshot skipped: no Chromium found (install Debian's `chromium` package, or set CHROMIUM or --browser)"
        );
        return Ok(());
    };
    let out = match a.out {
        Some(o) => o,
        None => {
            let dir = page
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "page".into());
            let stem = page
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "page".into());
            PathBuf::from("target/screenshots").join(format!("{dir}-{stem}.png"))
        }
    };
    capture(
        &browser,
        &format!("file://{}", page.display()),
        &out,
        (a.width, a.height),
    )?;
    println!("{}", out.display());
    Ok(())
}

/// Renders `url` in headless Chromium at `size` (width, height) into the PNG `out`. Virtual time lets the page's
/// scripts and fetches finish first.
fn capture(browser: &Path, url: &str, out: &Path, size: (u32, u32)) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    let out_abs = std::path::absolute(out).with_context(|| format!("{}", out.display()))?;
    let _ = std::fs::remove_file(&out_abs);
    let profile = tempfile::tempdir().context("cannot make a browser profile folder")?;
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--screenshot={}", out_abs.display()))
        .arg(url)
        .output()
        .with_context(|| format!("cannot start {}", browser.display()))?;
    // Chromium logs D-Bus and GPU noise on every headless run: shown only when it fails.
    if !output.status.success() || !out_abs.is_file() {
        bail!(
            "{} failed ({}) to render {url}:\n{}",
            browser.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The model to serve (a run's best.safetensors; its run directory's test accuracy is shown).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The PNG to write.
    #[arg(long, default_value = "target/screenshots/serve.png")]
    out: PathBuf,
    /// The built-in samples to classify (comma-separated names, or all).
    #[arg(long, default_value = "all")]
    demo: String,
    /// Browser window width in pixels.
    #[arg(long, default_value_t = 1240)]
    width: u32,
    /// Browser window height in pixels (what lies below is not captured).
    #[arg(long, default_value_t = 900)]
    height: u32,
    /// The browser binary [default: $CHROMIUM, else chromium, chromium-browser, google-chrome on PATH].
    #[arg(long)]
    browser: Option<PathBuf>,
}

/// `cargo xtask screenshot-serve`: builds `cifar` in release, starts `cifar serve` on a free loopback port,
/// opens its page with `?demo` (the built-in samples classified) in headless Chromium and saves the PNG.
pub fn serve(a: ServeArgs) -> Result<()> {
    let Some(browser) = find_browser(a.browser.as_deref()) else {
        println!(
            "screenshot skipped: no Chromium found (install Debian's `chromium` package, or set CHROMIUM or --browser)"
        );
        return Ok(());
    };
    let cifar = crate::build::release_cifar()?;
    let mut server = Command::new(&cifar)
        .args([
            "serve",
            "--quiet",
            "--device",
            "cpu",
            "--addr",
            "127.0.0.1:0",
            "--checkpoint",
        ])
        .arg(&a.checkpoint)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} serve", cifar.display()))?;
    let result = (|| {
        let mut line = String::new();
        let stdout = server.stdout.take().context("no stdout")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("cifar serve did not print its URL (it printed {line:?})"))?;
        let demo = if a.demo == "all" {
            String::new()
        } else {
            format!("={}", a.demo)
        };
        capture(
            &browser,
            &format!("{url}?demo{demo}"),
            &a.out,
            (a.width, a.height),
        )
    })();
    let _ = server.kill();
    let _ = server.wait();
    result?;
    println!("{}", a.out.display());
    Ok(())
}
