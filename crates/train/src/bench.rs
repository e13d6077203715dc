//! Throughput measurements of a model on random data: training steps ([`crate::Trainer::step`] itself: forward,
//! loss, backward, the optimizer and the weight average of the model's recipe) and inference, reported as medians
//! over repeated runs, plus the data pipeline. Used by `cifar bench` and `cargo xtask bench`.
//!
//! ```no_run
//! let dev = candle_core::Device::Cpu;
//! let m = cifar10_train::bench::Subject {
//!     model: "cnn-dnn",
//!     device: &dev,
//!     kernels: model::KernelConfig::default(),
//!     recipe: None,
//! };
//! let r = cifar10_train::bench::train_step(&m, 64, 5, 20, 3).unwrap();
//! println!("{}", r.json());
//! ```

use crate::{Result, TrainConfig, TrainerBuilder};
use augment::{Augment, batch_to_tensor};
use candle_core::{Device, Tensor};
use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
use model::{Classifier, KernelConfig, Mode, registry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// One measurement: images per second (median and all repeats).
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// `train`, `infer` or `data`.
    pub bench: &'static str,
    /// The model measured (None for the data pipeline).
    pub model: Option<String>,
    /// Images per step (for `data`: per batch prepared).
    pub batch: usize,
    /// The median of `repeats`, in images per second.
    pub img_per_s: f64,
    /// Every repeat's images per second, in ascending order.
    pub repeats: Vec<f64>,
    /// The convolution arithmetic the model ran with (None for the data pipeline).
    pub precision: Option<model::Precision>,
    /// The Winograd tiles the model's kernels were set to (None for the data pipeline).
    pub winograd: Option<model::Winograd>,
}

impl BenchResult {
    fn new(bench: &'static str, batch: usize, mut repeats: Vec<f64>) -> Self {
        repeats.sort_by(f64::total_cmp);
        let img_per_s = repeats.get(repeats.len() / 2).copied().unwrap_or(0.0);
        Self {
            bench,
            model: None,
            batch,
            img_per_s,
            repeats,
            precision: None,
            winograd: None,
        }
    }

    /// One JSON line in the format of the reference script's (`bench/reference_seed.py`) bench output: `bench`,
    /// `model`, `batch`, `img_per_s` (one decimal) and `precision` (`model` and `precision` only when known); and
    /// `winograd` where the tiles were set to other than `auto`.
    pub fn json(&self) -> String {
        let model = self
            .model
            .as_ref()
            .map(|m| format!(", \"model\": \"{m}\""))
            .unwrap_or_default();
        let precision = self
            .precision
            .map(|p| format!(", \"precision\": \"{p}\""))
            .unwrap_or_default();
        let winograd = self
            .winograd
            .filter(|w| *w != model::Winograd::Auto)
            .map(|w| format!(", \"winograd\": \"{w}\""))
            .unwrap_or_default();
        format!(
            "{{\"bench\": \"{}\"{model}, \"batch\": {}, \"img_per_s\": {:.1}{precision}{winograd}}}",
            self.bench, self.batch, self.img_per_s
        )
    }

    /// Names the model measured, and the convolution precision and Winograd tiles it ran with.
    fn for_model(mut self, model: &str, kernels: KernelConfig) -> Self {
        self.model = Some(model.to_string());
        self.precision = Some(kernels.precision());
        self.winograd = Some(kernels.winograd_tiles());
        self
    }
}

fn random_input(batch: usize, device: &Device, rng: &mut ChaCha8Rng) -> Result<(Tensor, Tensor)> {
    let x: Vec<f32> = (0..batch * IMAGE_BYTES)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    Ok((
        Tensor::from_vec(x, (batch, 3, 32, 32), device)?,
        Tensor::from_vec(y, batch, device)?,
    ))
}

/// What a bench measures: a registered model on a device with kernel settings.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The registered model's name.
    pub model: &'a str,
    /// Where it runs.
    pub device: &'a Device,
    /// Its kernel settings.
    pub kernels: KernelConfig,
    /// The preset whose recipe the training step runs (its optimizer, loss, averaging; it must train `model`);
    /// `None`: the model's default recipe ([`TrainConfig::for_model`]). Results are labelled with it.
    pub recipe: Option<&'a str>,
}

impl Subject<'_> {
    /// The name results are labelled with: the recipe's when one is given, else the model's.
    pub fn label(&self) -> &str {
        self.recipe.unwrap_or(self.model)
    }

    /// The training config of the step: the recipe's preset, else the model's default recipe.
    fn config(&self) -> Result<TrainConfig> {
        let Some(name) = self.recipe else {
            return Ok(TrainConfig::for_model(self.model));
        };
        let cfg = TrainConfig::preset(name)?;
        if cfg.model != self.model {
            return Err(crate::Error::Setting {
                setting: "preset",
                message: format!("the {name} recipe trains {}, not {}", cfg.model, self.model),
            });
        }
        Ok(cfg)
    }

    /// A fresh model (seed 0) with the kernel settings.
    fn build(&self) -> Result<Box<dyn Classifier>> {
        // The benches time CIFAR-sized batches with CIFAR-10's ten classes.
        let mut net = registry::build(self.model, self.device, 0, CIFAR10_CLASS_NAMES.len())?;
        net.set_kernels(self.kernels)?;
        Ok(net)
    }
}

/// Training steps per second × batch: `warmup` steps, then `repeats` timings of `steps` steps each, of the
/// trainer's own step ([`crate::Trainer::step`]) with the model's recipe (`TrainConfig::for_model`: its optimizer,
/// loss reduction, label smoothing and weight averaging) at batch size `batch`.
pub fn train_step(
    subject: &Subject<'_>,
    batch: usize,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> Result<BenchResult> {
    let (device, kernels) = (subject.device, subject.kernels);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let net = subject.build()?;
    let cfg = TrainConfig {
        batch_size: batch,
        precision: kernels.precision(),
        stock_ops: kernels.stock_ops(),
        ..subject.config()?
    };
    let mut trainer = TrainerBuilder::new(net.as_ref(), cfg).build()?;
    // A plan as long as a CIFAR-10 run, so the schedule and the averaging behave as in training.
    trainer.plan(50_000)?;
    let (x, y) = random_input(batch, device, &mut rng)?;
    // The model's data-dependent initialisation (airbench's whitening), as a run does before its first step:
    // without it airbench94's recipe diverges within a few steps on these inputs.
    let n = net.init_images().min(batch);
    if n > 0 {
        net.init_from_data(&x.narrow(0, 0, n)?)?;
    }
    let rates = timed(
        batch,
        warmup,
        steps,
        repeats,
        || trainer.step(&x, &y).map(|_| ()),
        device,
    )?;
    Ok(BenchResult::new("train", batch, rates).for_model(subject.label(), kernels))
}

/// Images per second of `step` (one batch each): `warmup` untimed calls, then `repeats` timings of `steps` calls.
fn timed(
    batch: usize,
    warmup: usize,
    steps: usize,
    repeats: usize,
    mut step: impl FnMut() -> Result<()>,
    device: &Device,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        step()?;
    }
    let steps = steps.max(1);
    let mut rates = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        for _ in 0..steps {
            step()?;
        }
        device.synchronize()?;
        rates.push((batch * steps) as f64 / t.elapsed().as_secs_f64());
    }
    Ok(rates)
}

/// Inference with test-time augmentation `tta` (e.g. airbench's 6 views) images per second.
pub fn inference_tta(
    subject: &Subject<'_>,
    tta: crate::Tta,
    batch: usize,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> Result<BenchResult> {
    let timing = (batch, warmup, steps, repeats);
    let rates = timed_inference(subject, timing, |net, x| {
        Ok(model::infer::probabilities(net, x, tta)?)
    })?;
    Ok(BenchResult::new("infer_tta", batch, rates).for_model(subject.label(), subject.kernels))
}

/// Inference (eval-mode forward) images per second.
pub fn inference(
    subject: &Subject<'_>,
    batch: usize,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> Result<BenchResult> {
    let timing = (batch, warmup, steps, repeats);
    let rates = timed_inference(subject, timing, |net, x| Ok(net.forward(x, Mode::Eval)?))?;
    Ok(BenchResult::new("infer", batch, rates).for_model(subject.label(), subject.kernels))
}

/// Rates of `infer` on one random batch of a fresh `model_name`, the result copied to the host as a caller would;
/// `timing` is (batch, warmup, steps, repeats) as for [`timed`].
fn timed_inference(
    subject: &Subject<'_>,
    (batch, warmup, steps, repeats): (usize, usize, usize, usize),
    infer: impl Fn(&dyn model::Classifier, &Tensor) -> Result<Tensor>,
) -> Result<Vec<f64>> {
    let device = subject.device;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let net = subject.build()?;
    let (x, _) = random_input(batch, device, &mut rng)?;
    let forward = || -> Result<()> {
        infer(net.as_ref(), &x)?.to_device(&Device::Cpu)?;
        Ok(())
    };
    timed(batch, warmup, steps, repeats, forward, device)
}

/// The augmentation pipeline (flip + pad-crop + normalize into a tensor) on one thread, images per second.
pub fn data_pipeline(batch: usize, images: usize, repeats: usize) -> Result<BenchResult> {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = images.max(batch);
    let px: Vec<u8> = (0..n * IMAGE_BYTES).map(|_| rng.random()).collect();
    let names = CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let set = ImageSet::new(px, vec![0; n], names)?;
    let idx: Vec<usize> = (0..n).collect();
    let mut rates = Vec::with_capacity(repeats);
    for r in 0..repeats.max(1) {
        let t = Instant::now();
        for (k, chunk) in idx.chunks(batch.max(1)).enumerate() {
            batch_to_tensor(
                &set,
                chunk,
                &Augment::default(),
                (r * 100_000 + k) as u64,
                &Device::Cpu,
            )?;
        }
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    Ok(BenchResult::new("data", batch, rates))
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_medians_and_json() {
        let r = BenchResult::new("train", 64, vec![3.0, 1.0, 2.0]);
        assert_eq!(r.img_per_s, 2.0);
        assert_eq!(
            r.json(),
            "{\"bench\": \"train\", \"batch\": 64, \"img_per_s\": 2.0}"
        );
        assert!(peak_rss_bytes().unwrap_or(1) > 0);
    }

    #[test]
    fn runs_on_cpu() {
        let s = Subject {
            model: "cnn-dnn",
            device: &Device::Cpu,
            kernels: KernelConfig::default(),
            recipe: None,
        };
        let r = train_step(&s, 4, 1, 2, 1).unwrap();
        assert!(r.img_per_s > 0.0);
        let r = inference(&s, 4, 1, 1, 1).unwrap();
        assert!(r.img_per_s > 0.0);
        assert!(data_pipeline(8, 16, 1).unwrap().img_per_s > 0.0);
    }

    /// A recipe runs its own optimizer and labels the results; one that trains another model is refused.
    #[test]
    fn a_recipe_labels_its_results_and_must_fit_the_model() {
        let s = Subject {
            model: "airbench94",
            device: &Device::Cpu,
            kernels: KernelConfig::default(),
            recipe: Some("airbench94-muon"),
        };
        let r = train_step(&s, 4, 1, 1, 1).unwrap();
        assert_eq!(r.model.as_deref(), Some("airbench94-muon"));
        assert!(r.img_per_s > 0.0);
        let wrong = Subject {
            model: "cnn-dnn",
            ..s
        };
        let e = train_step(&wrong, 4, 1, 1, 1).unwrap_err().to_string();
        assert!(
            e.contains("airbench94-muon recipe trains airbench94, not cnn-dnn"),
            "{e}"
        );
    }
}
