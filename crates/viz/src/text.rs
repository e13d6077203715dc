//! A bitmap backend with correct text: plotters 0.3.7's `ab_glyph` renderer ignores each glyph's side bearing
//! (letters collide, "Tr" overlaps), so this wrapper rasterises text itself with `ab_glyph` and passes every
//! other call through to [`BitMapBackend`]. Layout sizes stay those plotters computes, so its placement holds.

use ab_glyph::{Font, FontRef, ScaleFont, point};
use plotters::prelude::*;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
    text_anchor::{HPos, VPos},
};
use std::sync::OnceLock;

/// The bundled font with its cap height as a fraction of the pixel size.
fn font() -> Option<&'static (FontRef<'static>, f32)> {
    static FONT: OnceLock<Option<(FontRef<'static>, f32)>> = OnceLock::new();
    FONT.get_or_init(|| {
        let f = FontRef::try_from_slice(crate::font::DEJAVU_SANS).ok()?;
        let sf = f.as_scaled(100.0);
        let cap = sf
            .outline_glyph(sf.scaled_glyph('H'))
            .map_or(70.0, |o| o.px_bounds().height());
        Some((f, cap / 100.0))
    })
    .as_ref()
}

/// [`BitMapBackend`] with its own text rasteriser.
pub(crate) struct Bitmap<'a>(pub BitMapBackend<'a>);

type Err<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Bitmap<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), Err<'a>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), Err<'a>> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), Err<'a>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        ul: BackendCoord,
        br: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Err<'a>> {
        self.0.draw_rect(ul, br, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Err<'a>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Err<'a>> {
        self.0.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), Err<'a>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), Err<'a>> {
        let color = style.color();
        let Some((font, cap)) = font() else {
            return self.0.draw_text(text, style, pos);
        };
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size() as f32;
        let sf = font.as_scaled(size);
        let ids: Vec<_> = text.chars().map(|c| sf.glyph_id(c)).collect();
        let mut carets = Vec::with_capacity(ids.len());
        let mut caret = 0.0f32;
        for (k, &id) in ids.iter().enumerate() {
            if k > 0 {
                caret += sf.kern(ids[k - 1], id);
            }
            carets.push(caret);
            caret += sf.h_advance(id);
        }
        // The same box plotters lays out with: advance width x size/1.24, capitals centred in it.
        let (width, height) = (caret, size / 1.24);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let baseline = (height + cap * size) / 2.0;
        let trans = style.transform();
        let mut pixels = Vec::new();
        for (&id, &x) in ids.iter().zip(&carets) {
            let glyph = id.with_scale_and_position(size, point(x + dx, baseline + dy));
            if let Some(outline) = sf.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let (px, py) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                    pixels.push((trans.transform(px, py), cov.clamp(0.0, 1.0)));
                });
            }
        }
        for ((x, y), cov) in pixels {
            let c = BackendColor {
                alpha: color.alpha * f64::from(cov),
                rgb: color.rgb,
            };
            self.0.draw_pixel((pos.0 + x, pos.1 + y), c)?;
        }
        Ok(())
    }
}
