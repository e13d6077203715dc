//! A loaded model ready to classify decoded images: checkpoint, metadata, normalization and TTA together.

use crate::Tta;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use imagefile::{INPUT_BYTES, SIDE};
use model::KernelConfig;
use model::checkpoint::ModelMeta;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A classifier session: a checkpoint's model with its [`ModelMeta`] (class names, normalization), on a device,
/// with a test-time augmentation. [`Session::probabilities`] takes the 32x32 inputs of
/// [`load_path`](crate::load_path) / [`load_bytes`](crate::load_bytes) and returns one probability row per image,
/// exactly what `train::evaluate` computes for the same pixels (the same `model::infer` code). The model runs
/// with its own kernel settings ([`Session::with_kernels`]).
pub struct Session {
    net: Box<dyn model::Classifier>,
    meta: ModelMeta,
    normalize: model::checkpoint::Normalize,
    tta: Tta,
    checkpoint: PathBuf,
}

impl Session {
    /// Loads the self-describing checkpoint `path` (model, constructor arguments, normalization, class names)
    /// onto `device`.
    pub fn load(path: &Path, device: &Device, tta: Tta) -> Result<Self> {
        let (net, meta) = model::checkpoint::load_model_with_meta(path, device)?;
        note_defaults(path, &meta);
        let mut s = Self::new(net, meta, tta);
        s.checkpoint = path.to_path_buf();
        Ok(s)
    }

    /// A session over a model already in memory, described by `meta`.
    pub fn new(net: Box<dyn model::Classifier>, meta: ModelMeta, tta: Tta) -> Self {
        let normalize = meta.normalize;
        Self {
            net,
            meta,
            normalize,
            tta,
            checkpoint: PathBuf::new(),
        }
    }

    /// The session with test-time augmentation `tta` (e.g. the checkpoint's own, `meta().eval_tta`).
    pub fn with_tta(mut self, tta: Tta) -> Self {
        self.tta = tta;
        self
    }

    /// The session with the model's passes on `kernels` (e.g. bf16 convolutions: `model::device::kernels`).
    pub fn with_kernels(mut self, kernels: KernelConfig) -> Result<Self> {
        self.net.set_kernels(kernels)?;
        Ok(self)
    }

    /// The kernel settings the model runs with.
    pub fn kernels(&self) -> KernelConfig {
        self.net.kernels()
    }

    /// The checkpoint's metadata: model name and arguments, normalization, class names, format version.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The class names of the metadata, in the order of the probabilities.
    pub fn class_names(&self) -> &[String] {
        &self.meta.class_names
    }

    /// The registry name of the model (e.g. `cnn-dnn`).
    pub fn model_name(&self) -> &'static str {
        self.net.name()
    }

    /// The test-time augmentation [`Session::probabilities`] applies.
    pub fn tta(&self) -> Tta {
        self.tta
    }

    /// The checkpoint file the session was loaded from (empty for [`Session::new`]).
    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        self.net.device()
    }

    /// `cpu`, `cuda:N` (or the device's debug name).
    pub fn device_name(&self) -> String {
        match self.net.device().location() {
            candle_core::DeviceLocation::Cpu => "cpu".into(),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            other => format!("{other:?}"),
        }
    }

    /// Class probabilities of each image (`[3, 32, 32]` u8 pixels, e.g. [`Input::pixels`](crate::Input)), in
    /// eval mode with the session's TTA: one row of `class_names().len()` values per image, summing to 1.
    /// The images go through the model as one batch.
    pub fn probabilities(&self, images: &[&[u8]]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut x = vec![0f32; images.len() * INPUT_BYTES];
        for (img, dst) in images.iter().zip(x.chunks_exact_mut(INPUT_BYTES)) {
            if img.len() != INPUT_BYTES {
                return Err(Error::InputSize {
                    expected: INPUT_BYTES,
                    found: img.len(),
                });
            }
            augment::normalize_into(img, dst, &self.normalize);
        }
        let side = SIDE as usize;
        let x = Tensor::from_vec(x, (images.len(), 3, side, side), self.net.device())?;
        let p = model::infer::probabilities(self.net.as_ref(), &x, self.tta)?;
        let p = p.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
        if let Some(row) = p.first()
            && row.len() != self.meta.class_names.len()
        {
            return Err(Error::ClassCount {
                outputs: row.len(),
                classes: self.meta.class_names.len(),
            });
        }
        Ok(p)
    }
}

/// Logs which metadata an (older) checkpoint lacks and the defaults used instead.
pub fn note_defaults(path: &Path, meta: &ModelMeta) {
    if !meta.defaulted.is_empty() {
        tracing::info!(
            "{}: checkpoint format {} without {} metadata; using defaults: model {}, mean {:?} / std {:?}, CIFAR-10 classes",
            path.display(),
            meta.format_version,
            meta.defaulted.join(", "),
            meta.model,
            meta.normalize.mean,
            meta.normalize.std
        );
    }
}

/// One predicted class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked<'a> {
    /// The class name (`?` when the names do not cover `index`).
    pub class: &'a str,
    /// The class index (the position in the probability row).
    pub index: usize,
    /// Its probability: the value at `index` of the row handed to [`top_k`].
    pub probability: f32,
}

/// The `k` most probable classes of the probability row `p`, most probable first (ties: the lower class index
/// first); a class without a name is `?`.
pub fn top_k<'a>(p: &[f32], names: &'a [String], k: usize) -> Vec<Ranked<'a>> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| Ranked {
            class: names.get(i).map_or("?", |s| s.as_str()),
            index: i,
            probability: p[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability_then_index() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let r = top_k(&[0.2, 0.4, 0.4, 0.0], &names, 3);
        let got: Vec<(&str, usize)> = r.iter().map(|r| (r.class, r.index)).collect();
        assert_eq!(got, [("b", 1), ("c", 2), ("a", 0)]);
        assert_eq!(top_k(&[0.1, 0.0, 0.0, 0.9], &names, 1)[0].class, "?");
    }

    #[test]
    fn a_session_gives_one_distribution_per_image() {
        let dev = Device::Cpu;
        let net = model::registry::build("cnn-dnn", &dev, 3, 10).unwrap();
        let meta = ModelMeta::for_model(
            net.as_ref(),
            model::checkpoint::Normalize::default(),
            (0..10).map(|i| format!("c{i}")).collect(),
        );
        let s = Session::new(net, meta, Tta::None);
        assert_eq!(s.device_name(), "cpu");
        let a = vec![10u8; INPUT_BYTES];
        let b: Vec<u8> = (0..INPUT_BYTES).map(|i| (i % 251) as u8).collect();
        let both = s.probabilities(&[&a, &b]).unwrap();
        assert_eq!(both.len(), 2);
        for row in &both {
            assert_eq!(row.len(), 10);
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        let one = s.probabilities(&[&b]).unwrap();
        let diff = one[0]
            .iter()
            .zip(&both[1])
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "batch of one vs two: {diff}");
        assert!(matches!(
            s.probabilities(&[&a[..10]]),
            Err(Error::InputSize { .. })
        ));
        assert!(s.probabilities(&[]).unwrap().is_empty());
    }
}
