//! CPU-vs-CUDA parity of every registered model: the same seed and batch through the evaluation forward pass and
//! one training step (forward in training mode, cross-entropy, backward) on the CPU and on CUDA device 0, comparing
//! logits, loss, every parameter's gradient and every buffer within float tolerances.
//!
//! Compiled only with `--features cuda`; where no CUDA device opens (a CUDA build on a machine without a GPU) each
//! test says so on stderr and passes without checking. Run it on a GPU machine with
//! `cargo test --release -p cifar10-model --features cuda --test cuda -- --nocapture` (docs/cuda.md); the printed
//! errors are the measured figures.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor};
use cifar10_model::{Classifier, Mode, registry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative L2 error of `got` against `want`: ‖got − want‖ / ‖want‖ (want on any device).
fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("tensor to host")
    };
    let (g, w) = (flat(got), flat(want));
    assert_eq!(g.len(), w.len(), "element counts differ");
    assert!(g.iter().all(|v| v.is_finite()), "non-finite value on CUDA");
    let num: f64 = g.iter().zip(&w).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = w.iter().map(|b| b * b).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

fn cuda_or_skip() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: CUDA device 0 does not open ({e})");
            None
        }
    }
}

/// Normal-ish images (sum of uniforms) and labels from a seed: never zeros, the same on every run.
fn batch(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * 3 * 32 * 32)
        .map(|_| (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0)
        .collect();
    let y = (0..n).map(|_| rng.random_range(0..10u32)).collect();
    (x, y)
}

struct Pass {
    eval_logits: Tensor,
    train_logits: Tensor,
    loss: Tensor,
    grads: Vec<(String, Tensor)>,
    buffers: Vec<(String, Tensor)>,
}

fn pass(name: &str, device: &Device, x: &[f32], y: &[u32]) -> Pass {
    let n = y.len();
    let model: Box<dyn Classifier> = registry::build(name, device, 7, 10).expect("build");
    let images = Tensor::from_slice(x, (n, 3, 32, 32), device).expect("images");
    let labels = Tensor::from_slice(y, n, device).expect("labels");
    if model.init_images() > 0 {
        model.init_from_data(&images).expect("init_from_data");
    }
    let eval_logits = model.forward(&images, Mode::Eval).expect("eval forward");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let train_logits = model
        .forward(&images, Mode::Train(&mut rng))
        .expect("train forward");
    let loss = candle_nn::loss::cross_entropy(&train_logits, &labels).expect("loss");
    let store = loss.backward().expect("backward");
    let grads = model
        .params()
        .iter()
        .map(|(p, v)| {
            let g = store
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {p}"));
            (p.to_string(), g.clone())
        })
        .collect();
    Pass {
        eval_logits,
        train_logits,
        loss,
        grads,
        buffers: model.buffers().tensors(),
    }
}

fn check(name: &str) {
    let Some(gpu) = cuda_or_skip() else { return };
    let (x, y) = batch(64, 3);
    let cpu = pass(name, &Device::Cpu, &x, &y);
    let cuda = pass(name, &gpu, &x, &y);
    assert!(
        cuda.eval_logits.device().is_cuda(),
        "{name}: logits not on CUDA"
    );
    let report = |what: &str, e: f64, tol: f64| {
        println!("{name}: {what}: relative error {e:.2e} (tolerance {tol:.0e})");
        assert!(
            e <= tol,
            "{name}: {what}: relative error {e:.3e} over {tol:.0e}"
        );
    };
    report(
        "eval logits",
        rel_err(&cuda.eval_logits, &cpu.eval_logits),
        1e-4,
    );
    report(
        "train logits",
        rel_err(&cuda.train_logits, &cpu.train_logits),
        1e-4,
    );
    report("loss", rel_err(&cuda.loss, &cpu.loss), 1e-5);
    let mut grad_worst = (String::new(), 0f64);
    for ((p, g_cuda), (_, g_cpu)) in cuda.grads.iter().zip(&cpu.grads) {
        let e = rel_err(g_cuda, g_cpu);
        if e >= grad_worst.1 {
            grad_worst = (p.clone(), e);
        }
        assert!(
            e <= 1e-3,
            "{name}: gradient of {p}: relative error {e:.3e} over 1e-3"
        );
    }
    println!(
        "{name}: gradients of {} parameters: largest relative error {:.2e} ({}; tolerance 1e-3)",
        cpu.grads.len(),
        grad_worst.1,
        grad_worst.0
    );
    for ((b, t_cuda), (_, t_cpu)) in cuda.buffers.iter().zip(&cpu.buffers) {
        report(&format!("buffer {b}"), rel_err(t_cuda, t_cpu), 1e-4);
    }
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
