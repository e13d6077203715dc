//! Whole short runs of the three recipes with the model on the fallback ops (candle's ops with the kernels'
//! gradients: what a CUDA run computes, `KernelConfig::with_fallback_ops`) against the same runs on the CPU
//! kernels: the CPU half of `cuda.rs`'s recipe runs, on every machine. (The optimizers' device paths, the other
//! half of a CUDA run, are checked against their host paths in their unit tests.)

mod common;

use candle_core::Device;
use cifar10_train::{StopFlag, TrainConfig, run_model};
use model::{AirBench94, Classifier, CnnDnn, KernelConfig};

/// Per-epoch train losses and the test accuracy of `cfg` on the synthetic task, the model on `kernels`.
fn run(cfg: &TrainConfig, kernels: KernelConfig) -> (Vec<f64>, f64) {
    let mut net: Box<dyn Classifier> = if cfg.model == AirBench94::NAME {
        Box::new(AirBench94::with_widths(&Device::Cpu, cfg.seed, [8, 16, 16], 10).unwrap())
    } else {
        Box::new(CnnDnn::new(&Device::Cpu, cfg.seed, 10).unwrap())
    };
    net.set_kernels(kernels).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = run_model(
        net.as_ref(),
        "cpu",
        cfg,
        &common::data(),
        &dir.path().join("run"),
        &StopFlag::default(),
        false,
    )
    .unwrap();
    let acc = o.test_report.map(|r| r.accuracy).unwrap();
    (o.history.epochs.iter().map(|e| e.train_loss).collect(), acc)
}

/// The runs agree: each epoch's train loss within `loss_tol` (relative) and, with `acc_tol`, the test accuracy.
fn check(name: &str, cfg: TrainConfig, loss_tol: f64, acc_tol: Option<f64>) {
    let want = run(&cfg, KernelConfig::default());
    let got = run(&cfg, KernelConfig::default().with_fallback_ops(true));
    println!(
        "{name}: train loss per epoch kernels {:.6?} fallback {:.6?}; test accuracy {} / {}",
        want.0, got.0, want.1, got.1
    );
    common::assert_runs_agree(name, &got, &want, loss_tol, acc_tol);
}

#[test]
fn reference_recipe_trains_the_same_on_the_fallback_ops() {
    // Adam is scale-free and turns rounding-level differences at (near-)zero gradients into whole steps, so on
    // this small task any two summation orders drift apart within a few epochs (the CPU kernels with and without
    // Winograd: 0.05% after one epoch, 2.5% after two; measured 2026-12-05): one epoch, 1%.
    check("reference", common::tiny_config(1), 1e-2, None);
}

#[test]
fn airbench94_recipe_trains_the_same_on_the_fallback_ops() {
    // SGD: the same losses to 6 digits (measured).
    check(
        "airbench94",
        common::short_recipe("airbench94", 2),
        1e-4,
        Some(0.02),
    );
}

#[test]
fn airbench94_muon_recipe_trains_the_same_on_the_fallback_ops() {
    // Newton-Schulz amplifies rounding a little: 6e-4 apart after two epochs (measured).
    check(
        "airbench94-muon",
        common::short_recipe("airbench94-muon", 2),
        3e-3,
        Some(0.02),
    );
}
