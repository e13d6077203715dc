//! The report's chart (SVG): each run a dot, each configuration's mean and 95% interval.

use super::{ConfigStats, Report, RunResult};
use cifar_types::html::escape;
use std::fmt::Write as _;

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
                escape(&r.label),
                r.seed,
                r.accuracy
            );
            if let Some(p) = r.accuracy_without_tta {
                let _ = write!(
                    svg,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="none" stroke="#ff7f0e" stroke-width="1.5"><title>{} seed {} without TTA: {p:.2}%</title></circle>"##,
                    xs[1] + jitter,
                    y(p),
                    escape(&r.label),
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
            escape(&c.label),
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
