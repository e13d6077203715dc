use candle_core::{Tensor, Var};

/// The trainable parameters of a model, in a fixed order, each under a stable name.
#[derive(Debug, Clone, Default)]
pub struct Params {
    entries: Vec<(String, Var)>,
}

impl Params {
    /// Appends `var` under `name` (names are not checked for duplicates).
    pub fn push(&mut self, name: impl Into<String>, var: Var) {
        self.entries.push((name.into(), var));
    }

    /// Every (name, variable) pair, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The variable named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The variables in order (clones of the handles, sharing their storage), e.g. for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.entries.iter().map(|(_, v)| v.clone()).collect()
    }

    /// The number of named tensors (not of scalars: see [`Params::count`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn count(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Snapshot of every parameter (name, tensor) for saving.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.entries
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect()
    }
}
