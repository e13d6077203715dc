//! The bundled font: plotters' `ab_glyph` renderer needs no system fonts, only this registration.

use crate::{Error, Result};
use plotters::style::FontStyle;
use std::sync::OnceLock;

/// DejaVu Sans (licence in `assets/DejaVuSans-LICENSE.txt`).
pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name every chart uses; also what SVG output asks the viewer for.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the bundled font under [`FAMILY`] once per process.
pub(crate) fn ensure_registered() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        // Bold falls back to the regular face when asked for.
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok { Ok(()) } else { Err(Error::Font) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_font_registers() {
        super::ensure_registered().unwrap();
        super::ensure_registered().unwrap();
    }
}
