//! The report as plain text: the table per configuration and the differences (for the terminal and the docs).

use super::Report;
use crate::stats::{self, Difference, Summary};
use std::fmt::Write as _;

/// `mean ± half-width` or the single value.
pub(super) fn pm(s: &Option<Summary>, digits: usize) -> String {
    match s {
        None => "–".into(),
        Some(s) => match s.ci95 {
            Some((lo, hi)) => format!("{:.digits$} ± {:.digits$}", s.mean, (hi - lo) / 2.0),
            None => format!("{:.digits$}", s.mean),
        },
    }
}

/// The text of a difference: `+0.31 [−0.05, +0.67] (paired, n = 5)`.
pub fn difference_text(d: &Option<Difference>) -> String {
    match d {
        None => "– (needs 2+ runs each)".into(),
        Some(d) => format!(
            "{:+.2} [{:+.2}, {:+.2}] ({}, {})",
            d.estimate,
            d.ci95.0,
            d.ci95.1,
            match d.method {
                stats::Method::Paired => "paired by seed",
                stats::Method::Welch => "Welch",
            },
            match d.method {
                stats::Method::Paired => format!("n = {}", d.n_a),
                stats::Method::Welch => format!("n = {}+{}, df = {:.1}", d.n_a, d.n_b, d.df),
            }
        ),
    }
}

/// The table rows as plain text (for the terminal and the docs).
pub fn text_table(report: &Report) -> String {
    let mut s = String::new();
    let w = report
        .configs
        .iter()
        .map(|c| c.label.chars().count())
        .max()
        .unwrap_or(0)
        .max("configuration".len());
    let _ = writeln!(
        s,
        "{:<w$} {:>5} {:>14} {:>6} {:>7} {:>7} {:>17} {:>16} {:>9} {:>8}",
        "configuration",
        "n",
        "test acc %",
        "std",
        "min",
        "max",
        "95% CI",
        "no-TTA acc %",
        "wall s",
        "img/s"
    );
    for c in &report.configs {
        let (std, min, max, ci) = match &c.accuracy {
            Some(a) => (
                a.std.map_or("–".into(), |x| format!("{x:.2}")),
                format!("{:.2}", a.min),
                format!("{:.2}", a.max),
                a.ci95
                    .map_or("–".into(), |(lo, hi)| format!("[{lo:.2}, {hi:.2}]")),
            ),
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            s,
            "{:<w$} {:>5} {:>14} {:>6} {:>7} {:>7} {:>17} {:>16} {:>9} {:>8}",
            c.label,
            format!("{}/{}", c.finished, c.runs),
            pm(&c.accuracy, 2),
            std,
            min,
            max,
            ci,
            pm(&c.accuracy_without_tta, 2),
            c.wall_secs.map_or("–".into(), |w| format!("{:.0}", w.mean)),
            c.train_images_per_sec
                .map_or("–".into(), |w| format!("{:.0}", w.mean)),
        );
    }
    for d in &report.comparisons {
        let _ = writeln!(
            s,
            "{} − {}: test acc {}; without TTA {}",
            d.b,
            d.a,
            difference_text(&d.accuracy),
            difference_text(&d.accuracy_without_tta)
        );
    }
    s
}
