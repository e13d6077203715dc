//! Rendering a chart into PNG or SVG bytes and writing them atomically.

use crate::text::Bitmap;
use crate::{Error, Result, font};
use base64::Engine as _;
use plotters::coord::Shift;
use plotters::element::BitMapElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Output format of a chart.
///
/// ```
/// use cifar10_viz::Format;
/// assert_eq!(Format::default().extension(), "png");
/// assert_eq!("svg".parse::<Format>().unwrap(), Format::Svg);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A PNG bitmap (the default).
    #[default]
    Png,
    /// An SVG document.
    Svg,
}

impl Format {
    /// File extension without the dot: `"png"` or `"svg"`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }

    /// The MIME type, as used in data URIs.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Svg => "image/svg+xml",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "svg" => Ok(Format::Svg),
            other => Err(Error::Invalid(format!(
                "chart format: expected `png` or `svg`, found `{other}`"
            ))),
        }
    }
}

/// Errors inside drawing code are collected as text; [`write_chart`] adds the file name.
pub(crate) type DResult<T> = std::result::Result<T, String>;

/// Turns any displayable error (plotters' generic ones) into [`DResult`].
pub(crate) trait DrawExt<T> {
    fn d(self) -> DResult<T>;
}

impl<T, E: std::fmt::Display> DrawExt<T> for std::result::Result<T, E> {
    fn d(self) -> DResult<T> {
        self.map_err(|e| e.to_string())
    }
}

/// An RGB image `w x h`, interleaved, row-major.
pub(crate) struct Rgb {
    pub w: u32,
    pub h: u32,
    pub data: Vec<u8>,
}

impl Rgb {
    /// Enlarged `scale` times with nearest-neighbour sampling.
    pub fn upscaled(&self, scale: u32) -> Rgb {
        let (w, h, s) = (self.w as usize, self.h as usize, scale.max(1) as usize);
        let mut data = Vec::with_capacity(w * h * s * s * 3);
        for y in 0..h * s {
            for x in 0..w * s {
                let o = ((y / s) * w + x / s) * 3;
                data.extend_from_slice(&self.data[o..o + 3]);
            }
        }
        Rgb {
            w: self.w * scale.max(1),
            h: self.h * scale.max(1),
            data,
        }
    }
}

/// Backends that can place an RGB image; charts are generic over this.
pub(crate) trait ImageBackend: DrawingBackend + Sized {
    /// Draws `img` enlarged `scale` times (nearest neighbour) with its top-left corner at `pos` in `area`.
    fn draw_image(
        area: &DrawingArea<Self, Shift>,
        pos: (i32, i32),
        img: &Rgb,
        scale: u32,
    ) -> DResult<()>;
}

impl ImageBackend for Bitmap<'_> {
    fn draw_image(
        area: &DrawingArea<Self, Shift>,
        pos: (i32, i32),
        img: &Rgb,
        scale: u32,
    ) -> DResult<()> {
        let big = img.upscaled(scale);
        let el = BitMapElement::with_owned_buffer(pos, (big.w, big.h), big.data)
            .ok_or("image buffer has the wrong size")?;
        area.draw(&el).d()
    }
}

/// Marks an image inside SVG text; [`embed_svg_images`] swaps the `<text>` element for an `<image>`.
const SVG_IMAGE_MARK: &str = "VIZ-IMAGE:";

impl ImageBackend for SVGBackend<'_> {
    fn draw_image(
        area: &DrawingArea<Self, Shift>,
        pos: (i32, i32),
        img: &Rgb,
        scale: u32,
    ) -> DResult<()> {
        let png = encode_png(&img.data, img.w, img.h).d()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        let mark = format!("{SVG_IMAGE_MARK}{},{},{b64}", img.w * scale, img.h * scale);
        let style = TextStyle::from((font::FAMILY, 1)).pos(Pos::new(HPos::Left, VPos::Top));
        area.draw_text(&mark, &style, pos).d()
    }
}

/// Replaces every marked `<text>` element with an `<image>` holding the PNG as a data URI.
fn embed_svg_images(svg: &str) -> DResult<String> {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(m) = rest.find(SVG_IMAGE_MARK) {
        let start = rest[..m]
            .rfind("<text")
            .ok_or("image mark outside <text>")?;
        let end = m + rest[m..].find("</text>").ok_or("unclosed image mark")?;
        let tag = &rest[start..m];
        let attr = |name: &str| -> DResult<i64> {
            let key = format!(" {name}=\"");
            let i = tag.find(&key).ok_or("image mark without position")? + key.len();
            let j = tag[i..].find('"').ok_or("bad image mark")?;
            tag[i..i + j].parse::<i64>().map_err(|e| e.to_string())
        };
        let (x, y) = (attr("x")?, attr("y")?);
        let mut fields = rest[m + SVG_IMAGE_MARK.len()..end].splitn(3, ',');
        let (w, h, b64) = match (fields.next(), fields.next(), fields.next()) {
            (Some(w), Some(h), Some(b)) => (w, h, b),
            _ => return Err("bad image mark".into()),
        };
        out.push_str(&rest[..start]);
        out.push_str(&format!(
            "<image x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" \
             style=\"image-rendering:pixelated\" preserveAspectRatio=\"none\" \
             href=\"data:image/png;base64,{b64}\"/>"
        ));
        rest = &rest[end + "</text>".len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes interleaved 8-bit RGB as PNG.
pub(crate) fn encode_png(
    rgb: &[u8],
    w: u32,
    h: u32,
) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Balanced);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// A chart: a fixed pixel size and a drawing routine for any backend.
pub(crate) trait Chart {
    fn size(&self) -> (u32, u32);
    fn draw<DB: ImageBackend>(&self, root: &DrawingArea<DB, Shift>) -> DResult<()>;
}

/// Draws `chart` in `format` and writes it to `path` atomically.
pub(crate) fn write_chart<C: Chart>(chart: &C, path: &Path, format: Format) -> Result<()> {
    font::ensure_registered()?;
    let (w, h) = chart.size();
    let draw_err = |message: String| Error::Draw {
        path: path.to_path_buf(),
        message,
    };
    let bytes = match format {
        Format::Png => {
            let mut buf = vec![255u8; w as usize * h as usize * 3];
            {
                let root = Bitmap(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
                root.fill(&WHITE).d().map_err(draw_err)?;
                chart.draw(&root).map_err(draw_err)?;
                root.present().d().map_err(draw_err)?;
            }
            encode_png(&buf, w, h).map_err(|source| Error::Png {
                path: path.to_path_buf(),
                source,
            })?
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                root.fill(&WHITE).d().map_err(draw_err)?;
                chart.draw(&root).map_err(draw_err)?;
                root.present().d().map_err(draw_err)?;
            }
            embed_svg_images(&svg).map_err(draw_err)?.into_bytes()
        }
    };
    cifar_types::atomic::write_bytes(path, &bytes)?;
    tracing::debug!(path = %path.display(), bytes = bytes.len(), "chart written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscale_is_nearest_neighbour() {
        let img = Rgb {
            w: 2,
            h: 1,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let big = img.upscaled(2);
        assert_eq!((big.w, big.h), (4, 2));
        assert_eq!(&big.data[..12], &[1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
        assert_eq!(&big.data[12..], &big.data[..12]);
    }

    #[test]
    fn svg_marks_become_images() {
        let svg =
            "<svg><text x=\"5\" y=\"7\" dy=\"0.76em\">VIZ-IMAGE:64,32,QUJD</text><rect/></svg>";
        let out = embed_svg_images(svg).unwrap();
        assert_eq!(
            out,
            "<svg><image x=\"5\" y=\"7\" width=\"64\" height=\"32\" style=\"image-rendering:pixelated\" \
             preserveAspectRatio=\"none\" href=\"data:image/png;base64,QUJD\"/><rect/></svg>"
        );
    }
}
