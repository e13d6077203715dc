//! `sweep.html`: the sweep's state, the chart, the tables and every run.

use super::text::{difference_text, pm};
use super::{Report, svg_chart};
use cifar_types::html::escape;
use std::fmt::Write as _;

/// `sweep.html`: the state of the sweep, the chart, the table per configuration, the differences and every run.
pub fn html(report: &Report) -> String {
    let mut h = String::new();
    let c = &report.counts;
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sweep report</title><style>
body{{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#222;max-width:1100px}}
table{{border-collapse:collapse;margin:12px 0}}th,td{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}
th:first-child,td:first-child{{text-align:left}}th{{background:#f4f4f4}}.note{{color:#555;font-size:90%}}
</style></head><body><h1>Sweep: {}</h1>"#,
        escape(&report.preset)
    );
    let _ = write!(
        h,
        "<p>Preset <b>{}</b>; swept: {}; seeds: {}.<br>Runs: {} finished of {}{}{}{}{}.</p>",
        escape(&report.preset),
        if report.axes.is_empty() {
            "nothing (seeds only)".to_string()
        } else {
            escape(&report.axes.join(" "))
        },
        escape(&seed_text(&report.seeds)),
        c.finished,
        c.total,
        if c.running > 0 {
            format!(", {} running", c.running)
        } else {
            String::new()
        },
        if c.interrupted > 0 {
            format!(", {} interrupted", c.interrupted)
        } else {
            String::new()
        },
        if c.failed > 0 {
            format!(", {} failed", c.failed)
        } else {
            String::new()
        },
        if c.missing > 0 {
            format!(", {} not started", c.missing)
        } else {
            String::new()
        },
    );
    h.push_str(&svg_chart(report));
    h.push_str("<h2>Per configuration</h2><table><tr><th>configuration</th><th>n</th><th>test acc % (mean ± 95% half-width)</th><th>std</th><th>min</th><th>max</th><th>95% CI</th><th>without TTA %</th><th>wall time per run</th><th>train img/s</th></tr>");
    for c in &report.configs {
        let a = c.accuracy.as_ref();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.label),
            c.finished,
            c.runs,
            pm(&c.accuracy, 2),
            a.and_then(|a| a.std)
                .map_or("–".into(), |x| format!("{x:.2}")),
            a.map_or("–".into(), |a| format!("{:.2}", a.min)),
            a.map_or("–".into(), |a| format!("{:.2}", a.max)),
            a.and_then(|a| a.ci95)
                .map_or("–".into(), |(lo, hi)| format!("[{lo:.2}, {hi:.2}]")),
            pm(&c.accuracy_without_tta, 2),
            c.wall_secs
                .map_or("–".into(), |w| format!("{:.0} s", w.mean)),
            c.train_images_per_sec
                .map_or("–".into(), |w| format!("{:.0}", w.mean)),
        );
    }
    h.push_str("</table>");
    if !report.comparisons.is_empty() {
        h.push_str("<h2>Differences from the first configuration (percentage points, 95% interval)</h2><table><tr><th>configuration − reference</th><th>test accuracy</th><th>without TTA</th></tr>");
        for d in &report.comparisons {
            let _ = write!(
                h,
                "<tr><td>{} − {}</td><td>{}</td><td>{}</td></tr>",
                escape(&d.b),
                escape(&d.a),
                escape(&difference_text(&d.accuracy)),
                escape(&difference_text(&d.accuracy_without_tta))
            );
        }
        h.push_str("</table>");
    }
    h.push_str(r#"<p class="note">Intervals are Student-t 95% intervals of the mean (t-quantile for n − 1 degrees of freedom; none for n = 1). Differences are paired by seed when both configurations finished the same seeds, else Welch's unequal-variance interval. An interval that contains 0 does not tell the configurations apart.</p>"#);
    h.push_str("<h2>Runs</h2><table><tr><th>run</th><th>seed</th><th>test acc %</th><th>without TTA %</th><th>epochs</th><th>wall time</th><th>train img/s</th></tr>");
    for r in &report.runs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.name),
            r.seed,
            r.accuracy,
            r.accuracy_without_tta
                .map_or("–".into(), |a| format!("{a:.2}")),
            r.epochs,
            r.wall_secs.map_or("–".into(), |w| format!("{w:.0} s")),
            r.train_images_per_sec
                .map_or("–".into(), |w| format!("{w:.0}")),
        );
    }
    h.push_str("</table>");
    for u in &report.unreadable {
        let _ = write!(h, "<p class=\"note\">not read: {}</p>", escape(u));
    }
    h.push_str("</body></html>\n");
    h
}

/// Seeds as ranges: `0-4, 10`.
fn seed_text(seeds: &[u64]) -> String {
    let idx: Vec<usize> = seeds.iter().map(|&s| s as usize).collect();
    crate::slurm::array_spec(&idx, None).replace(',', ", ")
}
