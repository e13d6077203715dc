//! Winograd F(4x4, 3x3): each 4x4 block of outputs from a 6x6 block of inputs, 36 multiplies per channel pair
//! instead of 144, so the GEMMs' multiply-adds drop 4x (3.5x at 15x15 and 3.06x at 7x7, where the last tile row
//! and column are partly used; 2.25x at 3x3, one tile per image) against 2.25x for F(2x2, 3x3). The transforms
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//!
//! ```text
//!      [4  0 -5  0  1  0]        [ 1/4     0     0]        [1  1  1  1  1  0]
//!      [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6]        [0  1 -1  2 -2  0]
//! Bᵀ = [0  4 -4 -1  1  0]    G = [-1/6   1/6  -1/6]   Aᵀ = [0  1  1  4  4  0]
//!      [0 -2 -1  2  1  0]        [1/24  1/12   1/6]        [0  1 -1  8 -8  1]
//!      [0  2 -1 -2  1  0]        [1/24 -1/12   1/6]
//!      [0  4  0 -5  0  1]        [   0     0     1]
//! ```
//!
//! Their coefficients are not powers of two, so unlike F(2x2, 3x3) the f32 result differs from the direct
//! convolution by more than the summation order: up to about 1e-5 of the outputs' scale (measured: 7e-6 in the
//! winograd unit tests (tests.rs), 1.3e-5 at 256->256 @7 in the conv module's; the tests hold it under 5e-5).
//! With bf16 GEMMs the rounding of the transformed inputs and weights meets those coefficients and the output
//! transform's cancellations: 1.0-2.4% relative error against f32 where F(2x2, 3x3) gives 0.4% (measured in
//! tests/bf16.rs), so [`crate::Winograd::Auto`] keeps F(2x2, 3x3) for bf16 and F(4x4) with bf16 runs only when
//! asked for ([`crate::Winograd::F4x4`]), for 2.25 products per output instead of F(2x2)'s 4.
//!
//! Layout: the same 36 GEMMs `M_ξ[co × P] = U_ξ[co × ci] · V_ξ[ci × P]` as F(2x2, 3x3)'s 16, over the group's tiles
//! (`P` columns, rows of `ld = P` rounded up to 8 floats so every transform reads and writes whole vectors; one
//! ξ's matrix starts [`xi_stride`] floats after the previous one, 64 bytes past its end, see [`super::XI_PAD`]). The
//! AVX2 transforms run 8 tiles per vector, whatever the image size: the input's tile rows are read as vectors and
//! transposed (8 tiles × 6 columns), the outputs transposed back into 4-float rows.
//!
//! Here: the weight transform, the forward of a group of images ([`conv_group`]), the weight gradient
//! ([`weight_grad`]) and the AVX2 transforms; `mod.rs` picks the tiles and holds F(2x2, 3x3).

use rayon::prelude::*;

use super::{Group, Planes, Weights, XI_PAD};
use crate::conv::{ConvDims, Images};
use crate::util::{Mat, with_scratch_a, with_scratch_c};

/// Output tile side.
pub(super) const M: usize = 4;
/// Input tile side (`M + 2`).
pub(super) const A: usize = 6;
/// Element positions of a transformed tile: the GEMMs per convolution.
pub(super) const XI: usize = A * A;

/// Tile rows and columns of an `h × w` image.
pub(super) fn tiles(h: usize, w: usize) -> (usize, usize) {
    (h.div_ceil(M), w.div_ceil(M))
}

/// The row stride of `V` and `M` for `p` tiles: whole 8-float vectors.
pub(super) fn ld(p: usize) -> usize {
    p.next_multiple_of(8)
}

/// The distance in floats from one ξ's matrix of `rows` rows to the next, for `p` tiles (see [`XI_PAD`]).
pub(super) fn xi_stride(rows: usize, p: usize) -> usize {
    rows * ld(p) + XI_PAD
}

/// `G` (see the module's text).
const G: [[f64; 3]; A] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `U = G g Gᵀ` of every `[co, ci, 3, 3]` kernel: 36 matrices `[co × ci]`, `ξ = 6a + b`.
pub(super) fn weights(w: &[f32], co: usize, ci: usize) -> Vec<Vec<f32>> {
    super::transform_weights(w, co, ci, &G)
}

/// The weight gradient `dW = Gᵀ dU G` of every kernel from the 36 matrices `dU_ξ [co × ci]` (`du[ξ·co·ci..]`),
/// as `[co, ci, 3, 3]`: `U_ξ` is a fixed combination of the 9 taps (see `super::transform_weights`), so each tap's
/// gradient is the same combination of the `dU_ξ`.
pub(super) fn weight_grad_untransform(du: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let n = co * ci;
    let taps: Vec<Vec<f32>> = (0..9)
        .into_par_iter()
        .map(|t| {
            let mut acc = vec![0f32; n];
            for (xi, d) in du.chunks_exact(n).take(XI).enumerate() {
                let coef = (G[xi / A][t / 3] * G[xi % A][t % 3]) as f32;
                if coef != 0.0 {
                    for (a, &v) in acc.iter_mut().zip(d) {
                        *a += coef * v;
                    }
                }
            }
            acc
        })
        .collect();
    let mut dw = vec![0f32; n * 9];
    if ci > 0 {
        dw.par_chunks_mut(9 * ci).enumerate().for_each(|(o, row)| {
            for (i, k) in row.chunks_exact_mut(9).enumerate() {
                for (t, v) in k.iter_mut().enumerate() {
                    *v = taps[t][o * ci + i];
                }
            }
        });
    }
    dw
}

/// [`super::conv_group`] by F(4x4, 3x3).
pub(crate) fn conv_group(
    d: &ConvDims,
    x: Planes<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    let packed = wts.lhs.iter().all(|l| l.packed_bf16());
    conv_group_via(d, x, g, wts, bias, Output::Planes(dst), packed)
}

/// [`super::conv_group_pool`] by F(4x4, 3x3): the output transform pools as it goes (see
/// [`avx2::transform_output_pool`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_group_pool(
    d: &ConvDims,
    x: Planes<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    idx: &mut [u8],
) {
    let packed = wts.lhs.iter().all(|l| l.packed_bf16());
    conv_group_via(
        d,
        x,
        g,
        wts,
        bias,
        Output::Pooled { relu, out, idx },
        packed,
    )
}

/// Where [`conv_group_via`]'s output transform writes.
pub(super) enum Output<'a> {
    /// The group matrix `dst[co × (g·h·w)]`.
    Planes(&'a mut [f32]),
    /// Its 2x2 max-pool (of the ReLU with `relu`), `out[g][co][(h/2)·(w/2)]`, and each window's argmax `idx`
    /// (laid out as `out`).
    Pooled {
        relu: bool,
        out: &'a mut [f32],
        idx: &'a mut [u8],
    },
}

/// [`conv_group`] or [`conv_group_pool`] (by `out`), the transformed inputs written as the bf16 GEMMs' packed
/// operands (`packed`, the weights packed for the bf16 kernel) or as f32 matrices that the GEMMs pack themselves.
pub(super) fn conv_group_via(
    d: &ConvDims,
    x: Planes<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    mut out: Output<'_>,
    packed: bool,
) {
    let (co, ci) = (wts.co, wts.ci);
    let p = g * wts.tiles_per_image(d);
    if p == 0 || co == 0 {
        return;
    }
    assert!(
        wts.tile == super::Tile::F4 && super::f4_runs_here(),
        "winograd: F(4x4) transforms with other tiles' weights or on a CPU without AVX2"
    );
    crate::isa::record(crate::KernelFamily::Winograd, crate::Isa::Avx2);
    let grp = Group {
        g,
        h: d.h,
        w: d.w,
        p,
    };
    let (ld, xm) = (ld(p), xi_stride(co, p));
    // The 36 products M_ξ = U_ξ V_ξ by `gemm(ξ, m_ξ)`, then the output transform.
    // (Mutable for the output transform's writes, which only x86-64 compiles.)
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut products = |gemm: &dyn Fn(usize, &mut [f32])| {
        with_scratch_c(XI * xm, |m| {
            for xi in 0..XI {
                gemm(xi, &mut m[xi * xm..][..co * ld]);
            }
            // Both arms: AVX2 and FMA checked (f4_runs_here, asserted above); m holds 36 ξ strides for co rows;
            // the transforms assert the outputs' sizes.
            #[cfg(target_arch = "x86_64")]
            match &mut out {
                // SAFETY: as said above the match.
                Output::Planes(dst) => unsafe { avx2::transform_output(m, co, grp, bias, dst) },
                // SAFETY: as said above the match.
                Output::Pooled { relu, out, idx } => unsafe {
                    avx2::transform_output_pool(m, co, grp, bias, *relu, out, idx)
                },
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (&mut out, bias);
        })
    };
    // bf16 GEMMs: the transform writes their packed right operands (see `packed`).
    #[cfg(not(target_arch = "x86_64"))]
    let _ = packed;
    #[cfg(target_arch = "x86_64")]
    if packed {
        assert!(
            wts.lhs.iter().all(|l| l.packed_bf16()),
            "winograd: packed bf16 inputs for weights not packed for the bf16 kernel"
        );
        let xv = packed::xi_stride(ci, p);
        with_scratch_a(XI * xv, |v| {
            let v: &mut [u32] = bytemuck::cast_slice_mut(v);
            // SAFETY: AVX2 and FMA checked (asserted above), AVX-512 and AVX512-BF16 by the weights' bf16 packing
            // (asserted: made only where they were checked); v holds 36 packed ξ strides for ci rows, x the g
            // images.
            unsafe { packed::transform_input(x, ci, grp, v) };
            let v = &*v;
            products(&|xi, m| wts.lhs[xi].gemm_packed(p, m, ld, false, &v[xi * xv..]));
        });
        return;
    }
    let xv = xi_stride(ci, p);
    with_scratch_a(XI * xv, |v| {
        // SAFETY: AVX2 and FMA checked (asserted above); v holds 36 ξ strides for ci rows, x the g images.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::transform_input(x, ci, grp, v)
        };
        let v = &*v;
        products(&|xi, m| {
            let b = Mat {
                data: &v[xi * xv..][..ci * ld],
                rs: ld,
                cs: 1,
            };
            wts.lhs[xi].gemm(p, m, ld, false, b);
        });
    });
}

/// Most tiles of one group of the F(4x4, 3x3) weight gradient: its 36 GEMMs `dU_ξ[co × ci] += dM_ξ[co × P] ·
/// V_ξ[ci × P]ᵀ` take the tiles as their depth and read and write all of `dU` (36·co·ci floats) once per group,
/// so deep groups amortise that.
const DW_COLS_F4: usize = 256;

/// The weight gradient `[co, ci, 3, 3]` of a convolution of sizes `d` (input `x`, output gradient `gy`, NCHW) by
/// F(4x4, 3x3): the forward's `Y = Aᵀ[Σ_c U_ξ V_ξ]A` per tile gives `dU_ξ = Σ_tiles dM_ξ V_ξᵀ` with
/// `dM = A gy Aᵀ` (36 GEMMs of depth `P` tiles instead of one of depth `h·w` per image: 3.5x fewer
/// multiply-adds at 15x15, 3.06x at 7x7, 2.25x at 3x3), then `dW = Gᵀ dU G`. Per-thread partial sums over groups
/// of images, as the im2col path's.
///
/// # Panics
/// Where F(4x4)'s transforms do not run (see [`super::weight_grad_applies`]).
pub(crate) fn weight_grad(prec: crate::Precision, d: &ConvDims, x: &[f32], gy: &[f32]) -> Vec<f32> {
    assert!(
        super::f4_runs_here(),
        "winograd: F(4x4) transforms on a CPU without AVX2"
    );
    crate::isa::record(crate::KernelFamily::Winograd, crate::Isa::Avx2);
    let (co, ci, hw) = (d.co, d.ci, d.hw());
    let (th, tw) = tiles(d.h, d.w);
    let t_img = th * tw;
    let (in_img, out_img) = (ci * hw, co * hw);
    let ulen = XI * co * ci;
    let per = crate::conv::images_per_group(t_img, DW_COLS_F4);
    let ranges = crate::util::split_ranges(d.n, rayon::current_num_threads());
    let partials: Vec<Vec<f32>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; ulen];
            let groups = crate::util::split_ranges(r.len(), r.len().div_ceil(per));
            for (pos, s) in groups.iter().enumerate() {
                let (first, g) = (r.start + s.start, s.len());
                let p = g * t_img;
                let (ld, xv, xm) = (ld(p), xi_stride(ci, p), xi_stride(co, p));
                let grp = Group {
                    g,
                    h: d.h,
                    w: d.w,
                    p,
                };
                with_scratch_a(XI * xv, |v| {
                    with_scratch_c(XI * xm, |dm| {
                        // SAFETY: AVX2 and FMA checked (f4_runs_here); v and dm hold 36 ξ strides for ci or co
                        // rows, x and gy the group's g images.
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            avx2::transform_input(
                                Planes::Dense(Images::nchw(&x[first * in_img..], ci, hw)),
                                ci,
                                grp,
                                v,
                            );
                            avx2::transform_grad(
                                Planes::Dense(Images::nchw(&gy[first * out_img..], co, hw)),
                                co,
                                grp,
                                dm,
                            );
                        }
                        for xi in 0..XI {
                            let a = Mat {
                                data: &dm[xi * xm..][..co * ld],
                                rs: ld,
                                cs: 1,
                            };
                            let vt = Mat {
                                data: &v[xi * xv..][..ci * ld],
                                rs: 1,
                                cs: ld,
                            };
                            let du = &mut acc[xi * co * ci..][..co * ci];
                            crate::bf16_gemm::conv_gemm(prec, co, ci, p, du, ci, pos > 0, a, vt);
                        }
                    })
                });
            }
            acc
        })
        .collect();
    weight_grad_untransform(&crate::conv::sum_partials(partials, ulen), co, ci)
}

/// The AVX2 transforms, 8 tiles per vector.
#[cfg(target_arch = "x86_64")]
// The column passes index a column `b` of row-major register arrays across their rows.
#[allow(clippy::needless_range_loop)]
pub(super) mod avx2;

/// The input transform for bf16 GEMMs, into their packed operands.
#[cfg(target_arch = "x86_64")]
// As `avx2`: the column passes index a column of row-major register arrays.
#[allow(clippy::needless_range_loop)]
mod packed;
#[cfg(all(test, target_arch = "x86_64"))]
pub(super) use packed::xi_stride as packed_xi_stride;
