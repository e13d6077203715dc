//! `set_enabled(false)` routes every function to candle's stock ops (its own test binary: the switch is global).

use candle_core::{DType, Device, Tensor};

#[test]
fn disabled_kernels_fall_back_to_native_ops() {
    let x = Tensor::arange(0f32, 2.0 * 3.0 * 8.0 * 8.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 3, 8, 8))
        .unwrap()
        .affine(0.01, -1.0)
        .unwrap();
    let w = Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu)
        .unwrap()
        .affine(0.1, 0.0)
        .unwrap();
    let b = Tensor::new(&[0.1f32, -0.2, 0.3, 0.0], &Device::Cpu).unwrap();
    assert!(cpu_ops::enabled());
    let fast = cpu_ops::conv3x3_relu_pool(&x, &w, &b).unwrap();
    cpu_ops::set_enabled(false);
    assert!(!cpu_ops::enabled());
    let stock = cpu_ops::conv3x3_relu_pool(&x, &w, &b).unwrap();
    let native = cpu_ops::native::conv3x3_relu_pool(&x, &w, &b).unwrap();
    cpu_ops::set_enabled(true);
    let d = |a: &Tensor, b: &Tensor| {
        a.sub(b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    // Disabled: exactly the native graph; enabled: the same values up to rounding.
    assert_eq!(d(&stock, &native), 0.0);
    assert!(d(&fast, &native) < 1e-4);
    // The disabled path is candle's own op graph, so its backward is candle's (a different graph than the
    // custom op's): check that it at least differentiates.
    let wv = candle_core::Var::from_tensor(&w).unwrap();
    cpu_ops::set_enabled(false);
    let y = cpu_ops::conv3x3_relu_pool(&x, wv.as_tensor(), &b).unwrap();
    cpu_ops::set_enabled(true);
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(wv.as_tensor()).is_some());
}
