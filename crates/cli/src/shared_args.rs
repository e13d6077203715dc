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
    /// Convolution arithmetic: f32, or bf16 products with f32 sums (CPUs with AVX512-BF16; about twice the
    /// convolutions' speed).
    #[arg(long, default_value = "f32")]
    pub precision: model::Precision,
}

impl ComputeArgs {
    /// Opens the device and makes the kernel settings (`stock_ops`: candle's stock ops): the device, its
    /// description, the settings.
    pub fn open(
        &self,
        stock_ops: bool,
    ) -> Result<(candle_core::Device, String, model::KernelConfig)> {
        let (device, desc) = model::device::select(&self.device).context("--device")?;
        let kernels =
            model::device::kernels(&device, self.precision, stock_ops).context("--precision")?;
        Ok((device, desc, kernels))
    }
}

/// `--tta` and `--tta-shift` (train, evaluate, predict, serve).
#[derive(Args, Debug, Clone, Default)]
pub struct TtaArgs {
    /// Average the predictions of each image and its mirror image [train: the preset's (fast, fast-long,
    /// airbench94: on); evaluate, predict, serve: off].
    #[arg(long)]
    pub tta: bool,
    /// With --tta, also the 1-pixel reflect-shifted views (airbench's 6-view TTA) [train: the preset's
    /// (airbench94: on); elsewhere: off].
    #[arg(long)]
    pub tta_shift: bool,
}

impl TtaArgs {
    /// The TTA these flags ask for on top of `base` (a preset's; `Tta::None` where there is none): `--tta` turns
    /// the mirror on, `--tta-shift` the shifted views, which need the mirror (from `--tta` or `base`).
    pub fn apply(&self, base: model::infer::Tta) -> Result<model::infer::Tta> {
        use model::infer::Tta;
        let mirror = self.tta || base != Tta::None;
        let shift = self.tta_shift || base == Tta::MirrorShift;
        Ok(match (mirror, shift) {
            (false, false) => Tta::None,
            (false, true) => bail!("--tta-shift: needs --tta"),
            (true, false) => Tta::Mirror,
            (true, true) => Tta::MirrorShift,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::infer::Tta;

    #[test]
    fn tta_flags_on_top_of_a_base() {
        let f = |tta, tta_shift| TtaArgs { tta, tta_shift };
        assert_eq!(f(false, false).apply(Tta::None).unwrap(), Tta::None);
        assert_eq!(f(true, false).apply(Tta::None).unwrap(), Tta::Mirror);
        assert_eq!(f(true, true).apply(Tta::None).unwrap(), Tta::MirrorShift);
        assert!(
            f(false, true)
                .apply(Tta::None)
                .unwrap_err()
                .to_string()
                .contains("--tta-shift: needs --tta")
        );
        // A preset's TTA stays on; --tta-shift on top of a mirror preset adds the shifts.
        assert_eq!(f(false, false).apply(Tta::Mirror).unwrap(), Tta::Mirror);
        assert_eq!(f(false, true).apply(Tta::Mirror).unwrap(), Tta::MirrorShift);
        assert_eq!(
            f(true, false).apply(Tta::MirrorShift).unwrap(),
            Tta::MirrorShift
        );
    }
}
