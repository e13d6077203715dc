//! The fused conv3x3_relu_pool backward in the cases the model hits besides the plain one: an
//! untracked input (the image batch), strided inputs, and more images than threads.

mod common;

use candle_core::Tensor;
use common::*;

/// The unfused composition (our conv, candle's relu, our pool) as the reference.
fn composition(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let conv = candle_cpu_ops::conv3x3(x, w, b).unwrap();
    candle_cpu_ops::max_pool2x2(&conv.relu().unwrap()).unwrap()
}

#[test]
fn fused_untracked_input_gets_only_weight_and_bias_grads() {
    let mut g = rng(21);
    let x = rand_t(&mut g, &[5, 3, 8, 6]);
    let w = var(&rand_t(&mut g, &[7, 3, 3, 3]));
    let b = var(&rand_t(&mut g, &[7]));
    let r = rand_t(&mut g, &[5, 7, 4, 3]);
    let y = candle_cpu_ops::conv3x3_relu_pool(&x, w.as_tensor(), b.as_tensor()).unwrap();
    let e = composition(&x, w.as_tensor(), b.as_tensor());
    let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(go.get(&x).is_none());
    for v in [&w, &b] {
        let a = flat(go.get(v.as_tensor()).unwrap());
        let c = flat(ge.get(v.as_tensor()).unwrap());
        assert!(c.iter().any(|&v| v != 0.0));
        assert_close("fused untracked-x grad", &a, &c, 1e-5);
    }
}

#[test]
fn fused_strided_inputs_match_composition() {
    let mut g = rng(22);
    // x as an NHWC tensor permuted to NCHW, w as a [Ci, Co, 3, 3] tensor transposed.
    let xv = var(&rand_t(&mut g, &[9, 6, 4, 5]));
    let x = xv.as_tensor().permute((0, 3, 1, 2)).unwrap();
    let wv = var(&rand_t(&mut g, &[5, 6, 3, 3]));
    let w = wv.as_tensor().transpose(0, 1).unwrap();
    let b = var(&rand_t(&mut g, &[6]));
    assert!(!x.is_contiguous() && !w.is_contiguous());
    let r = rand_t(&mut g, &[9, 6, 3, 2]);
    let y = candle_cpu_ops::conv3x3_relu_pool(&x, &w, b.as_tensor()).unwrap();
    let e = composition(&x, &w, b.as_tensor());
    assert_close("fused strided forward", &flat(&y), &flat(&e), 1e-6);
    let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("dx", &xv), ("dw", &wv), ("db", &b)] {
        let a = flat(go.get(v.as_tensor()).unwrap());
        let c = flat(ge.get(v.as_tensor()).unwrap());
        assert!(c.iter().any(|&v| v != 0.0), "{name}: zero reference");
        assert_close(&format!("fused strided {name}"), &a, &c, 1e-5);
    }
}
