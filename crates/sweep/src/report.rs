//! The sweep's report: per configuration n, mean, standard deviation, range and 95% interval of the test
//! accuracy (with and without TTA), wall time and throughput; each configuration's difference from the first
//! (paired by seed when the seeds match, else Welch's); `sweep.html` (one chart and the tables) and
//! `sweep_report.json`. Partial sweeps report what has finished.

use crate::stats::{self, Difference, Summary};
use crate::sweep_dir::{RunStatus, SweepDir, SweepFile};
use crate::{Result, grid::RunSpec};
use cifar_types::{History, RunSummary, TestReport, atomic, run_files};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The report's HTML file in the sweep directory.
pub const HTML_FILE: &str = "sweep.html";
/// The report's JSON file in the sweep directory.
pub const JSON_FILE: &str = "sweep_report.json";

/// One finished run's figures (accuracies in percent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Its index in the sweep.
    pub index: usize,
    /// Its directory name.
    pub name: String,
    /// Its configuration's label.
    pub label: String,
    /// Its seed.
    pub seed: u64,
    /// Test accuracy in percent (with the run's TTA when it has one).
    pub accuracy: f64,
    /// Test accuracy in percent without TTA (runs with TTA only).
    pub accuracy_without_tta: Option<f64>,
    /// The TTA (`mirror`, `mirror+shift`), if any.
    pub tta: Option<String>,
    /// Wall time of the run in seconds (its `run_summary.json`, else the sum of its epochs).
    pub wall_secs: Option<f64>,
    /// Mean training throughput over its epochs (images per second).
    pub train_images_per_sec: Option<f64>,
    /// Epochs trained.
    pub epochs: usize,
}

/// The statistics of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigStats {
    /// Its label.
    pub label: String,
    /// Runs of it in the grid.
    pub runs: usize,
    /// Runs of it finished (the n of the statistics).
    pub finished: usize,
    /// Test accuracy (percent).
    pub accuracy: Option<Summary>,
    /// Test accuracy without TTA (percent), when its runs use TTA.
    pub accuracy_without_tta: Option<Summary>,
    /// Wall time per run (seconds).
    pub wall_secs: Option<Summary>,
    /// Training throughput (images per second).
    pub train_images_per_sec: Option<Summary>,
}

/// A configuration against the first: `b − a`, in percentage points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The reference configuration (the first with finished runs).
    pub a: String,
    /// The other.
    pub b: String,
    /// Difference of test accuracy.
    pub accuracy: Option<Difference>,
    /// Difference of test accuracy without TTA.
    pub accuracy_without_tta: Option<Difference>,
}

/// How many runs are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// All runs of the grid.
    pub total: usize,
    /// Finished.
    pub finished: usize,
    /// Running.
    pub running: usize,
    /// Interrupted.
    pub interrupted: usize,
    /// Failed.
    pub failed: usize,
    /// Never started.
    pub missing: usize,
}

impl Counts {
    /// Counts of a list of statuses.
    pub fn of(statuses: &[RunStatus]) -> Counts {
        let mut c = Counts {
            total: statuses.len(),
            ..Counts::default()
        };
        for s in statuses {
            match s {
                RunStatus::Finished => c.finished += 1,
                RunStatus::Running { .. } => c.running += 1,
                RunStatus::Interrupted { .. } => c.interrupted += 1,
                RunStatus::Failed { .. } => c.failed += 1,
                RunStatus::Missing => c.missing += 1,
            }
        }
        c
    }
}

/// The whole report (`sweep_report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The preset of the base configuration.
    pub preset: String,
    /// The swept settings, as `setting=v1,v2`.
    pub axes: Vec<String>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Runs per state.
    pub counts: Counts,
    /// Per configuration, in the grid's order.
    pub configs: Vec<ConfigStats>,
    /// Each other configuration against the first.
    pub comparisons: Vec<Comparison>,
    /// Every finished run.
    pub runs: Vec<RunResult>,
    /// Finished runs whose files could not be read (file and error).
    pub unreadable: Vec<String>,
}

/// Reads a finished run's figures.
pub fn read_run(dir: &std::path::Path, spec: &RunSpec) -> Result<RunResult> {
    let test: TestReport = atomic::read_json(&dir.join(run_files::TEST_REPORT))?;
    let history: Option<History> = atomic::read_json(&dir.join(run_files::HISTORY)).ok();
    let summary: Option<RunSummary> = atomic::read_json(&dir.join(run_files::SUMMARY)).ok();
    let epochs = history.as_ref().map_or(0, |h| h.epochs.len());
    let ips: Vec<f64> = history
        .iter()
        .flat_map(|h| h.epochs.iter().map(|e| e.train_images_per_sec))
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    Ok(RunResult {
        index: spec.index,
        name: spec.name.clone(),
        label: spec.label.clone(),
        seed: spec.seed,
        accuracy: 100.0 * test.accuracy,
        accuracy_without_tta: test.accuracy_without_tta.map(|a| 100.0 * a),
        tta: test.tta.clone(),
        wall_secs: summary
            .and_then(|s| s.wall_secs)
            .or_else(|| history.as_ref().map(History::total_secs)),
        train_images_per_sec: (!ips.is_empty()).then(|| ips.iter().sum::<f64>() / ips.len() as f64),
        epochs,
    })
}

/// Builds the report from the run directories (statuses as [`SweepDir::status`] gives them).
pub fn build(dir: &SweepDir, file: &SweepFile, statuses: &[RunStatus]) -> Report {
    let mut runs = Vec::new();
    let mut unreadable = Vec::new();
    for (spec, status) in file.runs.iter().zip(statuses) {
        if *status != RunStatus::Finished {
            continue;
        }
        match read_run(&dir.run_dir(spec), spec) {
            Ok(r) => runs.push(r),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    let labels: Vec<String> = file
        .grid
        .combinations()
        .iter()
        .map(|c| file.grid.label(c))
        .collect();
    let configs: Vec<ConfigStats> = labels
        .iter()
        .map(|label| {
            let mine: Vec<&RunResult> = runs.iter().filter(|r| &r.label == label).collect();
            let col = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
                stats::summarize(&v)
            };
            ConfigStats {
                label: label.clone(),
                runs: file.runs.iter().filter(|r| &r.label == label).count(),
                finished: mine.len(),
                accuracy: col(&|r| Some(r.accuracy)),
                accuracy_without_tta: col(&|r| r.accuracy_without_tta),
                wall_secs: col(&|r| r.wall_secs),
                train_images_per_sec: col(&|r| r.train_images_per_sec),
            }
        })
        .collect();
    let comparisons = compare_to_first(&configs, &runs);
    Report {
        preset: file.grid.preset().to_string(),
        axes: file.grid.axes.iter().map(|a| a.to_string()).collect(),
        seeds: file.grid.seeds.clone(),
        counts: Counts::of(statuses),
        configs,
        comparisons,
        runs,
        unreadable,
    }
}

/// Each configuration with finished runs against the first one: paired by seed when both ran exactly the
/// same seeds (two or more), else Welch's.
fn compare_to_first(configs: &[ConfigStats], runs: &[RunResult]) -> Vec<Comparison> {
    let with_runs: Vec<&ConfigStats> = configs.iter().filter(|c| c.finished > 0).collect();
    let Some((first, rest)) = with_runs.split_first() else {
        return Vec::new();
    };
    let of =
        |label: &str| -> Vec<&RunResult> { runs.iter().filter(|r| r.label == label).collect() };
    let a_runs = of(&first.label);
    rest.iter()
        .map(|b| {
            let b_runs = of(&b.label);
            let diff = |f: &dyn Fn(&RunResult) -> Option<f64>| -> Option<Difference> {
                let mut a_seeds: Vec<u64> = a_runs
                    .iter()
                    .filter(|r| f(r).is_some())
                    .map(|r| r.seed)
                    .collect();
                let mut b_seeds: Vec<u64> = b_runs
                    .iter()
                    .filter(|r| f(r).is_some())
                    .map(|r| r.seed)
                    .collect();
                a_seeds.sort_unstable();
                b_seeds.sort_unstable();
                if a_seeds == b_seeds && a_seeds.len() >= 2 {
                    let pairs: Vec<(f64, f64)> = a_runs
                        .iter()
                        .filter_map(|ra| {
                            let rb = b_runs.iter().find(|rb| rb.seed == ra.seed)?;
                            Some((f(ra)?, f(rb)?))
                        })
                        .collect();
                    stats::paired(&pairs)
                } else {
                    let a: Vec<f64> = a_runs.iter().filter_map(|r| f(r)).collect();
                    let b: Vec<f64> = b_runs.iter().filter_map(|r| f(r)).collect();
                    stats::welch(&a, &b)
                }
            };
            Comparison {
                a: first.label.clone(),
                b: b.label.clone(),
                accuracy: diff(&|r| Some(r.accuracy)),
                accuracy_without_tta: diff(&|r| r.accuracy_without_tta),
            }
        })
        .collect()
}

/// Writes `sweep_report.json` and `sweep.html` into the sweep directory (atomically); returns their paths.
pub fn write(dir: &SweepDir, report: &Report) -> Result<Vec<PathBuf>> {
    let json = dir.path().join(JSON_FILE);
    atomic::write_json(&json, report)?;
    let html = dir.path().join(HTML_FILE);
    atomic::write_bytes(&html, self::html(report).as_bytes())?;
    Ok(vec![html, json])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `mean ± half-width` or the single value.
fn pm(s: &Option<Summary>, digits: usize) -> String {
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

/// The chart: per configuration, each run a dot (filled: the test accuracy; hollow, to the right: without
/// TTA), the mean as a bar and its 95% interval as a line with caps.
pub fn svg_chart(report: &Report) -> String {
    const W: f64 = 820.0;
    const H: f64 = 440.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const B: f64 = 80.0;
    let configs: Vec<&ConfigStats> = report.configs.iter().collect();
    let mut values: Vec<f64> = Vec::new();
    for r in &report.runs {
        values.push(r.accuracy);
        values.extend(r.accuracy_without_tta);
    }
    for c in &configs {
        for s in [&c.accuracy, &c.accuracy_without_tta].into_iter().flatten() {
            if let Some((lo, hi)) = s.ci95 {
                values.push(lo);
                values.push(hi);
            }
        }
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="{W}" height="{H}" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15">Test accuracy per run (dots), mean and 95% interval per configuration</text>"#,
        W / 2.0
    );
    if values.is_empty() || configs.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no finished runs yet</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return svg;
    }
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let pad = ((hi - lo) * 0.1).max(0.05);
    lo -= pad;
    hi += pad;
    let step = nice_step((hi - lo) / 6.0);
    lo = (lo / step).floor() * step;
    hi = (hi / step).ceil() * step;
    let y = |v: f64| T + (H - T - B) * (1.0 - (v - lo) / (hi - lo));
    let band = (W - L - R) / configs.len() as f64;
    let decimals = if step >= 1.0 {
        0
    } else if step >= 0.1 {
        1
    } else {
        2
    };
    // Axes and grid lines.
    let mut v = lo;
    while v <= hi + step * 1e-6 {
        let yy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{L}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{v:.decimals$}</text>"##,
            W - R,
            L - 6.0,
            yy + 4.0
        );
        v += step;
    }
    let _ = write!(
        svg,
        r##"<line x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="#333"/><line x1="{L}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##,
        H - B,
        W - R,
        H - B,
        H - B
    );
    let _ = write!(
        svg,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">test accuracy (%)</text>"#,
        (T + H - B) / 2.0
    );
    let has_plain = report.runs.iter().any(|r| r.accuracy_without_tta.is_some());
    for (k, c) in configs.iter().enumerate() {
        let x0 = L + band * k as f64;
        let centre = x0 + band / 2.0;
        // With TTA at the left of the band's middle, without to the right.
        let xs = if has_plain {
            [centre - band * 0.17, centre + band * 0.17]
        } else {
            [centre, centre]
        };
        let runs: Vec<&RunResult> = report.runs.iter().filter(|r| r.label == c.label).collect();
        let n = runs.len().max(1) as f64;
        let spread = (band * 0.12).min(30.0);
        for (i, r) in runs.iter().enumerate() {
            let jitter = if n > 1.0 {
                spread * (i as f64 / (n - 1.0) - 0.5)
            } else {
                0.0
            };
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#1f77b4" fill-opacity="0.75"><title>{} seed {}: {:.2}%</title></circle>"##,
                xs[0] + jitter,
                y(r.accuracy),
                esc(&r.label),
                r.seed,
                r.accuracy
            );
            if let Some(p) = r.accuracy_without_tta {
                let _ = write!(
                    svg,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="none" stroke="#ff7f0e" stroke-width="1.5"><title>{} seed {} without TTA: {p:.2}%</title></circle>"##,
                    xs[1] + jitter,
                    y(p),
                    esc(&r.label),
                    r.seed
                );
            }
        }
        for (s, x, colour) in [
            (&c.accuracy, xs[0], "#0b3d63"),
            (&c.accuracy_without_tta, xs[1], "#a14b00"),
        ] {
            let Some(s) = s else { continue };
            let half = (band * 0.16).min(40.0);
            let _ = write!(
                svg,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3"><title>mean {:.2}%</title></line>"#,
                x - half,
                x + half,
                y(s.mean),
                y(s.mean),
                s.mean
            );
            if let Some((a, b)) = s.ci95 {
                let cap = half * 0.5;
                let _ = write!(
                    svg,
                    r#"<g stroke="{colour}" stroke-width="1.5"><line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><title>95% interval [{a:.2}, {b:.2}]</title></g>"#,
                    y(a),
                    y(b),
                    x - cap,
                    x + cap,
                    y(a),
                    y(a),
                    x - cap,
                    x + cap,
                    y(b),
                    y(b)
                );
            }
        }
        let _ = write!(
            svg,
            r##"<text x="{centre:.1}" y="{}" text-anchor="middle">{}</text><text x="{centre:.1}" y="{}" text-anchor="middle" fill="#666">n = {}/{}</text>"##,
            H - B + 18.0,
            esc(&c.label),
            H - B + 34.0,
            c.finished,
            c.runs
        );
    }
    // Legend.
    let ly = H - 18.0;
    let _ = write!(
        svg,
        r##"<circle cx="{L}" cy="{ly}" r="4" fill="#1f77b4"/><text x="{}" y="{}">a run (test accuracy{})</text>"##,
        L + 8.0,
        ly + 4.0,
        if has_plain { ", with TTA" } else { "" }
    );
    if has_plain {
        let _ = write!(
            svg,
            r##"<circle cx="{}" cy="{ly}" r="4" fill="none" stroke="#ff7f0e" stroke-width="1.5"/><text x="{}" y="{}">the same run without TTA</text>"##,
            L + 230.0,
            L + 238.0,
            ly + 4.0
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="#0b3d63" stroke-width="3"/><text x="{}" y="{}">mean, with its 95% t-interval</text></svg>"##,
        L + 430.0,
        L + 450.0,
        L + 456.0,
        ly + 4.0
    );
    svg
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

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
        esc(&report.preset)
    );
    let _ = write!(
        h,
        "<p>Preset <b>{}</b>; swept: {}; seeds: {}.<br>Runs: {} finished of {}{}{}{}{}.</p>",
        esc(&report.preset),
        if report.axes.is_empty() {
            "nothing (seeds only)".to_string()
        } else {
            esc(&report.axes.join(" "))
        },
        esc(&seed_text(&report.seeds)),
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
            esc(&c.label),
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
                esc(&d.b),
                esc(&d.a),
                esc(&difference_text(&d.accuracy)),
                esc(&difference_text(&d.accuracy_without_tta))
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
            esc(&r.name),
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
        let _ = write!(h, "<p class=\"note\">not read: {}</p>", esc(u));
    }
    h.push_str("</body></html>\n");
    h
}

/// Seeds as ranges: `0-4, 10`.
fn seed_text(seeds: &[u64]) -> String {
    let idx: Vec<usize> = seeds.iter().map(|&s| s as usize).collect();
    crate::slurm::array_spec(&idx, None).replace(',', ", ")
}
