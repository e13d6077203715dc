//! A bf16 GEMM for the convolutions: `dst[m×n] (+)= a[m×k] · b[k×n]` with `a` and `b` rounded to bfloat16
//! (round to nearest even, as `VCVTNE2PS2BF16`) and every product summed in f32 by `VDPBF16PS` (AVX512-BF16).
//!
//! `VDPBF16PS` multiplies 32 bf16 pairs and adds them into 16 f32 lanes in one instruction: twice the
//! multiply-adds of an f32 FMA of the same width, so where a CPU issues both at one rate its peak is twice
//! f32's (measured on a Zen 5: 1.35-1.72x per conv forward, docs/performance.md). The Intel Xeon measured
//! (Emerald Rapids) issues it at a quarter of the FMA's rate: there this kernel runs at half the f32 GEMM's speed
//! ([`speed`] measures which case a CPU is). Rounding the inputs to bf16 keeps
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

use std::borrow::Cow;
use std::cell::RefCell;

use crate::Precision;
use crate::util::{Mat, gemm_trivial, max_index, sgemm};

pub use speed::{GemmSpeed, gemm_speed};

/// Whether GEMMs of precision `p` run on the bf16 kernel (bf16 asked for, and this CPU has it).
fn use_bf16(p: Precision) -> bool {
    p == Precision::Bf16 && bf16_supported()
}

/// The weights of a convolution as the left operand of its GEMMs (`[m × k]`, row-major): packed for the bf16
/// kernel once per op call for [`Precision::Bf16`] (every image group then reuses the packing), plain f32 otherwise.
pub(crate) struct ConvLhs<'a> {
    data: Cow<'a, [f32]>,
    m: usize,
    k: usize,
    packed: Option<PackedA>,
}

impl<'a> ConvLhs<'a> {
    pub(crate) fn new(data: &'a [f32], m: usize, k: usize, p: Precision) -> Self {
        Self::from_cow(Cow::Borrowed(data), m, k, p)
    }

    /// The same over weights of its own (e.g. transformed ones).
    pub(crate) fn owned(data: Vec<f32>, m: usize, k: usize, p: Precision) -> ConvLhs<'static> {
        ConvLhs::from_cow(Cow::Owned(data), m, k, p)
    }

    fn from_cow(data: Cow<'a, [f32]>, m: usize, k: usize, p: Precision) -> Self {
        let packed = (use_bf16(p) && m > 0 && k > 0).then(|| {
            let a = Mat {
                data: &data,
                rs: k,
                cs: 1,
            };
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
            data: &self.data,
            rs: self.k,
            cs: 1,
        };
        match &self.packed {
            #[cfg(target_arch = "x86_64")]
            Some(p) if n > 0 => {
                assert_dst_rhs(self.m, n, self.k, dst, dst_rs, b);
                // SAFETY: `packed` exists only where the CPU features were checked; dst and b extents asserted.
                unsafe { self.kernel(p, n, dst, dst_rs, accumulate, BSrc::Mat(b)) }
            }
            _ => sgemm(self.m, n, self.k, dst, dst_rs, accumulate, a, b),
        }
    }

    /// `dst[m × n] (+)= self · b` for a right operand `b [k × n]` that its producer packed already (see
    /// [`packed_b_len`]): the bf16 kernel without its packing pass.
    ///
    /// # Panics
    /// Where `self` is not packed for the bf16 kernel, or `b` or `dst` is too short (internal invariants: the
    /// callers take this way only for [`Precision::Bf16`] on a CPU that has it, [`ConvLhs::packed_bf16`]).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn gemm_packed(
        &self,
        n: usize,
        dst: &mut [f32],
        dst_rs: usize,
        accumulate: bool,
        b: &[u32],
    ) {
        let Some(p) = &self.packed else {
            panic!("bgemm: a packed right operand for an f32 left one");
        };
        if n == 0 {
            return;
        }
        assert!(
            max_index(self.m, n, dst_rs, 1) < dst.len(),
            "bgemm: dst too short"
        );
        assert!(
            b.len() >= packed_b_len(self.k, n),
            "bgemm: packed rhs too short"
        );
        // SAFETY: `packed` exists only where the CPU features were checked; dst's extent and b's length asserted.
        unsafe { self.kernel(p, n, dst, dst_rs, accumulate, BSrc::Packed(b)) }
    }

    /// The bf16 kernel on the packed weights `p` (this operand's).
    ///
    /// # Safety
    /// AVX-512F/BW/BF16 present (where `p` exists); `dst` holds `m × n` at row stride `dst_rs` and `b` holds `k × n`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn kernel(
        &self,
        p: &PackedA,
        n: usize,
        dst: &mut [f32],
        dst_rs: usize,
        accumulate: bool,
        b: BSrc<'_>,
    ) {
        crate::isa::record(crate::KernelFamily::Bf16Gemm, crate::Isa::Avx512);
        // SAFETY: the caller's contract.
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

    /// Whether the GEMMs run on the bf16 kernel (the left operand is packed for it), so that a producer may hand
    /// [`ConvLhs::gemm_packed`] its right operand packed.
    pub(crate) fn packed_bf16(&self) -> bool {
        self.packed.is_some()
    }
}

/// Words of a right operand `b [k × n]` packed as the kernel reads it, for [`ConvLhs::gemm_packed`]: depth pairs
/// (`lo` = row `2p`, `hi` = row `2p + 1`, a pair past an odd `k` zero in its high half) in blocks of [`KCP`] pairs
/// (the last shorter), each block's columns in panels of [`NR`] (`[block][panel][pair][column]`); the last panel's
/// columns past `n` are read and multiplied but their sums never stored. [`packed_b_offset`] finds a word.
pub(crate) fn packed_b_len(k: usize, n: usize) -> usize {
    k.div_ceil(2) * n.div_ceil(NR) * NR
}

/// Where depth pair `pair` of column `col` lies in a packed `b [k × n]` (see [`packed_b_len`]); the next
/// [`NR`]` - col % NR` columns of the same pair follow it.
#[inline]
pub(crate) fn packed_b_offset(k: usize, n: usize, pair: usize, col: usize) -> usize {
    let (kp, panels) = (k.div_ceil(2), n.div_ceil(NR));
    let block = pair / KCP * KCP;
    let kcp = KCP.min(kp - block);
    block * panels * NR + col / NR * kcp * NR + (pair - block) * NR + col % NR
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

/// Where the kernel takes its right operand from.
#[derive(Clone, Copy)]
enum BSrc<'a> {
    /// Packed on the fly, block by block.
    Mat(Mat<'a>),
    /// Packed beforehand, as [`packed_b_len`] describes.
    // Built on x86-64 only (`ConvLhs::gemm_packed`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Packed(&'a [u32]),
}

/// The convolutions' GEMM: [`bgemm`] for [`Precision::Bf16`] (on a CPU that has it), else [`sgemm`] (same
/// contract).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_gemm(
    p: Precision,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) {
    if use_bf16(p) {
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

/// Whether this CPU runs the bf16 kernel (AVX-512F, AVX-512BW and AVX512-BF16), and `CPU_OPS_MAX_ISA` leaves
/// AVX-512 on ([`crate::Isa::detect`]).
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::Isa::detect() >= crate::Isa::Avx512
            && std::is_x86_feature_detected!("avx512f")
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
    if gemm_trivial(m, n, k, dst, dst_rs, accumulate) {
        return;
    }
    // Internal invariants (never user data).
    assert_dst_rhs(m, n, k, dst, dst_rs, b);
    assert!(
        max_index(m, k, a.rs, a.cs) < a.data.len(),
        "bgemm: lhs too short"
    );
    #[cfg(target_arch = "x86_64")]
    if bf16_supported() {
        crate::isa::record(crate::KernelFamily::Bf16Gemm, crate::Isa::Avx512);
        // SAFETY: the CPU features were just checked; the index ranges of dst, a and b were asserted above.
        unsafe { x86::bgemm(m, n, k, dst, dst_rs, accumulate, ASrc::Mat(a), BSrc::Mat(b)) };
        return;
    }
    bgemm_scalar(m, n, k, dst, dst_rs, accumulate, a, b);
}

/// The kernel's bounds on `dst [m × n]` (row stride `dst_rs`) and `b [k × n]`: internal invariants (never user
/// data), shared by both ways into the kernel.
fn assert_dst_rhs(m: usize, n: usize, k: usize, dst: &[f32], dst_rs: usize, b: Mat<'_>) {
    assert!(
        max_index(m, n, dst_rs, 1) < dst.len(),
        "bgemm: dst too short"
    );
    assert!(
        max_index(k, n, b.rs, b.cs) < b.data.len(),
        "bgemm: rhs too short"
    );
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

mod pack;
mod speed;
use pack::pack_a;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;
