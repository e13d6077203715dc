//! A tour of the model crate: the registry's models with their sizes, a forward pass of `cnn-dnn`, a checkpoint
//! saved and loaded back with its metadata, and the kernel settings a model runs with.
//!
//! ```sh
//! cargo run --release -p cifar10-model --example registry_tour
//! ```
//!
//! Everything runs on the CPU; the checkpoint goes to a temporary directory that is deleted at the end.

use candle_core::{DType, Device, Tensor};
use cifar10_model::checkpoint::{self, Normalize};
use cifar10_model::{Mode, Precision, registry};
use std::collections::HashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;

    // 1. Every registered model (`--model NAME` in the `cifar` CLI); the first is the default.
    println!(
        "{:<12} {:>12} {:>13}  description",
        "model", "parameters", "MFLOP/image"
    );
    for spec in registry::MODELS {
        println!(
            "{:<12} {:>12} {:>13.1}  {}",
            spec.name,
            spec.param_count(10)?,
            spec.mflops_per_image(10),
            spec.description
        );
    }

    // 2. Build one by name (seeded initialisation) and run a forward pass.
    let mut net = registry::build("cnn-dnn", &device, 42, 10)?;
    let x = Tensor::zeros((4, 3, 32, 32), DType::F32, &device)?;
    let logits = net.forward(&x, Mode::Eval)?;
    let first: Vec<f32> = logits.get(0)?.to_vec1()?;
    println!(
        "\n{} forward on zeros {:?} -> logits {:?}; image 0: {:.3?}",
        net.name(),
        x.dims(),
        logits.dims(),
        first
    );

    // 3. A self-describing checkpoint: the tensors under their PyTorch names, plus metadata (model name,
    //    constructor arguments, input normalization, class names, input size).
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("best.safetensors");
    let mut meta = HashMap::new();
    meta.insert(
        checkpoint::keys::NORMALIZE.to_string(),
        serde_json::to_string(&Normalize::CIFAR10)?,
    );
    checkpoint::save_model(net.as_ref(), &path, meta)?;
    let header = checkpoint::read_header(&path)?;
    println!(
        "\nsaved {} ({} bytes); its metadata:",
        path.display(),
        std::fs::metadata(&path)?.len()
    );
    let mut keys: Vec<_> = header.metadata.iter().collect();
    keys.sort();
    for (k, v) in keys {
        println!("  {k:<12} {v}");
    }
    let (loaded, meta) = checkpoint::load_model_with_meta(&path, &device)?;
    println!(
        "loaded back: model {} (format {}), normalize mean {:?} std {:?}, {} classes ({}, ...), input {:?}",
        meta.model,
        meta.format_version,
        meta.normalize.mean,
        meta.normalize.std,
        meta.class_names.len(),
        meta.class_names
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        meta.input_size
    );
    let diff = (loaded.forward(&x, Mode::Eval)? - &logits)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    println!("same logits after the round trip: max |diff| = {diff}");

    // 4. Kernel settings: this crate's CPU kernels by default; candle's stock ops for comparisons.
    println!("\nkernels: {:?}", net.kernels());
    let stock =
        cifar10_model::device::kernels(&Device::Cpu, Precision::F32, true, Default::default())?;
    net.set_kernels(stock)?;
    let diff = (net.forward(&x, Mode::Eval)? - &logits)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    println!(
        "with device::kernels(cpu, f32, stock_ops = true): stock_ops = {}, logits differ by at most {diff:.1e}",
        net.kernels().stock_ops()
    );
    match cifar10_model::device::kernels(&Device::Cpu, Precision::Bf16, false, Default::default()) {
        Ok(k) => println!("bf16 convolutions are available on this CPU: {k:?}"),
        Err(e) => println!("bf16 convolutions: {e}"),
    }
    Ok(())
}
