//! SGD as PyTorch's `torch.optim.SGD` (dampening 0): for each parameter with a gradient `g`,
//! `d = g + wd·θ; b ← μ·b + d; d ← d + μ·b` (Nesterov) or `d ← b`; `θ ← θ − lr·d`, with a learning-rate scale and a
//! weight decay per parameter group.

use super::Optimizer;
use super::momentum::Buffer;
use crate::Result;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor, Var};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// SGD hyper-parameters shared by every group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Base learning rate (a group's rate is this times its `lr_scale`).
    pub lr: f64,
    /// The momentum factor μ (0: plain SGD).
    pub momentum: f64,
    /// Nesterov momentum: each step is `d + μ·b` instead of `b`.
    pub nesterov: bool,
}

/// A set of parameters with its own learning-rate scale and (coupled, PyTorch-style) weight decay.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// The parameters with their names (which key the saved state, `sgd.momentum.<name>`).
    pub params: Vec<(String, Var)>,
    /// Multiplies the base learning rate for these parameters.
    pub lr_scale: f64,
    /// Coupled weight decay: `wd·θ` is added to the gradient before the momentum.
    pub weight_decay: f64,
}

/// A group's own learning-rate decay ([`Sgd::with_group_decay`]): linear from the initial rate to zero over a
/// span given in steps, or in epochs (turned into `ceil(epochs × steps per epoch)` steps when the trainer plans the
/// run, [`Optimizer::plan`]; until then the group follows the base rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupDecay {
    /// Over this many steps.
    Steps(u64),
    /// Over this many epochs.
    Epochs(f64),
}

const CHUNK: usize = 1 << 15;

struct HostSgd<'a> {
    buf: Mutex<&'a mut [f32]>,
    grad: &'a Tensor,
    lr: f32,
    wd: f32,
    momentum: f32,
    nesterov: bool,
}

impl HostSgd<'_> {
    fn update(&self, theta: &mut [f32], g: &[f32], b: &mut [f32]) {
        let (mu, wd, lr) = (self.momentum, self.wd, self.lr);
        for ((t, &gi), bi) in theta.iter_mut().zip(g).zip(b.iter_mut()) {
            let d = gi + wd * *t;
            let b1 = mu * *bi + d;
            *bi = b1;
            let step = if self.nesterov { d + mu * b1 } else { b1 };
            *t -= lr * step;
        }
    }
}

impl InplaceOp1 for HostSgd<'_> {
    fn name(&self) -> &'static str {
        "sgd-host-update"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        super::with_host_slices("sgd", storage, layout, self.grad, |theta, g| {
            let mut guard = self
                .buf
                .lock()
                .map_err(|_| candle_core::Error::Msg("sgd: poisoned momentum".into()))?;
            let b = &mut **guard;
            if b.len() != theta.len() {
                candle_core::bail!("sgd: the momentum does not match the parameter's size");
            }
            if theta.len() < 2 * CHUNK {
                self.update(theta, g, b);
            } else {
                theta
                    .par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK))
                    .zip(b.par_chunks_mut(CHUNK))
                    .for_each(|((t, g), b)| self.update(t, g, b));
            }
            Ok(())
        })
    }
}

struct Slot {
    name: String,
    var: Var,
    lr_scale: f64,
    weight_decay: f64,
    group: usize,
    buf: Buffer,
}

/// SGD with momentum (optionally Nesterov) over parameter groups.
pub struct Sgd {
    slots: Vec<Slot>,
    step: u64,
    /// The base rate given to [`Sgd::new`] (groups with their own decay start from it).
    initial_lr: f64,
    /// Per group index: its own decay, and that decay's span in steps once known.
    decays: Vec<(usize, GroupDecay, Option<u64>)>,
    /// The hyper-parameters; `lr` is the current base learning rate.
    pub config: SgdConfig,
}

impl Sgd {
    /// SGD over `groups`, with zero momentum buffers. The values are not checked; it fails only when a buffer
    /// cannot be allocated on a parameter's device.
    pub fn new(groups: Vec<ParamGroup>, config: SgdConfig) -> Result<Self> {
        let mut slots = Vec::new();
        for (group, g) in groups.into_iter().enumerate() {
            for (name, var) in g.params {
                let buf = Buffer::zeros(&var)?;
                slots.push(Slot {
                    name,
                    var,
                    lr_scale: g.lr_scale,
                    weight_decay: g.weight_decay,
                    group,
                    buf,
                });
            }
        }
        Ok(Self {
            slots,
            step: 0,
            initial_lr: config.lr,
            decays: Vec::new(),
            config,
        })
    }

    /// Group `group` (its index in the `groups` given to [`Sgd::new`]) no longer follows the base rate that
    /// [`Optimizer::set_lr`] sets: its rate is the initial base rate times its `lr_scale`, decaying linearly to zero
    /// over `decay` (`initial · (1 − k / span)` at the `k`-th step, 0-based; zero from step `span` on). airbench
    /// trains its whitening bias this way over its first 3 epochs.
    pub fn with_group_decay(mut self, group: usize, decay: GroupDecay) -> Self {
        let span = match decay {
            GroupDecay::Steps(n) => Some(n),
            GroupDecay::Epochs(_) => None,
        };
        self.decays.retain(|d| d.0 != group);
        self.decays.push((group, decay, span));
        self
    }

    /// The rate of `slot`'s group at the step being taken (`self.step` already counts it).
    fn group_lr(&self, group: usize, lr_scale: f64) -> f64 {
        match self.decays.iter().find(|d| d.0 == group) {
            Some(&(_, _, Some(span))) => {
                let k = self.step.saturating_sub(1) as f64;
                let f = if span == 0 {
                    0.0
                } else {
                    (1.0 - k / span as f64).max(0.0)
                };
                self.initial_lr * lr_scale * f
            }
            _ => self.config.lr * lr_scale,
        }
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let lrs: Vec<f64> = self
            .slots
            .iter()
            .map(|s| self.group_lr(s.group, s.lr_scale))
            .collect();
        for (s, lr) in self.slots.iter_mut().zip(lrs) {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            match &mut s.buf {
                Buffer::Host(b) => {
                    let g = g.contiguous()?;
                    let k = HostSgd {
                        buf: Mutex::new(b.as_mut_slice()),
                        grad: &g,
                        lr: lr as f32,
                        wd: s.weight_decay as f32,
                        momentum: c.momentum as f32,
                        nesterov: c.nesterov,
                    };
                    s.var.as_tensor().inplace_op1(&k)?;
                }
                Buffer::Device(b) => {
                    let theta = s.var.as_tensor();
                    let d = (g + (theta * s.weight_decay)?)?;
                    let next = ((&*b * c.momentum)? + &d)?;
                    let step = if c.nesterov {
                        (d + (&next * c.momentum)?)?
                    } else {
                        next.clone()
                    };
                    s.var.set(&(theta - (step * lr)?)?)?;
                    *b = next;
                }
            }
        }
        Ok(())
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn steps(&self) -> u64 {
        self.step
    }

    fn plan(&mut self, steps_per_epoch: usize, _total_steps: usize) {
        for d in &mut self.decays {
            if let GroupDecay::Epochs(e) = d.1 {
                d.2 = Some((e * steps_per_epoch as f64).ceil().max(0.0) as u64);
            }
        }
    }

    /// The momentum buffers as `sgd.momentum.<param>`.
    fn state(&self) -> Result<(Vec<(String, Tensor)>, u64)> {
        let mut out = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            out.push((format!("sgd.momentum.{}", s.name), s.buf.to_tensor(&s.var)?));
        }
        Ok((out, self.step))
    }

    fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
        path: &std::path::Path,
    ) -> Result<()> {
        for s in &mut self.slots {
            let key = format!("sgd.momentum.{}", s.name);
            s.buf.load(tensors, &key, &s.var, path)?;
        }
        self.step = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn one(name: &str, var: &Var, lr_scale: f64, wd: f64) -> ParamGroup {
        ParamGroup {
            params: vec![(name.to_string(), var.clone())],
            lr_scale,
            weight_decay: wd,
        }
    }

    /// Two Nesterov steps by hand: θ=1, loss = 3θ (g = 3), wd 0.5, μ 0.9, lr 0.1·2 (group scale 2).
    /// Step 1: d = 3 + 0.5 = 3.5, b = 3.5, step = 3.5 + 0.9·3.5 = 6.65, θ = 1 − 0.2·6.65 = −0.33.
    /// Step 2: d = 3 + 0.5·(−0.33) = 2.835, b = 0.9·3.5 + 2.835 = 5.985, step = 2.835 + 0.9·5.985 = 8.2215,
    /// θ = −0.33 − 0.2·8.2215 = −1.9743.
    #[test]
    fn nesterov_matches_hand_computation() {
        let var = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let cfg = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
        };
        let mut opt = Sgd::new(vec![one("w", &var, 2.0, 0.5)], cfg).unwrap();
        let mut got = Vec::new();
        for _ in 0..2 {
            let loss = (var.as_tensor() * 3.0).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            got.push(var.as_tensor().to_vec1::<f32>().unwrap()[0]);
        }
        assert!((got[0] + 0.33).abs() < 1e-6, "{got:?}");
        assert!((got[1] + 1.9743).abs() < 1e-5, "{got:?}");
    }

    /// A group with its own decay over 4 steps (planned from 2 epochs of 2 steps) ignores set_lr: plain SGD,
    /// g = 1, lr 0.5 · scale 2 · (1, 0.75, 0.5, 0.25, 0, 0): θ = 1 − (1 + 0.75 + 0.5 + 0.25) = −1.5; the other
    /// group follows set_lr(0.1): θ = 1 − 6 · 0.1.
    #[test]
    fn group_decay_is_linear_to_zero() {
        let a = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let b = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let cfg = SgdConfig {
            lr: 0.5,
            momentum: 0.0,
            nesterov: false,
        };
        let mut opt = Sgd::new(vec![one("a", &a, 2.0, 0.0), one("b", &b, 1.0, 0.0)], cfg)
            .unwrap()
            .with_group_decay(0, GroupDecay::Epochs(2.0));
        opt.plan(2, 100);
        opt.set_lr(0.1);
        for _ in 0..6 {
            let loss = (a.as_tensor() + b.as_tensor()).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let av = a.as_tensor().to_vec1::<f32>().unwrap()[0];
        let bv = b.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((av + 1.5).abs() < 1e-6, "{av}");
        assert!((bv - 0.4).abs() < 1e-6, "{bv}");
    }

    #[test]
    fn plain_momentum_and_groups() {
        let a = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let b = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let cfg = SgdConfig {
            lr: 0.1,
            momentum: 0.5,
            nesterov: false,
        };
        let mut opt = Sgd::new(vec![one("a", &a, 1.0, 0.0), one("b", &b, 10.0, 0.0)], cfg).unwrap();
        for _ in 0..2 {
            let loss = (a.as_tensor() + b.as_tensor()).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        // b1 = 1, b2 = 1.5: θ = 1 − lr·2.5.
        let av = a.as_tensor().to_vec1::<f32>().unwrap()[0];
        let bv = b.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!(
            (av - 0.75).abs() < 1e-6 && (bv + 1.5).abs() < 1e-5,
            "{av} {bv}"
        );
    }

    /// The device path (tensor ops, what CUDA parameters take) forced on CPU parameters computes what the host
    /// kernel does: Nesterov momentum and coupled weight decay over steps that compound.
    #[test]
    fn device_path_matches_host_path() {
        use crate::optim::test_support::{four_compounding_steps, max_diff, param};
        let cfg = SgdConfig {
            lr: 0.05,
            momentum: 0.85,
            nesterov: true,
        };
        let run = |device_path: bool| -> Vec<f32> {
            let var = param();
            let mut opt = Sgd::new(vec![one("w", &var, 2.0, 5e-3)], cfg).unwrap();
            if device_path {
                for s in &mut opt.slots {
                    s.buf = Buffer::Device(s.var.zeros_like().unwrap());
                }
            }
            four_compounding_steps(&var, &mut opt)
        };
        let worst = max_diff(&run(false), &run(true));
        assert!(worst < 1e-5, "largest difference {worst}");
    }

    #[test]
    fn large_parameters_split_like_elementwise() {
        let n = 2 * CHUNK + 77;
        let init: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
        let var = Var::from_vec(init.clone(), n, &Device::Cpu).unwrap();
        let cfg = SgdConfig {
            lr: 0.01,
            momentum: 0.85,
            nesterov: true,
        };
        let mut opt = Sgd::new(vec![one("w", &var, 1.0, 0.1)], cfg).unwrap();
        let (mut theta, mut buf) = (init, vec![0f32; n]);
        for _ in 0..3 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            for i in 0..n {
                let d = 2.0 * theta[i] + 0.1 * theta[i];
                buf[i] = 0.85 * buf[i] + d;
                theta[i] -= 0.01 * (d + 0.85 * buf[i]);
            }
        }
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        let worst = got
            .iter()
            .zip(&theta)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let cfg = SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
        };
        let run = |restore: bool| {
            let var = Var::new(&[1.0f32, 3.0, -1.0], &Device::Cpu).unwrap();
            let mut opt = Sgd::new(vec![one("w", &var, 1.0, 0.01)], cfg).unwrap();
            let step = |opt: &mut Sgd| {
                let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            };
            step(&mut opt);
            if restore {
                let (t, n) = opt.state().unwrap();
                let map: HashMap<_, _> = t.into_iter().collect();
                let mut fresh = Sgd::new(vec![one("w", &var, 1.0, 0.01)], cfg).unwrap();
                fresh
                    .load_state(&map, n, std::path::Path::new("x"))
                    .unwrap();
                opt = fresh;
            }
            step(&mut opt);
            var.as_tensor().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(false), run(true));
    }
}
