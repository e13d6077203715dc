//! `cifar compare`: several runs side by side — validation curves overlaid, per-class test accuracy as grouped
//! bars and a table of cost and accuracy, in `compare.html` plus the charts.

use crate::encode::{Chart, DResult, DrawExt, ImageBackend, write_chart};
use crate::font::FAMILY;
use crate::report::escape;
use crate::run::{CONFIG_FILE, HISTORY_FILE, TEST_REPORT_FILE, chart_path};
use crate::theme::{GRID, TEXT, text};
use crate::{Error, Format, Result};
use base64::Engine as _;
use cifar_types::{History, RUN_SUMMARY_FILE, RunSummary, TestReport};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// File name of the comparison page.
pub const COMPARE_FILE: &str = "compare.html";
/// Chart stem of the overlaid validation accuracy curves; the extension comes from [`Format::extension`].
pub const COMPARE_VAL_ACCURACY: &str = "compare_val_accuracy";
/// Chart stem of the overlaid validation loss curves.
pub const COMPARE_VAL_LOSS: &str = "compare_val_loss";
/// Chart stem of the per-class test accuracy (recall), one bar per run in each class's group.
pub const COMPARE_PER_CLASS: &str = "compare_per_class_accuracy";

/// One run of a comparison, as read from its directory by [`load_compared_run`].
#[derive(Debug, Clone)]
pub struct ComparedRun {
    /// The name shown in the charts and the table (the directory's name, made unique by [`compare_runs`]).
    pub label: String,
    /// The run directory, as given to [`load_compared_run`].
    pub dir: PathBuf,
    /// `config.json`, parsed.
    pub config: serde_json::Value,
    /// `history.json`.
    pub history: History,
    /// `test_report.json`, when the run has one.
    pub report: Option<TestReport>,
    /// `run_summary.json` (all fields empty when the run has none). Callers may fill in what it lacks, such as
    /// the parameter and FLOP counts of a registered model.
    pub summary: RunSummary,
}

impl ComparedRun {
    /// The model's registry name: the summary's, else `config.json`'s `model`.
    pub fn model(&self) -> Option<String> {
        self.summary
            .model
            .clone()
            .or_else(|| self.config_str("model"))
    }

    fn config_str(&self, key: &str) -> Option<String> {
        self.config.get(key)?.as_str().map(str::to_string)
    }

    /// Whether any epoch has a validation accuracy (runs trained without a validation split have none).
    pub fn has_validation(&self) -> bool {
        self.history.epochs.iter().any(|e| e.val_acc.is_finite())
    }

    /// Seconds the run took: the summary's wall time, else the sum of the epochs' times (`false`: the latter).
    pub fn wall_secs(&self) -> Option<(f64, bool)> {
        match self.summary.wall_secs {
            Some(s) if s.is_finite() => Some((s, true)),
            _ if !self.history.epochs.is_empty() => Some((self.history.total_secs(), false)),
            _ => None,
        }
    }

    /// Mean training throughput over the epochs, images/s.
    pub fn train_images_per_sec(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .history
            .epochs
            .iter()
            .map(|e| e.train_images_per_sec)
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// Reads a run directory for a comparison: `config.json` and `history.json` are required (a directory without
/// them is not a run and is refused with [`Error::RunDir`]); `test_report.json` and `run_summary.json` are
/// optional. A file that exists but does not parse is an error naming it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let err = cifar10_viz::load_compared_run(dir.path()).unwrap_err().to_string();
/// assert!(err.contains("not a training run"), "{err}");
/// ```
pub fn load_compared_run(dir: &Path) -> Result<ComparedRun> {
    let refuse = |reason: String| Error::RunDir {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(refuse("does not exist or is not a directory".into()));
    }
    let missing: Vec<&str> = [CONFIG_FILE, HISTORY_FILE]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(refuse(format!(
            "not a training run: {} missing (a run directory holds the config.json and history.json that \
             `cifar train` writes)",
            if missing.len() == 2 {
                "config.json and history.json are".to_string()
            } else {
                format!("{} is", missing[0])
            }
        )));
    }
    let config: serde_json::Value = cifar_types::atomic::read_json(&dir.join(CONFIG_FILE))?;
    if !config.is_object() {
        return Err(refuse(format!(
            "{CONFIG_FILE}: expected a JSON object (a training configuration)"
        )));
    }
    let history: History = cifar_types::atomic::read_json(&dir.join(HISTORY_FILE))?;
    let optional = |name: &str| {
        let p = dir.join(name);
        p.is_file().then_some(p)
    };
    let report = optional(TEST_REPORT_FILE)
        .map(|p| cifar_types::atomic::read_json::<TestReport>(&p))
        .transpose()?;
    let summary = optional(RUN_SUMMARY_FILE)
        .map(|p| cifar_types::atomic::read_json::<RunSummary>(&p))
        .transpose()?
        .unwrap_or_default();
    let label = dir
        .canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    Ok(ComparedRun {
        label,
        dir: dir.to_path_buf(),
        config,
        history,
        report,
        summary,
    })
}

/// matplotlib's "tab10" colours, one per run (repeating after ten).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Writes the comparison charts and `compare.html` into `out_dir` (created if missing); returns the paths
/// written, the page last. Charts without data (no run with validation, no test report) are skipped. Labels
/// that repeat (two runs named alike in different folders) get a `#2`, `#3`... suffix.
pub fn compare_runs(out_dir: &Path, runs: &[ComparedRun], format: Format) -> Result<Vec<PathBuf>> {
    if runs.is_empty() {
        return Err(Error::no_data("comparison", "no runs given"));
    }
    let mut runs = runs.to_vec();
    for i in 1..runs.len() {
        let same = runs[..i]
            .iter()
            .filter(|r| r.label == runs[i].label)
            .count();
        if same > 0 {
            runs[i].label = format!("{} #{}", runs[i].label, same + 1);
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| cifar_types::Error::io(out_dir, e))?;
    let mut written = Vec::new();
    if runs.iter().any(ComparedRun::has_validation) {
        for kind in [Metric::ValAccuracy, Metric::ValLoss] {
            let stem = match kind {
                Metric::ValAccuracy => COMPARE_VAL_ACCURACY,
                Metric::ValLoss => COMPARE_VAL_LOSS,
            };
            let p = chart_path(out_dir, stem, format);
            write_chart(&Overlay { runs: &runs, kind }, &p, format)?;
            written.push(p);
        }
    } else {
        tracing::info!("no run has a validation split: validation curves skipped");
    }
    if runs.iter().any(|r| r.report.is_some()) {
        let p = chart_path(out_dir, COMPARE_PER_CLASS, format);
        write_chart(&PerClass::new(&runs)?, &p, format)?;
        written.push(p);
    } else {
        tracing::info!("no run has a test report: per-class chart skipped");
    }
    let page = write_compare_html(out_dir, &runs, &written)?;
    written.push(page);
    Ok(written)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    ValAccuracy,
    ValLoss,
}

/// Legend entries laid out in rows under a chart: (x offset, row) per entry, and the number of rows.
fn legend_layout(labels: &[String], width: u32) -> (Vec<(i32, i32)>, i32) {
    let font = (FAMILY, LEGEND_FONT).into_font();
    let mut pos = Vec::with_capacity(labels.len());
    let (mut x, mut row) = (LEGEND_PAD, 0);
    for l in labels {
        let w = font
            .box_size(l)
            .map(|(w, _)| w as i32)
            .unwrap_or(l.chars().count() as i32 * 10)
            + LEGEND_MARK
            + 8;
        if x > LEGEND_PAD && x + w > width as i32 - LEGEND_PAD {
            x = LEGEND_PAD;
            row += 1;
        }
        pos.push((x, row));
        x += w + 28;
    }
    (pos, if labels.is_empty() { 0 } else { row + 1 })
}

const LEGEND_FONT: u32 = 16;
const LEGEND_ROW: i32 = 28;
const LEGEND_PAD: i32 = 30;
const LEGEND_MARK: i32 = 26;

/// Draws a legend (colour mark + text per entry) into `area`; `dashed` entries get a dashed mark.
fn draw_legend<DB: ImageBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor, bool)],
) -> DResult<()> {
    let labels: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    let (pos, _) = legend_layout(&labels, area.dim_in_pixel().0);
    for ((label, c, dashed), (x, row)) in entries.iter().zip(pos) {
        let y = 10 + row * LEGEND_ROW + LEGEND_ROW / 2;
        if *dashed {
            for k in 0..3 {
                let x0 = x + k * 9;
                area.draw(&PathElement::new(
                    vec![(x0, y), (x0 + 5, y)],
                    c.stroke_width(3),
                ))
                .d()?;
            }
        } else {
            area.draw(&Rectangle::new([(x, y - 7), (x + 20, y + 7)], c.filled()))
                .d()?;
        }
        area.draw(&Text::new(
            label.clone(),
            (x + LEGEND_MARK, y),
            text(LEGEND_FONT, TEXT, HPos::Left, VPos::Center),
        ))
        .d()?;
    }
    Ok(())
}

fn legend_height(labels: &[String], width: u32) -> u32 {
    let (_, rows) = legend_layout(labels, width);
    (rows * LEGEND_ROW + 20) as u32
}

/// Validation accuracy or loss per epoch of every run, overlaid.
struct Overlay<'a> {
    runs: &'a [ComparedRun],
    kind: Metric,
}

impl Overlay<'_> {
    const W: u32 = 1000;
    const H: u32 = 600;

    fn series(&self, run: &ComparedRun) -> Vec<(f64, f64)> {
        run.history
            .epochs
            .iter()
            .map(|e| {
                let y = match self.kind {
                    Metric::ValAccuracy => e.val_acc * 100.0,
                    Metric::ValLoss => e.val_loss,
                };
                (e.epoch as f64, y)
            })
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    }

    fn entries(&self) -> Vec<(String, RGBColor, bool)> {
        self.runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if r.has_validation() {
                    let best = r.history.best().map(|b| b.val_acc * 100.0);
                    let label = match (self.kind, best) {
                        (Metric::ValAccuracy, Some(b)) => format!("{} (best {b:.2}%)", r.label),
                        _ => r.label.clone(),
                    };
                    (label, color(i), false)
                } else {
                    (format!("{}: no validation split", r.label), color(i), true)
                }
            })
            .collect()
    }
}

impl Chart for Overlay<'_> {
    fn size(&self) -> (u32, u32) {
        let labels: Vec<String> = self.entries().into_iter().map(|e| e.0).collect();
        (Self::W, Self::H + legend_height(&labels, Self::W))
    }

    fn draw<DB: ImageBackend>(&self, root: &DrawingArea<DB, Shift>) -> DResult<()> {
        let (upper, lower) = root.split_vertically(Self::H);
        let all: Vec<Vec<(f64, f64)>> = self.runs.iter().map(|r| self.series(r)).collect();
        let points = || all.iter().flatten();
        let x_hi = points().fold(1.0f64, |m, p| m.max(p.0));
        let (y_lo, y_hi) =
            points().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if y_lo > y_hi {
            return Err("no validation values to draw".into());
        }
        let pad = ((y_hi - y_lo) * 0.06).max(match self.kind {
            Metric::ValAccuracy => 1.0,
            Metric::ValLoss => 0.02,
        });
        let (y_lo, y_hi) = match self.kind {
            Metric::ValAccuracy => ((y_lo - pad).max(0.0), (y_hi + pad).min(100.0)),
            Metric::ValLoss => ((y_lo - pad).max(0.0), y_hi + pad),
        };
        let (title, y_desc) = match self.kind {
            Metric::ValAccuracy => ("Validation accuracy per epoch", "Validation accuracy (%)"),
            Metric::ValLoss => ("Validation loss per epoch", "Validation loss"),
        };
        let mut chart = ChartBuilder::on(&upper)
            .caption(title, (FAMILY, 26))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(0.5..x_hi + 0.5, y_lo..y_hi)
            .d()?;
        let int_only = |x: &f64| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        let y_fmt = |y: &f64| match self.kind {
            Metric::ValAccuracy => format!("{y:.0}"),
            Metric::ValLoss => format!("{y:.2}"),
        };
        chart
            .configure_mesh()
            .x_desc("Epoch")
            .y_desc(y_desc)
            .x_labels((x_hi as usize).clamp(2, 12) + 1)
            .y_labels(8)
            .x_label_formatter(&int_only)
            .y_label_formatter(&y_fmt)
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 18))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .draw()
            .d()?;
        for (i, pts) in all.iter().enumerate() {
            if pts.is_empty() {
                continue;
            }
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .d()?;
            if pts.len() <= 60 {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .d()?;
            }
        }
        draw_legend(&lower, &self.entries())
    }
}

/// Test accuracy (recall) per class, one bar per run in each class's group.
struct PerClass<'a> {
    runs: Vec<(usize, &'a ComparedRun, &'a TestReport)>,
    classes: Vec<String>,
}

impl<'a> PerClass<'a> {
    const W: u32 = 1250;
    const H: u32 = 600;

    fn new(runs: &'a [ComparedRun]) -> Result<Self> {
        let with: Vec<_> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.report.as_ref().map(|t| (i, r, t)))
            .collect();
        let Some((_, first_run, first)) = with.first() else {
            return Err(Error::no_data(
                "per-class accuracy",
                "no run has a test report",
            ));
        };
        let classes: Vec<String> = first.per_class.iter().map(|c| c.class.clone()).collect();
        if classes.is_empty() {
            return Err(Error::no_data(
                "per-class accuracy",
                format!("{}: the test report has no classes", first_run.label),
            ));
        }
        if let Some((_, r, _)) = with
            .iter()
            .find(|(_, _, t)| t.per_class.iter().map(|c| &c.class).ne(classes.iter()))
        {
            return Err(Error::Invalid(format!(
                "per-class accuracy: {} has other classes than {} ({:?})",
                r.label, first_run.label, classes
            )));
        }
        Ok(Self {
            runs: with,
            classes,
        })
    }

    fn entries(&self) -> Vec<(String, RGBColor, bool)> {
        self.runs
            .iter()
            .map(|(i, r, t)| {
                (
                    format!("{} ({:.2}%)", r.label, t.accuracy * 100.0),
                    color(*i),
                    false,
                )
            })
            .collect()
    }
}

impl Chart for PerClass<'_> {
    fn size(&self) -> (u32, u32) {
        let labels: Vec<String> = self.entries().into_iter().map(|e| e.0).collect();
        (Self::W, Self::H + legend_height(&labels, Self::W))
    }

    fn draw<DB: ImageBackend>(&self, root: &DrawingArea<DB, Shift>) -> DResult<()> {
        let (upper, lower) = root.split_vertically(Self::H);
        let n = self.classes.len();
        let mut chart = ChartBuilder::on(&upper)
            .caption("Test accuracy per class", (FAMILY, 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..100.0)
            .d()?;
        let class_label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                self.classes[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("Recall on the test set (%)")
            .x_labels(n + 1)
            .y_labels(11)
            .x_label_formatter(&class_label)
            .y_label_formatter(&|y: &f64| format!("{y:.0}"))
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 18))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .draw()
            .d()?;
        let k = self.runs.len() as f64;
        let group = 0.84;
        let bar = group / k;
        for (j, (i, _, t)) in self.runs.iter().enumerate() {
            let c = color(*i);
            chart
                .draw_series(t.per_class.iter().enumerate().map(|(ci, cr)| {
                    let x0 = ci as f64 - group / 2.0 + j as f64 * bar;
                    let v = if cr.recall.is_finite() {
                        cr.recall * 100.0
                    } else {
                        0.0
                    };
                    Rectangle::new([(x0 + bar * 0.06, 0.0), (x0 + bar * 0.94, v)], c.filled())
                }))
                .d()?;
        }
        draw_legend(&lower, &self.entries())
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}%", v * 100.0)
    } else {
        "—".into()
    }
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, _) => format!("{secs:.1} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

fn thousands(n: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1_738_890), "1,738,890");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration(125.0), "2 min 05 s");
        assert_eq!(duration(7300.0), "2 h 01 min");
    }

    #[test]
    fn legend_wraps_long_rows() {
        let labels: Vec<String> = (0..8)
            .map(|i| format!("a-rather-long-run-name-{i} (best 80.00%)"))
            .collect();
        crate::font::ensure_registered().unwrap();
        let (pos, rows) = legend_layout(&labels, 1000);
        assert!(rows >= 3, "{rows}");
        assert!(pos.iter().all(|&(x, _)| x < 1000));
        assert_eq!(legend_layout(&[], 1000).1, 0);
    }
}
