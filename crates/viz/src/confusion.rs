//! The confusion-matrix heatmap (counts or row-normalised), with a colour bar.

use crate::encode::{Chart, DResult, DrawExt, ImageBackend, write_chart};
use crate::font::FAMILY;
use crate::theme::{self, TEXT, blues, text_on};
use crate::{Error, Format, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// Writes the confusion matrix `report_cm` (`[true][predicted]` counts, square, one row per entry of
/// `class_names`) as a heatmap with the count in every cell; `normalized` divides each row by its sum and shows
/// fractions (the recall of each class on the diagonal).
///
/// ```
/// let names: Vec<String> = ["cat", "dog"].iter().map(|s| s.to_string()).collect();
/// let cm = vec![vec![40, 10], vec![5, 45]];
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("confusion_matrix.png");
/// cifar10_viz::confusion_matrix(&cm, &names, false, &path, cifar10_viz::Format::Png).unwrap();
/// assert!(path.exists());
/// ```
pub fn confusion_matrix(
    report_cm: &[Vec<u64>],
    class_names: &[String],
    normalized: bool,
    path: &Path,
    format: Format,
) -> Result<()> {
    crate::font::ensure_registered()?; // the layout measures text
    let n = report_cm.len();
    if n == 0 {
        return Err(Error::no_data(
            "confusion matrix",
            "the matrix has no classes",
        ));
    }
    if let Some((i, row)) = report_cm.iter().enumerate().find(|(_, r)| r.len() != n) {
        return Err(Error::Invalid(format!(
            "confusion matrix: expected {n}x{n} counts, row {i} has {} entries",
            row.len()
        )));
    }
    if class_names.len() != n {
        return Err(Error::Invalid(format!(
            "confusion matrix: {n} classes but {} class names",
            class_names.len()
        )));
    }
    let values: Vec<Vec<f64>> = if normalized {
        report_cm
            .iter()
            .map(|r| {
                let s: u64 = r.iter().sum();
                r.iter()
                    .map(|&v| if s == 0 { 0.0 } else { v as f64 / s as f64 })
                    .collect()
            })
            .collect()
    } else {
        report_cm
            .iter()
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect()
    };
    let chart = Heatmap::new(values, class_names, normalized);
    write_chart(&chart, path, format)
}

struct Heatmap<'a> {
    values: Vec<Vec<f64>>,
    names: &'a [String],
    normalized: bool,
    /// Colour scale maximum: 1 when normalised, else the largest count (at least 1).
    max: f64,
    cell: u32,
    name_w: u32,
}

const MARGIN: u32 = 20;
const TITLE_H: u32 = 70;
const AXIS_TITLE: u32 = 34;
const BAR_GAP: u32 = 30;
const BAR_W: u32 = 24;
const TICK_W: u32 = 70;
const LABEL_PX: u32 = 16;
const TITLE_PX: u32 = 24;

/// Width in pixels of `s` in the bundled font at `size` (a rough estimate if the font is unavailable).
pub(crate) fn text_width(s: &str, size: u32) -> u32 {
    (FAMILY, size)
        .into_font()
        .box_size(s)
        .map(|(w, _)| w)
        .unwrap_or_else(|_| (s.chars().count() as u32 * size * 3) / 5)
}

impl<'a> Heatmap<'a> {
    fn new(values: Vec<Vec<f64>>, names: &'a [String], normalized: bool) -> Self {
        let n = values.len() as u32;
        let max = if normalized {
            1.0
        } else {
            values.iter().flatten().copied().fold(1.0, f64::max)
        };
        let name_w = names
            .iter()
            .map(|s| text_width(s, LABEL_PX))
            .max()
            .unwrap_or(0)
            .max(20);
        Self {
            values,
            names,
            normalized,
            max,
            cell: (720 / n.max(1)).clamp(24, 80),
            name_w,
        }
    }

    fn n(&self) -> u32 {
        self.values.len() as u32
    }

    /// Top-left corner of the matrix.
    fn origin(&self) -> (i32, i32) {
        // Centre the drawing when the title is wider than it.
        let shift = self.size().0.saturating_sub(self.content_w()) / 2;
        (
            (shift + MARGIN + AXIS_TITLE + self.name_w + 12) as i32,
            TITLE_H as i32,
        )
    }

    /// Width of everything but the title.
    fn content_w(&self) -> u32 {
        MARGIN
            + AXIS_TITLE
            + self.name_w
            + 12
            + self.n() * self.cell
            + BAR_GAP
            + BAR_W
            + TICK_W
            + MARGIN
    }

    fn title(&self) -> &'static str {
        if self.normalized {
            "Confusion matrix (row-normalised: fraction of each true class)"
        } else {
            "Confusion matrix (test set counts)"
        }
    }

    fn cell_text(&self, v: f64) -> String {
        if self.normalized {
            format!("{v:.2}")
        } else {
            format!("{v:.0}")
        }
    }
}

impl Chart for Heatmap<'_> {
    fn size(&self) -> (u32, u32) {
        let side = self.n() * self.cell;
        let w = self
            .content_w()
            .max(text_width(self.title(), TITLE_PX) + 2 * MARGIN);
        let h = TITLE_H + side + 12 + self.name_w + AXIS_TITLE + MARGIN;
        (w, h)
    }

    fn draw<DB: ImageBackend>(&self, root: &DrawingArea<DB, Shift>) -> DResult<()> {
        let (w, _) = self.size();
        let n = self.n() as i32;
        let cell = self.cell as i32;
        let side = n * cell;
        let (x0, y0) = self.origin();
        let title = self.title();
        root.draw_text(
            title,
            &theme::title(TITLE_PX),
            ((w / 2) as i32, MARGIN as i32),
        )
        .d()?;

        let value_px = (self.cell / 4).clamp(9, 17);
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let (x, y) = (x0 + c as i32 * cell, y0 + r as i32 * cell);
                let bg = blues(v / self.max);
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], bg.filled()))
                    .d()?;
                let style = theme::text(value_px, text_on(bg), HPos::Center, VPos::Center);
                root.draw_text(&self.cell_text(v), &style, (x + cell / 2, y + cell / 2))
                    .d()?;
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + side, y0 + side)],
            RGBColor(90, 90, 90).stroke_width(1),
        ))
        .d()?;

        // Class names: rows on the left, columns below (rotated so long names never collide).
        let row_style = theme::text(LABEL_PX, TEXT, HPos::Right, VPos::Center);
        let col_style = theme::text(LABEL_PX, TEXT, HPos::Right, VPos::Center)
            .transform(FontTransform::Rotate270);
        for (i, name) in self.names.iter().enumerate() {
            let mid = i as i32 * cell + cell / 2;
            root.draw_text(name, &row_style, (x0 - 10, y0 + mid)).d()?;
            root.draw_text(name, &col_style, (x0 + mid, y0 + side + 10))
                .d()?;
        }
        let desc = theme::text(18, TEXT, HPos::Center, VPos::Center);
        root.draw_text(
            "Predicted label",
            &desc,
            (
                x0 + side / 2,
                y0 + side + 12 + self.name_w as i32 + AXIS_TITLE as i32 / 2,
            ),
        )
        .d()?;
        root.draw_text(
            "True label",
            &desc.transform(FontTransform::Rotate270),
            (
                x0 - (self.name_w + 12 + AXIS_TITLE / 2) as i32,
                y0 + side / 2,
            ),
        )
        .d()?;

        // Colour bar, dark (max) at the top.
        let bx = x0 + side + BAR_GAP as i32;
        let strip = 4;
        let mut y = 0;
        while y < side {
            let t = 1.0 - (f64::from(y) + f64::from(strip) / 2.0) / f64::from(side);
            let y1 = (y + strip).min(side);
            root.draw(&Rectangle::new(
                [(bx, y0 + y), (bx + BAR_W as i32, y0 + y1)],
                blues(t).filled(),
            ))
            .d()?;
            y = y1;
        }
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + BAR_W as i32, y0 + side)],
            RGBColor(90, 90, 90).stroke_width(1),
        ))
        .d()?;
        let tick_style = theme::text(15, TEXT, HPos::Left, VPos::Center);
        let step = if self.normalized {
            nice_step(self.max, 5)
        } else {
            nice_step(self.max, 5).max(1.0) // counts: whole-number ticks
        };
        let mut k = 0.0;
        while k * step <= self.max * (1.0 + 1e-9) {
            let v = k * step;
            let ty = y0 + side - (v / self.max * f64::from(side)).round() as i32;
            let label = if self.normalized {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            };
            let right = bx + BAR_W as i32;
            root.draw(&PathElement::new(
                vec![(right, ty), (right + 5, ty)],
                RGBColor(90, 90, 90),
            ))
            .d()?;
            root.draw_text(&label, &tick_style, (right + 8, ty)).d()?;
            k += 1.0;
        }
        Ok(())
    }
}

/// A round tick step (1, 2 or 5 times a power of ten) giving about `target` steps up to `max`.
fn nice_step(max: f64, target: u32) -> f64 {
    let raw = (max / f64::from(target.max(1))).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag)
}

#[cfg(test)]
mod tests {
    use super::nice_step;

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(nice_step(43.0, 5), 10.0);
        assert_eq!(nice_step(1000.0, 5), 200.0);
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(3.0, 5), 1.0);
        assert_eq!(nice_step(0.3, 5), 0.1);
    }
}
