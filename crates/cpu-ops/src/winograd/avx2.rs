//! The transforms on AVX2 for images at most 16 wide (one tile row, `tw <= 8` tiles, per 8-lane vector).
//!
//! Input: each row of a plane is split once into its odd and even columns, `E[k] = in[2k − 1]` and
//! `O[k] = in[2k]` (zeros outside the row), so the four padded columns `2tx..2tx+3` a tile reads are
//! `E[tx], O[tx], E[tx+1], O[tx+1]`: loads at lane offsets 0 and 1 of the split rows, with no shuffle per tile.
//! Output: `Aᵀ M A` on one tile row per vector, the two output columns of each tile interleaved back by
//! unpack + lane permutes. Images 7 or 8 wide (4 tiles a row) take two tile rows per vector both ways.

use super::{Group, Images, tiles};
use std::arch::x86_64::*;

/// Floats per split row (`E` or `O`): 9 used at most (`tw + 1`), room for the 8-lane load at offset 1.
const SPLIT: usize = 16;

/// Lanes `0..n` selected, for the masked loads and stores.
///
/// # Safety
/// AVX2 present (from the transforms below).
#[inline(always)]
unsafe fn lanes(n: usize) -> __m256i {
    // SAFETY: register-only intrinsics, AVX2 present (the caller's contract).
    unsafe {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), idx)
    }
}

/// As `super::transform_input`, one tile row per vector.
///
/// # Safety
/// AVX2 and FMA present; `w <= 16`; `x` holds `g` images of `ci` planes of `h·w`; `v` holds 16 matrices `ci × p`
/// (`Group::xi_stride(ci)` apart) with `p >= g·⌈h/2⌉·⌈w/2⌉`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transform_input(x: Images<'_>, ci: usize, grp: Group, v: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    let sv = grp.xi_stride(ci);
    assert!(w <= 16 && v.len() >= 16 * sv && p >= g * t_img);
    // Padded row r (input row r - 1) of the plane at 2·SPLIT·r: E in the first SPLIT floats, O in the next.
    // Rows 0 and h + 1.. and the lanes past the row stay zero: only lanes 1..=8 of E and 0..8 of O of rows
    // 1..=h are ever written.
    // Images 7 or 8 wide (`tw == 4`) take two tile rows per vector (`pair`): the second's split rows are 2
    // further on, zero past the plane (2 more rows for an odd last tile row).
    let pair = tw == 4;
    let mut split = vec![0f32; (2 * th + 4).max(h + 2) * 2 * SPLIT];
    // SAFETY (whole body): masked loads read w floats of a plane row; split stores stay below row (h + 1)'s
    // end; the offset-1 loads read lanes 1..=8 of a SPLIT row; v stores write a tile row's tw lanes inside its
    // (ξ, c) row of p floats (plain 8-lane ones only where they stay inside it), below 16·xi_stride(ci).
    unsafe {
        let (lo_in, hi_in) = (lanes(w), lanes(w.saturating_sub(8)));
        let out = lanes(tw);
        let deinterleave = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        let sp = split.as_mut_ptr();
        let vp = v.as_mut_ptr();
        // A plain store's lanes past a tile row's `tw` land on slots of the same `(ξ, c)` row that this loop
        // writes later (the next tile rows, the next images') or on its unused columns past `g·t_img`; only
        // where 8 lanes would cross the row's `p` columns is the store masked (masked stores are microcoded and
        // slow on AMD CPUs before Zen 3).
        let store = |dst: *mut f32, val: __m256, masked: bool| {
            if tw == 8 || !masked {
                _mm256_storeu_ps(dst, val)
            } else {
                _mm256_maskstore_ps(dst, out, val)
            }
        };
        for j in 0..g {
            for c in 0..ci {
                let plane = x.data[j * x.img_stride + c * x.plane_stride..][..h * w].as_ptr();
                for r in 0..h {
                    let src = plane.add(r * w);
                    let lo = _mm256_maskload_ps(src, lo_in);
                    let hi = if w > 8 {
                        _mm256_maskload_ps(src.add(8), hi_in)
                    } else {
                        _mm256_setzero_ps()
                    };
                    // [evens | odds] of each half, then the halves' evens together and odds together.
                    let (lp, hp) = (
                        _mm256_permutevar8x32_ps(lo, deinterleave),
                        _mm256_permutevar8x32_ps(hi, deinterleave),
                    );
                    let row = sp.add((r + 1) * 2 * SPLIT);
                    _mm256_storeu_ps(row.add(1), _mm256_permute2f128_ps(lp, hp, 0x31));
                    _mm256_storeu_ps(row.add(SPLIT), _mm256_permute2f128_ps(lp, hp, 0x20));
                }
                for ty in (0..th).step_by(if pair { 2 } else { 1 }) {
                    let base = sp.add(2 * ty * 2 * SPLIT);
                    // Split row k of the tile row (padded row 2ty + k): E or O (`odd`), at lane offset `off`;
                    // paired, the next tile row's (2 padded rows on) in the upper 4 lanes.
                    let ld = |k: usize, odd: bool, off: usize| {
                        let at = base.add(k * 2 * SPLIT + usize::from(odd) * SPLIT + off);
                        if pair {
                            _mm256_loadu2_m128(at.add(2 * 2 * SPLIT), at)
                        } else {
                            _mm256_loadu_ps(at)
                        }
                    };
                    // Bᵀ d down the rows: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3.
                    let vertical = |i: usize, odd: bool, off: usize| {
                        let (a, b) = match i {
                            0 => (0, 2),
                            1 => (1, 2),
                            2 => (2, 1),
                            _ => (1, 3),
                        };
                        if i == 1 {
                            _mm256_add_ps(ld(a, odd, off), ld(b, odd, off))
                        } else {
                            _mm256_sub_ps(ld(a, odd, off), ld(b, odd, off))
                        }
                    };
                    let p0 = j * t_img + ty * tw;
                    let last = p0 + 8 > p;
                    for i in 0..4 {
                        let (e0, e1) = (vertical(i, false, 0), vertical(i, false, 1));
                        let (o0, o1) = (vertical(i, true, 0), vertical(i, true, 1));
                        let at = |b: usize| vp.add((i * 4 + b) * sv + c * p + p0);
                        store(at(0), _mm256_sub_ps(e0, e1), last);
                        store(at(1), _mm256_add_ps(o0, e1), last);
                        store(at(2), _mm256_sub_ps(e1, o0), last);
                        store(at(3), _mm256_sub_ps(o0, o1), last);
                    }
                }
            }
        }
    }
}

/// As `super::transform_output`, one tile row per vector.
///
/// # Safety
/// AVX2 and FMA present; `w <= 16`; `m` holds 16 matrices `co × p` (`Group::xi_stride(co)` apart); `dst` holds
/// `co·g·h·w`.
#[target_feature(enable = "avx2,fma")]
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
    } = grp.output_sizes(16, m, co, bias, dst);
    let sm = grp.xi_stride(co);
    if tw == 4 {
        // SAFETY: the caller's contract; tw == 4.
        return unsafe { transform_output_pairs(m, co, grp, bias, dst) };
    }
    // SAFETY (whole body): masked loads read tw lanes of a tile row inside image j's p range; stores write an
    // output row's w floats, plain ones up to 8 - w % 8 more, never past dst's co·cn floats (checked per store).
    unsafe {
        let tiles_in = lanes(tw);
        let (lo_out, hi_out) = (lanes(w), lanes(w.saturating_sub(8)));
        let (mp, dp) = (m.as_ptr(), dst.as_mut_ptr());
        for o in 0..co {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |b| b[o]));
            for j in 0..g {
                for ty in 0..th {
                    let p0 = j * t_img + ty * tw;
                    let ld = |xi: usize| {
                        let src = mp.add(xi * sm + o * p + p0);
                        if tw == 8 {
                            _mm256_loadu_ps(src)
                        } else {
                            _mm256_maskload_ps(src, tiles_in)
                        }
                    };
                    for (a, [lo, hi]) in inverse(ld, bv).into_iter().enumerate() {
                        let row = 2 * ty + a;
                        if row >= h {
                            break;
                        }
                        let at = o * cn + j * hw + row * w;
                        put(dp, at, co * cn, lo_out, lo);
                        if w > 8 {
                            put(dp, at + 8, co * cn, hi_out, hi);
                        }
                    }
                }
            }
        }
    }
}

/// [`transform_output`] for images 7 or 8 wide (`tw == 4`): two tile rows per vector (the group's tile rows in
/// order across its images, which are consecutive GEMM columns), so no lane idles.
///
/// # Safety
/// As [`transform_output`], and `tw == 4`.
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_output_pairs(
    m: &[f32],
    co: usize,
    grp: Group,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    let Group { g, h, w, p } = grp;
    let super::OutputSizes { th, tw, hw, cn, .. } = grp.output_sizes(8, m, co, bias, dst);
    let sm = grp.xi_stride(co);
    assert_eq!(tw, 4);
    let rows = g * th;
    // SAFETY (whole body): loads read 8 columns from p0 < p, masked to those below p; stores write an output
    // row's w floats, plain ones up to 8 - w more, never past dst's co·cn floats (checked per store).
    unsafe {
        let row_out = lanes(w);
        let (mp, dp) = (m.as_ptr(), dst.as_mut_ptr());
        for o in 0..co {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |b| b[o]));
            for r in (0..rows).step_by(2) {
                let p0 = r * tw;
                let cols_in = lanes(p - p0);
                let ld = |xi: usize| {
                    let src = mp.add(xi * sm + o * p + p0);
                    if p0 + 8 <= p {
                        _mm256_loadu_ps(src)
                    } else {
                        _mm256_maskload_ps(src, cols_in)
                    }
                };
                // Output rows [tile row r: a = 0, 1; tile row r + 1: a = 0, 1], stored in that (increasing) order.
                let [[r_a0, r1_a0], [r_a1, r1_a1]] = inverse(ld, bv);
                for (k, val) in [r_a0, r_a1, r1_a0, r1_a1].into_iter().enumerate() {
                    let tr = r + k / 2;
                    let (j, ty) = (tr / th, tr % th);
                    let row = 2 * ty + k % 2;
                    if tr >= rows || row >= h {
                        continue;
                    }
                    put(dp, o * cn + j * hw + row * w, co * cn, row_out, val);
                }
            }
        }
    }
}

/// `Aᵀ M A` of one vector of tiles (`ld(ξ)` loads `M_ξ` for them), bias `bv` added: for each output row `a` of
/// the tiles, the 8 outputs of lanes 0-3's tiles and then of lanes 4-7's (two output columns per tile,
/// interleaved back by unpack + lane permutes).
///
/// # Safety
/// AVX2 present; `ld` as safe to call for `ξ < 16` as its caller makes it.
#[inline(always)]
unsafe fn inverse(ld: impl Fn(usize) -> __m256, bv: __m256) -> [[__m256; 2]; 2] {
    // SAFETY: register-only intrinsics, AVX2 present (the caller's contract).
    unsafe {
        // Aᵀ M down the columns: r0_b = m0b + m1b + m2b, r1_b = m1b - m2b - m3b.
        let mut r0 = [_mm256_setzero_ps(); 4];
        let mut r1 = [_mm256_setzero_ps(); 4];
        for b in 0..4 {
            let (m0, m1, m2, m3) = (ld(b), ld(4 + b), ld(8 + b), ld(12 + b));
            r0[b] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            r1[b] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
        }
        // (·) A along the rows: y0 = r0 + r1 + r2, y1 = r1 - r2 - r3; output column 2tx is y0[tx], 2tx + 1 is
        // y1[tx]. A loop rather than a closure, so it compiles inside its AVX2 caller.
        let mut out = [[_mm256_setzero_ps(); 2]; 2];
        for (o, r) in out.iter_mut().zip([r0, r1]) {
            let y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r[0], r[1]), r[2]), bv);
            let y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(r[1], r[2]), r[3]), bv);
            let (lo, hi) = (_mm256_unpacklo_ps(y0, y1), _mm256_unpackhi_ps(y0, y1));
            *o = [
                _mm256_permute2f128_ps(lo, hi, 0x20),
                _mm256_permute2f128_ps(lo, hi, 0x31),
            ];
        }
        out
    }
}

/// Stores 8 lanes at `dp + at`: plainly, as the output transforms write `dst` in increasing order (so lanes past
/// a row land on floats written later), unless they would cross `len` floats; then only the `mask` lanes.
///
/// # Safety
/// AVX2 present; `dp` valid for `len` floats; `mask` selects lanes below `len - at`.
#[inline(always)]
unsafe fn put(dp: *mut f32, at: usize, len: usize, mask: __m256i, val: __m256) {
    // SAFETY: the caller's contract; plain stores only where all 8 lanes are below len.
    unsafe {
        if at + 8 > len {
            _mm256_maskstore_ps(dp.add(at), mask, val)
        } else {
            _mm256_storeu_ps(dp.add(at), val)
        }
    }
}
