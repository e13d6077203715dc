//! Renders every chart of a synthetic run, to look at them: `cargo run -p viz --example render_demo -- DIR [svg]`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "viz-demo".into()));
    let format = match args.next() {
        Some(f) => f.parse()?,
        None => viz::Format::Png,
    };
    let run = common::run(500, 20);
    for p in viz::render_run(&dir, &run, format)? {
        println!("{}", p.display());
    }
    let one = dir.join("one_epoch");
    viz::accuracy_curve(&common::history(1), &viz::chart_path(&dir, "one_epoch_accuracy", format), format)?;
    viz::loss_curve(&common::history(1), &viz::chart_path(&dir, "one_epoch_loss", format), format)?;
    let _ = one;
    Ok(())
}
