//! Shared by the parity tests (`fallback.rs` on every machine, `cuda.rs` on a GPU): one training step of a
//! registered model on a device with kernel settings, and the comparison of two such steps.
#![allow(dead_code)] // each test binary uses its own subset of the helpers

use candle_core::{DType, Device, Tensor};
use cifar10_model::{Classifier, KernelConfig, Mode, registry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative L2 error of `got` against `want`: ‖got − want‖ / ‖want‖ (either on any device).
pub fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("tensor to host")
    };
    let (g, w) = (flat(got), flat(want));
    assert_eq!(g.len(), w.len(), "element counts differ");
    assert!(g.iter().all(|v| v.is_finite()), "non-finite value");
    let num: f64 = g.iter().zip(&w).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = w.iter().map(|b| b * b).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Normal-ish images (sums of uniforms) and labels from a seed: never zeros, the same on every run.
pub fn batch(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * 3 * 32 * 32)
        .map(|_| (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0)
        .collect();
    let y = (0..n).map(|_| rng.random_range(0..10u32)).collect();
    (x, y)
}

/// What one step of a model gives: logits in both modes, the loss, every parameter's gradient, the buffers after.
pub struct Pass {
    pub eval_logits: Tensor,
    pub train_logits: Tensor,
    pub loss: Tensor,
    pub grads: Vec<(String, Tensor)>,
    pub buffers: Vec<(String, Tensor)>,
}

/// Model `name` built from seed 7 on `device` with `kernels`, its data-dependent init from the batch, then the
/// evaluation forward, the training forward (dropout from seed 11), cross-entropy and backward.
pub fn pass(name: &str, device: &Device, kernels: KernelConfig, x: &[f32], y: &[u32]) -> Pass {
    let n = y.len();
    let mut model: Box<dyn Classifier> = registry::build(name, device, 7, 10).expect("build");
    model.set_kernels(kernels).expect("kernels");
    let images = Tensor::from_slice(x, (n, 3, 32, 32), device).expect("images");
    let labels = Tensor::from_slice(y, n, device).expect("labels");
    if model.init_images() > 0 {
        model.init_from_data(&images).expect("init_from_data");
    }
    model.start_epoch(1);
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

/// Asserts that `got` computed what `want` did, printing each relative error: logits and buffers within 1e-4,
/// the loss within 1e-5, every gradient within 1e-3.
pub fn assert_same_step(name: &str, got: &Pass, want: &Pass) {
    let report = |what: &str, e: f64, tol: f64| {
        println!("{name}: {what}: relative error {e:.2e} (tolerance {tol:.0e})");
        assert!(
            e <= tol,
            "{name}: {what}: relative error {e:.3e} over {tol:.0e}"
        );
    };
    report(
        "eval logits",
        rel_err(&got.eval_logits, &want.eval_logits),
        1e-4,
    );
    report(
        "train logits",
        rel_err(&got.train_logits, &want.train_logits),
        1e-4,
    );
    report("loss", rel_err(&got.loss, &want.loss), 1e-5);
    assert_eq!(
        got.grads.len(),
        want.grads.len(),
        "{name}: parameter counts"
    );
    let mut worst = (String::new(), 0f64);
    for ((p, g), (_, w)) in got.grads.iter().zip(&want.grads) {
        let e = rel_err(g, w);
        if e >= worst.1 {
            worst = (p.clone(), e);
        }
        assert!(
            e <= 1e-3,
            "{name}: gradient of {p}: relative error {e:.3e} over 1e-3"
        );
    }
    println!(
        "{name}: gradients of {} parameters: largest relative error {:.2e} ({}; tolerance 1e-3)",
        want.grads.len(),
        worst.1,
        worst.0
    );
    assert_eq!(
        got.buffers.len(),
        want.buffers.len(),
        "{name}: buffer counts"
    );
    for ((b, g), (_, w)) in got.buffers.iter().zip(&want.buffers) {
        report(&format!("buffer {b}"), rel_err(g, w), 1e-4);
    }
}
