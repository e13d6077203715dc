//! The airbench94 network: shapes, names, initialisation, whitening, BatchNorm buffers, checkpoints.

use candle_core::{DType, Device, Tensor};
use cifar10_model::{AirBench94, Classifier, Mode, checkpoint, registry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Smooth, correlated images (neighbouring pixels and channels alike), normalized-looking values.
fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = vec![0f32; n * 3 * 32 * 32];
    for img in v.chunks_exact_mut(3 * 1024) {
        let (a, b, c) = (
            rng.random_range(-1.0f32..1.0),
            rng.random_range(-0.3f32..0.3),
            rng.random_range(0.0f32..6.0),
        );
        for ch in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let noise = rng.random_range(-0.2f32..0.2);
                    img[ch * 1024 + y * 32 + x] =
                        a + b * ch as f32 + ((x + y) as f32 / 8.0 + c).sin() * 0.5 + noise;
                }
            }
        }
    }
    Tensor::from_vec(v, (n, 3, 32, 32), &Device::Cpu).unwrap()
}

fn vec1(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn shapes_names_and_counts() {
    let m = AirBench94::new(&Device::Cpu, 0, 10).unwrap();
    // Trainable: conv weights, BatchNorm biases, whitening bias, head — as PyTorch's requires_grad count.
    assert_eq!(m.params().count(), 1_971_352);
    assert_eq!(m.buffers().count(), 288 + 1152 + 2 * 1152);
    let names: Vec<&str> = m.params().iter().map(|(n, _)| n).collect();
    assert_eq!(names.first(), Some(&"0.bias"));
    assert_eq!(names.last(), Some(&"7.weight"));
    for n in [
        "2.conv1.weight",
        "2.norm1.bias",
        "4.conv2.weight",
        "4.norm2.bias",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let bufs: Vec<&str> = m.buffers().iter().map(|(n, _)| n).collect();
    for n in [
        "0.weight",
        "2.norm1.weight",
        "3.norm2.running_mean",
        "4.norm1.running_var",
    ] {
        assert!(bufs.contains(&n), "{n}");
    }
    assert!(m.is_norm_param("3.norm1.bias") && !m.is_norm_param("3.conv1.weight"));
    let y = m.forward(&images(2, 1), Mode::Eval).unwrap();
    assert_eq!(y.dims(), &[2, 10]);
    assert!(registry::names().contains(&"airbench94"));
}

#[test]
fn conv_init_is_dirac_on_the_first_input_channels() {
    let m = AirBench94::new(&Device::Cpu, 3, 10).unwrap();
    let w = m
        .params()
        .get("2.conv1.weight")
        .unwrap()
        .as_tensor()
        .clone();
    assert_eq!(w.dims(), &[64, 24, 3, 3]);
    let v = vec1(&w);
    for o in 0..24 {
        for i in 0..24 {
            for k in 0..9 {
                let want = if i == o && k == 4 { 1.0 } else { 0.0 };
                assert_eq!(
                    v[(o * 24 + i) * 9 + k],
                    want,
                    "filter {o}, input {i}, tap {k}"
                );
            }
        }
    }
    // Filters past the input channels keep PyTorch's uniform init (bound 1/sqrt(24·9)).
    let rest = &v[24 * 24 * 9..];
    let bound = 1.0 / (24.0f32 * 9.0).sqrt();
    assert!(rest.iter().all(|x| x.abs() <= bound));
    assert!(rest.iter().any(|x| x.abs() > 0.5 * bound));
}

/// The whitening filters decorrelate 2x2 patches: the first 12 outputs have second moments λ/(λ + 5e-4) and
/// no cross-correlation; the other 12 are their negatives.
#[test]
fn whitening_decorrelates_patches() {
    let x = images(64, 2);
    let m = AirBench94::new(&Device::Cpu, 0, 10).unwrap();
    m.init_from_data(&x).unwrap();
    let w = m.buffers().get("0.weight").unwrap().as_tensor().clone();
    let wv = vec1(&w);
    for k in 0..12 {
        for i in 0..12 {
            assert_eq!(wv[(k + 12) * 12 + i], -wv[k * 12 + i]);
        }
    }
    let y = x.conv2d(&w, 0, 1, 1, 1).unwrap(); // [64, 24, 31, 31]
    let y = y
        .narrow(1, 0, 12)
        .unwrap()
        .permute((1, 0, 2, 3))
        .unwrap()
        .flatten_from(1)
        .unwrap();
    let n = y.dim(1).unwrap() as f64;
    let cov = (y.matmul(&y.t().unwrap()).unwrap() / n)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut max_off = 0f32;
    for (i, row) in cov.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if i == j {
                assert!(v > 0.0 && v < 1.0 + 1e-3, "variance {i}: {v}");
            } else {
                max_off = max_off.max(v.abs());
            }
        }
    }
    assert!(max_off < 1e-3, "largest cross-moment {max_off}");
    // The leading direction carries most of the signal: its normalized variance is close to 1.
    assert!(cov[0][0] > 0.99, "{}", cov[0][0]);
}

#[test]
fn batchnorm_running_stats_update_only_in_training() {
    let m = AirBench94::with_widths(&Device::Cpu, 0, [8, 16, 16], 10).unwrap();
    let x = images(8, 4);
    m.init_from_data(&x).unwrap();
    let stats = |m: &AirBench94| vec1(m.buffers().get("2.norm1.running_mean").unwrap().as_tensor());
    let before = stats(&m);
    assert!(before.iter().all(|&v| v == 0.0));
    let e1 = vec1(&m.forward(&x, Mode::Eval).unwrap());
    assert_eq!(stats(&m), before);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    m.forward(&x, Mode::Train(&mut rng)).unwrap();
    let after = stats(&m);
    assert_ne!(after, before);
    // The update is 0.6·old + 0.4·batch mean: a second identical batch moves the mean 0.4 of the way again.
    m.forward(&x, Mode::Train(&mut rng)).unwrap();
    let again = stats(&m);
    for (a, b) in after.iter().zip(&again) {
        let batch = a / 0.4;
        assert!(
            (b - (0.6 * a + 0.4 * batch)).abs() < 1e-4 * (1.0 + batch.abs()),
            "{a} {b}"
        );
    }
    // Eval now uses the new statistics.
    let e2 = vec1(&m.forward(&x, Mode::Eval).unwrap());
    assert_ne!(e1, e2);
}

#[test]
fn whitening_bias_freezes_after_three_epochs() {
    let m = AirBench94::with_widths(&Device::Cpu, 0, [8, 16, 16], 10).unwrap();
    let x = images(4, 5);
    m.init_from_data(&x).unwrap();
    let bias = m.params().get("0.bias").unwrap().clone();
    let conv = m.params().get("2.conv1.weight").unwrap().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (epoch, trains) in [(1, true), (3, true), (4, false), (10, false)] {
        m.start_epoch(epoch);
        let loss = m
            .forward(&x, Mode::Train(&mut rng))
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        assert_eq!(g.get(bias.as_tensor()).is_some(), trains, "epoch {epoch}");
        assert!(g.get(conv.as_tensor()).is_some());
    }
}

#[test]
fn checkpoint_round_trip_keeps_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ab.safetensors");
    let m = AirBench94::with_widths(&Device::Cpu, 7, [8, 16, 16], 10).unwrap();
    let x = images(6, 6);
    m.init_from_data(&x).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    m.forward(&x, Mode::Train(&mut rng)).unwrap();
    checkpoint::save_model(&m, &path, Default::default()).unwrap();
    let fresh = AirBench94::with_widths(&Device::Cpu, 8, [8, 16, 16], 10).unwrap();
    checkpoint::load_into(&fresh, &path).unwrap();
    let a = vec1(&m.forward(&x, Mode::Eval).unwrap());
    let b = vec1(&fresh.forward(&x, Mode::Eval).unwrap());
    assert_eq!(a, b);
    // A cnn-dnn checkpoint is refused by name; a file without the buffers is refused by tensor.
    let other = registry::build("cnn-dnn", &Device::Cpu, 0, 10).unwrap();
    let p2 = dir.path().join("cnn.safetensors");
    checkpoint::save_model(other.as_ref(), &p2, Default::default()).unwrap();
    assert!(checkpoint::load_into(&fresh, &p2).is_err());
    let p3 = dir.path().join("params-only.safetensors");
    checkpoint::write(&p3, &m.params().tensors(), Default::default()).unwrap();
    let err = checkpoint::load_into(&fresh, &p3).unwrap_err().to_string();
    assert!(err.contains("running") || err.contains("0.weight"), "{err}");
    let _ = DType::F32;
}
