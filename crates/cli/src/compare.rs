//! `cifar compare RUN_DIR...`: runs side by side (validation curves, per-class test accuracy, a table of cost
//! and accuracy) in `compare.html` plus PNG/SVG charts.

use crate::args::ChartFormat;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    after_help = "Each RUN_DIR is a directory written by `cifar train` (config.json and history.json \
required; test_report.json and run_summary.json used when present). Runs may differ in length and may lack a \
validation split (their validation curves are left out)."
)]
pub struct CompareArgs {
    /// The run directories, in the order of the table and the legends.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where compare.html and the charts go (created if missing) [default: runs/compare-<UTC date-time>, under
    /// the git-ignored runs/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Image format of the charts.
    #[arg(long, value_enum, default_value_t = ChartFormat::Png)]
    pub format: ChartFormat,
}

pub fn compare_cmd(a: CompareArgs) -> Result<ExitCode> {
    let out = a.out.clone().unwrap_or_else(|| {
        crate::commands::unique_dir(
            std::path::Path::new("runs"),
            &format!(
                "compare-{}",
                crate::time::utc_stamp(std::time::SystemTime::now())
            ),
        )
    });
    let format = match a.format {
        ChartFormat::Png => viz::Format::Png,
        ChartFormat::Svg => viz::Format::Svg,
    };
    let mut runs = Vec::with_capacity(a.runs.len());
    for dir in &a.runs {
        // The error names the directory and why it is not a run.
        let mut run = viz::load_compared_run(dir)?;
        // Runs without run_summary.json (older runs): the model's size and cost from the registry.
        if let Some(spec) = run.model().as_deref().and_then(model::registry::spec) {
            // Such runs are CIFAR-10 ones unless their report lists other classes.
            let classes = run
                .report
                .as_ref()
                .map_or(cifar_types::CIFAR10_CLASS_NAMES.len(), |r| {
                    r.per_class.len()
                });
            if run.summary.parameters.is_none() {
                run.summary.parameters = spec.param_count(classes).ok().map(|n| n as u64);
            }
            run.summary
                .flops_per_image
                .get_or_insert(spec.flops_per_image(classes));
        }
        runs.push(run);
    }
    let written = viz::compare_runs(&out, &runs, format)
        .with_context(|| format!("--out {}", out.display()))?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `run_summary.json` into a finished run's directory: the model's size and cost, the wall time of this
/// `train` command and the process's peak memory. A failure is logged, not fatal (the run itself is complete).
pub fn write_run_summary(
    out: &std::path::Path,
    model: &str,
    num_classes: usize,
    wall_secs: f64,
    threads: usize,
) {
    let spec = model::registry::spec(model);
    let summary = cifar_types::RunSummary {
        model: Some(model.to_string()),
        parameters: spec
            .and_then(|s| s.param_count(num_classes).ok())
            .map(|n| n as u64),
        flops_per_image: spec.map(|s| s.flops_per_image(num_classes)),
        wall_secs: Some(wall_secs),
        peak_rss_bytes: train::bench::peak_rss_bytes(),
        threads: Some(threads),
    };
    let path = out.join(cifar_types::RUN_SUMMARY_FILE);
    if let Err(e) = cifar_types::atomic::write_json(&path, &summary) {
        tracing::warn!("{} not written: {e}", path.display());
    }
}
