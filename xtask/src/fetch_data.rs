//! `cargo xtask fetch-data`: make sure CIFAR-10 is extracted in the data dir, then report what is there.

use anyhow::Context;
use dataset::{DownloadBar, FetchOptions, FetchOutcome};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder that receives cifar-10-batches-bin/ (relative to the current directory).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Download from this URL instead of the official one (a mirror is verified by structure, and by
    /// --sha256 when given). Default: env CIFAR10_URL, else the official URL.
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    // A mirror from env CIFAR10_URL when neither --url nor --from is given.
    let url = match (&args.url, &args.from) {
        (None, None) => dataset::url_from_env(),
        _ => args.url,
    };
    let opts = FetchOptions {
        url,
        from: args.from,
        sha256: args.sha256,
        force: args.force,
        retries: args.retries,
    };
    let mut bar = DownloadBar::new();
    let outcome = dataset::fetch(&args.data_dir, &opts, &mut |done, total| {
        bar.update(done, total)
    });
    bar.finish();
    let outcome =
        outcome.with_context(|| format!("fetching CIFAR-10 into {}", args.data_dir.display()))?;
    match &outcome {
        FetchOutcome::AlreadyPresent => {
            println!(
                "CIFAR-10 already present in {} (use --force to fetch again)",
                args.data_dir.display()
            );
        }
        FetchOutcome::Downloaded { url } => println!("downloaded and extracted {url}"),
        FetchOutcome::Extracted { from } => println!("extracted {}", from.display()),
    }

    let data = dataset::load(&args.data_dir).with_context(|| {
        format!(
            "loading the extracted data from {}",
            args.data_dir.display()
        )
    })?;
    let dir = args.data_dir.join(dataset::BATCH_DIR);
    let shown = std::path::absolute(&dir).unwrap_or(dir);
    println!("data: {}", shown.display());
    println!(
        "train: {} images, test: {} images",
        data.train.len(),
        data.test.len()
    );
    let (train, test) = (data.train.class_counts(), data.test.class_counts());
    println!("{:<12} {:>7} {:>7}", "class", "train", "test");
    for (i, name) in data.train.class_names().iter().enumerate() {
        println!("{:<12} {:>7} {:>7}", name, train[i], test[i]);
    }
    println!("done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
