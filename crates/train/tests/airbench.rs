//! The airbench94 recipe's machinery on a small airbench network (narrow widths) and synthetic data: a run without
//! validation that learns, exact resume (SGD momentum, Lookahead average, BatchNorm buffers), a library model
//! trained through `run_model`.

mod common;

use candle_core::Device;
use cifar10_train::{Data, RunDir, StopFlag, TrainConfig, run_model};
use model::{AirBench94, Classifier};

fn small() -> AirBench94 {
    AirBench94::with_widths(&Device::Cpu, 5, [8, 16, 16], 10).unwrap()
}

/// The airbench94 preset scaled down: batch 64, 2.5 epochs, everything else as the recipe.
fn recipe() -> TrainConfig {
    let mut c = TrainConfig::preset("airbench94").unwrap();
    c.batch_size = 64;
    c.epochs = 3;
    c.fractional_epochs = Some(2.5);
    c.device = "cpu".into();
    c.eval_batch_size = 100;
    // Per-example rates of the recipe are tuned for 1024-image batches; scale to 64 (lr·batch is what matters).
    c.lr *= 4.0;
    c
}

fn data() -> Data {
    Data {
        train: common::synthetic(448, 1),
        val: common::synthetic(0, 2),
        test: common::synthetic(200, 3),
    }
}

#[test]
fn learns_without_validation_and_reports_both_accuracies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab");
    let cfg = recipe();
    let m = small();
    let o = run_model(&m, "cpu", &cfg, &data(), &out, &StopFlag::default(), false).unwrap();
    let h = &o.history.epochs;
    // 448 images, batch 64, drop_last: 7 steps per epoch; 2.5 epochs = 18 steps over 3 epochs.
    assert_eq!(h.len(), 3);
    assert!(h.iter().all(|e| e.val_acc.is_nan() && e.val_loss.is_nan()));
    assert!(h[2].train_loss < h[0].train_loss, "{h:?}");
    let r = o.test_report.unwrap();
    assert_eq!(r.tta.as_deref(), Some("mirror+shift"));
    let plain = r.accuracy_without_tta.unwrap();
    assert!(r.accuracy > 0.3 && plain > 0.3, "{} {plain}", r.accuracy);
    // The run's model is the final (averaged) weights, saved as best after the last epoch.
    assert_eq!(o.best_epoch, 3);
    let hist = RunDir::new(&out).read_history().unwrap();
    assert!(hist.best().is_none());
    let meta = model::checkpoint::read(&out.join(RunDir::BEST), &Device::Cpu)
        .unwrap()
        .metadata;
    assert!(
        meta[cifar10_train::NORMALIZE_KEY].contains("0.4914"),
        "{meta:?}"
    );
}

#[test]
fn resume_equals_uninterrupted_with_sgd_lookahead_and_batchnorm() {
    let cfg = recipe();
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let whole = run_model(
        &small(),
        "cpu",
        &cfg,
        &data,
        &dir.path().join("a"),
        &StopFlag::default(),
        false,
    )
    .unwrap();
    let out = dir.path().join("b");
    let stop = StopFlag::default();
    stop.request();
    let first = run_model(&small(), "cpu", &cfg, &data, &out, &stop, false).unwrap();
    assert!(first.interrupted);
    let second = run_model(&small(), "cpu", &cfg, &data, &out, &stop, true).unwrap();
    assert!(second.interrupted);
    let done = run_model(
        &small(),
        "cpu",
        &cfg,
        &data,
        &out,
        &StopFlag::default(),
        true,
    )
    .unwrap();
    let key = |h: &cifar_types::History| -> Vec<(usize, u64, u64, u64)> {
        h.epochs
            .iter()
            .map(|e| {
                (
                    e.epoch,
                    e.train_loss.to_bits(),
                    e.train_acc.to_bits(),
                    e.lr.to_bits(),
                )
            })
            .collect()
    };
    assert_eq!(key(&whole.history), key(&done.history));
    assert_eq!(whole.test_report, done.test_report);
}

/// A model the registry does not know trains through `run_model` (a library user's model).
struct Linear {
    params: model::Params,
    w: candle_core::Var,
    device: Device,
}

impl Classifier for Linear {
    fn name(&self) -> &'static str {
        "user-linear"
    }
    fn forward(
        &self,
        x: &candle_core::Tensor,
        _mode: model::Mode<'_>,
    ) -> model::Result<candle_core::Tensor> {
        let x = x.flatten_from(1)?;
        Ok(x.matmul(&self.w.as_tensor().t()?)?)
    }
    fn params(&self) -> &model::Params {
        &self.params
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn num_classes(&self) -> usize {
        self.w.dims()[0]
    }
}

#[test]
fn a_user_model_trains_through_run_model() {
    let w = candle_core::Var::zeros((10, 3072), candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut params = model::Params::default();
    params.push("w", w.clone());
    let m = Linear {
        params,
        w,
        device: Device::Cpu,
    };
    let cfg = TrainConfig {
        model: "user-linear".into(),
        epochs: 2,
        batch_size: 32,
        device: "cpu".into(),
        ..TrainConfig::default()
    };
    // `validate` knows only registered models; `run_model` checks the recipe alone.
    assert!(cfg.validate().is_err());
    let dir = tempfile::tempdir().unwrap();
    let o = run_model(
        &m,
        "cpu",
        &cfg,
        &common::data(),
        &dir.path().join("u"),
        &StopFlag::default(),
        false,
    )
    .unwrap();
    assert!(o.test_report.unwrap().accuracy > 0.5);
}
