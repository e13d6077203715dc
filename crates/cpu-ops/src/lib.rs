//! Fast CPU kernels for small CNNs (NCHW, f32) as candle custom ops with backward.
//!
//! Every public function takes and returns candle tensors, so models keep candle's autograd,
//! `VarMap` and optimizers. Each one *dispatches*: on a CPU tensor of dtype f32 it runs this
//! crate's kernel (a [`candle_core::CustomOp1`]/`2`/`3` with a hand-written backward); on any
//! other device or dtype it computes the same function with candle's native ops (see
//! [`native`]), so a model can call these unconditionally and CUDA keeps candle's kernels.
//!
//! Kernels: 3x3/stride-1/pad-1 convolution as im2col + `gemm` (forward, input gradient via the
//! flipped-weight convolution, weight gradient, bias gradient as a plain sum; the input gradient
//! is skipped when the input is not tracked by autograd, e.g. the image), 2x2 max-pool with a
//! saved argmax, fused bias + ReLU, the fused `max_pool2x2(relu(conv3x3(x) + b))` (whose
//! backward is one per-image pass), and a linear layer with fused bias + ReLU whose backward
//! writes the weight gradient in place (no transposed gradient for candle to add up).
//!
//! `gemm` is built with its `x86-v4` feature: AVX-512 microkernels, chosen at run time only on
//! CPUs that have AVX-512 (others keep the AVX2/FMA kernels).
//!
//! Threading: the kernels parallelise over the batch on rayon's global pool (the pool candle's
//! own CPU ops use); `gemm` runs single-threaded inside each task.
//!
//! Gradient conventions (as PyTorch): ReLU'(0) = 0; a max-pool window with tied maxima sends
//! its gradient to the first maximum (row-major) only.

mod activation;
mod conv;
mod denormals;
mod fused;
mod linear;
pub mod native;
mod pool;
mod util;

use candle_core::{DType, Shape, Tensor};

pub use denormals::{flush_denormals_everywhere, flush_denormals_this_thread};
pub use linear::linear;

/// Errors raised by this crate's shape checks (converted into [`candle_core::Error`] by the
/// public functions, which return `candle_core::Result` to compose with candle code).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument has the wrong rank or size.
    #[error("{op}: expected {expected}, found {found}")]
    Shape {
        /// The operation that rejected its input.
        op: String,
        /// What the operation needs.
        expected: String,
        /// What it was given.
        found: String,
    },
}

impl Error {
    pub(crate) fn shape(
        op: &str,
        expected: &str,
        s: &Shape,
        e: candle_core::Error,
    ) -> candle_core::Error {
        Error::Shape {
            op: op.to_string(),
            expected: expected.to_string(),
            found: format!("{s:?} ({e})"),
        }
        .into()
    }
}

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// This crate's result type (candle's error, so results compose with candle code).
pub type Result<T> = candle_core::Result<T>;

static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns this crate's kernels on (the default) or off for the whole process. Off, every function computes with
/// candle's stock ops on every device: for comparisons with stock candle (slow on the CPU).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this crate's kernels are in use (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

static SPARSE_BWD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Chooses the backward of [`conv3x3_relu_pool`] for the channel counts that have a sparse kernel (3, 16, 32, 64
/// and 128 input channels): the sparse one (the default) or the dense GEMM one that other channel counts use. Both
/// compute the same gradients up to float rounding; the switch exists to compare them (tests, benchmarks).
pub fn set_sparse_backward(on: bool) {
    SPARSE_BWD.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`conv3x3_relu_pool`]'s sparse backward is in use (see [`set_sparse_backward`]).
pub fn sparse_backward_enabled() -> bool {
    SPARSE_BWD.load(std::sync::atomic::Ordering::Relaxed)
}

/// True when the kernels are enabled and every tensor is on the CPU with dtype f32 (the custom-op path).
fn fast_path(ts: &[&Tensor]) -> bool {
    enabled()
        && ts
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// 3x3 convolution, stride 1, padding 1, plus a per-channel bias.
///
/// `x [N, Ci, H, W]`, `w [Co, Ci, 3, 3]`, `b [Co]` -> `[N, Co, H, W]`.
///
/// ```
/// # use candle_core::{DType, Device, Tensor};
/// let x = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu)?;
/// let b = Tensor::new(&[0.5f32], &Device::Cpu)?;
/// let y = cpu_ops::conv3x3(&x, &w, &b)?;
/// // The centre sees all 9 inputs, a corner 4.
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[4], 9.5);
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[0], 4.5);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv3x3(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    conv::conv_dims(x.shape(), w.shape(), Some(b.shape()), "conv3x3")?;
    if fast_path(&[x, w, b]) {
        x.apply_op3(w, b, conv::Conv3x3)
    } else {
        native::conv3x3(x, w, b)
    }
}

/// 2x2 max-pool with stride 2: `[N, C, H, W]` -> `[N, C, H/2, W/2]` (H and W must be even).
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 2.], [4., 3.]]]], &Device::Cpu)?;
/// let y = cpu_ops::max_pool2x2(&x)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![4.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    pool::pool_dims(x.shape(), "max_pool2x2")?;
    if fast_path(&[x]) {
        x.apply_op1(pool::MaxPool2x2::default())
    } else {
        native::max_pool2x2(x)
    }
}

/// `relu(x + b)` with `x [N, F]` (or any `[.., F]`) and `b [F]`.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[1f32, -2.], [3., 0.5]], &Device::Cpu)?;
/// let b = Tensor::new(&[0f32, 1.], &Device::Cpu)?;
/// let y = cpu_ops::bias_relu(&x, &b)?;
/// assert_eq!(y.to_vec2::<f32>()?, vec![vec![1., 0.], vec![3., 1.5]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fast_path(&[x, b]) {
        x.apply_op2(b, activation::BiasRelu)
    } else {
        native::bias_relu(x, b)
    }
}

/// `max_pool2x2(relu(conv3x3(x, w) + b))`, fused into one op on the CPU f32 path.
///
/// `x [N, Ci, H, W]` (H, W even), `w [Co, Ci, 3, 3]`, `b [Co]` -> `[N, Co, H/2, W/2]`.
///
/// ```
/// # use candle_core::{DType, Device, Tensor};
/// let x = Tensor::ones((2, 3, 4, 4), DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((5, 3, 3, 3), DType::F32, &Device::Cpu)?;
/// let b = Tensor::zeros(5, DType::F32, &Device::Cpu)?;
/// let y = cpu_ops::conv3x3_relu_pool(&x, &w, &b)?;
/// assert_eq!(y.dims(), &[2, 5, 2, 2]);
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[0], 27.0); // an interior pixel sees 3*9 ones
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv3x3_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    conv::conv_dims(x.shape(), w.shape(), Some(b.shape()), "conv3x3_relu_pool")?;
    pool::pool_dims(x.shape(), "conv3x3_relu_pool")?;
    if fast_path(&[x, w, b]) {
        x.apply_op3(w, b, fused::ConvReluPool::default())
    } else {
        native::conv3x3_relu_pool(x, w, b)
    }
}
