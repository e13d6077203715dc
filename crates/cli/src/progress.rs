//! The binary's view of a training run: a progress bar per epoch and the log lines (start, epochs, test result),
//! as a `train::Callback`; and the Ctrl-C handler that asks the run to stop.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use train::{Callback, Control, EpochEnd, Outcome, RunStart, StepEnd, StopFlag};

/// Draws the epoch's progress bar (on stderr, hidden when it is not a terminal) and logs each epoch.
#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
    dir: Option<std::path::PathBuf>,
    patience: Option<usize>,
}

impl Progress {
    /// A callback for a run with early-stopping `patience` (named in the early-stop line).
    pub fn new(patience: Option<usize>) -> Self {
        Progress {
            patience,
            ..Progress::default()
        }
    }
}

impl Callback for Progress {
    fn on_start(&mut self, r: &RunStart<'_>) {
        self.dir = r.dir.map(Path::to_path_buf);
        if let (Some((epoch, batch)), Some(dir)) = (r.resumed_at, r.dir) {
            tracing::info!("resuming {} at epoch {epoch}, batch {batch}", dir.display());
        }
        tracing::info!(
            "training {} ({} parameters) on {} ({} convolutions) with {}: {} train / {} val / {} test images, {} steps, preset {}",
            r.model,
            r.parameters,
            r.device,
            r.precision,
            r.optimizer,
            r.train_images,
            r.val_images,
            r.test_images,
            r.total_steps,
            r.preset
        );
    }

    fn on_epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize, first_batch: usize) {
        let bar = ProgressBar::new(batches as u64);
        let style = ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} batches {per_sec} eta {eta} | {msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.set_position(first_batch as u64);
        self.bar = Some(bar);
    }

    fn on_step(&mut self, s: &StepEnd) -> Control {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}%",
                s.epoch_loss,
                100.0 * s.epoch_accuracy
            ));
        }
        Control::Continue
    }

    fn on_epoch_end(&mut self, e: &EpochEnd<'_>) -> Control {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let m = e.metrics;
        let val_text = if m.val_loss.is_nan() {
            "no validation".to_string()
        } else {
            format!("val loss {:.4} acc {:.2}%", m.val_loss, 100.0 * m.val_acc)
        };
        tracing::info!(
            "epoch {:>3}/{} | loss {:.4} acc {:.2}% | {val_text} | lr {:.2e} | {:.1}s {:.0} img/s{}",
            m.epoch,
            e.epochs,
            m.train_loss,
            100.0 * m.train_acc,
            m.lr,
            m.epoch_secs,
            m.train_images_per_sec,
            if e.saved_best { " | saved best" } else { "" }
        );
        if e.stopping_early
            && let Some(p) = self.patience
        {
            tracing::info!("early stopping: validation loss has not improved for {p} epochs");
        }
        Control::Continue
    }

    fn on_finish(&mut self, o: &Outcome) {
        if let Some(bar) = self.bar.take() {
            bar.abandon_with_message("interrupted");
        }
        if o.interrupted {
            if let Some(dir) = &self.dir {
                tracing::info!("interrupted; {} can be resumed", dir.display());
            }
            return;
        }
        let Some(r) = &o.test_report else {
            return;
        };
        let plain = r
            .accuracy_without_tta
            .map(|a| format!(", {:.2}% without TTA", 100.0 * a))
            .unwrap_or_default();
        let best = if o.best_val_acc.is_nan() {
            "final weights, no validation".to_string()
        } else {
            format!(
                "best epoch {}, val acc {:.2}%",
                o.best_epoch,
                100.0 * o.best_val_acc
            )
        };
        let top5 = r
            .top5_accuracy
            .map(|a| format!(", top-5 {:.2}%", 100.0 * a))
            .unwrap_or_default();
        tracing::info!(
            "test: accuracy {:.2}% (TTA {}{plain}){top5}, loss {:.4} ({best})",
            100.0 * r.accuracy,
            o.tta,
            r.loss,
        );
    }
}

/// Asks `stop` to stop the run on Ctrl-C (once per process); a second Ctrl-C exits at once.
pub fn install_ctrl_c(stop: &StopFlag) -> anyhow::Result<()> {
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.is_requested() {
            // A second Ctrl-C: the user insists.
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current batch (Ctrl-C again to abort now)...");
        flag.request();
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))
}
