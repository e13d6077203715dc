//! `cifar bench`: the train and inference steps' throughput on random images (what `cargo xtask bench` runs next
//! to PyTorch), and which kernel builds ran.

use crate::args::BenchArgs;
use crate::commands::rayon_threads;
use anyhow::{Result, bail};
use std::process::ExitCode;

/// The kernel builds this process ran (each family's name and its levels, `avx2` or e.g. `avx2,avx512`), the
/// level they were picked for (capped by `CPU_OPS_MAX_ISA`) and this CPU's own level.
fn kernel_builds() -> (Vec<(&'static str, String)>, String, String) {
    let builds = cpu_ops::builds_run()
        .into_iter()
        .map(|(f, levels)| {
            let names: Vec<&str> = levels.iter().map(|i| i.name()).collect();
            (f.name(), names.join(","))
        })
        .collect();
    (
        builds,
        cpu_ops::Isa::detect().to_string(),
        cpu_ops::Isa::hardware().to_string(),
    )
}

pub(crate) fn bench_cmd(a: BenchArgs) -> Result<ExitCode> {
    use train::bench;
    let recipe = a
        .preset
        .as_deref()
        .map(train::TrainConfig::preset)
        .transpose()?;
    let model_name = match (&a.model, &recipe) {
        (Some(m), _) => m.clone(),
        (None, Some(r)) => r.model.clone(),
        (None, None) => model::registry::DEFAULT_MODEL.to_string(),
    };
    let train_batches = a.train_batches.clone().unwrap_or_else(|| match &recipe {
        Some(r) => vec![r.batch_size],
        None if model_name == model::AirBench94::NAME => vec![1024, 256],
        None => vec![64, 128],
    });
    if train_batches.contains(&0) || a.infer_batch == 0 {
        bail!("--train-batches / --infer-batch: expected sizes of at least 1");
    }
    let (device, desc, kernels) = a.compute.open(a.stock_ops)?;
    let subject = bench::Subject {
        model: &model_name,
        device: &device,
        kernels,
        recipe: a.preset.as_deref(),
    };
    let table = |line: String| {
        if !a.json {
            println!("{line}");
        }
    };
    table(format!(
        "# {}{} ({} convolutions) on {desc}, {} rayon threads, median of {} repeats x {} steps",
        subject.label(),
        if a.stock_ops {
            " (stock candle ops)"
        } else {
            ""
        },
        match kernels.winograd_tiles() {
            model::Winograd::Auto => kernels.precision().to_string(),
            w => format!("{}, winograd {w}", kernels.precision()),
        },
        rayon_threads(),
        a.repeats,
        a.steps
    ));
    let mut results = Vec::new();
    for &b in &train_batches {
        let r = bench::train_step(&subject, b, 3, a.steps, a.repeats)?;
        table(format!("train  batch {b:>4}: {:>8.1} img/s", r.img_per_s));
        results.push(r);
    }
    // A recipe changes the training step only: inference and the data pipeline are the model's (measured
    // without --preset).
    if recipe.is_none() {
        let r = bench::inference(
            &subject,
            a.infer_batch,
            2,
            a.steps.div_ceil(4).max(2),
            a.repeats,
        )?;
        table(format!(
            "infer  batch {:>4}: {:>8.1} img/s",
            a.infer_batch, r.img_per_s
        ));
        results.push(r);
        if model_name == model::AirBench94::NAME {
            let r = bench::inference_tta(
                &subject,
                train::Tta::MirrorShift,
                a.infer_batch,
                1,
                a.steps.div_ceil(8).max(1),
                a.repeats,
            )?;
            table(format!(
                "infer  batch {:>4}: {:>8.1} img/s with the 6-view TTA",
                a.infer_batch, r.img_per_s
            ));
            results.push(r);
        }
        let r = bench::data_pipeline(64, 10_000, a.repeats)?;
        table(format!(
            "data   batch   64: {:>8.1} img/s (augmentation, one thread)",
            r.img_per_s
        ));
        results.push(r);
    }
    let (builds, isa, cpu) = kernel_builds();
    let mut listed: Vec<String> = builds.iter().map(|(f, l)| format!("{f} {l}")).collect();
    if listed.is_empty() {
        listed.push("no SIMD kernel of cpu-ops".into());
    }
    table(format!(
        "kernels run: {} (level {isa}; this CPU: {cpu})",
        listed.join(", ")
    ));
    let gemm = device.is_cpu().then(cpu_ops::gemm_speed).flatten();
    if let Some(g) = gemm {
        table(format!(
            "bf16 GEMM on this CPU: {:.0} GFLOP/s against f32's {:.0} ({:.2}x, one thread)",
            g.bf16_gflops,
            g.f32_gflops,
            g.ratio()
        ));
    }
    if let Some(rss) = bench::peak_rss_bytes() {
        table(format!(
            "peak RSS: {:.0} MiB",
            rss as f64 / (1024.0 * 1024.0)
        ));
    }
    if a.json {
        let families: serde_json::Map<String, serde_json::Value> = builds
            .iter()
            .map(|(f, levels)| (f.to_string(), levels.as_str().into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "kernels": families,
                "isa": isa,
                "cpu_isa": cpu,
                "gemm_gflops": gemm.map(|g| serde_json::json!({"bf16": g.bf16_gflops, "f32": g.f32_gflops})),
            })
        );
        for r in &results {
            println!("{}", r.json());
        }
    }
    Ok(ExitCode::SUCCESS)
}
