//! Colours and text styles shared by the charts.

use crate::font::FAMILY;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Training series (matplotlib's default blue).
pub(crate) const TRAIN: RGBColor = RGBColor(31, 119, 180);
/// Validation series (matplotlib's default orange).
pub(crate) const VAL: RGBColor = RGBColor(255, 127, 14);
/// Highlights: the best epoch, the true class.
pub(crate) const GOOD: RGBColor = RGBColor(44, 160, 44);
/// Mistakes: a wrong prediction.
pub(crate) const BAD: RGBColor = RGBColor(214, 39, 40);
/// Plain bars.
pub(crate) const NEUTRAL: RGBColor = RGBColor(150, 170, 190);
pub(crate) const TEXT: RGBColor = RGBColor(30, 30, 30);
pub(crate) const GRID: RGBColor = RGBColor(225, 225, 225);

/// Text of `size` pixels in `color`, anchored at `h`/`v`.
pub(crate) fn text(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle {
        font: (FAMILY, size).into_font(),
        color: color.to_backend_color(),
        pos: Pos::new(h, v),
    }
}

/// Chart title style.
pub(crate) fn title(size: u32) -> TextStyle<'static> {
    text(size, TEXT, HPos::Center, VPos::Top)
}

/// The "Blues" colour map (as in matplotlib/seaborn): `t` in [0, 1] from near-white to dark blue.
pub(crate) fn blues(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (247, 251, 255),
        (222, 235, 247),
        (198, 219, 239),
        (158, 202, 225),
        (107, 174, 214),
        (66, 146, 198),
        (33, 113, 181),
        (8, 81, 156),
        (8, 48, 107),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Black or white, whichever reads better on `bg`.
pub(crate) fn text_on(bg: RGBColor) -> RGBColor {
    let l = 0.299 * f64::from(bg.0) + 0.587 * f64::from(bg.1) + 0.114 * f64::from(bg.2);
    if l < 140.0 { WHITE } else { TEXT }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blues_runs_light_to_dark_and_text_contrasts() {
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
        assert_eq!(blues(f64::NAN), blues(0.0));
        assert_eq!(text_on(blues(1.0)), WHITE);
        assert_eq!(text_on(blues(0.0)), TEXT);
    }
}
