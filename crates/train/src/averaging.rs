//! Weight averaging as a policy the training loop calls after every optimizer step.
//!
//! - [`Averaging::Lookahead`] (airbench's): every `every` steps the average moves towards the weights,
//!   `avg ← decay·avg + (1 − decay)·θ` with `decay = base · (step/total)^power`, and the weights jump to the
//!   average (`θ ← avg`); at the end of the run the weights become the average.
//! - [`Averaging::Ema`], its simpler sibling: the same average with a constant decay, the weights left alone
//!   while training; at the end the weights become the average.
//!
//! Both cover the parameters and the buffers (BatchNorm running statistics); their state is saved in
//! `last.safetensors` (`avg.<name>`) so a resumed run continues exactly.

use crate::{Error, Result};
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor};
use model::Classifier;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Which average, if any, the run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Averaging {
    /// No average: the run's weights are the optimizer's.
    #[default]
    None,
    /// airbench's Lookahead: every `every` steps `avg ← d·avg + (1 − d)·θ` with `d = base · (step/total)^power`,
    /// then `θ ← avg`.
    Lookahead {
        /// Optimizer steps between updates (at least 1).
        every: usize,
        /// The decay `d` at the last step, in `[0, 1]`.
        base: f64,
        /// The exponent of `step/total` (finite, at least 0; 0 keeps `d` at `base`).
        power: f64,
    },
    /// An exponential moving average with a constant decay; the weights are left alone until the end of the run,
    /// when they become the average.
    Ema {
        /// Optimizer steps between updates (at least 1).
        every: usize,
        /// The weight `d` of the old average, in `[0, 1]`.
        decay: f64,
    },
}

impl Averaging {
    /// airbench94's Lookahead: every 5 steps, decay `0.95^5 · (step/total)^3`.
    pub fn airbench() -> Self {
        Averaging::Lookahead {
            every: 5,
            base: 0.95f64.powi(5),
            power: 3.0,
        }
    }

    /// Checks the numbers (the ranges above); the error message says which is out of range, and the caller names
    /// the setting (`averaging`).
    pub fn validate(&self) -> std::result::Result<(), String> {
        match *self {
            Averaging::None => Ok(()),
            Averaging::Lookahead { every, base, power } => {
                if every == 0 || !(0.0..=1.0).contains(&base) || !power.is_finite() || power < 0.0 {
                    Err(format!(
                        "lookahead needs every >= 1, base in [0, 1], power >= 0; found every {every}, base {base}, power {power}"
                    ))
                } else {
                    Ok(())
                }
            }
            Averaging::Ema { every, decay } => {
                if every == 0 || !(0.0..=1.0).contains(&decay) {
                    Err(format!(
                        "ema needs every >= 1 and decay in [0, 1]; found every {every}, decay {decay}"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The running average of a model's parameters and buffers.
pub struct WeightAverage {
    kind: Averaging,
    avg: Vec<(String, Tensor)>,
}

fn state_vars(model: &dyn Classifier) -> impl Iterator<Item = (&str, &candle_core::Var)> {
    model.params().iter().chain(model.buffers().iter())
}

impl WeightAverage {
    /// Starts the average at the model's current state (`None` for [`Averaging::None`]).
    pub fn new(kind: Averaging, model: &dyn Classifier) -> Result<Option<Self>> {
        if kind == Averaging::None {
            return Ok(None);
        }
        let avg = state_vars(model)
            .map(|(n, v)| Ok((n.to_string(), v.as_tensor().detach().copy()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self { kind, avg }))
    }

    /// `avg ← decay·avg + (1 − decay)·θ`, then `θ ← avg` when `write_back`. On the CPU both update in place
    /// (no new tensors); elsewhere with candle's ops.
    fn blend(&mut self, model: &dyn Classifier, decay: f64, write_back: bool) -> Result<()> {
        for ((_, a), (_, v)) in self.avg.iter_mut().zip(state_vars(model)) {
            let t = v.as_tensor();
            if a.device().is_cpu()
                && t.device().is_cpu()
                && a.dtype() == DType::F32
                && t.dtype() == DType::F32
            {
                a.inplace_op2(
                    t,
                    &HostBlend {
                        decay: decay as f32,
                    },
                )?;
                if write_back {
                    t.inplace_op2(a, &HostCopy)?;
                }
                continue;
            }
            // Detached, so that no average keeps the previous one alive through an autograd graph.
            let next = ((&*a * decay)? + (t.detach() * (1.0 - decay))?)?.detach();
            if write_back {
                v.set(&next)?;
            }
            *a = next;
        }
        Ok(())
    }

    /// Called after optimizer step `step` (1-based) of `total`.
    pub fn after_step(&mut self, model: &dyn Classifier, step: usize, total: usize) -> Result<()> {
        match self.kind {
            Averaging::None => Ok(()),
            Averaging::Lookahead { every, base, power } => {
                if !step.is_multiple_of(every) {
                    return Ok(());
                }
                let frac = step as f64 / total.max(1) as f64;
                self.blend(model, base * frac.powf(power), true)
            }
            Averaging::Ema { every, decay } => {
                if !step.is_multiple_of(every) {
                    return Ok(());
                }
                self.blend(model, decay, false)
            }
        }
    }

    /// The end of training: the weights become the average.
    pub fn finish(&mut self, model: &dyn Classifier) -> Result<()> {
        self.blend(model, 1.0, true)
    }

    /// The average as named tensors (`avg.<name>`): copies, since the average is updated in place.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.avg
            .iter()
            .map(|(n, t)| Ok((format!("avg.{n}"), t.detach().copy()?)))
            .collect()
    }

    /// Restores [`WeightAverage::state`].
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        for (n, a) in &mut self.avg {
            let key = format!("avg.{n}");
            let t = tensors.get(&key).ok_or_else(|| Error::Resume {
                path: path.to_path_buf(),
                reason: format!("weight-average tensor {key:?} is missing"),
            })?;
            if t.dims() != a.dims() {
                return Err(Error::Resume {
                    path: path.to_path_buf(),
                    reason: format!(
                        "weight-average tensor {key:?} has shape {:?}, expected {:?}",
                        t.dims(),
                        a.dims()
                    ),
                });
            }
            // A copy of its own: the average is updated in place.
            *a = t.to_device(a.device())?.to_dtype(a.dtype())?.copy()?;
        }
        Ok(())
    }
}

/// The contiguous f32 values of an in-place op's operands (`op` names it in errors).
fn host_pair<'a>(
    op: &str,
    dst: &'a mut CpuStorage,
    dl: &Layout,
    src: &'a CpuStorage,
    sl: &Layout,
) -> candle_core::Result<(&'a mut [f32], &'a [f32])> {
    let (Some((d0, d1)), Some((s0, s1))) = (dl.contiguous_offsets(), sl.contiguous_offsets())
    else {
        candle_core::bail!("{op}: the average and the weights must be contiguous");
    };
    let (CpuStorage::F32(d), CpuStorage::F32(s)) = (dst, src) else {
        candle_core::bail!("{op}: expected f32 tensors");
    };
    if d1 - d0 != s1 - s0 {
        candle_core::bail!("{op}: the average does not match the weights' size");
    }
    Ok((&mut d[d0..d1], &s[s0..s1]))
}

/// `avg ← decay·avg + (1 − decay)·θ` in place (`avg` the destination, `θ` the source).
struct HostBlend {
    decay: f32,
}

impl InplaceOp2 for HostBlend {
    fn name(&self) -> &'static str {
        "weight-average-blend"
    }

    fn cpu_fwd(
        &self,
        a: &mut CpuStorage,
        al: &Layout,
        t: &CpuStorage,
        tl: &Layout,
    ) -> candle_core::Result<()> {
        let (a, t) = host_pair(self.name(), a, al, t, tl)?;
        let (d, e) = (self.decay, 1.0 - self.decay);
        for (a, &t) in a.iter_mut().zip(t) {
            *a = d * *a + e * t;
        }
        Ok(())
    }
}

/// `θ ← avg` in place (`θ` the destination).
struct HostCopy;

impl InplaceOp2 for HostCopy {
    fn name(&self) -> &'static str {
        "weight-average-copy"
    }

    fn cpu_fwd(
        &self,
        t: &mut CpuStorage,
        tl: &Layout,
        a: &CpuStorage,
        al: &Layout,
    ) -> candle_core::Result<()> {
        let (t, a) = host_pair(self.name(), t, tl, a, al)?;
        t.copy_from_slice(a);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use model::{Mode, Params};

    struct One {
        params: Params,
        buffers: Params,
    }

    impl One {
        fn new(p: f32, b: f32) -> Self {
            let mut params = Params::default();
            params.push("w", Var::new(&[p], &Device::Cpu).unwrap());
            let mut buffers = Params::default();
            buffers.push("running", Var::new(&[b], &Device::Cpu).unwrap());
            Self { params, buffers }
        }
        /// The same with f64 variables: the blend's fallback (candle ops) instead of the in-place CPU update.
        fn new_f64(p: f32, b: f32) -> Self {
            let mut params = Params::default();
            params.push("w", Var::new(&[p as f64], &Device::Cpu).unwrap());
            let mut buffers = Params::default();
            buffers.push("running", Var::new(&[b as f64], &Device::Cpu).unwrap());
            Self { params, buffers }
        }
        fn set(&self, p: f32, b: f32) {
            let s = |v: &Var, x: f32| {
                let t = Tensor::new(&[x], &Device::Cpu).unwrap();
                v.set(&t.to_dtype(v.dtype()).unwrap()).unwrap()
            };
            s(self.params.get("w").unwrap(), p);
            s(self.buffers.get("running").unwrap(), b);
        }
        fn get(&self) -> (f32, f32) {
            let g = |v: &Var| {
                v.as_tensor()
                    .to_dtype(candle_core::DType::F32)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()[0]
            };
            (
                g(self.params.get("w").unwrap()),
                g(self.buffers.get("running").unwrap()),
            )
        }
    }

    impl Classifier for One {
        fn name(&self) -> &'static str {
            "one"
        }
        fn forward(&self, x: &Tensor, _: Mode<'_>) -> model::Result<Tensor> {
            Ok(x.clone())
        }
        fn params(&self) -> &Params {
            &self.params
        }
        fn device(&self) -> &Device {
            &Device::Cpu
        }
        fn num_classes(&self) -> usize {
            2
        }
        fn buffers(&self) -> &Params {
            &self.buffers
        }
    }

    /// By hand: avg starts at (1, 10). Step 5 of 10 with base 0.5, power 1: decay 0.25; θ = (3, 20) →
    /// avg = 0.25·(1, 10) + 0.75·(3, 20) = (2.5, 17.5), and θ jumps there. Steps 6..9 do nothing. Step 10: decay
    /// 0.5; θ = (4.5, 17.5) → avg = (3.5, 17.5). `finish`: θ = avg.
    #[test]
    fn lookahead_matches_hand_computation() {
        lookahead_case(One::new(1.0, 10.0));
    }

    /// The fallback path (not f32 on the CPU) gives the same numbers, and its average stays out of any graph.
    #[test]
    fn lookahead_fallback_matches_hand_computation() {
        lookahead_case(One::new_f64(1.0, 10.0));
    }

    fn lookahead_case(m: One) {
        let kind = Averaging::Lookahead {
            every: 5,
            base: 0.5,
            power: 1.0,
        };
        let mut a = WeightAverage::new(kind, &m).unwrap().unwrap();
        m.set(3.0, 20.0);
        for step in 1..=5 {
            a.after_step(&m, step, 10).unwrap();
        }
        assert_eq!(m.get(), (2.5, 17.5));
        m.set(4.5, 17.5);
        for step in 6..=9 {
            a.after_step(&m, step, 10).unwrap();
            assert_eq!(m.get(), (4.5, 17.5));
        }
        // The saved state is a snapshot: the in-place updates after it leave it alone.
        let saved = a.state().unwrap();
        assert!(saved.iter().all(|(_, t)| !t.track_op()));
        a.after_step(&m, 10, 10).unwrap();
        assert_eq!(m.get(), (3.5, 17.5));
        assert!(a.avg.iter().all(|(_, t)| !t.track_op()));
        assert_eq!(saved[0].0, "avg.w");
        let f = |t: &Tensor| {
            t.to_dtype(candle_core::DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(f(&saved[0].1), [2.5]);
        m.set(100.0, 0.0);
        a.finish(&m).unwrap();
        assert_eq!(m.get(), (3.5, 17.5));
        // Restoring it (a copy of the loaded tensor, so later updates do not write into the caller's map).
        let map: HashMap<String, Tensor> = saved.into_iter().collect();
        a.load_state(&map, Path::new("last.safetensors")).unwrap();
        m.set(0.0, 0.0);
        a.finish(&m).unwrap();
        assert_eq!(m.get(), (2.5, 17.5));
        assert_eq!(f(&map["avg.w"]), [2.5]);
    }

    /// EMA leaves the weights alone until `finish`.
    #[test]
    fn ema_averages_without_touching_the_weights() {
        let m = One::new(0.0, 0.0);
        let kind = Averaging::Ema {
            every: 1,
            decay: 0.5,
        };
        let mut a = WeightAverage::new(kind, &m).unwrap().unwrap();
        m.set(4.0, 8.0);
        a.after_step(&m, 1, 3).unwrap();
        a.after_step(&m, 2, 3).unwrap();
        assert_eq!(m.get(), (4.0, 8.0));
        a.finish(&m).unwrap();
        assert_eq!(m.get(), (3.0, 6.0));
        assert!(WeightAverage::new(Averaging::None, &m).unwrap().is_none());
    }
}
