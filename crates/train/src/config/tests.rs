//! The config's and the presets' tests.

use super::*;

#[test]
fn default_is_the_reference_and_valid() {
    let c = TrainConfig::default();
    assert_eq!(
        (c.epochs, c.batch_size, c.lr, c.val_fraction),
        (50, 64, 1e-3, 0.1)
    );
    assert_eq!(c.schedule, Schedule::Constant);
    assert_eq!(c.weight_decay, 0.0);
    c.validate().unwrap();
    assert_eq!(TrainConfig::preset("reference").unwrap(), c);
    for p in PRESETS {
        TrainConfig::preset(p.name).unwrap().validate().unwrap();
    }
}

#[test]
fn fast_presets_are_the_recorded_recipes() {
    // docs/results.md reports runs of exactly these settings.
    let f = TrainConfig::preset("fast").unwrap();
    assert_eq!(
        (f.epochs, f.batch_size, f.lr, f.weight_decay),
        (18, 128, 4e-3, 0.05)
    );
    assert_eq!(
        (f.schedule, f.warmup_epochs, f.label_smoothing, f.tta),
        (Schedule::OneCycle, 1.5, 0.1, Tta::Mirror)
    );
    let l = TrainConfig::preset("fast-long").unwrap();
    assert_eq!(
        (l.epochs, l.warmup_epochs, l.batch_size, l.preset.as_str()),
        (40, 3.0, 128, "fast-long")
    );
}

#[test]
fn bad_values_name_the_setting() {
    let mut c = TrainConfig {
        lr: -1.0,
        ..Default::default()
    };
    let e = c.validate().unwrap_err();
    assert!(matches!(e, Error::Setting { setting: "lr", .. }), "{e}");
    assert!(
        e.to_string().starts_with("lr: expected a positive number"),
        "{e}"
    );
    c.lr = 1e-3;
    c.val_fraction = 1.0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("val_fraction")
    );
    c.val_fraction = 0.1;
    c.augment.flip_prob = 2.0;
    assert!(matches!(
        c.validate(),
        Err(Error::Setting {
            setting: "augment.flip_prob",
            ..
        })
    ));
    c.augment.flip_prob = 0.5;
    c.device = "tpu".into();
    assert!(matches!(
        c.validate(),
        Err(Error::Setting {
            setting: "device",
            ..
        })
    ));
    c.device = "cuda:0".into();
    assert_eq!(c.validate().is_ok(), model::device::CUDA_BUILT);
    c.device = "auto".into();
    c.val_fraction = 0.1;
    c.model = "vgg".into();
    assert!(c.validate().unwrap_err().to_string().contains("cnn-dnn"));
    c.model = "cnn-dnn".into();
    c.val_fraction = -0.1;
    assert!(c.validate().is_err());
    c.val_fraction = 0.0;
    c.validate().unwrap();
    assert!(
        TrainConfig::preset("turbo")
            .unwrap_err()
            .to_string()
            .contains("fast")
    );
}

/// The airbench94 preset derives the script's numbers: lr 11.5/kilostep = 3/2048, coupled wd
/// 0.0153·1024/11.5, 476 steps on 50,000 images, 109 warm-up steps.
#[test]
fn airbench_preset_is_the_script() {
    let c = TrainConfig::preset("airbench94").unwrap();
    c.validate().unwrap();
    assert!((c.lr - 3.0 / 2048.0).abs() < 1e-15);
    assert!((c.weight_decay - 0.0153 * 1024.0 / 11.5).abs() < 1e-12);
    assert_eq!(c.steps(50_000), (48, 476, 10));
    assert_eq!((c.warmup_epochs * 48.0).round() as usize, 109);
    assert_eq!(c.val_fraction, 0.0);
}

/// The airbench94-muon preset derives the script's numbers: 25 steps per epoch and 175 in all on 50,000
/// images (7 epochs, the script's 200 cut toward 8 minutes), the SGD groups' rates 0.053 and 0.67·(9/256)² (our head's 1/9 scale against the script's 1/256),
/// each group's decay per step `lr · wd` = 2e-6 · 2000 = 0.004, the whitening bias decaying over 75 steps.
#[test]
fn airbench_muon_preset_is_the_script() {
    let c = TrainConfig::preset("airbench94-muon").unwrap();
    c.validate().unwrap();
    assert_eq!(c.model, "airbench94");
    assert_eq!(c.optimizer, OptimizerKind::Muon);
    assert_eq!(c.steps(50_000), (25, 175, 7));
    assert_eq!(c.fractional_epochs, None);
    assert_eq!(
        (c.batch_size, c.lr, c.momentum, c.nesterov),
        (2000, 0.24, 0.85, true)
    );
    assert_eq!(
        (c.muon.momentum, c.muon.nesterov, c.muon.ns_steps),
        (0.6, true, 3)
    );
    assert!(c.muon.normalize_weights);
    assert!((c.lr * c.norm_lr_scale - 0.053).abs() < 1e-15);
    assert!((c.lr * c.muon.bias_lr_scale - 0.053).abs() < 1e-15);
    let head_lr = c.lr * c.muon.head_lr_scale;
    assert!((head_lr - 0.67 * 81.0 / 65536.0).abs() < 1e-15, "{head_lr}");
    assert!((c.lr * c.weight_decay - 0.004).abs() < 1e-15);
    assert_eq!(c.muon.bias_decay_epochs, Some(3.0));
    assert_eq!((c.schedule, c.warmup_epochs), (Schedule::LinearDecay, 0.0));
    assert!((c.schedule.lr(c.lr, 174, 175, 0) - 0.24 / 175.0).abs() < 1e-15);
    assert_eq!(
        (c.label_smoothing, c.loss_reduction),
        (0.2, LossReduction::Sum)
    );
    assert_eq!(
        (c.averaging, c.tta, c.val_fraction),
        (Averaging::None, Tta::MirrorShift, 0.0)
    );
    assert_eq!(c.augment, Augment::airbench());
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(TrainConfig::from_json(&json).unwrap(), c);
    // Ours, beyond the script: selective TTA (the same accuracy in half the evaluation time) and 4 parts of
    // 500 per step (a quarter of the activation memory).
    assert_eq!(
        (c.tta_threshold, c.micro_batch_size),
        (Some(0.7), Some(500))
    );
    let mut bad = c.clone();
    bad.tta_threshold = Some(1.5);
    assert!(matches!(
        bad.validate(),
        Err(Error::Setting {
            setting: "tta_threshold",
            ..
        })
    ));
    bad.tta_threshold = Some(0.7);
    bad.muon.head_lr_scale = 0.0;
    assert!(matches!(
        bad.validate(),
        Err(Error::Setting {
            setting: "muon.head_lr_scale",
            ..
        })
    ));
}

/// The baselines of `cifar compare` (docs/models.md): `fast`'s recipe over 30 epochs, their model preset, and
/// `TrainConfig::for_model` picks them up by the model's name.
#[test]
fn baseline_presets_train_their_models() {
    for name in ["mlp", "lenet5"] {
        let c = TrainConfig::preset(name).unwrap();
        c.validate().unwrap();
        assert_eq!(c.model, name);
        assert_eq!(
            (c.epochs, c.batch_size, c.lr, c.warmup_epochs, c.tta),
            (30, 128, 4e-3, 3.0, Tta::Mirror)
        );
        assert_eq!(TrainConfig::for_model(name), c);
    }
}

#[test]
fn config_json_round_trip_and_partial_files() {
    let c = TrainConfig::preset("fast").unwrap();
    let s = serde_json::to_string(&c).unwrap();
    assert!(s.contains(r#""tta":"mirror""#), "{s}");
    assert!(s.contains(r#""winograd":"auto""#), "{s}");
    assert_eq!(TrainConfig::from_json(&s).unwrap(), c);
    let f4 = TrainConfig {
        winograd: model::Winograd::F4x4,
        ..c.clone()
    };
    let s4 = serde_json::to_string(&f4).unwrap();
    assert!(s4.contains(r#""winograd":"f4""#), "{s4}");
    assert_eq!(TrainConfig::from_json(&s4).unwrap(), f4);
    // The tiles are a choice of the cpu-ops kernels: with the stock ops only auto is valid.
    let stock = TrainConfig {
        stock_ops: true,
        ..f4
    };
    assert!(
        matches!(
            stock.validate(),
            Err(crate::Error::Setting {
                setting: "winograd",
                ..
            })
        ),
        "{:?}",
        stock.validate()
    );
    // config.json as the previous version wrote it (no optimizer, averaging, TTA-shift... fields).
    let old = r#"{"preset":"fast","model":"cnn-dnn","epochs":18,"batch_size":128,"lr":0.004,"weight_decay":0.05,
        "schedule":"onecycle","warmup_epochs":1.5,"label_smoothing":0.1,"patience":null,"val_fraction":0.1,
        "stratified":false,"seed":42,"device":"auto","limit_train":null,"augment":{"flip_prob":0.5,"crop_pad":4,
        "normalize":{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}},"tta":true,"eval_batch_size":512,
        "data_dir":"data","stock_ops":false}"#;
    assert_eq!(TrainConfig::from_json(old).unwrap(), c);
    // airbench94's config.json as the previous version wrote it (two booleans).
    let mut ab = serde_json::to_value(TrainConfig::preset("airbench94").unwrap()).unwrap();
    ab["tta"] = serde_json::Value::Bool(true);
    ab["tta_shift"] = serde_json::Value::Bool(true);
    let ab = TrainConfig::from_json(&ab.to_string()).unwrap();
    assert_eq!(ab.tta, Tta::MirrorShift);
    let partial = TrainConfig::from_json(r#"{"epochs": 3}"#).unwrap();
    assert_eq!(partial.epochs, 3);
    assert_eq!(partial.batch_size, 64);
}
