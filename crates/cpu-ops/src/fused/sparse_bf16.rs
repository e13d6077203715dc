//! The weight gradient of the sparse backward in bf16 (`Precision::Bf16` on CPUs with AVX512-BF16): the same
//! visit of the conv outputs that receive a gradient as `sparse.rs`, but the padded image is a channels-last
//! **bf16** copy (half the bytes: the 64- and 256-channel layers' copies fit the L1 cache) and the products go
//! through `VDPBF16PS` two non-zeros at a time: for a pair `(g₁ at base₁, g₂ at base₂)` of one output channel, each
//! f32 lane `j` of a kernel row's sums gets `g₁·x[base₁ + j] + g₂·x[base₂ + j]` from one instruction, the two
//! image rows interleaved by one `VPERMT2W`. As for the bf16 convolutions, the inputs (`x` and the pooled
//! gradient) are rounded to bf16 and the sums are f32. The input gradient stays f32 (`sparse.rs`).

use std::arch::x86_64::*;

use super::sparse::{ImageIo, nonzeros};
use crate::bf16_gemm::to_bf16_bits;
use crate::conv::ConvDims;

/// Elements past a padded image's end that the kernel may read (the 16-wide loads of a row's last chunk): the
/// bf16 copy is allocated this much longer, and those lanes are never stored.
pub(super) const SLACK: usize = 16;

/// Columns of `dW` kept in registers at a time: 16 `zmm` sums.
const SEG: usize = 256;

/// One image `x[ci, h, w]` into `xb[(h+2), (w+2), ci]` as bf16 bits (nearest even), zero border and slack.
pub(super) fn pad_channels_last_bf16(x: &[f32], d: &ConvDims, xb: &mut [u16]) {
    let (ci, pw) = (d.ci, d.w + 2);
    xb.fill(0);
    for c in 0..ci {
        let plane = &x[c * d.hw()..(c + 1) * d.hw()];
        for (h, src) in plane.chunks_exact(d.w.max(1)).enumerate() {
            let dst = &mut xb[((h + 1) * pw + 1) * ci + c..];
            for (w, &v) in src.iter().enumerate() {
                dst[w * ci] = to_bf16_bits(v);
            }
        }
    }
}

/// Adds one image's `dW` (`[co, kh, kw, ci]`, `row = 3·ci` per kernel row) to `dw`, reading the bf16 padded
/// image `xb` (at least `(h+2)(w+2)ci + SLACK` long).
///
/// # Safety
/// The CPU has AVX-512F, AVX-512BW and AVX512-BF16 ([`crate::bf16_supported`]).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn image_dw(
    d: &ConvDims,
    io: &ImageIo<'_>,
    xb: &[u16],
    dw: &mut [f32],
    nz: &mut Vec<(usize, f32)>,
) {
    let row = 3 * d.ci;
    let pw = d.w + 2;
    // Internal invariants (never user data): every read below stays inside `xb`, every write inside `dw`.
    assert!(
        xb.len() >= (d.h + 2) * pw * d.ci + SLACK,
        "sparse bf16: short image copy"
    );
    assert!(dw.len() >= d.co * 3 * row, "sparse bf16: short dW");
    for co in 0..d.co {
        nonzeros(d, io, co, nz);
        if nz.is_empty() {
            continue;
        }
        for kh in 0..3 {
            let off = kh * pw * d.ci;
            let seg_base = (co * 3 + kh) * row;
            let mut col = 0;
            while col < row {
                let len = SEG.min(row - col);
                let out = &mut dw[seg_base + col..seg_base + col + len];
                // SAFETY: the features are this function's; the reads are inside `xb` (asserted above: the
                // furthest is the last non-zero's row end plus SLACK).
                unsafe { segment(len.div_ceil(16), xb, nz, off + col, out) };
                col += len;
            }
        }
    }
}

/// Dispatches a segment of `chunks` 16-column chunks (1 to 16) to the kernel with that many register sums.
///
/// # Safety
/// As [`segment_n`].
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn segment(chunks: usize, xb: &[u16], nz: &[(usize, f32)], off: usize, out: &mut [f32]) {
    macro_rules! go {
        ($($n:literal)*) => {
            match chunks {
                // SAFETY: forwarded contract.
                $($n => unsafe { segment_n::<$n>(xb, nz, off, out) },)*
                _ => unreachable!("sparse bf16: {chunks} chunks"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// `out[j] += Σ_nz g · x[base + off + j]` for `j < out.len()` (at most `16·N`), the sums in `N` registers.
///
/// # Safety
/// AVX-512F/BW/BF16 present; `xb[base + off .. base + off + 16·N]` in bounds for every non-zero's `base`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
unsafe fn segment_n<const N: usize>(xb: &[u16], nz: &[(usize, f32)], off: usize, out: &mut [f32]) {
    // Word 2j of the result is the first row's element j, word 2j+1 the second row's (index 32 + j).
    let idx = _mm512_set_epi16(
        47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36, 4,
        35, 3, 34, 2, 33, 1, 32, 0,
    );
    let mut acc = [_mm512_setzero_ps(); N];
    let p = xb.as_ptr();
    for pair in nz.chunks(2) {
        let (b1, g1) = pair[0];
        // An odd last non-zero pairs with itself at weight 0.
        let (b2, g2) = pair.get(1).copied().unwrap_or((b1, 0.0));
        let gs = u32::from(to_bf16_bits(g1)) | (u32::from(to_bf16_bits(g2)) << 16);
        // SAFETY: both are 512-bit vectors (32 bf16 words).
        let a: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(gs as i32)) };
        // SAFETY: in bounds per the contract.
        let (r1, r2) = unsafe { (p.add(b1 + off), p.add(b2 + off)) };
        for (c, s) in acc.iter_mut().enumerate() {
            // SAFETY: as above; unaligned 32-byte loads.
            let (v1, v2) = unsafe {
                (
                    _mm512_castsi256_si512(_mm256_loadu_si256(r1.add(16 * c) as *const __m256i)),
                    _mm512_castsi256_si512(_mm256_loadu_si256(r2.add(16 * c) as *const __m256i)),
                )
            };
            // SAFETY: both are 512-bit vectors (32 bf16 words).
            let v: __m512bh =
                unsafe { std::mem::transmute(_mm512_permutex2var_epi16(v1, idx, v2)) };
            *s = _mm512_dpbf16_ps(*s, a, v);
        }
    }
    for (c, s) in acc.iter().enumerate() {
        let start = 16 * c;
        if start >= out.len() {
            break;
        }
        let n = 16.min(out.len() - start);
        let mut lanes = [0f32; 16];
        // SAFETY: `lanes` holds 16 floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *s) };
        for (o, v) in out[start..start + n].iter_mut().zip(lanes) {
            *o += v;
        }
    }
}
