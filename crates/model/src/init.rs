//! PyTorch's default initialisation, drawn from a seeded Rust RNG (candle's CPU RNG cannot be seeded).
//!
//! `nn.Conv2d` and `nn.Linear` initialise weights with `kaiming_uniform_(a = sqrt(5))` and biases uniform in
//! `±1/sqrt(fan_in)`; both come to uniform in `±1/sqrt(fan_in)`, with `fan_in = in_channels * kh * kw` for a
//! convolution and `in_features` for a linear layer.

use crate::Result;
use candle_core::{Device, Shape, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A variable of `shape` with values uniform in `[-bound, bound)`.
pub fn uniform(
    shape: impl Into<Shape>,
    bound: f64,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Var> {
    let shape = shape.into();
    let bound = bound as f32;
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    Ok(Var::from_vec(data, shape, device)?)
}

/// PyTorch's bound for a layer with `fan_in` inputs per output.
pub fn torch_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in as f64).sqrt()
}
