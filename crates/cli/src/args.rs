use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "cifar",
    version,
    about = "Train, evaluate and plot CIFAR-10 image classifiers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Only warnings and errors on stderr (RUST_LOG overrides).
    #[arg(long, global = true)]
    pub quiet: bool,
}

impl Cli {
    /// Whether the command line asks for candle's stock CPU ops (`--stock-ops` on train or bench).
    pub fn wants_stock_ops(&self) -> bool {
        match &self.command {
            Command::Train(a) => a.stock_ops,
            Command::Bench(a) => a.stock_ops,
            _ => false,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (the reference recipe by default) and evaluate it on the test set.
    ///
    /// Flags left out take the preset's value (`--preset`, default `reference`); `cifar list` names the presets.
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// Evaluate a saved model on the test set.
    #[command(allow_negative_numbers = true)]
    Evaluate(EvaluateArgs),
    /// Classify your own images (files or folders) with a saved model.
    Predict(crate::predict::PredictArgs),
    /// Serve a web page and a JSON API that classify images with a saved model (loopback only by default).
    Serve(crate::serve::ServeArgs),
    /// Print a checkpoint's metadata, parameter count and tensors.
    Inspect(crate::inspect::InspectArgs),
    /// Draw the charts and report.html of a run directory.
    Plot(PlotArgs),
    /// Compare runs: validation curves overlaid, per-class test accuracy, a table of cost and accuracy.
    Compare(crate::compare::CompareArgs),
    /// Measure training, inference and data-pipeline throughput on random data.
    #[command(allow_negative_numbers = true)]
    Bench(BenchArgs),
    /// Train a grid of runs (seeds x settings) here or as a Slurm job array; status and statistics of a sweep.
    #[command(allow_negative_numbers = true)]
    Sweep(Box<crate::sweep::SweepArgs>),
    /// List the registered models and the presets.
    List,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub compute: crate::shared_args::ComputeArgs,
    /// The registered model to measure [default: cnn-dnn; with --preset: the preset's].
    #[arg(long, value_parser = model_names())]
    pub model: Option<String>,
    /// Time the training step of this preset's recipe (its optimizer, loss and weight averaging; e.g.
    /// airbench94-muon) instead of the model's default recipe [default: the model's own recipe].
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(train::PRESETS.iter().map(|p| p.name)))]
    pub preset: Option<String>,
    /// Training batch sizes to measure [default: 64,128; airbench94: 1024,256; with --preset: the preset's].
    #[arg(long, value_delimiter = ',')]
    pub train_batches: Option<Vec<usize>>,
    /// Inference batch size to measure.
    #[arg(long, default_value_t = 256)]
    pub infer_batch: usize,
    /// Steps per timed repeat.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Timed repeats (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Use candle's stock CPU ops instead of the fast kernels.
    #[arg(long)]
    pub stock_ops: bool,
    /// Print one JSON object per measurement on stdout instead of the table (for scripts; `cargo xtask bench`
    /// reads them).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// Directory holding (or receiving) cifar-10-batches-bin or cifar-100-binary (downloaded when missing), or
    /// image folders (see --dataset) [default: data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub data: crate::data::DataArgs,
    /// Run directory [default: runs/<preset>-seed<seed>-<UTC date-time>, e.g. runs/fast-seed42-20261204-171502].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start from a named preset; the other flags override it.
    #[arg(long, default_value = "reference", help = preset_help(), value_parser = clap::builder::PossibleValuesParser::new(train::PRESETS.iter().map(|p| p.name)))]
    pub preset: String,
    /// Training length in epochs; a fraction (e.g. 9.9) stops partway through the last epoch [reference: 50;
    /// fast: 18; fast-long: 40; airbench94: 9.9].
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Optimizer: adam | sgd | muon [presets: adam; airbench94: sgd; airbench94-muon: muon].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// SGD momentum (ignored by Adam) [presets: 0.9; airbench94: 0.85].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Training batch size [reference: 64; fast, fast-long: 128; airbench94: 1024].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Gradient accumulation: run each batch through the model in parts of at most N images and sum their
    /// gradients before the optimizer step (less memory; BatchNorm normalises each part on its own) [default:
    /// the whole batch; airbench94-muon: 500]. 0 runs the whole batch at once.
    #[arg(long, value_name = "N")]
    pub micro_batch: Option<usize>,
    /// Base (peak) learning rate [reference: 1e-3; fast, fast-long: 4e-3; airbench94: 3/2048].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay: Adam's decoupled one (AdamW; 0 = plain Adam), SGD's coupled one [reference: 0; fast,
    /// fast-long: 0.05; airbench94: its derived 1.36].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Fraction of the training images held out for validation (0: none; the final weights are the model)
    /// [presets: 0.1; airbench94: 0].
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Hold out the same fraction of each class for validation [default: off].
    #[arg(long)]
    pub stratified: bool,
    /// Seed of the split, shuffling, augmentation, initialisation and dropout [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where to train: auto | cpu | cuda | cuda:N (auto: CUDA device 0 when built with CUDA, else the CPU)
    /// [default: auto].
    #[arg(long)]
    pub device: Option<String>,
    /// The registered model to train [presets: cnn-dnn; mlp, lenet5, airbench94: theirs].
    #[arg(long, value_parser = model_names())]
    pub model: Option<String>,
    /// Use only the first N training images (before the validation split) [default: all 50,000].
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Early stopping: stop when the validation loss has not improved for N epochs [default: off].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Learning-rate schedule: constant | cosine | onecycle | linear [reference: constant; fast, fast-long:
    /// onecycle; airbench94: linear].
    #[arg(long)]
    pub schedule: Option<train::Schedule>,
    /// Linear warm-up in epochs [reference: 0; fast: 1.5; fast-long: 3; airbench94: 2.277].
    #[arg(long)]
    pub warmup_epochs: Option<f64>,
    /// Label smoothing of the training loss, in [0, 1) [reference: 0; fast, fast-long: 0.1; airbench94: 0.2].
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    #[command(flatten)]
    pub tta: crate::shared_args::TtaArgs,
    /// Selective TTA at the final test evaluation: the TTA views only for the images whose plain-view top
    /// probability is below this, in (0, 1] [default: every image; airbench94-muon: 0.7].
    #[arg(long, value_name = "P")]
    pub tta_threshold: Option<f32>,
    /// Horizontal flip probability of the training augmentation [default: 0.5; airbench94 alternates the flip].
    #[arg(long)]
    pub flip_prob: Option<f64>,
    /// Zero padding of the random crop, 0 disables it [presets: 4; airbench94: 0, a 2-pixel reflect-translate
    /// instead].
    #[arg(long)]
    pub crop_pad: Option<usize>,
    /// Batch size of validation and test evaluation [presets: 512; airbench94: 1000].
    #[arg(long)]
    pub eval_batch_size: Option<usize>,
    /// Continue the run in RUN_DIR from its last checkpoint (its config.json decides everything but --device and
    /// --data-dir) [default: start a new run].
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Download URL when the data is missing [default: $CIFAR10_URL, else the official URL].
    #[arg(long)]
    pub url: Option<String>,
    /// Skip the charts at the end [default: draw them].
    #[arg(long)]
    pub no_plots: bool,
    /// Use candle's stock CPU ops instead of the fast kernels (for comparisons; several times slower)
    /// [default: off].
    #[arg(long)]
    pub stock_ops: bool,
    /// Convolution arithmetic: f32, bf16 products with f32 sums (CPUs with AVX512-BF16: faster on the AMD Zen 4
    /// and 5 measured, half f32's speed on the Intel Xeon measured; a warning says when bf16 is the slower here), or
    /// auto: bf16 where this CPU's bf16 GEMM measures faster than its f32 one, else f32 (the run's config.json
    /// records the choice) [default: the preset's, f32].
    #[arg(long)]
    pub precision: Option<crate::shared_args::PrecisionArg>,
    /// Winograd tiles of the 3x3 convolutions on the CPU kernels: f2 (F(2x2, 3x3)), f4 (F(4x4, 3x3): fewer
    /// products, larger rounding in bf16), off (im2col + GEMM), or auto: f4 in f32, f2 in bf16; where the chosen
    /// tiles do not apply (channels, sizes, CPU), a convolution runs as im2col + GEMM [default: auto].
    #[arg(long)]
    pub winograd: Option<model::Winograd>,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// A model checkpoint (best.safetensors or last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Directory holding cifar-10-batches-bin or cifar-100-binary (`cargo xtask fetch-data` fills them), or image
    /// folders.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub data: crate::data::DataArgs,
    #[command(flatten)]
    pub compute: crate::shared_args::ComputeArgs,
    /// Images evaluated together.
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    #[command(flatten)]
    pub tta: crate::shared_args::TtaArgs,
    /// Selective TTA: the `--tta` views only for the images whose plain-view top probability is below this (in
    /// (0, 1]; the others keep their plain-view prediction) [default: every image].
    #[arg(long, value_name = "P")]
    pub tta_threshold: Option<f32>,
    /// Also write the report (test_report.json layout) to this file [default: none].
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// The run directory (holds history.json).
    #[arg(long)]
    pub run: PathBuf,
    /// Where the test images are [default: the run's data_dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Image format of the charts.
    #[arg(long, value_enum, default_value_t = ChartFormat::Png)]
    pub format: ChartFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ChartFormat {
    Png,
    Svg,
}

/// The `--preset` help: every preset with its description, from `train::PRESETS` (the one list).
fn preset_help() -> String {
    let mut h = String::from("Start from a named preset; the other flags override it:");
    for p in train::PRESETS {
        h.push_str(&format!("\n  {}: {}", p.name, p.description));
    }
    h
}

/// The registered model names, from `model::registry::MODELS` (the one list), as the accepted values.
fn model_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(model::registry::MODELS.iter().map(|m| m.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag of every subcommand says what it does, and every flag that takes a value says its default
    /// (clap's `[default: ...]`, or in the text: `[default: ...]`, `[presets: ...]`, `[reference: ...]`), unless
    /// it is required.
    #[test]
    fn every_flag_has_help_and_a_default() {
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(
                    !help.trim().is_empty(),
                    "{} --{id}: no help text",
                    sub.get_name()
                );
                let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values())
                    && !matches!(arg.get_action(), clap::ArgAction::SetTrue);
                let states_default = !arg.get_default_values().is_empty()
                    || ["[default", "[presets", "[reference"]
                        .iter()
                        .any(|k| help.contains(k));
                assert!(
                    !takes_value || arg.is_required_set() || arg.is_positional() || states_default,
                    "{} --{id}: the help does not state the default: {help:?}",
                    sub.get_name()
                );
            }
        }
    }
}
