//! The f64 erf and GELU that the kernels are checked against: shared by the integration tests (`common`) and
//! `gelu`'s unit tests (through `#[path]`), so the reference is written once.

/// erf in f64 from `erf(x) = 2/√π · e^{-x²} · Σ_n x·(2x²)ⁿ / (1·3·…·(2n+1))` (all terms positive, so no
/// cancellation: about 1e-15 relative).
pub fn erf64(x: f64) -> f64 {
    if x < 0.0 {
        return -erf64(-x);
    }
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term > 1e-17 * sum {
        n += 1.0;
        term *= 2.0 * x * x / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
}

/// Exact GELU in f64.
pub fn gelu64(z: f64) -> f64 {
    0.5 * z * (1.0 + erf64(z / std::f64::consts::SQRT_2))
}
