//! The comparison's charts: validation curves overlaid ([`Overlay`]) and per-class accuracy as grouped bars
//! ([`PerClass`]), with a legend that wraps.

use super::{ComparedRun, color};
use crate::encode::{Chart, DResult, DrawExt, ImageBackend};
use crate::font::FAMILY;
use crate::theme::{GRID, TEXT, text};
use crate::{Error, Result};
use cifar_types::TestReport;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Metric {
    ValAccuracy,
    ValLoss,
}

/// Legend entries laid out in rows under a chart: (x offset, row) per entry, and the number of rows.
pub(super) fn legend_layout(labels: &[String], width: u32) -> (Vec<(i32, i32)>, i32) {
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
pub(super) struct Overlay<'a> {
    pub(super) runs: &'a [ComparedRun],
    pub(super) kind: Metric,
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
        let y_fmt = |y: &f64| match self.kind {
            Metric::ValAccuracy => format!("{y:.0}"),
            Metric::ValLoss => format!("{y:.2}"),
        };
        crate::curves::epoch_mesh(&mut chart, y_desc, x_hi as usize, &y_fmt)?;
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
pub(super) struct PerClass<'a> {
    runs: Vec<(usize, &'a ComparedRun, &'a TestReport)>,
    classes: Vec<String>,
}

impl<'a> PerClass<'a> {
    const W: u32 = 1250;
    const H: u32 = 600;

    pub(super) fn new(runs: &'a [ComparedRun]) -> Result<Self> {
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
