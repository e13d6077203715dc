//! The same functions built from candle's stock ops: the fallback for non-CPU / non-f32
//! tensors, and the reference the tests and benchmarks compare against.
//!
//! Note: candle 0.11.1's own `max_pool2d` backward scales the gradient of a window by
//! (number of maxima)/4 (a unique maximum gets a quarter of the gradient), unlike PyTorch and
//! unlike this crate's CPU op; [`max_pool2x2`] here is candle's op unchanged (what the stock ops
//! run), and [`max_pool2x2_reduce`] is the pool with PyTorch's gradient that every other
//! fallback (CUDA, non-f32 tensors) runs.

use candle_core::{Result, Tensor};

/// `conv2d(x, w, padding 1) + b` with candle's ops.
pub fn conv3x3(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let co = w.dim(0)?;
    x.conv2d(w, 1, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, co, 1, 1))?)
}

/// candle's `max_pool2d(2)`.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    x.max_pool2d(2)
}

/// 2x2 max-pool, stride 2, with PyTorch's gradient (`MaxPool2d(2)`: the whole gradient to the window's maximum),
/// from candle's ops on any device: two `max` reductions of `[N, C, H/2, 2, W/2, 2]`, over the window's columns
/// and then its rows, whose backward passes the gradient to the maximum unscaled ([`max_pool2x2`], candle's own
/// op, gives a unique maximum a quarter of it). Odd sizes drop the last row/column, as the CPU op does. Where
/// elements of one window tie for the maximum each gets the gradient (PyTorch's gives it to one); after a ReLU such
/// ties are zeros whose gradient the ReLU stops.
pub fn max_pool2x2_reduce(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?
    } else {
        x.clone()
    };
    x.reshape((n, c, ho, 2, wo, 2))?.max(5)?.max(3)
}

/// `relu(x + b)` with candle's ops.
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.broadcast_add(b)?.relu()
}

/// `max_pool2d(relu(conv3x3(x, w) + b), 2)` with candle's ops.
pub fn conv3x3_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    conv3x3(x, w, b)?.relu()?.max_pool2d(2)
}

/// `conv2d(x, w, padding 1)` (no bias) with candle's ops.
pub fn conv3x3_nobias(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.conv2d(w, 1, 1, 1, 1)
}

/// `gelu(conv2d(x, w) + b)` with a 2x2 kernel, no padding, with candle's ops. See [`crate::patch_conv_gelu`].
pub fn patch_conv_gelu(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let co = b.dim(0)?;
    x.conv2d(w, 0, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, co, 1, 1))?)?
        .gelu_erf()
}

/// `scale · max_hw(x) · wᵀ` with candle's ops. See [`crate::global_max_linear`].
pub fn global_max_linear(x: &Tensor, w: &Tensor, scale: f64) -> Result<Tensor> {
    let h = x
        .flatten_from(2)?
        .max_keepdim(candle_core::D::Minus1)?
        .flatten_from(1)?;
    h.matmul(&w.t()?)? * scale
}

/// Exact (erf) GELU: candle's `gelu_erf`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// Training-mode BatchNorm (no weight) + bias + exact GELU with candle's ops: returns `(y, batch mean [C],
/// unbiased batch variance [C])`, the statistics detached. See [`crate::batch_norm_gelu_train`].
pub fn batch_norm_gelu_train(
    x: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (n, c, h, w) = x.dims4()?;
    let m = (n * h * w) as f64;
    let mean = x.mean_keepdim((0, 2, 3))?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim((0, 2, 3))?;
    let z = xc
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_add(&bias.reshape((1, c, 1, 1))?)?;
    let y = z.gelu_erf()?;
    let var_unbiased = (var.detach() * (m / (m - 1.0)))?.reshape(c)?;
    Ok((y, mean.detach().reshape(c)?, var_unbiased))
}

/// Evaluation-mode BatchNorm (no weight) + bias + exact GELU with candle's ops, from given statistics.
pub fn batch_norm_gelu_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let c = x.dim(1)?;
    let shape = (1, c, 1, 1);
    x.broadcast_sub(&mean.reshape(shape)?)?
        .broadcast_div(&(var + eps)?.sqrt()?.reshape(shape)?)?
        .broadcast_add(&bias.reshape(shape)?)?
        .gelu_erf()
}

/// `max_pool2d(conv2d(x, w, padding 1), 2)` (no bias, no ReLU) with candle's ops.
pub fn conv3x3_nobias_pool(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    conv3x3_nobias(x, w)?.max_pool2d(2)
}
