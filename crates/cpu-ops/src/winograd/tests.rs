//! Unit tests of F(2x2, 3x3) and F(4x4, 3x3) against the direct convolution.

use super::*;
use crate::conv::conv_group as direct_group;
use crate::util::xorshift;

fn randv(state: &mut u64, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| (xorshift(state) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// The direct im2col GEMM's group matrix (f32): what the Winograd paths are compared with.
fn reference(d: &ConvDims, x: Images<'_>, g: usize, wt: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut want = vec![0f32; d.co * g * d.h * d.w];
    direct_group(
        d,
        x,
        g,
        &ConvLhs::new(wt, d.co, d.ci * 9, crate::Precision::F32),
        bias,
        &mut want,
    );
    want
}

/// Runs `run` on a group matrix of `len` floats followed by NaN sentinels, checks the sentinels are untouched
/// (the SIMD stores must not cross the matrix's end) and returns the matrix.
fn guarded(len: usize, what: &str, run: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let mut got = vec![f32::NAN; len + 16];
    run(&mut got[..len]);
    assert!(
        got[len..].iter().all(|v| v.is_nan()),
        "{what} wrote past dst"
    );
    got.truncate(len);
    got
}

/// Winograd against the direct im2col GEMM (f32), group matrices compared, at even, odd, square and
/// rectangular sizes, with and without bias, one and several images per group.
#[test]
fn matches_the_direct_convolution() {
    let mut s = 5u64;
    for &(g, ci, co, h, w) in &[
        (1, 3, 2, 4, 4),
        (2, 5, 7, 7, 7),
        (3, 4, 3, 15, 15),
        (1, 6, 5, 5, 8),
        (2, 2, 3, 6, 9),
        (1, 1, 1, 1, 1),
        (2, 3, 4, 2, 3),
        (2, 3, 2, 16, 16),
        (1, 2, 2, 17, 3),
    ] {
        let d = ConvDims { n: g, ci, co, h, w };
        let x = randv(&mut s, g * ci * h * w);
        let wt = randv(&mut s, co * ci * 9);
        let b = randv(&mut s, co);
        let every = [Transforms::Portable, Transforms::Avx2, Transforms::Avx512];
        let runs = every
            .into_iter()
            .filter(|t| t.fits(w))
            .flat_map(|t| [(None, t), (Some(b.as_slice()), t)]);
        for (bias, t) in runs {
            let xs = Images::nchw(&x, ci, h * w);
            let want = reference(&d, xs, g, &wt, bias);
            let wts = Weights::new(&wt, co, ci, crate::Precision::F32, Tile::F2);
            let got = guarded(want.len(), &format!("{t:?}"), |dst| {
                conv_group_with(&d, xs, g, &wts, bias, dst, t)
            });
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()) * (ci as f32).sqrt(),
                    "g {g} ci {ci} co {co} {h}x{w} {t:?} bias {}: [{i}] {a} vs {b}",
                    bias.is_some()
                );
            }
        }
    }
}

/// F(4x4, 3x3) against the direct im2col GEMM (f32): sizes that leave 1 to 3 outputs of the last tile row and
/// column, one tile per image, groups whose tile count is not a multiple of the 8-tile vectors, with and
/// without bias; sentinels past the group matrix. Its error bound is F(4x4)'s (see `f4`): relative to the
/// output's scale, not rounding alone.
#[test]
fn f4_matches_the_direct_convolution() {
    if !f4_runs_here() {
        eprintln!("skipped: F(4x4, 3x3) needs AVX2");
        return;
    }
    let mut s = 9u64;
    let mut worst = 0f32;
    for &(g, ci, co, h, w) in &[
        (1, 3, 2, 4, 4),
        (2, 5, 7, 7, 7),
        (3, 4, 3, 15, 15),
        (1, 6, 5, 5, 8),
        (2, 2, 3, 6, 9),
        (1, 1, 1, 1, 1),
        (5, 3, 4, 3, 3),
        (9, 2, 3, 3, 2),
        (2, 3, 2, 16, 16),
        (1, 2, 2, 17, 31),
        (2, 64, 9, 15, 15),
        (3, 256, 5, 7, 7),
    ] {
        let d = ConvDims { n: g, ci, co, h, w };
        let x = randv(&mut s, g * ci * h * w);
        let wt = randv(&mut s, co * ci * 9);
        let b = randv(&mut s, co);
        for bias in [None, Some(b.as_slice())] {
            let xs = Images::nchw(&x, ci, h * w);
            let want = reference(&d, xs, g, &wt, bias);
            let wts = Weights::new(&wt, co, ci, crate::Precision::F32, Tile::F4);
            let got = guarded(want.len(), "F4", |dst| {
                conv_group(&d, xs, g, &wts, bias, dst)
            });
            // Inputs and weights in [-1, 1]: outputs of scale sqrt(9·ci).
            let scale = (9.0 * ci as f32).sqrt();
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                let err = (a - b).abs() / scale;
                worst = worst.max(err);
                assert!(
                    err <= 1e-5,
                    "g {g} ci {ci} co {co} {h}x{w} bias {}: [{i}] {a} vs {b}",
                    bias.is_some()
                );
            }
        }
    }
    eprintln!("F(4x4, 3x3): worst error {worst:e} of the output scale");
}

/// F(4x4, 3x3) with bf16 GEMMs: the input transform that writes the kernel's packed pairs (`f4::packed`) gives
/// the same bits as the f32 transform followed by the kernel's own packing, at an odd channel count (the last
/// paired with zeros), more than one depth block (over 256 channels), a last panel of fewer than 32 tiles, more
/// than one column block (over 512 tiles) and one tile per image; sentinels past the group matrix.
#[test]
fn f4_packed_bf16_input_matches_the_kernels_packing() {
    if !(f4_runs_here() && crate::bf16_supported()) {
        eprintln!("skipped: needs AVX2 and AVX512-BF16");
        return;
    }
    let mut s = 13u64;
    for &(g, ci, co, h, w) in &[
        (1, 3, 2, 4, 4),
        (2, 5, 7, 7, 7),
        (3, 64, 13, 15, 15),
        (5, 300, 4, 3, 3),
        (9, 24, 12, 32, 32),
        (1, 2, 2, 17, 31),
    ] {
        let d = ConvDims { n: g, ci, co, h, w };
        let x = randv(&mut s, g * ci * h * w);
        let wt = randv(&mut s, co * ci * 9);
        let b = randv(&mut s, co);
        let xs = Planes::Dense(Images::nchw(&x, ci, h * w));
        let wts = Weights::new(&wt, co, ci, crate::Precision::Bf16, Tile::F4);
        let len = co * g * h * w;
        let run = |packed: bool| {
            guarded(len, "F4 bf16", |dst| {
                f4::conv_group_via(&d, xs, g, &wts, Some(&b), f4::Output::Planes(dst), packed)
            })
        };
        let (want, got) = (run(false), run(true));
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                a.to_bits() == b.to_bits(),
                "g {g} ci {ci} co {co} {h}x{w}: [{i}] packed {a} vs {b}"
            );
        }
    }
}

/// F(4x4, 3x3) pooling in its output transform (`conv_group_pool`) gives the bits of its group matrix pooled plane
/// by plane (`pool::pool_plane_kernel`): values and argmaxes, with and without the ReLU and the bias, in f32 and
/// (where the CPU has it) bf16, at even and odd sides (the last row and column dropped), rectangular planes, planes
/// smaller than a tile, one and several images, and pooled planes that end inside a tile; ties (zero weights: every
/// output the bias) keep the first, as the plane pool does. Sentinels past the pooled output.
#[test]
fn f4_pooling_output_transform_matches_the_plane_pool() {
    if !f4_runs_here() {
        eprintln!("skipped: F(4x4, 3x3) needs AVX2");
        return;
    }
    let pool_plane = crate::pool::pool_plane_kernel();
    let mut precisions = vec![crate::Precision::F32];
    if crate::bf16_supported() {
        precisions.push(crate::Precision::Bf16);
    }
    let mut s = 17u64;
    for &(g, ci, co, h, w) in &[
        (1, 3, 2, 4, 4),
        (2, 5, 7, 7, 7),
        (3, 24, 9, 31, 31),
        (2, 16, 5, 15, 15),
        (4, 32, 3, 3, 3),
        (1, 2, 2, 17, 30),
        (3, 4, 3, 2, 2),
        (2, 3, 4, 1, 5),
        (9, 8, 16, 8, 8),
    ] {
        let d = ConvDims { n: g, ci, co, h, w };
        let x = randv(&mut s, g * ci * h * w);
        let wt = randv(&mut s, co * ci * 9);
        let bias = randv(&mut s, co);
        let xs = Images::nchw(&x, ci, h * w);
        let (ho, wo) = (h / 2, w / 2);
        let len = g * co * ho * wo;
        let zeros = vec![0f32; wt.len()];
        // Zero weights: every output is the bias (or zero), so every window ties.
        for (&prec, wt) in precisions.iter().flat_map(|p| [(p, &wt), (p, &zeros)]) {
            let wts = Weights::new(wt, co, ci, prec, Tile::F4);
            for relu in [false, true] {
                for b in [None, Some(bias.as_slice())] {
                    let mut planes = vec![0f32; co * g * h * w];
                    conv_group(&d, xs, g, &wts, b, &mut planes);
                    let (mut want, mut want_i) = (vec![0f32; len], vec![0u8; len]);
                    for j in 0..g {
                        for c in 0..co {
                            let at = (j * co + c) * ho * wo;
                            pool_plane(
                                &planes[(c * g + j) * h * w..][..h * w],
                                h,
                                w,
                                relu,
                                &mut want[at..at + ho * wo],
                                &mut want_i[at..at + ho * wo],
                            );
                        }
                    }
                    let mut got = vec![f32::NAN; len + 16];
                    let mut got_i = vec![9u8; len + 16];
                    let done = conv_group_pool(
                        &d,
                        xs,
                        g,
                        &wts,
                        b,
                        relu,
                        &mut got[..len],
                        &mut got_i[..len],
                    );
                    assert!(done, "F(4x4) weights pool in their output transform");
                    let what = format!(
                        "{prec:?} g {g} ci {ci} co {co} {h}x{w} relu {relu} bias {}",
                        b.is_some()
                    );
                    assert!(
                        got[len..].iter().all(|v| v.is_nan())
                            && got_i[len..].iter().all(|&v| v == 9),
                        "{what}: wrote past the pooled output"
                    );
                    for i in 0..len {
                        assert!(
                            got[i].to_bits() == want[i].to_bits() && got_i[i] == want_i[i],
                            "{what}: [{i}] {} ({}) vs {} ({})",
                            got[i],
                            got_i[i],
                            want[i],
                            want_i[i]
                        );
                    }
                }
            }
        }
    }
}

/// The F(4x4, 3x3) weight gradient against the im2col one (f32), at sizes that leave partial tiles, one tile
/// per image, groups of several images and several groups per thread.
#[test]
fn f4_weight_grad_matches_the_direct_one() {
    if !f4_runs_here() {
        eprintln!("skipped: F(4x4, 3x3) needs AVX2");
        return;
    }
    let mut s = 11u64;
    let mut worst = 0f32;
    for &(n, ci, co, h, w) in &[
        (1, 3, 2, 4, 4),
        (3, 5, 7, 7, 7),
        (2, 4, 3, 15, 15),
        (2, 6, 5, 5, 8),
        (1, 1, 1, 1, 1),
        (7, 3, 4, 3, 3),
        (1, 2, 2, 17, 31),
        (70, 16, 9, 7, 7),
        (600, 2, 3, 3, 3),
        (4, 64, 24, 15, 15),
    ] {
        let d = ConvDims { n, ci, co, h, w };
        let x = randv(&mut s, n * ci * h * w);
        let gy = randv(&mut s, n * co * h * w);
        let want = crate::conv::conv_weight_grad_grouped(crate::Precision::F32, &d, &x, &gy, 1);
        let got = f4::weight_grad(crate::Precision::F32, &d, &x, &gy);
        assert_eq!(got.len(), want.len());
        // Sums of n·h·w products of values in [-1, 1].
        let scale = ((n * h * w) as f32).sqrt();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let err = (a - b).abs() / scale;
            worst = worst.max(err);
            assert!(
                err <= 2e-5,
                "n {n} ci {ci} co {co} {h}x{w}: [{i}] {a} vs {b}"
            );
        }
    }
    eprintln!("F(4x4, 3x3) weight gradient: worst error {worst:e} of the scale");
}

/// The transformed matrices of the airbench94 and cnn-dnn layers (channels 16 to 512, full groups of tiles) start in
/// distinct sets of a 64-set L1 of 64-byte lines (where addresses 4 KiB apart share a set): what [`XI_PAD`] is
/// for. Unpadded, every one of these shapes puts all 16 or 36 starts in one or two sets.
#[test]
fn transformed_matrices_start_in_distinct_cache_sets() {
    let set = |floats: usize| (floats * 4 / 64) % 64;
    let distinct = |n: usize, stride: usize| {
        let mut sets: Vec<usize> = (0..n).map(|xi| set(xi * stride)).collect();
        sets.sort_unstable();
        sets.dedup();
        sets.len()
    };
    for rows in [16, 32, 64, 128, 256, 512] {
        let grp = Group {
            g: 1,
            h: 15,
            w: 15,
            p: COLS,
        };
        assert_eq!(distinct(16, grp.xi_stride(rows)), 16, "F(2x2), {rows} rows");
        assert!(
            distinct(16, rows * COLS) <= 2,
            "F(2x2) unpadded, {rows} rows"
        );
        for p in [COLS_F4, COLS_F4_DEEP, COLS_F4_DEEP_BF16] {
            // The bf16 GEMMs' packed operands (words, the size of floats) as well.
            #[cfg(target_arch = "x86_64")]
            assert_eq!(
                distinct(36, f4::packed_xi_stride(rows, p)),
                36,
                "F(4x4) packed, {rows} rows, {p} tiles"
            );
            let stride = f4::xi_stride(rows, p);
            // 36 matrices over 64 sets: at most ⌈36/64⌉ = 1 start per set.
            assert_eq!(distinct(36, stride), 36, "F(4x4), {rows} rows, {p} tiles");
            assert!(
                distinct(36, stride - XI_PAD) <= 2,
                "F(4x4) unpadded, {rows} rows"
            );
        }
    }
}
