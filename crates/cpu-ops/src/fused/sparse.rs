//! The sparse backward of the fused op: only the conv outputs that the pool and the ReLU pass a gradient to are
//! visited, against channels-last copies of the input and weights; one kernel per supported channel count,
//! compiled for the CPU features found at run time.

use rayon::prelude::*;

use super::layout::{
    from_channels_last_weights, pad_channels_last, to_channels_last_weights, unpad_channels_last,
};
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
