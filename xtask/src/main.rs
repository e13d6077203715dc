//! Project automation. `cargo xtask <command>` (alias in `.cargo/config.toml`) runs in the workspace root.
//!
//! ```text
//! cargo xtask fetch-data [--data-dir data] [--url URL] [--from FILE] [--sha256 HEX] [--force]
//! cargo xtask screenshot RUN_DIR|COMPARE_DIR|PAGE.html [--out PNG] [--width 1400] [--height 3000]
//! cargo xtask screenshot-serve --checkpoint runs/NAME/best.safetensors [--out PNG] [--demo all|cat,ship]
//! cargo xtask export-folder --out DIR [--data-dir data] [--limit-train N] [--limit-test N] [--verify]
//! cargo xtask build-cifar      # the release `cifar` binary, built as bench and screenshot-serve build it
//! cargo xtask bench [--rounds 3] [--repeats 3] [--model all|airbench94|cnn-dnn] [--python python3] [--no-torch] [--epoch]
//!                   [--torch-allocators auto|jemalloc|tcmalloc|glibc|inherit] [--no-compile] [--archive A]
//! cargo xtask bench --whole-run [--model ...] [--seed 0] [--archive A] [--data-dir D]   # whole recipes, both sides
//! ```

mod bench;
mod build;
mod export_folder;
mod fetch_data;
mod screenshot;
mod torch_env;
mod whole_run;

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
    /// Write the extracted CIFAR-10 binary set as PNG files in the image-folder layout
    /// (OUT/{train,test}/<class>/<index>.png), to check that a folder trains exactly like the archive.
    ExportFolder(export_folder::Args),
    /// Throughput of this project next to PyTorch's reference, measured in the same run.
    Bench(Box<bench::Args>),
    /// A run's report.html or a comparison's compare.html as headless Chromium renders it, saved as a PNG.
    Screenshot(screenshot::Args),
    /// `cifar serve`'s page with the built-in samples classified, as headless Chromium renders it, saved as a PNG.
    ScreenshotServe(screenshot::ServeArgs),
    /// Build the release `cifar` binary as `bench` and `screenshot-serve` do (no rebuild when switching with
    /// `cargo run --release -p cli`) and print its path.
    BuildCifar,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FetchData(args) => fetch_data::run(args),
        Command::ExportFolder(args) => export_folder::run(args),
        Command::Bench(args) => bench::run(*args),
        Command::Screenshot(args) => screenshot::run(args),
        Command::ScreenshotServe(args) => screenshot::serve(args),
        Command::BuildCifar => build::release_cifar().map(|p| println!("{}", p.display())),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One paragraph; anyhow's backtrace (captured under RUST_BACKTRACE or RUST_LIB_BACKTRACE) only when
            // RUST_LIB_BACKTRACE asks for it: RUST_BACKTRACE=1 is common on developers' machines and is meant for
            // panics.
            eprintln!(
                "error: {}",
                cifar_types::error_text::one_paragraph(e.chain().map(|c| c.to_string()))
            );
            if std::env::var_os("RUST_LIB_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{}", e.backtrace());
            }
            std::process::ExitCode::FAILURE
        }
    }
}
