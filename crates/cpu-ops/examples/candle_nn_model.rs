//! Drop this crate's ops into a plain candle-nn model.
//!
//! The layers are ordinary `candle_nn::Conv2d` / `candle_nn::Linear` values created from a `VarMap` through a
//! `VarBuilder`, trained with `candle_nn::AdamW`; only the forward pass changes: instead of
//! `conv.forward(&x)?.relu()?.max_pool2d(2)?` it calls `k.conv3x3_relu_pool(&x, conv.weight(), bias)` (one fused op
//! with its own backward) and `k.linear(..)` on the layers' tensors, where `k` is a `candle_cpu_ops::KernelConfig`.
//! The same model with `KernelConfig::stock()` runs candle's stock ops (conv2d + bias + ReLU + max_pool2d), so the
//! example checks that both agree, trains a few steps on synthetic data (the loss goes down) and times a training
//! step with either.
//!
//! ```sh
//! cargo run --release -p candle-cpu-ops --example candle_nn_model
//! ```
//!
//! The ops dispatch: on a CPU f32 tensor they run this crate's kernels; on CUDA (or another dtype) they fall back to
//! candle's ops, so the same model code runs everywhere.

use candle_core::{DType, Device, Module, Tensor};
use candle_cpu_ops::KernelConfig;
use candle_nn::{AdamW, Conv2d, Conv2dConfig, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const CLASSES: usize = 10;
const TRAIN_STEPS: usize = 40;
const TIMED_STEPS: usize = 5;

/// A small CNN: two 3x3 conv (+ bias) + ReLU + 2x2 max-pool blocks, then a two-layer linear head.
///
/// `[B, 3, 32, 32]` -> conv1 `[B, 32, 16, 16]` -> conv2 `[B, 64, 8, 8]` -> fc1 (4096 -> 128, ReLU) -> fc2 (128 -> 10).
struct SmallCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl SmallCnn {
    /// Creates the layers with candle-nn's constructors (and its default initialisation).
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv1: candle_nn::conv2d(3, 32, 3, same, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(32, 64, 3, same, vb.pp("conv2"))?,
            fc1: candle_nn::linear(64 * 8 * 8, 128, vb.pp("fc1"))?,
            fc2: candle_nn::linear(128, CLASSES, vb.pp("fc2"))?,
        })
    }

    /// Logits `[B, 10]`, computed with the kernels `k`.
    fn forward(&self, x: &Tensor, k: &KernelConfig) -> candle_core::Result<Tensor> {
        let h = conv_relu_pool(k, &self.conv1, x)?;
        let h = conv_relu_pool(k, &self.conv2, &h)?;
        let h = h.flatten_from(1)?;
        let h = k.linear(&h, self.fc1.weight(), self.fc1.bias(), true)?;
        k.linear(&h, self.fc2.weight(), self.fc2.bias(), false)
    }

    /// The same forward pass written with candle-nn's `Module::forward` (what the model would be without this
    /// crate), to check the results.
    fn forward_candle_nn(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.conv1.forward(x)?.relu()?.max_pool2d(2)?;
        let h = self.conv2.forward(&h)?.relu()?.max_pool2d(2)?;
        let h = self.fc1.forward(&h.flatten_from(1)?)?.relu()?;
        self.fc2.forward(&h)
    }
}

/// `max_pool2x2(relu(conv3x3(x) + b))` on a candle-nn `Conv2d` (3x3, stride 1, padding 1, with bias).
fn conv_relu_pool(k: &KernelConfig, conv: &Conv2d, x: &Tensor) -> candle_core::Result<Tensor> {
    let bias = conv.bias().ok_or_else(|| {
        candle_core::Error::Msg("conv3x3_relu_pool needs a conv with a bias".into())
    })?;
    k.conv3x3_relu_pool(x, conv.weight(), bias)
}

/// Synthetic images whose class is a fixed random pattern under noise: `(images [N, 3, 32, 32], labels [N])`.
fn synthetic(n: usize, seed: u64) -> candle_core::Result<(Tensor, Tensor)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let px = 3 * 32 * 32;
    let patterns: Vec<f32> = (0..CLASSES * px)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut images = Vec::with_capacity(n * px);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % CLASSES;
        labels.push(c as u32);
        images.extend(
            patterns[c * px..(c + 1) * px]
                .iter()
                .map(|&p| 0.5 * (p + rng.random_range(-1.5f32..1.5))),
        );
    }
    Ok((
        Tensor::from_vec(images, (n, 3, 32, 32), &Device::Cpu)?,
        Tensor::from_vec(labels, n, &Device::Cpu)?,
    ))
}

/// One training step (forward, cross-entropy, backward, AdamW update); returns the loss and the step's time.
fn step(
    net: &SmallCnn,
    opt: &mut AdamW,
    k: &KernelConfig,
    x: &Tensor,
    y: &Tensor,
) -> candle_core::Result<(f32, Duration)> {
    let t = Instant::now();
    let loss = candle_nn::loss::cross_entropy(&net.forward(x, k)?, y)?;
    opt.backward_step(&loss)?;
    let loss = loss.to_scalar::<f32>()?;
    Ok((loss, t.elapsed()))
}

/// The `i`-th batch of `BATCH` images (wrapping around the set).
fn batch(images: &Tensor, labels: &Tensor, i: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let n = images.dim(0)?;
    let start = (i * BATCH) % (n - BATCH + 1);
    Ok((
        images.narrow(0, start, BATCH)?,
        labels.narrow(0, start, BATCH)?,
    ))
}

fn new_model() -> candle_core::Result<(SmallCnn, AdamW)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let net = SmallCnn::new(vb)?;
    let opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )?;
    Ok((net, opt))
}

fn mean_ms(d: &[Duration]) -> f64 {
    d.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / d.len().max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Flush subnormal floats to zero on this thread and rayon's pool (where the kernels run): a process-wide
    // setting, for applications. Adam's decaying moments otherwise slow long CPU runs down.
    candle_cpu_ops::flush_denormals_everywhere();
    let fast = KernelConfig::default();
    let stock = KernelConfig::stock();
    let (images, labels) = synthetic(1024, 7)?;

    // 1. The fused ops compute what candle-nn's layers compute.
    let (net, mut opt) = new_model()?;
    let (x, _) = batch(&images, &labels, 0)?;
    let reference = net.forward_candle_nn(&x)?;
    for (name, k) in [("candle_cpu_ops", &fast), ("KernelConfig::stock()", &stock)] {
        let diff = (net.forward(&x, k)? - &reference)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        println!("forward with {name:<22} vs candle-nn Module::forward: max |diff| = {diff:.2e}");
    }

    // 2. Train with this crate's kernels.
    println!(
        "training {TRAIN_STEPS} steps (batch {BATCH}, AdamW lr 1e-3) with candle_cpu_ops, {} rayon threads",
        rayon::current_num_threads()
    );
    let mut fast_times = Vec::new();
    let mut window = Vec::new();
    for i in 0..TRAIN_STEPS {
        let (x, y) = batch(&images, &labels, i)?;
        let (loss, dt) = step(&net, &mut opt, &fast, &x, &y)?;
        if i > 0 {
            fast_times.push(dt); // the first step also allocates: not timed
        }
        window.push(loss);
        if window.len() == 5 {
            let mean = window.iter().sum::<f32>() / window.len() as f32;
            println!(
                "  steps {:>2}-{:>2}: mean loss {mean:.4}",
                i + 1 - window.len(),
                i
            );
            window.clear();
        }
    }

    // 3. The same model on candle's stock ops, fresh weights: a warm-up step, then timed steps. (Only the times
    //    compare: candle 0.11.1's stock max-pool backward scales a window's gradient by 1/4, so its training differs.)
    let (net, mut opt) = new_model()?;
    let mut stock_times = Vec::new();
    for i in 0..=TIMED_STEPS {
        let (x, y) = batch(&images, &labels, i)?;
        let (_, dt) = step(&net, &mut opt, &stock, &x, &y)?;
        if i > 0 {
            stock_times.push(dt);
        }
    }
    let (f, s) = (mean_ms(&fast_times), mean_ms(&stock_times));
    println!("training step, batch {BATCH} (forward + backward + AdamW):");
    println!(
        "  candle_cpu_ops kernels: {f:>8.1} ms (mean of {} steps)",
        fast_times.len()
    );
    println!(
        "  candle stock ops:       {s:>8.1} ms (mean of {} steps)",
        stock_times.len()
    );
    println!("  ratio stock / fused:    {:>8.2}x", s / f);
    Ok(())
}
