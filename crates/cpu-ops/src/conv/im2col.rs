//! im2col patches of 3x3 / pad-1 convolutions and the group-matrix layouts (several images side by side).

use crate::uninit::Part;

/// Writes the 3x3/pad-1 patches of one image `x[c×h×w]` as rows of `cols[(9c)×(hw)]`.
pub(crate) fn im2col(x: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
    im2col_strided(x, c, h, w, h * w, cols, h * w);
}

/// Writes the 3x3/pad-1 patches of one image, whose channel `ci` plane is `x[ci·x_stride..][..h·w]`, as the
/// rows of a `(9c) × (h·w)` block of `cols` with row stride `ld`: row `(ci, kh, kw)` at `cols[row·ld..][..hw]`
/// (several images side by side in one matrix when `ld` > `hw`).
///
/// Row `(ci, kh, kw)` is the plane `ci` shifted by `(kh-1)·w + (kw-1)` elements: one copy of the
/// whole plane (rows are short, so per-row copies would be mostly call overhead), zeros where
/// the shift runs off the plane, then the wrapped-around column (`ow = 0` for `kw = 0`,
/// `ow = w-1` for `kw = 2`) zeroed.
pub(crate) fn im2col_strided(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    x_stride: usize,
    cols: &mut [f32],
    ld: usize,
) {
    let hw = h * w;
    if hw == 0 {
        return;
    }
    for ci in 0..c {
        let src = &x[ci * x_stride..][..hw];
        for kh in 0..3 {
            for kw in 0..3 {
                let row = &mut cols[(ci * 9 + kh * 3 + kw) * ld..][..hw];
                let off = (kh as isize - 1) * w as isize + (kw as isize - 1);
                let lo = (-off).clamp(0, hw as isize) as usize;
                let hi = (hw as isize - off).clamp(lo as isize, hw as isize) as usize;
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                if hi > lo {
                    let s0 = (lo as isize + off) as usize;
                    row[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                }
                match kw {
                    0 => row.iter_mut().step_by(w).for_each(|v| *v = 0.0),
                    2 => row[w - 1..].iter_mut().step_by(w).for_each(|v| *v = 0.0),
                    _ => {}
                }
            }
        }
    }
}

/// Where a group of images lives: image `j`'s channel `c` plane is `data[j·img_stride + c·plane_stride..][..hw]`.
/// NCHW images have `img_stride = c·hw`, `plane_stride = hw`; a group matrix `[c × (g·hw)]` (the output of
/// [`conv_group`](super::conv_group)) has `img_stride = hw`, `plane_stride = g·hw`.
#[derive(Clone, Copy)]
pub(crate) struct Images<'a> {
    pub data: &'a [f32],
    pub img_stride: usize,
    pub plane_stride: usize,
}

impl<'a> Images<'a> {
    /// `g` consecutive NCHW images of `c` channels.
    pub fn nchw(data: &'a [f32], c: usize, hw: usize) -> Self {
        Self {
            data,
            img_stride: c * hw,
            plane_stride: hw,
        }
    }
}

/// im2col of `g` images side by side: `cols[(9c) × (g·hw)]`, image `j` in columns `j·hw..(j+1)·hw`.
pub(crate) fn im2col_group(
    x: Images<'_>,
    g: usize,
    c: usize,
    h: usize,
    w: usize,
    cols: &mut [f32],
) {
    let hw = h * w;
    for j in 0..g {
        im2col_strided(
            &x.data[j * x.img_stride..],
            c,
            h,
            w,
            x.plane_stride,
            &mut cols[j * hw..],
            g * hw,
        );
    }
}

/// Copies a group matrix `src[c × (g·hw)]` into `g` NCHW images `dst[g × c × hw]` (an output's part, written
/// here first: no zeroing before).
pub(crate) fn ungroup(src: &[f32], g: usize, c: usize, hw: usize, dst: Part<'_, f32>) {
    let cn = g * hw;
    let mut planes = dst.pieces(hw);
    for j in 0..g {
        for o in 0..c {
            planes.next_copied(&src[o * cn + j * hw..][..hw]);
        }
    }
}

/// Copies `g` NCHW images `src[g × c × hw]` into a group matrix `dst[c × (g·hw)]`.
pub(crate) fn group(src: &[f32], g: usize, c: usize, hw: usize, dst: &mut [f32]) {
    let cn = g * hw;
    for (j, img) in src.chunks_exact(c * hw).take(g).enumerate() {
        for (o, plane) in img.chunks_exact(hw).enumerate() {
            dst[o * cn + j * hw..][..hw].copy_from_slice(plane);
        }
    }
}
