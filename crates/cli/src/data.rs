//! Where the images come from: `--dataset`, `--labels`, `--skip-bad-images` (train, evaluate, plot, sweep), the
//! check and download of a binary data set, and the loading of any source into the trainer's [`train::Data`].

use anyhow::{Context, Result, bail};
use cifar_types::ImageSet;
use clap::{Args, ValueEnum};
use dataset::{Dataset, Labels, Layout};
use std::path::Path;
use train::{DataSource, TrainConfig};

/// `--dataset`, `--labels` and `--skip-bad-images`.
#[derive(Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// The data set in --data-dir: cifar10 | cifar100 (the binary versions, downloaded when missing) | folder
    /// (image folders: DIR/train/<class>/*, DIR/test/<class>/*, optional DIR/val/<class>/*) [default: folder when
    /// DIR has that layout, cifar100 when DIR holds only cifar-100-binary, else cifar10].
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetFlag>,
    /// CIFAR-100's labels: fine (100 classes) | coarse (20 superclasses) [default: fine].
    #[arg(long, value_enum)]
    pub labels: Option<LabelsFlag>,
    /// Image folders: leave out images that cannot be decoded (counted and listed at the end of loading) instead
    /// of stopping before training.
    #[arg(long)]
    pub skip_bad_images: bool,
}

/// A `--dataset` value.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFlag {
    /// CIFAR-10's binary version.
    Cifar10,
    /// CIFAR-100's binary version.
    Cifar100,
    /// A user's image folders.
    Folder,
}

/// A `--labels` value.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsFlag {
    /// CIFAR-100's 100 classes.
    Fine,
    /// CIFAR-100's 20 superclasses.
    Coarse,
}

impl DataArgs {
    /// The data source these flags name for `data_dir` (auto-detected when `--dataset` is not given).
    pub fn source(&self, data_dir: &Path) -> Result<DataSource> {
        let dataset = match self.dataset {
            Some(d) => d,
            None => detect(data_dir),
        };
        Ok(match (dataset, self.labels) {
            (DatasetFlag::Cifar100, None | Some(LabelsFlag::Fine)) => DataSource::Cifar100,
            (DatasetFlag::Cifar100, Some(LabelsFlag::Coarse)) => DataSource::Cifar100Coarse,
            (_, Some(l)) => bail!(
                "--labels {}: only CIFAR-100 has fine and coarse labels (add --dataset cifar100)",
                l.to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default()
            ),
            (DatasetFlag::Cifar10, None) => DataSource::Cifar10,
            (DatasetFlag::Folder, None) => DataSource::Folder,
        })
    }

    /// Sets the config's data source and bad-image handling from these flags.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        cfg.dataset = self.source(&cfg.data_dir)?;
        cfg.skip_bad_images |= self.skip_bad_images;
        Ok(())
    }
}

/// `folder` when `data_dir` has the image-folder layout, `cifar100` when it holds only CIFAR-100, else `cifar10`.
fn detect(data_dir: &Path) -> DatasetFlag {
    if dataset::is_folder_layout(data_dir) {
        DatasetFlag::Folder
    } else if data_dir.join(Dataset::Cifar100.dir()).is_dir()
        && !data_dir.join(Dataset::Cifar10.dir()).exists()
    {
        DatasetFlag::Cifar100
    } else {
        DatasetFlag::Cifar10
    }
}

/// The binary data set and labels of a source (`None` for image folders).
pub fn binary(source: DataSource) -> Option<(Dataset, Labels)> {
    match source {
        DataSource::Cifar10 => Some((Dataset::Cifar10, Labels::Fine)),
        DataSource::Cifar100 => Some((Dataset::Cifar100, Labels::Fine)),
        DataSource::Cifar100Coarse => Some((Dataset::Cifar100, Labels::Coarse)),
        DataSource::Folder => None,
    }
}

/// A source's name for messages (`CIFAR-10`, `CIFAR-100 (coarse labels)`, `image folders`).
pub fn title(source: DataSource) -> String {
    match source {
        DataSource::Cifar100Coarse => "CIFAR-100 (coarse labels)".into(),
        DataSource::Folder => "image folders".into(),
        s => binary(s)
            .map(|(d, _)| d.title().to_string())
            .unwrap_or_default(),
    }
}

/// Makes sure `data_dir` holds the source's data: a binary data set that is absent is downloaded (like
/// torchvision's `download=True`); one that is present but damaged is an error naming every damaged file and the
/// command that repairs it, before any download; image folders must have their layout.
pub fn ensure(data_dir: &Path, source: DataSource, url: Option<&str>) -> Result<()> {
    let Some((ds, _)) = binary(source) else {
        if !dataset::is_folder_layout(data_dir) {
            bail!(
                "--data-dir {}: expected image folders (train/<class>/* and test/<class>/*), found {}",
                data_dir.display(),
                if data_dir.is_dir() {
                    "no train/ and test/ folders with class folders inside"
                } else {
                    "no such directory"
                }
            );
        }
        return Ok(());
    };
    let layout = Layout::official(ds);
    let problems = layout.problems(data_dir);
    if problems.is_empty() {
        return Ok(());
    }
    let dir = data_dir.join(ds.dir());
    if dir.exists() {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        let repair = match ds {
            Dataset::Cifar10 => "cargo xtask fetch-data --force",
            Dataset::Cifar100 => "cargo xtask fetch-data --dataset cifar100 --force",
        };
        bail!(
            "the {ds} data in {} is damaged ({} of its files):\n{}\nrepair it with `{repair} --data-dir {}` (or `--from ARCHIVE` for a local copy of the archive)",
            dir.display(),
            problems.len(),
            list.join("\n"),
            data_dir.display()
        );
    }
    let env_url = match ds {
        Dataset::Cifar10 => dataset::url_from_env(),
        Dataset::Cifar100 => None,
    };
    let url = url
        .map(str::to_string)
        .or(env_url)
        .unwrap_or_else(|| ds.official_url().to_string());
    tracing::info!("no {ds} data in {}; downloading {url}", data_dir.display());
    let opts = dataset::FetchOptions {
        url: Some(url.clone()),
        dataset: ds,
        ..Default::default()
    };
    let mut bar = dataset::DownloadBar::new();
    let official = url == ds.official_url();
    let fetch_cmd = match ds {
        Dataset::Cifar10 => "cargo xtask fetch-data",
        Dataset::Cifar100 => "cargo xtask fetch-data --dataset cifar100",
    };
    dataset::fetch(data_dir, &opts, &mut |done, total| bar.update(done, total)).with_context(|| {
        if official {
            format!(
                "cannot fetch {ds} into {} (offline? use `{fetch_cmd} --from FILE`, or a mirror with --url)",
                data_dir.display()
            )
        } else {
            format!(
                "cannot fetch {ds} from the mirror {url} into {} (check the URL, or use `{fetch_cmd} --from FILE`)",
                data_dir.display()
            )
        }
    })?;
    bar.finish();
    Ok(())
}

/// A source's images: training, validation when the source has its own (image folders' `val/`), test.
pub struct Loaded {
    /// Training images.
    pub train: ImageSet,
    /// The source's own validation images, if any.
    pub val: Option<ImageSet>,
    /// Test images.
    pub test: ImageSet,
}

/// Loads the source's images from `data_dir` (image folders: decoded in parallel with a progress bar, through the
/// cache beside the data).
pub fn load(data_dir: &Path, source: DataSource, skip_bad_images: bool) -> Result<Loaded> {
    if let Some((ds, labels)) = binary(source) {
        let all =
            dataset::load_labels(data_dir, Layout::official(ds), labels).with_context(|| {
                format!(
                    "--data-dir {}: cannot load {}",
                    data_dir.display(),
                    title(source)
                )
            })?;
        return Ok(Loaded {
            train: all.train,
            val: None,
            test: all.test,
        });
    }
    let opts = dataset::FolderOptions {
        skip_bad_images,
        // File-name order: a folder tree exported from a binary set with numbered files loads in the set's own
        // order, so it trains to the very same numbers.
        order: dataset::ImageOrder::FileName,
        ..Default::default()
    };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let data = dataset::load_folder(data_dir, &opts, &mut |done, total| {
        if total == 0 {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "decoding {bar:30} {pos}/{len} images ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        b.set_position(done as u64);
    })
    .with_context(|| {
        format!(
            "--data-dir {}: cannot load the image folders",
            data_dir.display()
        )
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !data.skipped.is_empty() {
        let list: Vec<String> = data
            .skipped
            .iter()
            .take(10)
            .map(|s| format!("  - {}: {}", s.path.display(), s.reason))
            .collect();
        tracing::warn!(
            "--skip-bad-images: left out {} image(s) that do not decode{}:\n{}",
            data.skipped.len(),
            if data.skipped.len() > 10 {
                " (the first 10)"
            } else {
                ""
            },
            list.join("\n")
        );
    }
    Ok(Loaded {
        train: data.train,
        val: data.val,
        test: data.test,
    })
}

/// The run's data per its config: the source's images, the first `limit_train` training images, and the seeded
/// validation split (or the source's own validation set, which `val_fraction` then does not touch).
pub fn load_data(cfg: &TrainConfig) -> Result<train::Data> {
    let t = std::time::Instant::now();
    let all = load(&cfg.data_dir, cfg.dataset, cfg.skip_bad_images)?;
    let pool = match cfg.limit_train {
        Some(n) => all.train.take(n),
        None => all.train,
    };
    let (train, val) = match all.val {
        Some(val) => {
            tracing::info!(
                "using the data's own validation set ({} images); --val-fraction is not applied",
                val.len()
            );
            (pool, val)
        }
        None => dataset::split(&pool, cfg.val_fraction, cfg.seed, cfg.stratified)?,
    };
    tracing::info!(
        "loaded {} ({} classes): {} train / {} val / {} test images in {:.2}s",
        title(cfg.dataset),
        train.num_classes(),
        train.len(),
        val.len(),
        all.test.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(train::Data {
        train,
        val,
        test: all.test,
    })
}
