//! CPU-vs-CUDA parity of every registered model: the same seed and batch through the evaluation forward pass and
//! one training step (forward in training mode, cross-entropy, backward) on the CPU kernels and on CUDA device 0,
//! comparing logits, loss, every parameter's gradient and every buffer within float tolerances
//! (`common::assert_same_step`). `fallback.rs` checks the same ops choice on the CPU, where there is no GPU.
//!
//! Compiled only with `--features cuda`; where no CUDA device opens (a CUDA build on a machine without a GPU) each
//! test says so on stderr and passes without checking. Run it on a GPU machine with
//! `cargo test --release -p cifar10-model --features cuda --test cuda -- --nocapture` (or `bench/gpu_check.sh`,
//! docs/cuda.md); the printed errors are the measured figures.
#![cfg(feature = "cuda")]

mod common;

use candle_core::Device;
use cifar10_model::{KernelConfig, registry};
use common::{assert_same_step, batch, pass};

fn cuda_or_skip() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: CUDA device 0 does not open ({e})");
            None
        }
    }
}

fn check(name: &str) {
    let Some(gpu) = cuda_or_skip() else { return };
    let (x, y) = batch(64, 3);
    let kernels = KernelConfig::default();
    let cpu = pass(name, &Device::Cpu, kernels, &x, &y);
    let cuda = pass(name, &gpu, kernels, &x, &y);
    assert!(
        cuda.eval_logits.device().is_cuda(),
        "{name}: logits not on CUDA"
    );
    assert_same_step(name, &cuda, &cpu);
}

#[test]
fn cnn_dnn_matches_cpu() {
    check("cnn-dnn");
}

#[test]
fn airbench94_matches_cpu() {
    check("airbench94");
}

#[test]
fn mlp_matches_cpu() {
    check("mlp");
}

#[test]
fn lenet5_matches_cpu() {
    check("lenet5");
}

#[test]
fn every_registered_model_is_covered() {
    let names: Vec<&str> = registry::MODELS.iter().map(|m| m.name).collect();
    assert_eq!(names, ["cnn-dnn", "airbench94", "mlp", "lenet5"]);
}
