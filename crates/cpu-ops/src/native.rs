//! The same functions built from candle's stock ops: the fallback for non-CPU / non-f32
//! tensors, and the reference the tests and benchmarks compare against.
//!
//! Note: candle 0.11.1's own `max_pool2d` backward scales the gradient of a window by
//! (number of maxima)/4 (a unique maximum gets a quarter of the gradient), unlike PyTorch and
//! unlike this crate's CPU op; [`max_pool2x2`] here is candle's op unchanged.

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

/// `relu(x + b)` with candle's ops.
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.broadcast_add(b)?.relu()
}

/// `max_pool2d(relu(conv3x3(x, w) + b), 2)` with candle's ops.
pub fn conv3x3_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    conv3x3(x, w, b)?.relu()?.max_pool2d(2)
}
