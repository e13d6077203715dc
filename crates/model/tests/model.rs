//! The reference architecture, its initialisation and its checkpoints.

use candle_core::{DType, Device, Tensor};
use cifar10_model::{Classifier, CnnDnn, Mode, checkpoint, registry};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

fn input(n: usize) -> Tensor {
    let data: Vec<f32> = (0..n * 3072)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_vec(data, (n, 3, 32, 32), &Device::Cpu).unwrap()
}

#[test]
fn parameter_count_and_block_shapes() {
    let m = CnnDnn::new(&Device::Cpu, 0, 10).unwrap();
    assert_eq!(m.params().count(), 1_307_850);
    assert_eq!(m.params().len(), 14);
    let feats = m.features(&input(2)).unwrap();
    let dims: Vec<Vec<usize>> = feats.iter().map(|t| t.dims().to_vec()).collect();
    assert_eq!(
        dims,
        vec![vec![2, 32, 16, 16], vec![2, 64, 8, 8], vec![2, 128, 4, 4]]
    );
    assert_eq!(m.forward(&input(2), Mode::Eval).unwrap().dims(), &[2, 10]);
    let names: Vec<&str> = m.params().iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "cnn.0.weight");
    assert_eq!(names[13], "dnn.9.bias");
}

#[test]
fn init_is_seeded_and_within_torch_bounds() {
    let a = CnnDnn::new(&Device::Cpu, 7, 10).unwrap();
    let b = CnnDnn::new(&Device::Cpu, 7, 10).unwrap();
    let c = CnnDnn::new(&Device::Cpu, 8, 10).unwrap();
    let w = |m: &CnnDnn, n: &str| {
        m.params()
            .get(n)
            .unwrap()
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(&a, "dnn.0.weight"), w(&b, "dnn.0.weight"));
    assert_ne!(w(&a, "dnn.0.weight"), w(&c, "dnn.0.weight"));
    for (name, fan_in) in [
        ("cnn.0.weight", 27usize),
        ("cnn.6.bias", 576),
        ("dnn.0.weight", 2048),
        ("dnn.9.bias", 128),
    ] {
        let v = w(&a, name);
        let bound = 1.0 / (fan_in as f32).sqrt();
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max <= bound, "{name}: {max} > {bound}");
        // Uniform on ±bound: the largest magnitude comes close to the bound.
        assert!(max > 0.8 * bound, "{name}: {max} far below {bound}");
    }
}

#[test]
fn dropout_only_in_training_and_seeded() {
    let m = CnnDnn::new(&Device::Cpu, 1, 10).unwrap();
    let x = input(4);
    let e1 = m
        .forward(&x, Mode::Eval)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let e2 = m
        .forward(&x, Mode::Eval)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(e1, e2);
    let mut r1 = ChaCha8Rng::seed_from_u64(3);
    let mut r2 = ChaCha8Rng::seed_from_u64(3);
    let t1 = m
        .forward(&x, Mode::Train(&mut r1))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let t2 = m
        .forward(&x, Mode::Train(&mut r2))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(t1, t2);
    assert_ne!(t1, e1);
}

#[test]
fn dropout_zeroes_the_expected_fraction_and_keeps_the_mean() {
    let d = cifar10_model::Dropout { p: 0.2 };
    let x = Tensor::ones((100, 1000), DType::F32, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let y: Vec<f32> = d
        .forward(&x, Some(&mut rng))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.2).abs() < 0.01, "{zeros}");
    let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64;
    assert!((mean - 1.0).abs() < 0.02, "{mean}");
}

#[test]
fn checkpoint_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let a = registry::build("cnn-dnn", &Device::Cpu, 5, 10).unwrap();
    checkpoint::save_model(
        a.as_ref(),
        &path,
        HashMap::from([("epoch".to_string(), "3".to_string())]),
    )
    .unwrap();
    let b = registry::build("cnn-dnn", &Device::Cpu, 6, 10).unwrap();
    let x = input(3);
    let ya = a
        .forward(&x, Mode::Eval)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(
        ya,
        b.forward(&x, Mode::Eval)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    checkpoint::load_into(b.as_ref(), &path).unwrap();
    assert_eq!(
        ya,
        b.forward(&x, Mode::Eval)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    let c = checkpoint::read(&path, &Device::Cpu).unwrap();
    assert_eq!(c.metadata.get("model").map(String::as_str), Some("cnn-dnn"));
    assert_eq!(c.metadata.get("epoch").map(String::as_str), Some("3"));
    let loaded = checkpoint::load_model(&path, &Device::Cpu).unwrap();
    assert_eq!(
        ya,
        loaded
            .forward(&x, Mode::Eval)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
}

#[test]
fn checkpoint_of_another_shape_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    let m = registry::build("cnn-dnn", &Device::Cpu, 5, 10).unwrap();
    let mut tensors = m.params().tensors();
    tensors[6] = (
        "dnn.0.weight".into(),
        Tensor::zeros((512, 1024), DType::F32, &Device::Cpu).unwrap(),
    );
    checkpoint::write(&path, &tensors, HashMap::new()).unwrap();
    let before = m
        .params()
        .get("cnn.0.weight")
        .unwrap()
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let err = checkpoint::load_into(m.as_ref(), &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dnn.0.weight") && err.contains("1024") && err.contains("2048"),
        "{err}"
    );
    // Nothing was changed by the failed load.
    let after = m
        .params()
        .get("cnn.0.weight")
        .unwrap()
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(before, after);

    tensors = m.params().tensors();
    tensors.remove(13);
    checkpoint::write(&path, &tensors, HashMap::new()).unwrap();
    let err = checkpoint::load_into(m.as_ref(), &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dnn.9.bias") && err.contains("missing"),
        "{err}"
    );

    std::fs::write(&path, b"not a checkpoint").unwrap();
    let err = checkpoint::load_model(&path, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("other.safetensors"), "{err}");
    let missing = dir.path().join("nope.safetensors");
    let err = checkpoint::load_model(&missing, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nope.safetensors"), "{err}");
}

#[test]
fn unknown_model_lists_the_registry() {
    let err = registry::build("resnet", &Device::Cpu, 0, 10)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("resnet") && err.contains("cnn-dnn"), "{err}");
}
