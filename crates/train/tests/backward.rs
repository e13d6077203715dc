//! The workspace's patched candle backward (vendor/README.md): a node's first gradient is stored as it comes,
//! not added into a fresh tensor of zeros; a second one is still summed, and a first one of the wrong shape or
//! dtype is still an error. Fails if an update of `vendor/candle-core` loses the patch (the step would be slower
//! and use more memory, with the same numbers).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, Var};

/// Identity forward whose backward hands back `grad`, a tensor the test keeps.
struct GivenGrad {
    grad: Tensor,
}

impl CustomOp1 for GivenGrad {
    fn name(&self) -> &'static str {
        "given-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("given-grad: f32 only");
        };
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("given-grad: contiguous input only");
        };
        Ok((CpuStorage::F32(v[start..end].to_vec()), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, _grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.grad.clone()))
    }
}

#[test]
fn a_single_gradient_is_stored_as_it_comes() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_vec(vec![1f32, 2., 3., 4.], 4, &dev)?;
    let g = Tensor::new(&[0.5f32, -1., 2., 0.25], &dev)?;
    let y = x.apply_op1(GivenGrad { grad: g.clone() })?;
    let grads = y.sum_all()?.backward()?;
    let gx = grads.get(x.as_tensor()).expect("x has a gradient");
    // Upstream candle would hold zeros + g: a new tensor with g's values.
    assert_eq!(gx.id(), g.id(), "the gradient was copied, not stored");
    assert_eq!(gx.to_vec1::<f32>()?, vec![0.5, -1., 2., 0.25]);
    Ok(())
}

#[test]
fn gradients_from_two_consumers_are_summed() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_vec(vec![1f32, -2., 3.], 3, &dev)?;
    let g = Tensor::new(&[1f32, 10., 100.], &dev)?;
    // x reaches the loss through the custom op and through x·3: the two gradients add.
    let a = x.apply_op1(GivenGrad { grad: g.clone() })?;
    let b = x.as_tensor().affine(3.0, 0.0)?;
    let grads = (a + b)?.sum_all()?.backward()?;
    let gx = grads.get(x.as_tensor()).expect("x has a gradient");
    assert_eq!(gx.to_vec1::<f32>()?, vec![4., 13., 103.]);
    // The sum is a new tensor: the kept `g` was not changed in place.
    assert_eq!(g.to_vec1::<f32>()?, vec![1., 10., 100.]);
    // x + x: one node reached twice by the same gradient.
    let grads = (x.as_tensor() + x.as_tensor())?.sum_all()?.backward()?;
    let gx = grads.get(x.as_tensor()).expect("x has a gradient");
    assert_eq!(gx.to_vec1::<f32>()?, vec![2., 2., 2.]);
    assert_eq!(gx.dtype(), DType::F32);
    Ok(())
}

/// The error of a backward through a [`GivenGrad`] that hands `x` the gradient `grad`.
fn backward_error(x: &Var, grad: Tensor) -> Result<String> {
    let y = x.apply_op1(GivenGrad { grad })?;
    match y.sum_all()?.backward() {
        Ok(_) => Ok(String::new()),
        Err(e) => Ok(e.to_string()),
    }
}

#[test]
fn a_gradient_of_the_wrong_shape_or_dtype_is_an_error() -> Result<()> {
    // Upstream's zeros + gradient failed on these; storing the gradient as it comes must fail the same way.
    let dev = Device::Cpu;
    let x = Var::from_vec(vec![1f32, 2., 3.], 3, &dev)?;
    let err = backward_error(&x, Tensor::new(&[1f32, 2.], &dev)?)?;
    assert!(
        err.contains("shape mismatch"),
        "a [2] gradient for [3]: {err:?}"
    );
    let err = backward_error(&x, Tensor::new(&[1f64, 2., 3.], &dev)?)?;
    assert!(
        err.contains("dtype mismatch"),
        "an f64 gradient for f32: {err:?}"
    );
    Ok(())
}
