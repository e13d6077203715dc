//! Every registered model on the fallback ops (candle's ops with this crate's gradients: what a CUDA run computes,
//! `KernelConfig::with_fallback_ops`) against the same model on the CPU kernels: one training step from the same
//! seed and batch. The CPU half of the CUDA parity test (`cuda.rs`), which runs where there is no GPU.

mod common;

use candle_core::Device;
use cifar10_model::{KernelConfig, registry};
use common::{assert_same_step, batch, pass};

#[test]
fn every_model_trains_the_same_on_the_fallback_ops() {
    let (x, y) = batch(8, 3);
    let kernels = KernelConfig::default();
    for spec in registry::MODELS {
        let want = pass(spec.name, &Device::Cpu, kernels, &x, &y);
        let got = pass(
            spec.name,
            &Device::Cpu,
            kernels.with_fallback_ops(true),
            &x,
            &y,
        );
        assert_same_step(spec.name, &got, &want);
    }
}

/// The stock ops are not the fallback: candle's own max-pool backward gives a window's maximum a quarter of the
/// gradient, so a pooled model's gradients differ (what `fallback_ops` exists to avoid).
#[test]
fn the_stock_ops_train_another_function() {
    let (x, y) = batch(4, 5);
    let want = pass("lenet5", &Device::Cpu, KernelConfig::default(), &x, &y);
    let stock = pass("lenet5", &Device::Cpu, KernelConfig::stock(), &x, &y);
    let e = common::rel_err(&stock.grads[0].1, &want.grads[0].1);
    assert!(
        e > 0.1,
        "lenet5's first gradient on the stock ops: relative error {e:.3e}"
    );
}
