//! Flag groups that several commands share (`#[command(flatten)]`), each with the one function that turns it into
//! the libraries' values, so a rule such as "--tta-shift needs --tta" lives in one place.

use anyhow::{Context, Result, bail};
use clap::Args;

/// `--device` and `--precision` (evaluate, predict, serve, bench).
#[derive(Args, Debug, Clone)]
pub struct ComputeArgs {
    /// Where to run: auto | cpu | cuda | cuda:N (auto: CUDA device 0 when this binary was built with the `cuda`
    /// feature and the GPU opens, else the CPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Convolution arithmetic: f32, bf16 products with f32 sums (CPUs with AVX512-BF16: faster on the AMD Zen 4
    /// and 5 measured, half f32's speed on the Intel Xeon measured; a warning says when bf16 is the slower here), or
    /// auto: bf16 where this CPU's bf16 GEMM measures faster than its f32 one, else f32.
    #[arg(long, default_value = "f32")]
    pub precision: PrecisionArg,
    /// Winograd tiles of the 3x3 convolutions on the CPU kernels: f2 (F(2x2, 3x3)), f4 (F(4x4, 3x3): fewer
    /// products, larger rounding in bf16), off (im2col + GEMM), or auto: f4 in f32, f2 in bf16; where the chosen
    /// tiles do not apply (channels, sizes, CPU), a convolution runs as im2col + GEMM.
    #[arg(long, default_value = "auto")]
    pub winograd: model::Winograd,
}

/// `--precision`'s value: a precision, or `auto`, the faster one on the device (see
/// `model::device::fastest_precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    /// This precision.
    Fixed(model::Precision),
    /// The faster precision on the device, measured.
    Auto,
}

impl std::str::FromStr for PrecisionArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "auto" {
            return Ok(PrecisionArg::Auto);
        }
        s.parse()
            .map(PrecisionArg::Fixed)
            .map_err(|_| format!("expected f32, bf16 or auto, found {s:?}"))
    }
}

impl PrecisionArg {
    /// The precision to run on `device` (`stock_ops`: candle's stock ops, which run f32 only); `auto`'s choice is
    /// logged with its reason.
    pub fn resolve(self, device: &candle_core::Device, stock_ops: bool) -> model::Precision {
        match self {
            PrecisionArg::Fixed(p) => p,
            PrecisionArg::Auto => {
                let (p, why) = model::device::fastest_precision(device, stock_ops);
                tracing::info!("--precision auto: {p} ({why})");
                p
            }
        }
    }
}

impl ComputeArgs {
    /// Opens the device and makes the kernel settings (`stock_ops`: candle's stock ops): the device, its
    /// description, the settings.
    pub fn open(
        &self,
        stock_ops: bool,
    ) -> Result<(candle_core::Device, String, model::KernelConfig)> {
        let (device, desc) = model::device::select(&self.device).context("--device")?;
        let precision = self.precision.resolve(&device, stock_ops);
        let kernels = model::device::kernels(&device, precision, stock_ops, self.winograd)
            .map_err(|e| {
                let flag = match e {
                    model::Error::Winograd { .. } => "--winograd",
                    _ => "--precision",
                };
                anyhow::Error::new(e).context(flag)
            })?;
        if let Some(advice) = model::device::precision_advice(&device, precision) {
            tracing::warn!("--precision {precision}: {advice}");
        }
        Ok((device, desc, kernels))
    }
}

/// `--tta [MODE]` and `--tta-shift` (train, evaluate, predict, serve).
#[derive(Args, Debug, Clone, Default)]
pub struct TtaArgs {
    /// Test-time augmentation, `--tta=none|mirror|mirror+shift` (the image and its mirror image; also 1-pixel
    /// shifted views: airbench's 6 views); `--tta` alone turns the mirror on [default: train: the preset's
    /// (fast, fast-long: mirror; airbench94: mirror+shift); evaluate: none; predict, serve: the checkpoint's own,
    /// the one its test accuracy was measured with].
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "on", value_parser = parse_tta)]
    pub tta: Option<TtaFlag>,
    /// The same as `--tta mirror+shift`.
    #[arg(long)]
    pub tta_shift: bool,
}

/// A `--tta` value: a TTA by name, or `on` (the flag alone: at least the mirror).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtaFlag {
    /// `--tta` alone.
    On,
    /// `--tta MODE`.
    Exactly(model::infer::Tta),
}

fn parse_tta(s: &str) -> Result<TtaFlag, String> {
    if s == "on" {
        return Ok(TtaFlag::On);
    }
    s.parse().map(TtaFlag::Exactly)
}

impl TtaArgs {
    /// The TTA these flags ask for on top of `base` (a preset's or a checkpoint's; `Tta::None` where there is
    /// none): no flag keeps `base`; `--tta` alone gives the mirror (or keeps `base`'s shifts); `--tta MODE` gives
    /// MODE; `--tta-shift` adds the shifted views, which need the mirror (from `--tta` or `base`).
    pub fn apply(&self, base: model::infer::Tta) -> Result<model::infer::Tta> {
        use model::infer::Tta;
        let chosen = match self.tta {
            None => base,
            Some(TtaFlag::On) if base == Tta::MirrorShift => Tta::MirrorShift,
            Some(TtaFlag::On) => Tta::Mirror,
            Some(TtaFlag::Exactly(t)) => t,
        };
        Ok(match (chosen, self.tta_shift) {
            (t, false) => t,
            (Tta::None, true) => bail!("--tta-shift: needs --tta (the mirror)"),
            (_, true) => Tta::MirrorShift,
        })
    }
}

/// The checkpoint's classifier session for `predict` and `serve`: on the `--device` with the `--precision` kernels,
/// with the TTA the flags ask for on top of the checkpoint's own evaluation (the TTA its test accuracy was measured
/// with; none for a checkpoint that does not say). Returns it with the device's description.
pub fn open_session(
    checkpoint: &std::path::Path,
    compute: &ComputeArgs,
    tta: &TtaArgs,
) -> Result<(predict::Session, String)> {
    let (device, desc, kernels) = compute.open(false)?;
    let session = predict::Session::load(checkpoint, &device, predict::Tta::None)
        .with_context(|| format!("--checkpoint {}", checkpoint.display()))?
        .with_kernels(kernels)
        .context("--precision")?;
    let tta = tta.apply(session.meta().eval_tta.unwrap_or(predict::Tta::None))?;
    Ok((session.with_tta(tta), desc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::infer::Tta;

    #[test]
    fn precision_values_and_auto_off_the_cpu() {
        let parse = |s: &str| s.parse::<PrecisionArg>();
        assert_eq!(parse("auto"), Ok(PrecisionArg::Auto));
        assert_eq!(parse("f32"), Ok(PrecisionArg::Fixed(model::Precision::F32)));
        assert_eq!(
            parse("bf16"),
            Ok(PrecisionArg::Fixed(model::Precision::Bf16))
        );
        assert_eq!(
            parse("fp16"),
            Err("expected f32, bf16 or auto, found \"fp16\"".into())
        );
        // With candle's stock ops bf16 cannot run, so auto is f32 whatever the CPU.
        assert_eq!(
            PrecisionArg::Auto.resolve(&candle_core::Device::Cpu, true),
            model::Precision::F32
        );
    }

    #[test]
    fn tta_flags_on_top_of_a_base() {
        let on = Some(TtaFlag::On);
        let f = |tta, tta_shift| TtaArgs { tta, tta_shift };
        assert_eq!(f(None, false).apply(Tta::None).unwrap(), Tta::None);
        assert_eq!(f(on, false).apply(Tta::None).unwrap(), Tta::Mirror);
        assert_eq!(f(on, true).apply(Tta::None).unwrap(), Tta::MirrorShift);
        assert!(
            f(None, true)
                .apply(Tta::None)
                .unwrap_err()
                .to_string()
                .contains("--tta-shift: needs --tta")
        );
        // A preset's (or checkpoint's) TTA stays; --tta-shift on top of a mirror adds the shifts.
        assert_eq!(f(None, false).apply(Tta::Mirror).unwrap(), Tta::Mirror);
        assert_eq!(f(None, true).apply(Tta::Mirror).unwrap(), Tta::MirrorShift);
        assert_eq!(
            f(on, false).apply(Tta::MirrorShift).unwrap(),
            Tta::MirrorShift
        );
        // An explicit mode wins, `none` included (a checkpoint's TTA turned off).
        let none = Some(TtaFlag::Exactly(Tta::None));
        assert_eq!(f(none, false).apply(Tta::MirrorShift).unwrap(), Tta::None);
        assert!(f(none, true).apply(Tta::Mirror).is_err());
        let mirror = Some(TtaFlag::Exactly(Tta::Mirror));
        assert_eq!(
            f(mirror, false).apply(Tta::MirrorShift).unwrap(),
            Tta::Mirror
        );
        assert_eq!(
            parse_tta("mirror+shift"),
            Ok(TtaFlag::Exactly(Tta::MirrorShift))
        );
        assert!(parse_tta("flip").is_err());
    }
}
