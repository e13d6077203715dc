//! `cargo xtask fetch-data`: make sure CIFAR-10 (or CIFAR-100) is extracted in the data dir, then report what is
//! there.

use anyhow::Context;
use dataset::{Dataset, DownloadBar, FetchOptions, FetchOutcome, Labels, Layout};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder that receives cifar-10-batches-bin/ or cifar-100-binary/ (relative to the current directory).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// The data set: cifar10 or cifar100 (official archive md5 03b5dce01913d631647c71ecec9e9cb8).
    #[arg(long, value_enum, default_value_t = DatasetArg::Cifar10)]
    pub dataset: DatasetArg,
    /// Download from this URL instead of the official one (a mirror is verified by structure, and by
    /// --sha256 when given). Default: env CIFAR10_URL (CIFAR-10 only), else the official URL.
    #[arg(long, conflicts_with = "from")]
    pub url: Option<String>,
    /// Extract this local .tar.gz instead of downloading.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Expected sha256 (hex) of the archive.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Download/extract again even when valid data is present (a kept archive is downloaded again).
    #[arg(long)]
    pub force: bool,
    /// Download retries on transient failures (each waits longer than the one before).
    #[arg(long, default_value_t = dataset::DEFAULT_RETRIES, value_parser = clap::value_parser!(u32).range(1..))]
    pub retries: u32,
}

/// A `--dataset` value.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetArg {
    /// CIFAR-10.
    Cifar10,
    /// CIFAR-100.
    Cifar100,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let ds = match args.dataset {
        DatasetArg::Cifar10 => Dataset::Cifar10,
        DatasetArg::Cifar100 => Dataset::Cifar100,
    };
    // A mirror from env CIFAR10_URL when neither --url nor --from is given (it names a CIFAR-10 archive).
    let url = match (&args.url, &args.from, ds) {
        (None, None, Dataset::Cifar10) => dataset::url_from_env(),
        _ => args.url,
    };
    let opts = FetchOptions {
        url,
        from: args.from,
        sha256: args.sha256,
        force: args.force,
        retries: args.retries,
        dataset: ds,
    };
    let mut bar = DownloadBar::new();
    let outcome = dataset::fetch(&args.data_dir, &opts, &mut |done, total| {
        bar.update(done, total)
    });
    bar.finish();
    let outcome =
        outcome.with_context(|| format!("fetching {ds} into {}", args.data_dir.display()))?;
    match &outcome {
        FetchOutcome::AlreadyPresent => {
            println!(
                "{ds} already present in {} (use --force to fetch again)",
                args.data_dir.display()
            );
        }
        FetchOutcome::Downloaded { url } => println!("downloaded and extracted {url}"),
        FetchOutcome::Extracted { from } => println!("extracted {}", from.display()),
    }

    let data = dataset::load_labels(&args.data_dir, Layout::official(ds), Labels::Fine)
        .with_context(|| {
            format!(
                "loading the extracted data from {}",
                args.data_dir.display()
            )
        })?;
    let dir = args.data_dir.join(ds.dir());
    let shown = std::path::absolute(&dir).unwrap_or(dir);
    println!("data: {}", shown.display());
    println!(
        "train: {} images, test: {} images",
        data.train.len(),
        data.test.len()
    );
    let (train, test) = (data.train.class_counts(), data.test.class_counts());
    println!("{:<14} {:>7} {:>7}", "class", "train", "test");
    for (i, name) in data.train.class_names().iter().enumerate() {
        println!("{:<14} {:>7} {:>7}", name, train[i], test[i]);
    }
    println!("done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
