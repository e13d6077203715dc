//! `cifar predict`: classify a user's own images (files and folders) with a saved model. The decoding, resizing
//! and classification live in the `predict` library crate (shared with `cifar serve`); this module walks the
//! inputs and prints the table or JSON lines.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use predict::{DecodeLimits, Ranked};
use rayon::prelude::*;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// File name extensions taken from folders (explicitly named files are always tried, by their content).
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"];

#[derive(Args, Debug)]
#[command(after_long_help = "\
Images: PNG, JPEG, BMP, GIF (first frame), WebP and TIFF, of any size, colour type and bit depth, recognised by \
their content. JPEG (and WebP/TIFF) EXIF orientation is applied. Grey is replicated to RGB, alpha is dropped \
(as Pillow's convert(\"RGB\") does), 16-bit samples are rounded to 8 bits.

Non-square images: with --crop center (the default) the centred square whose side is the shorter side is kept \
and the rest cut away; with --crop none the whole image is squashed to a square (aspect ratio not kept). The \
square is then resized to 32x32 with an antialiased triangle filter (Pillow's BILINEAR: the filter widens with \
the scale factor, so every source pixel contributes); 32x32 images are used as they are.

Folders are walked recursively in sorted order; files without an image extension (png, jpg, jpeg, bmp, gif, \
webp, tif, tiff) are skipped with a warning. An image that cannot be read is reported by name and the others \
are still predicted. An image cut short (a truncated JPEG, whose decoder would fill the missing rows with grey) \
is reported as damaged (\"truncated: 75% of the rows missing ...\") unless --allow-partial is given. Limits \
against decompression bombs: at most 30000 pixels a side and 256 MiB for all of one image's buffers (the \
encoded file, the decoded pixels at their own colour type, the decoder's working buffers); the worst case at \
that limit takes about 1.3 s to decode and resize on one core.

Exit status: 0 when every input was predicted, 2 when some could not be read, 1 on a fatal error (bad \
checkpoint or flag).")]
pub struct PredictArgs {
    /// A model checkpoint (a run's best.safetensors or last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Image files and folders.
    #[arg(required = true, value_name = "IMAGE_OR_FOLDER")]
    pub inputs: Vec<PathBuf>,
    /// How many of the most probable classes to show.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    #[command(flatten)]
    pub tta: crate::shared_args::TtaArgs,
    /// One JSON object per image and line on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub compute: crate::shared_args::ComputeArgs,
    /// Images decoded and classified together.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// What happens to non-square images before the resize to 32x32 (see below).
    #[arg(long, value_enum, default_value_t = Crop::Center)]
    pub crop: Crop,
    /// Predict images that are cut short too (a truncated JPEG, whose missing rows the decoder fills with grey),
    /// with a warning naming what is missing; without it they are reported as damaged.
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crop {
    /// Keep the centred square (side = the shorter side).
    Center,
    /// Squash the whole image to a square.
    None,
}

impl From<Crop> for predict::Crop {
    fn from(c: Crop) -> Self {
        match c {
            Crop::Center => predict::Crop::Center,
            Crop::None => predict::Crop::None,
        }
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    top: Option<Vec<Ranked<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn predict_cmd(a: PredictArgs) -> Result<ExitCode> {
    if a.batch_size == 0 {
        bail!("--batch-size: expected at least 1, found 0");
    }
    if a.top_k == 0 {
        bail!("--top-k: expected at least 1, found 0");
    }
    let t0 = Instant::now();
    let (session, desc) = crate::shared_args::open_session(&a.checkpoint, &a.compute, &a.tta)?;
    let tta = session.tta();
    let meta = session.meta();
    let top_k = a.top_k.min(meta.class_names.len());
    let crop = predict::Crop::from(a.crop);
    let limits = DecodeLimits {
        allow_partial: a.allow_partial,
        ..DecodeLimits::default()
    };

    let (files, mut failed) = collect_inputs(&a.inputs);
    for (p, e) in &failed {
        report_failure(p, e, a.json)?;
    }
    if files.is_empty() {
        bail!("no images to predict in the inputs given");
    }
    tracing::info!(
        "predicting {} images with {} ({}, TTA {}) on {desc}",
        files.len(),
        a.checkpoint.display(),
        session.model_name(),
        tta.name()
    );
    let width = files
        .iter()
        .map(|p| p.display().to_string().chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = std::io::stdout().lock();
    if !a.json {
        let cols: Vec<String> = (1..=top_k)
            .map(|k| format!("{:<22}", format!("top-{k}")))
            .collect();
        writeln!(out, "{:<width$}  {}", "file", cols.join("").trim_end())?;
    }
    let (mut decode_s, mut infer_s, mut done) = (0f64, 0f64, 0usize);
    for chunk in files.chunks(a.batch_size) {
        let t = Instant::now();
        let images: Vec<predict::Result<Vec<u8>>> = chunk
            .par_iter()
            .map(|p| {
                let input = predict::load_path(p, crop, limits)?;
                if let Some(t) = input.partial {
                    tracing::warn!("{}: {t}; predicted anyway (--allow-partial)", p.display());
                }
                Ok(input.pixels)
            })
            .collect();
        decode_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ok: Vec<&[u8]> = images.iter().filter_map(|r| r.as_deref().ok()).collect();
        let probs = session
            .probabilities(&ok)
            .with_context(|| a.checkpoint.display().to_string())?;
        infer_s += t.elapsed().as_secs_f64();
        let mut probs = probs.into_iter();
        for (path, r) in chunk.iter().zip(images) {
            match r {
                Err(e) => {
                    let e = e.to_string();
                    report_failure(path, &e, a.json)?;
                    failed.push((path.clone(), e));
                }
                Ok(_) => {
                    let p = probs.next().unwrap_or_default();
                    let top = predict::top_k(&p, &meta.class_names, top_k);
                    if a.json {
                        let line = JsonLine {
                            file: path.display().to_string(),
                            top: Some(top),
                            error: None,
                        };
                        writeln!(out, "{}", serde_json::to_string(&line)?)?;
                    } else {
                        let cells: Vec<String> = top
                            .iter()
                            .map(|r| {
                                format!(
                                    "{:<22}",
                                    format!("{} {:.1}%", r.class, 100.0 * r.probability)
                                )
                            })
                            .collect();
                        writeln!(
                            out,
                            "{:<width$}  {}",
                            path.display(),
                            cells.join("").trim_end()
                        )?;
                    }
                    done += 1;
                }
            }
        }
    }
    out.flush()?;
    let total = t0.elapsed().as_secs_f64();
    tracing::info!(
        "predicted {done} images in {total:.2}s ({:.0} images/s; decode+resize {decode_s:.2}s, inference {infer_s:.2}s, {:.0} images/s without the model load)",
        done as f64 / total.max(1e-9),
        done as f64 / (decode_s + infer_s).max(1e-9)
    );
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        tracing::warn!("{} of the inputs could not be predicted", failed.len());
        Ok(ExitCode::from(2))
    }
}

fn report_failure(path: &Path, e: &str, json: bool) -> Result<()> {
    tracing::error!("{}: {e}", path.display());
    if json {
        let line = JsonLine {
            file: path.display().to_string(),
            top: None,
            error: Some(e.to_string()),
        };
        println!("{}", serde_json::to_string(&line)?);
    }
    Ok(())
}

/// The image files named by `inputs` (folders walked recursively, sorted), and the inputs that failed (a path
/// that does not exist, an unreadable folder).
pub fn collect_inputs(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for p in inputs {
        match std::fs::metadata(p) {
            Err(e) => failed.push((p.clone(), format!("cannot read: {e}"))),
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut failed),
            Ok(_) => files.push(p.clone()),
        }
    }
    (files, failed)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, failed: &mut Vec<(PathBuf, String)>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect::<std::io::Result<Vec<_>>>(),
        Err(e) => Err(e),
    };
    let mut entries = match entries {
        Ok(v) => v,
        Err(e) => {
            failed.push((dir.to_path_buf(), format!("cannot read the folder: {e}")));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&path, files, failed),
            Ok(t) if t.is_symlink() && path.is_dir() => {
                tracing::warn!(
                    "skipping {}: a link to a folder (not followed)",
                    path.display()
                );
            }
            _ => {
                let ext = path
                    .extension()
                    .and_then(|x| x.to_str())
                    .map(|x| x.to_ascii_lowercase());
                if ext
                    .as_deref()
                    .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x))
                {
                    files.push(path);
                } else {
                    tracing::warn!(
                        "skipping {}: not an image file (by its extension)",
                        path.display()
                    );
                }
            }
        }
    }
}
