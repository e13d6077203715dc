//! Safetensors checkpoints.
//!
//! A model file holds every parameter and buffer under its stable name (for [`crate::CnnDnn`]: `cnn.0.weight`,
//! `cnn.0.bias`, `cnn.3.*`, `cnn.6.*`, `dnn.0.*`, `dnn.3.*`, `dnn.6.*`, `dnn.9.*`, the PyTorch reference's
//! `state_dict` keys), f32, and describes itself in the safetensors metadata (string values, see [`keys`]):
//!
//! | key | value |
//! |---|---|
//! | `format` | `cifar10-rs/2` (the format version after the slash) |
//! | `model` | the registry name (`cnn-dnn`, `airbench94`) |
//! | `model_args` | JSON of the constructor arguments (`{}`; airbench94: `{"widths":[64,256,256]}`) |
//! | `normalize` | JSON `{"mean":[r,g,b],"std":[r,g,b]}`: what the model expects after scaling pixels to [0, 1] |
//! | `class_names` | JSON list of the class names, index order |
//! | `input_size` | JSON `[3,32,32]` |
//!
//! Files written before format 2 (`cifar10-rs/1`) still load: a missing key takes its default (`cnn-dnn`, `{}`,
//! mean/std 0.5, the CIFAR-10 class names, `[3,32,32]`), see [`ModelMeta::defaulted`]. A file of a newer format
//! is refused. Files are written atomically.
//!
//! ```
//! use cifar10_model::{checkpoint, registry};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("best.safetensors");
//! let dev = candle_core::Device::Cpu;
//! let a = registry::build("cnn-dnn", &dev, 1, 10).unwrap();
//! checkpoint::save_model(a.as_ref(), &path, Default::default()).unwrap();
//! let (b, meta) = checkpoint::load_model_with_meta(&path, &dev).unwrap();
//! assert_eq!(b.name(), "cnn-dnn");
//! assert_eq!(meta.class_names[3], "cat");
//! assert_eq!(meta.normalize, checkpoint::Normalize::default()); // none given: mean/std 0.5
//! assert!(meta.defaulted.is_empty());
//! ```

use crate::{Classifier, Error, Result, registry};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The format version of files this crate writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 2;
/// The prefix of the `format` metadata value; the version follows it.
pub const FORMAT_PREFIX: &str = "cifar10-rs/";
/// The `format` metadata value of files this crate writes.
pub const FORMAT: &str = "cifar10-rs/2";

/// The metadata keys of a checkpoint: defined here once; `train` re-exports them.
pub mod keys {
    /// The file format and its version ([`super::FORMAT`]).
    pub const FORMAT: &str = "format";
    /// The model's registry name.
    pub const MODEL: &str = "model";
    /// The model's constructor arguments, a JSON object.
    pub const MODEL_ARGS: &str = "model_args";
    /// The input normalization, JSON `{"mean":[r,g,b],"std":[r,g,b]}`.
    pub const NORMALIZE: &str = "normalize";
    /// The class names in index order, a JSON list.
    pub const CLASS_NAMES: &str = "class_names";
    /// The input shape `[channels, height, width]`, JSON.
    pub const INPUT_SIZE: &str = "input_size";
    /// The test-time augmentation the model was evaluated with (`none`, `mirror` or `mirror+shift`): the
    /// default of inference on it (`predict`, `serve`). Optional: files without it mean `none`.
    pub const TTA: &str = "tta";
    /// Every key [`super::ModelMeta`] always describes, in display order.
    pub const ALL: [&str; 6] = [
        FORMAT,
        MODEL,
        MODEL_ARGS,
        NORMALIZE,
        CLASS_NAMES,
        INPUT_SIZE,
    ];
}

/// The input normalization a model expects (`(pixel / 255 - mean) / std` per channel): the one shared type.
pub use cifar_types::Normalize;

/// What a checkpoint says about its model (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    /// The file's format version (1 for a file without a `format` key).
    pub format_version: u32,
    /// The model's registry name.
    pub model: String,
    /// Constructor arguments (a JSON object).
    pub model_args: serde_json::Value,
    /// The input normalization the model was trained with.
    pub normalize: Normalize,
    /// The class names, in logit index order.
    pub class_names: Vec<String>,
    /// `[channels, height, width]`.
    pub input_size: [usize; 3],
    /// The keys the file lacks, whose defaults were used (an older file).
    pub defaulted: Vec<&'static str>,
    /// The test-time augmentation the model was evaluated with (metadata `tta`), when the file says.
    pub eval_tta: Option<crate::infer::Tta>,
}

impl ModelMeta {
    /// The metadata of `model` as trained with `normalize` on `class_names`.
    pub fn for_model(
        model: &dyn Classifier,
        normalize: Normalize,
        class_names: Vec<String>,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            model: model.name().to_string(),
            model_args: model_args(model),
            normalize,
            class_names,
            input_size: INPUT_SIZE,
            eval_tta: None,
            defaulted: Vec::new(),
        }
    }

    /// Parses the metadata of the file `path`; missing keys take their defaults (listed in `defaulted`), a newer
    /// format or a malformed value is an error naming the key.
    pub fn from_metadata(metadata: &HashMap<String, String>, path: &Path) -> Result<Self> {
        let format_version = format_version(metadata, path)?;
        let mut defaulted = Vec::new();
        fn parse<T: serde::de::DeserializeOwned>(
            metadata: &HashMap<String, String>,
            key: &'static str,
            default: impl FnOnce() -> T,
            defaulted: &mut Vec<&'static str>,
            path: &Path,
            expected: &str,
        ) -> Result<T> {
            match metadata.get(key) {
                None => {
                    defaulted.push(key);
                    Ok(default())
                }
                Some(v) => serde_json::from_str(v).map_err(|e| Error::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!("metadata {key:?}: expected {expected}, found {v:?} ({e})"),
                }),
            }
        }
        let model = match metadata.get(keys::MODEL) {
            Some(m) => m.clone(),
            None => {
                defaulted.push(keys::MODEL);
                registry::DEFAULT_MODEL.to_string()
            }
        };
        let model_args = parse(
            metadata,
            keys::MODEL_ARGS,
            || serde_json::json!({}),
            &mut defaulted,
            path,
            "a JSON object",
        )?;
        // A partial `normalize` (one of mean/std missing) is refused here, though config files may leave a field
        // to its default: a checkpoint states what its model was trained with.
        if let Some(v) = metadata.get(keys::NORMALIZE)
            && let Ok(serde_json::Value::Object(o)) = serde_json::from_str(v)
            && !(o.contains_key("mean") && o.contains_key("std"))
        {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    r#"metadata "normalize": expected JSON {{"mean":[r,g,b],"std":[r,g,b]}}, found {v:?}"#
                ),
            });
        }
        let normalize: Normalize = parse(
            metadata,
            keys::NORMALIZE,
            Normalize::default,
            &mut defaulted,
            path,
            r#"JSON {"mean":[r,g,b],"std":[r,g,b]}"#,
        )?;
        if normalize.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || normalize.mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "metadata \"normalize\": expected finite means and positive standard deviations, found {normalize:?}"
                ),
            });
        }
        let class_names: Vec<String> = parse(
            metadata,
            keys::CLASS_NAMES,
            // Files written before class names were recorded are all CIFAR-10 ones.
            || {
                cifar_types::CIFAR10_CLASS_NAMES
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            },
            &mut defaulted,
            path,
            "a JSON list of class names",
        )?;
        let input_size: [usize; 3] = parse(
            metadata,
            keys::INPUT_SIZE,
            || INPUT_SIZE,
            &mut defaulted,
            path,
            "JSON [channels, height, width]",
        )?;
        if input_size != INPUT_SIZE {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "metadata \"input_size\": this build handles {INPUT_SIZE:?} inputs, found {input_size:?}"
                ),
            });
        }
        let eval_tta = match metadata.get(keys::TTA) {
            None => None,
            Some(t) => Some(t.parse().map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("metadata \"tta\": {e}"),
            })?),
        };
        Ok(Self {
            format_version,
            model,
            model_args,
            normalize,
            class_names,
            input_size,
            defaulted,
            eval_tta,
        })
    }

    /// The metadata entries (with `format`) to write.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let json = |v: serde_json::Result<String>| v.unwrap_or_default();
        let mut m = HashMap::from([
            (keys::FORMAT.to_string(), FORMAT.to_string()),
            (keys::MODEL.to_string(), self.model.clone()),
            (keys::MODEL_ARGS.to_string(), self.model_args.to_string()),
            (
                keys::NORMALIZE.to_string(),
                json(serde_json::to_string(&self.normalize)),
            ),
            (
                keys::CLASS_NAMES.to_string(),
                json(serde_json::to_string(&self.class_names)),
            ),
            (
                keys::INPUT_SIZE.to_string(),
                json(serde_json::to_string(&self.input_size)),
            ),
        ]);
        if let Some(t) = self.eval_tta {
            m.insert(keys::TTA.to_string(), t.name().to_string());
        }
        m
    }
}

/// The input size every registered model takes.
pub const INPUT_SIZE: [usize; 3] = [3, 32, 32];

/// The format version of a file's metadata (1 when `format` is missing); an error for a newer version of ours.
pub fn format_version(metadata: &HashMap<String, String>, path: &Path) -> Result<u32> {
    let Some(f) = metadata.get(keys::FORMAT) else {
        return Ok(1);
    };
    let bad = || Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!(
            "metadata \"format\": expected {FORMAT_PREFIX}N (N <= {FORMAT_VERSION}), found {f:?} (not a checkpoint of this tool?)"
        ),
    };
    let v: u32 = f
        .strip_prefix(FORMAT_PREFIX)
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    if v > FORMAT_VERSION {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "written in checkpoint format {v} by a newer cifar10-rs; this build reads formats up to {FORMAT_VERSION} (upgrade it)"
            ),
        });
    }
    Ok(v)
}

/// The constructor arguments of `model` (a JSON object; empty for fixed architectures).
pub fn model_args(model: &dyn Classifier) -> serde_json::Value {
    if model.name() == crate::AirBench94::NAME {
        let width = |g: usize| {
            model
                .params()
                .get(&format!("{g}.conv1.weight"))
                .map_or(0, |v| v.dims()[0])
        };
        serde_json::json!({ "widths": [width(2), width(3), width(4)] })
    } else {
        serde_json::json!({})
    }
}

/// Builds model `name` from its constructor arguments (see [`model_args`]).
fn build_from_args(
    name: &str,
    args: &serde_json::Value,
    num_classes: usize,
    device: &Device,
    path: &Path,
) -> Result<Box<dyn Classifier>> {
    let in_file = |e: Error| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if name == crate::AirBench94::NAME
        && let Some(w) = args.get("widths")
    {
        let widths: [usize; 3] =
            serde_json::from_value(w.clone()).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "metadata \"model_args\": expected widths [a,b,c], found {w} ({e})"
                ),
            })?;
        return Ok(Box::new(
            crate::AirBench94::with_widths(device, 0, widths, num_classes).map_err(in_file)?,
        ));
    }
    registry::build(name, device, 0, num_classes).map_err(in_file)
}

/// The header of a safetensors file: its metadata and every tensor's name, dtype and shape (sorted by name),
/// read without loading the tensors.
pub struct Header {
    /// The string metadata (`__metadata__`; empty when the file has none).
    pub metadata: HashMap<String, String>,
    /// (name, dtype as safetensors spells it, e.g. `F32`, shape) of every tensor, sorted by name.
    pub tensors: Vec<(String, String, Vec<usize>)>,
}

/// The largest header [`read_header`] accepts (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Reads only the header of the safetensors file `path`.
pub fn read_header(path: &Path) -> Result<Header> {
    let err = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let file_len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n + 8 > file_len {
        return Err(err(format!(
            "not a valid safetensors file: header length {n} in a file of {file_len} bytes"
        )));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)
        .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
    #[derive(Deserialize)]
    struct Info {
        dtype: String,
        shape: Vec<usize>,
    }
    let raw: HashMap<String, serde_json::Value> = serde_json::from_slice(&buf)
        .map_err(|e| err(format!("not a valid safetensors file: header: {e}")))?;
    let mut metadata = HashMap::new();
    let mut tensors = Vec::new();
    for (k, v) in raw {
        if k == "__metadata__" {
            metadata = serde_json::from_value(v)
                .map_err(|e| err(format!("not a valid safetensors file: metadata: {e}")))?;
        } else {
            let i: Info = serde_json::from_value(v)
                .map_err(|e| err(format!("not a valid safetensors file: tensor {k:?}: {e}")))?;
            tensors.push((k, i.dtype, i.shape));
        }
    }
    tensors.sort();
    Ok(Header { metadata, tensors })
}

/// Refuses a header whose tensors could not be in the file, or whose metadata (class count, AirBench94's widths)
/// the file's own tensors contradict, before a model is built from it: a damaged header must not make the
/// loader allocate a model of terabytes (found by `tests/fuzz_checkpoint.rs`).
fn check_args_against_tensors(header: &Header, meta: &ModelMeta, path: &Path) -> Result<()> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut total: u64 = 0;
    for (name, dtype, shape) in &header.tensors {
        let size: u64 = match dtype.as_str() {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            _ => 1,
        };
        let bytes = shape
            .iter()
            .try_fold(size, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| bad(format!("tensor {name:?}: shape {shape:?} overflows")))?;
        total = total.saturating_add(bytes);
    }
    if total > file_len {
        return Err(bad(format!(
            "not a valid safetensors file: its header describes {total} bytes of tensors in a file of {file_len} bytes"
        )));
    }
    let shape_of = |name: &str| {
        header
            .tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, s)| s.as_slice())
    };
    let classes = meta.class_names.len();
    if !header
        .tensors
        .iter()
        .any(|(_, _, s)| s.len() == 2 && s[0] == classes)
    {
        return Err(bad(format!(
            "metadata \"class_names\" lists {classes} classes but no [{classes}, n] output layer is among its tensors"
        )));
    }
    if meta.model == crate::AirBench94::NAME
        && let Some(w) = meta.model_args.get("widths").and_then(|w| w.as_array())
    {
        for (g, w) in (2..).zip(w) {
            let w = w.as_u64().unwrap_or(0) as usize;
            let name = format!("{g}.conv2.weight");
            if shape_of(&name) != Some(&[w, w, 3, 3][..]) {
                return Err(bad(format!(
                    "metadata \"model_args\": width {w} of group {g} does not match tensor {name:?} ({:?})",
                    shape_of(&name)
                )));
            }
        }
    }
    Ok(())
}

/// The tensors and string metadata of a safetensors file.
pub struct Contents {
    /// Every tensor by name, on the device it was read onto.
    pub tensors: HashMap<String, Tensor>,
    /// The string metadata (empty when the file has none).
    pub metadata: HashMap<String, String>,
}

/// Writes `tensors` and `metadata` (plus `format`) to `path` atomically.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    metadata.insert(keys::FORMAT.into(), FORMAT.into());
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
    format_version(&metadata, path)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Contents { tensors, metadata })
}

/// Every tensor of a model's state: its parameters, then its buffers (BatchNorm running statistics, frozen
/// layers).
pub fn model_tensors(model: &dyn Classifier) -> Vec<(String, Tensor)> {
    let mut t = model.params().tensors();
    t.extend(model.buffers().tensors());
    t
}

/// Saves a model's parameters and buffers with its [`ModelMeta`] (and any extra metadata given). `metadata`'s
/// own `normalize` / `class_names` win; missing ones get the defaults (mean/std 0.5, the CIFAR-10 classes).
pub fn save_model(
    model: &dyn Classifier,
    path: &Path,
    metadata: HashMap<String, String>,
) -> Result<()> {
    write(
        path,
        &model_tensors(model),
        with_model_meta(model, metadata),
    )
}

/// `metadata` plus every [`ModelMeta`] key of `model` it lacks (`model`, `model_args` and `input_size` always
/// describe `model`).
pub fn with_model_meta(
    model: &dyn Classifier,
    mut metadata: HashMap<String, String>,
) -> HashMap<String, String> {
    let base = ModelMeta::for_model(
        model,
        Normalize::default(),
        cifar_types::default_class_names(model.num_classes()),
    );
    for (k, v) in base.to_metadata() {
        let own = [keys::MODEL, keys::MODEL_ARGS, keys::INPUT_SIZE].contains(&k.as_str());
        if own {
            metadata.insert(k, v);
        } else {
            metadata.entry(k).or_insert(v);
        }
    }
    metadata
}

/// Copies the parameters and buffers found in `tensors` into `model`, checking that every one is present with the
/// right shape; extra tensors (e.g. optimizer state) are ignored.
pub fn assign(
    model: &dyn Classifier,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    let all = || model.params().iter().chain(model.buffers().iter());
    // Check everything before changing anything.
    for (name, var) in all() {
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
    for (name, var) in all() {
        if let Some(t) = tensors.get(name) {
            var.set(&t.to_dtype(DType::F32)?.to_device(model.device())?)?;
        }
    }
    Ok(())
}

/// Loads parameters from `path` into an existing model.
pub fn load_into(model: &dyn Classifier, path: &Path) -> Result<()> {
    let c = read(path, model.device())?;
    if let Some(name) = c.metadata.get(keys::MODEL)
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
    Ok(load_model_with_meta(path, device)?.0)
}

/// [`load_model`], also returning the checkpoint's [`ModelMeta`]. The metadata is checked (format version,
/// values) before the tensors are read.
pub fn load_model_with_meta(
    path: &Path,
    device: &Device,
) -> Result<(Box<dyn Classifier>, ModelMeta)> {
    let header = read_header(path)?;
    let meta = ModelMeta::from_metadata(&header.metadata, path)?;
    check_args_against_tensors(&header, &meta, path)?;
    let model = build_from_args(
        &meta.model,
        &meta.model_args,
        meta.class_names.len(),
        device,
        path,
    )?;
    let c = read(path, device)?;
    assign(model.as_ref(), &c.tensors, path)?;
    Ok((model, meta))
}
