//! Optimizers behind one trait, so the loop, checkpoints and benches do not name a particular one.
//!
//! - [`Adam`] (PyTorch's rule; AdamW with decoupled weight decay), the reference's optimizer.
//! - [`Sgd`] (PyTorch's SGD: momentum, Nesterov, coupled weight decay) with parameter groups, airbench's optimizer.
//! - [`Muon`] (momentum SGD with each matrix's update orthogonalised by Newton–Schulz iterations),
//!   `airbench94_muon.py`'s optimizer of the conv filters; [`Chain`] steps it together with SGD on the rest.
//!
//! All update CPU parameters in place (candle `InplaceOp1`) and keep a savable state, so a resumed run continues
//! exactly.

mod adam;
mod chain;
mod momentum;
mod muon;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use chain::Chain;
pub use muon::{Muon, MuonConfig, NS_COEFFS, NS_EPS, newton_schulz5};
pub use sgd::{GroupDecay, ParamGroup, Sgd, SgdConfig};

use crate::Result;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Layout, Storage, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// A first-order optimizer over named parameters.
pub trait Optimizer: Send {
    /// A short name for logs and checkpoints (`adam`, `sgd`: as `TrainConfig::optimizer` names them).
    fn name(&self) -> &'static str;
    /// One update from the gradients in `grads`; parameters without a gradient (frozen this step) are left alone.
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// Sets the base learning rate for the next steps (parameter groups scale it).
    fn set_lr(&mut self, lr: f64);
    /// The base learning rate.
    fn lr(&self) -> f64;
    /// Number of steps taken.
    fn steps(&self) -> u64;
    /// Told the run's length before the first step (the trainer calls it when it plans the run), for
    /// optimizers whose settings are given in epochs. The default ignores it.
    fn plan(&mut self, steps_per_epoch: usize, total_steps: usize) {
        let _ = (steps_per_epoch, total_steps);
    }
    /// The state as named tensors (keys prefixed by the optimizer's name) plus the step count.
    fn state(&self) -> Result<(Vec<(String, Tensor)>, u64)>;
    /// Restores the state written by [`Optimizer::state`] (read from `path`, named in errors).
    fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
        path: &Path,
    ) -> Result<()>;
}

/// For the optimizers' in-place host updates (`InplaceOp1::cpu_fwd`): runs `update` on the parameter's f32 values
/// and its gradient's, checking that both are contiguous, on the host, and of one length (`op` names the
/// optimizer in errors).
pub(crate) fn with_host_slices(
    op: &str,
    storage: &mut CpuStorage,
    layout: &Layout,
    grad: &Tensor,
    update: impl FnOnce(&mut [f32], &[f32]) -> candle_core::Result<()>,
) -> candle_core::Result<()> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the parameter is not contiguous");
    };
    let CpuStorage::F32(theta) = storage else {
        candle_core::bail!("{op}: expected an f32 parameter");
    };
    let theta = &mut theta[start..end];
    let (gs, gl) = grad.storage_and_layout();
    let (Storage::Cpu(gs), Some((gstart, gend))) = (&*gs, gl.contiguous_offsets()) else {
        candle_core::bail!("{op}: the gradient is not a contiguous CPU tensor");
    };
    let g = &gs.as_slice::<f32>()?[gstart..gend];
    if g.len() != theta.len() {
        candle_core::bail!("{op}: the gradient does not match the parameter's size");
    }
    update(theta, g)
}

/// Helpers of the optimizers' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Optimizer;
    use candle_core::{Device, Var};

    /// A `[5, 10]` parameter of varied values on the CPU.
    pub(crate) fn param() -> Var {
        let init: Vec<f32> = (0..50)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        Var::from_vec(init, (5, 10), &Device::Cpu).unwrap()
    }

    /// Four steps of `opt` over `var` on the loss Σ θ² + sin θ (gradients that depend on θ, so the steps compound),
    /// then the parameter's values; the values must have moved.
    pub(crate) fn four_compounding_steps(var: &Var, opt: &mut dyn Optimizer) -> Vec<f32> {
        let before: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for _ in 0..4 {
            let t = var.as_tensor();
            let loss = (t.sqr().unwrap() + t.sin().unwrap())
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let after: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(after, before, "the steps did not move the parameter");
        after
    }

    /// The largest element-wise difference.
    pub(crate) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }
}
