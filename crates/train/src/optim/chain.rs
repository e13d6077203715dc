//! Several optimizers over disjoint parameter sets, stepped together as one (airbench's Muon recipe: Muon on the
//! conv filters, SGD on the rest).

use super::Optimizer;
use crate::Result;
use candle_core::Tensor;
use candle_core::backprop::GradStore;
use std::collections::HashMap;
use std::path::Path;

/// Optimizers stepped one after the other on the same gradients. The schedule's rate goes to each
/// ([`Optimizer::set_lr`]; each scales it by its own groups), so their base rates should be the same number:
/// give every part the rate of the first and express the others' as group scales. The state is the union of the
/// parts' states, whose keys carry each part's name (`muon.momentum.<param>`, `sgd.momentum.<param>`), so the
/// parts must not share parameters.
pub struct Chain {
    name: &'static str,
    parts: Vec<Box<dyn Optimizer>>,
}

impl Chain {
    /// The chain `parts`, reported under `name` (logs and checkpoints). With no parts it does nothing.
    pub fn new(name: &'static str, parts: Vec<Box<dyn Optimizer>>) -> Self {
        Self { name, parts }
    }
}

impl Optimizer for Chain {
    fn name(&self) -> &'static str {
        self.name
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.parts.iter_mut().try_for_each(|p| p.step(grads))
    }

    fn set_lr(&mut self, lr: f64) {
        self.parts.iter_mut().for_each(|p| p.set_lr(lr));
    }

    /// The first part's rate (0 with none).
    fn lr(&self) -> f64 {
        self.parts.first().map_or(0.0, |p| p.lr())
    }

    /// The first part's count (0 with none).
    fn steps(&self) -> u64 {
        self.parts.first().map_or(0, |p| p.steps())
    }

    fn plan(&mut self, steps_per_epoch: usize, total_steps: usize) {
        self.parts
            .iter_mut()
            .for_each(|p| p.plan(steps_per_epoch, total_steps));
    }

    fn state(&self) -> Result<(Vec<(String, Tensor)>, u64)> {
        let mut all = Vec::new();
        for p in &self.parts {
            all.extend(p.state()?.0);
        }
        Ok((all, self.steps()))
    }

    fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
        path: &Path,
    ) -> Result<()> {
        self.parts
            .iter_mut()
            .try_for_each(|p| p.load_state(tensors, steps, path))
    }
}
