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
    Train(Box<TrainArgs>),
    /// Evaluate a saved model on the test set.
    Evaluate(EvaluateArgs),
    /// Draw the charts and report.html of a run directory.
    Plot(PlotArgs),
    /// Measure training, inference and data-pipeline throughput on random data.
    Bench(BenchArgs),
    /// List the registered models and the presets.
    List,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value = "cnn-dnn")]
    pub model: String,
    /// Training batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "64,128")]
    pub train_batches: Vec<usize>,
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
}

#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// Directory holding (or receiving) cifar-10-batches-bin.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run directory [default: runs/<preset>-seed<seed>-<unix time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start from a named preset (reference, fast, fast-long); flags override it.
    #[arg(long, default_value = "reference")]
    pub preset: String,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base (peak) learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Decoupled weight decay (AdamW); 0 = Adam.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Hold out the same fraction of each class for validation.
    #[arg(long)]
    pub stratified: bool,
    #[arg(long)]
    pub seed: Option<u64>,
    /// auto | cpu | cuda | cuda:N
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// Use only the first N training images (before the validation split).
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Early stopping: stop when the validation loss has not improved for N epochs.
    #[arg(long)]
    pub patience: Option<usize>,
    /// constant | cosine | onecycle
    #[arg(long)]
    pub schedule: Option<train::Schedule>,
    /// Linear warm-up in epochs.
    #[arg(long)]
    pub warmup_epochs: Option<f64>,
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Average the predictions of each image and its mirror image at evaluation.
    #[arg(long)]
    pub tta: bool,
    /// Horizontal flip probability of the training augmentation.
    #[arg(long)]
    pub flip_prob: Option<f64>,
    /// Zero padding of the random crop (0 disables it).
    #[arg(long)]
    pub crop_pad: Option<usize>,
    #[arg(long)]
    pub eval_batch_size: Option<usize>,
    /// Continue the run in RUN_DIR from its last checkpoint (its config.json decides everything else).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Download URL when the data is missing (else CIFAR10_URL, else the official URL).
    #[arg(long)]
    pub url: Option<String>,
    /// Skip the charts at the end.
    #[arg(long)]
    pub no_plots: bool,
    /// Use candle's stock CPU ops instead of the fast kernels (for comparisons; several times slower).
    #[arg(long)]
    pub stock_ops: bool,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// A model checkpoint (best.safetensors or last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Flip test-time augmentation.
    #[arg(long)]
    pub tta: bool,
    /// Also write the report (test_report.json layout) to this file.
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
    #[arg(long, value_enum, default_value_t = ChartFormat::Png)]
    pub format: ChartFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ChartFormat {
    Png,
    Svg,
}
