//! Classifies image files with a saved model and prints the three most probable classes of each.
//!
//! ```sh
//! cargo run --release -p cifar10-predict --example classify -- runs/NAME/best.safetensors photo.jpg more.png
//! cargo run --release -p cifar10-predict --example classify      # standalone: an untrained model, a made-up image
//! ```
//!
//! Any size and any of PNG, JPEG, BMP, GIF, WebP or TIFF works: each image is decoded (format by content), turned
//! upright by its EXIF orientation, centre-cropped to a square and resized to 32x32, then all of them go through
//! the model as one batch. Without arguments the example saves a freshly initialised (untrained, so its guesses
//! are near-uniform) `cnn-dnn` checkpoint and a synthetic 64x48 PNG to a temporary directory and classifies that.

use candle_core::Device;
use cifar10_predict::{Crop, DecodeLimits, Session, Tta, top_k};
use std::path::{Path, PathBuf};

/// Writes an untrained `cnn-dnn` checkpoint and a synthetic PNG into `dir`; returns their paths.
fn standalone_inputs(dir: &Path) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let ckpt = dir.join("untrained.safetensors");
    let net = model::registry::build("cnn-dnn", &Device::Cpu, 1, 10)?;
    model::checkpoint::save_model(net.as_ref(), &ckpt, Default::default())?;
    // A blue sky over green ground, with a red square: 64x48, so the centre crop and the resize both run.
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        if (24..40).contains(&x) && (20..36).contains(&y) {
            image::Rgb([200, 30, 30])
        } else if y < 30 {
            image::Rgb([90, 150, 230])
        } else {
            image::Rgb([40, 140, 50])
        }
    });
    let png = dir.join("synthetic.png");
    img.save_with_format(&png, image::ImageFormat::Png)?;
    Ok((ckpt, png))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let tmp = tempfile::tempdir()?;
    let (checkpoint, images) = match args.next() {
        Some(ckpt) => {
            let images: Vec<PathBuf> = args.collect();
            if images.is_empty() {
                eprintln!(
                    "usage: classify [CHECKPOINT IMAGE...] (at least one image after the checkpoint)"
                );
                std::process::exit(2);
            }
            (ckpt, images)
        }
        None => {
            let (ckpt, png) = standalone_inputs(tmp.path())?;
            println!(
                "no arguments: an untrained cnn-dnn and a synthetic image in {}",
                tmp.path().display()
            );
            (ckpt, vec![png])
        }
    };

    // The errors of cifar10_predict name the file they concern; `to_string` keeps main's report to that message.
    let session = Session::load(&checkpoint, &Device::Cpu, Tta::None).map_err(|e| e.to_string())?;
    println!(
        "{}: model {} on {}, {} classes, test-time augmentation {}",
        checkpoint.display(),
        session.model_name(),
        session.device_name(),
        session.class_names().len(),
        session.tta().name()
    );

    // Decode every image first; one that fails is reported and skipped.
    let mut decoded = Vec::new();
    let mut failed = 0;
    for path in &images {
        match cifar10_predict::load_path(path, Crop::Center, DecodeLimits::default()) {
            Ok(input) => {
                println!(
                    "{}: {:?}, {}x{}",
                    path.display(),
                    input.format,
                    input.width,
                    input.height
                );
                decoded.push((path, input));
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed += 1;
            }
        }
    }

    let pixels: Vec<&[u8]> = decoded
        .iter()
        .map(|(_, input)| input.pixels.as_slice())
        .collect();
    let probabilities = session.probabilities(&pixels)?;
    for ((path, _), p) in decoded.iter().zip(&probabilities) {
        println!("{}", path.display());
        for r in top_k(p, session.class_names(), 3) {
            println!("  {:<12} {:>6.2}%", r.class, 100.0 * r.probability);
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} images could not be read", images.len());
        std::process::exit(2);
    }
    Ok(())
}
