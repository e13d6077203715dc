//! The airbench94 network on this project's CPU kernels against the same network on candle's stock ops, and
//! models with different kernel settings in one process, interleaved on threads.

use candle_core::{Device, Tensor};
use cifar10_model::{AirBench94, Classifier, KernelConfig, Mode, Precision};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale;
    assert!(err < tol, "{what}: relative error {err}");
}

/// Train-mode logits, the running statistics they leave, eval-mode logits, and the gradients of the parameters
/// downstream of every max-pool (candle's own max-pool backward scales a window's gradient by its number of
/// maxima / 4, unlike PyTorch and these kernels, so gradients that pass through a pool are compared per op in
/// `cpu-ops`' tests instead).
fn run(kernels: KernelConfig) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut m = AirBench94::with_widths(&Device::Cpu, 3, [8, 16, 16], 10).unwrap();
    m.set_kernels(kernels).unwrap();
    assert_eq!(m.kernels(), kernels);
    let x = random(&[6, 3, 32, 32], 1);
    m.init_from_data(&x).unwrap();
    m.start_epoch(1);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let logits = m.forward(&x, Mode::Train(&mut rng)).unwrap();
    let r = random(&[6, 10], 2);
    let grads = (&logits * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut values = vec![flat(&logits)];
    for (name, v) in m.buffers().iter() {
        if name.contains("running") {
            values.push(flat(v.as_tensor()));
        }
    }
    values.push(flat(&m.forward(&x, Mode::Eval).unwrap()));
    let mut g = Vec::new();
    for name in ["7.weight", "4.norm2.bias", "4.conv2.weight", "4.norm1.bias"] {
        let v = m.params().get(name).unwrap();
        g.push(flat(grads.get(v.as_tensor()).unwrap()));
    }
    // The whitening bias receives a gradient in the first three epochs on both paths.
    assert!(
        grads
            .get(m.params().get("0.bias").unwrap().as_tensor())
            .is_some()
    );
    (values, g)
}

#[test]
fn fast_kernels_match_stock_ops_in_training_and_evaluation() {
    let (fast, fast_g) = run(KernelConfig::default());
    let (stock, stock_g) = run(KernelConfig::stock());
    for (i, (a, b)) in fast.iter().zip(&stock).enumerate() {
        assert_close(&format!("value {i}"), a, b, 2e-4);
    }
    for (i, (a, b)) in fast_g.iter().zip(&stock_g).enumerate() {
        assert_close(&format!("gradient {i}"), a, b, 2e-4);
    }
}

/// Two models with different kernel settings (f32 and bf16 where the CPU has AVX512-BF16; the kernels and candle's
/// stock ops everywhere) trained and evaluated at once on threads, several rounds interleaved: each gives exactly
/// the numbers of its own run alone. Under process-wide switches one model's passes would take the other's.
#[test]
fn models_with_different_settings_in_one_process_keep_their_own_numbers() {
    let mut settings = vec![KernelConfig::default(), KernelConfig::stock()];
    if let Ok(bf16) = KernelConfig::default().with_precision(Precision::Bf16) {
        settings.push(bf16);
    }
    let alone: Vec<_> = settings.iter().map(|&k| run(k)).collect();
    for (i, a) in alone.iter().enumerate().skip(1) {
        assert_ne!(
            a.0[0], alone[0].0[0],
            "settings {i} gave the default's logits"
        );
    }
    std::thread::scope(|s| {
        for (&k, want) in settings.iter().zip(&alone) {
            s.spawn(move || {
                for round in 0..4 {
                    assert!(run(k) == *want, "{k:?}, round {round}: the numbers changed");
                }
            });
        }
    });
}
