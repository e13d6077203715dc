//! Test images: grids of (mis)classified samples and per-image probability bars.

use crate::confusion::text_width;
use crate::encode::{Chart, DResult, DrawExt, ImageBackend, Rgb, write_chart};
use crate::theme::{self, BAD, GOOD, GRID, NEUTRAL, TEXT};
use crate::{Error, Format, Result};
use cifar_types::{IMAGE_SIDE, ImageSet, Predictions};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// Most images one grid draws; further indices are left out.
pub const MAX_GRID_IMAGES: usize = 100;
/// Enlargement of the 32x32 images (nearest neighbour).
const SCALE: u32 = 4;
const IMG: i32 = (IMAGE_SIDE as u32 * SCALE) as i32;

/// Image `i` of `images` as interleaved RGB.
fn rgb(images: &ImageSet, i: usize) -> Rgb {
    let mut data = Vec::with_capacity(IMAGE_SIDE * IMAGE_SIDE * 3);
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            data.extend_from_slice(&images.rgb(i, y, x));
        }
    }
    Rgb {
        w: IMAGE_SIDE as u32,
        h: IMAGE_SIDE as u32,
        data,
    }
}

/// Checks that `preds` belong to `images` and every index exists.
fn check(images: &ImageSet, preds: &Predictions, indices: &[usize], chart: &str) -> Result<()> {
    if images.len() != preds.len() {
        return Err(Error::Invalid(format!(
            "{chart}: {} images but {} predictions",
            images.len(),
            preds.len()
        )));
    }
    if preds.classes != images.num_classes() {
        return Err(Error::Invalid(format!(
            "{chart}: predictions have {} classes, the images {} class names",
            preds.classes,
            images.num_classes()
        )));
    }
    for &i in indices {
        if i >= images.len() {
            return Err(Error::Invalid(format!(
                "{chart}: index {i} is out of range ({} images)",
                images.len()
            )));
        }
        if images.label(i) != preds.labels[i] {
            return Err(Error::Invalid(format!(
                "{chart}: image {i} has label {} but the predictions say {}: they are not of the same set",
                images.label(i),
                preds.labels[i]
            )));
        }
    }
    if indices.is_empty() {
        return Err(Error::no_data(chart, "no images to show"));
    }
    Ok(())
}

fn class_name(images: &ImageSet, c: usize) -> &str {
    images.class_names().get(c).map_or("?", |s| s.as_str())
}

/// Writes a grid (5 per row) of the images at `indices`, each labelled `true -> pred (p)` in green when the
/// prediction is right and red when it is wrong. At most [`MAX_GRID_IMAGES`] are drawn; no indices is
/// [`Error::NoData`].
///
/// ```no_run
/// # fn demo(images: &cifar_types::ImageSet, preds: &cifar_types::Predictions) -> cifar10_viz::Result<()> {
/// let wrong = preds.misclassified();
/// let n = wrong.len().min(25);
/// cifar10_viz::sample_grid(images, preds, &wrong[..n], "Misclassified test images",
///     std::path::Path::new("runs/x/misclassified_samples.png"), cifar10_viz::Format::Png)?;
/// # Ok(()) }
/// ```
pub fn sample_grid(
    images: &ImageSet,
    preds: &Predictions,
    indices: &[usize],
    title: &str,
    path: &Path,
    format: Format,
) -> Result<()> {
    crate::font::ensure_registered()?;
    check(images, preds, indices, "sample grid")?;
    let indices = &indices[..indices.len().min(MAX_GRID_IMAGES)];
    write_chart(
        &Grid {
            images,
            preds,
            indices,
            title,
        },
        path,
        format,
    )
}

struct Grid<'a> {
    images: &'a ImageSet,
    preds: &'a Predictions,
    indices: &'a [usize],
    title: &'a str,
}

const TILE_W: u32 = 236;
const TILE_H: u32 = 176;
const GRID_COLS: usize = 5;
const TOP: u32 = 64;
const SIDE: u32 = 20;

impl Chart for Grid<'_> {
    fn size(&self) -> (u32, u32) {
        let cols = self.indices.len().clamp(1, GRID_COLS) as u32;
        let rows = self.indices.len().div_ceil(GRID_COLS).max(1) as u32;
        let w = (2 * SIDE + cols * TILE_W).max(text_width(self.title, 24) + 2 * SIDE);
        (w, TOP + rows * TILE_H + SIDE)
    }

    fn draw<DB: ImageBackend>(&self, root: &DrawingArea<DB, Shift>) -> DResult<()> {
        let (w, _) = self.size();
        root.draw_text(self.title, &theme::title(24), ((w / 2) as i32, SIDE as i32))
            .d()?;
        let cols = self.indices.len().clamp(1, GRID_COLS) as u32;
        let left = ((w - cols * TILE_W) / 2) as i32;
        for (k, &i) in self.indices.iter().enumerate() {
            let x = left + ((k % GRID_COLS) as u32 * TILE_W) as i32;
            let y = (TOP + (k / GRID_COLS) as u32 * TILE_H) as i32;
            let ix = x + (TILE_W as i32 - IMG) / 2;
            DB::draw_image(root, (ix, y), &rgb(self.images, i), SCALE)?;
            let truth = usize::from(self.preds.labels[i]);
            let (pred, p) = self.preds.predicted(i);
            let label = format!(
                "{} -> {} ({p:.2})",
                class_name(self.images, truth),
                class_name(self.images, pred)
            );
            // Shrink the font for long names so neighbouring labels never touch.
            let mut px = 15;
            while px > 9 && text_width(&label, px) > TILE_W - 12 {
                px -= 1;
            }
            let color = if truth == pred { GOOD } else { BAD };
            let style = theme::text(px, color, HPos::Center, VPos::Top);
            root.draw_text(&label, &style, (x + TILE_W as i32 / 2, y + IMG + 8))
                .d()?;
        }
        Ok(())
    }
}

/// Picks `count` images deterministically for [`probability_bars`]: the first image of each class in class
/// order, then (with fewer classes than `count`) the earliest images not yet picked.
///
/// ```
/// let preds = cifar_types::Predictions::new(2, vec![1, 1, 0], vec![0.5; 6]).unwrap();
/// assert_eq!(cifar10_viz::pick_probability_samples(&preds, 3), vec![2, 0, 1]);
/// ```
pub fn pick_probability_samples(preds: &Predictions, count: usize) -> Vec<usize> {
    let mut picked: Vec<usize> = (0..preds.classes)
        .filter_map(|c| preds.labels.iter().position(|&l| usize::from(l) == c))
        .take(count)
        .collect();
    let mut next = 0;
    while picked.len() < count.min(preds.len()) {
        if !picked.contains(&next) {
            picked.push(next);
        }
        next += 1;
    }
    picked
}

/// Writes, for each image at `indices` (two per row), the image beside a horizontal bar chart of its class
/// probabilities: the true class in green, a wrong top prediction in red, the rest grey.
///
/// ```no_run
/// # fn demo(images: &cifar_types::ImageSet, preds: &cifar_types::Predictions) -> cifar10_viz::Result<()> {
/// let pick = cifar10_viz::pick_probability_samples(preds, 6);
/// cifar10_viz::probability_bars(images, preds, &pick,
///     std::path::Path::new("runs/x/prediction_probabilities.png"), cifar10_viz::Format::Png)?;
/// # Ok(()) }
/// ```
pub fn probability_bars(
    images: &ImageSet,
    preds: &Predictions,
    indices: &[usize],
    path: &Path,
    format: Format,
) -> Result<()> {
    crate::font::ensure_registered()?;
    check(images, preds, indices, "probability bars")?;
    let indices = &indices[..indices.len().min(MAX_GRID_IMAGES)];
    let name_w = images
        .class_names()
        .iter()
        .map(|s| text_width(s, 13))
        .max()
        .unwrap_or(0);
    write_chart(
        &Bars {
            images,
            preds,
            indices,
            name_w,
        },
        path,
        format,
    )
}

struct Bars<'a> {
    images: &'a ImageSet,
    preds: &'a Predictions,
    indices: &'a [usize],
    name_w: u32,
}

const PANEL_W: u32 = 640;
const PANEL_HEAD: u32 = 34;
const BARS_COLS: usize = 2;

/// The most bars one image gets: with more classes, the most probable ones (and the true class).
const MAX_BARS: usize = 10;

impl Bars<'_> {
    fn panel_h(&self) -> u32 {
        PANEL_HEAD + (self.preds.classes.min(MAX_BARS) as u32 * 20).max(IMG as u32) + 40
    }

    /// The classes drawn for image `i`: all of them in label order when there are at most [`MAX_BARS`], else
    /// the most probable ones in decreasing order, the true class in the last place when it is not among them.
    fn shown(&self, i: usize) -> Vec<usize> {
        let n = self.preds.classes;
        if n <= MAX_BARS {
            return (0..n).collect();
        }
        let row = self.preds.row(i);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        order.truncate(MAX_BARS);
        let truth = usize::from(self.preds.labels[i]);
        if !order.contains(&truth) {
            order[MAX_BARS - 1] = truth;
        }
        order
    }
}

impl Chart for Bars<'_> {
    fn size(&self) -> (u32, u32) {
        let cols = self.indices.len().clamp(1, BARS_COLS) as u32;
        let rows = self.indices.len().div_ceil(BARS_COLS).max(1) as u32;
        (
            2 * SIDE + cols * PANEL_W,
            TOP + rows * self.panel_h() + SIDE,
        )
    }

    fn draw<DB: ImageBackend>(&self, root: &DrawingArea<DB, Shift>) -> DResult<()> {
        let (w, _) = self.size();
        let title = "Predicted class probabilities (green: true class, red: wrong top prediction)";
        root.draw_text(title, &theme::title(22), ((w / 2) as i32, SIDE as i32))
            .d()?;
        for (k, &i) in self.indices.iter().enumerate() {
            let x = (SIDE + (k % BARS_COLS) as u32 * PANEL_W) as i32;
            let y = (TOP + (k / BARS_COLS) as u32 * self.panel_h()) as i32;
            self.panel(root, (x, y), i)?;
        }
        Ok(())
    }
}

impl Bars<'_> {
    fn panel<DB: ImageBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x, y): (i32, i32),
        i: usize,
    ) -> DResult<()> {
        let shown = self.shown(i);
        let n = shown.len();
        let truth = usize::from(self.preds.labels[i]);
        let (pred, p) = self.preds.predicted(i);
        let mut head = format!(
            "test image {i}: true {}, predicted {} ({p:.2})",
            class_name(self.images, truth),
            class_name(self.images, pred)
        );
        if n < self.preds.classes {
            head.push_str(&format!("; top {n} of {}", self.preds.classes));
        }
        let head_color = if truth == pred { GOOD } else { BAD };
        root.draw_text(
            &head,
            &theme::text(15, head_color, HPos::Left, VPos::Top),
            (x + 4, y),
        )
        .d()?;

        let top = y + PANEL_HEAD as i32;
        let bars_h = (n as i32 * 20).max(IMG);
        DB::draw_image(
            root,
            (x + 4, top + (bars_h - IMG) / 2),
            &rgb(self.images, i),
            SCALE,
        )?;

        // Bars: names right-aligned before x0, values after the bar end.
        let x0 = x + 4 + IMG + 20 + self.name_w as i32 + 8;
        let x1 = x + PANEL_W as i32 - 56;
        let row = bars_h / n.max(1) as i32;
        let span = f64::from(x1 - x0);
        for k in 0..=4 {
            let gx = x0 + (span * f64::from(k) / 4.0).round() as i32;
            root.draw(&PathElement::new(vec![(gx, top), (gx, top + bars_h)], GRID))
                .d()?;
            let tick = format!("{:.2}", f64::from(k) / 4.0);
            let style = theme::text(12, TEXT, HPos::Center, VPos::Top);
            root.draw_text(&tick, &style, (gx, top + bars_h + 4)).d()?;
        }
        let axis = theme::text(13, TEXT, HPos::Center, VPos::Top);
        root.draw_text("probability", &axis, ((x0 + x1) / 2, top + bars_h + 20))
            .d()?;
        let probs = self.preds.row(i);
        for (slot, &c) in shown.iter().enumerate() {
            let pc = probs[c];
            let ry = top + slot as i32 * row;
            let pc = if pc.is_finite() {
                f64::from(pc).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let color = if c == truth {
                GOOD
            } else if c == pred {
                BAD
            } else {
                NEUTRAL
            };
            let bw = (span * pc).round() as i32;
            if bw > 0 {
                root.draw(&Rectangle::new(
                    [(x0, ry + 3), (x0 + bw, ry + row - 3)],
                    color.filled(),
                ))
                .d()?;
            }
            let mid = ry + row / 2;
            let name_style = theme::text(13, TEXT, HPos::Right, VPos::Center);
            root.draw_text(class_name(self.images, c), &name_style, (x0 - 8, mid))
                .d()?;
            let val_style = theme::text(12, TEXT, HPos::Left, VPos::Center);
            root.draw_text(&format!("{pc:.2}"), &val_style, (x0 + bw + 4, mid))
                .d()?;
        }
        root.draw(&PathElement::new(
            vec![(x0, top), (x0, top + bars_h)],
            RGBColor(90, 90, 90),
        ))
        .d()
    }
}
