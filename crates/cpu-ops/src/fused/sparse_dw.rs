//! The sparse weight gradient of the fused op in tiles that fit the L1 cache: the same sums as the sparse kernel's
//! (`sparse.rs`: each non-zero `g` at conv output `(co, h, w)` adds `g · xpad[h..h+3, w..w+3, ci]` to
//! `dW[co, 0..3, 0..3, ci]`), visited in an order whose input stays in L1 while every output channel streams past.
//!
//! The sparse kernel reads a whole padded image per output channel (74-104 KB at airbench94's conv -> pool layers,
//! more than a 32-48 KB L1), one load per multiply-add: it ran at a fifth to a tenth of the f32 GEMM's rate. Here
//! the padded image is copied as blocks of `CB` channels (`xb[block][(h+2)·(w+2)][CB]`), the conv output's rows are
//! cut into bands, and each (band, channel block) tile (at most [`TILE_BYTES`] of input) is visited by every
//! output channel in turn, whose `3·3·CB` sums stay in vector registers over the channel's non-zeros in the band.
//!
//! Where one band holds a whole image, a tile holds up to [`MAX_IMAGES`] images, so that each output channel's
//! sums are added into the thread's weight gradient (the size of the weights, beyond L2 at 256 -> 256) once per
//! few images. The non-zeros of a pass's images are listed once (per output channel, in row order, with each
//! band's start), which also gives the bias gradient. The weight gradient is kept as `[ci / CB][co][3·3][CB]`, so
//! that a tile's additions stay within one block's contiguous part, and reordered at the end.
//!
//! Measured against the sparse kernel's weight gradient (the `sparse` build called without its input gradient;
//! same data, 64 images, the two interleaved in one process, medians of 9, 2-vCPU Intel Xeon with AVX-512):
//! 1.1-1.9x faster at airbench94's three conv -> pool layers (docs/performance.md).

use rayon::prelude::*;

use super::BwdIo;
use crate::conv::{ConvDims, sum_partials};
use crate::util::{split_ranges, with_scratch_a};

/// Most bytes of padded input in one tile (a band of rows of one channel block): with the non-zero list and the
/// sums' flush, it stays within a 48 KB L1 data cache (32 KB on older cores keeps most of it: on a Zen 3, whose L1
/// is 32 KB, 16 KB and 64 KB tiles were both slower; docs/performance.md).
const TILE_BYTES: usize = 32 * 1024;

/// A pass's non-zeros, per output channel, by band, then by image, in conv-output row order: `(pixel, g)` with
/// `pixel = k·(h+2)·(w+2) + h·(w+2) + w` the top-left of the receptive field in the `k`-th image's padded plane;
/// `starts[co·(bands+1) + b]` the first of band `b`.
#[derive(Default)]
struct NonZeros {
    items: Vec<(u32, f32)>,
    starts: Vec<usize>,
}

/// How one call is cut: `cb` channels per block, `bands` bands of `rows` pooled rows (the last may be shorter),
/// `images` images per pass (several only where one band covers the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tiling {
    cb: usize,
    bands: usize,
    rows: usize,
    images: usize,
}

/// Most images per pass: each pass ends by adding every output channel's sums into the thread's weight gradient
/// (`co·9·ci` floats, 2.4 MB at 256 -> 256, beyond a core's L2), so small images are taken a few at a time.
const MAX_IMAGES: usize = 4;

impl Tiling {
    /// The cut for sizes `d` with `cb` channels per block: as few bands as keep a tile within [`TILE_BYTES`],
    /// their rows as even as can be; where one band holds the image, as many images as fit.
    fn new(d: &ConvDims, cb: usize) -> Self {
        let ho = (d.h / 2).max(1);
        let row_bytes = (d.w + 2) * cb * 4;
        // A band of `r` pooled rows reads 2r + 2 padded rows.
        let max_rows = (TILE_BYTES / row_bytes.max(1)).saturating_sub(2) / 2;
        let bands = ho.div_ceil(max_rows.max(1));
        let images = if bands == 1 {
            (TILE_BYTES / (row_bytes * (d.h + 2)).max(1)).clamp(1, MAX_IMAGES)
        } else {
            1
        };
        Self {
            cb,
            bands,
            rows: ho.div_ceil(bands),
            images,
        }
    }
}

/// The weight and bias gradients `(dW [co, ci, 3, 3], db [co])` of the fused op by the tiled kernel `kernel`
/// (see [`simd::pick`]).
pub(super) fn weight_grad(
    d: &ConvDims,
    io: &BwdIo<'_>,
    kernel: simd::Kernel,
) -> (Vec<f32>, Vec<f32>) {
    let t = Tiling::new(d, kernel.cb);
    let in_img = d.ci * d.hw();
    let plane = (d.h + 2) * (d.w + 2);
    let wlen = d.co * 9 * d.ci;
    let ranges = split_ranges(d.n, rayon::current_num_threads());
    let partials: Vec<(Vec<f32>, Vec<f32>)> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc_w = vec![0f32; wlen];
            let mut acc_b = vec![0f32; d.co];
            let mut nz = NonZeros::default();
            let span = plane * t.images; // one block's padded planes of a pass's images
            with_scratch_a(span * d.ci, |xb| {
                for first in r.clone().step_by(t.images) {
                    let imgs = first..(first + t.images).min(r.end);
                    list_nonzeros(d, io, imgs.clone(), t, &mut nz, &mut acc_b);
                    for (k, img) in imgs.enumerate() {
                        let x = &io.xs[img * in_img..][..in_img];
                        (kernel.pad)(x, d, t.cb, &mut xb[k * plane * t.cb..], span * t.cb);
                    }
                    for band in 0..t.bands {
                        for blk in 0..d.ci / t.cb {
                            let xblk = &xb[blk * span * t.cb..][..span * t.cb];
                            for co in 0..d.co {
                                let s = co * (t.bands + 1) + band;
                                let items = &nz.items[nz.starts[s]..nz.starts[s + 1]];
                                if items.is_empty() {
                                    continue;
                                }
                                let dw = &mut acc_w[(blk * d.co + co) * 9 * t.cb..][..9 * t.cb];
                                (kernel.run)(xblk, d.w + 2, items, dw);
                            }
                        }
                    }
                }
            });
            (acc_w, acc_b)
        })
        .collect();
    let (ws, bs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    let dw = from_blocks(&sum_partials(ws, wlen), d, t.cb);
    (dw, sum_partials(bs, d.co))
}

/// Lists the non-zero conv-output gradients of the images `imgs` (the `k`-th one's pixels `k·(h+2)·(w+2)` on)
/// into `nz`, adding each channel's sum to `db`.
fn list_nonzeros(
    d: &ConvDims,
    io: &BwdIo<'_>,
    imgs: std::ops::Range<usize>,
    t: Tiling,
    nz: &mut NonZeros,
    db: &mut [f32],
) {
    let (ho, wo, pw) = (d.h / 2, d.w / 2, d.w + 2);
    let (phw, plane) = (ho * wo, (d.h + 2) * pw);
    // A window's argmax `i` as an offset from its top-left pixel.
    let offset = [0, 1, pw, pw + 1];
    nz.items.clear();
    nz.items.reserve(d.co * imgs.len() * phw);
    nz.starts.clear();
    for (co, db) in db.iter_mut().enumerate().take(d.co) {
        let mut sum = 0f32;
        for band in 0..t.bands {
            nz.starts.push(nz.items.len());
            let rows = (band * t.rows).min(ho)..((band + 1) * t.rows).min(ho);
            for (k, img) in imgs.clone().enumerate() {
                let q = (img * d.co + co) * phw;
                let (gp, idx, pooled) = (
                    &io.gp[q..q + phw],
                    &io.idx[q..q + phw],
                    &io.pooled[q..q + phw],
                );
                for oh in rows.clone() {
                    let p = oh * wo..(oh + 1) * wo;
                    let row = gp[p.clone()].iter().zip(&idx[p.clone()]).zip(&pooled[p]);
                    // Below u32::MAX: `simd::pick` declines larger planes.
                    let mut pixel = (k * plane + 2 * oh * pw) as u32;
                    for ((&g, &i), &y) in row {
                        if (!io.relu || y > 0.0) && g != 0.0 {
                            nz.items
                                .push((pixel + offset[usize::from(i & 3)] as u32, g));
                            sum += g;
                        }
                        pixel += 2;
                    }
                }
            }
        }
        nz.starts.push(nz.items.len());
        *db += sum;
    }
}

/// The weight gradient's blocks `[ci / cb][co][3·3][cb]` as `[co, ci, 3, 3]`, an output channel a task.
fn from_blocks(blocks: &[f32], d: &ConvDims, cb: usize) -> Vec<f32> {
    let mut out = vec![0f32; d.co * d.ci * 9];
    if d.ci == 0 {
        return out;
    }
    out.par_chunks_mut(d.ci * 9)
        .enumerate()
        .for_each(|(co, row)| {
            for blk in 0..d.ci / cb {
                for t in 0..9 {
                    let src = &blocks[((blk * d.co + co) * 9 + t) * cb..][..cb];
                    for (j, &v) in src.iter().enumerate() {
                        row[(blk * cb + j) * 9 + t] = v;
                    }
                }
            }
        });
    out
}

/// One tile for one output channel: `dw[kh·3 + kw][0..CB] += Σ g · xblk[(pixel + kh·pw + kw)·CB + 0..CB]` over
/// `items`, the taps' rows `KH` at a time (3: all nine taps' sums in registers; 1: three at a time, for CPUs with
/// 16 vector registers). `dw` is one output channel's `[9][CB]` of one channel block.
#[inline(always)]
fn tile<const CB: usize, const KH: usize>(
    xblk: &[f32],
    pw: usize,
    items: &[(u32, f32)],
    dw: &mut [f32],
    fma: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    for kh0 in (0..3).step_by(KH) {
        let mut sums = [[[0f32; CB]; 3]; KH];
        // The rows `kh0..kh0 + KH` of a receptive field: one bounds check per non-zero.
        let span = ((KH - 1) * pw + 3) * CB;
        for &(pixel, g) in items {
            let start = (pixel as usize + kh0 * pw) * CB;
            let Some(x) = xblk.get(start..start + span) else {
                continue;
            };
            for (r, row) in sums.iter_mut().enumerate() {
                for (kw, s) in row.iter_mut().enumerate() {
                    let at = r * pw * CB + kw * CB;
                    // SAFETY: at + CB <= ((KH - 1)·pw + 3)·CB = x.len(), as r < KH and kw < 3.
                    let x = unsafe { x.get_unchecked(at..at + CB) };
                    for j in 0..CB {
                        s[j] = fma(g, x[j], s[j]);
                    }
                }
            }
        }
        for (r, row) in sums.iter().enumerate() {
            for (kw, s) in row.iter().enumerate() {
                let Some(dst) = dw
                    .get_mut((3 * (kh0 + r) + kw) * CB..)
                    .and_then(|d| d.first_chunk_mut::<CB>())
                else {
                    continue;
                };
                for (a, v) in dst.iter_mut().zip(s) {
                    *a += v;
                }
            }
        }
    }
}

/// The tiled kernel's builds: one per block width, each compiled for the CPU features found at run time.
pub(super) mod simd {
    use super::{ConvDims, MAX_IMAGES, tile};
    use crate::fused::layout::pad_blocked;

    /// One tile for one output channel: `(xblk, pw, items, dw)` (see [`tile`]).
    pub(in crate::fused) type TileFn = fn(&[f32], usize, &[(u32, f32)], &mut [f32]);

    /// The padded blocked copy of one image: `(x, d, cb, xb, stride)` (see [`pad_blocked`]).
    pub(in crate::fused) type PadFn = fn(&[f32], &ConvDims, usize, &mut [f32], usize);

    /// A build, the block width it was compiled for, and the padded copy for the same CPU features.
    #[derive(Clone, Copy)]
    pub(in crate::fused) struct Kernel {
        pub(in crate::fused) run: TileFn,
        pub(in crate::fused) cb: usize,
        pub(in crate::fused) pad: PadFn,
    }

    fn portable<const CB: usize>(x: &[f32], pw: usize, items: &[(u32, f32)], dw: &mut [f32]) {
        tile::<CB, 1>(x, pw, items, dw, |a, b, c| a * b + c);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    fn v4<const CB: usize>(x: &[f32], pw: usize, items: &[(u32, f32)], dw: &mut [f32]) {
        tile::<CB, 3>(x, pw, items, dw, f32::mul_add);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn v3<const CB: usize>(x: &[f32], pw: usize, items: &[(u32, f32)], dw: &mut [f32]) {
        tile::<CB, 1>(x, pw, items, dw, f32::mul_add);
    }

    /// [`pad_blocked`] by AVX transposes, for the AVX2 and AVX-512 builds.
    #[cfg(target_arch = "x86_64")]
    fn pad_avx(x: &[f32], d: &ConvDims, cb: usize, xb: &mut [f32], stride: usize) {
        // SAFETY: only the AVX2 and AVX-512 builds take this, picked where `Isa::detect` found those features.
        unsafe { crate::fused::layout::pad_blocked_avx(x, d, cb, xb, stride) }
    }

    /// The build with `CB` channels per block for `level`, capped at what this CPU runs.
    fn for_cb<const CB: usize>(level: crate::Isa) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            let level = level.min(crate::Isa::detect());
            if level >= crate::Isa::Avx512 {
                return Kernel {
                    // SAFETY: the CPU has the features `v4` is compiled for (`Isa::detect`, checked just above).
                    run: |x, pw, items, dw| unsafe { v4::<CB>(x, pw, items, dw) },
                    cb: CB,
                    pad: pad_avx,
                };
            }
            if level >= crate::Isa::Avx2 {
                return Kernel {
                    // SAFETY: the CPU has the features `v3` is compiled for (`Isa::detect`, checked just above).
                    run: |x, pw, items, dw| unsafe { v3::<CB>(x, pw, items, dw) },
                    cb: CB,
                    pad: pad_avx,
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = level;
        Kernel {
            run: portable::<CB>,
            cb: CB,
            pad: pad_blocked,
        }
    }

    /// The tiled kernel for sizes `d` at `level` (at most this CPU's), if there is one: for 16, 24 and
    /// multiples of 32 input channels, on images whose padded planes, [`MAX_IMAGES`] of them, have `u32` pixel
    /// indices.
    pub(in crate::fused) fn pick(d: &ConvDims, level: crate::Isa) -> Option<Kernel> {
        if (d.h + 2).saturating_mul(d.w + 2).saturating_mul(MAX_IMAGES) > u32::MAX as usize {
            return None;
        }
        match d.ci {
            16 => Some(for_cb::<16>(level)),
            24 => Some(for_cb::<24>(level)),
            c if c >= 32 && c.is_multiple_of(32) => Some(for_cb::<32>(level)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sparse::{simd as sparse_simd, sparse_backward};
    use super::*;
    use crate::util::xorshift;

    /// Random values in [-1, 1), a fifth of them zero (as the gradient of a ReLU'd window and a padded border
    /// have).
    fn vals(state: &mut u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| match xorshift(state) % 2001 {
                v if v % 5 == 0 => 0.0,
                v => v as f32 / 1000.0 - 1.0,
            })
            .collect()
    }

    /// Every build of the tiled weight gradient (AVX-512, AVX2, portable, as far as this CPU runs them) agrees
    /// with the sparse kernel's, with and without the ReLU's mask: one and several bands (with a shorter last one),
    /// one and several images per pass (with a shorter last pass), each block width, odd and rectangular sides.
    #[test]
    fn every_build_matches_the_sparse_kernel() {
        for (n, ci, co, h, w) in [
            (3, 16, 5, 9, 8),
            (2, 24, 6, 31, 31),
            (3, 64, 7, 15, 13),
            (5, 256, 4, 7, 7),
            (1, 32, 3, 3, 2),
        ] {
            let d = ConvDims { n, ci, co, h, w };
            let mut st = 0x1234_5678_9abc_def0u64 ^ (ci * h) as u64;
            let phw = (h / 2) * (w / 2);
            let xs = vals(&mut st, n * ci * h * w);
            let gp = vals(&mut st, n * co * phw);
            let pooled = vals(&mut st, n * co * phw);
            let idx: Vec<u8> = (0..n * co * phw)
                .map(|_| (xorshift(&mut st) % 4) as u8)
                .collect();
            let t = Tiling::new(&d, simd::pick(&d, crate::Isa::Baseline).map_or(0, |k| k.cb));
            for relu in [false, true] {
                let io = BwdIo {
                    xs: &xs,
                    w: &[],
                    pooled: &pooled,
                    relu,
                    gp: &gp,
                    idx: &idx,
                };
                let sparse =
                    sparse_simd::pick(ci, true).expect("a sparse kernel for these channels");
                let (_, want_w, want_b) = sparse_backward(&d, &io, sparse, false, true);
                assert!(want_w.iter().any(|&v| v != 0.0) && want_b.iter().any(|&v| v != 0.0));
                for level in [crate::Isa::Baseline, crate::Isa::Avx2, crate::Isa::Avx512] {
                    let k = simd::pick(&d, level).expect("a tiled kernel for these channels");
                    let (dw, db) = weight_grad(&d, &io, k);
                    for (part, got, want) in [("dW", &dw, &want_w), ("db", &db, &want_b)] {
                        assert_eq!(got.len(), want.len());
                        for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                            assert!(
                                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                                "{d:?} {t:?} relu={relu} {level:?} {part}[{i}]: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The cut: a tile within [`TILE_BYTES`] (or one pooled row where that is more), bands as even as can be, several images only where one band holds
    /// an image, and no kernel where there is no block width.
    #[test]
    fn tiles_fit_the_budget() {
        let d = |ci, h| ConvDims {
            n: 8,
            ci,
            co: 4,
            h,
            w: h,
        };
        assert_eq!(
            Tiling::new(&d(24, 31), 24),
            Tiling {
                cb: 24,
                bands: 4,
                rows: 4,
                images: 1
            }
        );
        assert_eq!(
            Tiling::new(&d(64, 15), 32),
            Tiling {
                cb: 32,
                bands: 2,
                rows: 4,
                images: 1
            }
        );
        assert_eq!(
            Tiling::new(&d(256, 7), 32),
            Tiling {
                cb: 32,
                bands: 1,
                rows: 3,
                images: 3
            }
        );
        for (ci, h) in [(24, 31), (64, 15), (256, 7), (32, 64)] {
            let t = Tiling::new(&d(ci, h), 32.min(ci));
            let band_rows = 2 * t.rows + 2;
            // A band of one pooled row is the least there is (wider images exceed the budget).
            let fits = band_rows * (h + 2) * t.cb * 4 * t.images <= TILE_BYTES;
            assert!(fits || t.rows == 1, "{ci} @{h}: {t:?}");
            assert!(
                t.bands * t.rows >= h / 2 && (t.bands - 1) * t.rows < h / 2,
                "{t:?}"
            );
        }
        assert!(simd::pick(&d(3, 8), crate::Isa::Avx512).is_none());
        assert!(simd::pick(&d(48, 8), crate::Isa::Avx512).is_none());
    }
}
