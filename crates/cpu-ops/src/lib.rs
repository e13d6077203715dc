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
//! For the airbench94 network: [`conv3x3_nobias`] (the same conv kernels, no bias), [`conv3x3_nobias_pool`]
//! (`max_pool2x2(conv3x3_nobias(x, w))` fused, sparse backward), [`gelu()`] (exact,
//! erf-based GELU with backward), [`batch_norm_gelu_train`] (BatchNorm without weight + bias + GELU fused,
//! batch statistics accumulated in f64, full backward through the statistics; returns the batch mean and
//! unbiased variance for the running statistics) and [`batch_norm_gelu_eval`] (the same with given statistics,
//! forward only), [`patch_conv_gelu`] (the frozen 2x2 whitening conv + bias + GELU, bias gradient only) and
//! [`global_max_linear`] (the final max-pool + scaled linear head). [`max_pool2x2`] and [`conv3x3_relu_pool`] accept odd sizes (floor, as PyTorch).
//! The GELU and BatchNorm kernels, like the pool's, are compiled for AVX-512, AVX2 and the baseline and picked
//! at run time.
//!
//! On AVX2 CPUs the forward 3x3 convolutions with 16 or more input channels at sides from 3 (and the input
//! gradients, themselves such convolutions) run as Winograd F(4x4, 3x3) in f32: 36 GEMMs over transformed 6x6
//! tiles, 4x fewer multiply-adds; the bf16 GEMMs (AVX512-BF16) take F(2x2, 3x3), 16 GEMMs over 4x4 tiles, 2.25x
//! fewer, at 32 or more input channels and 5x5 to 16-wide sizes, unless F(4x4, 3x3) is asked for (faster, with
//! 6x the rounding error; [`KernelConfig::with_winograd_tiles`], [`Winograd`]).
//!
//! `gemm` is built with its `x86-v4` feature: AVX-512 microkernels, chosen at run time only on
//! CPUs that have AVX-512 (others keep the AVX2/FMA kernels).
//!
//! Threading: the kernels parallelise over the batch on rayon's global pool (the pool candle's
//! own CPU ops use); `gemm` runs single-threaded inside each task.
//!
//! Settings: every op is a method of [`KernelConfig`] (precision, Winograd, sparse backward, stock ops, GEMM
//! widths), one `Copy` value that the op structs carry into their backward; the free functions use its default.
//! This crate reads and writes no process-wide setting, so models with different settings share a process.
//! Training with these kernels runs about
//! 25% faster when candle's element-wise ops stay on the calling thread and the allocator keeps freed
//! memory mapped; `train::tune_cpu_process` applies both, once, at the start of a program (the `cifar`
//! binary calls it).
//!
//! Gradient conventions (as PyTorch): ReLU'(0) = 0; a max-pool window with tied maxima sends
//! its gradient to the first maximum (row-major) only.

#![warn(missing_docs)]

mod activation;
mod batch_norm;
// The bf16 GEMM kernel needs AVX512-BF16: without x86-64 only its scalar fallback (tests) and the checks remain.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables))]
mod bf16_gemm;
mod config;
mod conv;
mod denormals;
mod fused;
mod gelu;
mod head;
mod isa;
mod linear;
pub mod native;
mod patch;
mod pool;
mod uninit;
mod util;
mod winograd;

use candle_core::{Shape, Tensor};

pub use bf16_gemm::{GemmSpeed, bf16_supported, gemm_speed};
pub use config::{GroupCols, KernelConfig, Precision, Winograd};
pub use denormals::{flush_denormals_everywhere, flush_denormals_this_thread};
pub use isa::{Isa, KernelFamily, MAX_ISA_VAR, builds_run};

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
    /// The requested arithmetic is not available on this CPU.
    #[error("{what}: not supported on this CPU ({why})")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// What the CPU lacks.
        why: String,
    },
    /// An environment variable this crate reads (`CPU_OPS_MAX_ISA`) has a value it does not know.
    #[error("{name}={value:?}: expected {expected}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// The values it takes.
        expected: &'static str,
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

impl KernelConfig {
    /// 3x3 convolution, stride 1, padding 1, plus a per-channel bias.
    ///
    /// `x [N, Ci, H, W]`, `w [Co, Ci, 3, 3]`, `b [Co]` -> `[N, Co, H, W]`.
    ///
    /// ```
    /// # use candle_core::{DType, Device, Tensor};
    /// let x = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu)?;
    /// let w = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu)?;
    /// let b = Tensor::new(&[0.5f32], &Device::Cpu)?;
    /// let y = candle_cpu_ops::conv3x3(&x, &w, &b)?;
    /// // The centre sees all 9 inputs, a corner 4.
    /// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[4], 9.5);
    /// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[0], 4.5);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn conv3x3(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        conv::conv_dims(x.shape(), w.shape(), Some(b.shape()), "conv3x3")?;
        if self.uses_kernels(&[x, w, b]) {
            x.apply_op3(w, b, conv::Conv3x3 { cfg: *self })
        } else {
            native::conv3x3(x, w, b)
        }
    }

    /// 2x2 max-pool with stride 2: `[N, C, H, W]` -> `[N, C, ⌊H/2⌋, ⌊W/2⌋]`. Odd sizes are allowed: the last
    /// row/column is dropped, as by PyTorch's `MaxPool2d(2)` (e.g. 31 -> 15, 7 -> 3).
    ///
    /// ```
    /// # use candle_core::{Device, Tensor};
    /// let x = Tensor::new(&[[[[1f32, 2.], [4., 3.]]]], &Device::Cpu)?;
    /// let y = candle_cpu_ops::max_pool2x2(&x)?;
    /// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![4.]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn max_pool2x2(&self, x: &Tensor) -> Result<Tensor> {
        pool::pool_dims(x.shape(), "max_pool2x2")?;
        if self.uses_kernels(&[x]) {
            x.apply_op1(pool::MaxPool2x2::default())
        } else {
            self.native_pool(x)
        }
    }

    /// `relu(x + b)` with `x [N, F]` (or any `[.., F]`) and `b [F]`.
    ///
    /// ```
    /// # use candle_core::{Device, Tensor};
    /// let x = Tensor::new(&[[1f32, -2.], [3., 0.5]], &Device::Cpu)?;
    /// let b = Tensor::new(&[0f32, 1.], &Device::Cpu)?;
    /// let y = candle_cpu_ops::bias_relu(&x, &b)?;
    /// assert_eq!(y.to_vec2::<f32>()?, vec![vec![1., 0.], vec![3., 1.5]]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn bias_relu(&self, x: &Tensor, b: &Tensor) -> Result<Tensor> {
        if self.uses_kernels(&[x, b]) {
            x.apply_op2(b, activation::BiasRelu)
        } else {
            native::bias_relu(x, b)
        }
    }

    /// `max_pool2x2(relu(conv3x3(x, w) + b))`, fused into one op on the CPU f32 path.
    ///
    /// `x [N, Ci, H, W]`, `w [Co, Ci, 3, 3]`, `b [Co]` -> `[N, Co, ⌊H/2⌋, ⌊W/2⌋]` (an odd last row/column of
    /// the conv output is dropped by the pool, as in [`max_pool2x2`]).
    ///
    /// ```
    /// # use candle_core::{DType, Device, Tensor};
    /// let x = Tensor::ones((2, 3, 4, 4), DType::F32, &Device::Cpu)?;
    /// let w = Tensor::ones((5, 3, 3, 3), DType::F32, &Device::Cpu)?;
    /// let b = Tensor::zeros(5, DType::F32, &Device::Cpu)?;
    /// let y = candle_cpu_ops::conv3x3_relu_pool(&x, &w, &b)?;
    /// assert_eq!(y.dims(), &[2, 5, 2, 2]);
    /// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[0], 27.0); // an interior pixel sees 3*9 ones
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn conv3x3_relu_pool(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        conv::conv_dims(x.shape(), w.shape(), Some(b.shape()), "conv3x3_relu_pool")?;
        pool::pool_dims(x.shape(), "conv3x3_relu_pool")?;
        if self.uses_kernels(&[x, w, b]) {
            x.apply_op3(w, b, fused::ConvReluPool::new(*self))
        } else {
            self.native_pool(&native::conv3x3(x, w, b)?.relu()?)
        }
    }

    /// 3x3 convolution, stride 1, padding 1, without bias: `x [N, Ci, H, W]` (any `H, W`), `w [Co, Ci, 3, 3]` ->
    /// `[N, Co, H, W]`. Gradients for `x` (skipped when `x` is not tracked by autograd) and `w`.
    ///
    /// ```
    /// # use candle_core::{DType, Device, Tensor};
    /// let x = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu)?;
    /// let w = Tensor::ones((2, 1, 3, 3), DType::F32, &Device::Cpu)?;
    /// let y = candle_cpu_ops::conv3x3_nobias(&x, &w)?;
    /// assert_eq!(y.dims(), &[1, 2, 3, 3]);
    /// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[..2], [4.0, 6.0]); // a corner sees 4 inputs, an edge 6
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn conv3x3_nobias(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        conv::conv_dims(x.shape(), w.shape(), None, "conv3x3_nobias")?;
        if self.uses_kernels(&[x, w]) {
            x.apply_op2(w, conv::Conv3x3NoBias { cfg: *self })
        } else {
            native::conv3x3_nobias(x, w)
        }
    }

    /// `max_pool2x2(conv3x3_nobias(x, w))` fused into one op on the CPU f32 path: `x [N, Ci, H, W]` (any `H, W`;
    /// an odd last row/column of the conv output is dropped by the pool), `w [Co, Ci, 3, 3]` ->
    /// `[N, Co, ⌊H/2⌋, ⌊W/2⌋]`. The conv output is never stored at full resolution, and the backward visits only
    /// the conv outputs that are a window's (first) maximum; for 3, 16, 24, 32, 64, 128 and 256 input channels with
    /// a sparse kernel (see [`KernelConfig::with_sparse_backward`]), otherwise with the dense per-image pass. Where
    /// the input gradient's convolution (`Co` in, `Ci` out) takes Winograd F(4x4, 3x3) (see [`Winograd`]), the
    /// sparse kernel keeps the weight gradient and the input gradient runs as that dense convolution of the
    /// unpooled gradient, which measured faster. ([`KernelConfig::conv3x3_relu_pool`], whose ReLU leaves the
    /// sparse kernel fewer windows to visit, keeps it for both.)
    ///
    /// ```
    /// # use candle_core::{DType, Device, Tensor};
    /// let x = Tensor::ones((2, 3, 5, 5), DType::F32, &Device::Cpu)?;
    /// let w = Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu)?;
    /// let y = candle_cpu_ops::conv3x3_nobias_pool(&x, &w)?;
    /// assert_eq!(y.dims(), &[2, 4, 2, 2]);
    /// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[0], 27.0); // the window's interior pixel sees 3*9 ones
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn conv3x3_nobias_pool(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        conv::conv_dims(x.shape(), w.shape(), None, "conv3x3_nobias_pool")?;
        if self.uses_kernels(&[x, w]) {
            x.apply_op2(w, fused::ConvPoolNoBias::new(*self))
        } else {
            self.native_pool(&native::conv3x3_nobias(x, w)?)
        }
    }

    /// The 2x2 max-pool off the fast path: candle's own op with the stock ops (its gradient as candle has it, see
    /// [`native`]), else [`native::max_pool2x2_reduce`], PyTorch's gradient on any device (so CUDA trains as the
    /// CPU kernels do).
    fn native_pool(&self, x: &Tensor) -> Result<Tensor> {
        if self.stock_ops() {
            native::max_pool2x2(x)
        } else {
            native::max_pool2x2_reduce(x)
        }
    }

    /// A frozen 2x2 convolution (stride 1, no padding) + per-channel bias + exact GELU, fused:
    /// `gelu(conv2d(x, w) + b)`, `x [N, Ci, H, W]` (`H, W ≥ 2`), `w [Co, Ci, 2, 2]`, `b [Co]` -> `[N, Co, H-1, W-1]`.
    /// airbench94's whitening layer: its filters come from the data and are never trained, so on the CPU f32 path
    /// the gradient flows to `b` alone (recomputing the pre-activation; nothing but the output is stored). When `x`
    /// or `w` is tracked by autograd, this computes with candle's ops instead, so their gradients still exist.
    ///
    /// ```
    /// # use candle_core::{DType, Device, Tensor};
    /// let x = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu)?;
    /// let w = Tensor::new(&[[[[0.25f32, 0.25], [0.25, 0.25]]]], &Device::Cpu)?; // [1, 1, 2, 2]: the mean
    /// let b = Tensor::new(&[0f32], &Device::Cpu)?;
    /// let y = candle_cpu_ops::patch_conv_gelu(&x, &w.detach(), &b)?;
    /// assert_eq!(y.dims(), &[1, 1, 2, 2]);
    /// assert!((y.flatten_all()?.to_vec1::<f32>()?[0] - 0.841_344_7).abs() < 1e-6); // gelu(1)
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn patch_conv_gelu(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (_, co) = patch::patch_dims(x.shape(), w.shape(), b.shape(), "patch_conv_gelu")?;
        if self.uses_kernels(&[x, w, b]) && !x.track_op() && !w.track_op() {
            let w = w.flatten_all()?.to_vec1::<f32>()?;
            x.apply_op2(b, patch::PatchConvGelu { w, co })
        } else {
            native::patch_conv_gelu(x, w, b)
        }
    }

    /// Global max-pool + linear layer without bias, scaled: `y[n, k] = scale · Σ_c w[k, c] · max_hw x[n, c]`,
    /// `x [N, C, H, W]`, `w [K, C]` -> `[N, K]` (airbench94's head: `MaxPool2d(3)` over a 3x3 map, `Linear`, `× 1/9`).
    /// Gradients for `x` (to each plane's first maximum, as PyTorch's max-pool) and `w`, each when tracked.
    ///
    /// ```
    /// # use candle_core::{Device, Tensor};
    /// let x = Tensor::new(&[[[[1f32, 5.], [2., 3.]], [[-1., -2.], [-3., -4.]]]], &Device::Cpu)?; // [1, 2, 2, 2]
    /// let w = Tensor::new(&[[1f32, 1.], [2., 0.]], &Device::Cpu)?; // [2, 2]
    /// let y = candle_cpu_ops::global_max_linear(&x, &w, 0.5)?;
    /// assert_eq!(y.to_vec2::<f32>()?, [[2.0, 5.0]]); // maxima (5, -1)
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn global_max_linear(&self, x: &Tensor, w: &Tensor, scale: f64) -> Result<Tensor> {
        head::head_dims(x.shape(), w.shape(), "global_max_linear")?;
        if self.uses_kernels(&[x, w]) {
            x.apply_op2(
                w,
                head::MaxLinear {
                    scale: scale as f32,
                },
            )
        } else {
            native::global_max_linear(x, w, scale)
        }
    }

    /// Exact GELU, `x·Φ(x) = ½·x·(1 + erf(x/√2))` (PyTorch's `nn.GELU()` default), any shape, with backward.
    ///
    /// The CPU kernel's erf is within 5e-7 (absolute) of the exact one.
    ///
    /// ```
    /// # use candle_core::{Device, Tensor};
    /// let x = Tensor::new(&[-1f32, 0., 1.], &Device::Cpu)?;
    /// let y = candle_cpu_ops::gelu(&x)?.to_vec1::<f32>()?;
    /// assert!((y[0] + 0.158_655_25).abs() < 1e-6 && y[1] == 0.0 && (y[2] - 0.841_344_7).abs() < 1e-6);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn gelu(&self, x: &Tensor) -> Result<Tensor> {
        if self.uses_kernels(&[x]) {
            x.apply_op1(gelu::Gelu)
        } else {
            native::gelu(x)
        }
    }

    /// Training-mode BatchNorm without weight (weight frozen at 1) + per-channel bias + exact GELU, fused.
    ///
    /// `x [N, C, H, W]`, `bias [C]` -> `(y [N, C, H, W], batch_mean [C], batch_var_unbiased [C])` with
    /// `y = gelu((x - mean_c)/√(var_c + eps) + bias_c)`, where `mean_c` and the *biased* `var_c` are the statistics of
    /// channel `c` over `N, H, W`. The returned statistics are detached (no gradient), for the caller's running-stat
    /// update; the variance returned is the *unbiased* one (`Σ(x - mean)²/(N·H·W - 1)`), as PyTorch uses for
    /// `running_var`. Gradients flow to `x` (through the batch statistics) and to `bias`.
    ///
    /// On the CPU the statistics are accumulated in f64 (two passes), so a tiny `eps` such as 1e-12 is safe.
    /// Errors when a channel has fewer than 2 values (as PyTorch in training mode).
    ///
    /// ```
    /// # use candle_core::{Device, Tensor};
    /// let x = Tensor::new(&[[[[1f32, 3.]]], [[[5., 7.]]]], &Device::Cpu)?; // [2, 1, 1, 2]
    /// let b = Tensor::new(&[0f32], &Device::Cpu)?;
    /// let (y, mean, var) = candle_cpu_ops::batch_norm_gelu_train(&x, &b, 1e-12)?;
    /// assert_eq!(mean.to_vec1::<f32>()?, [4.0]);
    /// assert!((var.to_vec1::<f32>()?[0] - 20.0 / 3.0).abs() < 1e-5); // unbiased
    /// assert_eq!(y.dims(), &[2, 1, 1, 2]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn batch_norm_gelu_train(
        &self,
        x: &Tensor,
        bias: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm_gelu_train";
        let (n, _, hw) = batch_norm::bn_dims(x.shape(), bias.shape(), "bias", op)?;
        batch_norm::values_per_channel(n, hw, op, x.shape())?;
        if !self.uses_kernels(&[x, bias]) {
            return native::batch_norm_gelu_train(x, bias, eps);
        }
        let stats = std::sync::Arc::new(std::sync::Mutex::new(None));
        let y = x.apply_op2(
            bias,
            batch_norm::BnGeluTrain {
                eps,
                stats: stats.clone(),
            },
        )?;
        let guard = stats
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{op}: poisoned lock")))?;
        let Some(st) = guard.as_ref() else {
            candle_core::bail!("{op}: the forward left no statistics");
        };
        let to_t = |v: &[f64]| {
            let v: Vec<f32> = v.iter().map(|&s| s as f32).collect();
            Tensor::from_vec(v, bias.shape(), x.device())
        };
        Ok((y, to_t(&st.mean)?, to_t(&st.var_unbiased)?))
    }

    /// Evaluation-mode BatchNorm without weight + per-channel bias + exact GELU from given statistics:
    /// `y = gelu((x - mean_c)/√(var_c + eps) + bias_c)`, `x [N, C, H, W]`, `mean`, `var`, `bias` `[C]`.
    ///
    /// The CPU kernel is forward-only: when any input is tracked by autograd this computes with candle's ops
    /// instead (so gradients still work, e.g. for a frozen-statistics fine-tune).
    ///
    /// ```
    /// # use candle_core::{Device, Tensor};
    /// let x = Tensor::new(&[[[[2f32]], [[0.]]]], &Device::Cpu)?; // [1, 2, 1, 1]
    /// let mean = Tensor::new(&[1f32, 0.], &Device::Cpu)?;
    /// let var = Tensor::new(&[4f32, 1.], &Device::Cpu)?;
    /// let bias = Tensor::new(&[0.5f32, 0.], &Device::Cpu)?;
    /// let y = candle_cpu_ops::batch_norm_gelu_eval(&x, &mean, &var, &bias, 0.0)?.flatten_all()?.to_vec1::<f32>()?;
    /// assert!((y[0] - 0.841_344_7).abs() < 1e-6 && y[1] == 0.0); // gelu((2-1)/2 + 0.5) = gelu(1)
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn batch_norm_gelu_eval(
        &self,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        bias: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let op = "batch_norm_gelu_eval";
        batch_norm::bn_dims(x.shape(), mean.shape(), "mean", op)?;
        batch_norm::bn_dims(x.shape(), var.shape(), "var", op)?;
        batch_norm::bn_dims(x.shape(), bias.shape(), "bias", op)?;
        let ts = [x, mean, var, bias];
        if !self.uses_kernels(&ts) || ts.iter().any(|t| t.track_op()) {
            return native::batch_norm_gelu_eval(x, mean, var, bias, eps);
        }
        let (mean, var, bias) = (
            mean.to_vec1::<f32>()?,
            var.to_vec1::<f32>()?,
            bias.to_vec1::<f32>()?,
        );
        let invstd = var
            .iter()
            .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
            .collect();
        x.apply_op1(batch_norm::BnGeluEval { mean, invstd, bias })
    }

    /// `x [N, In] · wᵀ (+ b) (then ReLU)` with `w [Out, In]` (`candle_nn::Linear`'s weight layout).
    ///
    /// On a CPU f32 tensor this is one fused op with its own backward (gemm-backed); elsewhere it is candle's
    /// `matmul` + `broadcast_add` + `relu`.
    ///
    /// ```
    /// # use candle_core::{Device, Tensor};
    /// let x = Tensor::ones((2, 3), candle_core::DType::F32, &Device::Cpu)?;
    /// let w = Tensor::ones((4, 3), candle_core::DType::F32, &Device::Cpu)?;
    /// let b = Tensor::new(&[1f32, -10., 0., 2.], &Device::Cpu)?;
    /// let y = candle_cpu_ops::linear(&x, &w, Some(&b), true)?;
    /// assert_eq!(y.to_vec2::<f32>()?, vec![vec![4., 0., 3., 5.]; 2]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        linear::linear(self, x, w, b, relu)
    }
}

/// [`KernelConfig::conv3x3`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn conv3x3(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    KernelConfig::default().conv3x3(x, w, b)
}

/// [`KernelConfig::max_pool2x2`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    KernelConfig::default().max_pool2x2(x)
}

/// [`KernelConfig::bias_relu`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    KernelConfig::default().bias_relu(x, b)
}

/// [`KernelConfig::conv3x3_relu_pool`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn conv3x3_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    KernelConfig::default().conv3x3_relu_pool(x, w, b)
}

/// [`KernelConfig::conv3x3_nobias`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn conv3x3_nobias(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    KernelConfig::default().conv3x3_nobias(x, w)
}

/// [`KernelConfig::conv3x3_nobias_pool`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn conv3x3_nobias_pool(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    KernelConfig::default().conv3x3_nobias_pool(x, w)
}

/// [`KernelConfig::patch_conv_gelu`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn patch_conv_gelu(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    KernelConfig::default().patch_conv_gelu(x, w, b)
}

/// [`KernelConfig::global_max_linear`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn global_max_linear(x: &Tensor, w: &Tensor, scale: f64) -> Result<Tensor> {
    KernelConfig::default().global_max_linear(x, w, scale)
}

/// [`KernelConfig::gelu`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    KernelConfig::default().gelu(x)
}

/// [`KernelConfig::batch_norm_gelu_train`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn batch_norm_gelu_train(
    x: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    KernelConfig::default().batch_norm_gelu_train(x, bias, eps)
}

/// [`KernelConfig::batch_norm_gelu_eval`] with the default settings (this crate's kernels, f32, Winograd and the sparse
/// backward where they apply).
pub fn batch_norm_gelu_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    KernelConfig::default().batch_norm_gelu_eval(x, mean, var, bias, eps)
}

/// [`KernelConfig::linear`] with the default settings.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    KernelConfig::default().linear(x, w, b, relu)
}
