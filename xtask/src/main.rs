//! Project automation. `cargo xtask <command>` (alias in `.cargo/config.toml`) runs in the workspace root.
//!
//! ```text
//! cargo xtask fetch-data [--data-dir data] [--url URL] [--from FILE] [--sha256 HEX] [--force]
//! ```

mod fetch_data;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "xtask", about = "CIFAR-10 project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download (or take with --from), verify and extract CIFAR-10 into the data dir. Idempotent.
    FetchData(fetch_data::Args),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::FetchData(args) => fetch_data::run(args),
    }
}
