//! Train your own model with this crate, without touching the registry: implement `model::Classifier` (four
//! methods; buffers, data-dependent init and per-epoch hooks are optional), bring your own optimizer (a
//! `cifar10_train::optim::Optimizer`) and a callback (a `cifar10_train::Callback`), and hand them to `cifar10_train::TrainerBuilder`.
//!
//! ```sh
//! cargo run --release -p cifar10-train --example custom_model              # synthetic data, a few seconds
//! cargo run --release -p cifar10-train --example custom_model -- data      # CIFAR-10 from a data directory
//! ```

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use cifar_types::{CIFAR10_CLASS_NAMES, IMAGE_BYTES, ImageSet};
use cifar10_train::optim::Optimizer;
use cifar10_train::{Callback, Control, Data, EpochEnd, TrainConfig, TrainerBuilder};
use model::{Classifier, Mode, Params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// A tiny classifier: 4x4 average pooling, then one linear layer (3·8·8 → 10).
struct PooledLinear {
    params: Params,
    w: Var,
    b: Var,
    device: Device,
}

impl PooledLinear {
    #[allow(clippy::result_large_err)] // model::Error's size is model's business; the example returns it as is.
    fn new(device: &Device) -> model::Result<Self> {
        let w = Var::zeros((10, 192), DType::F32, device)?;
        let b = Var::zeros(10, DType::F32, device)?;
        let mut params = Params::default();
        params.push("fc.weight", w.clone());
        params.push("fc.bias", b.clone());
        Ok(Self {
            params,
            w,
            b,
            device: device.clone(),
        })
    }
}

impl Classifier for PooledLinear {
    fn name(&self) -> &'static str {
        "pooled-linear"
    }

    fn forward(&self, x: &Tensor, _mode: Mode<'_>) -> model::Result<Tensor> {
        let h = x.avg_pool2d(4)?.flatten_from(1)?;
        Ok(h.matmul(&self.w.as_tensor().t()?)?
            .broadcast_add(self.b.as_tensor())?)
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn num_classes(&self) -> usize {
        self.b.dims()[0]
    }
}

/// Plain SGD, `θ ← θ − lr·g`, written here: any `Optimizer` trains.
struct PlainSgd {
    params: Vec<Var>,
    lr: f64,
    steps: u64,
}

impl Optimizer for PlainSgd {
    fn name(&self) -> &'static str {
        "plain-sgd"
    }

    fn step(&mut self, grads: &GradStore) -> cifar10_train::Result<()> {
        for p in &self.params {
            if let Some(g) = grads.get(p.as_tensor()) {
                p.set(&(p.as_tensor() - (g * self.lr)?)?)?;
            }
        }
        self.steps += 1;
        Ok(())
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    // No state beyond the step count, so nothing to save for a resume.
    fn state(&self) -> cifar10_train::Result<(Vec<(String, Tensor)>, u64)> {
        Ok((Vec::new(), self.steps))
    }

    fn load_state(
        &mut self,
        _: &HashMap<String, Tensor>,
        steps: u64,
        _: &Path,
    ) -> cifar10_train::Result<()> {
        self.steps = steps;
        Ok(())
    }
}

/// Prints one line per epoch and stops once the validation accuracy reaches 99%.
struct Report;

impl Callback for Report {
    fn on_epoch_end(&mut self, e: &EpochEnd<'_>) -> Control {
        let m = e.metrics;
        println!(
            "epoch {}/{}: train loss {:.3}, val acc {:.1}%",
            m.epoch,
            e.epochs,
            m.train_loss,
            100.0 * m.val_acc
        );
        if m.val_acc >= 0.99 {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

/// Images whose class sets the colour of a centred square.
fn synthetic(n: usize, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut px = vec![0u8; n * IMAGE_BYTES];
    let mut labels = Vec::with_capacity(n);
    for (i, img) in px.chunks_exact_mut(IMAGE_BYTES).enumerate() {
        let class = i % 10;
        labels.push(class as u8);
        for c in 0..3 {
            let colour = [class * 25, (9 - class) * 25, (class * 7) % 10 * 25][c] as i32;
            for y in 0..32 {
                for x in 0..32 {
                    let base = if (8..24).contains(&y) && (8..24).contains(&x) {
                        colour
                    } else {
                        128
                    };
                    img[c * 1024 + y * 32 + x] =
                        (base + rng.random_range(-20..=20)).clamp(0, 255) as u8;
                }
            }
        }
    }
    ImageSet::new(
        px,
        labels,
        CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
    )
    .expect("synthetic images are well-formed")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = match std::env::args().nth(1) {
        Some(dir) => {
            let all = dataset::load(std::path::Path::new(&dir))?;
            let (train, val) = dataset::split(&all.train, 0.1, 42, false)?;
            Data {
                train,
                val,
                test: all.test,
            }
        }
        None => Data {
            train: synthetic(2000, 1),
            val: synthetic(500, 2),
            test: synthetic(500, 3),
        },
    };
    // The device is named once: the model lives there, and the trainer takes it from the model.
    let net = PooledLinear::new(&Device::Cpu)?;
    let cfg = TrainConfig {
        model: net.name().into(),
        epochs: 5,
        batch_size: 128,
        ..TrainConfig::default()
    };
    let sgd = PlainSgd {
        params: net.params().iter().map(|(_, v)| v.clone()).collect(),
        lr: 0.0,
        steps: 0,
    };
    let out = tempfile::tempdir()?;
    let outcome = TrainerBuilder::new(&net, cfg)
        .run_dir(out.path())
        .optimizer(Box::new(sgd))
        // Any `Fn(step, total_steps) -> f64` is a schedule: here a linear decay from 0.05.
        .schedule(|step: usize, total: usize| 0.05 * (1.0 - step as f64 / total as f64))
        .callback(Report)
        .build()?
        .fit(&data)?;
    if let Some(r) = outcome.test_report {
        println!(
            "test accuracy {:.2}% after {} epochs",
            100.0 * r.accuracy,
            outcome.history.epochs.len()
        );
    }
    Ok(())
}
