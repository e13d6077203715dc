use crate::{Error, Result, TrainConfig};
use cifar_types::{History, Predictions, TestReport, atomic, run_files};
use std::path::{Path, PathBuf};

/// The files of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// `config.json`: the run's [`TrainConfig`].
    pub const CONFIG: &'static str = run_files::CONFIG;
    /// `history.json`: every finished epoch's metrics.
    pub const HISTORY: &'static str = run_files::HISTORY;
    /// `metrics.csv`: the same metrics, one row per epoch.
    pub const METRICS: &'static str = run_files::METRICS;
    /// `best.safetensors`: the run's model (chosen by the checkpoint policy) with its metadata.
    pub const BEST: &'static str = run_files::BEST;
    /// `last.safetensors`: weights, buffers, optimizer state, weight average and training state, to resume from.
    pub const LAST: &'static str = run_files::LAST;
    /// `test_report.json`: the run's model evaluated on the test set.
    pub const TEST_REPORT: &'static str = run_files::TEST_REPORT;
    /// `predictions.json`: every test image's class probabilities.
    pub const PREDICTIONS: &'static str = run_files::PREDICTIONS;

    /// The run directory at `path` (nothing is read or created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the file `name` in the directory, e.g. `file(RunDir::BEST)`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Checks that a new run can go here: no run present, the directory can be created and written to.
    pub fn prepare_new(&self) -> Result<()> {
        let err = |reason: String| Error::OutDir {
            path: self.path.clone(),
            reason,
        };
        if self.file(Self::CONFIG).exists() || self.file(Self::LAST).exists() {
            return Err(err(
                "already holds a run (config.json or last.safetensors): resume it or choose another directory"
                    .into(),
            ));
        }
        std::fs::create_dir_all(&self.path)
            .map_err(|e| err(format!("cannot create the run directory: {e}")))?;
        tempfile::tempfile_in(&self.path)
            .map_err(|e| err(format!("cannot write into the run directory: {e}")))?;
        Ok(())
    }

    /// Prepares the directory for a new run ([`RunDir::prepare_new`]) and writes `config.json`.
    pub fn create(&self, cfg: &TrainConfig) -> Result<()> {
        self.prepare_new()?;
        atomic::write_json(&self.file(Self::CONFIG), cfg)?;
        Ok(())
    }

    /// Reads `config.json` (of any version: see [`TrainConfig::from_json`]).
    pub fn read_config(&self) -> Result<TrainConfig> {
        let path = self.file(Self::CONFIG);
        let text =
            std::fs::read_to_string(&path).map_err(|e| cifar_types::Error::io(path.clone(), e))?;
        Ok(TrainConfig::from_json(&text)
            .map_err(|source| cifar_types::Error::Json { path, source })?)
    }

    /// Writes `history.json` and `metrics.csv` (one row per epoch).
    pub fn write_history(&self, history: &History) -> Result<()> {
        atomic::write_json(&self.file(Self::HISTORY), history)?;
        atomic::write_with(&self.file(Self::METRICS), |w| {
            writeln!(
                w,
                "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_secs,train_images_per_sec"
            )?;
            for e in &history.epochs {
                writeln!(
                    w,
                    "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.3},{:.1}",
                    e.epoch,
                    e.train_loss,
                    e.train_acc,
                    e.val_loss,
                    e.val_acc,
                    e.lr,
                    e.epoch_secs,
                    e.train_images_per_sec
                )?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Reads `history.json`.
    pub fn read_history(&self) -> Result<History> {
        Ok(atomic::read_json(&self.file(Self::HISTORY))?)
    }

    /// Writes `test_report.json` and `predictions.json`, each atomically.
    pub fn write_test(&self, report: &TestReport, predictions: &Predictions) -> Result<()> {
        atomic::write_json(&self.file(Self::TEST_REPORT), report)?;
        atomic::write_json(&self.file(Self::PREDICTIONS), predictions)?;
        Ok(())
    }
}
