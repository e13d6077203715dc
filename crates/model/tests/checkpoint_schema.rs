//! Pins the tensor names, shapes and metadata of each registered model's checkpoint: PyTorch modules
//! (`bench/interop_torch.py`), ONNX exports and older files depend on them, so a rename must fail here first.

use candle_core::Device;
use cifar10_model::checkpoint::{self, keys};
use std::collections::HashMap;

/// The metadata (`key = value`, sorted) and every tensor (`name dtype shape`, sorted) of a freshly saved model,
/// as `cifar inspect` shows them.
fn schema(model: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let m = cifar10_model::registry::build(model, &Device::Cpu, 0, 10).unwrap();
    checkpoint::save_model(m.as_ref(), &path, HashMap::new()).unwrap();
    let h = checkpoint::read_header(&path).unwrap();
    let mut meta: Vec<String> = h
        .metadata
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    meta.sort();
    let tensors: Vec<String> = h
        .tensors
        .iter()
        .map(|(n, dtype, shape)| format!("{n} {dtype} {shape:?}"))
        .collect();
    format!(
        "# metadata\n{}\n# tensors\n{}\n",
        meta.join("\n"),
        tensors.join("\n")
    )
}

/// Each registered model's checkpoint layout must match its pinned file `tests/schema/<model>.txt`.
/// After an intended change (or for a new model), rewrite the files with `UPDATE_SCHEMA=1 cargo test -p model
/// --test checkpoint_schema` and review the diff: PyTorch scripts, ONNX exports and old checkpoints depend on it.
#[test]
fn every_models_checkpoint_layout_is_pinned() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema");
    let update = std::env::var_os("UPDATE_SCHEMA").is_some();
    for name in cifar10_model::registry::names() {
        let got = schema(name);
        let file = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; pin model {name}'s checkpoint layout with UPDATE_SCHEMA=1 cargo test -p cifar10-model --test checkpoint_schema",
                file.display()
            )
        });
        assert_eq!(
            got,
            want,
            "model {name}: the checkpoint layout differs from {} (intended? rerun with UPDATE_SCHEMA=1)",
            file.display()
        );
    }
}

/// The two models of the first release, spelt out here as well (so the pinned files cannot drift silently).
#[test]
fn reference_models_layout() {
    let cnn = schema("cnn-dnn");
    for line in [
        "format = cifar10-rs/2",
        "model = cnn-dnn",
        "model_args = {}",
        r#"normalize = {"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}"#,
        r#"class_names = ["airplane","automobile","bird","cat","deer","dog","frog","horse","ship","truck"]"#,
        "input_size = [3,32,32]",
        "cnn.0.weight F32 [32, 3, 3, 3]",
        "dnn.0.weight F32 [512, 2048]",
        "dnn.9.bias F32 [10]",
    ] {
        assert!(cnn.lines().any(|l| l == line), "{line:?} not in\n{cnn}");
    }
    assert_eq!(cnn.lines().filter(|l| l.contains(" F32 ")).count(), 14);
    let ab = schema("airbench94");
    for line in [
        r#"model_args = {"widths":[64,256,256]}"#,
        "0.weight F32 [24, 3, 2, 2]",
        "2.norm1.running_var F32 [64]",
        "4.conv2.weight F32 [256, 256, 3, 3]",
        "7.weight F32 [10, 256]",
    ] {
        assert!(ab.lines().any(|l| l == line), "{line:?} not in\n{ab}");
    }
    assert_eq!(ab.lines().filter(|l| l.contains(" F32 ")).count(), 33);
    assert_eq!(
        keys::ALL,
        [
            "format",
            "model",
            "model_args",
            "normalize",
            "class_names",
            "input_size"
        ]
    );
}

#[test]
fn metadata_round_trips_and_old_files_get_defaults() {
    let path = std::path::Path::new("x.safetensors");
    let m = cifar10_model::registry::build("airbench94", &Device::Cpu, 0, 10).unwrap();
    let meta = checkpoint::ModelMeta::for_model(
        m.as_ref(),
        checkpoint::Normalize {
            mean: [0.4914, 0.4822, 0.4465],
            std: [0.247, 0.2435, 0.2616],
        },
        vec!["a".into(), "b".into()],
    );
    let back = checkpoint::ModelMeta::from_metadata(&meta.to_metadata(), path).unwrap();
    assert_eq!(back, meta);
    let old = HashMap::from([("format".to_string(), "cifar10-rs/1".to_string())]);
    let d = checkpoint::ModelMeta::from_metadata(&old, path).unwrap();
    assert_eq!((d.format_version, d.model.as_str()), (1, "cnn-dnn"));
    assert_eq!(d.normalize, checkpoint::Normalize::default());
    assert_eq!(
        d.defaulted,
        [
            "model",
            "model_args",
            "normalize",
            "class_names",
            "input_size"
        ]
    );
    for (k, v, needle) in [
        ("format", "cifar10-rs/3", "newer"),
        ("format", "pytorch", "not a checkpoint of this tool"),
        ("normalize", "{\"mean\":[0,0,0]}", "normalize"),
        ("normalize", r#"{"mean":[0,0,0],"std":[0,1,1]}"#, "positive"),
        ("input_size", "[3,64,64]", "input_size"),
    ] {
        let e = checkpoint::ModelMeta::from_metadata(
            &HashMap::from([(k.to_string(), v.to_string())]),
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("x.safetensors") && e.contains(needle),
            "{k}={v}: {e}"
        );
    }
}

#[test]
fn airbench_widths_come_back_from_model_args() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    let m = cifar10_model::AirBench94::with_widths(&Device::Cpu, 1, [8, 16, 16], 10).unwrap();
    checkpoint::save_model(&m, &path, HashMap::new()).unwrap();
    let (back, meta) = checkpoint::load_model_with_meta(&path, &Device::Cpu).unwrap();
    assert_eq!(meta.model_args, serde_json::json!({"widths": [8, 16, 16]}));
    assert_eq!(
        back.params().count(),
        cifar10_model::Classifier::params(&m).count()
    );
}
