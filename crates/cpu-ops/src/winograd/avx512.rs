//! The transforms on AVX-512 for images at most 15 wide: one padded row (input column `q - 1` in lane `q`) per
//! vector, the even/odd column split by permutes, the outputs interleaved back by a permute.

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
/// AVX-512F present; `w <= 15`; `x` holds `g` images of `ci` planes of `h·w`; `v` holds 16 matrices `ci × p`
/// (`Group::xi_stride(ci)` apart) with `p >= g·⌈h/2⌉·⌈w/2⌉`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_input(x: Images<'_>, ci: usize, grp: Group, v: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    let sv = grp.xi_stride(ci);
    assert!(w <= 15 && v.len() >= 16 * sv && p >= g * t_img);
    // SAFETY (whole body): loads read inside the asserted planes (masked to w columns), stores write at most
    // 2·tw lanes of tile rows inside the image's p range, below 16·xi_stride(ci).
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
                        let at = |b: usize| vp.add((i * 4 + b) * sv + c * p + p0);
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
/// AVX-512F present; `w <= 15`; `m` holds 16 matrices `co × p` (`Group::xi_stride(co)` apart); `dst` holds
/// `co·g·h·w`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_output(
    m: &[f32],
    co: usize,
    grp: Group,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    let Group { g, h, w, p } = grp;
    let super::OutputSizes {
        th,
        tw,
        hw,
        t_img,
        cn,
    } = grp.output_sizes(15, m, co, bias, dst);
    let sm = grp.xi_stride(co);
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
                    let ld = |xi: usize| _mm512_maskz_loadu_ps(lanes, mp.add(xi * sm + o * p + p0));
                    let mut r0 = [_mm512_setzero_ps(); 4];
                    let mut r1 = [_mm512_setzero_ps(); 4];
                    for b in 0..4 {
                        let (m0, m1, m2, m3) = (ld(b), ld(4 + b), ld(8 + b), ld(12 + b));
                        r0[b] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                        r1[b] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                    }
                    for (a, r) in [r0, r1].iter().enumerate() {
                        let y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]), bv);
                        let y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]), bv);
                        for (l, idx) in inter.iter().enumerate().take(rows) {
                            let row = 2 * (ty0 + l) + a;
                            if row >= h {
                                continue;
                            }
                            let out = _mm512_permutex2var_ps(y0, *idx, y1);
                            _mm512_mask_storeu_ps(dp.add(o * cn + j * hw + row * w), out_mask, out);
                        }
                    }
                    ty0 += rows;
                }
            }
        }
    }
}
