//! conv3x3 against candle's native conv2d (forward and autograd gradients) and against an f64
//! finite-difference check of the exact math.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;

/// Forward + gradients of `sum(conv(x,w,b) * r)` through this crate vs candle's native ops.
fn check_vs_native(seed: u64, n: usize, ci: usize, co: usize, h: usize, w: usize) {
    let mut g = rng(seed);
    let x = var(&rand_t(&mut g, &[n, ci, h, w]));
    let wt = var(&rand_t(&mut g, &[co, ci, 3, 3]));
    let b = var(&rand_t(&mut g, &[co]));
    let r = rand_t(&mut g, &[n, co, h, w]);
    let ours = candle_cpu_ops::conv3x3(x.as_tensor(), wt.as_tensor(), b.as_tensor()).unwrap();
    let theirs =
        candle_cpu_ops::native::conv3x3(x.as_tensor(), wt.as_tensor(), b.as_tensor()).unwrap();
    assert_eq!(ours.dims(), theirs.dims());
    let what = format!("conv n{n} ci{ci} co{co} {h}x{w}");
    assert_close(
        &format!("{what} forward"),
        &flat(&ours),
        &flat(&theirs),
        1e-5,
    );
    let go = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gt = (theirs * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, v) in [("dx", &x), ("dw", &wt), ("db", &b)] {
        let a = go
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no {name}"));
        let e = gt.get(v.as_tensor()).unwrap();
        assert_eq!(a.dims(), e.dims());
        assert_close(&format!("{what} {name}"), &flat(a), &flat(e), 1e-4);
    }
}

#[test]
fn matches_native_on_model_and_odd_shapes() {
    check_vs_native(1, 2, 3, 4, 8, 8);
    check_vs_native(2, 1, 1, 3, 5, 5);
    check_vs_native(3, 3, 2, 5, 7, 7);
    check_vs_native(4, 2, 4, 3, 6, 4);
    check_vs_native(5, 1, 3, 2, 1, 1);
    check_vs_native(6, 2, 16, 8, 4, 4);
    check_vs_native(7, 4, 3, 32, 32, 32);
    check_vs_native(8, 2, 2, 3, 2, 1); // one column
    check_vs_native(9, 1, 2, 2, 1, 5); // one row
}

#[test]
fn non_contiguous_input() {
    let mut g = rng(11);
    // [N, H, C, W] transposed to [N, C, H, W], then narrowed along H: a strided view.
    let base = var(&rand_t(&mut g, &[2, 9, 3, 6]));
    let x = base
        .as_tensor()
        .transpose(1, 2)
        .unwrap()
        .narrow(2, 1, 6)
        .unwrap();
    assert!(!x.is_contiguous());
    // A non-contiguous weight too: stored as [Ci=3, Co=4, 3, 3] and transposed.
    let wt = var(&rand_t(&mut g, &[3, 4, 3, 3]));
    let wt_view = wt.as_tensor().transpose(0, 1).unwrap();
    let b = var(&rand_t(&mut g, &[4]));
    let r = rand_t(&mut g, &[2, 4, 6, 6]);
    let ours = candle_cpu_ops::conv3x3(&x, &wt_view, b.as_tensor()).unwrap();
    let theirs = candle_cpu_ops::native::conv3x3(
        &x.contiguous().unwrap(),
        &wt_view.contiguous().unwrap(),
        b.as_tensor(),
    )
    .unwrap();
    assert_close("strided forward", &flat(&ours), &flat(&theirs), 1e-5);
    let go = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gt = (theirs * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for v in [&base, &wt, &b] {
        let a = go.get(v.as_tensor()).unwrap();
        let e = gt.get(v.as_tensor()).unwrap();
        assert_close("strided grad", &flat(a), &flat(e), 1e-4);
    }
}

#[test]
fn untracked_input_gets_no_gradient_but_weights_do() {
    let mut g = rng(12);
    let x = rand_t(&mut g, &[2, 3, 6, 6]); // a plain tensor, like the input image
    let wt = var(&rand_t(&mut g, &[4, 3, 3, 3]));
    let b = var(&rand_t(&mut g, &[4]));
    let y = candle_cpu_ops::conv3x3(&x, wt.as_tensor(), b.as_tensor()).unwrap();
    let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    let gt = candle_cpu_ops::native::conv3x3(&x, wt.as_tensor(), b.as_tensor())
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close(
        "dw",
        &flat(grads.get(wt.as_tensor()).unwrap()),
        &flat(gt.get(wt.as_tensor()).unwrap()),
        1e-4,
    );
    assert_close(
        "db",
        &flat(grads.get(b.as_tensor()).unwrap()),
        &flat(gt.get(b.as_tensor()).unwrap()),
        1e-4,
    );
}

/// The op's analytic gradients (f32) against central differences of the exact math in f64.
/// The loss is linear in each argument, so the f64 differences are exact up to rounding; the
/// tolerance covers the f32 accumulation in the op.
#[test]
fn gradients_match_f64_finite_differences() {
    for (seed, n, ci, co, h, wd) in [(21, 1, 1, 3, 5, 5), (22, 2, 2, 2, 3, 4)] {
        let mut g = rng(seed);
        let (xv, wv, bv, rv) = (
            randv(&mut g, n * ci * h * wd),
            randv(&mut g, co * ci * 9),
            randv(&mut g, co),
            randv(&mut g, n * co * h * wd),
        );
        let dev = Device::Cpu;
        let x = var(&Tensor::from_vec(xv.clone(), (n, ci, h, wd), &dev).unwrap());
        let wt = var(&Tensor::from_vec(wv.clone(), (co, ci, 3, 3), &dev).unwrap());
        let b = var(&Tensor::from_vec(bv.clone(), co, &dev).unwrap());
        let r = Tensor::from_vec(rv.clone(), (n, co, h, wd), &dev).unwrap();
        let y = candle_cpu_ops::conv3x3(x.as_tensor(), wt.as_tensor(), b.as_tensor()).unwrap();
        let grads = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        let (x64, w64, b64, r64) = (to64(&xv), to64(&wv), to64(&bv), to64(&rv));
        let l =
            |xx: &[f64], ww: &[f64], bb: &[f64]| dot(&ref_conv(xx, ww, bb, n, ci, co, h, wd), &r64);
        let fdx = fd_grad(&x64, 1e-3, |v| l(v, &w64, &b64));
        let fdw = fd_grad(&w64, 1e-3, |v| l(&x64, v, &b64));
        let fdb = fd_grad(&b64, 1e-3, |v| l(&x64, &w64, v));
        for (name, t, fd) in [("dx", &x, fdx), ("dw", &wt, fdw), ("db", &b, fdb)] {
            let fd32: Vec<f32> = fd.iter().map(|&v| v as f32).collect();
            assert_close(
                &format!("FD {name}"),
                &flat(grads.get(t.as_tensor()).unwrap()),
                &fd32,
                1e-5,
            );
        }
    }
}

#[test]
fn other_dtypes_use_native_ops() {
    let mut g = rng(31);
    let x = rand_t(&mut g, &[2, 3, 5, 5]);
    let wt = rand_t(&mut g, &[4, 3, 3, 3]);
    let b = rand_t(&mut g, &[4]);
    let f32_out = flat(&candle_cpu_ops::conv3x3(&x, &wt, &b).unwrap());
    let to = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let f64_out = candle_cpu_ops::conv3x3(&to(&x), &to(&wt), &to(&b)).unwrap();
    assert_eq!(f64_out.dtype(), DType::F64);
    assert_close(
        "f64 path",
        &flat(&f64_out.to_dtype(DType::F32).unwrap()),
        &f32_out,
        1e-5,
    );
}

#[test]
fn bad_shapes_are_errors() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((2, 3, 5, 5), DType::F32, &dev).unwrap();
    let b = Tensor::zeros(2, DType::F32, &dev).unwrap();
    let e = candle_cpu_ops::conv3x3(&x, &w, &b).unwrap_err().to_string();
    assert!(e.contains("conv3x3") && e.contains("3, 3"), "{e}");
    let w = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
    let b = Tensor::zeros(3, DType::F32, &dev).unwrap();
    assert!(
        candle_cpu_ops::conv3x3(&x, &w, &b)
            .unwrap_err()
            .to_string()
            .contains("bias [2]")
    );
    let x3 = Tensor::zeros((3, 4, 4), DType::F32, &dev).unwrap();
    assert!(candle_cpu_ops::conv3x3(&x3, &w, &b).is_err());
}
