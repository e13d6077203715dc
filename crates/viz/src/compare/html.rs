//! `compare.html`: the table of cost and accuracy and the charts, inlined.

use super::{COMPARE_FILE, ComparedRun};
use crate::Result;
use base64::Engine as _;
use cifar_types::html::escape;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", v * 100.0)
    } else {
        "—".into()
    }
}

pub(super) fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, _) => format!("{secs:.1} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

/// `1307850` → `1,307,850`: the counts of the comparison table (and of `cifar inspect`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table's cells of one run: model, parameters, MFLOP/image, epochs, wall time, train images/s, best
/// validation accuracy, test accuracy, peak memory.
pub(crate) fn table_row(r: &ComparedRun) -> Vec<String> {
    let dash = || "—".to_string();
    let model = r.model().unwrap_or_else(dash);
    let preset = r.config_str("preset");
    // Epochs run; a fractional length (airbench's 9.9) as configured once it is complete, and "n of N" for a run
    // that stopped early or is still going.
    let ran = r.history.epochs.len();
    let planned = r
        .config
        .get("fractional_epochs")
        .and_then(|v| v.as_f64())
        .or_else(|| r.config.get("epochs").and_then(|v| v.as_f64()));
    let epochs = match planned {
        Some(p) if p.ceil() as usize == ran => format!("{p}"),
        Some(p) if p.ceil() as usize > ran => format!("{ran} of {p}"),
        _ => ran.to_string(),
    };
    let test = match &r.report {
        None => dash(),
        Some(t) => match t.tta.as_deref() {
            Some(kind) if kind != "none" => match t.accuracy_without_tta {
                Some(a) => format!("{} (TTA {kind}; {} without)", pct(t.accuracy), pct(a)),
                None => format!("{} (TTA {kind})", pct(t.accuracy)),
            },
            _ => pct(t.accuracy),
        },
    };
    vec![
        match preset {
            Some(p) if p != model => format!("{model} ({p})"),
            _ => model,
        },
        r.summary.parameters.map(thousands).unwrap_or_else(dash),
        r.summary
            .flops_per_image
            .map(|f| format!("{:.2}", f as f64 / 1e6))
            .unwrap_or_else(dash),
        epochs,
        match r.wall_secs() {
            Some((s, true)) => duration(s),
            Some((s, false)) => format!("≈ {}", duration(s)),
            None => dash(),
        },
        r.train_images_per_sec()
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(dash),
        r.history
            .best()
            .map(|b| format!("{} (epoch {})", pct(b.val_acc), b.epoch))
            .unwrap_or_else(|| "— (no validation)".into()),
        test,
        r.summary
            .peak_rss_bytes
            .map(|b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(dash),
    ]
}

const HEADERS: [&str; 9] = [
    "model (preset)",
    "parameters",
    "MFLOP / image",
    "epochs",
    "wall time",
    "train images/s",
    "best validation accuracy",
    "test accuracy",
    "peak memory",
];

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1300px;\
color:#222;padding:0 1em}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .7em;text-align:right}\
th{background:#f3f6fa}td:first-child,th:first-child{text-align:left}td{white-space:nowrap}table{font-size:.92em}\
td.wrap{white-space:normal;min-width:12em}figure{margin:1.5em 0}figure img,figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{color:#555;font-size:.9em}p.note{color:#555;font-size:.9em}";

/// Writes `compare.html` into `out_dir`: the table, the charts (PNG embedded, SVG inline) and the per-class
/// test accuracies. Returns its path.
pub fn write_compare_html(
    out_dir: &Path,
    runs: &[ComparedRun],
    charts: &[PathBuf],
) -> Result<PathBuf> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>CIFAR-10 runs compared</title><style>{STYLE}</style></head><body>\n\
         <h1>CIFAR-10 runs compared</h1>\n<h2>Summary</h2>\n<div class=\"scroll\"><table><tr><th>run</th>"
    );
    for head in HEADERS {
        let _ = write!(h, "<th>{}</th>", escape(head));
    }
    h.push_str("</tr>\n");
    for r in runs {
        let _ = write!(
            h,
            "<tr><td title=\"{}\">{}</td>",
            escape(&r.dir.display().to_string()),
            escape(&r.label)
        );
        for (i, cell) in table_row(r).into_iter().enumerate() {
            let align = match i {
                0 => " style=\"text-align:left\"",
                7 => " class=\"wrap\"",
                _ => "",
            };
            let _ = write!(h, "<td{align}>{}</td>", escape(&cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str(
        "</table></div>\n<p class=\"note\">MFLOP / image: forward pass, 2 × the multiply-adds of the convolutions and \
         linear layers. Wall time: the whole <code>cifar train</code> command (data loading, epochs, evaluation) \
         when the run recorded it (<code>run_summary.json</code>), else (≈) the sum of the epochs' times. Train images/s: the mean over the epochs. \
         Best validation accuracy: “—” for runs trained without a validation split. Peak memory: the training \
         process's peak resident set.</p>\n",
    );
    for path in charts {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let body = match path.extension().and_then(|e| e.to_str()) {
            Some("png") => {
                let bytes = std::fs::read(path).map_err(|e| cifar_types::Error::io(path, e))?;
                format!(
                    "<img src=\"data:image/png;base64,{}\" alt=\"{}\">",
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                    escape(&name)
                )
            }
            Some("svg") => {
                let t =
                    std::fs::read_to_string(path).map_err(|e| cifar_types::Error::io(path, e))?;
                match t.find("<svg") {
                    Some(i) => t[i..].to_string(),
                    None => continue,
                }
            }
            _ => continue,
        };
        let _ = writeln!(
            h,
            "<figure>{body}<figcaption>{}</figcaption></figure>",
            escape(&name)
        );
    }
    let with: Vec<_> = runs
        .iter()
        .filter_map(|r| r.report.as_ref().map(|t| (r, t)))
        .collect();
    if let Some((_, first)) = with.first() {
        h.push_str(
            "<h2>Test accuracy per class (recall)</h2>\n<div class=\"scroll\"><table><tr><th>class</th>",
        );
        for (r, _) in &with {
            let _ = write!(h, "<th>{}</th>", escape(&r.label));
        }
        h.push_str("</tr>\n");
        for (ci, c) in first.per_class.iter().enumerate() {
            let _ = write!(h, "<tr><td>{}</td>", escape(&c.class));
            for (_, t) in &with {
                let v = t.per_class.get(ci).map(|c| c.recall).unwrap_or(f64::NAN);
                let _ = write!(h, "<td>{}</td>", pct(v));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table></div>\n");
    }
    h.push_str("<h2>Runs</h2>\n<ul>\n");
    for r in runs {
        let _ = writeln!(
            h,
            "<li><code>{}</code>: <code>{}</code></li>",
            escape(&r.label),
            escape(&r.dir.display().to_string())
        );
    }
    h.push_str("</ul>\n</body></html>\n");
    let path = out_dir.join(COMPARE_FILE);
    cifar_types::atomic::write_bytes(&path, h.as_bytes())?;
    Ok(path)
}
