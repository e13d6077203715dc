//! `cifar`: train, evaluate and plot CIFAR-10 classifiers. Parsing and wiring only; the work lives in the library
//! crates (`dataset`, `augment`, `model`, `train`, `viz`, `predict`, `serve`).

mod args;
mod bench;
mod commands;
mod compare;
mod data;
mod errors;
mod inspect;
mod predict;
mod process;
mod progress;
mod serve;
mod shared_args;
mod sweep;
mod time;

use clap::Parser;
use std::io::IsTerminal;

// A malloc that keeps freed memory around: training allocates and frees the same large buffers every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`cifar list | head`) makes println! panic; the default
    // action ends the process quietly, as other command-line tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = args::Cli::parse();
    process::configure(&cli);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if cli.quiet { "warn" } else { "info" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", errors::message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
