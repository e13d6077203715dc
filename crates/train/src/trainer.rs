use crate::evaluate::evaluate;
use crate::loss::cross_entropy;
use crate::optim::{Adam, AdamConfig};
use crate::state::{TrainState, load_last, save_last};
use crate::{Error, Result, RunDir, TrainConfig};
use augment::{EpochPlan, Loader, batch_seed};
use candle_core::{D, DType};
use cifar_types::{EpochMetrics, History, ImageSet, TestReport};
use indicatif::{ProgressBar, ProgressStyle};
use model::{Mode, checkpoint, registry};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

const ORDER_SALT: u64 = 0x6f72_6465_725f_7368; // "order_sh"
const DROPOUT_SALT: u64 = 0x6472_6f70_6f75_7421; // "dropout!"

/// A cooperative stop request (Ctrl-C): training finishes the current batch, writes `last`, and returns.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Requests a stop on Ctrl-C (once per process).
    pub fn install_ctrl_c(&self) -> Result<()> {
        let flag = self.clone();
        ctrlc::set_handler(move || {
            if flag.is_requested() {
                // A second Ctrl-C: the user insists.
                std::process::exit(130);
            }
            eprintln!("\nstopping after the current batch (Ctrl-C again to abort now)...");
            flag.request();
        })
        .map_err(|e| Error::Config(format!("cannot install the Ctrl-C handler: {e}")))
    }
}

/// The images of a run.
#[derive(Debug, Clone)]
pub struct Data {
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub history: History,
    /// None when the run was interrupted before the end.
    pub test_report: Option<TestReport>,
    pub interrupted: bool,
    pub stopped_early: bool,
    pub best_epoch: usize,
    pub device: String,
}

/// Trains per `cfg` into `out` (a new run directory, or an existing one with `resume`), evaluates the best model on
/// the test set and writes every artifact. With `resume`, `cfg` must be the run's own config (`RunDir::read_config`).
pub fn run(
    cfg: &TrainConfig,
    data: &Data,
    out: &Path,
    stop: &StopFlag,
    resume: bool,
) -> Result<Outcome> {
    cfg.validate()?;
    if data.train.is_empty() || data.val.is_empty() {
        return Err(Error::Config(format!(
            "need training and validation images, found {} and {}",
            data.train.len(),
            data.val.len()
        )));
    }
    let dir = RunDir::new(out);
    let (device, device_desc) = model::device::select(&cfg.device)?;
    model::device::prepare_cpu_threads();
    model::device::use_stock_cpu_ops(cfg.stock_ops);
    let model = registry::build(&cfg.model, &device, cfg.seed)?;
    let adam_cfg = AdamConfig {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut opt = Adam::new(model.params().iter(), adam_cfg)?;
    let mut state = if resume {
        let s = load_last(&dir, model.as_ref(), &mut opt, &device)?;
        tracing::info!(
            "resuming {} at epoch {}, batch {} ({} epochs done)",
            dir.path().display(),
            s.epoch,
            s.next_batch,
            s.history.epochs.len()
        );
        s
    } else {
        dir.create(cfg)?;
        TrainState::default()
    };
    tracing::info!(
        "training {} ({} parameters) on {device_desc}: {} train / {} val / {} test images, preset {}",
        model.name(),
        model.params().count(),
        data.train.len(),
        data.val.len(),
        data.test.len(),
        cfg.preset
    );

    let train = Arc::new(data.train.clone());
    let val = Arc::new(data.val.clone());
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let warmup = (cfg.warmup_epochs * steps_per_epoch as f64).round() as usize;

    while !state.finished && state.epoch <= cfg.epochs {
        let epoch = state.epoch;
        let t_epoch = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(batch_seed(
            cfg.seed ^ ORDER_SALT,
            epoch,
            0,
        )));
        let plan = EpochPlan {
            order,
            batch_size: cfg.batch_size,
            augment: cfg.augment,
            seed: cfg.seed,
            epoch,
            start_batch: state.next_batch,
        };
        let bar = progress_bar(steps_per_epoch, state.next_batch, epoch, cfg.epochs);
        let mut lr = cfg.lr;
        let mut interrupted = false;
        for batch in Loader::spawn(train.clone(), plan, 4) {
            let b = batch?;
            let step = (epoch - 1) * steps_per_epoch + b.index;
            lr = cfg.schedule.lr(cfg.lr, step, total_steps, warmup);
            opt.set_lr(lr);
            let x = b.images.to_device(&device)?;
            let y = b.labels.to_device(&device)?;
            let mut drop_rng =
                ChaCha8Rng::seed_from_u64(batch_seed(cfg.seed ^ DROPOUT_SALT, epoch, b.index));
            let logits = model.forward(&x, Mode::Train(&mut drop_rng))?;
            let loss = cross_entropy(&logits, &y, cfg.label_smoothing)?;
            let loss_value = loss.to_scalar::<f32>()?;
            if !loss_value.is_finite() {
                bar.abandon();
                return Err(Error::NonFinite {
                    epoch,
                    batch: b.index,
                    value: loss_value,
                });
            }
            let grads = loss.backward()?;
            opt.step(&grads)?;
            let n = b.label_bytes.len() as u64;
            let hits = logits
                .argmax(D::Minus1)?
                .eq(&y)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()?;
            state.loss_sum += f64::from(loss_value) * n as f64;
            state.correct += u64::from(hits);
            state.seen += n;
            state.next_batch = b.index + 1;
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}%",
                state.loss_sum / state.seen as f64,
                100.0 * state.correct as f64 / state.seen as f64
            ));
            if stop.is_requested() {
                interrupted = true;
                break;
            }
        }
        let train_secs = t_epoch.elapsed().as_secs_f64();
        state.train_secs += train_secs;
        if interrupted {
            bar.abandon_with_message("interrupted");
            state.epoch_secs += train_secs;
            save_last(&dir, model.as_ref(), &opt, &state)?;
            tracing::info!(
                "interrupted at epoch {epoch}, batch {}; resume with --resume {}",
                state.next_batch,
                dir.path().display()
            );
            return Ok(outcome(&state, None, true, device_desc));
        }
        bar.finish_and_clear();

        let v = evaluate(
            model.as_ref(),
            &val,
            cfg.eval_batch_size,
            cfg.augment.normalize,
            cfg.tta,
        )?;
        state.epoch_secs += t_epoch.elapsed().as_secs_f64();
        let metrics = EpochMetrics {
            epoch,
            train_loss: state.loss_sum / state.seen.max(1) as f64,
            train_acc: state.correct as f64 / state.seen.max(1) as f64,
            val_loss: v.loss,
            val_acc: v.accuracy,
            lr,
            epoch_secs: state.epoch_secs,
            train_images_per_sec: state.seen as f64 / state.train_secs.max(1e-9),
        };
        let improved = metrics.val_acc > state.best_val_acc;
        if improved {
            state.best_val_acc = metrics.val_acc;
            state.best_epoch = epoch;
            let meta = [
                ("epoch".to_string(), epoch.to_string()),
                ("val_acc".to_string(), metrics.val_acc.to_string()),
            ];
            checkpoint::save_model(
                model.as_ref(),
                &dir.file(RunDir::BEST),
                meta.into_iter().collect(),
            )?;
        }
        if metrics.val_loss < state.best_val_loss {
            state.best_val_loss = metrics.val_loss;
            state.epochs_since_val_loss_improved = 0;
        } else {
            state.epochs_since_val_loss_improved += 1;
        }
        tracing::info!(
            "epoch {epoch:>3}/{} | loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | lr {:.2e} | {:.1}s {:.0} img/s{}",
            cfg.epochs,
            metrics.train_loss,
            100.0 * metrics.train_acc,
            metrics.val_loss,
            100.0 * metrics.val_acc,
            lr,
            metrics.epoch_secs,
            metrics.train_images_per_sec,
            if improved { " | saved best" } else { "" }
        );
        state.history.epochs.push(metrics);
        state.epoch += 1;
        state.next_batch = 0;
        state.loss_sum = 0.0;
        state.correct = 0;
        state.seen = 0;
        state.epoch_secs = 0.0;
        state.train_secs = 0.0;
        if let Some(p) = cfg.patience
            && state.epochs_since_val_loss_improved >= p
        {
            tracing::info!("early stopping: validation loss has not improved for {p} epochs");
            state.stopped_early = true;
            state.finished = true;
        }
        if state.epoch > cfg.epochs {
            state.finished = true;
        }
        save_last(&dir, model.as_ref(), &opt, &state)?;
        dir.write_history(&state.history)?;
    }

    // The best model on the test set.
    checkpoint::load_into(model.as_ref(), &dir.file(RunDir::BEST))?;
    let test = Arc::new(data.test.clone());
    let report = if test.is_empty() {
        None
    } else {
        let e = evaluate(
            model.as_ref(),
            &test,
            cfg.eval_batch_size,
            cfg.augment.normalize,
            cfg.tta,
        )?;
        let report = TestReport::from_predictions(&e.predictions, e.loss, test.class_names());
        dir.write_test(&report, &e.predictions)?;
        tracing::info!(
            "test: accuracy {:.2}%, loss {:.4} (best epoch {}, val acc {:.2}%)",
            100.0 * report.accuracy,
            report.loss,
            state.best_epoch,
            100.0 * state.best_val_acc
        );
        Some(report)
    };
    Ok(outcome(&state, report, false, device_desc))
}

fn outcome(
    state: &TrainState,
    report: Option<TestReport>,
    interrupted: bool,
    device: String,
) -> Outcome {
    Outcome {
        history: state.history.clone(),
        test_report: report,
        interrupted,
        stopped_early: state.stopped_early,
        best_epoch: state.best_epoch,
        device,
    }
}

fn progress_bar(len: usize, pos: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} batches {per_sec} eta {eta} | {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar.set_position(pos as u64);
    bar
}
