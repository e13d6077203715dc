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
                            assert_eq!(g, init[i * (n + 3) + j], "padding written at {m}x{n}x{k}");
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
