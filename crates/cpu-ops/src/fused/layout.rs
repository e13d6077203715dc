//! The layout copies of the sparse backward and the tiled weight gradient: an image into zero-padded,
//! channels-last blocks (scalar, and by AVX transposes) and back, and the weights to and from channels last.

use crate::conv::ConvDims;

/// Copies one image `x[ci, h, w]` into `xpad[(h+2), (w+2), ci]` with a zero border.
pub(super) fn pad_channels_last(x: &[f32], d: &ConvDims, xpad: &mut [f32]) {
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
pub(super) fn unpad_channels_last(xpad: &[f32], d: &ConvDims, x: &mut [f32]) {
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
pub(super) fn to_channels_last_weights(w: &[f32], co: usize, ci: usize) -> Vec<f32> {
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
pub(super) fn from_channels_last_weights(wcl: &[f32], co: usize, ci: usize) -> Vec<f32> {
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
