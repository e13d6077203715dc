//! The `linear` custom op (forward and all three gradients) against candle's native
//! `matmul(x, w.t()) + b` (+ ReLU), including odd sizes, batch 1 and strided inputs.

mod common;

use candle_core::{Tensor, Var};
use common::*;

/// candle's native composition of the same layer.
fn native(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Tensor {
    let mut y = x.matmul(&w.t().unwrap()).unwrap();
    if let Some(b) = b {
        y = y.broadcast_add(b).unwrap();
    }
    if relu { y.relu().unwrap() } else { y }
}

/// Runs both versions with the loss `sum(y * r)` and compares y, dx, dw and db.
fn check(seed: u64, n: usize, inp: usize, out: usize, strided: bool) {
    let mut g = rng(seed);
    // Strided views: x as the transpose of an [In, N] tensor, w as that of an [In, Out] one.
    let (xv, wv) = if strided {
        (
            var(&rand_t(&mut g, &[inp, n])),
            var(&rand_t(&mut g, &[inp, out])),
        )
    } else {
        (
            var(&rand_t(&mut g, &[n, inp])),
            var(&rand_t(&mut g, &[out, inp])),
        )
    };
    let view = |v: &Var| {
        if strided {
            v.as_tensor().t().unwrap()
        } else {
            v.as_tensor().clone()
        }
    };
    let (x, w) = (view(&xv), view(&wv));
    assert_eq!(x.is_contiguous(), !strided);
    let b = var(&rand_t(&mut g, &[out]));
    let r = rand_t(&mut g, &[n, out]);
    for relu in [false, true] {
        for bias in [false, true] {
            let what = format!("seed {seed} n {n} in {inp} out {out} relu {relu} bias {bias}");
            let bo = bias.then_some(b.as_tensor());
            let y = candle_cpu_ops::linear(&x, &w, bo, relu).unwrap();
            let e = native(&x, &w, bo, relu);
            assert_eq!(y.dims(), e.dims(), "{what}");
            assert_close(&format!("{what} y"), &flat(&y), &flat(&e), 1e-5);
            let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let mut vars = vec![("dx", &xv), ("dw", &wv)];
            if bias {
                vars.push(("db", &b));
            }
            for (name, v) in vars {
                let a = flat(go.get(v.as_tensor()).unwrap());
                let c = flat(ge.get(v.as_tensor()).unwrap());
                assert!(c.iter().any(|&v| v != 0.0), "{what} {name}: zero reference");
                assert_close(&format!("{what} {name}"), &a, &c, 1e-5);
            }
            if !bias {
                assert!(go.get(b.as_tensor()).is_none(), "{what}: db without a bias");
            }
        }
    }
}

#[test]
fn linear_matches_native_all_grads() {
    check(1, 5, 7, 3, false);
    check(2, 1, 33, 17, false); // batch 1
    check(3, 64, 300, 130, false); // large enough for the threaded gemm
    check(4, 6, 9, 4, true);
    check(5, 70, 129, 65, true);
}

#[test]
fn linear_untracked_input_gets_no_gradient() {
    let mut g = rng(6);
    let x = rand_t(&mut g, &[4, 5]);
    let w = var(&rand_t(&mut g, &[3, 5]));
    let y = candle_cpu_ops::linear(&x, w.as_tensor(), None, true).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    assert!(grads.get(w.as_tensor()).is_some());
}

#[test]
fn linear_rejects_bad_shapes() {
    let mut g = rng(7);
    let x = rand_t(&mut g, &[4, 5]);
    let w = rand_t(&mut g, &[3, 5]);
    let bad_b = rand_t(&mut g, &[4]);
    let err = candle_cpu_ops::linear(&x, &w, Some(&bad_b), false).unwrap_err();
    assert!(err.to_string().contains("bias [3]"), "{err}");
    let err = candle_cpu_ops::linear(&x, &w.t().unwrap(), None, false).unwrap_err();
    assert!(err.to_string().contains("linear"), "{err}");
}
