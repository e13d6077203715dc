use crate::args::{ChartFormat, Cli, Command, EvaluateArgs, PlotArgs, TrainArgs};
use crate::shared_args::PrecisionArg;
use anyhow::{Context, Result, bail};
use cifar_types::ImageSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use train::{RunDir, StopFlag, TrainConfig};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let quiet = cli.quiet;
    // A misspelt cap would otherwise be ignored: the kernels would run at the CPU's own level.
    cpu_ops::Isa::cap()?;
    match cli.command {
        Command::Train(a) => train_cmd(*a),
        Command::Evaluate(a) => evaluate_cmd(a),
        Command::Predict(a) => crate::predict::predict_cmd(a),
        Command::Serve(a) => crate::serve::serve_cmd(a),
        Command::Inspect(a) => crate::inspect::inspect_cmd(a),
        Command::Plot(a) => plot_cmd(a),
        Command::Compare(a) => crate::compare::compare_cmd(a),
        Command::Bench(a) => crate::bench::bench_cmd(a),
        Command::Sweep(a) => crate::sweep::sweep_cmd(*a, quiet),
        Command::List => {
            // Sizes and costs with CIFAR-10's 10-class head.
            let classes = cifar_types::CIFAR10_CLASS_NAMES.len();
            println!("models (parameters and cost with a {classes}-class head):");
            println!(
                "  {:<12} {:>10} {:>13}  description",
                "name", "parameters", "MFLOP/image"
            );
            for m in model::registry::MODELS {
                let params = m
                    .param_count(classes)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into());
                println!(
                    "  {:<12} {:>10} {:>13.2}  {}",
                    m.name,
                    params,
                    m.mflops_per_image(classes),
                    m.description
                );
            }
            println!("presets:");
            for p in train::PRESETS {
                println!("  {:<12} {}", p.name, p.description);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The config of a new run: the preset, then every flag given.
fn config_from(a: &TrainArgs) -> Result<TrainConfig> {
    let mut c = TrainConfig::preset(&a.preset).map_err(crate::errors::train_flag_error)?;
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = a.$field.clone() { c.$field = v; } )* };
    }
    if let Some(e) = a.epochs {
        if !(e.is_finite() && e > 0.0) {
            bail!("--epochs: expected a positive number, found {e}");
        }
        c.epochs = e.ceil() as usize;
        c.fractional_epochs = (e.fract() != 0.0).then_some(e);
    }
    if let Some(o) = &a.optimizer {
        c.optimizer = match o.to_ascii_lowercase().as_str() {
            "adam" | "adamw" => train::OptimizerKind::Adam,
            "sgd" => train::OptimizerKind::Sgd,
            "muon" => train::OptimizerKind::Muon,
            _ => bail!("--optimizer: expected adam, sgd or muon, found {o:?}"),
        };
    }
    set!(
        momentum,
        batch_size,
        lr,
        weight_decay,
        val_fraction,
        seed,
        device,
        model,
        schedule,
        warmup_epochs,
        label_smoothing,
        eval_batch_size,
        data_dir
    );
    a.data.apply(&mut c)?;
    if let Some(m) = a.micro_batch {
        c.micro_batch_size = (m > 0).then_some(m);
    }
    if a.limit_train.is_some() {
        c.limit_train = a.limit_train;
    }
    if a.patience.is_some() {
        c.patience = a.patience;
    }
    if let Some(p) = a.flip_prob {
        c.augment.flip_prob = p;
    }
    if let Some(p) = a.crop_pad {
        c.augment.crop_pad = p;
    }
    c.stratified |= a.stratified;
    c.tta = a.tta.apply(c.tta)?;
    if a.tta_threshold.is_some() {
        c.tta_threshold = a.tta_threshold;
    }
    c.stock_ops |= a.stock_ops;
    match a.precision {
        Some(PrecisionArg::Fixed(p)) => c.precision = p,
        Some(PrecisionArg::Auto) => {
            // The device the run will train on decides (opened here once more for that, before any work).
            let (device, _) = model::device::select(&c.device).context("--device")?;
            c.precision = PrecisionArg::Auto.resolve(&device, c.stock_ops);
        }
        None => {}
    }
    if let Some(w) = a.winograd {
        c.winograd = w;
    }
    // Also refuses a CUDA device on a build without CUDA, before any directory or download.
    c.validate().map_err(crate::errors::train_flag_error)?;
    Ok(c)
}

fn train_cmd(a: TrainArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let mut new_out_root = None;
    let (cfg, out, resume) = match &a.resume {
        Some(dir) => {
            let rd = RunDir::new(dir);
            let mut cfg = rd.read_config().with_context(|| {
                format!("--resume {}: cannot read the run's config", dir.display())
            })?;
            if !rd.file(RunDir::LAST).is_file() {
                bail!(
                    "--resume {}: no {} to continue from",
                    dir.display(),
                    RunDir::LAST
                );
            }
            if let Some(d) = &a.device {
                cfg.device = d.clone();
            }
            if let Some(d) = &a.data_dir {
                cfg.data_dir = d.clone();
            }
            cfg.validate().map_err(|e| match e {
                train::Error::Setting {
                    setting: "device", ..
                } => crate::errors::train_flag_error(e),
                e => anyhow::Error::new(e).context(format!(
                    "--resume {}: {}",
                    dir.display(),
                    RunDir::CONFIG
                )),
            })?;
            tracing::info!(
                "resuming with the run's own config.json (flags other than --device/--data-dir are ignored)"
            );
            (cfg, dir.clone(), true)
        }
        None => {
            let cfg = config_from(&a)?;
            let out = a.out.clone().unwrap_or_else(|| default_out(&cfg));
            new_out_root = out
                .ancestors()
                .take_while(|p| !p.exists())
                .last()
                .map(Path::to_path_buf);
            if let Err(e) = RunDir::new(&out).prepare_new() {
                // It may have created directories before failing.
                drop(new_out_root.map(|root| RemoveIfEmpty {
                    dir: out.clone(),
                    root,
                }));
                return Err(anyhow::Error::new(e).context(format!("--out {}", out.display())));
            }
            (cfg, out, false)
        }
    };
    // A new run directory that is still empty when this function returns (a failed download, ...) goes again.
    let _cleanup = new_out_root.map(|root| RemoveIfEmpty {
        dir: out.clone(),
        root,
    });
    tracing::info!("config: {}", serde_json::to_string(&cfg)?);
    crate::data::ensure(&cfg.data_dir, cfg.dataset, a.url.as_deref())?;
    let data = crate::data::load_data(&cfg)?;
    let outcome = fit_here(&cfg, &data, &out, resume)?;
    if outcome.interrupted {
        println!(
            "interrupted; continue with: cifar train --resume {}",
            out.display()
        );
        return Ok(ExitCode::from(130));
    }
    // Wall time and peak memory so far (the charts below are not part of training), for `cifar compare`.
    crate::compare::write_run_summary(
        &out,
        &cfg.model,
        data.train.num_classes(),
        started.elapsed().as_secs_f64(),
        rayon_threads(),
    );
    if !a.no_plots {
        let test = Arc::new(data.test);
        if let Err(e) = plot_run(&out, Some(test), viz::Format::Png) {
            tracing::warn!("charts not drawn: {e:#}");
        }
    }
    let h = &outcome.history;
    println!("run directory: {}", out.display());
    if h.best().is_none() && !h.epochs.is_empty() {
        println!(
            "{} in {} (no validation split: the final weights are the run's model)",
            crate::time::count(h.epochs.len(), "epoch"),
            crate::time::duration(h.total_secs())
        );
    }
    if let Some(best) = h.best() {
        println!(
            "best epoch {} (val acc {:.2}%), {} in {}{}",
            best.epoch,
            100.0 * best.val_acc,
            crate::time::count(h.epochs.len(), "epoch"),
            crate::time::duration(h.total_secs()),
            if outcome.stopped_early {
                " (early stop)"
            } else {
                ""
            }
        );
    }
    if let Some(last) = h.last() {
        println!(
            "last epoch {}: {:.1}s, {:.0} train img/s",
            last.epoch, last.epoch_secs, last.train_images_per_sec
        );
    }
    if let Some(r) = &outcome.test_report {
        let plain = r
            .accuracy_without_tta
            .map(|a| format!(" ({:.2}% without TTA)", 100.0 * a))
            .unwrap_or_default();
        let top5 = r
            .top5_accuracy
            .map(|a| format!(", top-5 {:.2}%", 100.0 * a))
            .unwrap_or_default();
        println!(
            "test accuracy {:.2}%{plain}{top5}, loss {:.4}",
            100.0 * r.accuracy,
            r.loss
        );
    }
    if let Some(rss) = train::bench::peak_rss_bytes() {
        println!("peak memory: {:.0} MiB", rss as f64 / (1024.0 * 1024.0));
    }
    Ok(ExitCode::SUCCESS)
}

/// On drop, removes `dir` and its parents up to `root` (both included) while they are empty: a run directory
/// created for a run that wrote nothing leaves nothing behind.
struct RemoveIfEmpty {
    dir: PathBuf,
    root: PathBuf,
}

impl Drop for RemoveIfEmpty {
    fn drop(&mut self) {
        for d in self.dir.ancestors() {
            // `remove_dir` only removes an empty directory.
            if std::fs::remove_dir(d).is_err() || d == self.root {
                break;
            }
        }
    }
}

/// `runs/<preset>-seed<seed>-<UTC date-time>` (e.g. `runs/fast-seed42-20261204-171502`): readable, sortable,
/// and unique per second (`-2`, `-3`, ... when a run of the same second exists).
/// Trains `cfg` on `data` in this process into the run directory `out` (resuming from its `last` checkpoint when
/// `resume`), with the progress bar, and Ctrl-C asking the run to stop after the batch (it saves `last`): what
/// `cifar train` and each `cifar sweep` run do.
pub(crate) fn fit_here(
    cfg: &TrainConfig,
    data: &train::Data,
    out: &Path,
    resume: bool,
) -> Result<train::Outcome> {
    let stop = StopFlag::default();
    crate::progress::install_ctrl_c(&stop)?;
    let (net, device) = train::build_model(cfg, data.train.num_classes())
        .map_err(crate::errors::train_flag_error)?;
    Ok(train::TrainerBuilder::new(net.as_ref(), cfg.clone())
        .run_dir(out)
        .resume(resume)
        .stop_flag(stop)
        .device_description(device)
        .callback(crate::progress::Progress::new(cfg.patience))
        .build()
        .map_err(crate::errors::train_flag_error)?
        .fit(data)?)
}

fn default_out(cfg: &TrainConfig) -> PathBuf {
    let stem = format!(
        "{}-seed{}-{}",
        cfg.preset,
        cfg.seed,
        crate::time::utc_stamp(std::time::SystemTime::now())
    );
    unique_dir(Path::new("runs"), &stem)
}

/// `parent/stem`, or `parent/stem-2`, `-3`, ... : the first that does not exist.
pub fn unique_dir(parent: &Path, stem: &str) -> PathBuf {
    let first = parent.join(stem);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|k| parent.join(format!("{stem}-{k}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

fn evaluate_cmd(a: EvaluateArgs) -> Result<ExitCode> {
    if a.batch_size == 0 {
        bail!("--batch-size: expected at least 1, found 0");
    }
    let tta = a.tta.apply(train::Tta::None)?;
    let (device, desc, kernels) = a.compute.open(false)?;
    let (mut net, meta) = model::checkpoint::load_model_with_meta(&a.checkpoint, &device)
        .with_context(|| format!("--checkpoint {}", a.checkpoint.display()))?;
    net.set_kernels(kernels).context("--precision")?;
    predict::note_defaults(&a.checkpoint, &meta);
    let normalize = meta.normalize;
    let source = a.data.source(&a.data_dir)?;
    let data = crate::data::load(&a.data_dir, source, a.data.skip_bad_images)?;
    if data.test.class_names() != meta.class_names.as_slice() {
        bail!(
            "--checkpoint {} was trained on {} classes ({}), but the test set in --data-dir {} has {} ({}): pass the data it was trained on (--dataset, --labels)",
            a.checkpoint.display(),
            meta.class_names.len(),
            meta.class_names
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            a.data_dir.display(),
            data.test.class_names().len(),
            data.test
                .class_names()
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    tracing::info!(
        "evaluating {} ({}) on {desc} ({} convolutions)",
        a.checkpoint.display(),
        net.name(),
        kernels.precision()
    );
    let test = Arc::new(data.test);
    let started = std::time::Instant::now();
    let e = match a.tta_threshold {
        None => train::evaluate(net.as_ref(), &test, a.batch_size, normalize, tta)?,
        Some(t) => {
            if !(t > 0.0 && t <= 1.0) {
                bail!("--tta-threshold: expected a probability in (0, 1], found {t}");
            }
            if tta == train::Tta::None {
                bail!("--tta-threshold: needs --tta (the views for the uncertain images)");
            }
            let selective = train::Selective { tta, threshold: t };
            let s =
                train::evaluate_selective(net.as_ref(), &test, a.batch_size, normalize, selective)?;
            tracing::info!(
                "selective TTA: {tta} for {} of {} images (plain-view confidence below {t}; the plain view alone: {:.2}%)",
                s.augmented,
                test.len(),
                100.0 * s.plain_accuracy
            );
            s.evaluation
        }
    };
    tracing::info!("evaluated in {:.1}s", started.elapsed().as_secs_f64());
    let report =
        cifar_types::TestReport::from_predictions(&e.predictions, e.loss, test.class_names());
    let top5 = report
        .top5_accuracy
        .map(|a| format!("  top-5 {:.2}%", 100.0 * a))
        .unwrap_or_default();
    println!(
        "test accuracy {:.2}%{top5}  loss {:.4}  ({} images)",
        100.0 * report.accuracy,
        report.loss,
        test.len()
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "f1", "support"
    );
    for c in &report.per_class {
        println!(
            "{:<12} {:>9.4} {:>9.4} {:>9.4} {:>8}",
            c.class, c.precision, c.recall, c.f1, c.support
        );
    }
    println!("confusion matrix (rows = true class, columns = predicted class):");
    let header: Vec<String> = (0..test.class_names().len())
        .map(|k| format!("{k:>5}"))
        .collect();
    println!("{:<12}{}", "", header.join(""));
    for (k, (name, row)) in test
        .class_names()
        .iter()
        .zip(&report.confusion_matrix)
        .enumerate()
    {
        let name = format!("{k} {name}");
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
        println!("{name:<12}{}", cells.join(""));
    }
    if let Some(path) = &a.report {
        cifar_types::atomic::write_json(path, &report)?;
        println!("report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn plot_cmd(a: PlotArgs) -> Result<ExitCode> {
    let format = match a.format {
        ChartFormat::Png => viz::Format::Png,
        ChartFormat::Svg => viz::Format::Svg,
    };
    let rd = RunDir::new(&a.run);
    let config = rd.read_config().ok();
    let source = config.as_ref().map(|c| c.dataset).unwrap_or_default();
    let skip_bad = config.as_ref().is_some_and(|c| c.skip_bad_images);
    let data_dir = match a.data_dir {
        Some(d) => Some(d),
        None => config.map(|c| c.data_dir),
    };
    let test = match data_dir {
        Some(d) => match crate::data::load(&d, source, skip_bad) {
            Ok(l) => Some(Arc::new(l.test)),
            Err(e) => {
                tracing::warn!("image grids are skipped: {e:#}");
                None
            }
        },
        None => None,
    };
    let written = plot_run(&a.run, test, format)?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn plot_run(
    run_dir: &Path,
    test: Option<Arc<ImageSet>>,
    format: viz::Format,
) -> Result<Vec<PathBuf>> {
    let mut run = viz::load_run(run_dir)?;
    run.test_images = test.map(|t| (*t).clone());
    let written = viz::render_run(run_dir, &run, format)?;
    Ok(written)
}

pub(crate) fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}
