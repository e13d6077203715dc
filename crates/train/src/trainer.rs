//! The step/epoch runner. What happens around the steps lives in small policies it calls: the optimizer
//! ([`crate::optim`]), the learning-rate schedule ([`crate::Schedule`]), weight averaging ([`crate::averaging`]),
//! best-model checkpointing and early stopping ([`crate::policies`]).

use crate::averaging::WeightAverage;
use crate::config::{LossReduction, OptimizerKind};
use crate::evaluate::{Tta, evaluate};
use crate::loss::cross_entropy;
use crate::optim::{Adam, AdamConfig, Optimizer, ParamGroup, Sgd, SgdConfig};
use crate::policies::{BestCheckpoint, EarlyStopping};
use crate::state::{TrainState, load_last, save_last};
use crate::{Error, Result, RunDir, TrainConfig};
use augment::{EpochPlan, Loader, batch_seed, batch_to_tensor};
use candle_core::{D, DType};
use cifar_types::{EpochMetrics, ImageSet, TestReport};
use indicatif::{ProgressBar, ProgressStyle};
use model::{Classifier, Mode, checkpoint, registry};
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

/// The images of a run. `val` may be empty (no validation: the final weights are the run's model).
#[derive(Debug, Clone)]
pub struct Data {
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub history: cifar_types::History,
    /// None when the run was interrupted before the end.
    pub test_report: Option<TestReport>,
    pub interrupted: bool,
    pub stopped_early: bool,
    pub best_epoch: usize,
    pub device: String,
}

/// Trains the registered model `cfg.model` per `cfg` into `out` (a new run directory, or an existing one with
/// `resume`), evaluates the run's model on the test set and writes every artifact. With `resume`, `cfg` must be
/// the run's own config (`RunDir::read_config`).
pub fn run(
    cfg: &TrainConfig,
    data: &Data,
    out: &Path,
    stop: &StopFlag,
    resume: bool,
) -> Result<Outcome> {
    cfg.validate()?;
    let (device, device_desc) = model::device::select(&cfg.device)?;
    model::device::prepare_cpu_threads();
    model::device::use_stock_cpu_ops(cfg.stock_ops);
    let model = registry::build(&cfg.model, &device, cfg.seed)?;
    run_model(model.as_ref(), &device_desc, cfg, data, out, stop, resume)
}

/// Trains any [`Classifier`] (one of ours or a library user's, built on the device it should train on) per
/// `cfg` (whose `model` field only names it in the run's files), as [`run`] does. `device` describes the device
/// in logs.
pub fn run_model(
    model: &dyn Classifier,
    device: &str,
    cfg: &TrainConfig,
    data: &Data,
    out: &Path,
    stop: &StopFlag,
    resume: bool,
) -> Result<Outcome> {
    cfg.validate_recipe()?;
    model::device::set_precision(cfg.precision, model.device())?;
    let (steps_per_epoch, total_steps, epochs) = cfg.steps(data.train.len());
    if steps_per_epoch == 0 {
        return Err(Error::Config(format!(
            "need at least one batch of {} training images per epoch, found {} images",
            cfg.batch_size,
            data.train.len()
        )));
    }
    let dir = RunDir::new(out);
    let mut opt = build_optimizer(cfg, model)?;
    let train = Arc::new(data.train.clone());
    let val = Arc::new(data.val.clone());
    let mut state = if resume {
        TrainState::default()
    } else {
        dir.create(cfg)?;
        init_from_data(model, &train, cfg)?;
        TrainState::default()
    };
    let mut avg = WeightAverage::new(cfg.averaging, model)?;
    if resume {
        state = load_last(&dir, model, opt.as_mut(), avg.as_mut(), model.device())?;
        tracing::info!(
            "resuming {} at epoch {}, batch {} ({} epochs done)",
            dir.path().display(),
            state.epoch,
            state.next_batch,
            state.history.epochs.len()
        );
    }
    tracing::info!(
        "training {} ({} parameters) on {device} ({} convolutions) with {}: {} train / {} val / {} test images, {total_steps} steps, preset {}",
        model.name(),
        model.params().count(),
        cfg.precision,
        opt.name(),
        train.len(),
        val.len(),
        data.test.len(),
        cfg.preset
    );
    let warmup = (cfg.warmup_epochs * steps_per_epoch as f64).round() as usize;
    let normalize = serde_json::to_string(&cfg.augment.normalize)
        .map_err(|e| Error::Config(format!("cannot serialise the normalization: {e}")))?;
    let best = BestCheckpoint::new(
        dir.file(RunDir::BEST),
        !val.is_empty(),
        vec![(crate::NORMALIZE_KEY.to_string(), normalize)],
    );
    let early = EarlyStopping {
        patience: cfg.patience,
    };

    while !state.finished && state.epoch <= epochs {
        let epoch = state.epoch;
        model.start_epoch(epoch);
        let t_epoch = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(batch_seed(
            cfg.seed ^ ORDER_SALT,
            epoch,
            0,
        )));
        let first_step = (epoch - 1) * steps_per_epoch;
        let steps_now = steps_per_epoch.min(total_steps - first_step);
        order.truncate((steps_now * cfg.batch_size).min(order.len()));
        let plan = EpochPlan {
            order,
            batch_size: cfg.batch_size,
            augment: cfg.augment,
            seed: cfg.seed,
            epoch,
            start_batch: state.next_batch,
        };
        let bar = progress_bar(steps_now, state.next_batch, epoch, epochs);
        let mut lr = opt.lr();
        let mut interrupted = false;
        for batch in Loader::spawn(train.clone(), plan, 2) {
            let b = batch?;
            let step = first_step + b.index;
            lr = cfg.schedule.lr(cfg.lr, step, total_steps, warmup);
            opt.set_lr(lr);
            let x = b.images.to_device(model.device())?;
            let y = b.labels.to_device(model.device())?;
            let mut drop_rng =
                ChaCha8Rng::seed_from_u64(batch_seed(cfg.seed ^ DROPOUT_SALT, epoch, b.index));
            let logits = model.forward(&x, Mode::Train(&mut drop_rng))?;
            let mean_loss = cross_entropy(&logits, &y, cfg.label_smoothing)?;
            let n = b.label_bytes.len() as u64;
            let loss = match cfg.loss_reduction {
                LossReduction::Mean => mean_loss.clone(),
                LossReduction::Sum => (&mean_loss * n as f64)?,
            };
            let loss_value = mean_loss.to_scalar::<f32>()?;
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
            drop(grads);
            if let Some(a) = avg.as_mut() {
                a.after_step(model, step + 1, total_steps)?;
            }
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
            save_last(&dir, model, opt.as_ref(), avg.as_ref(), &state)?;
            tracing::info!(
                "interrupted at epoch {epoch}, batch {}; {} can be resumed",
                state.next_batch,
                dir.path().display()
            );
            return Ok(outcome(&state, None, true, device));
        }
        bar.finish_and_clear();
        let last_epoch = epoch == epochs;
        if last_epoch && let Some(a) = avg.as_mut() {
            a.finish(model)?;
        }

        let (val_loss, val_acc) = if val.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            let v = evaluate(
                model,
                &val,
                cfg.eval_batch_size,
                cfg.augment.normalize,
                Tta::from_flags(cfg.tta, cfg.tta_shift),
            )?;
            (v.loss, v.accuracy)
        };
        state.epoch_secs += t_epoch.elapsed().as_secs_f64();
        let metrics = EpochMetrics {
            epoch,
            train_loss: state.loss_sum / state.seen.max(1) as f64,
            train_acc: state.correct as f64 / state.seen.max(1) as f64,
            val_loss,
            val_acc,
            lr,
            epoch_secs: state.epoch_secs,
            train_images_per_sec: state.seen as f64 / state.train_secs.max(1e-9),
        };
        let saved = best.after_epoch(model, &metrics, &mut state)?;
        let stop_now = early.after_epoch(&metrics, &mut state);
        let val_text = if val.is_empty() {
            "no validation".to_string()
        } else {
            format!(
                "val loss {:.4} acc {:.2}%",
                metrics.val_loss,
                100.0 * metrics.val_acc
            )
        };
        tracing::info!(
            "epoch {epoch:>3}/{epochs} | loss {:.4} acc {:.2}% | {val_text} | lr {:.2e} | {:.1}s {:.0} img/s{}",
            metrics.train_loss,
            100.0 * metrics.train_acc,
            lr,
            metrics.epoch_secs,
            metrics.train_images_per_sec,
            if saved { " | saved best" } else { "" }
        );
        state.history.epochs.push(metrics);
        state.epoch += 1;
        state.next_batch = 0;
        state.loss_sum = 0.0;
        state.correct = 0;
        state.seen = 0;
        state.epoch_secs = 0.0;
        state.train_secs = 0.0;
        if stop_now {
            if let Some(p) = cfg.patience {
                tracing::info!("early stopping: validation loss has not improved for {p} epochs");
            }
            state.stopped_early = true;
            state.finished = true;
        }
        if state.epoch > epochs {
            state.finished = true;
        }
        save_last(&dir, model, opt.as_ref(), avg.as_ref(), &state)?;
        dir.write_history(&state.history)?;
    }

    // The run's model on the test set.
    checkpoint::load_into(model, &dir.file(RunDir::BEST))?;
    let test = Arc::new(data.test.clone());
    let report = if test.is_empty() {
        None
    } else {
        let tta = Tta::from_flags(cfg.tta, cfg.tta_shift);
        let e = evaluate(
            model,
            &test,
            cfg.eval_batch_size,
            cfg.augment.normalize,
            tta,
        )?;
        let mut report = TestReport::from_predictions(&e.predictions, e.loss, test.class_names());
        report.tta = Some(tta.name().to_string());
        if tta != Tta::None {
            let plain = evaluate(
                model,
                &test,
                cfg.eval_batch_size,
                cfg.augment.normalize,
                Tta::None,
            )?;
            report.accuracy_without_tta = Some(plain.accuracy);
        }
        dir.write_test(&report, &e.predictions)?;
        let plain = report
            .accuracy_without_tta
            .map(|a| format!(", {:.2}% without TTA", 100.0 * a))
            .unwrap_or_default();
        let best_text = if val.is_empty() {
            "final weights, no validation".to_string()
        } else {
            format!(
                "best epoch {}, val acc {:.2}%",
                state.best_epoch,
                100.0 * state.best_val_acc
            )
        };
        tracing::info!(
            "test: accuracy {:.2}% (TTA {}{plain}), loss {:.4} ({best_text})",
            100.0 * report.accuracy,
            tta.name(),
            report.loss,
        );
        Some(report)
    };
    Ok(outcome(&state, report, false, device))
}

/// The optimizer the config names, over the model's parameters (SGD: normalisation parameters in their own group).
pub(crate) fn build_optimizer(
    cfg: &TrainConfig,
    model: &dyn Classifier,
) -> Result<Box<dyn Optimizer>> {
    Ok(match cfg.optimizer {
        OptimizerKind::Adam => Box::new(Adam::new(
            model.params().iter(),
            AdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::Sgd => {
            let (norm, other): (Vec<_>, Vec<_>) = model
                .params()
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .partition(|(n, _)| model.is_norm_param(n));
            let groups = vec![
                ParamGroup {
                    params: norm,
                    lr_scale: cfg.norm_lr_scale,
                    weight_decay: cfg.weight_decay / cfg.norm_lr_scale,
                },
                ParamGroup {
                    params: other,
                    lr_scale: 1.0,
                    weight_decay: cfg.weight_decay,
                },
            ];
            Box::new(Sgd::new(
                groups,
                SgdConfig {
                    lr: cfg.lr,
                    momentum: cfg.momentum,
                    nesterov: cfg.nesterov,
                },
            )?)
        }
    })
}

/// Runs the model's data-dependent initialisation on the first `model.init_images()` training images, normalized
/// as the run normalizes.
fn init_from_data(model: &dyn Classifier, train: &ImageSet, cfg: &TrainConfig) -> Result<()> {
    let n = model.init_images().min(train.len());
    if n == 0 {
        return Ok(());
    }
    let t = Instant::now();
    let idx: Vec<usize> = (0..n).collect();
    let aug = augment::Augment {
        normalize: cfg.augment.normalize,
        ..augment::Augment::none()
    };
    let batch = batch_to_tensor(train, &idx, &aug, 0, model.device())?;
    model.init_from_data(&batch.images)?;
    tracing::info!(
        "data-dependent initialisation from {n} training images in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn outcome(
    state: &TrainState,
    report: Option<TestReport>,
    interrupted: bool,
    device: &str,
) -> Outcome {
    Outcome {
        history: state.history.clone(),
        test_report: report,
        interrupted,
        stopped_early: state.stopped_early,
        best_epoch: state.best_epoch,
        device: device.to_string(),
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
