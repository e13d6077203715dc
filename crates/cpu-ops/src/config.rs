//! The kernels' settings as one value: [`KernelConfig`], passed to every op (its methods) and carried by the op
//! structs into their backward passes. Nothing in this crate reads or writes a process-wide switch, so two
//! models with different settings can run in one process, even interleaved on threads.

use candle_core::{DType, Tensor};

use crate::Error;

/// The arithmetic of the convolution GEMMs (forward, input gradient and weight gradient of
/// [`KernelConfig::conv3x3`], [`KernelConfig::conv3x3_nobias`], the forward of the fused conv → pool ops and their
/// dense backward).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 inputs and sums (the default).
    #[default]
    F32,
    /// Inputs rounded to bfloat16 (8 significant bits), products summed in f32 (AVX512-BF16's `VDPBF16PS`:
    /// faster than f32 on the AMD Zen 4 and 5 measured, half f32's rate on the Intel Xeon measured; see
    /// [`crate::gemm_speed`]).
    /// Weights, gradients, activations and every other op stay f32.
    Bf16,
}

impl Precision {
    /// Every precision, by name.
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    /// The name used in settings and files: `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("expected f32 or bf16, found {s:?}"))
    }
}

/// Which Winograd tiles the 3x3 convolutions' forward (and input-gradient) GEMMs use, where they apply (see
/// [`KernelConfig::with_winograd_tiles`]). Serialised by its [`Winograd::name`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Winograd {
    /// Every convolution as im2col + one GEMM.
    #[serde(rename = "off")]
    Off,
    /// F(2x2, 3x3): 16 GEMMs over 4x4 tiles, 2.25x fewer multiply-adds; CPUs with AVX2 or AVX-512F, 32 or more input
    /// channels, sides from 5, at most 16 wide.
    #[serde(rename = "f2")]
    F2x2,
    /// F(4x4, 3x3): 36 GEMMs over 6x6 tiles, 4x fewer multiply-adds; CPUs with AVX2, 16 or more input channels,
    /// sides from 3, any width. Its results differ from the direct convolution's by more than rounding order (a few
    /// units in the 5th significant digit in f32, see the crate's `winograd::f4` module). With bf16 GEMMs its
    /// transformed inputs and weights are rounded to bf16 after the transforms' larger coefficients: a larger error
    /// than F(2x2, 3x3)'s (tests/bf16.rs states both), for 2.25 products per output instead of 4.
    #[serde(rename = "f4")]
    F4x4,
    /// F(4x4, 3x3) for f32 GEMMs where it applies, F(2x2, 3x3) for bf16 ones (whose rounding of the transformed
    /// inputs F(4x4)'s larger coefficients would magnify) and where F(4x4) does not apply.
    #[default]
    #[serde(rename = "auto")]
    Auto,
}

impl Winograd {
    /// Every value, in the order of [`Winograd::name`]'s names.
    pub const ALL: [Winograd; 4] = [
        Winograd::Off,
        Winograd::F2x2,
        Winograd::F4x4,
        Winograd::Auto,
    ];

    /// `off`, `f2`, `f4` or `auto`.
    pub fn name(self) -> &'static str {
        match self {
            Winograd::Off => "off",
            Winograd::F2x2 => "f2",
            Winograd::F4x4 => "f4",
            Winograd::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Winograd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Winograd {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Winograd::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("expected off, f2, f4 or auto, found {s:?}"))
    }
}

/// How many GEMM columns (images × H·W) the 3x3 conv kernels put in one GEMM: `fwd` for the forward and the
/// input gradient on the im2col path (the Winograd paths group a fixed number of tiles, see the crate's
/// `winograd` module), `dw` for the depth of the weight-gradient GEMMs; `1` gives one GEMM per image. Results
/// agree up to float rounding for any value; the defaults are the measured best (see the crate's `conv` module).
/// For benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupCols {
    /// Most columns of one forward / input-gradient GEMM (at least 1).
    pub fwd: usize,
    /// Most depth of one weight-gradient GEMM (at least 1).
    pub dw: usize,
}

impl Default for GroupCols {
    fn default() -> Self {
        GroupCols {
            fwd: crate::conv::FWD_COLS,
            dw: crate::conv::DW_COLS,
        }
    }
}

/// Which kernels run and how: the settings of every op of this crate, as one `Copy` value.
///
/// The default runs this crate's kernels in f32 with Winograd and the sparse backward where they apply. Each op is
/// a method (`cfg.conv3x3(&x, &w, &b)`); the free functions of the crate root use the default. An op's backward
/// uses the settings its forward ran with, whatever other code does meanwhile.
///
/// ```
/// use candle_cpu_ops::{KernelConfig, Precision};
/// # use candle_core::{DType, Device, Tensor};
/// let x = Tensor::ones((1, 32, 8, 8), DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((8, 32, 3, 3), DType::F32, &Device::Cpu)?;
/// let direct = KernelConfig::default().with_winograd(false);
/// let y = direct.conv3x3_nobias(&x, &w)?;
/// assert_eq!(y.dims(), &[1, 8, 8, 8]);
/// // bf16 needs AVX512-BF16: asking for it elsewhere is an error, not a silent f32.
/// assert_eq!(KernelConfig::default().with_precision(Precision::Bf16).is_ok(), candle_cpu_ops::bf16_supported());
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelConfig {
    precision: Precision,
    winograd: Winograd,
    sparse_backward: bool,
    tiled_weight_grad: bool,
    stock_ops: bool,
    fallback_ops: bool,
    group_cols: GroupCols,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            precision: Precision::F32,
            winograd: Winograd::Auto,
            sparse_backward: true,
            tiled_weight_grad: true,
            stock_ops: false,
            fallback_ops: false,
            group_cols: GroupCols::default(),
        }
    }
}

impl KernelConfig {
    /// candle's stock ops for every function, on every device: for comparisons with stock candle (slow on the
    /// CPU). Note that candle 0.11.1's stock max-pool backward scales a window's gradient by 1/4.
    pub fn stock() -> Self {
        KernelConfig::default().with_stock_ops(true)
    }

    /// With the convolution GEMMs in `precision`. [`Precision::Bf16`] needs [`crate::bf16_supported`] and this
    /// crate's kernels (not [`KernelConfig::stock`]); asking for it otherwise is an error.
    pub fn with_precision(self, precision: Precision) -> Result<Self, Error> {
        if precision == Precision::Bf16 {
            if !crate::bf16_supported() {
                return Err(Error::Unsupported {
                    what: "bf16 convolutions".into(),
                    why: if crate::Isa::detect() < crate::Isa::hardware() {
                        format!(
                            "they need AVX-512, and {} caps this process at {}",
                            crate::MAX_ISA_VAR,
                            crate::Isa::detect()
                        )
                    } else {
                        "they need AVX-512F, AVX-512BW and AVX512-BF16".into()
                    },
                });
            }
            if self.stock_ops || self.fallback_ops {
                return Err(Error::Unsupported {
                    what: "bf16 convolutions".into(),
                    why: format!(
                        "they need this crate's kernels, not candle's {} ops",
                        if self.stock_ops { "stock" } else { "fallback" }
                    ),
                });
            }
        }
        Ok(KernelConfig { precision, ..self })
    }

    /// With the Winograd path of the 3x3 convolutions' forward (and input-gradient) GEMMs on (the default,
    /// [`Winograd::Auto`]) or off ([`Winograd::Off`]): 2.25x (F(2x2, 3x3)) or 4x (F(4x4, 3x3)) fewer multiply-adds
    /// where it applies (CPUs with AVX2 or AVX-512F, 32 or more input channels; see [`Winograd`] for the sizes).
    /// Off, or elsewhere, every convolution runs as im2col + one GEMM.
    pub fn with_winograd(self, on: bool) -> Self {
        self.with_winograd_tiles(if on { Winograd::Auto } else { Winograd::Off })
    }

    /// With the Winograd tiles `tiles` (see [`Winograd`]); a convolution they do not apply to runs as im2col + one
    /// GEMM.
    pub fn with_winograd_tiles(self, tiles: Winograd) -> Self {
        KernelConfig {
            winograd: tiles,
            ..self
        }
    }

    /// With the sparse backward of [`KernelConfig::conv3x3_relu_pool`] and [`KernelConfig::conv3x3_nobias_pool`]
    /// (for the channel counts that have a sparse kernel: 3, 16, 24, 32, 64, 128 and 256 input channels) on (the
    /// default) or off (the dense GEMM backward that other channel counts use). Both compute the same gradients up
    /// to float rounding; off exists to compare them. Where `conv3x3_nobias_pool`'s input gradient runs by Winograd
    /// F(4x4, 3x3) (see [`KernelConfig::conv3x3_nobias_pool`]) the sparse kernel computes only the weight gradient
    /// (see [`KernelConfig::with_tiled_weight_grad`]).
    pub fn with_sparse_backward(self, on: bool) -> Self {
        KernelConfig {
            sparse_backward: on,
            ..self
        }
    }

    /// Where the sparse backward computes only the weight (and bias) gradient (the input is untracked, or its
    /// gradient runs by Winograd), it takes the same sums in L1-sized tiles (`true`, the default; for 16, 24 and
    /// multiples of 32 input channels) or image by image (`false`, the kernel that also computes input gradients).
    /// Both compute the same gradients up to float rounding; `false` exists to compare them
    /// (`cargo bench -p candle-cpu-ops -- convb`).
    pub fn with_tiled_weight_grad(self, on: bool) -> Self {
        KernelConfig {
            tiled_weight_grad: on,
            ..self
        }
    }

    /// With candle's stock ops (`true`, see [`KernelConfig::stock`]) or this crate's kernels (`false`, the
    /// default). Stock ops compute in f32: the precision goes back to f32.
    pub fn with_stock_ops(self, stock: bool) -> Self {
        KernelConfig {
            stock_ops: stock,
            precision: if stock {
                Precision::F32
            } else {
                self.precision
            },
            ..self
        }
    }

    /// With every op computed as it is where this crate's kernels do not apply (`true`), also on CPU f32 tensors,
    /// or with the kernels where they apply (`false`, the default). Off the kernels (CUDA tensors, dtypes other
    /// than f32) each op runs as candle's ops with this crate's gradients (the pool's: see
    /// [`crate::native::max_pool2x2_reduce`]): so this is what a CUDA run computes, checkable on a machine without
    /// a GPU. Unlike [`KernelConfig::stock`] it trains the same function as the kernels. The fallback ops compute
    /// in f32: the precision goes back to f32.
    ///
    /// ```
    /// use candle_cpu_ops::KernelConfig;
    /// # use candle_core::{DType, Device, Tensor};
    /// let x = Tensor::ones((1, 1, 2, 2), DType::F32, &Device::Cpu)?;
    /// let k = KernelConfig::default();
    /// assert!(k.uses_kernels(&[&x]));
    /// assert!(!k.with_fallback_ops(true).uses_kernels(&[&x]));
    /// assert!(!k.uses_kernels(&[&x.to_dtype(DType::F64)?]));
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn with_fallback_ops(self, fallback: bool) -> Self {
        KernelConfig {
            fallback_ops: fallback,
            precision: if fallback {
                Precision::F32
            } else {
                self.precision
            },
            ..self
        }
    }

    /// With other GEMM widths for the 3x3 convolutions (see [`GroupCols`]; values below 1 count as 1).
    pub fn with_group_cols(self, cols: GroupCols) -> Self {
        KernelConfig {
            group_cols: GroupCols {
                fwd: cols.fwd.max(1),
                dw: cols.dw.max(1),
            },
            ..self
        }
    }

    /// The arithmetic of the convolution GEMMs.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether the Winograd path may run.
    pub fn winograd(&self) -> bool {
        self.winograd != Winograd::Off
    }

    /// The Winograd tiles asked for.
    pub fn winograd_tiles(&self) -> Winograd {
        self.winograd
    }

    /// Whether the fused conv → pool ops use their sparse backward where one exists.
    pub fn sparse_backward(&self) -> bool {
        self.sparse_backward
    }

    /// Whether the sparse backward's weight gradient runs in tiles (see [`KernelConfig::with_tiled_weight_grad`]).
    pub fn tiled_weight_grad(&self) -> bool {
        self.tiled_weight_grad
    }

    /// Whether every op runs on candle's stock ops.
    pub fn stock_ops(&self) -> bool {
        self.stock_ops
    }

    /// The GEMM widths of the 3x3 convolutions.
    pub fn group_cols(&self) -> GroupCols {
        self.group_cols
    }

    /// Whether every op runs as candle's ops ([`KernelConfig::with_fallback_ops`]) even where the kernels apply.
    pub fn fallback_ops(&self) -> bool {
        self.fallback_ops
    }

    /// Whether an op on `ts` runs this crate's kernels: neither the stock nor the fallback ops are asked for, and
    /// every tensor is on the CPU with dtype f32. The one place that decides it (the ops here and the models'
    /// own layers ask it).
    pub fn uses_kernels(&self, ts: &[&Tensor]) -> bool {
        !self.stock_ops
            && !self.fallback_ops
            && ts
                .iter()
                .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
    }
}
