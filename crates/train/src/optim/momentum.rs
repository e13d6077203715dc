//! A momentum buffer of one parameter, shared by [`super::Sgd`] and [`super::Muon`]: on the host for CPU
//! parameters (updated in place by the optimizers' own kernels), a tensor on other devices; saved and restored as
//! a tensor under a stable key.

use crate::{Error, Result};
use candle_core::{Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

pub(super) enum Buffer {
    Host(Vec<f32>),
    Device(Tensor),
}

impl Buffer {
    /// Zeros shaped like `var`, where its optimizer updates it.
    pub(super) fn zeros(var: &Var) -> Result<Self> {
        Ok(if var.device().is_cpu() {
            Buffer::Host(vec![0.0; var.elem_count()])
        } else {
            Buffer::Device(var.zeros_like()?)
        })
    }

    /// The buffer as a tensor shaped like `var` (for `Optimizer::state`).
    pub(super) fn to_tensor(&self, var: &Var) -> Result<Tensor> {
        Ok(match self {
            Buffer::Host(b) => Tensor::from_slice(b, var.shape(), &Device::Cpu)?,
            Buffer::Device(t) => t.clone(),
        })
    }

    /// Restores the buffer from `tensors[key]`, which must exist with `var`'s shape (`path` is named in errors).
    pub(super) fn load(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        key: &str,
        var: &Var,
        path: &Path,
    ) -> Result<()> {
        let t = tensors.get(key).ok_or_else(|| Error::Resume {
            path: path.to_path_buf(),
            reason: format!("optimizer tensor {key:?} is missing"),
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Resume {
                path: path.to_path_buf(),
                reason: format!(
                    "optimizer tensor {key:?} has shape {:?}, expected {:?}",
                    t.dims(),
                    var.dims()
                ),
            });
        }
        *self = match self {
            Buffer::Host(_) => Buffer::Host(t.flatten_all()?.to_vec1()?),
            Buffer::Device(_) => Buffer::Device(t.to_device(var.device())?),
        };
        Ok(())
    }
}
