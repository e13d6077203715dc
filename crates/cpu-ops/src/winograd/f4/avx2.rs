//! The AVX2 transforms of F(4x4, 3x3), 8 tiles per vector.

use super::{A, M, XI, ld, tiles, xi_stride};
use crate::winograd::{Group, Planes};
use std::arch::x86_64::*;

/// `Bᵀ d` of one column `d0..d5` (or `d Bᵀ`'s of a row): 12 adds and multiply-adds.
///
/// # Safety
/// AVX2 and FMA present (from the transforms below).
#[inline(always)]
pub(super) unsafe fn bt(d: [__m256; 6]) -> [__m256; 6] {
    // SAFETY: register-only intrinsics, AVX2 and FMA present (the callers' contract).
    unsafe {
        let (four, five, two) = (
            _mm256_set1_ps(4.0),
            _mm256_set1_ps(5.0),
            _mm256_set1_ps(2.0),
        );
        let a = _mm256_fnmadd_ps(four, d[2], d[4]); // d4 - 4 d2
        let b = _mm256_fnmadd_ps(four, d[1], d[3]); // d3 - 4 d1
        let c = _mm256_sub_ps(d[4], d[2]);
        let e = _mm256_sub_ps(d[3], d[1]);
        [
            _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4])),
            _mm256_add_ps(a, b),
            _mm256_sub_ps(a, b),
            _mm256_fmadd_ps(two, e, c),
            _mm256_fnmadd_ps(two, e, c),
            _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5])),
        ]
    }
}

/// `Aᵀ m` of one column `m0..m5`.
///
/// # Safety
/// AVX2 and FMA present (from the transforms below).
#[inline(always)]
unsafe fn at(m: [__m256; 6]) -> [__m256; 4] {
    // SAFETY: as `bt`.
    unsafe {
        let a = _mm256_add_ps(m[1], m[2]);
        let b = _mm256_sub_ps(m[1], m[2]);
        let c = _mm256_add_ps(m[3], m[4]);
        let e = _mm256_sub_ps(m[3], m[4]);
        [
            _mm256_add_ps(_mm256_add_ps(m[0], a), c),
            _mm256_fmadd_ps(_mm256_set1_ps(2.0), e, b),
            _mm256_fmadd_ps(_mm256_set1_ps(4.0), c, a),
            _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0), e, b), m[5]),
        ]
    }
}

/// Where the 8 tiles of the vector starting at GEMM column `p0` begin in the group's padded planes (tiles
/// past the group's repeat its last one; their columns of `V` are never read).
pub(super) fn origins(
    p0: usize,
    p: usize,
    t_img: usize,
    tw: usize,
    plane: usize,
    wp: usize,
) -> [usize; 8] {
    std::array::from_fn(|l| {
        let col = (p0 + l).min(p - 1);
        let (j, t) = (col / t_img, col % t_img);
        j * plane + M * (t / tw) * wp + M * (t % tw)
    })
}

/// Writes channel `c` of the group's `g` images into `pad` (image `j` at `j·plane`, rows of `wp` floats), input
/// row `r` and column `q` at padded row `r + off`, column `q + off`; the rest of `pad` keeps what it holds
/// (zeros: each channel overwrites the same floats).
pub(super) fn copy_planes(
    x: Planes<'_>,
    c: usize,
    grp: Group,
    pad: &mut [f32],
    (plane, wp): (usize, usize),
    off: usize,
) {
    let Group { g, h, w, .. } = grp;
    for j in 0..g {
        x.write_plane(j, c, (h, w), &mut pad[j * plane + off * wp + off..], wp);
    }
}

/// `d Bᵀ` of row `off / wp` of the 8 input tiles starting at `o[l]` in the padded planes at `pp`: the tiles'
/// rows loaded as 128-bit halves (lanes 0-3 from tiles 0-3, lanes 4-7 from tiles 4-7), transposed so vector `b`
/// holds column `b` of every tile, then transformed along the row.
///
/// # Safety
/// AVX2 and FMA present (from the transforms below); 8 floats readable at `pp + o[l] + off` for every `l`.
#[inline(always)]
pub(super) unsafe fn input_row(pp: *const f32, o: &[usize; 8], off: usize) -> [__m256; A] {
    // SAFETY: the caller's contract.
    unsafe {
        let ld2 = |l: usize, at: usize| {
            _mm256_loadu2_m128(pp.add(o[l + 4] + off + at), pp.add(o[l] + off + at))
        };
        let (r0, r1, r2, r3) = (ld2(0, 0), ld2(1, 0), ld2(2, 0), ld2(3, 0));
        let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
        let (q0, q1) = (ld2(0, 4), ld2(1, 4));
        let (q2, q3) = (ld2(2, 4), ld2(3, 4));
        let (s0, s2) = (_mm256_unpacklo_ps(q0, q1), _mm256_unpacklo_ps(q2, q3));
        bt([
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
            _mm256_shuffle_ps::<0x44>(s0, s2),
            _mm256_shuffle_ps::<0xEE>(s0, s2),
        ])
    }
}

/// How the input transforms lay out a group's zero-padded planes of one channel: `(plane, wp, origin)`, image `j`'s
/// plane at `j·plane` in rows of `wp` floats (row r, column q is input (r - 1, q - 1); tile (ty, tx) reads rows
/// 4ty..4ty+6, columns 4tx..4tx+6, as 8-float loads, so the buffer needs 8 floats of slack at its end), and each
/// 8-tile vector's tile origins (see [`origins`]).
pub(super) fn input_planes(grp: Group) -> (usize, usize, Vec<[usize; 8]>) {
    let (th, tw) = tiles(grp.h, grp.w);
    let (hp, wp) = (M * th + 2, M * tw + 2);
    let plane = hp * wp;
    let origin = (0..grp.p)
        .step_by(8)
        .map(|p0| origins(p0, grp.p, th * tw, tw, plane, wp))
        .collect();
    (plane, wp, origin)
}

/// `V_ξ[c][tile] = (Bᵀ d B)_ξ` for every channel and tile of `g` images, into `v` (36 matrices of `ci × ld(p)`,
/// [`xi_stride`] apart).
///
/// # Safety
/// AVX2 and FMA present; `x` holds `g` images of `ci` planes of `h·w`; `v` holds `36·xi_stride(ci, p)` floats with
/// `p == g·t_img`.
#[target_feature(enable = "avx2,fma")]
pub(in crate::winograd) unsafe fn transform_input(
    x: Planes<'_>,
    ci: usize,
    grp: Group,
    v: &mut [f32],
) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    let (ldv, xs) = (ld(p), xi_stride(ci, p));
    assert!(p == g * t_img && p > 0 && v.len() >= XI * xs);
    let (plane, wp, origin) = input_planes(grp);
    let mut pad = vec![0f32; g * plane + 8];
    // SAFETY (whole body): loads read 8 floats from a tile origin + i·wp (i < 6) of a padded plane: at most
    // column 4tx + 7 <= wp + 1 of row 4ty + 5 < hp, inside pad (8 floats of slack); stores write whole
    // 8-float vectors at column p0 < p of a (ξ, c) row of ld(p) floats, inside v.
    unsafe {
        let vp = v.as_mut_ptr();
        for c in 0..ci {
            copy_planes(x, c, grp, &mut pad, (plane, wp), 1);
            let pp = pad.as_ptr();
            for (blk, o) in origin.iter().enumerate() {
                let p0 = blk * 8;
                // u[i][b] = (d Bᵀ)[i][b]: tile row i of the 8 tiles, transposed, transformed along the row.
                // (Spelled out: a zero-initialised array of 36 vectors filled in a loop compiled to a call to
                // memset per block, 7% of an AVX2 training step; a from_fn closure to 6 calls.)
                let row = |i: usize| input_row(pp, o, i * wp);
                let u = [row(0), row(1), row(2), row(3), row(4), row(5)];
                // Down the columns: V[a][b] = (Bᵀ u)[a][b].
                for b in 0..A {
                    let col = bt(std::array::from_fn(|i| u[i][b]));
                    for (a, val) in col.into_iter().enumerate() {
                        _mm256_storeu_ps(vp.add((a * A + b) * xs + c * ldv + p0), val);
                    }
                }
            }
        }
    }
}

/// `A g` of one column `g0..g3` of an output-gradient tile (`A = (Aᵀ)ᵀ`, 6x4).
///
/// # Safety
/// AVX2 and FMA present (from the transforms below).
#[inline(always)]
unsafe fn a(g: [__m256; 4]) -> [__m256; 6] {
    // SAFETY: as `bt`.
    unsafe {
        let e = _mm256_add_ps(g[0], g[2]);
        let o = _mm256_add_ps(g[1], g[3]);
        let e4 = _mm256_fmadd_ps(_mm256_set1_ps(4.0), g[2], g[0]);
        let o4 = _mm256_fmadd_ps(_mm256_set1_ps(8.0), g[3], _mm256_add_ps(g[1], g[1]));
        [
            g[0],
            _mm256_add_ps(e, o),
            _mm256_sub_ps(e, o),
            _mm256_add_ps(e4, o4),
            _mm256_sub_ps(e4, o4),
            g[3],
        ]
    }
}

/// `g Aᵀ` of row `off / wq` of the 8 output-gradient tiles starting at `o[l]` in the planes at `pp` (loaded and
/// transposed as in [`input_row`], 4 columns).
///
/// # Safety
/// AVX2 and FMA present (from the transforms below); 4 floats readable at `pp + o[l] + off` for every `l`.
#[inline(always)]
unsafe fn grad_row(pp: *const f32, o: &[usize; 8], off: usize) -> [__m256; A] {
    // SAFETY: the caller's contract.
    unsafe {
        let ld2 = |l: usize| _mm256_loadu2_m128(pp.add(o[l + 4] + off), pp.add(o[l] + off));
        let (r0, r1, r2, r3) = (ld2(0), ld2(1), ld2(2), ld2(3));
        let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
        a([
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
        ])
    }
}

/// `dM_ξ[o][tile] = (A gy Aᵀ)_ξ` for every output channel and tile of `g` images' output gradients `gy`
/// (`co` planes of `h·w` each), into `dm` (36 matrices of `co × ld(p)`, [`xi_stride`] apart): the gradient of the
/// products `M` that the forward's `Y = Aᵀ M A` turned into these outputs (outputs past the image get none).
///
/// # Safety
/// AVX2 and FMA present; `gy` holds `g` images of `co` planes of `h·w`; `dm` holds `36·xi_stride(co, p)` floats
/// with `p == g·t_img`.
#[target_feature(enable = "avx2,fma")]
pub(in crate::winograd) unsafe fn transform_grad(
    gy: Planes<'_>,
    co: usize,
    grp: Group,
    dm: &mut [f32],
) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    let (ldm, xs) = (ld(p), xi_stride(co, p));
    assert!(p == g * t_img && p > 0 && dm.len() >= XI * xs);
    // The g images' planes of one channel, zero past the image: tile (ty, tx) reads rows 4ty..4ty+4, columns
    // 4tx..4tx+4.
    let (hq, wq) = (M * th, M * tw);
    let plane = hq * wq;
    let mut pad = vec![0f32; g * plane];
    let origin: Vec<[usize; 8]> = (0..p)
        .step_by(8)
        .map(|p0| origins(p0, p, t_img, tw, plane, wq))
        .collect();
    // SAFETY (whole body): loads read 4 floats from a tile origin + i·wq (i < 4) of a plane: columns
    // 4tx..4tx+4 <= wq of row 4ty + 3 < hq, inside pad; stores write whole 8-float vectors at column p0 < p
    // of a (ξ, o) row of ld(p) floats, inside dm.
    unsafe {
        let dp = dm.as_mut_ptr();
        for o in 0..co {
            copy_planes(gy, o, grp, &mut pad, (plane, wq), 0);
            let pp = pad.as_ptr();
            for (blk, org) in origin.iter().enumerate() {
                let p0 = blk * 8;
                // u[i][b] = (gy Aᵀ)[i][b]: tile row i of the 8 tiles, transposed, transformed along the row.
                let row = |i: usize| grad_row(pp, org, i * wq);
                let u = [row(0), row(1), row(2), row(3)];
                // Down the columns: dM[a][b] = (A u)[a][b].
                for b in 0..A {
                    let col = a([u[0][b], u[1][b], u[2][b], u[3][b]]);
                    for (ai, val) in col.into_iter().enumerate() {
                        _mm256_storeu_ps(dp.add((ai * A + b) * xs + o * ldm + p0), val);
                    }
                }
            }
        }
    }
}

/// Where one tile's outputs go in the group matrix: its first output's offset within a channel's `g·h·w`
/// floats, and how many of its rows and columns lie inside the image.
#[derive(Clone, Copy)]
struct TileOut {
    at: usize,
    rows: usize,
    cols: usize,
}

/// `Y = Aᵀ M A` per tile from `m` (36 matrices of `co × ld(p)`, [`xi_stride`] apart) into the group matrix `dst[co
/// × (g·h·w)]`, plus the bias; the rows and columns of the last tiles past the image are cut.
///
/// # Safety
/// AVX2 and FMA present; `m` holds `36·xi_stride(co, p)` floats with `p == g·t_img`; `dst` holds `co·g·h·w`.
#[target_feature(enable = "avx2,fma")]
pub(in crate::winograd) unsafe fn transform_output(
    m: &[f32],
    co: usize,
    grp: Group,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    let (ldm, xs, hw) = (ld(p), xi_stride(co, p), h * w);
    let cn = g * hw;
    assert!(p == g * t_img && m.len() >= XI * xs && dst.len() >= co * cn);
    assert!(bias.is_none_or(|b| b.len() >= co));
    let outs: Vec<Option<TileOut>> = (0..ldm)
        .map(|col| {
            (col < p).then(|| {
                let (j, t) = (col / t_img, col % t_img);
                let (y0, x0) = (M * (t / tw), M * (t % tw));
                TileOut {
                    at: j * hw + y0 * w + x0,
                    rows: (h - y0).min(M),
                    cols: (w - x0).min(M),
                }
            })
        })
        .collect();
    // SAFETY (whole body): loads read whole vectors of a (ξ, o) row of ld(p) floats inside m; a tile's stores
    // write its `cols` (<= 4) outputs of each of its `rows` rows, inside channel o's cn floats of dst.
    unsafe {
        let (mp, dp) = (m.as_ptr(), dst.as_mut_ptr());
        for o in 0..co {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |b| b[o]));
            let chan = dp.add(o * cn);
            for (blk, tiles) in outs.chunks_exact(8).enumerate() {
                let p0 = blk * 8;
                let ldx = |xi: usize| _mm256_loadu_ps(mp.add(xi * xs + o * ldm + p0));
                // cols[b][i] = (Aᵀ M)[i][b], down the columns.
                let cols: [[__m256; M]; A] =
                    std::array::from_fn(|b| at(std::array::from_fn(|a| ldx(a * A + b))));
                for i in 0..M {
                    let mut y = at(std::array::from_fn(|b| cols[b][i]));
                    for v in y.iter_mut() {
                        *v = _mm256_add_ps(*v, bv);
                    }
                    // Transposed: s_l's low half is tile l's row i, its high half tile l + 4's.
                    let (t0, t1) = (
                        _mm256_unpacklo_ps(y[0], y[1]),
                        _mm256_unpackhi_ps(y[0], y[1]),
                    );
                    let (t2, t3) = (
                        _mm256_unpacklo_ps(y[2], y[3]),
                        _mm256_unpackhi_ps(y[2], y[3]),
                    );
                    let s = [
                        _mm256_shuffle_ps::<0x44>(t0, t2),
                        _mm256_shuffle_ps::<0xEE>(t0, t2),
                        _mm256_shuffle_ps::<0x44>(t1, t3),
                        _mm256_shuffle_ps::<0xEE>(t1, t3),
                    ];
                    for (l, tile) in tiles.iter().enumerate() {
                        let Some(t) = tile else { continue };
                        if i >= t.rows {
                            continue;
                        }
                        let val = if l < 4 {
                            _mm256_castps256_ps128(s[l])
                        } else {
                            _mm256_extractf128_ps::<1>(s[l - 4])
                        };
                        put4(chan.add(t.at + i * w), t.cols, val);
                    }
                }
            }
        }
    }
}

/// Stores the first `n` (1 to 4) floats of `val` at `dst`.
///
/// # Safety
/// AVX present; `dst` valid for `n` floats.
#[inline(always)]
unsafe fn put4(dst: *mut f32, n: usize, val: __m128) {
    // SAFETY: the caller's contract; each store writes at most n floats.
    unsafe {
        match n {
            4 => _mm_storeu_ps(dst, val),
            3 => {
                _mm_storel_pd(dst.cast(), _mm_castps_pd(val));
                _mm_store_ss(dst.add(2), _mm_movehl_ps(val, val));
            }
            2 => _mm_storel_pd(dst.cast(), _mm_castps_pd(val)),
            _ => _mm_store_ss(dst, val),
        }
    }
}

/// Where one tile's 2x2 max-pool windows go in the pooled planes: its first pooled output's offset within an
/// image's first channel (`j·co·phw + 2ty·wo + 2tx`), and how many of its two window rows and columns lie inside
/// the pooled plane.
#[derive(Clone, Copy)]
struct TilePool {
    at: usize,
    rows: usize,
    cols: usize,
}

/// `max_pool2x2(Y)` (of its ReLU with `relu`) of `Y = Aᵀ M A` plus the bias per tile, from `m` (as in
/// [`transform_output`]) straight into the pooled planes `out[g][co][(h/2)·(w/2)]` with each window's argmax
/// (0-3, row-major in the window) in `idx`, laid out as `out`: the same bits as [`transform_output`]'s planes
/// pooled by `pool::pool_plane_kernel` (the same `Y`, the same tournament: ties keep the earlier value, a NaN
/// never wins), without writing the full-resolution planes. A tile's 4x4 outputs hold whole windows (tiles start at
/// multiples of 4); windows past the pooled plane (an odd last row or column, the last tiles' overhang) are
/// skipped.
///
/// # Safety
/// AVX2 and FMA present; `m` holds `36·xi_stride(co, p)` floats with `p == g·t_img`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(in crate::winograd) unsafe fn transform_output_pool(
    m: &[f32],
    co: usize,
    grp: Group,
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    idx: &mut [u8],
) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    let (ldm, xs) = (ld(p), xi_stride(co, p));
    let (ho, wo) = (h / 2, w / 2);
    let phw = ho * wo;
    assert!(p == g * t_img && m.len() >= XI * xs);
    assert!(out.len() >= g * co * phw && idx.len() >= g * co * phw);
    assert!(bias.is_none_or(|b| b.len() >= co));
    let pools: Vec<Option<TilePool>> = (0..ldm)
        .map(|col| {
            let (j, t) = (col / t_img, col % t_img);
            let (r0, c0) = (2 * (t / tw), 2 * (t % tw));
            let (rows, cols) = (ho.saturating_sub(r0).min(2), wo.saturating_sub(c0).min(2));
            (col < p && rows > 0 && cols > 0).then_some(TilePool {
                at: j * co * phw + r0 * wo + c0,
                rows,
                cols,
            })
        })
        .collect();
    // SAFETY (whole body): loads read whole vectors of a (ξ, o) row of ld(p) floats inside m; register and stack
    // arithmetic only otherwise (the pooled outputs are written by indexing).
    unsafe {
        let mp = m.as_ptr();
        let (one, two, zero) = (
            _mm256_set1_epi32(1),
            _mm256_set1_epi32(2),
            _mm256_setzero_ps(),
        );
        for o in 0..co {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |b| b[o]));
            for (blk, tiles) in pools.chunks_exact(8).enumerate() {
                if tiles.iter().all(Option::is_none) {
                    continue;
                }
                let p0 = blk * 8;
                let ldx = |xi: usize| _mm256_loadu_ps(mp.add(xi * xs + o * ldm + p0));
                // cols[b][i] = (Aᵀ M)[i][b], down the columns (as transform_output).
                let cols: [[__m256; M]; A] =
                    std::array::from_fn(|b| at(std::array::from_fn(|a| ldx(a * A + b))));
                // Output row i of the 8 tiles, bias added: y[j] holds column j, a tile a lane.
                let row = |i: usize| {
                    let mut y = at(std::array::from_fn(|b| cols[b][i]));
                    for v in y.iter_mut() {
                        *v = _mm256_add_ps(*v, bv);
                    }
                    y
                };
                // pooled[r][c] / arg[r][c]: window (r, c) of every tile.
                let mut pooled = [[[0f32; 8]; 2]; 2];
                let mut arg = [[[0i32; 8]; 2]; 2];
                for r in 0..2 {
                    let (top, bot) = (row(2 * r), row(2 * r + 1));
                    for c in 0..2 {
                        let (a0, a1, b0, b1) =
                            (top[2 * c], top[2 * c + 1], bot[2 * c], bot[2 * c + 1]);
                        // pool_plane's tournament: (a0, a1), (b0, b1), then the winners; the top wins ties.
                        let t = _mm256_cmp_ps::<_CMP_GT_OQ>(a1, a0);
                        let mt = _mm256_blendv_ps(a0, a1, t);
                        let u = _mm256_cmp_ps::<_CMP_GT_OQ>(b1, b0);
                        let mb = _mm256_blendv_ps(b0, b1, u);
                        let lower = _mm256_cmp_ps::<_CMP_GT_OQ>(mb, mt);
                        let mut v = _mm256_blendv_ps(mt, mb, lower);
                        if relu {
                            // max(v, 0): 0 where v is NaN, as f32::max.
                            v = _mm256_max_ps(v, zero);
                        }
                        let id_top = _mm256_and_si256(_mm256_castps_si256(t), one);
                        let id_bot =
                            _mm256_add_epi32(_mm256_and_si256(_mm256_castps_si256(u), one), two);
                        let id = _mm256_blendv_ps(
                            _mm256_castsi256_ps(id_top),
                            _mm256_castsi256_ps(id_bot),
                            lower,
                        );
                        _mm256_storeu_ps(pooled[r][c].as_mut_ptr(), v);
                        _mm256_storeu_si256(arg[r][c].as_mut_ptr().cast(), _mm256_castps_si256(id));
                    }
                }
                for (l, tile) in tiles.iter().enumerate() {
                    let Some(t) = tile else { continue };
                    for r in 0..t.rows {
                        let at = t.at + o * phw + r * wo;
                        for c in 0..t.cols {
                            out[at + c] = pooled[r][c][l];
                            idx[at + c] = arg[r][c][l] as u8;
                        }
                    }
                }
            }
        }
    }
}
