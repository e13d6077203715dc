//! A linear layer (`candle_nn::Linear` weight layout) with an optional fused bias + ReLU.

use candle_core::{Result, Tensor};

/// `x [N, In] · wᵀ (+ b) (then ReLU)` with `w [Out, In]`.
///
/// The matmul is candle's (gemm-backed, already fast); with `relu` and a bias on a CPU f32
/// tensor the bias add and the ReLU are one fused op ([`crate::bias_relu`]).
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let x = Tensor::ones((2, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((4, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let b = Tensor::new(&[1f32, -10., 0., 2.], &Device::Cpu)?;
/// let y = cpu_ops::linear(&x, &w, Some(&b), true)?;
/// assert_eq!(y.to_vec2::<f32>()?, vec![vec![4., 0., 3., 5.]; 2]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    let (_, inp) = x
        .dims2()
        .map_err(|e| crate::Error::shape("linear", "x [N, In]", x.shape(), e))?;
    let (_, win) = w
        .dims2()
        .map_err(|e| crate::Error::shape("linear", "w [Out, In]", w.shape(), e))?;
    if inp != win {
        return Err(crate::Error::Shape {
            op: "linear".to_string(),
            expected: format!("w [Out, {inp}] for x with {inp} features"),
            found: format!("w {:?}", w.shape()),
        }
        .into());
    }
    let y = x.matmul(&w.t()?)?;
    match (b, relu) {
        (Some(b), true) => crate::bias_relu(&y, b),
        (Some(b), false) => y.broadcast_add(b),
        (None, true) => y.relu(),
        (None, false) => Ok(y),
    }
}
