//! The sparse backward of conv3x3_relu_pool (input channels 3, 16, 32, 64, 128): against the unfused composition
//! and against f64 finite differences. (`settings.rs` compares it with the dense backward.)

mod common;

use candle_core::Tensor;
use common::*;

/// The unfused composition (our conv, candle's relu, our pool) as the reference.
fn composition(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let conv = candle_cpu_ops::conv3x3(x, w, b).unwrap();
    candle_cpu_ops::max_pool2x2(&conv.relu().unwrap()).unwrap()
}

/// Forward and every gradient of the fused op against the composition for `x [n, ci, h, w]`, `co` outputs.
fn check(seed: u64, n: usize, ci: usize, co: usize, h: usize, w: usize, track_x: bool) {
    let mut g = rng(seed);
    let xv = var(&rand_t(&mut g, &[n, ci, h, w]));
    let x = if track_x {
        xv.as_tensor().clone()
    } else {
        xv.as_tensor().detach()
    };
    let wt = var(&(rand_t(&mut g, &[co, ci, 3, 3]) * 0.2).unwrap());
    let b = var(&rand_t(&mut g, &[co]));
    let r = rand_t(&mut g, &[n, co, h / 2, w / 2]);
    let y = candle_cpu_ops::conv3x3_relu_pool(&x, wt.as_tensor(), b.as_tensor()).unwrap();
    let e = composition(&x, wt.as_tensor(), b.as_tensor());
    let what = format!("n={n} ci={ci} co={co} {h}x{w}");
    assert_close(&format!("{what} forward"), &flat(&y), &flat(&e), 1e-5);
    let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(go.get(&x).is_some(), track_x, "{what}: input gradient");
    for (name, t) in [("dx", &x), ("dw", wt.as_tensor()), ("db", b.as_tensor())] {
        if let Some(c) = ge.get(t) {
            let c = flat(c);
            assert!(c.iter().any(|&v| v != 0.0), "{what} {name}: zero reference");
            assert_close(
                &format!("{what} {name}"),
                &flat(go.get(t).unwrap()),
                &c,
                1e-5,
            );
        }
    }
}

#[test]
fn sparse_matches_composition_on_model_and_odd_shapes() {
    check(31, 3, 32, 64, 16, 16, true); // the model's second block
    check(32, 1, 64, 128, 8, 8, true); // the third, batch 1
    check(33, 2, 16, 5, 6, 4, true); // non-square, few output channels
    check(34, 2, 128, 3, 2, 2, true); // a single pooled output per plane
    check(35, 4, 32, 8, 4, 8, false); // untracked input: weight and bias gradients only
    check(37, 2, 3, 32, 32, 32, false); // the model's first block (the image needs no gradient)
    check(38, 3, 3, 7, 10, 6, true); // three channels with an input gradient, odd output count
}

#[test]
fn sparse_strided_inputs_match_composition() {
    let mut g = rng(36);
    // x as an NHWC tensor permuted to NCHW, w as a [Ci, Co, 3, 3] tensor transposed.
    let xv = var(&rand_t(&mut g, &[3, 8, 6, 32]));
    let x = xv.as_tensor().permute((0, 3, 1, 2)).unwrap();
    let wv = var(&(rand_t(&mut g, &[32, 6, 3, 3]) * 0.2).unwrap());
    let w = wv.as_tensor().transpose(0, 1).unwrap();
    let b = var(&rand_t(&mut g, &[6]));
    assert!(!x.is_contiguous() && !w.is_contiguous());
    let r = rand_t(&mut g, &[3, 6, 4, 3]);
    let y = candle_cpu_ops::conv3x3_relu_pool(&x, &w, b.as_tensor()).unwrap();
    let e = composition(&x, &w, b.as_tensor());
    let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("dx", &xv), ("dw", &wv), ("db", &b)] {
        let a = flat(go.get(v.as_tensor()).unwrap());
        let c = flat(ge.get(v.as_tensor()).unwrap());
        assert_close(&format!("sparse strided {name}"), &a, &c, 1e-5);
    }
}

/// Gradients against central differences of the exact f64 math, with 16 input channels (the `fused` tests run
/// the same check with 3). Biases are shifted down so that some pooled outputs are clamped to zero by the ReLU.
#[test]
fn sparse_gradients_match_f64_finite_differences() {
    let c = FusedFd {
        seed: 38,
        n: 2,
        ci: 16,
        co: 3,
        h: 4,
        w: 4,
        w_scale: 0.2,
        b_shift: -1.0,
    };
    check_fused_fd("sparse", &c, 1e-4);
}
