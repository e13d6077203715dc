//! A bf16 GEMM for the convolutions: `dst[m×n] (+)= a[m×k] · b[k×n]` with `a` and `b` rounded to bfloat16
//! (round to nearest even, as `VCVTNE2PS2BF16`) and every product summed in f32 by `VDPBF16PS` (AVX512-BF16).
//!
//! `VDPBF16PS` multiplies 32 bf16 pairs and adds them into 16 f32 lanes in one instruction: twice the
//! multiply-adds of an f32 FMA of the same width, so on a CPU that has it (AMD Zen 4 and later, Intel Cooper Lake
//! and Sapphire Rapids and later) a product runs up to twice as fast as in f32. Rounding the inputs to bf16 keeps
//! 8 significant bits (relative error ≤ 2⁻⁹ per input); the sums keep f32's 24.
//!
//! Layout (BLIS-style): `b` is packed in blocks of [`KCP`] depth pairs × [`NC`] columns into panels of
//! [`NR`] = 32 columns, each depth pair of a column one 32-bit word (`lo` = row `2p`, `hi` = row `2p + 1`);
//! `a` in blocks of [`MC`] rows into panels of [`MR`] = 12 rows, the same pair words, each row one contiguous run
//! (row stride [`KCP`], so the kernel's twelve broadcasts use constant offsets from one pointer). The
//! micro-kernel keeps a 12 × 32 tile of `dst` in 24 registers, loads two `b` vectors per depth pair and
//! broadcasts one `a` word per row. Edges are zero-padded (rows, columns, an odd depth) and stored masked.
//!
//! Single-threaded, like [`crate::util::sgemm`]: callers parallelise over images.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::util::{Mat, sgemm};

/// Whether the convolution GEMMs run in bf16 (see [`crate::set_conv_precision`]).
static BF16: AtomicBool = AtomicBool::new(false);

/// Switches the convolution GEMMs to bf16 (`true`) or f32; the caller checked [`bf16_supported`].
pub(crate) fn set_bf16(on: bool) {
    BF16.store(on, Ordering::Relaxed);
}

/// Whether the convolution GEMMs run in bf16.
pub(crate) fn bf16_on() -> bool {
    BF16.load(Ordering::Relaxed)
}

/// The weights of a convolution as the left operand of its GEMMs (`[m × k]`, row-major): packed for the bf16
/// kernel once per op call when bf16 is on (every image group then reuses the packing), plain f32 otherwise.
pub(crate) struct ConvLhs<'a> {
    data: &'a [f32],
    m: usize,
    k: usize,
    packed: Option<PackedA>,
}

impl<'a> ConvLhs<'a> {
    pub(crate) fn new(data: &'a [f32], m: usize, k: usize) -> Self {
        let packed = (bf16_on() && bf16_supported() && m > 0 && k > 0).then(|| {
            let a = Mat { data, rs: k, cs: 1 };
            PackedA::new(a, m, k)
        });
        Self { data, m, k, packed }
    }

    /// `dst[m × n] (+)= self · b`, as [`conv_gemm`].
    pub(crate) fn gemm(
        &self,
        n: usize,
        dst: &mut [f32],
        dst_rs: usize,
        accumulate: bool,
        b: Mat<'_>,
    ) {
        let a = Mat {
            data: self.data,
            rs: self.k,
            cs: 1,
        };
        match &self.packed {
            #[cfg(target_arch = "x86_64")]
            Some(p) if n > 0 => {
                assert!(
                    (self.m - 1) * dst_rs + n <= dst.len(),
                    "bgemm: dst too short"
                );
                assert!(
                    (self.k - 1) * b.rs + (n - 1) * b.cs < b.data.len(),
                    "bgemm: rhs too short"
                );
                // SAFETY: `packed` exists only where the CPU features were checked; dst and b extents asserted.
                unsafe {
                    x86::bgemm(
                        self.m,
                        n,
                        self.k,
                        dst,
                        dst_rs,
                        accumulate,
                        ASrc::Packed(p),
                        b,
                    )
                }
            }
            _ => conv_gemm(self.m, n, self.k, dst, dst_rs, accumulate, a, b),
        }
    }
}

/// The left operand, packed whole: one block per (depth block, row block), as the kernel walks them.
pub(crate) struct PackedA {
    /// Row blocks per depth block.
    row_blocks: usize,
    blocks: Vec<Vec<u32>>,
}

impl PackedA {
    fn new(a: Mat<'_>, m: usize, k: usize) -> Self {
        let kp = k.div_ceil(2);
        let row_blocks = m.div_ceil(MC);
        let mut blocks = Vec::with_capacity(kp.div_ceil(KCP) * row_blocks);
        for pc in (0..kp).step_by(KCP) {
            for ic in (0..m).step_by(MC) {
                let mut v = Vec::new();
                pack_a(a, k, ic, MC.min(m - ic), pc, KCP.min(kp - pc), &mut v);
                blocks.push(v);
            }
        }
        Self { row_blocks, blocks }
    }
}

/// Where the kernel takes its left operand from.
#[derive(Clone, Copy)]
enum ASrc<'a> {
    /// Packed on the fly, block by block.
    Mat(Mat<'a>),
    /// Packed beforehand.
    Packed(&'a PackedA),
}

/// The convolutions' GEMM: [`bgemm`] when bf16 is switched on, else [`sgemm`] (same contract).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) {
    if bf16_on() {
        bgemm(m, n, k, dst, dst_rs, accumulate, a, b)
    } else {
        sgemm(m, n, k, dst, dst_rs, accumulate, a, b)
    }
}

/// Rows of `dst` per micro-tile.
const MR: usize = 12;
/// Columns of `dst` per micro-tile (two 16-lane vectors).
const NR: usize = 32;
/// Depth pairs per packed block (`2·KCP` depth): a `b` panel is `KCP × NR × 4` bytes = 16 KiB, in L1.
const KCP: usize = 128;
/// Rows per packed `a` block (`MC × KCP × 4` bytes = 96 KiB, in L2).
const MC: usize = 192;
/// Columns per packed `b` block (`NC × KCP × 4` bytes = 256 KiB, in L2).
const NC: usize = 512;

/// Whether this CPU runs the bf16 kernel (AVX-512F, AVX-512BW and AVX512-BF16).
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to bfloat16 (nearest, ties to even; NaN stays a quiet NaN), as its 16 bits.
#[inline]
pub(crate) fn to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to bfloat16 and back to f32 (what the kernel multiplies).
#[inline]
pub(crate) fn round_bf16(x: f32) -> f32 {
    f32::from_bits((to_bf16_bits(x) as u32) << 16)
}

/// One depth pair as the kernel reads it: `lo` in the low 16 bits.
#[inline]
fn pair(lo: f32, hi: f32) -> u32 {
    to_bf16_bits(lo) as u32 | ((to_bf16_bits(hi) as u32) << 16)
}

thread_local! {
    static PACK_A: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static PACK_B: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// `dst[m×n] (row stride dst_rs, unit column stride) = (accumulate ? dst : 0) + bf16(a) · bf16(b)`.
///
/// Falls back to a scalar loop with the same rounding where the CPU lacks AVX512-BF16 (tests only: callers
/// check [`bf16_supported`] first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn bgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Internal invariants (never user data).
    assert!((m - 1) * dst_rs + n <= dst.len(), "bgemm: dst too short");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        (m - 1) * a.rs + (k - 1) * a.cs < a.data.len(),
        "bgemm: lhs too short"
    );
    assert!(
        (k - 1) * b.rs + (n - 1) * b.cs < b.data.len(),
        "bgemm: rhs too short"
    );
    #[cfg(target_arch = "x86_64")]
    if bf16_supported() {
        // SAFETY: the CPU features were just checked; the index ranges of dst, a and b were asserted above.
        unsafe { x86::bgemm(m, n, k, dst, dst_rs, accumulate, ASrc::Mat(a), b) };
        return;
    }
    bgemm_scalar(m, n, k, dst, dst_rs, accumulate, a, b);
}

/// The reference: the same rounding, f32 sums in pair order (tests compare the kernel with it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn bgemm_scalar(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for p in 0..k {
                s += round_bf16(a.data[i * a.rs + p * a.cs])
                    * round_bf16(b.data[p * b.rs + j * b.cs]);
            }
            let d = &mut dst[i * dst_rs + j];
            *d = if accumulate { *d + s } else { s };
        }
    }
}

/// Words per packed `a` panel: [`MR`] rows of [`KCP`] pairs each (a shorter last depth block leaves the tail of
/// each row unused), so that the kernel finds row `r`'s pair `p` at the constant offset `r·KCP + p`.
const A_PANEL: usize = MR * KCP;

/// Packs rows `r0..r0+mc` and depth pairs `p0..p0+kcp` of `a` into panels of [`MR`] rows (`out[panel][row][pair]`,
/// row stride [`KCP`]), zero-padded: each row of `a` becomes one contiguous run of pair words.
fn pack_a(a: Mat<'_>, k: usize, r0: usize, mc: usize, p0: usize, kcp: usize, out: &mut Vec<u32>) {
    let panels = mc.div_ceil(MR);
    // Every word the kernel reads is written below (padding rows as zeros): no need to clear.
    out.resize(panels * A_PANEL, 0);
    let at = |i: usize, d: usize| {
        if d < k {
            a.data[i * a.rs + d * a.cs]
        } else {
            0.0
        }
    };
    let simd = a.cs == 1 && bf16_supported();
    for (pi, panel) in out[..panels * A_PANEL]
        .chunks_exact_mut(A_PANEL)
        .enumerate()
    {
        let rows = MR.min(mc - pi * MR);
        for r in rows..MR {
            panel[r * KCP..r * KCP + kcp].fill(0);
        }
        for r in 0..rows {
            let i = r0 + pi * MR + r;
            let dst = &mut panel[r * KCP..r * KCP + kcp];
            let mut p = 0;
            #[cfg(target_arch = "x86_64")]
            if simd {
                // Sixteen pairs at a time along the row; the pairs in full bounds only.
                let row = &a.data[i * a.rs..];
                while p + 16 <= kcp && 2 * (p0 + p + 16) <= k {
                    let Some(words) = dst[p..].first_chunk_mut::<16>() else {
                        break;
                    };
                    // SAFETY: features checked; 32 floats from depth 2(p0+p) lie inside row i (checked bound
                    // 2(p0+p+16) <= k and the asserted extent of a).
                    unsafe { x86::pairs_from_contiguous(row.as_ptr().add(2 * (p0 + p)), words) };
                    p += 16;
                }
            }
            while p < kcp {
                let d = 2 * (p0 + p);
                dst[p] = pair(at(i, d), at(i, d + 1));
                p += 1;
            }
        }
    }
}

/// Packs columns `c0..c0+nc` and depth pairs `p0..p0+kcp` of `b` into panels of [`NR`] columns
/// (`out[panel][pair][col]`), zero-padded.
fn pack_b(b: Mat<'_>, k: usize, c0: usize, nc: usize, p0: usize, kcp: usize, out: &mut Vec<u32>) {
    let panels = nc.div_ceil(NR);
    // Every word is written below (padding columns as zeros): no need to clear.
    out.resize(panels * kcp * NR, 0);
    let at = |d: usize, j: usize| {
        if d < k {
            b.data[d * b.rs + j * b.cs]
        } else {
            0.0
        }
    };
    let simd = bf16_supported();
    for (pj, panel) in out[..panels * kcp * NR]
        .chunks_exact_mut(kcp * NR)
        .enumerate()
    {
        let cols = NR.min(nc - pj * NR);
        let j0 = c0 + pj * NR;
        if cols < NR {
            for p in 0..kcp {
                panel[p * NR + cols..(p + 1) * NR].fill(0);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if simd && b.rs == 1 {
            // Depth-contiguous columns: sixteen pairs of one column at a time, scattered down the panel.
            let full = if 2 * (p0 + kcp) <= k {
                kcp
            } else {
                (k / 2).saturating_sub(p0).min(kcp)
            };
            for c in 0..cols {
                let col = &b.data[(j0 + c) * b.cs..];
                let mut p = 0;
                while p + 16 <= full {
                    let mut words = [0u32; 16];
                    // SAFETY: features checked; depths 2(p0+p)..2(p0+p+16) <= k of column j0+c lie inside the
                    // asserted extent of b.
                    unsafe {
                        x86::pairs_from_contiguous(col.as_ptr().add(2 * (p0 + p)), &mut words)
                    };
                    for (t, w) in words.iter().enumerate() {
                        panel[(p + t) * NR + c] = *w;
                    }
                    p += 16;
                }
                while p < kcp {
                    let d = 2 * (p0 + p);
                    panel[p * NR + c] = pair(at(d, j0 + c), at(d + 1, j0 + c));
                    p += 1;
                }
            }
            continue;
        }
        for p in 0..kcp {
            let d = 2 * (p0 + p);
            let dst = &mut panel[p * NR..][..NR];
            let mut c = 0;
            #[cfg(target_arch = "x86_64")]
            if simd && b.cs == 1 && d + 1 < k {
                while c + 16 <= cols {
                    // SAFETY: features checked; rows d and d+1 exist (d + 1 < k) and columns j0+c..j0+c+16 are
                    // inside the asserted extent of b.
                    unsafe {
                        x86::pairs_from_rows(
                            b.data.as_ptr().add(d * b.rs + j0 + c),
                            b.data.as_ptr().add((d + 1) * b.rs + j0 + c),
                            dst[c..].as_mut_ptr(),
                        )
                    };
                    c += 16;
                }
            }
            while c < cols {
                dst[c] = pair(at(d, j0 + c), at(d + 1, j0 + c));
                c += 1;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
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
                31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
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
        b: Mat<'_>,
    ) {
        let kp = k.div_ceil(2);
        PACK_A.with(|pa| {
            PACK_B.with(|pb| {
                let (mut pa, mut pb) = (pa.borrow_mut(), pb.borrow_mut());
                let c = dst.as_mut_ptr();
                for jc in (0..n).step_by(NC) {
                    let nc = NC.min(n - jc);
                    for (pci, pc) in (0..kp).step_by(KCP).enumerate() {
                        let kcp = KCP.min(kp - pc);
                        pack_b(b, k, jc, nc, pc, kcp, &mut pb);
                        let bpack = &pb[..nc.div_ceil(NR) * kcp * NR];
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
                    let av: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*ap.add(r * KCP) as i32));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn randv(state: &mut u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn rounding_is_nearest_even() {
        assert_eq!(to_bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(to_bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(to_bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16_bits(-2.0), 0xc000);
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        for x in [0.1f32, -3.3, 1e-3, 7.77e5] {
            assert!(((round_bf16(x) - x) / x).abs() <= 1.0 / 256.0, "{x}");
        }
    }

    /// The kernel against the scalar reference for edge sizes, odd depths, both layouts of each operand and
    /// accumulation: the same rounded inputs, so only the order of the f32 sums differs.
    #[test]
    fn kernel_matches_reference() {
        let mut s = 7u64;
        for &(m, n, k) in &[
            (1, 1, 1),
            (12, 32, 2),
            (13, 33, 3),
            (64, 225, 576),
            (25, 70, 300),
            (200, 600, 261),
            (5, 17, 9),
        ] {
            for (a_t, b_t) in [(false, false), (false, true), (true, false)] {
                let av = randv(&mut s, m * k);
                let bv = randv(&mut s, k * n);
                let a = if a_t {
                    Mat {
                        data: &av,
                        rs: 1,
                        cs: m,
                    }
                } else {
                    Mat {
                        data: &av,
                        rs: k,
                        cs: 1,
                    }
                };
                let b = if b_t {
                    Mat {
                        data: &bv,
                        rs: 1,
                        cs: k,
                    }
                } else {
                    Mat {
                        data: &bv,
                        rs: n,
                        cs: 1,
                    }
                };
                for accumulate in [false, true] {
                    let init = randv(&mut s, m * (n + 3));
                    let (mut got, mut want) = (init.clone(), init.clone());
                    bgemm(m, n, k, &mut got, n + 3, accumulate, a, b);
                    bgemm_scalar(m, n, k, &mut want, n + 3, accumulate, a, b);
                    for i in 0..m {
                        for j in 0..n + 3 {
                            let (g, w) = (got[i * (n + 3) + j], want[i * (n + 3) + j]);
                            if j >= n {
                                assert_eq!(
                                    g,
                                    init[i * (n + 3) + j],
                                    "padding written at {m}x{n}x{k}"
                                );
                                continue;
                            }
                            let tol = 1e-5 * (k as f32).sqrt() * (1.0 + w.abs());
                            assert!(
                                (g - w).abs() <= tol,
                                "{m}x{n}x{k} a_t {a_t} b_t {b_t} acc {accumulate}: [{i},{j}] {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// bf16 against exact f32 products: the stated tolerance (relative 2⁻⁸ per product, errors of random sign).
    #[test]
    fn error_against_f32_is_within_bf16_rounding() {
        let mut s = 11u64;
        let (m, n, k) = (64, 96, 576);
        let av = randv(&mut s, m * k);
        let bv = randv(&mut s, k * n);
        let a = Mat {
            data: &av,
            rs: k,
            cs: 1,
        };
        let b = Mat {
            data: &bv,
            rs: n,
            cs: 1,
        };
        let mut got = vec![0f32; m * n];
        bgemm(m, n, k, &mut got, n, false, a, b);
        let mut worst = 0f32;
        for i in 0..m {
            for j in 0..n {
                let mut exact = 0f64;
                let mut abs = 0f64;
                for p in 0..k {
                    let t = av[i * k + p] as f64 * bv[p * n + j] as f64;
                    exact += t;
                    abs += t.abs();
                }
                // Each product is off by at most 2·2⁻⁹ relative: bounded by 2⁻⁸ · Σ|aᵢbᵢ|.
                let err = (got[i * n + j] as f64 - exact).abs();
                assert!(
                    err <= abs / 256.0 + 1e-5,
                    "[{i},{j}] {err} > {}",
                    abs / 256.0
                );
                worst = worst.max((err / abs) as f32);
            }
        }
        // Random signs: the typical error is far below the bound.
        assert!(worst < 1.0 / 512.0, "worst relative error {worst}");
    }
}
