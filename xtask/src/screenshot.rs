//! `cargo xtask screenshot PATH`: a page of this project (a run's `report.html`, a comparison's `compare.html`)
//! as a user's browser shows it, rendered by headless Chromium into a PNG. Skipped with a message where no
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
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
    }
    let out_abs = std::path::absolute(&out).with_context(|| format!("{}", out.display()))?;
    let _ = std::fs::remove_file(&out_abs);
    let output = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--window-size={},{}", a.width, a.height))
        .arg(format!("--screenshot={}", out_abs.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .with_context(|| format!("cannot start {}", browser.display()))?;
    // Chromium logs D-Bus and GPU noise on every headless run: shown only when it fails.
    if !output.status.success() || !out_abs.is_file() {
        bail!(
            "{} failed ({}) to render {}:\n{}",
            browser.display(),
            output.status,
            page.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    println!("{}", out.display());
    Ok(())
}
