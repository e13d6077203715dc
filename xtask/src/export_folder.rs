//! `cargo xtask export-folder`: the extracted CIFAR-10 binary set written as PNG files in the image-folder layout,
//! to check that a model trains on a folder exactly as on the binary archive.
//!
//! Image `k` of a split (its index in the binary set: `data_batch_1..5` in order for train, `test_batch` for
//! test) becomes `OUT/<split>/<class>/<k:05>.png`, a lossless 32x32 RGB PNG that the folder loader reads back bit
//! for bit (32x32 images are not resampled). The order the loader yields:
//!
//! * `ImageOrder::FileName`: the binary set's own order (every file name is the image's index);
//! * `ImageOrder::ClassMajor` (the default): class by class, each class in the binary set's order.
//!
//! The tree is written into a temporary folder beside `OUT` and renamed to `OUT` at the end: an interrupted
//! export leaves no partial `OUT`. `--verify` then loads the folder twice (decoding into the cache, then from
//! the cache), times both and checks the pixels and labels against the binary set in both orders; `--only-verify`
//! does that on an earlier export.

use anyhow::{Context, Result, bail};
use dataset::{FolderOptions, ImageOrder, ImageSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder holding the extracted cifar-10-batches-bin/ (as `cargo xtask fetch-data` leaves it).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// The folder to create (it must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Export only the first N training images.
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Export only the first N test images.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Afterwards load the folder twice (decode + cache, then from the cache), time both and compare the
    /// pixels and labels with the binary set.
    #[arg(long)]
    pub verify: bool,
    /// Export nothing: verify (as --verify does) an earlier export in --out, with the same --limit-* values.
    #[arg(long, conflicts_with = "verify")]
    pub only_verify: bool,
}

/// One `[3, 32, 32]` planar image as a 32x32 RGB PNG.
fn png(chw: &[u8]) -> Result<Vec<u8>> {
    let plane = 32 * 32;
    let mut rgb = Vec::with_capacity(3 * plane);
    for i in 0..plane {
        rgb.extend_from_slice(&[chw[i], chw[plane + i], chw[2 * plane + i]]);
    }
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &rgb,
        32,
        32,
        image::ExtendedColorType::Rgb8,
    )
    .context("PNG encoding failed")?;
    Ok(out)
}

fn export_split(dir: &Path, set: &ImageSet) -> Result<()> {
    for name in set.class_names() {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    for k in 0..set.len() {
        let class = &set.class_names()[usize::from(set.label(k))];
        let path = dir.join(class).join(format!("{k:05}.png"));
        let bytes = png(set.image(k))?;
        // Inside the temporary tree, renamed as a whole at the end (one fsync per file would take minutes).
        let mut f = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    if !dataset::is_present(&args.data_dir) {
        bail!(
            "CIFAR-10 is not extracted in {}: run `cargo xtask fetch-data --data-dir {} [--from \
             path/to/cifar-10-binary.tar.gz]` first",
            args.data_dir.display(),
            args.data_dir.display()
        );
    }
    let data = dataset::load(&args.data_dir)
        .with_context(|| format!("loading CIFAR-10 from {}", args.data_dir.display()))?;
    let train = data.train.take(args.limit_train.unwrap_or(usize::MAX));
    let test = data.test.take(args.limit_test.unwrap_or(usize::MAX));

    let out = &args.out;
    if args.only_verify {
        return verify(out, &train, &test);
    }
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            bail!(
                "{} already exists and is not an empty folder: remove it or choose another --out",
                out.display()
            );
        }
        std::fs::remove_dir(out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".export-folder-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a temporary folder in {}", parent.display()))?;

    let start = Instant::now();
    export_split(&tmp.path().join("train"), &train)?;
    export_split(&tmp.path().join("test"), &test)?;
    let tmp = tmp.keep();
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    println!(
        "wrote {} training and {} test images as PNG into {} in {:.1} s",
        train.len(),
        test.len(),
        out.display(),
        start.elapsed().as_secs_f64()
    );
    if args.verify {
        verify(out, &train, &test)?;
    }
    Ok(())
}

/// The indices of `set` stably sorted by label: the class-major order of the exported folder.
fn class_major(set: &ImageSet) -> Vec<usize> {
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.sort_by_key(|&k| set.label(k));
    order
}

fn verify(out: &Path, train: &ImageSet, test: &ImageSet) -> Result<()> {
    let by_name = FolderOptions {
        order: ImageOrder::FileName,
        ..FolderOptions::default()
    };
    // A cold first load: no cache from an earlier run.
    if let Some(cache) = dataset::cache_file(out, &by_name.cache)
        && cache.exists()
    {
        std::fs::remove_file(&cache)
            .with_context(|| format!("cannot remove the old cache {}", cache.display()))?;
    }
    let start = Instant::now();
    let first = dataset::load_folder(out, &by_name, &mut |_, _| {})?;
    let t_first = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let second = dataset::load_folder(out, &by_name, &mut |_, _| {})?;
    let t_second = start.elapsed().as_secs_f64();
    println!(
        "load 1 (decode {} images + write the cache): {t_first:.2} s; load 2 (from the cache, {} reused): \
         {t_second:.2} s",
        first.cache.decoded, second.cache.reused
    );
    if !second.cache.all_cached() {
        bail!(
            "the second load did not come from the cache: {:?}",
            second.cache
        );
    }
    for (name, folder, binary) in [
        ("train", &second.train, train),
        ("test", &second.test, test),
    ] {
        if folder != binary {
            bail!(
                "{name}: the folder (file-name order) differs from the binary set ({} vs {} images)",
                folder.len(),
                binary.len()
            );
        }
    }
    println!(
        "file-name order: train and test equal the binary set bit for bit (pixels, labels, classes)"
    );
    let class_major_opts = FolderOptions {
        order: ImageOrder::ClassMajor,
        ..FolderOptions::default()
    };
    let cm = dataset::load_folder(out, &class_major_opts, &mut |_, _| {})?;
    for (name, folder, binary) in [("train", &cm.train, train), ("test", &cm.test, test)] {
        if *folder != binary.subset(&class_major(binary)) {
            bail!(
                "{name}: the folder (class-major order) differs from the binary set sorted by class"
            );
        }
    }
    println!("class-major order: equals the binary set stably sorted by label");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exported_set_loads_back_bit_for_bit_in_file_name_order() {
        let names: Vec<String> = ["airplane", "automobile", "bird"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let n = 25;
        let pixels: Vec<u8> = (0..n * 3072)
            .map(|i| (i * 7 + i / 3072 * 13) as u8)
            .collect();
        let labels: Vec<u8> = (0..n).map(|k| ((k * 5 + 1) % 3) as u8).collect();
        let set = ImageSet::new(pixels, labels, names).unwrap();
        let dir = tempfile::tempdir().unwrap();
        export_split(&dir.path().join("train"), &set).unwrap();
        export_split(&dir.path().join("test"), &set.take(7)).unwrap();
        assert!(dir.path().join("train/automobile/00000.png").is_file());
        let opts = FolderOptions {
            order: ImageOrder::FileName,
            cache: dataset::CacheMode::Off,
            ..FolderOptions::default()
        };
        let back = dataset::load_folder(dir.path(), &opts, &mut |_, _| {}).unwrap();
        assert_eq!(back.train, set);
        assert_eq!(back.test, set.take(7));
        let opts = FolderOptions {
            order: ImageOrder::ClassMajor,
            ..opts
        };
        let back = dataset::load_folder(dir.path(), &opts, &mut |_, _| {}).unwrap();
        assert_eq!(back.train, set.subset(&class_major(&set)));
        assert_ne!(back.train, set);
    }
}
