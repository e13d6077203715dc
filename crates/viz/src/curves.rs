//! Loss and accuracy curves per epoch.

use crate::encode::{Chart, DResult, DrawExt, ImageBackend, write_chart};
use crate::font::FAMILY;
use crate::theme::{GOOD, GRID, TRAIN, VAL};
use crate::{Error, Format, Result};
use cifar_types::History;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// Draws the grid and axes of a chart over epochs (whole epochs labelled on x, `y_fmt` on y), as every per-epoch
/// chart (these curves, the comparison's overlays) draws them.
pub(crate) fn epoch_mesh<DB: ImageBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    y_desc: &str,
    epochs: usize,
    y_fmt: &dyn Fn(&f64) -> String,
) -> DResult<()> {
    let int_only = |x: &f64| {
        if (x - x.round()).abs() < 1e-6 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc("Epoch")
        .y_desc(y_desc)
        .x_labels(epochs.clamp(2, 12) + 1)
        .y_labels(8)
        .x_label_formatter(&int_only)
        .y_label_formatter(y_fmt)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 18))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .draw()
        .d()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Loss,
    Accuracy,
}

struct Curves<'a> {
    history: &'a History,
    kind: Kind,
}

/// Writes the training and validation loss per epoch.
///
/// An empty history is [`Error::NoData`]; a single epoch draws single points.
///
/// ```
/// use cifar_types::{EpochMetrics, History};
/// let e = |epoch, loss| EpochMetrics { epoch, train_loss: loss, train_acc: 0.5, val_loss: loss + 0.1,
///     val_acc: 0.45, lr: 1e-3, epoch_secs: 1.0, train_images_per_sec: 100.0 };
/// let history = History { epochs: vec![e(1, 2.0), e(2, 1.5)] };
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("loss_curve.png");
/// cifar10_viz::loss_curve(&history, &path, cifar10_viz::Format::Png).unwrap();
/// assert!(path.exists());
/// ```
pub fn loss_curve(history: &History, path: &Path, format: Format) -> Result<()> {
    curves(history, Kind::Loss, path, format)
}

/// Writes the training and validation accuracy per epoch (the fractions of [`cifar_types::EpochMetrics`]
/// shown as percent), with the best epoch ([`History::best`]) marked.
///
/// ```
/// use cifar_types::{EpochMetrics, History};
/// let e = |epoch, acc| EpochMetrics { epoch, train_loss: 1.0, train_acc: acc, val_loss: 1.0,
///     val_acc: acc - 0.05, lr: 1e-3, epoch_secs: 1.0, train_images_per_sec: 100.0 };
/// let history = History { epochs: vec![e(1, 0.4), e(2, 0.6)] };
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("accuracy_curve.svg");
/// cifar10_viz::accuracy_curve(&history, &path, cifar10_viz::Format::Svg).unwrap();
/// assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
/// ```
pub fn accuracy_curve(history: &History, path: &Path, format: Format) -> Result<()> {
    curves(history, Kind::Accuracy, path, format)
}

fn curves(history: &History, kind: Kind, path: &Path, format: Format) -> Result<()> {
    let chart = match kind {
        Kind::Loss => "loss curve",
        Kind::Accuracy => "accuracy curve",
    };
    if history.epochs.is_empty() {
        return Err(Error::no_data(chart, "the history has no epochs"));
    }
    let c = Curves { history, kind };
    if c.series().iter().all(|s| s.is_empty()) {
        return Err(Error::no_data(chart, "every value is NaN or infinite"));
    }
    write_chart(&c, path, format)
}

impl Curves<'_> {
    /// (training, validation) points, non-finite values left out.
    fn series(&self) -> [Vec<(f64, f64)>; 2] {
        let pick = |f: &dyn Fn(&cifar_types::EpochMetrics) -> f64| -> Vec<(f64, f64)> {
            self.history
                .epochs
                .iter()
                .map(|e| (e.epoch as f64, f(e)))
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect()
        };
        match self.kind {
            Kind::Loss => [pick(&|e| e.train_loss), pick(&|e| e.val_loss)],
            Kind::Accuracy => [pick(&|e| e.train_acc * 100.0), pick(&|e| e.val_acc * 100.0)],
        }
    }
}

/// Splits `points` where epochs are missing (a NaN loss, say), so no line bridges the gap.
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    for &p in points {
        match out.last_mut() {
            Some(seg) if seg.last().is_some_and(|q| p.0 - q.0 <= 1.5) => seg.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

/// A range around `lo..hi` with some headroom, never empty.
fn padded(lo: f64, hi: f64, frac: f64, min_pad: f64) -> (f64, f64) {
    let pad = ((hi - lo) * frac).max(min_pad);
    (lo - pad, hi + pad)
}

impl Chart for Curves<'_> {
    fn size(&self) -> (u32, u32) {
        (1000, 620)
    }

    fn draw<DB: ImageBackend>(&self, root: &DrawingArea<DB, Shift>) -> DResult<()> {
        let [train, val] = self.series();
        let all = || train.iter().chain(val.iter());
        let (x_lo, x_hi) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y_lo, y_hi) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (x_lo, x_hi) = padded(x_lo, x_hi, 0.02, 0.5);
        let (y_lo, y_hi) = match self.kind {
            Kind::Loss => {
                let (lo, hi) = padded(y_lo, y_hi, 0.06, 0.05);
                (if y_lo >= 0.0 { lo.max(0.0) } else { lo }, hi)
            }
            Kind::Accuracy => {
                let (lo, hi) = padded(y_lo, y_hi, 0.08, 2.0);
                (lo.max(0.0), hi.min(100.0))
            }
        };
        let has_val = !val.is_empty();
        let (title, y_desc) = match (self.kind, has_val) {
            (Kind::Loss, true) => ("Training and validation loss", "Loss"),
            (Kind::Loss, false) => ("Training loss (no validation split)", "Loss"),
            (Kind::Accuracy, true) => ("Training and validation accuracy", "Accuracy (%)"),
            (Kind::Accuracy, false) => ("Training accuracy (no validation split)", "Accuracy (%)"),
        };
        let epochs = self.history.epochs.len();
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 26))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .d()?;
        // Enough decimals that neighbouring labels differ on a narrow range.
        let step = (y_hi - y_lo) / 8.0;
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10()).ceil().clamp(0.0, 4.0) as usize
        };
        let y_fmt = |y: &f64| match self.kind {
            Kind::Loss => format!("{y:.2}"),
            Kind::Accuracy => format!("{y:.decimals$}"),
        };
        epoch_mesh(&mut chart, y_desc, epochs, &y_fmt)?;

        let markers = epochs <= 60;
        for (points, color, name) in [(&train, TRAIN, "Training"), (&val, VAL, "Validation")] {
            if points.is_empty() {
                continue;
            }
            let mut parts = segments(points).into_iter();
            let first = parts.next().unwrap_or_default();
            chart
                .draw_series(LineSeries::new(
                    first.iter().copied(),
                    color.stroke_width(2),
                ))
                .d()?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x - 2, y), (x + 22, y)], color.stroke_width(3))
                });
            for part in std::iter::once(first).chain(parts) {
                chart
                    .draw_series(LineSeries::new(part.iter().copied(), color.stroke_width(2)))
                    .d()?;
                if markers || part.len() == 1 {
                    chart
                        .draw_series(part.iter().map(|&p| Circle::new(p, 4, color.filled())))
                        .d()?;
                }
            }
        }
        if self.kind == Kind::Accuracy
            && let Some(best) = self.history.best()
            && best.val_acc.is_finite()
        {
            let (bx, by) = (best.epoch as f64, best.val_acc * 100.0);
            let style = GOOD.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new([(bx, y_lo), (bx, y_hi)], 8, 6, style))
                .d()?
                .label(format!("Best epoch {} ({:.2}% val)", best.epoch, by))
                .legend(move |(x, y)| {
                    // Parts of a composed element are placed relative to its anchor.
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(-2, 0), (22, 0)], style)
                        + Circle::new((10, 0), 6, GOOD.filled())
                });
            chart
                .draw_series(std::iter::once(Circle::new((bx, by), 8, GOOD.filled())))
                .d()?;
        }
        let position = match self.kind {
            Kind::Loss => SeriesLabelPosition::UpperRight,
            Kind::Accuracy => SeriesLabelPosition::LowerRight,
        };
        chart
            .configure_series_labels()
            .position(position)
            .margin(15)
            .legend_area_size(35)
            .label_font((FAMILY, 16))
            .background_style(WHITE.filled())
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .d()
    }
}

#[cfg(test)]
mod tests {
    use super::{padded, segments};

    #[test]
    fn gaps_split_the_line() {
        let pts = [(1.0, 1.0), (2.0, 2.0), (4.0, 4.0), (5.0, 5.0), (7.0, 7.0)];
        let segs = segments(&pts);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0], vec![(1.0, 1.0), (2.0, 2.0)]);
        assert_eq!(segs[2], vec![(7.0, 7.0)]);
        assert!(segments(&[]).is_empty());
    }

    #[test]
    fn padding_never_degenerates() {
        let (lo, hi) = padded(1.0, 1.0, 0.1, 0.5);
        assert_eq!((lo, hi), (0.5, 1.5));
        let (lo, hi) = padded(0.0, 10.0, 0.1, 0.5);
        assert_eq!((lo, hi), (-1.0, 11.0));
    }
}
