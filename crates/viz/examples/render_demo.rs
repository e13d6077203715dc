//! Renders every chart of a synthetic run, to look at them: `cargo run -p cifar10-viz --example render_demo -- DIR [png|svg] [IMAGES]`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "viz-demo".into()));
    let format = match args.next() {
        Some(f) => f.parse()?,
        None => cifar10_viz::Format::Png,
    };
    let images = match args.next() {
        Some(n) => n.parse()?,
        None => 500,
    };
    let started = std::time::Instant::now();
    let run = common::run(images, 20);
    let made = started.elapsed();
    let started = std::time::Instant::now();
    for p in cifar10_viz::render_run(&dir, &run, format)? {
        println!("{}", p.display());
    }
    eprintln!(
        "synthetic run ({images} images) built in {made:.2?}, render_run took {:.2?}",
        started.elapsed()
    );
    let one = dir.join("one_epoch");
    cifar10_viz::accuracy_curve(
        &common::history(1),
        &cifar10_viz::chart_path(&dir, "one_epoch_accuracy", format),
        format,
    )?;
    cifar10_viz::loss_curve(
        &common::history(1),
        &cifar10_viz::chart_path(&dir, "one_epoch_loss", format),
        format,
    )?;
    let _ = one;
    let two: Vec<String> = vec!["cat".into(), "automobile".into()];
    cifar10_viz::confusion_matrix(
        &[vec![30, 2], vec![5, 0]],
        &two,
        true,
        &cifar10_viz::chart_path(&dir, "two_classes", format),
        format,
    )?;
    let mut nan = common::history(3);
    nan.epochs[1].val_loss = f64::NAN;
    cifar10_viz::loss_curve(
        &nan,
        &cifar10_viz::chart_path(&dir, "nan_loss", format),
        format,
    )?;
    Ok(())
}
