//! Winograd F(2x2, 3x3) for the 3x3 / pad-1 convolution's forward GEMM (and so for its input gradient, itself such
//! a convolution): each 2x2 block of outputs comes from a 4x4 block of inputs with 16 multiplies per channel pair
//! instead of 36, so the multiply-adds drop 2.25x (less at odd sizes, where the last tile row and column are half
//! used: 1.98x at 15x15, 1.72x at 7x7).
//!
//! `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A` per tile, summed over input channels: the 16 element positions `ξ` of the 4x4
//! products are 16 independent GEMMs `M_ξ[co × P] = U_ξ[co × ci] · V_ξ[ci × P]` over `P` tiles (of a group of
//! images), run by [`ConvLhs`] (so bf16 or f32 as the convolutions are switched). `U = G g Gᵀ` is computed once
//! per op call, `V = Bᵀ d B` per group of images (row transforms on whole padded rows, then the column transform
//! on even/odd split rows, so both loops run along contiguous memory), and the outputs `Aᵀ M A` written into the
//! same group matrix as the direct path's.
//!
//! The transforms only add and subtract (and halve, in `G`), so the f32 result differs from the direct one by
//! rounding alone; in bf16 the transformed inputs are rounded (sums of up to four inputs), which measured within
//! the same 1% tolerance as the direct bf16 path (tests/bf16.rs).

use rayon::prelude::*;

use crate::bf16_gemm::ConvLhs;
use crate::conv::{ConvDims, Images};
use crate::util::{Mat, with_scratch_a, with_scratch_c};

/// Fewest input channels for Winograd: below it the GEMMs' depth (`ci`) is too shallow to pay for the transforms.
const MIN_CI: usize = 32;
/// Smallest output side: at 3x3 four tiles cover 9 outputs (16 computed), which leaves almost no saving.
const MIN_SIDE: usize = 5;
/// Most GEMM columns (tiles of all the images of a group).
pub(crate) const COLS: usize = 64;

/// Whether a convolution of these sizes runs as Winograd (when the settings allow it).
pub(crate) fn applies(d: &ConvDims) -> bool {
    d.ci >= MIN_CI && d.h.min(d.w) >= MIN_SIDE && simd_fits(d.w)
}

/// Tile rows and columns (2x2 outputs each).
fn tiles(h: usize, w: usize) -> (usize, usize) {
    (h.div_ceil(2), w.div_ceil(2))
}

/// What the transforms of one group need: `g` images of `h × w`, and `p` GEMM columns (the group's tiles) in the
/// transformed matrices `V` and `M`.
#[derive(Clone, Copy)]
struct Group {
    g: usize,
    h: usize,
    w: usize,
    p: usize,
}

/// Tiles per image: the GEMM columns one image adds.
pub(crate) fn tiles_per_image(d: &ConvDims) -> usize {
    let (th, tw) = tiles(d.h, d.w);
    th * tw
}

/// The transformed weights `U_ξ = (G g Gᵀ)_ξ`, one left operand `[co × ci]` per `ξ`.
pub(crate) struct Weights {
    lhs: Vec<ConvLhs<'static>>,
    co: usize,
    ci: usize,
}

impl Weights {
    /// From `w [co, ci, 3, 3]`.
    pub(crate) fn new(w: &[f32], co: usize, ci: usize, p: crate::Precision) -> Self {
        let mut u = vec![vec![0f32; co * ci]; 16];
        for (oi, g) in w.chunks_exact(9).take(co * ci).enumerate() {
            // G g: 4 rows of 3.
            let mut gg = [[0f32; 3]; 4];
            for c in 0..3 {
                let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
                gg[0][c] = g0;
                gg[1][c] = 0.5 * (g0 + g1 + g2);
                gg[2][c] = 0.5 * (g0 - g1 + g2);
                gg[3][c] = g2;
            }
            for (a, r) in gg.iter().enumerate() {
                let row = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (b, &v) in row.iter().enumerate() {
                    u[a * 4 + b][oi] = v;
                }
            }
        }
        // Packing 16 matrices for the bf16 kernel is most of this constructor's time: one per rayon task.
        let lhs = u
            .into_par_iter()
            .map(|m| ConvLhs::owned(m, co, ci, p))
            .collect();
        Self { lhs, co, ci }
    }
}

/// Convolves `g` images into the group matrix `dst[co × (g·hw)]` (image `j`'s channel `o` plane at
/// `dst[o·g·hw + j·hw..][..hw]`), bias added when given: as `conv::conv_group`, by Winograd.
pub(crate) fn conv_group(
    d: &ConvDims,
    x: Images<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    conv_group_with(d, x, g, wts, bias, dst, simd_fits(d.w));
}

/// [`conv_group`] with the AVX-512 transforms (`simd`, which the caller checked with [`simd_fits`]) or the
/// plain ones.
fn conv_group_with(
    d: &ConvDims,
    x: Images<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    dst: &mut [f32],
    simd: bool,
) {
    let (co, ci) = (wts.co, wts.ci);
    let p = g * tiles_per_image(d);
    if p == 0 || co == 0 {
        return;
    }
    assert!(
        !simd || simd_fits(d.w),
        "winograd: AVX-512 transforms for an unfit shape"
    );
    crate::isa::record(
        crate::KernelFamily::Winograd,
        if simd {
            crate::Isa::Avx512
        } else {
            crate::Isa::Baseline
        },
    );
    let grp = Group {
        g,
        h: d.h,
        w: d.w,
        p,
    };
    with_scratch_a(16 * ci * p, |v| {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: AVX-512F present and w <= 15 (simd_fits); v holds 16 × ci × p floats, x the g images.
            unsafe { x86::transform_input(x, ci, grp, v) };
        }
        if !simd {
            transform_input(x, ci, grp, v);
        }
        with_scratch_c(16 * co * p, |m| {
            for (xi, lhs) in wts.lhs.iter().enumerate() {
                let b = Mat {
                    data: &v[xi * ci * p..][..ci * p],
                    rs: p,
                    cs: 1,
                };
                lhs.gemm(p, &mut m[xi * co * p..][..co * p], p, false, b);
            }
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: as above; m holds 16 × co × p floats, dst co × g·h·w.
                unsafe { x86::transform_output(m, co, grp, bias, dst) };
            }
            if !simd {
                transform_output(m, co, grp, bias, dst);
            }
        });
    });
}

/// Whether the AVX-512 transforms serve an image `w` wide (a padded row in one vector).
fn simd_fits(w: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        w <= 15 && crate::Isa::detect() >= crate::Isa::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = w;
        false
    }
}

/// `V_ξ[c][tile] = (Bᵀ d B)_ξ` for every channel and tile of `g` images, into `v[16 × ci × p]`.
fn transform_input(x: Images<'_>, ci: usize, grp: Group, v: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    // Padded rows: index q is input column q - 1 (zeros at q = 0 and beyond the row).
    let wp = 2 * tw + 2;
    let mut rows = vec![0f32; 4 * wp];
    let mut t = vec![0f32; 4 * wp];
    let (mut e, mut o) = (vec![0f32; tw + 1], vec![0f32; tw + 1]);
    for j in 0..g {
        for c in 0..ci {
            let plane = &x.data[j * x.img_stride + c * x.plane_stride..][..h * w];
            for ty in 0..th {
                for (k, row) in rows.chunks_exact_mut(wp).enumerate() {
                    // Input row 2·ty - 1 + k.
                    let r = 2 * ty + k;
                    if r >= 1 && r - 1 < h {
                        row[0] = 0.0;
                        row[1..1 + w].copy_from_slice(&plane[(r - 1) * w..][..w]);
                        row[1 + w..].fill(0.0);
                    } else {
                        row.fill(0.0);
                    }
                }
                // Bᵀ d along the rows: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3.
                {
                    let (d0, rest) = rows.split_at(wp);
                    let (d1, rest) = rest.split_at(wp);
                    let (d2, d3) = rest.split_at(wp);
                    let (t0, rest) = t.split_at_mut(wp);
                    let (t1, rest) = rest.split_at_mut(wp);
                    let (t2, t3) = rest.split_at_mut(wp);
                    for q in 0..wp {
                        t0[q] = d0[q] - d2[q];
                        t1[q] = d1[q] + d2[q];
                        t2[q] = d2[q] - d1[q];
                        t3[q] = d1[q] - d3[q];
                    }
                }
                let p0 = j * t_img + ty * tw;
                for (i, ti) in t.chunks_exact(wp).enumerate() {
                    // Tile tx reads padded columns 2tx..2tx+3 = e[tx], o[tx], e[tx+1], o[tx+1].
                    for k in 0..=tw {
                        e[k] = ti[2 * k];
                        o[k] = ti[2 * k + 1];
                    }
                    let at = |b: usize| ((i * 4 + b) * ci + c) * p + p0;
                    for (tx, out) in v[at(0)..][..tw].iter_mut().enumerate() {
                        *out = e[tx] - e[tx + 1];
                    }
                    for (tx, out) in v[at(1)..][..tw].iter_mut().enumerate() {
                        *out = o[tx] + e[tx + 1];
                    }
                    for (tx, out) in v[at(2)..][..tw].iter_mut().enumerate() {
                        *out = e[tx + 1] - o[tx];
                    }
                    for (tx, out) in v[at(3)..][..tw].iter_mut().enumerate() {
                        *out = o[tx] - o[tx + 1];
                    }
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` per tile (`Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`) from `m[16 × co × p]` into the group matrix
/// `dst[co × (g·h·w)]`, plus the bias; the half-used last tile row and column at odd sizes are cut.
fn transform_output(m: &[f32], co: usize, grp: Group, bias: Option<&[f32]>, dst: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let (hw, t_img) = (h * w, th * tw);
    let cn = g * hw;
    let mut tmp = vec![0f32; 8 * tw];
    let mut y = vec![0f32; 4 * tw];
    for o in 0..co {
        let bv = bias.map_or(0.0, |b| b[o]);
        for j in 0..g {
            for ty in 0..th {
                let p0 = j * t_img + ty * tw;
                let mrow = |xi: usize| &m[(xi * co + o) * p + p0..][..tw];
                // Aᵀ M down the columns: tmp0_b = m0b + m1b + m2b, tmp1_b = m1b - m2b - m3b.
                for b in 0..4 {
                    let (m0, m1, m2, m3) = (mrow(b), mrow(4 + b), mrow(8 + b), mrow(12 + b));
                    let (lo, hi) = tmp.split_at_mut(4 * tw);
                    let (r0, r1) = (&mut lo[b * tw..][..tw], &mut hi[b * tw..][..tw]);
                    for tx in 0..tw {
                        r0[tx] = m0[tx] + m1[tx] + m2[tx];
                        r1[tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                }
                // (·) A along the rows: y_a0 = t_a0 + t_a1 + t_a2, y_a1 = t_a1 - t_a2 - t_a3.
                for a in 0..2 {
                    let ta = &tmp[a * 4 * tw..][..4 * tw];
                    let (c0, c1, c2, c3) = (
                        &ta[..tw],
                        &ta[tw..2 * tw],
                        &ta[2 * tw..3 * tw],
                        &ta[3 * tw..],
                    );
                    let (ya0, ya1) = y[a * 2 * tw..][..2 * tw].split_at_mut(tw);
                    for tx in 0..tw {
                        ya0[tx] = c0[tx] + c1[tx] + c2[tx] + bv;
                        ya1[tx] = c1[tx] - c2[tx] - c3[tx] + bv;
                    }
                }
                for a in 0..2 {
                    let r = 2 * ty + a;
                    if r >= h {
                        break;
                    }
                    let row = &mut dst[o * cn + j * hw + r * w..][..w];
                    let (ya0, ya1) = y[a * 2 * tw..][..2 * tw].split_at(tw);
                    for (k, out) in row.iter_mut().enumerate() {
                        *out = if k % 2 == 0 { ya0[k / 2] } else { ya1[k / 2] };
                    }
                }
            }
        }
    }
}

/// The transforms on AVX-512 for images at most 15 wide: one padded row (input column `q - 1` in lane `q`) per
/// vector, the even/odd column split by permutes, the outputs interleaved back by a permute.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Group, Images, tiles};
    use std::arch::x86_64::*;

    /// Lane indices and zero mask of a permute that gathers padded columns `first + 2·tx` of two tile rows:
    /// tile row A (`tx < tw`, lanes `0..tw`) from the first source and tile row B (lanes `tw..2·tw`) from the
    /// second; columns past the vector (`q >= 16`, the padding right of a 15-wide row) come out zero.
    ///
    /// # Safety
    ///
    /// Uses AVX-512F intrinsics: call it only on a CPU with AVX-512F (from the transforms, which run only there).
    #[inline(always)]
    unsafe fn picks(first: usize, tw: usize) -> (__m512i, __mmask16) {
        let mut idx = [0i32; 16];
        let mut keep: u32 = 0;
        for (lane, v) in idx.iter_mut().enumerate().take(2 * tw) {
            let (src, tx) = if lane < tw {
                (0, lane)
            } else {
                (16, lane - tw)
            };
            let q = first + 2 * tx;
            if q < 16 {
                *v = (src + q) as i32;
                keep |= 1 << lane;
            }
        }
        // SAFETY: 16 i32 from a local array.
        (
            unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) },
            keep as __mmask16,
        )
    }

    /// As `super::transform_input`, two tile rows at a time: each padded row (input column `q - 1` in lane `q`)
    /// is one vector, the rows' `Bᵀ d` sums are vector adds, and one permute per `(i, b)` picks the even/odd
    /// columns of both tile rows into lanes `0..2·tw`.
    ///
    /// # Safety
    /// AVX-512F present; `w <= 15`; `x` holds `g` images of `ci` planes of `h·w`; `v` holds `16·ci·p` floats with
    /// `p >= g·⌈h/2⌉·⌈w/2⌉`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_input(x: Images<'_>, ci: usize, grp: Group, v: &mut [f32]) {
        let Group { g, h, w, p } = grp;
        let (th, tw) = tiles(h, w);
        let t_img = th * tw;
        assert!(w <= 15 && v.len() >= 16 * ci * p && p >= g * t_img);
        // SAFETY (whole body): loads read inside the asserted planes (masked to w columns), stores write at most
        // 2·tw lanes of tile rows inside the image's p range, below 16·ci·p.
        unsafe {
            // Column picks for b = 0..3: e[tx], o[tx], e[tx+1], o[tx+1] = padded columns 2tx, 2tx+1, 2tx+2, 2tx+3.
            let pk = [picks(0, tw), picks(1, tw), picks(2, tw), picks(3, tw)];
            let zero = _mm512_setzero_ps();
            // Lanes 1..=w take a row's w values.
            let row_mask: __mmask16 = (((1u32 << w) - 1) << 1) as __mmask16;
            let vp = v.as_mut_ptr();
            for j in 0..g {
                for c in 0..ci {
                    let plane = x.data[j * x.img_stride + c * x.plane_stride..][..h * w].as_ptr();
                    let row = |r: usize| -> __m512 {
                        // Padded row r = input row r - 1.
                        if r >= 1 && r - 1 < h {
                            _mm512_maskz_expandloadu_ps(row_mask, plane.add((r - 1) * w))
                        } else {
                            zero
                        }
                    };
                    // Bᵀ d down the rows of tile row ty: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3.
                    let vertical = |ty: usize| -> [__m512; 4] {
                        let (d0, d1, d2, d3) = (
                            row(2 * ty),
                            row(2 * ty + 1),
                            row(2 * ty + 2),
                            row(2 * ty + 3),
                        );
                        [
                            _mm512_sub_ps(d0, d2),
                            _mm512_add_ps(d1, d2),
                            _mm512_sub_ps(d2, d1),
                            _mm512_sub_ps(d1, d3),
                        ]
                    };
                    let mut ty = 0;
                    while ty < th {
                        let pair = ty + 1 < th;
                        let ta = vertical(ty);
                        let tb = if pair { vertical(ty + 1) } else { [zero; 4] };
                        let lanes = if pair { 2 * tw } else { tw };
                        let store: __mmask16 = ((1u32 << lanes) - 1) as __mmask16;
                        let p0 = j * t_img + ty * tw;
                        for i in 0..4 {
                            let col = |b: usize| {
                                let (idx, keep) = pk[b];
                                _mm512_maskz_permutex2var_ps(keep, ta[i], idx, tb[i])
                            };
                            let (e0, o0, e1, o1) = (col(0), col(1), col(2), col(3));
                            let at = |b: usize| vp.add(((i * 4 + b) * ci + c) * p + p0);
                            _mm512_mask_storeu_ps(at(0), store, _mm512_sub_ps(e0, e1));
                            _mm512_mask_storeu_ps(at(1), store, _mm512_add_ps(o0, e1));
                            _mm512_mask_storeu_ps(at(2), store, _mm512_sub_ps(e1, o0));
                            _mm512_mask_storeu_ps(at(3), store, _mm512_sub_ps(o0, o1));
                        }
                        ty += 2;
                    }
                }
            }
        }
    }

    /// As `super::transform_output`: `16 / tw` tile rows per vector (the whole of a 7x7 image's four, two of a
    /// 15x15 image's eight), each output row interleaved out of them by one permute.
    ///
    /// # Safety
    /// AVX-512F present; `w <= 15`; `m` holds `16·co·p` floats; `dst` holds `co·g·h·w`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_output(
        m: &[f32],
        co: usize,
        grp: Group,
        bias: Option<&[f32]>,
        dst: &mut [f32],
    ) {
        let Group { g, h, w, p } = grp;
        let (th, tw) = tiles(h, w);
        let (hw, t_img) = (h * w, th * tw);
        let cn = g * hw;
        assert!(w <= 15 && m.len() >= 16 * co * p && p >= g * t_img && dst.len() >= co * cn);
        assert!(bias.is_none_or(|b| b.len() >= co));
        // Tile rows per vector.
        let rows_per = (16 / tw).min(th);
        // SAFETY (whole body): loads read lanes of tile rows inside the image's p range; stores write w lanes of
        // output rows inside dst.
        unsafe {
            let out_mask: __mmask16 = ((1u32 << w) - 1) as __mmask16;
            // Output row `a` of the tile row in lanes `l·tw..`: lane k from y0 (even k) or y1 (odd k).
            let inter: Vec<__m512i> = (0..rows_per)
                .map(|l| {
                    let mut idx = [0i32; 16];
                    for (k, v) in idx.iter_mut().enumerate() {
                        let src = (l * tw + k / 2).min(15) as i32;
                        *v = src + if k % 2 == 1 { 16 } else { 0 };
                    }
                    _mm512_loadu_si512(idx.as_ptr() as *const _)
                })
                .collect();
            let (mp, dp) = (m.as_ptr(), dst.as_mut_ptr());
            for o in 0..co {
                let bv = _mm512_set1_ps(bias.map_or(0.0, |b| b[o]));
                for j in 0..g {
                    let mut ty0 = 0;
                    while ty0 < th {
                        let rows = rows_per.min(th - ty0);
                        let lanes: __mmask16 = ((1u32 << (rows * tw)) - 1) as __mmask16;
                        let p0 = j * t_img + ty0 * tw;
                        let ld = |xi: usize| {
                            _mm512_maskz_loadu_ps(lanes, mp.add((xi * co + o) * p + p0))
                        };
                        let mut r0 = [_mm512_setzero_ps(); 4];
                        let mut r1 = [_mm512_setzero_ps(); 4];
                        for b in 0..4 {
                            let (m0, m1, m2, m3) = (ld(b), ld(4 + b), ld(8 + b), ld(12 + b));
                            r0[b] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                            r1[b] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                        }
                        for (a, r) in [r0, r1].iter().enumerate() {
                            let y0 =
                                _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]), bv);
                            let y1 =
                                _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]), bv);
                            for (l, idx) in inter.iter().enumerate().take(rows) {
                                let row = 2 * (ty0 + l) + a;
                                if row >= h {
                                    continue;
                                }
                                let out = _mm512_permutex2var_ps(y0, *idx, y1);
                                _mm512_mask_storeu_ps(
                                    dp.add(o * cn + j * hw + row * w),
                                    out_mask,
                                    out,
                                );
                            }
                        }
                        ty0 += rows;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::conv_group as direct_group;
    use crate::util::xorshift;

    fn randv(state: &mut u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| (xorshift(state) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Winograd against the direct im2col GEMM (f32), group matrices compared, at even, odd, square and
    /// rectangular sizes, with and without bias, one and several images per group.
    #[test]
    fn matches_the_direct_convolution() {
        let mut s = 5u64;
        for &(g, ci, co, h, w) in &[
            (1, 3, 2, 4, 4),
            (2, 5, 7, 7, 7),
            (3, 4, 3, 15, 15),
            (1, 6, 5, 5, 8),
            (2, 2, 3, 6, 9),
            (1, 1, 1, 1, 1),
            (2, 3, 4, 2, 3),
            (2, 3, 2, 16, 16),
            (1, 2, 2, 17, 3),
        ] {
            let d = ConvDims { n: g, ci, co, h, w };
            let x = randv(&mut s, g * ci * h * w);
            let wt = randv(&mut s, co * ci * 9);
            let b = randv(&mut s, co);
            for (bias, scalar) in [
                (None, false),
                (Some(b.as_slice()), false),
                (Some(b.as_slice()), true),
            ] {
                let xs = Images::nchw(&x, ci, h * w);
                let mut want = vec![0f32; co * g * h * w];
                direct_group(
                    &d,
                    xs,
                    g,
                    &ConvLhs::new(&wt, co, ci * 9, crate::Precision::F32),
                    bias,
                    &mut want,
                );
                let mut got = vec![f32::NAN; co * g * h * w];
                let wts = Weights::new(&wt, co, ci, crate::Precision::F32);
                conv_group_with(&d, xs, g, &wts, bias, &mut got, simd_fits(w) && !scalar);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()) * (ci as f32).sqrt(),
                        "g {g} ci {ci} co {co} {h}x{w} scalar {scalar}: [{i}] {a} vs {b}"
                    );
                }
            }
        }
    }
}
