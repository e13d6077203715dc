//! Learning-rate schedules, evaluated per optimizer step.
//!
//! ```
//! use cifar10_train::Schedule;
//! assert_eq!(Schedule::Constant.lr(1e-3, 0, 100, 0), 1e-3);
//! let end = Schedule::Cosine.lr(1e-3, 100, 100, 0);
//! assert!(end < 1e-9);
//! // One-cycle: warm up to the peak, then anneal.
//! assert!(Schedule::OneCycle.lr(1e-3, 0, 100, 30) < 1e-4);
//! assert!((Schedule::OneCycle.lr(1e-3, 30, 100, 30) - 1e-3).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// How the learning rate moves over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The base rate throughout (the reference), after the optional linear warm-up.
    #[default]
    Constant,
    /// Linear warm-up, then cosine decay from the base rate to 0 at the last step.
    Cosine,
    /// One-cycle (Smith): linear warm-up from base/25 to the base rate, then cosine annealing to base/1e4.
    #[serde(rename = "onecycle")]
    OneCycle,
    /// airbench's: linear warm-up from `LINEAR_START`·base to the base rate, then linear decay to
    /// `LINEAR_END`·base at the last step.
    Linear,
    /// `airbench94_muon.py`'s: `base · (1 − step / total)` (from the base rate down to `base / total` at the last
    /// step), after the optional linear warm-up as [`Schedule::Constant`]'s.
    #[serde(rename = "linear-decay")]
    LinearDecay,
}

/// The first warm-up factor of [`Schedule::Linear`].
pub const LINEAR_START: f64 = 0.2;
/// The final factor of [`Schedule::Linear`].
pub const LINEAR_END: f64 = 0.07;

/// A learning rate for every optimizer step: the trainer asks before each step. Any
/// `Fn(step, total_steps) -> f64` is one; [`ConfigSchedule`] is what a [`crate::TrainConfig`] describes.
///
/// ```
/// use cifar10_train::LrSchedule;
/// let halving = |step: usize, _total: usize| 0.1 * 0.5f64.powi((step / 100) as i32);
/// assert_eq!(halving.lr(250, 1000), 0.025);
/// ```
pub trait LrSchedule: Send {
    /// The learning rate of `step` (0-based) of `total_steps`.
    fn lr(&self, step: usize, total_steps: usize) -> f64;
}

impl<F: Fn(usize, usize) -> f64 + Send> LrSchedule for F {
    fn lr(&self, step: usize, total_steps: usize) -> f64 {
        self(step, total_steps)
    }
}

/// A [`Schedule`] with its base (peak) rate and warm-up length in steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigSchedule {
    /// The shape.
    pub kind: Schedule,
    /// The base (peak) learning rate.
    pub base: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
}

impl LrSchedule for ConfigSchedule {
    fn lr(&self, step: usize, total_steps: usize) -> f64 {
        self.kind
            .lr(self.base, step, total_steps, self.warmup_steps)
    }
}

impl Schedule {
    /// The learning rate at `step` (0-based) of `total` steps, with `warmup` warm-up steps.
    pub fn lr(self, base: f64, step: usize, total: usize, warmup: usize) -> f64 {
        let total = total.max(1);
        let step = step.min(total);
        match self {
            Schedule::Constant | Schedule::Cosine | Schedule::LinearDecay
                if warmup > 0 && step < warmup =>
            {
                base * (step + 1) as f64 / warmup as f64
            }
            Schedule::Constant => base,
            Schedule::LinearDecay => {
                let span = (total - warmup.min(total)).max(1);
                base * (1.0 - (step - warmup.min(step)) as f64 / span as f64)
            }
            Schedule::Cosine => {
                let span = (total - warmup.min(total)).max(1);
                let t = (step - warmup.min(step)) as f64 / span as f64;
                base * 0.5 * (1.0 + (PI * t.min(1.0)).cos())
            }
            Schedule::OneCycle => {
                let start = base / 25.0;
                let end = base / 1e4;
                if warmup > 0 && step < warmup {
                    start + (base - start) * step as f64 / warmup as f64
                } else {
                    let span = (total - warmup.min(total)).max(1);
                    let t = ((step - warmup.min(step)) as f64 / span as f64).min(1.0);
                    end + (base - end) * 0.5 * (1.0 + (PI * t).cos())
                }
            }
            Schedule::Linear => {
                let factor = if step < warmup {
                    let f = step as f64 / warmup as f64;
                    LINEAR_START * (1.0 - f) + f
                } else {
                    let span = (total - warmup.min(total)).max(1);
                    let f = ((step - warmup) as f64 / span as f64).min(1.0);
                    (1.0 - f) + LINEAR_END * f
                };
                base * factor
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
            Schedule::OneCycle => "onecycle",
            Schedule::Linear => "linear",
            Schedule::LinearDecay => "linear-decay",
        })
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            "onecycle" | "one-cycle" => Ok(Schedule::OneCycle),
            "linear" => Ok(Schedule::Linear),
            "linear-decay" => Ok(Schedule::LinearDecay),
            _ => Err(format!(
                "expected constant, cosine, onecycle, linear or linear-decay, found {s:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// airbench94_muon.py: `lr = initial · (1 − step / total_steps)` for step 0..total.
    #[test]
    fn linear_decay_is_the_muon_script() {
        let f = |s| Schedule::LinearDecay.lr(0.24, s, 200, 0);
        assert_eq!(f(0), 0.24);
        assert!((f(100) - 0.12).abs() < 1e-15);
        assert!((f(199) - 0.24 / 200.0).abs() < 1e-15);
        assert_eq!(
            "linear-decay".parse::<Schedule>(),
            Ok(Schedule::LinearDecay)
        );
        assert_eq!(Schedule::LinearDecay.to_string(), "linear-decay");
    }

    #[test]
    fn cosine_is_monotone_after_warmup() {
        let lrs: Vec<f64> = (0..=100)
            .map(|s| Schedule::Cosine.lr(1.0, s, 100, 10))
            .collect();
        assert!((lrs[0] - 0.1).abs() < 1e-12);
        assert!((lrs[9] - 1.0).abs() < 1e-12);
        assert!((lrs[10] - 1.0).abs() < 1e-12);
        assert!((lrs[55] - 0.5).abs() < 1e-12);
        assert!(lrs[10..].windows(2).all(|w| w[1] <= w[0]));
        assert!(lrs[100] < 1e-12);
    }

    #[test]
    fn constant_with_warmup() {
        assert!((Schedule::Constant.lr(2.0, 0, 50, 4) - 0.5).abs() < 1e-12);
        assert_eq!(Schedule::Constant.lr(2.0, 4, 50, 4), 2.0);
        assert_eq!(Schedule::Constant.lr(2.0, 49, 50, 0), 2.0);
    }

    #[test]
    fn onecycle_peaks_at_warmup_end() {
        let lrs: Vec<f64> = (0..=200)
            .map(|s| Schedule::OneCycle.lr(1.0, s, 200, 60))
            .collect();
        let peak = lrs.iter().cloned().fold(0.0, f64::max);
        assert_eq!(peak, lrs[60]);
        assert!((lrs[0] - 0.04).abs() < 1e-12);
        assert!((lrs[200] - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn parses() {
        assert_eq!("onecycle".parse::<Schedule>().unwrap(), Schedule::OneCycle);
        assert_eq!("linear".parse::<Schedule>().unwrap(), Schedule::Linear);
        assert!("step".parse::<Schedule>().is_err());
    }

    /// airbench94's per-step factor: 476 steps, int(0.23·476) = 109 warm-up steps, 0.2 → 1.0 → 0.07.
    #[test]
    fn linear_is_airbench_lambda() {
        let f = |s| Schedule::Linear.lr(1.0, s, 476, 109);
        assert!((f(0) - 0.2).abs() < 1e-12);
        assert!((f(50) - (0.2 * (1.0 - 50.0 / 109.0) + 50.0 / 109.0)).abs() < 1e-12);
        assert!((f(109) - 1.0).abs() < 1e-12);
        let last = 1.0 - 366.0 / 367.0 + 0.07 * 366.0 / 367.0;
        assert!((f(475) - last).abs() < 1e-12);
        assert!((f(476) - 0.07).abs() < 1e-12);
    }
}
