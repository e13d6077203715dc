//! The AVX512-BF16 kernel: packing helpers, the blocked loop and the 12 x 32 register tile.

use super::pack::{A_PANEL, pack_a, pack_b};
use super::*;
use std::arch::x86_64::*;

/// Sixteen pair words from 32 consecutive floats (`src[2t]` low, `src[2t + 1]` high).
///
/// # Safety
/// AVX-512F/BW/BF16 present; `src` valid for 32 reads.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pairs_from_contiguous(src: *const f32, out: &mut [u32; 16]) {
    // SAFETY: per the contract.
    unsafe {
        let lo = _mm512_loadu_ps(src);
        let hi = _mm512_loadu_ps(src.add(16));
        // bf16 lane i = element i of (lo, hi): the pairs are already in order.
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(out.as_mut_ptr() as *mut _, v);
    }
}

/// Sixteen pair words for sixteen columns from two rows (`r0[c]` low, `r1[c]` high).
///
/// # Safety
/// AVX-512F/BW/BF16 present; `r0`, `r1` valid for 16 reads, `out` for 16 writes.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pairs_from_rows(r0: *const f32, r1: *const f32, out: *mut u32) {
    // SAFETY: per the contract.
    unsafe {
        let x0 = _mm512_loadu_ps(r0);
        let x1 = _mm512_loadu_ps(r1);
        // bf16 lanes 0..16 = r0, 16..32 = r1; interleave to (r0[c], r1[c]).
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(x1, x0));
        let idx = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        _mm512_storeu_si512(out as *mut _, _mm512_permutexvar_epi16(idx, v));
    }
}

/// See [`super::bgemm`].
///
/// # Safety
/// AVX-512F/BW/BF16 present; `dst`, `a`, `b` hold the asserted index ranges.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn bgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: ASrc<'_>,
    b: BSrc<'_>,
) {
    let kp = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    PACK_A.with(|pa| {
        PACK_B.with(|pb| {
            let (mut pa, mut pb) = (pa.borrow_mut(), pb.borrow_mut());
            let c = dst.as_mut_ptr();
            for jc in (0..n).step_by(NC) {
                let nc = NC.min(n - jc);
                for (pci, pc) in (0..kp).step_by(KCP).enumerate() {
                    let kcp = KCP.min(kp - pc);
                    let bpack: &[u32] = match b {
                        BSrc::Mat(b) => {
                            pack_b(b, k, jc, nc, pc, kcp, &mut pb);
                            &pb[..nc.div_ceil(NR) * kcp * NR]
                        }
                        // Block pc's panels from jc / NR on (jc is a multiple of NC, so of NR).
                        BSrc::Packed(w) => {
                            &w[pc * panels * NR + jc / NR * kcp * NR..]
                                [..nc.div_ceil(NR) * kcp * NR]
                        }
                    };
                    let add = accumulate || pc > 0;
                    for (ici, ic) in (0..m).step_by(MC).enumerate() {
                        let mc = MC.min(m - ic);
                        let apack: &[u32] = match a {
                            ASrc::Mat(a) => {
                                pack_a(a, k, ic, mc, pc, kcp, &mut pa);
                                &pa[..mc.div_ceil(MR) * A_PANEL]
                            }
                            ASrc::Packed(p) => &p.blocks[pci * p.row_blocks + ici],
                        };
                        for (pj, bp) in bpack.chunks_exact(kcp * NR).enumerate() {
                            let cols = NR.min(nc - pj * NR);
                            let mask = if cols >= 32 {
                                u32::MAX
                            } else {
                                (1u32 << cols) - 1
                            };
                            for (pi, ap) in apack.chunks_exact(A_PANEL).enumerate() {
                                let rows = MR.min(mc - pi * MR);
                                // SAFETY: the tile's rows ic+pi·MR.. (< m) and columns jc+pj·NR.. (< n,
                                // masked) are inside dst; the panels hold kcp pairs.
                                unsafe {
                                    let ct = c.add((ic + pi * MR) * dst_rs + jc + pj * NR);
                                    tile(
                                        kcp,
                                        ap.as_ptr(),
                                        bp.as_ptr(),
                                        ct,
                                        dst_rs,
                                        rows,
                                        mask,
                                        add,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        })
    });
}

/// One `MR × NR` tile: `c[rows × 32 (masked)] (+)= a_panel · b_panel`.
///
/// # Safety
/// AVX-512F/BW/BF16 present; panels hold `kcp` pairs; `c` rows `0..rows`, masked columns are valid.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn tile(
    kcp: usize,
    ap: *const u32,
    bp: *const u32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    mask: u32,
    add: bool,
) {
    // SAFETY: per the contract.
    unsafe {
        let mut acc0 = [_mm512_setzero_ps(); MR];
        let mut acc1 = [_mm512_setzero_ps(); MR];
        let (mut ap, mut bp) = (ap, bp);
        for _ in 0..kcp {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(16) as *const _));
            for r in 0..MR {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r * KCP) as i32));
                acc0[r] = _mm512_dpbf16_ps(acc0[r], av, b0);
                acc1[r] = _mm512_dpbf16_ps(acc1[r], av, b1);
            }
            ap = ap.add(1);
            bp = bp.add(NR);
        }
        let (m0, m1) = (mask as u16, (mask >> 16) as u16);
        for r in 0..rows {
            let row = c.add(r * ldc);
            let (mut v0, mut v1) = (acc0[r], acc1[r]);
            if add {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row.add(16)));
            }
            _mm512_mask_storeu_ps(row, m0, v0);
            _mm512_mask_storeu_ps(row.add(16), m1, v1);
        }
    }
}
