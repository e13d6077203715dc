//! The sparse backward of the fused op: only the conv outputs that the pool and the ReLU pass a gradient to are
//! visited, against channels-last copies of the input and weights; one kernel per supported channel count,
//! compiled for the CPU features found at run time.

use rayon::prelude::*;

use super::{BwdIo, dx_parts};
use crate::conv::{ConvDims, sum_partials};
use crate::util::{split_ranges, with_scratch_a, with_scratch_b};

/// The sparse backward. After the pool and the ReLU, the conv output's gradient is non-zero only at each
/// window's argmax, and only where the pooled output is positive: at most a quarter of the positions. So instead
/// of scattering it into a dense plane and running dense GEMMs over it, each non-zero `g` at conv output
/// `(co, h, w)` adds, for the three kernel rows `kh`:
///
/// * `dW[co, kh, 0..3, 0..ci] += g · xpad[h+kh, w..w+3, 0..ci]` (the input's padded, channels-last copy, in
///   which a kernel row's receptive field is one contiguous run of `3·ci` floats), and
/// * `dxpad[h+kh, w..w+3, 0..ci] += g · W[co, kh, 0..3, 0..ci]` (weights in the same layout),
///
/// plus `db[co] += g`. The padding takes the borders without a bounds check; the run length is a compile-time
/// constant, so a kernel row's `dW` sums and weights stay in vector registers while the channel's non-zeros
/// stream past. `dW` comes out as `[co, kh, kw, ci]` and is permuted to candle's `[co, ci, kh, kw]` once;
/// `dxpad`'s interior is the input gradient.
///
/// Returns `(dx, dW [co, ci, 3, 3], db)`; `dx` only when `want_dx`.
pub(super) fn sparse_backward(
    d: &ConvDims,
    io: &BwdIo<'_>,
    kernel: simd::Kernel,
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (hw, phw) = (d.hw(), (d.h / 2) * (d.w / 2));
    let (in_img, p_img) = (d.ci * hw, d.co * phw);
    let klen = 9 * d.ci; // one output channel's weights
    let pad_len = (d.h + 2) * (d.w + 2) * d.ci;
    let ranges = split_ranges(d.n, rayon::current_num_threads());
    let mut dx = crate::util::par_zeroed::<f32>(if want_dx { d.n * in_img } else { 0 });
    let parts = dx_parts(&mut dx, &ranges, in_img, want_dx);
    let wcl = if want_dx {
        to_channels_last_weights(io.w, d.co, d.ci)
    } else {
        Vec::new()
    };
    let wlen = if want_dw { d.co * klen } else { 0 };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = ranges
        .into_par_iter()
        .zip(parts)
        .map(|(r, dx_part)| {
            let mut acc_w = vec![0f32; wlen];
            let mut acc_b = vec![0f32; d.co];
            let mut nz = Vec::with_capacity(phw);
            for (pos, img) in r.enumerate() {
                with_scratch_a(pad_len, |xpad| {
                    with_scratch_b(if want_dx { pad_len } else { 0 }, |dxpad| {
                        pad_channels_last(&io.xs[img * in_img..][..in_img], d, xpad);
                        dxpad.fill(0.0);
                        let pr = img * p_img..(img + 1) * p_img;
                        let img_io = ImageIo {
                            gp: &io.gp[pr.clone()],
                            idx: &io.idx[pr.clone()],
                            pooled: &io.pooled[pr],
                            relu: io.relu,
                            xpad,
                            wcl: &wcl,
                        };
                        let acc = ImageAcc {
                            dw: &mut acc_w,
                            db: &mut acc_b,
                            dxpad,
                            nz: &mut nz,
                        };
                        kernel(d, &img_io, acc, want_dx, want_dw);
                        if want_dx {
                            unpad_channels_last(dxpad, d, &mut dx_part[pos * in_img..][..in_img]);
                        }
                    })
                });
            }
            (acc_w, acc_b)
        })
        .collect();
    let (ws, bs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    let dw = if want_dw {
        from_channels_last_weights(&sum_partials(ws, wlen), d.co, d.ci)
    } else {
        Vec::new()
    };
    (want_dx.then_some(dx), dw, sum_partials(bs, d.co))
}

/// One image's read-only inputs to the sparse kernel.
pub(crate) struct ImageIo<'a> {
    gp: &'a [f32],
    idx: &'a [u8],
    pooled: &'a [f32],
    /// Whether the op applied a ReLU (then only positive pooled outputs pass a gradient).
    relu: bool,
    xpad: &'a [f32],
    wcl: &'a [f32],
}

/// One image's outputs: per-thread `dW` ([co, kh, kw, ci]) and `db` sums, the image's padded input gradient, and
/// a scratch list for one channel's non-zeros.
pub(crate) struct ImageAcc<'a> {
    dw: &'a mut [f32],
    db: &'a mut [f32],
    dxpad: &'a mut [f32],
    nz: &'a mut Vec<(usize, f32)>,
}

/// The per-image sparse kernel (see [`sparse_backward`]) for `ROW = 3·ci`, its weight gradient `CH` floats at a
/// time (`ROW` a multiple of `CH`); `fma` is `a·b + c`.
#[inline(always)]
fn sparse_image<const ROW: usize, const CH: usize>(
    d: &ConvDims,
    io: &ImageIo<'_>,
    acc: ImageAcc<'_>,
    want_dx: bool,
    want_dw: bool,
    fma: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    let (ho, wo) = (d.h / 2, d.w / 2);
    let phw = ho * wo;
    let pw = d.w + 2;
    let nz = acc.nz;
    for co in 0..d.co {
        let q = co * phw..(co + 1) * phw;
        let (gp, idx, pooled) = (&io.gp[q.clone()], &io.idx[q.clone()], &io.pooled[q]);
        nz.clear();
        let mut db = 0f32;
        for oh in 0..ho {
            for ow in 0..wo {
                let p = oh * wo + ow;
                let g = gp[p];
                if (!io.relu || pooled[p] > 0.0) && g != 0.0 {
                    let i = idx[p];
                    let (h, w) = (2 * oh + (i >> 1) as usize, 2 * ow + (i & 1) as usize);
                    nz.push(((h * pw + w) * d.ci, g));
                    db += g;
                }
            }
        }
        acc.db[co] += db;
        for kh in 0..3 {
            let off = kh * pw * d.ci;
            let seg = (co * 3 + kh) * ROW;
            if want_dw {
                // CH sums at a time, held in registers while the non-zeros stream past (a whole row of sums
                // would live on the stack: a load and a store per multiply-add).
                for c0 in (0..ROW).step_by(CH) {
                    let mut sums = [0f32; CH];
                    for &(base, g) in nz.iter() {
                        let Some(x) = io
                            .xpad
                            .get(base + off + c0..)
                            .and_then(|s| s.first_chunk::<CH>())
                        else {
                            continue;
                        };
                        for j in 0..CH {
                            sums[j] = fma(g, x[j], sums[j]);
                        }
                    }
                    if let Some(dst) = acc.dw.get_mut(seg + c0..seg + c0 + CH) {
                        for (a, v) in dst.iter_mut().zip(sums) {
                            *a += v;
                        }
                    }
                }
            }
            if want_dx {
                let Some(wrow) = io.wcl.get(seg..).and_then(|s| s.first_chunk::<ROW>()) else {
                    continue;
                };
                for &(base, g) in nz.iter() {
                    let Some(dx) = acc
                        .dxpad
                        .get_mut(base + off..)
                        .and_then(|s| s.first_chunk_mut::<ROW>())
                    else {
                        continue;
                    };
                    for j in 0..ROW {
                        dx[j] = fma(g, wrow[j], dx[j]);
                    }
                }
            }
        }
    }
}

/// Sparse kernel variants: one per supported channel count, each compiled for the CPU features found at run
/// time (AVX-512, AVX2 + FMA, or portable).
pub(in crate::fused) mod simd {
    use super::{ConvDims, ImageAcc, ImageIo, sparse_image};

    /// Weight-gradient sums held in registers at a time by the AVX2 (and portable) build: 12 of the 16 vector
    /// registers, enough independent multiply-adds to cover the FMA latency, with room left for the input loads.
    const SUMS: usize = 96;
    /// The same for the AVX-512 build: 12 of its 32 registers.
    const SUMS_512: usize = 192;

    pub(in crate::fused) type Kernel = fn(&ConvDims, &ImageIo<'_>, ImageAcc<'_>, bool, bool);

    fn portable<const ROW: usize, const CH: usize>(
        d: &ConvDims,
        io: &ImageIo<'_>,
        acc: ImageAcc<'_>,
        dx: bool,
        dw: bool,
    ) {
        sparse_image::<ROW, CH>(d, io, acc, dx, dw, |a, b, c| a * b + c);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    fn v4<const ROW: usize, const CH: usize>(
        d: &ConvDims,
        io: &ImageIo<'_>,
        acc: ImageAcc<'_>,
        dx: bool,
        dw: bool,
    ) {
        sparse_image::<ROW, CH>(d, io, acc, dx, dw, f32::mul_add);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn v3<const ROW: usize, const CH: usize>(
        d: &ConvDims,
        io: &ImageIo<'_>,
        acc: ImageAcc<'_>,
        dx: bool,
        dw: bool,
    ) {
        sparse_image::<ROW, CH>(d, io, acc, dx, dw, f32::mul_add);
    }

    /// The build for this CPU of the kernel for `ROW`, summing `CH` (AVX2, portable) or `CH_512` (AVX-512) floats
    /// of the weight gradient at a time; both divide `ROW`.
    fn for_row<const ROW: usize, const CH: usize, const CH_512: usize>() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::Isa::detect() >= crate::Isa::Avx512 {
                // SAFETY: the CPU has the features `v4` is compiled for (checked just above).
                return |d, io, acc, dx, dw| unsafe { v4::<ROW, CH_512>(d, io, acc, dx, dw) };
            }
            if crate::Isa::detect() >= crate::Isa::Avx2 {
                // SAFETY: the CPU has the features `v3` is compiled for (checked just above).
                return |d, io, acc, dx, dw| unsafe { v3::<ROW, CH>(d, io, acc, dx, dw) };
            }
        }
        portable::<ROW, CH>
    }

    /// The sparse kernel for `ci` input channels, if there is one (else the dense backward runs).
    pub(in crate::fused) fn pick(ci: usize, sparse: bool) -> Option<Kernel> {
        if !sparse {
            return None;
        }
        if [3, 16, 24, 32, 64, 128, 256].contains(&ci) {
            crate::isa::record_detected(crate::KernelFamily::SparseBackward);
        }
        match ci {
            3 => Some(for_row::<9, 9, 9>()),
            16 => Some(for_row::<48, 48, 48>()),
            24 => Some(for_row::<72, 72, 72>()),
            32 => Some(for_row::<96, SUMS, 96>()),
            64 => Some(for_row::<192, SUMS, SUMS_512>()),
            128 => Some(for_row::<384, SUMS, SUMS_512>()),
            256 => Some(for_row::<768, SUMS, SUMS_512>()),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::{ConvDims, ImageAcc, ImageIo};
        use super::*;

        /// Runs one kernel build on one image; returns (dW, db, dxpad).
        fn run(k: Kernel, d: &ConvDims, io: &ImageIo<'_>, pad_len: usize) -> [Vec<f32>; 3] {
            let (mut dw, mut db, mut dxpad) = (
                vec![0f32; d.co * 9 * d.ci],
                vec![0f32; d.co],
                vec![0f32; pad_len],
            );
            let mut nz = Vec::new();
            let acc = ImageAcc {
                dw: &mut dw,
                db: &mut db,
                dxpad: &mut dxpad,
                nz: &mut nz,
            };
            k(d, io, acc, true, true);
            [dw, db, dxpad]
        }

        /// The builds the run-time dispatch can pick (AVX-512, AVX2+FMA, baseline), their weight gradient in
        /// chunks of [`SUMS`] or [`SUMS_512`], agree with the portable build summing whole rows at once, on the CPUs that have
        /// them, so the ones this machine never dispatches to are still exercised.
        #[test]
        fn every_build_of_the_sparse_kernel_agrees() {
            const CI: usize = 128;
            const {
                assert!(3 * CI > SUMS_512 && (3 * CI).is_multiple_of(SUMS_512));
                assert!(SUMS_512.is_multiple_of(SUMS));
            };
            let d = ConvDims {
                n: 1,
                ci: CI,
                co: 5,
                h: 6,
                w: 8,
            };
            let (phw, pad_len) = ((d.h / 2) * (d.w / 2), (d.h + 2) * (d.w + 2) * CI);
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut vals = |len: usize| -> Vec<f32> {
                (0..len)
                    .map(|_| (crate::util::xorshift(&mut state) % 2001) as f32 / 1000.0 - 1.0)
                    .collect()
            };
            let (gp, pooled, wcl) = (vals(d.co * phw), vals(d.co * phw), vals(d.co * 9 * CI));
            let mut xpad = vals(pad_len);
            // Some zeros among the inputs, as a padded image's border has.
            xpad.iter_mut().step_by(7).for_each(|v| *v = 0.0);
            let idx: Vec<u8> = (0..d.co * phw).map(|i| (i * 7 % 4) as u8).collect();
            for relu in [true, false] {
                let io = ImageIo {
                    gp: &gp,
                    idx: &idx,
                    pooled: &pooled,
                    relu,
                    xpad: &xpad,
                    wcl: &wcl,
                };
                let base = run(portable::<{ 3 * CI }, { 3 * CI }>, &d, &io, pad_len);
                assert!(base[0].iter().any(|&v| v != 0.0) && base[2].iter().any(|&v| v != 0.0));
                // Without x86-64 nothing is added below.
                #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
                let mut builds: Vec<(&str, Kernel)> = vec![
                    ("dispatched", for_row::<{ 3 * CI }, SUMS, SUMS_512>()),
                    ("portable", portable::<{ 3 * CI }, SUMS>),
                    ("portable, AVX-512 chunks", portable::<{ 3 * CI }, SUMS_512>),
                ];
                #[cfg(target_arch = "x86_64")]
                {
                    if crate::Isa::detect() >= crate::Isa::Avx2 {
                        // SAFETY: the CPU has the features `v3` is compiled for (checked just above).
                        builds.push(("avx2", |d, io, acc, dx, dw| unsafe {
                            v3::<{ 3 * CI }, SUMS>(d, io, acc, dx, dw)
                        }));
                    }
                    if crate::Isa::detect() >= crate::Isa::Avx512 {
                        // SAFETY: the CPU has the features `v4` is compiled for (checked just above).
                        builds.push(("avx512", |d, io, acc, dx, dw| unsafe {
                            v4::<{ 3 * CI }, SUMS_512>(d, io, acc, dx, dw)
                        }));
                    }
                }
                for (name, k) in builds {
                    let got = run(k, &d, &io, pad_len);
                    for (part, (a, b)) in ["dW", "db", "dx"].iter().zip(got.iter().zip(&base)) {
                        for (x, y) in a.iter().zip(b) {
                            // FMA against separate multiply-add: a few ulps apart.
                            assert!(
                                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                                "{name} relu={relu} {part}: {x} vs {y}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Copies one image `x[ci, h, w]` into `xpad[(h+2), (w+2), ci]` with a zero border.
fn pad_channels_last(x: &[f32], d: &ConvDims, xpad: &mut [f32]) {
    pad_blocked(x, d, d.ci, xpad, 0);
}

/// Copies one image `x[ci, h, w]` into the blocks `xb[(ci / cb)·stride..][(h+2)·(w+2)][cb]` with a zero border
/// (`cb = ci`: one channels-last padded image). [`pad_blocked_avx`] is the same copy by 8x8 transposes.
pub(super) fn pad_blocked(x: &[f32], d: &ConvDims, cb: usize, xb: &mut [f32], stride: usize) {
    pad_blocked_by::<false>(x, d, cb, xb, stride);
}

/// [`pad_blocked`] with each group's runs of eight pixels (running on across rows) of eight channels moved as one
/// 8x8 transpose in AVX registers (8 loads, 24 shuffles, 8 stores) instead of 64 scalar loads.
///
/// # Safety
/// AVX present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(super) unsafe fn pad_blocked_avx(
    x: &[f32],
    d: &ConvDims,
    cb: usize,
    xb: &mut [f32],
    stride: usize,
) {
    pad_blocked_by::<true>(x, d, cb, xb, stride);
}

/// [`pad_blocked`]'s body; `AVX`: the eight-channel groups by [`group8_avx`] (only inlined into
/// [`pad_blocked_avx`]).
#[inline(always)]
fn pad_blocked_by<const AVX: bool>(
    x: &[f32],
    d: &ConvDims,
    cb: usize,
    xb: &mut [f32],
    stride: usize,
) {
    let (pw, plane) = (d.w + 2, (d.h + 2) * (d.w + 2));
    for blk in 0..d.ci / cb {
        let dst = &mut xb[blk * stride..][..plane * cb];
        // The border only: the interior is overwritten below.
        let row = pw * cb;
        dst[..row].fill(0.0);
        dst[(d.h + 1) * row..][..row].fill(0.0);
        for h in 1..=d.h {
            dst[h * row..][..cb].fill(0.0);
            dst[h * row + (pw - 1) * cb..][..cb].fill(0.0);
        }
        // Eight channels at a time: each pixel's eight values gathered from eight planes and written as one
        // 32-byte piece, instead of one store per value `cb` floats apart (a scalar scatter that swept the whole
        // block once per channel).
        let mut c = 0;
        while c + 8 <= cb {
            let planes: [&[f32]; 8] =
                std::array::from_fn(|k| &x[(blk * cb + c + k) * d.hw()..][..d.hw()]);
            // SAFETY: AVX is present (only `pad_blocked_avx` inlines this with `AVX`).
            #[cfg(target_arch = "x86_64")]
            let done = if AVX {
                unsafe { group8_avx(&planes, d, cb, c, dst) }
            } else {
                0
            };
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            for p in done..d.hw() {
                let (h, w) = (p / d.w, p % d.w);
                let v = planes.map(|plane| plane[p]);
                dst[((h + 1) * pw + 1 + w) * cb + c..][..8].copy_from_slice(&v);
            }
            c += 8;
        }
        for c in c..cb {
            let src = &x[(blk * cb + c) * d.hw()..][..d.hw()];
            for (h, src) in src.chunks_exact(d.w.max(1)).enumerate() {
                let out = &mut dst[((h + 1) * pw + 1) * cb + c..];
                for (w, &v) in src.iter().enumerate() {
                    out[w * cb] = v;
                }
            }
        }
    }
}

/// An eight-channel group's interior: pixel `p = h·w + q` of the planes `planes` (channels `c..c + 8` of one
/// image, each `h·w` long) to `dst[((h + 1)·(w + 2) + 1 + q)·cb + c..][..8]`, eight pixels at a time (running on
/// across rows) by an 8x8 transpose. Returns how many pixels it wrote (`h·w` rounded down to a multiple of 8); the
/// caller writes the rest.
///
/// # Safety
/// AVX present. The lengths: each plane `h·w`, `dst` at least `(h + 2)·(w + 2)·cb`, `c + 8 <= cb` (checked: a
/// shorter slice panics).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn group8_avx(
    planes: &[&[f32]; 8],
    d: &ConvDims,
    cb: usize,
    c: usize,
    dst: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    let (hw, pw) = (d.hw(), d.w + 2);
    assert!(
        planes.iter().all(|p| p.len() >= hw) && c + 8 <= cb && dst.len() >= (d.h + 2) * pw * cb
    );
    let whole = hw - hw % 8;
    // Where the next pixel goes: `at` its first float in `dst`, `q` its column.
    let (mut at, mut q) = ((pw + 1) * cb + c, 0);
    for p0 in (0..whole).step_by(8) {
        // SAFETY: AVX (the caller's contract); p0 + 8 <= whole <= each plane's length. Each store is pixel
        // p = h·w + q's, at ((h + 1)·pw + 1 + q)·cb + c: its end <= ((h + 1)·pw + w)·cb + cb <= (h + 2)·pw·cb <=
        // dst.len(), as q < w and h < d.h (all checked above).
        unsafe {
            let ld = |k: usize| _mm256_loadu_ps(planes[k].as_ptr().add(p0));
            let (r0, r1, r2, r3) = (ld(0), ld(1), ld(2), ld(3));
            let (r4, r5, r6, r7) = (ld(4), ld(5), ld(6), ld(7));
            // Pairs of channels interleaved, then quads: u[j] holds pixels j (low half) and j + 4 (high half)
            // of channels 0-3, v[j] the same of channels 4-7.
            let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
            let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
            let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
            let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
            let u = [
                _mm256_shuffle_ps::<0x44>(t0, t2),
                _mm256_shuffle_ps::<0xEE>(t0, t2),
                _mm256_shuffle_ps::<0x44>(t1, t3),
                _mm256_shuffle_ps::<0xEE>(t1, t3),
            ];
            let v = [
                _mm256_shuffle_ps::<0x44>(t4, t6),
                _mm256_shuffle_ps::<0xEE>(t4, t6),
                _mm256_shuffle_ps::<0x44>(t5, t7),
                _mm256_shuffle_ps::<0xEE>(t5, t7),
            ];
            let px = [
                _mm256_permute2f128_ps::<0x20>(u[0], v[0]),
                _mm256_permute2f128_ps::<0x20>(u[1], v[1]),
                _mm256_permute2f128_ps::<0x20>(u[2], v[2]),
                _mm256_permute2f128_ps::<0x20>(u[3], v[3]),
                _mm256_permute2f128_ps::<0x31>(u[0], v[0]),
                _mm256_permute2f128_ps::<0x31>(u[1], v[1]),
                _mm256_permute2f128_ps::<0x31>(u[2], v[2]),
                _mm256_permute2f128_ps::<0x31>(u[3], v[3]),
            ];
            let o = dst.as_mut_ptr();
            for v in px {
                _mm256_storeu_ps(o.add(at), v);
                at += cb;
                q += 1;
                if q == d.w {
                    // Over the right border and the next row's left one.
                    (at, q) = (at + 2 * cb, 0);
                }
            }
        }
    }
    whole
}

/// The interior of `xpad[(h+2), (w+2), ci]` back into `x[ci, h, w]`.
fn unpad_channels_last(xpad: &[f32], d: &ConvDims, x: &mut [f32]) {
    let (ci, pw) = (d.ci, d.w + 2);
    for c in 0..ci {
        let plane = &mut x[c * d.hw()..(c + 1) * d.hw()];
        for (h, dst) in plane.chunks_exact_mut(d.w.max(1)).enumerate() {
            let src = &xpad[((h + 1) * pw + 1) * ci + c..];
            for (w, v) in dst.iter_mut().enumerate() {
                *v = src[w * ci];
            }
        }
    }
}

/// `w[co, ci, kh, kw]` -> `[co, kh, kw, ci]`.
fn to_channels_last_weights(w: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let mut out = vec![0f32; co * ci * 9];
    for o in 0..co {
        for c in 0..ci {
            for t in 0..9 {
                out[(o * 9 + t) * ci + c] = w[(o * ci + c) * 9 + t];
            }
        }
    }
    out
}

/// `[co, kh, kw, ci]` -> `w[co, ci, kh, kw]`.
fn from_channels_last_weights(wcl: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let mut out = vec![0f32; co * ci * 9];
    for o in 0..co {
        for c in 0..ci {
            for t in 0..9 {
                out[(o * ci + c) * 9 + t] = wcl[(o * 9 + t) * ci + c];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The padded copy over a buffer of stale values: the border zero, the interior the image (channels last), and
    /// back again; odd and rectangular sides.
    #[test]
    fn padded_copy_zeroes_the_border_and_round_trips() {
        for (ci, h, w) in [(3, 4, 5), (16, 7, 7), (2, 1, 6), (13, 3, 5), (24, 2, 3)] {
            let d = ConvDims {
                n: 1,
                ci,
                co: 1,
                h,
                w,
            };
            let x: Vec<f32> = (0..ci * h * w).map(|i| i as f32 + 1.0).collect();
            let mut xpad = vec![f32::NAN; (h + 2) * (w + 2) * ci];
            pad_channels_last(&x, &d, &mut xpad);
            for r in 0..h + 2 {
                for q in 0..w + 2 {
                    for c in 0..ci {
                        let got = xpad[(r * (w + 2) + q) * ci + c];
                        let inside = (1..=h).contains(&r) && (1..=w).contains(&q);
                        let want = if inside {
                            x[c * h * w + (r - 1) * w + q - 1]
                        } else {
                            0.0
                        };
                        assert_eq!(got, want, "{ci}x{h}x{w} at ({r}, {q}, {c})");
                    }
                }
            }
            let mut back = vec![0f32; x.len()];
            unpad_channels_last(&xpad, &d, &mut back);
            assert_eq!(back, x);
        }
    }

    /// Blocks of `cb` channels `stride` floats apart (as the tiled weight gradient lays them out): each block the
    /// padded channels-last copy of its channels, the gap after each block untouched; by the scalar copy and, where
    /// the CPU has AVX, the transposing one (planes of whole eight-pixel runs or with a remainder, runs crossing
    /// rows, planes shorter than one run; blocks with a remainder of channels).
    #[test]
    fn blocked_copy_puts_each_block_in_place() {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut builds: Vec<(&str, crate::fused::sparse_dw::simd::PadFn)> =
            vec![("scalar", pad_blocked)];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx") {
            builds.push(("avx", |x, d, cb, xb, stride| {
                // SAFETY: AVX detected just above.
                unsafe { pad_blocked_avx(x, d, cb, xb, stride) }
            }));
        }
        let shapes = [
            (48, 16, 3, 5),
            (48, 24, 7, 7),
            (64, 32, 1, 2),
            (64, 32, 4, 16),
            (48, 24, 3, 17),
            (26, 13, 2, 9),
            (16, 16, 2, 8),
        ];
        for (name, pad) in builds {
            for (ci, cb, h, w) in shapes {
                let d = ConvDims {
                    n: 1,
                    ci,
                    co: 1,
                    h,
                    w,
                };
                let plane = (h + 2) * (w + 2);
                let stride = plane * cb + 5;
                let x: Vec<f32> = (0..ci * h * w).map(|i| i as f32 + 1.0).collect();
                let mut xb = vec![f32::NAN; stride * (ci / cb)];
                pad(&x, &d, cb, &mut xb, stride);
                for blk in 0..ci / cb {
                    for r in 0..h + 2 {
                        for q in 0..w + 2 {
                            for j in 0..cb {
                                let got = xb[blk * stride + (r * (w + 2) + q) * cb + j];
                                let inside = (1..=h).contains(&r) && (1..=w).contains(&q);
                                let c = blk * cb + j;
                                let want = if inside {
                                    x[c * h * w + (r - 1) * w + q - 1]
                                } else {
                                    0.0
                                };
                                assert_eq!(
                                    got, want,
                                    "{name} {ci}/{cb} {h}x{w} at ({r}, {q}, {c})"
                                );
                            }
                        }
                    }
                    assert!(
                        xb[blk * stride + plane * cb..][..5]
                            .iter()
                            .all(|v| v.is_nan())
                    );
                }
            }
        }
    }
}
