//! A walk over a JPEG's marker structure, without decoding: is the file complete (does it reach its
//! end-of-image marker), is it progressive, how many components its frame has. The decoder (`zune-jpeg` through
//! `image`) fills what a truncated file lacks with grey and reports success; this walk is how a truncation is
//! noticed.

/// What the walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Structure {
    /// The end-of-image marker (`FF D9`) was reached.
    pub complete: bool,
    /// The frame is progressive (SOF2, SOF6, SOF10, SOF14): the decoder keeps every coefficient in memory.
    pub progressive: bool,
    /// Components of the (first) frame header, 0 when none was seen.
    pub components: u8,
}

/// Walks the markers of `b` (leniently, as decoders do: stray bytes between segments are skipped).
pub(crate) fn structure(b: &[u8]) -> Structure {
    let mut s = Structure {
        complete: false,
        progressive: false,
        components: 0,
    };
    let n = b.len();
    let mut i = 0;
    let mut seen_frame = false;
    loop {
        // The next marker: skip anything up to an 0xFF, then the fill bytes.
        match b.get(i..).and_then(|r| r.iter().position(|&x| x == 0xFF)) {
            Some(p) => i += p,
            None => return s,
        }
        while i < n && b[i] == 0xFF {
            i += 1;
        }
        let Some(&m) = b.get(i) else {
            return s;
        };
        i += 1;
        match m {
            0xD9 => {
                s.complete = true;
                return s;
            }
            // Markers without a segment (SOI, TEM, RSTn), or a stuffed zero out of place.
            0xD8 | 0x01 | 0xD0..=0xD7 | 0x00 => {}
            _ => {
                let Some(len) = b
                    .get(i..i + 2)
                    .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                else {
                    return s;
                };
                if len < 2 {
                    continue;
                }
                let end = i + len;
                if end > n {
                    return s;
                }
                let is_sof = matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC);
                if is_sof && !seen_frame {
                    seen_frame = true;
                    s.progressive = matches!(m, 0xC2 | 0xC6 | 0xCA | 0xCE);
                    // Segment: length (2), precision (1), height (2), width (2), components (1).
                    s.components = b.get(i + 7).copied().unwrap_or(0);
                }
                i = end;
                if m == 0xDA {
                    // Entropy-coded data: runs until an 0xFF that is neither stuffed (FF 00) nor a restart marker.
                    loop {
                        match b.get(i..).and_then(|r| r.iter().position(|&x| x == 0xFF)) {
                            Some(p) => i += p,
                            None => return s,
                        }
                        match b.get(i + 1) {
                            None => return s,
                            Some(0x00 | 0xD0..=0xD7) => i += 2,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(40, 24, |x, y| image::Rgb([x as u8 * 6, y as u8 * 9, 7]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut out),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        out
    }

    #[test]
    fn a_whole_file_is_complete_and_every_cut_is_not() {
        let j = jpeg();
        let s = structure(&j);
        assert_eq!(
            s,
            Structure {
                complete: true,
                progressive: false,
                components: 3
            }
        );
        for cut in 0..j.len() {
            assert!(!structure(&j[..cut]).complete, "cut at {cut}");
        }
        let mut trailing = j.clone();
        trailing.extend_from_slice(&[0; 100]);
        assert!(structure(&trailing).complete);
    }
}
