//! Statistics of a few runs: mean, sample standard deviation, range, Student-t confidence intervals (exact
//! t-quantiles, fractional degrees of freedom for Welch), and the difference of two configurations (Welch's, or
//! paired by seed).

use serde::{Deserialize, Serialize};

/// The confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// Summary of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); None for n = 1.
    pub std: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// The 95% confidence interval of the mean, `mean ± t(0.975, n−1) · std / √n`; None for n = 1.
    pub ci95: Option<(f64, f64)>,
}

/// Summarises `xs` (None when empty or when a value is not finite).
///
/// ```
/// let s = cifar10_sweep::stats::summarize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!(s.mean, 2.5);
/// assert!((s.std.unwrap() - 1.2909944).abs() < 1e-6);
/// ```
pub fn summarize(xs: &[f64]) -> Option<Summary> {
    if xs.is_empty() || xs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (std, ci95) = if n >= 2 {
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = var.sqrt();
        let half = t_quantile(0.5 + CONFIDENCE / 2.0, (n - 1) as f64) * std / (n as f64).sqrt();
        (Some(std), Some((mean - half, mean + half)))
    } else {
        (None, None)
    };
    Some(Summary {
        n,
        mean,
        std,
        min,
        max,
        ci95,
    })
}

/// How a difference was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Welch's unequal-variance t-interval on two independent samples.
    Welch,
    /// The t-interval of the per-seed differences (both configurations ran the same seeds).
    Paired,
}

/// The difference `b − a` of two configurations' means, with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// Welch or paired.
    pub method: Method,
    /// Runs of `a` and `b` (paired: both are the number of pairs).
    pub n_a: usize,
    /// Runs of `b`.
    pub n_b: usize,
    /// `mean(b) − mean(a)`.
    pub estimate: f64,
    /// Its standard error.
    pub std_error: f64,
    /// Degrees of freedom of the t-distribution used (Welch–Satterthwaite for Welch: fractional).
    pub df: f64,
    /// The 95% confidence interval of the difference.
    pub ci95: (f64, f64),
}

/// Welch's difference `mean(b) − mean(a)`; None unless both samples have at least two values (a zero
/// variance on both sides gives a zero-width interval).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Difference> {
    let (sa, sb) = (summarize(a)?, summarize(b)?);
    let (va, vb) = (sa.std?.powi(2) / sa.n as f64, sb.std?.powi(2) / sb.n as f64);
    let se2 = va + vb;
    let estimate = sb.mean - sa.mean;
    let (df, half) = if se2 == 0.0 {
        ((sa.n + sb.n - 2) as f64, 0.0)
    } else {
        let df = se2 * se2 / (va * va / (sa.n - 1) as f64 + vb * vb / (sb.n - 1) as f64);
        (df, t_quantile(0.5 + CONFIDENCE / 2.0, df) * se2.sqrt())
    };
    Some(Difference {
        method: Method::Welch,
        n_a: sa.n,
        n_b: sb.n,
        estimate,
        std_error: se2.sqrt(),
        df,
        ci95: (estimate - half, estimate + half),
    })
}

/// The paired difference over `(a, b)` pairs (the same seed under two configurations): the t-interval of
/// `b − a`; None with fewer than two pairs.
pub fn paired(pairs: &[(f64, f64)]) -> Option<Difference> {
    let d: Vec<f64> = pairs.iter().map(|(a, b)| b - a).collect();
    let s = summarize(&d)?;
    let std = s.std?;
    let (lo, hi) = s.ci95?;
    Some(Difference {
        method: Method::Paired,
        n_a: s.n,
        n_b: s.n,
        estimate: s.mean,
        std_error: std / (s.n as f64).sqrt(),
        df: (s.n - 1) as f64,
        ci95: (lo, hi),
    })
}

/// Runs per configuration needed to tell apart two means `delta` apart, when each run's spread is `std`: the
/// usual two-sample approximation `n = 2 (z₀.₉₇₅ + z₀.₈)² σ² / δ²` (95% confidence, 80% power), rounded up.
///
/// ```
/// // A 0.2-point difference with a 0.25-point run-to-run spread needs about 25 seeds each.
/// assert_eq!(cifar10_sweep::stats::seeds_needed(0.2, 0.25), Some(25));
/// ```
pub fn seeds_needed(delta: f64, std: f64) -> Option<usize> {
    if !(delta.is_finite() && std.is_finite() && delta > 0.0 && std >= 0.0) {
        return None;
    }
    let z = 1.959_963_984_540_054 + 0.841_621_233_572_914_2;
    Some((2.0 * z * z * std * std / (delta * delta)).ceil().max(2.0) as usize)
}

/// The `p`-quantile of Student's t-distribution with `df` degrees of freedom (fractional allowed), found by
/// bisection on the exact distribution function (regularised incomplete beta). `p` in (0, 1), `df > 0`;
/// otherwise NaN.
///
/// ```
/// let t = cifar10_sweep::stats::t_quantile(0.975, 4.0);
/// assert!((t - 2.776445).abs() < 1e-5);
/// ```
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && df > 0.0 && df.is_finite()) {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let mut hi = 1.0;
    while t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Student's t distribution function.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * incomplete_beta(x, df / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The regularised incomplete beta function I_x(a, b) (continued fraction, Numerical Recipes' `betai`).
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Two-sided 95% critical values from a printed t-table.
    #[test]
    fn t_quantiles_match_the_table() {
        for (df, want) in [
            (1.0, 12.706_204_736),
            (2.0, 4.302_652_730),
            (3.0, 3.182_446_305),
            (4.0, 2.776_445_105),
            (5.0, 2.570_581_836),
            (9.0, 2.262_157_163),
            (19.0, 2.093_024_054),
            (30.0, 2.042_272_456),
            (100.0, 1.983_971_519),
            (1e7, 1.959_964_2),
        ] {
            let t = t_quantile(0.975, df);
            assert!(
                close(t, want, 1e-6 * want.max(1.0)),
                "df {df}: {t} vs {want}"
            );
        }
        // Other levels and the lower tail.
        assert!(close(t_quantile(0.95, 10.0), 1.812_461_123, 1e-7));
        assert!(close(t_quantile(0.025, 4.0), -2.776_445_105, 1e-7));
        assert_eq!(t_quantile(0.5, 3.0), 0.0);
        assert!(t_quantile(1.0, 3.0).is_nan() && t_quantile(0.9, 0.0).is_nan());
        // A fractional df lies between its neighbours.
        let t = t_quantile(0.975, 4.5);
        assert!(t < t_quantile(0.975, 4.0) && t > t_quantile(0.975, 5.0));
        // Cauchy (df = 1) has a closed form: tan(π (p − ½)).
        let p: f64 = 0.9;
        assert!(close(
            t_quantile(p, 1.0),
            (std::f64::consts::PI * (p - 0.5)).tan(),
            1e-9
        ));
    }

    /// Values worked by hand: mean 90.5 of {90, 91, 90.5, 89.5, 91.5}; deviations −0.5, 0.5, 0, −1, 1 give
    /// squares summing to 2.5, variance 2.5/4 = 0.625, std 0.790569; half-width 2.776445 · 0.790569 / √5 =
    /// 0.981622.
    #[test]
    fn summary_by_hand() {
        let s = summarize(&[90.0, 91.0, 90.5, 89.5, 91.5]).unwrap();
        assert_eq!(s.n, 5);
        assert!(close(s.mean, 90.5, 1e-12));
        assert!(close(s.std.unwrap(), 0.790_569_415, 1e-9));
        assert_eq!((s.min, s.max), (89.5, 91.5));
        let (lo, hi) = s.ci95.unwrap();
        assert!(close(hi - 90.5, 0.981_622, 1e-6), "{hi}");
        assert!(close(90.5 - lo, 0.981_622, 1e-6), "{lo}");
        let one = summarize(&[3.0]).unwrap();
        assert_eq!((one.n, one.mean, one.std, one.ci95), (1, 3.0, None, None));
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }

    /// a = {1, 2, 3}: mean 2, var 1; b = {2, 4, 6, 8}: mean 5, var 20/3. se² = 1/3 + 5/3 = 2, df =
    /// 4 / ((1/3)²/2 + (5/3)²/3) = 4 / (1/18 + 25/27) = 4.0755; t(0.975, 4.0755) = 2.756285 (mpmath's incomplete beta, solved
    /// for the quantile), half-width 2.756285 · √2 = 3.897975.
    #[test]
    fn welch_by_hand() {
        let d = welch(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0, 8.0]).unwrap();
        assert_eq!(d.method, Method::Welch);
        assert!(close(d.estimate, 3.0, 1e-12));
        assert!(close(d.std_error, 2f64.sqrt(), 1e-12));
        assert!(close(d.df, 4.0 / (1.0 / 18.0 + 25.0 / 27.0), 1e-12));
        assert!(close(d.df, 4.075_471_7, 1e-6));
        let half = d.ci95.1 - d.estimate;
        assert!(close(half / 2f64.sqrt(), t_quantile(0.975, d.df), 1e-12));
        assert!(close(half, 3.897_975, 1e-5), "{half}");
        assert!(welch(&[1.0], &[1.0, 2.0]).is_none());
        // No spread on either side: a zero-width interval, not NaN.
        let z = welch(&[1.0, 1.0], &[2.0, 2.0]).unwrap();
        assert_eq!(z.ci95, (1.0, 1.0));
    }

    /// Pairs (90, 91), (91, 91.5), (89, 90.5): differences 1, 0.5, 1.5; mean 1, sample std 0.5, half-width
    /// 4.302653 · 0.5 / √3 = 1.242069.
    #[test]
    fn paired_by_hand() {
        let d = paired(&[(90.0, 91.0), (91.0, 91.5), (89.0, 90.5)]).unwrap();
        assert_eq!(d.method, Method::Paired);
        assert_eq!((d.n_a, d.n_b, d.df), (3, 3, 2.0));
        assert!(close(d.estimate, 1.0, 1e-12));
        assert!(close(d.ci95.0, 1.0 - 1.242_069, 1e-6), "{:?}", d.ci95);
        assert!(close(d.ci95.1, 1.0 + 1.242_069, 1e-6), "{:?}", d.ci95);
        assert!(paired(&[(1.0, 2.0)]).is_none());
    }

    #[test]
    fn seeds_needed_by_hand() {
        // 2 · (1.959964 + 0.841621)² = 15.6978; σ = δ gives 16 runs each.
        assert_eq!(seeds_needed(1.0, 1.0), Some(16));
        assert_eq!(seeds_needed(0.1, 0.3), Some(142));
        assert_eq!(seeds_needed(0.0, 1.0), None);
    }
}
