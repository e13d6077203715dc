//! Header checks the decoders do not make before they allocate: a TIFF tag claiming more bytes than the file
//! has (the `tiff` crate reads the first directory, allocating up to 256 MiB for one tag, before the limits
//! apply), and a WebP frame larger than its canvas (the decoder allocates for the frame).

/// The largest byte count a tag of the first TIFF directory claims, when it exceeds the file's length: such a
/// tag cannot be read, and the decoder would allocate for it first.
pub(crate) fn tiff_oversized_tag(b: &[u8]) -> Option<u64> {
    let le = match b.get(0..4)? {
        [b'I', b'I', 42, 0] => true,
        [b'M', b'M', 0, 42] => false,
        _ => return None, // BigTIFF or not TIFF: left to the decoder
    };
    let u16_at = |i: usize| -> Option<u64> {
        let s: [u8; 2] = b.get(i..i + 2)?.try_into().ok()?;
        Some(u64::from(if le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        }))
    };
    let u32_at = |i: usize| -> Option<u64> {
        let s: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
        Some(u64::from(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        }))
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = u16_at(ifd)?;
    let len = b.len() as u64;
    let mut worst = None;
    for k in 0..entries as usize {
        let e = ifd + 2 + 12 * k;
        let (Some(ty), Some(count)) = (u16_at(e + 2), u32_at(e + 4)) else {
            break;
        };
        let size = match ty {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 | 16..=18 => 8,
            _ => 1,
        };
        let bytes = count * size;
        if bytes > len && worst.is_none_or(|w| bytes > w) {
            worst = Some(bytes);
        }
    }
    worst
}

/// The largest frame (width, height) of a WebP file's `VP8 `, `VP8L` and animation frames, which its decoder
/// allocates for whatever the canvas says.
pub(crate) fn webp_largest_frame(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(0..4)? != b"RIFF" || b.get(8..12)? != b"WEBP" {
        return None;
    }
    let mut largest: Option<(u32, u32)> = None;
    let mut note = |w: u32, h: u32| {
        if largest
            .is_none_or(|(lw, lh)| u64::from(w) * u64::from(h) > u64::from(lw) * u64::from(lh))
        {
            largest = Some((w, h));
        }
    };
    let mut stack = vec![(12usize, b.len())];
    while let Some((mut i, end)) = stack.pop() {
        while i + 8 <= end {
            let tag = &b[i..i + 4];
            let size = u32::from_le_bytes(b[i + 4..i + 8].try_into().ok()?) as usize;
            let data = i + 8;
            let data_end = data.saturating_add(size).min(end);
            let d = &b[data..data_end];
            match tag {
                b"VP8 " if d.len() >= 10 => {
                    let w = u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3FFF);
                    let h = u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3FFF);
                    note(w, h);
                }
                b"VP8L" if d.len() >= 5 => {
                    let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
                    note((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
                }
                // An animation frame: 16 bytes of frame header, then its own chunks.
                b"ANMF" if d.len() >= 16 => stack.push((data + 16, data_end)),
                _ => {}
            }
            // Chunks are padded to an even size.
            i = data.saturating_add(size).saturating_add(size & 1);
        }
    }
    largest
}
