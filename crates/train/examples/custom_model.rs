//! Train your own model with this crate, without touching the registry: implement `model::Classifier` (four
//! methods; buffers, data-dependent init and per-epoch hooks are optional) and call `train::run_model`.
//!
//! ```sh
//! cargo run --release -p train --example custom_model              # synthetic data, a few seconds
//! cargo run --release -p train --example custom_model -- data      # CIFAR-10 from a data directory
//! ```

use candle_core::{DType, Device, Tensor, Var};
use cifar_types::{CLASS_NAMES, IMAGE_BYTES, ImageSet};
use model::{Classifier, Mode, Params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use train::{Data, StopFlag, TrainConfig, run_model};

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
        CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
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
    let net = PooledLinear::new(&Device::Cpu)?;
    let cfg = TrainConfig {
        model: net.name().into(),
        epochs: 3,
        batch_size: 128,
        lr: 5e-3,
        device: "cpu".into(),
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir()?;
    let outcome = run_model(
        &net,
        "cpu",
        &cfg,
        &data,
        out.path(),
        &StopFlag::default(),
        false,
    )?;
    if let Some(r) = outcome.test_report {
        println!(
            "test accuracy {:.2}% after {} epochs",
            100.0 * r.accuracy,
            outcome.history.epochs.len()
        );
    }
    Ok(())
}
