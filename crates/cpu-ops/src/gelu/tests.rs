//! The erf against an f64 series, the kernels against the scalar math (bit for bit where they promise it) and
//! every build against the baseline.

use super::*;

#[path = "../../tests/common/erf.rs"]
mod erf;
use erf::{erf64, gelu64};

fn gelu_grad64(z: f64) -> f64 {
    0.5 * (1.0 + erf64(z / std::f64::consts::SQRT_2))
        + z * (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

#[test]
fn erf64_reference_is_right() {
    // Tabulated values (Abramowitz & Stegun table 7.1 / high-precision sources).
    for (x, want) in [
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (3.0, 0.999_977_909_503_001_4),
    ] {
        assert!((erf64(x) - want).abs() < 1e-15, "erf({x})");
    }
}

/// The stated accuracy of the f32 erf: absolute error at most 1e-6 (measured: 4.6e-7, near 0 where
/// `1 - erfc` rounds; 1.5e-7 of it is A&S 7.1.26's own error) on a dense grid.
#[test]
#[allow(non_snake_case)]
fn erf_error_is_below_1e_6() {
    let mut worst = (0f64, 0f64);
    for i in -80_000..=80_000 {
        let x = i as f32 * 1e-4;
        let e = (math::erf(x) as f64 - erf64(x as f64)).abs();
        if e > worst.0 {
            worst = (e, x as f64);
        }
    }
    assert!(
        worst.0 <= 1e-6,
        "max |erf error| = {:e} at {}",
        worst.0,
        worst.1
    );
    assert!(
        worst.0 <= 5e-7,
        "erf error grew: {:e} at {}",
        worst.0,
        worst.1
    );
}

#[test]
fn exp_neg_is_accurate() {
    for i in 0..=80_000 {
        let x = -(i as f32) * 1e-3;
        let (a, b) = (math::exp_neg(x) as f64, (x as f64).exp());
        assert!((a - b).abs() <= 3e-7 * b, "exp({x}) = {a} vs {b}");
    }
}

#[test]
fn gelu_and_its_gradient_match_f64() {
    let (mut worst_y, mut worst_g) = (0f64, 0f64);
    for i in -12_000..=12_000 {
        let z = i as f32 * 1e-3;
        let y = math::gelu(z) as f64;
        let g = math::gelu_grad(z) as f64;
        let z64 = z as f64;
        worst_y = worst_y.max((y - gelu64(z64)).abs() / z64.abs().max(1.0));
        worst_g = worst_g.max((g - gelu_grad64(z64)).abs());
    }
    assert!(worst_y < 5e-7, "gelu error {worst_y:e}");
    assert!(worst_g < 1e-6, "gelu' error {worst_g:e}");
    assert!(math::gelu(f32::NAN).is_nan() && math::gelu_grad(f32::NAN).is_nan());
    assert_eq!(math::gelu(f32::INFINITY), f32::INFINITY);
    assert_eq!(math::gelu(-100.0), 0.0);
    assert_eq!(math::gelu_grad(100.0), 1.0);
}

/// The channel kernels against plain per-element loops, bit for bit, at plane sizes around the block size: the
/// elementwise results are the scalar math's, and every f64 sum adds element `p` of a plane to lane `p % 8` in
/// order (what the kernels promise, so a change of blocking cannot move a seeded run).
#[test]
fn channel_kernels_keep_the_scalar_bits_and_the_lane_order() {
    fn lanes(xs: &[&[f32]], f: impl Fn(usize, usize) -> f64) -> f64 {
        let mut l = [0f64; 8];
        for (i, x) in xs.iter().enumerate() {
            for p in 0..x.len() {
                l[p % 8] += f(i, p);
            }
        }
        l.iter().sum()
    }
    let nm = Norm::new(0.1, 1.3, -0.2);
    let mut builds = vec![BASELINE];
    builds.extend(avx512());
    builds.extend(avx2());
    for hw in [1usize, 7, 8, 9, 15, 16, 17, 31, 49, 225] {
        let n = 5;
        let mut st = 0x9e37_79b9u64 + hw as u64;
        // Magnitudes over 2^-30..2^30, so that the f64 sums round and their order shows in the bits.
        let mut vals = || -> Vec<f32> {
            (0..n * hw)
                .map(|_| {
                    let r = crate::util::xorshift(&mut st);
                    let e = (r >> 40) % 61;
                    ((r % 20001) as f32 / 5000.0 - 2.0) * 2f32.powi(e as i32 - 30)
                })
                .collect()
        };
        let (x, dy) = (vals(), vals());
        let xs: Vec<&[f32]> = x.chunks(hw).collect();
        let dys: Vec<&[f32]> = dy.chunks(hw).collect();
        let sum = lanes(&xs, |i, p| xs[i][p] as f64);
        let sq = lanes(&xs, |i, p| (xs[i][p] as f64 - 0.1).powi(2));
        let y: Vec<f32> = x
            .iter()
            .map(|&v| math::gelu(nm.xhat(v) + nm.bias))
            .collect();
        let g: Vec<f32> = x
            .iter()
            .zip(&dy)
            .map(|(&v, &d)| {
                let z = nm.xhat(v) + nm.bias;
                let (cdf, pdf) = math::cdf_pdf(z);
                d * (cdf + z * pdf)
            })
            .collect();
        let sg = lanes(&xs, |i, p| g[i * hw + p] as f64);
        let sgx = lanes(&xs, |i, p| (g[i * hw + p] * nm.xhat(xs[i][p])) as f64);
        for k in &builds {
            assert_eq!(
                (k.chan_sum)(&xs).to_bits(),
                sum.to_bits(),
                "chan_sum, planes of {hw}"
            );
            assert_eq!(
                (k.chan_sq_dev)(&xs, 0.1).to_bits(),
                sq.to_bits(),
                "chan_sq_dev, {hw}"
            );
            let mut got = vec![0f32; x.len()];
            {
                let mut ys: Vec<&mut [f32]> = got.chunks_mut(hw).collect();
                (k.chan_fwd)(&xs, &mut ys, nm);
            }
            assert!(
                got.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
                "chan_fwd, {hw}"
            );
            let mut got = vec![0f32; x.len()];
            let sums = {
                let mut gs: Vec<&mut [f32]> = got.chunks_mut(hw).collect();
                (k.chan_bwd_sums)(&xs, &dys, &mut gs, nm)
            };
            assert!(
                got.iter().zip(&g).all(|(a, b)| a.to_bits() == b.to_bits()),
                "g, {hw}"
            );
            assert_eq!(sums.0.to_bits(), sg.to_bits(), "Σ g, planes of {hw}");
            assert_eq!(sums.1.to_bits(), sgx.to_bits(), "Σ g·x̂, planes of {hw}");
        }
    }
}

/// Every build the dispatch can pick gives the same results as the baseline build (to a few ulp: the
/// compiler may order nothing differently, but the f64 sums are split into lanes identically).
#[test]
fn every_build_of_the_kernels_agrees() {
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut vals = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| ((crate::util::xorshift(&mut state) % 20001) as f32 / 10000.0 - 1.0) * scale)
            .collect()
    };
    // Three planes of an odd size (remainder lanes) for the channel kernels.
    let hw = 31;
    let x = vals(3 * hw, 4.0);
    let dy = vals(3 * hw, 1.0);
    let xs: Vec<&[f32]> = x.chunks(hw).collect();
    let dys: Vec<&[f32]> = dy.chunks(hw).collect();
    type Outs = (Vec<f32>, Vec<f32>, f64, f64, Vec<f32>, (f64, f64), Vec<f32>);
    let nm = Norm::new(0.1, 1.3, -0.2);
    let run = |k: Kernels| -> Outs {
        let mut y = vec![0f32; x.len()];
        (k.gelu_fwd)(&x, &mut y);
        let mut dx = vec![0f32; x.len()];
        (k.gelu_bwd)(&x, &dy, &mut dx);
        let s = (k.chan_sum)(&xs);
        let q = (k.chan_sq_dev)(&xs, 0.1);
        let mut yc = vec![0f32; x.len()];
        {
            let mut ys: Vec<&mut [f32]> = yc.chunks_mut(hw).collect();
            (k.chan_fwd)(&xs, &mut ys, nm);
        }
        let mut gc = vec![0f32; x.len()];
        let sums;
        {
            let mut gs: Vec<&mut [f32]> = gc.chunks_mut(hw).collect();
            sums = (k.chan_bwd_sums)(&xs, &dys, &mut gs, nm);
            (k.chan_bwd_dx)(&xs, &mut gs, nm, 0.05, -0.03);
        }
        (y, dx, s, q, yc, sums, gc)
    };
    let base = run(BASELINE);
    // The baseline against the scalar math.
    for (i, &v) in x.iter().enumerate() {
        assert_eq!(base.0[i], math::gelu(v));
        assert_eq!(base.1[i], dy[i] * math::gelu_grad(v));
        assert_eq!(base.4[i], math::gelu(nm.xhat(v) - 0.2));
        assert!(((nm.xhat(v) as f64) - (v as f64 - 0.1) * 1.3).abs() < 1e-6);
    }
    let sum64: f64 = x.iter().map(|&v| v as f64).sum();
    assert!((base.2 - sum64).abs() < 1e-12);
    let mut builds = vec![("dispatched", kernels())];
    builds.extend(avx512().map(|k| ("avx512", k)));
    builds.extend(avx2().map(|k| ("avx2", k)));
    for (name, k) in builds {
        let got = run(k);
        let close = |a: &[f32], b: &[f32], what: &str| {
            for (p, q) in a.iter().zip(b) {
                assert!(
                    (p - q).abs() <= 1e-6 * (1.0 + q.abs()),
                    "{name} {what}: {p} vs {q}"
                );
            }
        };
        close(&got.0, &base.0, "gelu_fwd");
        close(&got.1, &base.1, "gelu_bwd");
        close(&got.4, &base.4, "chan_fwd");
        close(&got.6, &base.6, "chan_bwd");
        for (p, q, what) in [
            (got.2, base.2, "chan_sum"),
            (got.3, base.3, "chan_sq_dev"),
            (got.5.0, base.5.0, "sum g"),
            (got.5.1, base.5.1, "sum g·x̂"),
        ] {
            assert!(
                (p - q).abs() <= 1e-9 * (1.0 + q.abs()),
                "{name} {what}: {p} vs {q}"
            );
        }
    }
}
