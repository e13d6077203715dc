//! The airbench94 network on this project's CPU kernels against the same network on candle's stock ops (its own
//! test binary: the switch is process-wide).

use candle_core::{Device, Tensor};
use model::{AirBench94, Classifier, Mode};
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
fn run(fast: bool) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    cpu_ops::set_enabled(fast);
    let m = AirBench94::with_widths(&Device::Cpu, 3, [8, 16, 16]).unwrap();
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
    cpu_ops::set_enabled(true);
    (values, g)
}

#[test]
fn fast_kernels_match_stock_ops_in_training_and_evaluation() {
    let (fast, fast_g) = run(true);
    let (stock, stock_g) = run(false);
    for (i, (a, b)) in fast.iter().zip(&stock).enumerate() {
        assert_close(&format!("value {i}"), a, b, 2e-4);
    }
    for (i, (a, b)) in fast_g.iter().zip(&stock_g).enumerate() {
        assert_close(&format!("gradient {i}"), a, b, 2e-4);
    }
}
