//! `report.html`: one self-contained page with the run's figures, tables and every chart inline.

use crate::{Error, Result, RunArtifacts};
use base64::Engine as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// File name of the HTML report inside the run directory.
pub const REPORT_FILE: &str = cifar_types::run_files::REPORT_HTML;

use cifar_types::html::escape;

fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let s = secs.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, _) => format!("{secs:.1} s"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, s) => format!("{h} h {m} min {s} s"),
    }
}

/// A percentage, or a dash for a missing value (NaN: a run without validation).
fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", v * 100.0)
    } else {
        "—".to_string()
    }
}

/// A loss, or a dash for a missing value.
fn loss(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "—".to_string()
    }
}

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1250px;\
color:#222;padding:0 1em}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}\
.scroll{overflow-x:auto;max-width:100%}\
th{background:#f3f6fa}td:first-child,th:first-child{text-align:left}tr.best td{background:#e8f5e9;font-weight:bold}\
pre{background:#f6f8fa;padding:1em;overflow:auto;border:1px solid #e1e4e8}\
figure{margin:1.5em 0}figure img,figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{color:#555;font-size:.9em}";

/// Writes `report.html` into `out_dir` from `run` and the chart files `charts` (PNG files are embedded as
/// base64 data URIs, SVG files inline; other paths, like an earlier report, are ignored). Returns its path.
///
/// ```
/// let run = cifar10_viz::RunArtifacts { history: Default::default(), report: None, predictions: None,
///     test_images: None, config: Some(r#"{"epochs": 0}"#.into()) };
/// let dir = tempfile::tempdir().unwrap();
/// let page = cifar10_viz::write_report_html(dir.path(), &run, &[]).unwrap();
/// assert!(std::fs::read_to_string(page).unwrap().contains("&quot;epochs&quot;: 0"));
/// ```
pub fn write_report_html(
    out_dir: &Path,
    run: &RunArtifacts,
    charts: &[PathBuf],
) -> Result<PathBuf> {
    let mut h = String::new();
    let title = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>CIFAR-10 run {}</title><style>{STYLE}</style></head><body>\n\
         <h1>CIFAR-10 run <code>{}</code></h1>\n",
        escape(&title),
        escape(&title)
    );
    summary(&mut h, run);
    charts_html(&mut h, charts)?;
    if let Some(report) = &run.report {
        h.push_str(
            "<h2>Per-class results (test set)</h2>\n<table><tr><th>class</th><th>precision</th>\
                    <th>recall</th><th>F1</th><th>support</th></tr>\n",
        );
        for c in &report.per_class {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                escape(&c.class),
                c.precision,
                c.recall,
                c.f1,
                c.support
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(config) = &run.config {
        let pretty = serde_json::from_str::<serde_json::Value>(config)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| config.clone());
        let _ = write!(
            h,
            "<h2>Configuration</h2>\n<pre>{}</pre>\n",
            escape(&pretty)
        );
    }
    // The long per-epoch table goes last.
    epochs(&mut h, run);
    h.push_str("</body></html>\n");
    let path = out_dir.join(REPORT_FILE);
    cifar_types::atomic::write_bytes(&path, h.as_bytes())?;
    Ok(path)
}

fn summary(h: &mut String, run: &RunArtifacts) {
    let hist = &run.history;
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(r) = &run.report {
        match r.tta.as_deref() {
            Some(t) if t != "none" => {
                rows.push(("Test accuracy (TTA)", format!("{} ({t})", pct(r.accuracy))));
                if let Some(a) = r.accuracy_without_tta {
                    rows.push(("Test accuracy without TTA", pct(a)));
                }
            }
            _ => rows.push(("Test accuracy", pct(r.accuracy))),
        }
        if let Some(a) = r.top5_accuracy {
            rows.push(("Test top-5 accuracy", pct(a)));
        }
        rows.push(("Test loss", format!("{:.4}", r.loss)));
    }
    if !hist.epochs.is_empty() && hist.best().is_none() {
        rows.push((
            "Validation",
            "none (no validation split: the final weights are the run's model)".to_string(),
        ));
    }
    if let Some(b) = hist.best() {
        rows.push(("Best epoch", b.epoch.to_string()));
        rows.push(("Best validation accuracy", pct(b.val_acc)));
    }
    if let Some(l) = hist.last() {
        rows.push(("Epochs run", hist.epochs.len().to_string()));
        rows.push((
            "Final train / val accuracy",
            format!("{} / {}", pct(l.train_acc), pct(l.val_acc)),
        ));
        rows.push(("Total training time", duration(hist.total_secs())));
        let ips: Vec<f64> = hist.epochs.iter().map(|e| e.train_images_per_sec).collect();
        rows.push((
            "Mean training throughput",
            format!("{:.0} images/s", ips.iter().sum::<f64>() / ips.len() as f64),
        ));
    }
    h.push_str("<h2>Summary</h2>\n");
    if rows.is_empty() {
        h.push_str("<p>No epochs and no test report yet.</p>\n");
        return;
    }
    h.push_str("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v));
    }
    h.push_str("</table>\n");
}

fn epochs(h: &mut String, run: &RunArtifacts) {
    if run.history.epochs.is_empty() {
        return;
    }
    let best = run.history.best().map(|b| b.epoch);
    h.push_str("<h2>Per-epoch history</h2>\n<table><tr><th>epoch</th><th>train loss</th><th>train acc</th>\
                <th>val loss</th><th>val acc</th><th>learning rate</th><th>time</th><th>images/s</th></tr>\n");
    for e in &run.history.epochs {
        let class = if Some(e.epoch) == best {
            " class=\"best\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr{class}><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3e}</td>\
             <td>{:.1} s</td><td>{:.0}</td></tr>",
            e.epoch,
            e.train_loss,
            pct(e.train_acc),
            loss(e.val_loss),
            pct(e.val_acc),
            e.lr,
            e.epoch_secs,
            e.train_images_per_sec
        );
    }
    h.push_str("</table>\n");
}

fn charts_html(h: &mut String, charts: &[PathBuf]) -> Result<()> {
    let mut any = false;
    for path in charts {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let body = match ext.as_deref() {
            Some("png") => {
                let bytes = std::fs::read(path).map_err(|e| cifar_types::Error::io(path, e))?;
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                format!(
                    "<img src=\"data:image/png;base64,{b64}\" alt=\"{}\">",
                    escape(&name)
                )
            }
            Some("svg") => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| cifar_types::Error::io(path, e))?;
                let start = text.find("<svg").ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: expected an SVG file, found no <svg> element",
                        path.display()
                    ))
                })?;
                text[start..].to_string()
            }
            _ => continue,
        };
        if !any {
            h.push_str("<h2>Charts</h2>\n");
            any = true;
        }
        let _ = writeln!(
            h,
            "<figure>{body}<figcaption>{}</figcaption></figure>",
            escape(&name)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(3725.0), "1 h 2 min 5 s");
        assert_eq!(duration(f64::NAN), "-");
    }
}
