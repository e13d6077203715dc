//! Safetensors checkpoints.
//!
//! A model file holds every parameter under its stable name (for [`crate::CnnDnn`]: `cnn.0.weight`, `cnn.0.bias`,
//! `cnn.3.*`, `cnn.6.*`, `dnn.0.*`, `dnn.3.*`, `dnn.6.*`, `dnn.9.*`, the PyTorch reference's `state_dict` keys),
//! f32, plus metadata `model` (the registry name) and `format` (`cifar10-rs/1`). Files are written atomically.
//!
//! ```
//! use model::{checkpoint, registry};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("best.safetensors");
//! let dev = candle_core::Device::Cpu;
//! let a = registry::build("cnn-dnn", &dev, 1).unwrap();
//! checkpoint::save_model(a.as_ref(), &path, Default::default()).unwrap();
//! let b = checkpoint::load_model(&path, &dev).unwrap();
//! assert_eq!(b.name(), "cnn-dnn");
//! ```

use crate::{Classifier, Error, Result, registry};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The `format` metadata value of files this crate writes.
pub const FORMAT: &str = "cifar10-rs/1";

/// The tensors and string metadata of a safetensors file.
pub struct Contents {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

/// Writes `tensors` and `metadata` (plus `format`) to `path` atomically.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    metadata.insert("format".into(), FORMAT.into());
    // safetensors needs contiguous CPU data; copy once here.
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(cpu.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!("cannot serialise: {e}"),
        })?;
    cifar_types::atomic::write_bytes(path, &bytes)?;
    Ok(())
}

/// Reads every tensor (onto `device`) and the metadata of a safetensors file.
pub fn read(path: &Path, device: &Device) -> Result<Contents> {
    let bytes = std::fs::read(path).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })?;
    let corrupt = |e: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a valid safetensors file: {e}"),
    };
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Contents { tensors, metadata })
}

/// Saves a model's parameters with `model` metadata (and any extra metadata given).
pub fn save_model(
    model: &dyn Classifier,
    path: &Path,
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    metadata.insert("model".into(), model.name().into());
    write(path, &model.params().tensors(), metadata)
}

/// Copies the parameters found in `tensors` into `model`, checking that every parameter is present with the right
/// shape; extra tensors (e.g. optimizer state) are ignored.
pub fn assign(
    model: &dyn Classifier,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    // Check everything before changing anything.
    for (name, var) in model.params().iter() {
        let t = tensors.get(name).ok_or_else(|| Error::MissingTensor {
            path: path.to_path_buf(),
            name: name.to_string(),
            model: model.name().to_string(),
        })?;
        if t.dims() != var.dims() {
            return Err(Error::ShapeMismatch {
                path: path.to_path_buf(),
                name: name.to_string(),
                model: model.name().to_string(),
                expected: var.dims().to_vec(),
                found: t.dims().to_vec(),
            });
        }
    }
    for (name, var) in model.params().iter() {
        if let Some(t) = tensors.get(name) {
            var.set(&t.to_dtype(DType::F32)?.to_device(model.device())?)?;
        }
    }
    Ok(())
}

/// Loads parameters from `path` into an existing model.
pub fn load_into(model: &dyn Classifier, path: &Path) -> Result<()> {
    let c = read(path, model.device())?;
    if let Some(name) = c.metadata.get("model")
        && name != model.name()
    {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!("holds model {name:?}, not {:?}", model.name()),
        });
    }
    assign(model, &c.tensors, path)
}

/// Builds the model a checkpoint names (metadata `model`, default `cnn-dnn`) and loads its weights.
pub fn load_model(path: &Path, device: &Device) -> Result<Box<dyn Classifier>> {
    let c = read(path, device)?;
    let name = c
        .metadata
        .get("model")
        .cloned()
        .unwrap_or_else(|| registry::DEFAULT_MODEL.to_string());
    let model = registry::build(&name, device, 0).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    assign(model.as_ref(), &c.tensors, path)?;
    Ok(model)
}
