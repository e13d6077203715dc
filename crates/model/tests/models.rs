//! The comparison's models: shapes, parameter counts, FLOP counts, registry entries, training-mode behaviour.

use candle_core::{DType, Device, Tensor};
use cifar10_model::{Classifier, CnnDnn, LeNet5, Mlp, Mode, registry};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn input(n: usize) -> Tensor {
    let data: Vec<f32> = (0..n * 3072)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_vec(data, (n, 3, 32, 32), &Device::Cpu).unwrap()
}

fn shapes(m: &dyn Classifier) -> Vec<(String, Vec<usize>)> {
    m.params()
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_tensor().dims().to_vec()))
        .collect()
}

#[test]
fn mlp_shapes_and_parameter_count() {
    let m = Mlp::new(&Device::Cpu, 0, 10).unwrap();
    // 3072·512+512 + 512·256+256 + 256·128+128 + 128·10+10
    assert_eq!(m.params().count(), 1_738_890);
    let s = shapes(&m);
    assert_eq!(s.len(), 8);
    assert_eq!(s[0], ("dnn.0.weight".to_string(), vec![512, 3072]));
    assert_eq!(s[7], ("dnn.9.bias".to_string(), vec![10]));
    assert_eq!(m.forward(&input(3), Mode::Eval).unwrap().dims(), &[3, 10]);
    // The same head as cnn-dnn: every layer after the first has the same shape.
    let c = CnnDnn::new(&Device::Cpu, 0, 10).unwrap();
    let head: Vec<_> = shapes(&c).into_iter().skip(6).skip(2).collect();
    assert_eq!(head, s[2..].to_vec());
}

#[test]
fn lenet5_shapes_and_parameter_count() {
    let m = LeNet5::new(&Device::Cpu, 0, 10).unwrap();
    // conv 6·3·25+6, conv 16·6·25+16, 400·120+120, 120·84+84, 84·10+10
    assert_eq!(m.params().count(), 62_006);
    let s = shapes(&m);
    assert_eq!(s[0], ("features.0.weight".to_string(), vec![6, 3, 5, 5]));
    assert_eq!(s[2], ("features.3.weight".to_string(), vec![16, 6, 5, 5]));
    assert_eq!(s[4], ("classifier.0.weight".to_string(), vec![120, 400]));
    assert_eq!(s[9], ("classifier.4.bias".to_string(), vec![10]));
    let feats = m.features(&input(2)).unwrap();
    let dims: Vec<Vec<usize>> = feats.iter().map(|t| t.dims().to_vec()).collect();
    assert_eq!(dims, vec![vec![2, 6, 14, 14], vec![2, 16, 5, 5]]);
    assert_eq!(m.forward(&input(2), Mode::Eval).unwrap().dims(), &[2, 10]);
}

/// The im2col convolution (the CPU kernels' path and the stock-ops path) against candle's conv2d, values and
/// gradients.
#[test]
fn conv_valid_matches_candle_conv2d() {
    for k in [
        cifar10_model::KernelConfig::default(),
        cifar10_model::KernelConfig::stock(),
    ] {
        conv_valid_case(&k);
    }
}

fn conv_valid_case(k: &cifar10_model::KernelConfig) {
    let dev = Device::Cpu;
    let x = candle_core::Var::from_tensor(&input(2)).unwrap();
    let m = LeNet5::new(&dev, 3, 10).unwrap();
    let w = m.params().get("features.0.weight").unwrap();
    let b = m.params().get("features.0.bias").unwrap();
    let ours = cifar10_model::conv_valid(k, x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
    let stock = x
        .as_tensor()
        .conv2d(w.as_tensor(), 0, 1, 1, 1)
        .unwrap()
        .broadcast_add(&b.as_tensor().reshape((1, 6, 1, 1)).unwrap())
        .unwrap();
    assert_eq!(ours.dims(), &[2, 6, 28, 28]);
    let diff = |a: &Tensor, b: &Tensor| {
        a.sub(b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(diff(&ours, &stock) < 1e-4);
    let weights = Tensor::arange(0f32, ours.elem_count() as f32, &dev)
        .unwrap()
        .reshape(ours.dims())
        .unwrap()
        .affine(1e-4, 0.0)
        .unwrap();
    let g1 = ours
        .mul(&weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g2 = stock
        .mul(&weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for v in [x.as_tensor(), w.as_tensor(), b.as_tensor()] {
        let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
        let scale = b
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            diff(a, b) <= 1e-4 * scale.max(1.0),
            "gradient of {:?}",
            v.dims()
        );
    }
    // A kernel larger than the image is an error, not a panic.
    let big = Tensor::zeros((1, 3, 40, 40), DType::F32, &dev).unwrap();
    assert!(
        cifar10_model::conv_valid(
            &cifar10_model::KernelConfig::default(),
            &input(1),
            &big.reshape((1, 3, 40, 40)).unwrap(),
            &Tensor::zeros(1, DType::F32, &dev).unwrap()
        )
        .is_err()
    );
}

#[test]
fn registry_lists_every_model_with_params_and_flops() {
    let names = registry::names();
    for n in ["cnn-dnn", "airbench94", "mlp", "lenet5"] {
        assert!(names.contains(&n), "{n} not registered");
    }
    let expect = [
        // (name, parameters, forward multiply-adds per image, the head's input width)
        ("mlp", 1_738_890, 1_737_984u64, 128, true),
        ("lenet5", 62_006, 651_720, 84, true),
        ("cnn-dnn", 1_307_850, 11_535_616, 128, true),
        ("airbench94", 1_971_352, 118_147_360, 256, false),
    ];
    for (name, params, macs, head_in, bias) in expect {
        let spec = registry::spec(name).unwrap();
        assert_eq!(spec.param_count(10).unwrap(), params, "{name}");
        assert_eq!(spec.flops_per_image(10), 2 * macs, "{name}");
        let net = registry::build(name, &Device::Cpu, 1, 10).unwrap();
        assert_eq!(net.name(), name);
        assert_eq!(net.num_classes(), 10);
        assert_eq!(net.forward(&input(2), Mode::Eval).unwrap().dims(), &[2, 10]);
        // A 100-class head: 90 more outputs of `head_in` weights (and a bias each).
        let extra = 90 * (head_in + usize::from(bias));
        assert_eq!(spec.param_count(100).unwrap(), params + extra, "{name}");
        assert_eq!(
            spec.flops_per_image(100),
            2 * (macs + 90 * head_in as u64),
            "{name}"
        );
        let net = registry::build(name, &Device::Cpu, 1, 100).unwrap();
        assert_eq!(net.num_classes(), 100);
        assert_eq!(
            net.forward(&input(2), Mode::Eval).unwrap().dims(),
            &[2, 100]
        );
        let err = registry::build(name, &Device::Cpu, 1, 1).err().unwrap();
        assert!(
            err.to_string().contains("at least 2 classes, found 1"),
            "{err}"
        );
    }
    assert!(registry::spec("vgg").is_none());
    assert!((registry::spec("cnn-dnn").unwrap().mflops_per_image(10) - 23.071232).abs() < 1e-9);
}

#[test]
fn seeded_init_and_training_mode() {
    let a = Mlp::new(&Device::Cpu, 5, 10).unwrap();
    let b = Mlp::new(&Device::Cpu, 5, 10).unwrap();
    let x = input(4);
    let ya = a.forward(&x, Mode::Eval).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(
        ya,
        b.forward(&x, Mode::Eval).unwrap().to_vec2::<f32>().unwrap()
    );
    // Dropout makes a training pass differ from evaluation; the same RNG seed gives the same pass.
    let train = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        a.forward(&x, Mode::Train(&mut rng))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    };
    assert_ne!(train(1), ya);
    assert_eq!(train(1), train(1));
    // LeNet-5 has no dropout: training and evaluation passes agree.
    let l = LeNet5::new(&Device::Cpu, 5, 10).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(
        l.forward(&x, Mode::Train(&mut rng))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        l.forward(&x, Mode::Eval).unwrap().to_vec2::<f32>().unwrap()
    );
}

#[test]
fn a_100_class_checkpoint_keeps_its_head_and_class_names() {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.safetensors");
    let net = registry::build("airbench94", &Device::Cpu, 3, 100).unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("classe n°{i} é")).collect();
    let meta = HashMap::from([(
        cifar10_model::checkpoint::keys::CLASS_NAMES.to_string(),
        serde_json::to_string(&names).unwrap(),
    )]);
    cifar10_model::checkpoint::save_model(net.as_ref(), &path, meta).unwrap();
    let (back, meta) =
        cifar10_model::checkpoint::load_model_with_meta(&path, &Device::Cpu).unwrap();
    assert_eq!(back.num_classes(), 100);
    assert_eq!(meta.class_names, names);
    let x = input(2);
    assert_eq!(
        back.forward(&x, Mode::Eval)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        net.forward(&x, Mode::Eval)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    );

    // Without class names in the file, a model's default names have its own count.
    let plain = dir.path().join("plain.safetensors");
    let lenet = registry::build("lenet5", &Device::Cpu, 3, 7).unwrap();
    cifar10_model::checkpoint::save_model(lenet.as_ref(), &plain, HashMap::new()).unwrap();
    let (back, meta) =
        cifar10_model::checkpoint::load_model_with_meta(&plain, &Device::Cpu).unwrap();
    assert_eq!(back.num_classes(), 7);
    assert_eq!(meta.class_names[6], "class 6");

    // Class names that disagree with the stored head are an error naming the file, not a panic.
    let mut md = cifar10_model::checkpoint::read_header(&plain)
        .unwrap()
        .metadata;
    md.insert(
        cifar10_model::checkpoint::keys::CLASS_NAMES.to_string(),
        serde_json::to_string(&names).unwrap(),
    );
    let c = cifar10_model::checkpoint::read(&plain, &Device::Cpu).unwrap();
    let bad = dir.path().join("bad.safetensors");
    let tensors: Vec<(String, Tensor)> = c.tensors.into_iter().collect();
    cifar10_model::checkpoint::write(&bad, &tensors, md).unwrap();
    let err = cifar10_model::checkpoint::load_model(&bad, &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("bad.safetensors"), "{err}");
}
