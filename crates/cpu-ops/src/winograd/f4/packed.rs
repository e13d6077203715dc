//! The F(4x4, 3x3) input transform for the bf16 GEMMs, writing the kernel's packed pairs directly.
//!
//! With bf16 GEMMs the transformed inputs `V_ξ [ci × P]` were written as f32 by [`super::avx2::transform_input`],
//! then read back by the GEMM's packing, rounded to bf16 and interleaved into pair words (channels `2q` and
//! `2q + 1` of one tile in one 32-bit word): 5.7% of a bf16 Muon training step for the packing alone on a Zen 4
//! (docs/performance.md), plus the f32 matrices' round trip through the caches (2.4 MB per group at 256
//! channels). Here two channels are transformed together and each result is rounded (`VCVTNEPS2BF16`, round to
//! nearest even as the packing's `VCVTNE2PS2BF16`) and interleaved in registers, stored where the kernel reads it
//! ([`crate::bf16_gemm::packed_b_offset`]): the same words as the packing makes, half the bytes written, no
//! second pass.

use super::avx2::{bt, copy_planes, input_planes, input_row};
use super::{A, XI, tiles};
use crate::bf16_gemm::{packed_b_len, packed_b_offset};
use crate::winograd::{Group, Planes, XI_PAD};
use std::arch::x86_64::*;

/// The even channel's 36 transformed vectors of one block of 8 tiles, 32-byte aligned for whole-vector moves.
#[repr(align(32))]
struct Aligned([[f32; 8]; XI]);

/// The distance in words from one ξ's packed matrix of `rows` depth rows (channels) to the next, for `p` tiles.
pub(in crate::winograd) fn xi_stride(rows: usize, p: usize) -> usize {
    packed_b_len(rows, p) + XI_PAD
}

/// `V_ξ[c][tile] = (Bᵀ d B)_ξ` for every channel and tile of `g` images, rounded to bf16 and packed as the bf16
/// kernel's right operands into `v` (36 of them, [`xi_stride`] apart; see [`crate::bf16_gemm::packed_b_len`]). An
/// odd last channel is paired with zeros.
///
/// # Safety
/// AVX2, FMA, AVX-512F/VL/BW and AVX512-BF16 present; `x` holds `g` images of `ci` planes of `h·w`; `v` holds
/// `36·xi_stride(ci, p)` words with `p == g·t_img`.
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512bw,avx512bf16")]
pub(in crate::winograd) unsafe fn transform_input(
    x: Planes<'_>,
    ci: usize,
    grp: Group,
    v: &mut [u32],
) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    let xs = xi_stride(ci, p);
    assert!(p == g * t_img && p > 0 && ci > 0 && v.len() >= XI * xs);
    // Two channels' zero-padded planes, each as the f32 transform's one (8 floats of slack at its end).
    let (plane, wp, origin) = input_planes(grp);
    let span = g * plane + 8;
    let mut pad = vec![0f32; 2 * span];
    // SAFETY (whole body): loads as the f32 transform's, inside each channel's padded planes; stores write 8
    // words at packed_b_offset(ci, p, pair, p0) with p0 a multiple of 8 below p: 8 columns of one panel of
    // NR = 32 (p0 % 32 <= 24), inside the ξ's packed_b_len(ci, p) words, inside v.
    unsafe {
        let vp = v.as_mut_ptr();
        let mut even = Aligned([[0f32; 8]; XI]);
        for pair in 0..ci.div_ceil(2) {
            let (lo, hi) = pad.split_at_mut(span);
            copy_planes(x, 2 * pair, grp, lo, (plane, wp), 1);
            if 2 * pair + 1 < ci {
                copy_planes(x, 2 * pair + 1, grp, hi, (plane, wp), 1);
            } else {
                hi.fill(0.0);
            }
            let (pl, ph) = (lo.as_ptr(), hi.as_ptr());
            for (blk, o) in origin.iter().enumerate() {
                let p0 = blk * 8;
                let at = packed_b_offset(ci, p, pair, p0);
                // The even channel as the f32 transform (rows along the row, then down the columns), kept in
                // `even` (the row arrays spelled out: built by `map` they compiled to `memcpy` calls, 6.6% of a step);
                // then the odd one, each of its 36 vectors rounded and interleaved with the even one's.
                let row = |i: usize| input_row(pl, o, i * wp);
                let u = [row(0), row(1), row(2), row(3), row(4), row(5)];
                for b in 0..A {
                    let col = bt(std::array::from_fn(|i| u[i][b]));
                    for (a, val) in col.into_iter().enumerate() {
                        _mm256_store_ps(even.0[a * A + b].as_mut_ptr(), val);
                    }
                }
                let row = |i: usize| input_row(ph, o, i * wp);
                let u = [row(0), row(1), row(2), row(3), row(4), row(5)];
                for b in 0..A {
                    let col = bt(std::array::from_fn(|i| u[i][b]));
                    for (a, val) in col.into_iter().enumerate() {
                        let e = _mm256_load_ps(even.0[a * A + b].as_ptr());
                        // 8 bf16 of the even channel and 8 of the odd one, interleaved into 8 pair words.
                        let l: __m128i = std::mem::transmute(_mm256_cvtneps_pbh(e));
                        let h: __m128i = std::mem::transmute(_mm256_cvtneps_pbh(val));
                        let dst = vp.add((a * A + b) * xs + at);
                        _mm_storeu_si128(dst.cast(), _mm_unpacklo_epi16(l, h));
                        _mm_storeu_si128(dst.add(4).cast(), _mm_unpackhi_epi16(l, h));
                    }
                }
            }
        }
    }
}
