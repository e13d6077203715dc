//! From class probabilities to a test report: a `Predictions` built from a few made-up probability rows, the
//! `TestReport` computed from it (accuracy, per-class precision / recall / F1, confusion matrix), and the report
//! written atomically as JSON and read back.
//!
//! ```sh
//! cargo run --release -p cifar10-types --example report
//! ```
//!
//! Three classes keep the output small; a trained CIFAR-10 model gives 10 probabilities per test image, and
//! `cifar10-train` writes the same `test_report.json` and `predictions.json` into a run directory.

use cifar10_types::{Predictions, TestReport, atomic, run_files};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let names: Vec<String> = ["airplane", "cat", "dog"].map(String::from).to_vec();
    // One row of probabilities per image (summing to 1), and the true labels.
    let rows: [[f32; 3]; 9] = [
        [0.90, 0.05, 0.05], // airplane, right
        [0.70, 0.20, 0.10], // airplane, right
        [0.30, 0.60, 0.10], // airplane, taken for a cat
        [0.10, 0.80, 0.10], // cat, right
        [0.05, 0.55, 0.40], // cat, right (barely)
        [0.10, 0.30, 0.60], // cat, taken for a dog
        [0.05, 0.15, 0.80], // dog, right
        [0.10, 0.45, 0.45], // dog, a tie: the first maximum (cat) wins
        [0.20, 0.10, 0.70], // dog, right
    ];
    let labels = vec![0, 0, 0, 1, 1, 1, 2, 2, 2];
    let preds = Predictions::new(names.len(), labels, rows.concat())?;

    // The mean cross-entropy of the true classes, as an evaluation would report it.
    let loss = (0..preds.len())
        .map(|i| -f64::from(preds.row(i)[usize::from(preds.labels[i])]).ln())
        .sum::<f64>()
        / preds.len() as f64;
    let report = TestReport::from_predictions(&preds, loss, &names);

    println!(
        "{} images: accuracy {:.1}%, loss {:.4}\n",
        preds.len(),
        100.0 * report.accuracy,
        report.loss
    );
    println!(
        "{:<10} {:>9} {:>7} {:>6} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for c in &report.per_class {
        println!(
            "{:<10} {:>9.3} {:>7.3} {:>6.3} {:>8}",
            c.class, c.precision, c.recall, c.f1, c.support
        );
    }

    println!("\nconfusion matrix (rows: true class, columns: predicted)");
    print!("{:<10}", "");
    for n in &names {
        print!(" {n:>9}");
    }
    println!();
    for (n, row) in names.iter().zip(&report.confusion_matrix) {
        print!("{n:<10}");
        for v in row {
            print!(" {v:>9}");
        }
        println!();
    }

    println!("\nmistakes, most confident first:");
    for i in preds.misclassified() {
        let (c, p) = preds.predicted(i);
        println!(
            "  image {i}: {} predicted as {} ({:.0}%)",
            names[usize::from(preds.labels[i])],
            names[c],
            100.0 * p
        );
    }

    // Atomic writes: a temporary file beside the target, renamed over it once complete.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(run_files::TEST_REPORT);
    atomic::write_json(&path, &report)?;
    atomic::write_json(&dir.path().join(run_files::PREDICTIONS), &preds)?;
    let back: TestReport = atomic::read_json(&path)?;
    println!(
        "\nwrote {} ({} bytes); read back {}",
        path.display(),
        std::fs::metadata(&path)?.len(),
        if back == report {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    Ok(())
}
