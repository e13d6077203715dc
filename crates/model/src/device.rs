//! Device selection: `auto | cpu | cuda[:N]`.
//!
//! ```
//! let (device, why) = cifar10_model::device::select("cpu").unwrap();
//! assert!(device.is_cpu());
//! assert!(why.contains("cpu"));
//! assert!(cifar10_model::device::select("tpu").is_err());
//! ```

use crate::{Error, Result};
use candle_core::Device;

/// Whether this build has CUDA support (the `cuda` cargo feature).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// A parsed device spec (the grammar `auto | cpu | cuda | cuda:N`, case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA device 0 when the build has CUDA and it opens, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// A CUDA device by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

/// Parses a device spec without opening anything, and refuses a CUDA device on a build without the `cuda`
/// feature, so that a caller can reject it before any work. The one parser of the device grammar: [`select`]
/// and `train::TrainConfig::validate` call it.
///
/// ```
/// use cifar10_model::device::{DeviceSpec, parse};
/// assert_eq!(parse(" CPU ").unwrap(), DeviceSpec::Cpu);
/// assert_eq!(parse("auto").unwrap(), DeviceSpec::Auto);
/// assert!(parse("cuda:x").is_err());
/// assert_eq!(parse("cuda:1").is_ok(), cifar10_model::device::CUDA_BUILT);
/// ```
pub fn parse(spec: &str) -> Result<DeviceSpec> {
    let bad = |reason: String| Error::Device {
        spec: spec.to_string(),
        reason,
    };
    let parsed = match spec.trim().to_ascii_lowercase().as_str() {
        "cpu" => DeviceSpec::Cpu,
        "auto" => DeviceSpec::Auto,
        "cuda" => DeviceSpec::Cuda(0),
        s => match s.strip_prefix("cuda:") {
            Some(n) => DeviceSpec::Cuda(
                n.parse::<usize>()
                    .map_err(|_| bad(format!("expected cuda:N with N a GPU index, found {n:?}")))?,
            ),
            None => return Err(bad("expected auto, cpu, cuda or cuda:N".into())),
        },
    };
    if matches!(parsed, DeviceSpec::Cuda(_)) && !CUDA_BUILT {
        return Err(bad(
            "this binary was built without CUDA support; rebuild with `--features cuda`".into(),
        ));
    }
    Ok(parsed)
}

/// Parses a device spec ([`parse`]) and opens the device; returns it with a one-line description of the choice.
/// `auto` takes CUDA device 0 when the build has CUDA and it opens, else the CPU (saying why).
pub fn select(spec: &str) -> Result<(Device, String)> {
    let bad = |reason: String| Error::Device {
        spec: spec.to_string(),
        reason,
    };
    match parse(spec)? {
        DeviceSpec::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceSpec::Auto => {
            if !CUDA_BUILT {
                return Ok((
                    Device::Cpu,
                    "cpu (auto: built without the `cuda` feature)".into(),
                ));
            }
            match Device::new_cuda(0) {
                Ok(d) => Ok((d, "cuda:0 (auto)".into())),
                Err(e) => Ok((
                    Device::Cpu,
                    format!("cpu (auto: CUDA device 0 unavailable: {e})"),
                )),
            }
        }
        DeviceSpec::Cuda(ordinal) => {
            let d = Device::new_cuda(ordinal)
                .map_err(|e| bad(format!("cannot open CUDA device {ordinal}: {e}")))?;
            Ok((d, format!("cuda:{ordinal}")))
        }
    }
}

/// Prepares the CPU threads for training: subnormal floats are flushed to zero on this thread and rayon's pool
/// (see `cpu_ops::flush_denormals_everywhere`; without it Adam's decaying moments slow training by ~30% after a
/// few epochs). A process-wide setting: applications call it (through `train::tune_cpu_process`), libraries never
/// do. Harmless for CUDA runs.
pub fn prepare_cpu_threads() {
    cpu_ops::flush_denormals_everywhere();
}

/// Why `precision` would run slower than f32 on this device, where it would: bf16 on a CPU whose bf16 GEMM is
/// slower than its f32 one (measured once per process, see `cpu_ops::gemm_speed`; the Intel Xeon measured,
/// Emerald Rapids, runs it at about half f32's speed). `None` for f32, other devices and CPUs where bf16 pays.
/// Callers show it as a warning: the run itself is valid.
pub fn precision_advice(device: &Device, precision: crate::Precision) -> Option<String> {
    if precision != crate::Precision::Bf16 || !device.is_cpu() {
        return None;
    }
    let s = cpu_ops::gemm_speed()?;
    (s.ratio() < 1.0).then(|| {
        format!(
            "bf16 convolutions will be slower than f32 on this CPU: its bf16 GEMM measured {:.0} GFLOP/s \
             against {:.0} for f32 ({:.2}x, one thread); f32 trains faster here",
            s.bf16_gflops,
            s.f32_gflops,
            s.ratio()
        )
    })
}

/// The faster convolution arithmetic for a model on `device`, with why: bf16 on a CPU that runs it (AVX512-BF16,
/// this crate's kernels, not `stock_ops`) and whose bf16 GEMM measures faster than its f32 one (once per process,
/// `cpu_ops::gemm_speed`: 0.5x on the Intel Xeon measured; on the AMD Zen 4/5, whose bf16 convolutions ran
/// 1.35-1.72x f32's, expected above 1 but not run there), else f32 (every other device and CPU). It measures the
/// build that runs: in a debug build (workspace crates at `opt-level = 1`) the f32 GEMM measured 37 GFLOP/s on that
/// Xeon against 161 in release, the bf16 one 75 against 80 (both while a training run shared the cores), so there
/// a debug build picks bf16. The measurement, not the CPU's feature flags, decides: both kinds of CPU have the same
/// flags.
///
/// ```
/// use cifar10_model::{Precision, device::fastest_precision};
/// let (p, why) = fastest_precision(&candle_core::Device::Cpu, true);
/// assert_eq!(p, Precision::F32);
/// assert!(why.contains("stock"));
/// ```
pub fn fastest_precision(device: &Device, stock_ops: bool) -> (crate::Precision, String) {
    let f32 = |why: &str| (crate::Precision::F32, why.to_string());
    if !device.is_cpu() {
        return f32("bf16 is implemented for the CPU kernels only");
    }
    if stock_ops {
        return f32("bf16 needs the cpu-ops kernels, not the stock ops");
    }
    let Some(s) = cpu_ops::gemm_speed() else {
        return f32("this CPU has no AVX512-BF16 (or a CPU_OPS_MAX_ISA cap below AVX-512)");
    };
    let measured = format!(
        "this CPU's bf16 GEMM measured {:.0} GFLOP/s against {:.0} for f32 ({:.2}x, one thread)",
        s.bf16_gflops,
        s.f32_gflops,
        s.ratio()
    );
    if s.ratio() > 1.0 {
        (crate::Precision::Bf16, measured)
    } else {
        (crate::Precision::F32, measured)
    }
}

/// The kernel settings for a model on `device` in `precision` with the Winograd tiles `winograd`, on candle's stock
/// CPU ops with `stock_ops` (for comparisons; candle 0.11.1's stock max-pool backward scales a window's gradient by
/// 1/4, so training differs, not only its speed). bf16 runs on CPUs with AVX512-BF16 through the `cpu-ops`
/// kernels; on other devices, or with the stock ops, only f32 is offered, and asking for bf16 there is an error
/// naming the precision. Winograd tiles other than [`Winograd::Auto`](crate::Winograd::Auto) are a choice of the
/// `cpu-ops` kernels on the CPU: asking for them elsewhere is an error naming the tiles.
///
/// ```
/// use cifar10_model::{Precision, Winograd, device::kernels};
/// let cpu = candle_core::Device::Cpu;
/// let k = kernels(&cpu, Precision::F32, true, Winograd::Auto).unwrap();
/// assert!(k.stock_ops());
/// assert!(kernels(&cpu, Precision::Bf16, true, Winograd::Auto).is_err());
/// assert!(kernels(&cpu, Precision::F32, true, Winograd::F4x4).is_err());
/// let k = kernels(&cpu, Precision::F32, false, Winograd::F2x2).unwrap();
/// assert_eq!(k.winograd_tiles(), Winograd::F2x2);
/// ```
pub fn kernels(
    device: &Device,
    precision: crate::Precision,
    stock_ops: bool,
    winograd: crate::Winograd,
) -> Result<cpu_ops::KernelConfig> {
    if winograd != crate::Winograd::Auto {
        let refuse = |reason: &str| {
            Err(Error::Winograd {
                tiles: winograd.to_string(),
                reason: reason.into(),
            })
        };
        if !device.is_cpu() {
            return refuse(
                "the Winograd tiles are a choice of the CPU kernels; leave it at auto on this device",
            );
        }
        if stock_ops {
            return refuse(
                "the Winograd tiles are a choice of the cpu-ops kernels (not the stock ops)",
            );
        }
    }
    let bad = |reason: String| Error::Precision {
        precision: precision.to_string(),
        reason,
    };
    if precision == crate::Precision::Bf16 {
        if !device.is_cpu() {
            return Err(bad(
                "bf16 is implemented for the CPU kernels only; use f32 on this device".into(),
            ));
        }
        if stock_ops {
            return Err(bad(
                "bf16 needs the cpu-ops kernels (not the stock ops)".into()
            ));
        }
    }
    cpu_ops::KernelConfig::default()
        .with_stock_ops(stock_ops)
        .with_winograd_tiles(winograd)
        .with_precision(precision)
        .map_err(|e| bad(e.to_string()))
}
