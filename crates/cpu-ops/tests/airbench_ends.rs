//! The first and last layers of airbench94 as fused ops: `patch_conv_gelu` (the frozen 2x2 whitening conv +
//! bias + GELU, bias gradient only) and `global_max_linear` (the final max-pool + scaled linear head), against
//! candle's composition and f64 finite differences.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;

/// f64 `gelu(conv2x2(x, w) + b)`, NCHW, no padding.
fn ref_patch(x: &[f64], w: &[f64], b: &[f64], dims: [usize; 5]) -> Vec<f64> {
    let [n, ci, co, h, wd] = dims;
    let (ho, wo) = (h - 1, wd - 1);
    let mut out = vec![0f64; n * co * ho * wo];
    for img in 0..n {
        for o in 0..co {
            for y in 0..ho {
                for xx in 0..wo {
                    let mut s = b[o];
                    for i in 0..ci {
                        for dy in 0..2 {
                            for dx in 0..2 {
                                s += w[((o * ci + i) * 2 + dy) * 2 + dx]
                                    * x[((img * ci + i) * h + y + dy) * wd + xx + dx];
                            }
                        }
                    }
                    out[((img * co + o) * ho + y) * wo + xx] = gelu64(s);
                }
            }
        }
    }
    out
}

#[test]
fn patch_conv_gelu_matches_composition_and_finite_differences() {
    for (seed, dims) in [
        (1u64, [5, 3, 24, 32, 32]),
        (2, [3, 2, 5, 7, 4]),
        (3, [17, 3, 4, 2, 2]),
    ] {
        let [n, ci, co, h, wd] = dims;
        let mut g = rng(seed);
        let x = rand_t(&mut g, &[n, ci, h, wd]);
        let w = rand_t(&mut g, &[co, ci, 2, 2]);
        let b = var(&rand_t(&mut g, &[co]));
        let y = candle_cpu_ops::patch_conv_gelu(&x, &w, b.as_tensor()).unwrap();
        let yn = candle_cpu_ops::native::patch_conv_gelu(&x, &w, b.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[n, co, h - 1, wd - 1]);
        assert_close("patch forward vs candle", &flat(&y), &flat(&yn), 1e-5);
        let r = rand_t(&mut g, y.dims());
        let db = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let dbn = (yn * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (db, dbn) = (
            flat(db.get(b.as_tensor()).unwrap()),
            flat(dbn.get(b.as_tensor()).unwrap()),
        );
        assert_close("patch bias grad vs candle", &db, &dbn, 1e-4);
        // Against central differences of the f64 definition.
        let (x64, w64, r64) = (to64(&flat(&x)), to64(&flat(&w)), to64(&flat(&r)));
        let fd = fd_grad(&to64(&flat(b.as_tensor())), 1e-4, |b| {
            dot(&ref_patch(&x64, &w64, b, dims), &r64)
        });
        let fd: Vec<f32> = fd.iter().map(|&v| v as f32).collect();
        assert_close("patch bias grad vs finite differences", &db, &fd, 1e-4);
    }
}

#[test]
fn patch_conv_gelu_tracked_input_untracked_bias_strided_and_errors() {
    let mut g = rng(7);
    let x = rand_t(&mut g, &[2, 3, 6, 5]);
    let w = rand_t(&mut g, &[4, 3, 2, 2]);
    let b = rand_t(&mut g, &[4]);
    // A tracked input or filter computes with candle's ops, so their gradients exist.
    let (xv, wv) = (var(&x), var(&w));
    let y = candle_cpu_ops::patch_conv_gelu(xv.as_tensor(), wv.as_tensor(), &b).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(xv.as_tensor()).is_some() && grads.get(wv.as_tensor()).is_some());
    // Nothing tracked: a plain forward, equal to candle's.
    let y = candle_cpu_ops::patch_conv_gelu(&x, &w, &b).unwrap();
    assert!(!y.track_op());
    // A strided (transposed twice) input gives the same answer.
    let xt = x
        .transpose(2, 3)
        .unwrap()
        .contiguous()
        .unwrap()
        .transpose(2, 3)
        .unwrap();
    assert!(!xt.is_contiguous());
    let ys = candle_cpu_ops::patch_conv_gelu(&xt, &w, &b).unwrap();
    assert_eq!(flat(&y), flat(&ys));
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
    for (what, r) in [
        (
            "3x3 filter",
            candle_cpu_ops::patch_conv_gelu(&x, &z(&[4, 3, 3, 3]), &b),
        ),
        (
            "channels",
            candle_cpu_ops::patch_conv_gelu(&x, &z(&[4, 2, 2, 2]), &b),
        ),
        ("bias", candle_cpu_ops::patch_conv_gelu(&x, &w, &z(&[5]))),
        (
            "1-pixel input",
            candle_cpu_ops::patch_conv_gelu(&z(&[1, 3, 1, 5]), &w, &b),
        ),
        (
            "rank",
            candle_cpu_ops::patch_conv_gelu(&z(&[3, 6, 5]), &w, &b),
        ),
        (
            "no input channel",
            candle_cpu_ops::patch_conv_gelu(&z(&[2, 0, 6, 5]), &z(&[4, 0, 2, 2]), &b),
        ),
        (
            "no output channel",
            candle_cpu_ops::patch_conv_gelu(&x, &z(&[0, 3, 2, 2]), &z(&[0])),
        ),
    ] {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("patch_conv_gelu"), "{what}: {e}");
    }
}

/// f64 `scale · max_hw(x) · wᵀ`.
fn ref_head(x: &[f64], w: &[f64], scale: f64, n: usize, c: usize, hw: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0f64; n * k];
    for img in 0..n {
        for kk in 0..k {
            out[img * k + kk] = scale
                * (0..c)
                    .map(|ch| {
                        let plane = &x[(img * c + ch) * hw..(img * c + ch + 1) * hw];
                        w[kk * c + ch] * plane.iter().fold(f64::MIN, |m, &v| m.max(v))
                    })
                    .sum::<f64>();
        }
    }
    out
}

#[test]
fn global_max_linear_matches_composition_and_finite_differences() {
    for (seed, (n, c, h, wd, k)) in [
        (11u64, (6, 16, 3, 3, 10)),
        (12, (3, 5, 2, 4, 3)),
        (13, (2, 4, 1, 1, 2)),
    ] {
        let mut g = rng(seed);
        let x = var(&rand_t(&mut g, &[n, c, h, wd]));
        let w = var(&rand_t(&mut g, &[k, c]));
        let scale = 1.0 / 9.0;
        let y = candle_cpu_ops::global_max_linear(x.as_tensor(), w.as_tensor(), scale).unwrap();
        let yn =
            candle_cpu_ops::native::global_max_linear(x.as_tensor(), w.as_tensor(), scale).unwrap();
        assert_eq!(y.dims(), &[n, k]);
        assert_close("head forward vs candle", &flat(&y), &flat(&yn), 1e-6);
        let r = rand_t(&mut g, &[n, k]);
        let gr = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let grn = (&yn * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (what, v) in [("x", &x), ("w", &w)] {
            let (a, b) = (
                flat(gr.get(v.as_tensor()).unwrap()),
                flat(grn.get(v.as_tensor()).unwrap()),
            );
            assert_close(&format!("head d{what} vs candle"), &a, &b, 1e-5);
        }
        let (x64, w64, r64) = (
            to64(&flat(x.as_tensor())),
            to64(&flat(w.as_tensor())),
            to64(&flat(&r)),
        );
        let hw = h * wd;
        let fdx = fd_grad(&x64, 1e-5, |x| {
            dot(&ref_head(x, &w64, scale, n, c, hw, k), &r64)
        });
        let fdw = fd_grad(&w64, 1e-5, |w| {
            dot(&ref_head(&x64, w, scale, n, c, hw, k), &r64)
        });
        let f32v = |v: Vec<f64>| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert_close(
            "head dx vs finite differences",
            &flat(gr.get(x.as_tensor()).unwrap()),
            &f32v(fdx),
            1e-4,
        );
        assert_close(
            "head dw vs finite differences",
            &flat(gr.get(w.as_tensor()).unwrap()),
            &f32v(fdw),
            1e-4,
        );
    }
}

#[test]
fn global_max_linear_ties_untracked_and_errors() {
    // Tied maxima: the gradient goes to the first one only (row-major), as PyTorch's max-pool.
    let x = var(&Tensor::new(&[[[[2f32, 1.], [2., 2.]]]], &Device::Cpu).unwrap());
    let w = Tensor::new(&[[3f32]], &Device::Cpu).unwrap();
    let y = candle_cpu_ops::global_max_linear(x.as_tensor(), &w, 0.5).unwrap();
    assert_eq!(flat(&y), [3.0]);
    let gx = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(flat(gx.get(x.as_tensor()).unwrap()), [1.5, 0.0, 0.0, 0.0]);
    // Nothing tracked: no graph.
    let y = candle_cpu_ops::global_max_linear(&x.as_tensor().detach(), &w, 1.0).unwrap();
    assert!(!y.track_op());
    // NaN is the maximum (the output is NaN) and its last position receives the gradient, as PyTorch's CPU pool.
    let x = var(&Tensor::new(&[[[[1f32, f32::NAN], [5., f32::NAN]]]], &Device::Cpu).unwrap());
    let y = candle_cpu_ops::global_max_linear(x.as_tensor(), &w, 1.0).unwrap();
    assert!(flat(&y)[0].is_nan());
    let gx = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(flat(gx.get(x.as_tensor()).unwrap()), [0.0, 0.0, 0.0, 3.0]);
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
    for (what, r) in [
        (
            "weight width",
            candle_cpu_ops::global_max_linear(&z(&[2, 4, 3, 3]), &z(&[10, 5]), 1.0),
        ),
        (
            "weight rank",
            candle_cpu_ops::global_max_linear(&z(&[2, 4, 3, 3]), &z(&[10, 4, 1]), 1.0),
        ),
        (
            "input rank",
            candle_cpu_ops::global_max_linear(&z(&[2, 4, 9]), &z(&[10, 4]), 1.0),
        ),
        (
            "empty map",
            candle_cpu_ops::global_max_linear(&z(&[2, 4, 0, 3]), &z(&[10, 4]), 1.0),
        ),
        (
            "no channel",
            candle_cpu_ops::global_max_linear(&z(&[2, 0, 3, 3]), &z(&[10, 0]), 1.0),
        ),
        (
            "no class",
            candle_cpu_ops::global_max_linear(&z(&[2, 4, 3, 3]), &z(&[0, 4]), 1.0),
        ),
    ] {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("global_max_linear"), "{what}: {e}");
    }
}

#[test]
fn patch_conv_gelu_bias_gradient_does_not_depend_on_the_thread_count() {
    let mut g = rng(21);
    let x = rand_t(&mut g, &[37, 3, 32, 32]);
    let w = rand_t(&mut g, &[24, 3, 2, 2]);
    let b = var(&rand_t(&mut g, &[24]));
    let r = rand_t(&mut g, &[37, 24, 31, 31]);
    let grad_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let y = candle_cpu_ops::patch_conv_gelu(&x, &w, b.as_tensor()).unwrap();
            let gr = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            flat(gr.get(b.as_tensor()).unwrap())
        })
    };
    let one = grad_with(1);
    assert_eq!(one, grad_with(3), "1 vs 3 threads, bit for bit");
    assert_eq!(one, grad_with(8), "1 vs 8 threads, bit for bit");
}
