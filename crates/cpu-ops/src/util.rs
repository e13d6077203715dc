//! Shared helpers: contiguous views of candle storage, thread-local scratch buffers and a thin,
//! bounds-checked wrapper around `gemm::gemm`.

use std::borrow::Cow;
use std::cell::RefCell;

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// Borrows the f32 data described by `layout`, copying only when the view is not contiguous.
pub(crate) fn slice_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<Cow<'a, [f32]>> {
    let data = storage.as_slice::<f32>()?;
    if let Some((start, end)) = layout.contiguous_offsets() {
        return Ok(Cow::Borrowed(&data[start..end]));
    }
    Ok(Cow::Owned(gather_strided(data, layout)))
}

/// Copies a strided view into a fresh contiguous (row-major) buffer.
fn gather_strided(data: &[f32], layout: &Layout) -> Vec<f32> {
    let dims = layout.dims();
    let stride = layout.stride();
    let count: usize = dims.iter().product();
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return out;
    }
    let rank = dims.len();
    let mut idx = vec![0usize; rank];
    let mut offset = layout.start_offset();
    for _ in 0..count {
        out.push(data[offset]);
        // Increment the multi-index (last dimension fastest).
        for d in (0..rank).rev() {
            idx[d] += 1;
            offset += stride[d];
            if idx[d] < dims[d] {
                break;
            }
            offset -= stride[d] * dims[d];
            idx[d] = 0;
        }
    }
    out
}

/// Runs `f` on the contiguous f32 data of a CPU tensor (copying only for strided views).
pub(crate) fn with_tensor_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => {
            let data = slice_f32(cpu, layout)?;
            f(&data)
        }
        _ => candle_core::bail!(
            "cpu-ops: expected a CPU tensor, found one on {:?}",
            t.device()
        ),
    }
}

thread_local! {
    static SCRATCH_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_C: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_cell<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// A per-thread scratch buffer of at least `len` floats, reused across calls (contents are
/// whatever the previous user left). Must not be nested with itself; see [`with_scratch_b`].
pub(crate) fn with_scratch_a<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_cell(&SCRATCH_A, len, f)
}

/// A second, independent per-thread scratch buffer, for use inside [`with_scratch_a`].
pub(crate) fn with_scratch_b<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_cell(&SCRATCH_B, len, f)
}

/// A third per-thread scratch buffer, for use inside [`with_scratch_a`] and [`with_scratch_b`].
pub(crate) fn with_scratch_c<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_cell(&SCRATCH_C, len, f)
}

/// `dst.copy_from_slice(src)` for the short rows of an image plane (8-64 floats): in fixed 8-float pieces that
/// compile to a few vector moves, where `copy_from_slice` of a run-time length calls `memcpy` per row (its call
/// and dispatch cost more than the copy at these sizes: 3.9% of a bf16 Muon step for the F(4x4) input
/// transform's padded planes). Each piece passes a [`no_idiom`] barrier: without it LLVM's loop-idiom pass turned
/// the loop back into a `memcpy` call in some builds (one with more code in `winograd`, on a Zen 3: ~0.9% of an
/// f32 Muon step more in `memmove`, docs/performance.md).
///
/// A row's last `len % 8` floats are not moved one at a time: the last whole piece is moved again, ending at the
/// row's end (overlapping the piece before it, the same values written twice), and rows shorter than 8 floats
/// take two 4- or 2-float pieces the same way (airbench94's planes are all odd widths).
///
/// # Panics
/// If the lengths differ (an internal invariant).
#[inline]
pub(crate) fn copy_row(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_row: lengths differ");
    match dst.len() {
        8.. => copy_pieces::<8>(dst, src),
        4..8 => copy_pieces::<4>(dst, src),
        2..4 => copy_pieces::<2>(dst, src),
        _ => copy_pieces::<1>(dst, src),
    }
}

/// [`copy_row`]'s moves for rows of at least `K` floats (none for an empty row): whole `K`-float pieces, then the
/// last `K` floats again when `K` does not divide the length.
#[inline(always)]
fn copy_pieces<const K: usize>(dst: &mut [f32], src: &[f32]) {
    let whole = dst.len().is_multiple_of(K);
    let (d, _) = dst.as_chunks_mut::<K>();
    let (s, _) = src.as_chunks::<K>();
    for (d, s) in d.iter_mut().zip(s) {
        *d = *s;
        no_idiom();
    }
    if !whole && let (Some(d), Some(s)) = (dst.last_chunk_mut::<K>(), src.last_chunk::<K>()) {
        *d = *s;
    }
}

/// `dst.fill(0.0)` for short rows, as [`copy_row`] (no `memset` call per row; the tail as an overlapping piece).
#[inline]
pub(crate) fn zero_row(dst: &mut [f32]) {
    match dst.len() {
        8.. => zero_pieces::<8>(dst),
        4..8 => zero_pieces::<4>(dst),
        2..4 => zero_pieces::<2>(dst),
        _ => zero_pieces::<1>(dst),
    }
}

/// [`zero_row`]'s stores, as [`copy_pieces`].
#[inline(always)]
fn zero_pieces<const K: usize>(dst: &mut [f32]) {
    let whole = dst.len().is_multiple_of(K);
    let (d, _) = dst.as_chunks_mut::<K>();
    for d in d {
        *d = [0.0; K];
        no_idiom();
    }
    if !whole && let Some(d) = dst.last_chunk_mut::<K>() {
        *d = [0.0; K];
    }
}

/// An empty `asm!` statement: no instruction, but a side effect the compiler must keep in place, so a loop with it
/// is not rewritten into a `memcpy` / `memset` call. (Other targets: nothing; there the loops may become calls.)
#[inline(always)]
fn no_idiom() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    // SAFETY: the template is empty: no instruction runs, no register, flag, memory or stack is touched.
    unsafe {
        std::arch::asm!("", options(nomem, nostack, preserves_flags))
    };
}

/// How many planes ahead [`prefetch_ahead`] reaches in `planes` (all of the first one's length): about 2 KB of
/// data, and at least one plane.
#[inline(always)]
pub(crate) fn prefetch_distance(planes: &[&[f32]]) -> usize {
    let len = planes.first().map_or(0, |p| p.len());
    (512 / len.max(1)).max(1)
}

/// Asks the CPU to bring `planes[at]` (when there is one) into the cache, a line at a time: for kernels that walk
/// one channel's planes, which lie a whole image apart, so the hardware's stream prefetchers start cold on each
/// (the BatchNorm + GELU backward's loads of `dy` waited on memory for a third of its time, docs/performance.md).
/// A hint only: nothing is read or written, and no address can fault. (Other targets: nothing.)
#[inline(always)]
pub(crate) fn prefetch_ahead(planes: &[&[f32]], at: usize) {
    let Some(plane) = planes.get(at) else {
        return;
    };
    let bytes = std::mem::size_of_val(*plane);
    let base = plane.as_ptr().cast::<u8>();
    for off in (0..bytes).step_by(64).chain((bytes > 0).then(|| bytes - 1)) {
        let p = base.wrapping_add(off);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch hint reads no memory and cannot fault, whatever the address; `p` is within `plane`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
        };
        #[cfg(target_arch = "aarch64")]
        // SAFETY: PRFM is a hint: it reads no register but `p`, writes none, and cannot fault at any address.
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly))
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = p;
    }
}

/// `vec![0; len]`, zeroed by rayon's threads when it is large. An op's output (a part's activations or
/// gradients: tens of megabytes for airbench94's first blocks at 500 images) zeroed by `memset` on the calling
/// thread alone left the other cores idle for its whole length (about 1% of a Muon training run's wall time,
/// docs/performance.md).
pub(crate) fn par_zeroed<T: bytemuck::Zeroable + Copy + Send + Sync>(len: usize) -> Vec<T> {
    /// Below this many bytes the split costs more than it saves.
    const SERIAL_BELOW: usize = 256 << 10;
    /// Bytes a task zeroes: large enough that a task's cost dwarfs its scheduling.
    const CHUNK: usize = 128 << 10;
    let size = std::mem::size_of::<T>().max(1);
    if len.saturating_mul(size) < SERIAL_BELOW {
        return vec![T::zeroed(); len];
    }
    use rayon::prelude::*;
    let mut v: Vec<T> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK / size)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(T::zeroed())));
    // SAFETY: the capacity is at least `len` and every element of `0..len` was initialised just above.
    unsafe { v.set_len(len) };
    v
}

/// A row-major or strided matrix view used by [`sgemm`]: element `(i, j)` lives at
/// `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

pub(crate) fn max_index(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// `dst[m×n] (row stride dst_rs, unit column stride) = (accumulate ? dst : 0) + a[m×k] · b[k×n]`,
/// single-threaded (callers parallelise over images with rayon).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
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
    // Internal invariants (never user data): keep the unsafe call in bounds.
    assert!(
        max_index(m, n, dst_rs, 1) < dst.len(),
        "sgemm: dst too short"
    );
    // SAFETY: dst is valid for the index range checked above and does not alias a or b (distinct borrows).
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), dst_rs, accumulate, a, b) }
}

/// The products without a multiply-add, shared by [`sgemm`] and the bf16 GEMM: true (and `dst` set) when `m`, `n`
/// or `k` is zero; `k = 0` zeroes `dst[m×n]` unless `accumulate`.
pub(crate) fn gemm_trivial(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return true;
    }
    false
}

/// Minimum multiply-adds per parallel block: below it a product runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 18;

/// How many blocks of at least `min_len` rows/columns to split `len` into (1 = no split).
fn blocks_for(len: usize, work: usize, min_len: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads < 2 || work < 2 * PAR_MIN_WORK {
        return 1;
    }
    threads
        .min(len / min_len.max(1))
        .min(work / PAR_MIN_WORK)
        .max(1)
}

/// [`sgemm`] split into row blocks of `dst` that run in parallel on rayon's pool, each one single-threaded gemm.
///
/// Measured on the linear layers (2 cores): splitting the rows ourselves beats gemm's own rayon mode by 2-3x on
/// these shapes (for `[512 × 64] = [512 × 2048]·[2048 × 64]`: 0.55-0.6 ms against 1.2-3.0 ms).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_par_rows(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) {
    let parts = blocks_for(m, m * n * k, 8);
    if parts < 2 {
        return sgemm(m, n, k, dst, dst_rs, accumulate, a, b);
    }
    let ranges = split_ranges(m, parts);
    let mut blocks = Vec::with_capacity(ranges.len());
    let mut rest = dst;
    for (i, r) in ranges.iter().enumerate() {
        let take = if i + 1 == ranges.len() {
            rest.len()
        } else {
            r.len() * dst_rs
        };
        let (head, tail) = rest.split_at_mut(take.min(rest.len()));
        blocks.push((r.clone(), head));
        rest = tail;
    }
    use rayon::prelude::*;
    blocks.into_par_iter().for_each(|(r, d)| {
        let a_block = Mat {
            data: &a.data[r.start * a.rs..],
            ..a
        };
        sgemm(r.len(), n, k, d, dst_rs, accumulate, a_block, b);
    });
}

/// [`sgemm`] split into column blocks of `dst` that run in parallel on rayon's pool, each one single-threaded
/// gemm (for products whose output has few rows, e.g. a linear layer's input gradient `[N × In]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_par_cols(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) {
    let parts = blocks_for(n, m * n * k, 64);
    if parts < 2 || m == 0 || k == 0 {
        return sgemm(m, n, k, dst, dst_rs, accumulate, a, b);
    }
    assert!(
        max_index(m, n, dst_rs, 1) < dst.len(),
        "sgemm_par_cols: dst too short"
    );
    assert!(
        max_index(k, n, b.rs, b.cs) < b.data.len(),
        "sgemm_par_cols: rhs too short"
    );
    /// The destination's base pointer, shared by blocks that write disjoint columns.
    struct Dst(*mut f32);
    // SAFETY: each block writes only its own columns (see below), so sharing the pointer is race-free.
    unsafe impl Sync for Dst {}
    let base = Dst(dst.as_mut_ptr());
    let base = &base;
    use rayon::prelude::*;
    split_ranges(n, parts).into_par_iter().for_each(|r| {
        let b_block = Mat {
            data: &b.data[r.start * b.cs..],
            ..b
        };
        // SAFETY: block `r` covers elements `i * dst_rs + j` for `i < m`, `j` in `r`, all inside `dst` (checked
        // above) and disjoint from every other block's columns; `a` and `b` are distinct borrows from `dst`.
        unsafe {
            gemm_raw(
                m,
                r.len(),
                k,
                base.0.add(r.start),
                dst_rs,
                accumulate,
                a,
                b_block,
            );
        }
    });
}

/// `dst[m×n] (row stride dst_rs) = (accumulate ? dst : 0) + a·b` through `gemm::gemm` on a raw destination,
/// single-threaded; `m`, `n`, `k` must be non-zero.
///
/// # Safety
/// `dst` must be valid for writes at `i * dst_rs + j` for `i < m`, `j < n`, and not alias `a` or `b`; `a` and
/// `b` must hold every element the product reads (checked by assertions).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) {
    assert!(
        max_index(m, k, a.rs, a.cs) < a.data.len(),
        "sgemm: lhs too short"
    );
    assert!(
        max_index(k, n, b.rs, b.cs) < b.data.len(),
        "sgemm: rhs too short"
    );
    // SAFETY: forwarded from the caller (dst) and the assertions above (a, b).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Splits `0..n` into at most `parts` contiguous, nearly equal ranges.
pub(crate) fn split_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|p| (p * n / parts)..((p + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// A xorshift64 step: deterministic test data for the unit tests of the kernel builds.
#[cfg(test)]
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeros of the length asked for, below and above the size split across threads (with a piece shorter than
    /// the others at the end), for floats and bytes, also where the allocator hands back memory just written.
    #[test]
    fn par_zeroed_is_all_zeros() {
        for len in [0, 1, 1000, 65_535, 65_536, 65_536 + 7, 3 << 20] {
            drop(vec![7f32; len]);
            let v: Vec<f32> = par_zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x.to_bits() == 0), "f32 x {len}");
            drop(vec![7u8; len]);
            let b: Vec<u8> = par_zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0), "u8 x {len}");
        }
    }

    /// Every row length 0..131 (whole 8-float pieces and every tail) is copied and zeroed whole, and nothing
    /// beside the row is touched.
    #[test]
    fn short_rows_are_copied_and_zeroed_whole() {
        for len in 0..131usize {
            let src: Vec<f32> = (0..len).map(|i| i as f32 + 1.0).collect();
            let mut buf = vec![-7f32; len + 8];
            copy_row(&mut buf[3..3 + len], &src);
            assert_eq!(&buf[3..3 + len], &src[..], "copy_row, {len}");
            assert!(
                buf[..3].iter().chain(&buf[3 + len..]).all(|&v| v == -7.0),
                "copy_row beside, {len}"
            );
            zero_row(&mut buf[3..3 + len]);
            assert!(
                buf[3..3 + len].iter().all(|&v| v.to_bits() == 0),
                "zero_row, {len}"
            );
            assert!(
                buf[..3].iter().chain(&buf[3 + len..]).all(|&v| v == -7.0),
                "zero_row beside, {len}"
            );
        }
    }

    /// The prefetch reaches about 2 KB ahead, at least a plane; it takes any index (past the end: nothing) and any
    /// plane length (empty, shorter than a line, not a whole number of lines), and changes no data.
    #[test]
    fn prefetch_ahead_takes_any_plane_and_index() {
        let distance = |len: usize| prefetch_distance(&[&vec![0f32; len][..]]);
        assert_eq!(distance(0), 512);
        assert_eq!(distance(9), 56);
        assert_eq!(distance(225), 2);
        assert_eq!(distance(4096), 1);
        assert_eq!(prefetch_distance(&[]), 512);
        for len in [0usize, 1, 9, 16, 17, 225] {
            let data: Vec<f32> = (0..4 * len).map(|i| i as f32).collect();
            let planes: Vec<&[f32]> = data.chunks(len.max(1)).collect();
            for at in 0..planes.len() + 3 {
                prefetch_ahead(&planes, at);
            }
            prefetch_ahead(&[], 0);
            assert!(data.iter().enumerate().all(|(i, &v)| v == i as f32));
        }
    }
}
