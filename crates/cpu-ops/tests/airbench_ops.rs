//! The airbench94 ops: odd-size max-pools, conv3x3_nobias (and fused with the pool), gelu and the fused
//! BatchNorm + bias + GELU, against
//! candle's native composites, f64 references and f64 finite differences.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;

/// Reference max-pool gradient (all of a window's gradient to its first maximum, row-major), any H, W (floor).
fn ref_pool_grad(x: &[f32], g: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let (ho, wo) = (h / 2, w / 2);
    for p in 0..planes {
        for y in 0..ho {
            for xx in 0..wo {
                let at = |dy: usize, dx: usize| x[(p * h + 2 * y + dy) * w + 2 * xx + dx];
                let mut best = (0, 0);
                for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                    if at(dy, dx) > at(best.0, best.1) {
                        best = (dy, dx);
                    }
                }
                out[(p * h + 2 * y + best.0) * w + 2 * xx + best.1] = g[(p * ho + y) * wo + xx];
            }
        }
    }
    out
}

#[test]
fn max_pool_odd_sizes_forward_backward_and_ties() {
    for (seed, dims) in [
        (1, [2, 3, 31, 31]),
        (2, [2, 3, 15, 15]),
        (3, [1, 4, 7, 7]),
        (4, [3, 2, 3, 3]),
        (5, [2, 2, 5, 4]),
        (6, [2, 2, 4, 5]),
        (7, [1, 1, 1, 3]),
    ] {
        let mut g = rng(seed);
        let n = dims.iter().product();
        // Random values, and small integers (many ties: the first maximum must get the gradient).
        let ints: Vec<f32> = randv(&mut g, n).iter().map(|v| (v * 2.0).round()).collect();
        for (kind, xv) in [("random", randv(&mut g, n)), ("ties", ints)] {
            let x = var(&Tensor::from_vec(xv.clone(), &dims, &Device::Cpu).unwrap());
            let y = candle_cpu_ops::max_pool2x2(x.as_tensor()).unwrap();
            assert_eq!(y.dims(), &[dims[0], dims[1], dims[2] / 2, dims[3] / 2]);
            // candle refuses a pool whose input is smaller than the window; ours returns an empty output.
            if dims[2] >= 2 && dims[3] >= 2 {
                let yn = candle_cpu_ops::native::max_pool2x2(x.as_tensor()).unwrap();
                assert_eq!(flat(&y), flat(&yn), "forward {kind} {dims:?}");
            }
            let want = ref_pool(&to64(&xv), dims[0] * dims[1], dims[2], dims[3], false);
            assert_eq!(to64(&flat(&y)), want, "forward vs ref {kind} {dims:?}");
            let r = rand_t(&mut g, y.dims());
            let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let want = ref_pool_grad(&xv, &flat(&r), dims[0] * dims[1], dims[2], dims[3]);
            assert_eq!(
                flat(grads.get(x.as_tensor()).unwrap()),
                want,
                "backward {kind} {dims:?}"
            );
        }
    }
}

/// The fused conv + bias + ReLU + pool on odd sizes (sparse backward for 3 and 64 input channels, dense for 5)
/// against the unfused composition.
#[test]
fn fused_conv_relu_pool_odd_sizes() {
    for (seed, n, ci, co, h, w) in [
        (10, 2, 3, 4, 7, 7),
        (11, 1, 64, 3, 5, 5),
        (12, 2, 5, 3, 7, 5),
        (13, 2, 3, 2, 3, 3),
    ] {
        let mut g = rng(seed);
        let x = var(&rand_t(&mut g, &[n, ci, h, w]));
        let wt = var(&rand_t(&mut g, &[co, ci, 3, 3]));
        let b = var(&rand_t(&mut g, &[co]));
        let r = rand_t(&mut g, &[n, co, h / 2, w / 2]);
        let y = candle_cpu_ops::conv3x3_relu_pool(x.as_tensor(), wt.as_tensor(), b.as_tensor())
            .unwrap();
        let conv = candle_cpu_ops::conv3x3(x.as_tensor(), wt.as_tensor(), b.as_tensor()).unwrap();
        let e = candle_cpu_ops::max_pool2x2(&conv.relu().unwrap()).unwrap();
        let yn =
            candle_cpu_ops::native::conv3x3_relu_pool(x.as_tensor(), wt.as_tensor(), b.as_tensor())
                .unwrap();
        assert_eq!(y.dims(), &[n, co, h / 2, w / 2]);
        assert_close("fused odd forward", &flat(&y), &flat(&e), 1e-6);
        assert_close("fused odd forward vs native", &flat(&y), &flat(&yn), 1e-5);
        let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &wt, &b] {
            assert_close(
                &format!("fused odd grad ci{ci} {h}x{w}"),
                &flat(go.get(v.as_tensor()).unwrap()),
                &flat(ge.get(v.as_tensor()).unwrap()),
                1e-5,
            );
        }
    }
}

/// The fused conv3x3_nobias_pool against the unfused composition (our conv without bias, our pool; candle's
/// pool backward is scaled) and candle's forward, on odd sizes: sparse backward for 3, 24 and 256 input channels,
/// dense for 5; an untracked input gets no gradient.
#[test]
fn conv_nobias_pool_matches_composition() {
    for (seed, n, ci, co, h, w, track_x) in [
        (14, 2, 3, 4, 7, 7, true),
        (15, 2, 24, 8, 31, 31, true),
        (16, 2, 5, 3, 7, 5, true),
        (17, 1, 256, 3, 7, 7, true),
        (18, 3, 3, 4, 6, 8, false),
    ] {
        let mut g = rng(seed);
        let xt = rand_t(&mut g, &[n, ci, h, w]);
        let xv = var(&xt);
        let x = if track_x { xv.as_tensor().clone() } else { xt };
        let wt = var(&rand_t(&mut g, &[co, ci, 3, 3]));
        let r = rand_t(&mut g, &[n, co, h / 2, w / 2]);
        let what = format!("conv_nobias_pool ci{ci} co{co} {h}x{w}");
        let y = candle_cpu_ops::conv3x3_nobias_pool(&x, wt.as_tensor()).unwrap();
        let conv = candle_cpu_ops::conv3x3_nobias(&x, wt.as_tensor()).unwrap();
        let e = candle_cpu_ops::max_pool2x2(&conv).unwrap();
        let yn = candle_cpu_ops::native::conv3x3_nobias_pool(&x, wt.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[n, co, h / 2, w / 2], "{what}");
        assert_close(&format!("{what} forward"), &flat(&y), &flat(&e), 1e-6);
        assert_close(&format!("{what} vs native"), &flat(&y), &flat(&yn), 1e-5);
        let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(go.get(&x).is_some(), track_x, "{what}: dx presence");
        let mut vars = vec![("dw", wt.as_tensor())];
        if track_x {
            vars.push(("dx", &x));
        }
        for (name, v) in vars {
            assert_close(
                &format!("{what} {name}"),
                &flat(go.get(v).unwrap()),
                &flat(ge.get(v).unwrap()),
                1e-5,
            );
        }
    }
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
    let e = candle_cpu_ops::conv3x3_nobias_pool(&z(&[1, 3, 5, 5]), &z(&[2, 4, 3, 3]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv3x3_nobias_pool"), "{e}");
}

/// conv3x3_nobias_pool's input and weight gradients against central differences of the exact f64 math.
#[test]
fn conv_nobias_pool_gradients_match_f64_finite_differences() {
    let (n, ci, co, h, w) = (2, 3, 2, 5, 7);
    let mut g = rng(19);
    let xv = randv(&mut g, n * ci * h * w);
    let wv = randv(&mut g, co * ci * 9);
    let rv = randv(&mut g, n * co * (h / 2) * (w / 2));
    let dev = Device::Cpu;
    let x = var(&Tensor::from_vec(xv.clone(), (n, ci, h, w), &dev).unwrap());
    let wt = var(&Tensor::from_vec(wv.clone(), (co, ci, 3, 3), &dev).unwrap());
    let r = Tensor::from_vec(rv.clone(), (n, co, h / 2, w / 2), &dev).unwrap();
    let y = candle_cpu_ops::conv3x3_nobias_pool(x.as_tensor(), wt.as_tensor()).unwrap();
    let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let (x64, w64, r64, b0) = (to64(&xv), to64(&wv), to64(&rv), vec![0f64; co]);
    let l = |xx: &[f64], ww: &[f64]| {
        dot(
            &ref_pool(&ref_conv(xx, ww, &b0, n, ci, co, h, w), n * co, h, w, false),
            &r64,
        )
    };
    let fdx = fd_grad(&x64, 1e-6, |v| l(v, &w64));
    let fdw = fd_grad(&w64, 1e-6, |v| l(&x64, v));
    for (name, t, fd) in [("dx", &x, fdx), ("dw", &wt, fdw)] {
        let fd32: Vec<f32> = fd.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("conv_nobias_pool FD {name}"),
            &flat(grads.get(t.as_tensor()).unwrap()),
            &fd32,
            1e-5,
        );
    }
}

/// conv3x3_nobias against candle's conv2d: forward and both gradients.
fn check_conv_nobias(seed: u64, n: usize, ci: usize, co: usize, h: usize, w: usize) {
    let mut g = rng(seed);
    let x = var(&rand_t(&mut g, &[n, ci, h, w]));
    let wt = var(&rand_t(&mut g, &[co, ci, 3, 3]));
    let r = rand_t(&mut g, &[n, co, h, w]);
    let ours = candle_cpu_ops::conv3x3_nobias(x.as_tensor(), wt.as_tensor()).unwrap();
    let theirs = candle_cpu_ops::native::conv3x3_nobias(x.as_tensor(), wt.as_tensor()).unwrap();
    let what = format!("conv_nobias n{n} ci{ci} co{co} {h}x{w}");
    assert_eq!(ours.dims(), &[n, co, h, w], "{what}");
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
    for (name, v) in [("dx", &x), ("dw", &wt)] {
        let a = go
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: no {name}"));
        let e = gt.get(v.as_tensor()).unwrap();
        assert_close(&format!("{what} {name}"), &flat(a), &flat(e), 1e-4);
    }
}

#[test]
fn conv_nobias_matches_native() {
    check_conv_nobias(20, 2, 24, 8, 31, 31);
    check_conv_nobias(21, 2, 16, 8, 15, 15);
    check_conv_nobias(22, 3, 8, 16, 7, 7);
    check_conv_nobias(23, 2, 16, 16, 3, 3);
    check_conv_nobias(24, 2, 3, 4, 8, 6);
    check_conv_nobias(25, 1, 2, 3, 1, 1);
}

#[test]
fn conv_nobias_untracked_input_strided_and_errors() {
    let mut g = rng(26);
    // A plain (untracked) input: no dx, dw still right. A strided view as input.
    let base = rand_t(&mut g, &[2, 7, 3, 7]);
    let x = base.transpose(1, 2).unwrap(); // [2, 3, 7, 7], not contiguous
    assert!(!x.is_contiguous());
    let wt = var(&rand_t(&mut g, &[4, 3, 3, 3]));
    let ours = candle_cpu_ops::conv3x3_nobias(&x, wt.as_tensor()).unwrap();
    let theirs =
        candle_cpu_ops::native::conv3x3_nobias(&x.contiguous().unwrap(), wt.as_tensor()).unwrap();
    assert_close("strided forward", &flat(&ours), &flat(&theirs), 1e-5);
    let go = ours.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let gt = theirs.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(go.get(&x).is_none());
    assert_close(
        "untracked-input dw",
        &flat(go.get(wt.as_tensor()).unwrap()),
        &flat(gt.get(wt.as_tensor()).unwrap()),
        1e-4,
    );
    let dev = Device::Cpu;
    let w3 = Tensor::zeros((4, 3, 3, 3), DType::F32, &dev).unwrap();
    let bad_rank = Tensor::zeros((3, 7, 7), DType::F32, &dev).unwrap();
    let bad_ci = Tensor::zeros((1, 2, 7, 7), DType::F32, &dev).unwrap();
    let bad_k = Tensor::zeros((4, 3, 5, 5), DType::F32, &dev).unwrap();
    let x4 = Tensor::zeros((1, 3, 7, 7), DType::F32, &dev).unwrap();
    for (what, r) in [
        ("rank", candle_cpu_ops::conv3x3_nobias(&bad_rank, &w3)),
        ("channels", candle_cpu_ops::conv3x3_nobias(&bad_ci, &w3)),
        ("kernel", candle_cpu_ops::conv3x3_nobias(&x4, &bad_k)),
    ] {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("conv3x3_nobias"), "{what}: {e}");
    }
}

#[test]
fn gelu_matches_native_and_f64() {
    let mut g = rng(30);
    let xv: Vec<f32> = randv(&mut g, 2 * 3 * 31 * 31)
        .iter()
        .map(|v| v * 6.0)
        .collect();
    let x = var(&Tensor::from_vec(xv.clone(), (2, 3, 31, 31), &Device::Cpu).unwrap());
    let y = candle_cpu_ops::gelu(x.as_tensor()).unwrap();
    let yn = candle_cpu_ops::native::gelu(x.as_tensor()).unwrap();
    assert_close("gelu forward vs native", &flat(&y), &flat(&yn), 1e-6);
    let want: Vec<f32> = xv.iter().map(|&v| gelu64(v as f64) as f32).collect();
    let worst = flat(&y)
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 2e-6, "gelu forward vs f64: {worst:e}");
    let r = rand_t(&mut g, y.dims());
    let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gn = (yn * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = flat(go.get(x.as_tensor()).unwrap());
    // candle's gelu_erf backward rounds 1/√(2π) to 0.398942: agreement to ~1e-6.
    assert_close(
        "gelu grad vs native",
        &dx,
        &flat(gn.get(x.as_tensor()).unwrap()),
        1e-5,
    );
    // Finite differences of the exact f64 GELU, element by element (the op is elementwise).
    let rv = flat(&r);
    let fd: Vec<f32> = xv
        .iter()
        .zip(&rv)
        .map(|(&v, &r)| {
            let (v, h) = (v as f64, 1e-5);
            ((gelu64(v + h) - gelu64(v - h)) / (2.0 * h) * r as f64) as f32
        })
        .collect();
    assert_close("gelu grad vs f64 finite differences", &dx, &fd, 1e-6);
    // Other dtypes take candle's op.
    let x64 = x.as_tensor().to_dtype(DType::F64).unwrap();
    let y64 = candle_cpu_ops::gelu(&x64).unwrap();
    assert_eq!(y64.dtype(), DType::F64);
}

/// Runs the fused BatchNorm + GELU and the native composite on the same data, compares y, the statistics and
/// the gradients of `sum(y * r)`; returns nothing, panics on mismatch.
fn check_bn_vs_native(seed: u64, dims: [usize; 4], eps: f64) {
    let [n, c, h, w] = dims;
    let mut g = rng(seed);
    let x = var(&rand_t(&mut g, &dims));
    let b = var(&rand_t(&mut g, &[c]));
    let r = rand_t(&mut g, &dims);
    let (y, mean, vu) =
        candle_cpu_ops::batch_norm_gelu_train(x.as_tensor(), b.as_tensor(), eps).unwrap();
    let (yn, meann, vun) =
        candle_cpu_ops::native::batch_norm_gelu_train(x.as_tensor(), b.as_tensor(), eps).unwrap();
    let what = format!("bn_gelu {dims:?}");
    assert_eq!(mean.dims(), &[c]);
    assert_eq!(vu.dims(), &[c]);
    assert!(
        !mean.track_op() && !vu.track_op(),
        "{what}: statistics must be detached"
    );
    assert_close(&format!("{what} y"), &flat(&y), &flat(&yn), 1e-5);
    assert_close(&format!("{what} mean"), &flat(&mean), &flat(&meann), 1e-5);
    assert_close(&format!("{what} var"), &flat(&vu), &flat(&vun), 1e-5);
    // Statistics against a hand computation in f64 (unbiased variance: divide by M - 1).
    let xv = to64(&flat(x.as_tensor()));
    let hw = h * w;
    let m = (n * hw) as f64;
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|i| xv[(i * c + ch) * hw..][..hw].to_vec())
            .collect();
        let mu = vals.iter().sum::<f64>() / m;
        let var_u = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (m - 1.0);
        assert!(
            (flat(&mean)[ch] as f64 - mu).abs() < 1e-6,
            "{what} mean {ch}"
        );
        assert!(
            (flat(&vu)[ch] as f64 - var_u).abs() < 1e-6 * var_u.max(1.0),
            "{what} var {ch}"
        );
    }
    let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gn = (yn * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in [("dx", &x), ("dbias", &b)] {
        assert_close(
            &format!("{what} {name}"),
            &flat(go.get(v.as_tensor()).unwrap()),
            &flat(gn.get(v.as_tensor()).unwrap()),
            1e-4,
        );
    }
}

#[test]
fn batch_norm_gelu_train_matches_native() {
    check_bn_vs_native(40, [4, 3, 15, 15], 1e-12);
    check_bn_vs_native(41, [8, 5, 3, 3], 1e-12);
    check_bn_vs_native(42, [2, 4, 31, 31], 1e-5);
    check_bn_vs_native(43, [16, 2, 1, 1], 1e-12);
    check_bn_vs_native(44, [3, 2, 7, 7], 1e-12);
}

/// dx and dbias of `sum(y * r)` against central differences of the exact f64 function (through the batch
/// statistics).
#[test]
fn batch_norm_gelu_train_gradients_match_f64_finite_differences() {
    let (n, c, h, w) = (3, 2, 3, 3);
    let hw = h * w;
    let eps = 1e-12;
    let mut g = rng(45);
    let xv: Vec<f32> = randv(&mut g, n * c * hw)
        .iter()
        .map(|v| v * 2.0 + 0.5)
        .collect();
    let bv = randv(&mut g, c);
    let rv = randv(&mut g, n * c * hw);
    let dev = Device::Cpu;
    let x = var(&Tensor::from_vec(xv.clone(), (n, c, h, w), &dev).unwrap());
    let b = var(&Tensor::from_vec(bv.clone(), c, &dev).unwrap());
    let r = Tensor::from_vec(rv.clone(), (n, c, h, w), &dev).unwrap();
    let (y, _, _) =
        candle_cpu_ops::batch_norm_gelu_train(x.as_tensor(), b.as_tensor(), eps).unwrap();
    let (want_y, _, _) = ref_bn_gelu(&to64(&xv), &to64(&bv), n, c, hw, eps);
    let want_y32: Vec<f32> = want_y.iter().map(|&v| v as f32).collect();
    assert_close("bn_gelu forward vs f64", &flat(&y), &want_y32, 2e-6);
    let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let (x64, b64, r64) = (to64(&xv), to64(&bv), to64(&rv));
    let loss = |xx: &[f64], bb: &[f64]| dot(&ref_bn_gelu(xx, bb, n, c, hw, eps).0, &r64);
    let fdx = fd_grad(&x64, 1e-6, |v| loss(v, &b64));
    let fdb = fd_grad(&b64, 1e-6, |v| loss(&x64, v));
    for (name, t, fd) in [("dx", &x, fdx), ("dbias", &b, fdb)] {
        let fd32: Vec<f32> = fd.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("bn_gelu FD {name}"),
            &flat(grads.get(t.as_tensor()).unwrap()),
            &fd32,
            1e-4,
        );
    }
}

/// A large common offset and a tiny spread, with eps 1e-12: the f64 statistics keep y right where a naive f32
/// E[x²] - E[x]² would lose it. A constant channel (zero variance) gives gelu(bias), not NaN.
#[test]
fn batch_norm_gelu_train_precision_and_constant_channel() {
    let (n, c, h, w) = (4, 2, 5, 5);
    let hw = h * w;
    let mut g = rng(46);
    let mut xv: Vec<f32> = randv(&mut g, n * c * hw)
        .iter()
        .map(|v| 1000.0 + v * 0.01)
        .collect();
    for i in 0..n {
        xv[(i * c + 1) * hw..][..hw].fill(3.25); // channel 1 constant
    }
    let bv = vec![0.1f32, -0.7];
    let dev = Device::Cpu;
    let x = var(&Tensor::from_vec(xv.clone(), (n, c, h, w), &dev).unwrap());
    let b = var(&Tensor::from_vec(bv.clone(), c, &dev).unwrap());
    let (y, mean, vu) =
        candle_cpu_ops::batch_norm_gelu_train(x.as_tensor(), b.as_tensor(), 1e-12).unwrap();
    let (want, _, _) = ref_bn_gelu(&to64(&xv), &to64(&bv), n, c, hw, 1e-12);
    let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    // The inputs themselves are rounded to f32 (ulp(1000) = 6e-5 against a spread of 0.01), so compare with
    // the f64 math on the same f32 inputs: only the kernel's own rounding remains (the mean's f32 rounding alone
    // would be up to 3e-5/0.006 = 5e-3 of a normalised unit; the kernel carries the mean in two f32s).
    assert_close("offset forward vs f64", &flat(&y), &want32, 1e-5);
    assert_eq!(flat(&vu)[1], 0.0);
    assert_eq!(flat(&mean)[1], 3.25);
    let yv = flat(&y);
    let g1 = gelu64(-0.7) as f32;
    assert!(yv[hw..2 * hw].iter().all(|&v| (v - g1).abs() < 1e-6));
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(
        flat(grads.get(x.as_tensor()).unwrap())
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn batch_norm_gelu_train_untracked_strided_other_dtype_and_errors() {
    let mut g = rng(47);
    let dev = Device::Cpu;
    // A plain (untracked) strided input: only the bias gets a gradient.
    let base = rand_t(&mut g, &[3, 5, 4, 5]);
    let x = base.transpose(1, 2).unwrap(); // [3, 4, 5, 5]
    assert!(!x.is_contiguous());
    let b = var(&rand_t(&mut g, &[4]));
    let (y, m, v) = candle_cpu_ops::batch_norm_gelu_train(&x, b.as_tensor(), 1e-12).unwrap();
    let xc = x.contiguous().unwrap();
    let (yn, mn, vn) =
        candle_cpu_ops::native::batch_norm_gelu_train(&xc, b.as_tensor(), 1e-12).unwrap();
    assert_close("strided y", &flat(&y), &flat(&yn), 1e-5);
    assert_close("strided mean", &flat(&m), &flat(&mn), 1e-5);
    assert_close("strided var", &flat(&v), &flat(&vn), 1e-5);
    let go = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let gn = yn.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(go.get(&x).is_none());
    assert_close(
        "untracked-input dbias",
        &flat(go.get(b.as_tensor()).unwrap()),
        &flat(gn.get(b.as_tensor()).unwrap()),
        1e-4,
    );
    // f64 tensors take candle's ops and agree.
    let (y64, _, _) = candle_cpu_ops::batch_norm_gelu_train(
        &xc.to_dtype(DType::F64).unwrap(),
        &b.as_tensor().to_dtype(DType::F64).unwrap(),
        1e-12,
    )
    .unwrap();
    assert_eq!(y64.dtype(), DType::F64);
    assert_close(
        "f64 path",
        &flat(&y64.to_dtype(DType::F32).unwrap()),
        &flat(&y),
        1e-5,
    );
    // Shape errors are errors, not panics.
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &dev).unwrap();
    for (what, x, b) in [
        ("rank", z(&[2, 3, 4]), z(&[3])),
        ("bias length", z(&[2, 3, 4, 4]), z(&[4])),
        ("bias rank", z(&[2, 3, 4, 4]), z(&[1, 3])),
        ("one value per channel", z(&[1, 3, 1, 1]), z(&[3])),
    ] {
        let e = candle_cpu_ops::batch_norm_gelu_train(&x, &b, 1e-5)
            .map(|_| ())
            .expect_err(what)
            .to_string();
        assert!(e.contains("batch_norm_gelu_train"), "{what}: {e}");
    }
}

#[test]
fn batch_norm_gelu_eval_matches_native() {
    let mut g = rng(50);
    let (n, c, h, w) = (3, 4, 7, 7);
    let x = rand_t(&mut g, &[n, c, h, w]);
    let mean = rand_t(&mut g, &[c]);
    let var_t = (rand_t(&mut g, &[c]).abs().unwrap() + 0.1).unwrap();
    let bias = rand_t(&mut g, &[c]);
    for eps in [1e-12, 1e-5] {
        let y = candle_cpu_ops::batch_norm_gelu_eval(&x, &mean, &var_t, &bias, eps).unwrap();
        let yn =
            candle_cpu_ops::native::batch_norm_gelu_eval(&x, &mean, &var_t, &bias, eps).unwrap();
        assert_close("bn eval", &flat(&y), &flat(&yn), 1e-5);
    }
    // The training op's statistics in eval mode give the training output back (biased var = unbiased·(M-1)/M).
    let (yt, bm, bvu) = candle_cpu_ops::batch_norm_gelu_train(&x, &bias, 1e-12).unwrap();
    let m = (n * h * w) as f64;
    let bv = (bvu * ((m - 1.0) / m)).unwrap();
    let ye = candle_cpu_ops::batch_norm_gelu_eval(&x, &bm, &bv, &bias, 1e-12).unwrap();
    assert_close("eval with batch stats", &flat(&ye), &flat(&yt), 1e-5);
    // A tracked input still gets gradients (through candle's ops).
    let xv = var(&x);
    let bvar = var(&bias);
    let y =
        candle_cpu_ops::batch_norm_gelu_eval(xv.as_tensor(), &mean, &var_t, bvar.as_tensor(), 1e-5)
            .unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(xv.as_tensor()).is_some() && grads.get(bvar.as_tensor()).is_some());
    // Shape errors.
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
    for (what, r) in [
        (
            "mean",
            candle_cpu_ops::batch_norm_gelu_eval(&x, &z(&[3]), &var_t, &bias, 1e-5),
        ),
        (
            "var",
            candle_cpu_ops::batch_norm_gelu_eval(&x, &mean, &z(&[5]), &bias, 1e-5),
        ),
        (
            "bias",
            candle_cpu_ops::batch_norm_gelu_eval(&x, &mean, &var_t, &z(&[c, 1]), 1e-5),
        ),
        (
            "rank",
            candle_cpu_ops::batch_norm_gelu_eval(&z(&[4, 7]), &mean, &var_t, &bias, 1e-5),
        ),
    ] {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("batch_norm_gelu_eval"), "{what}: {e}");
    }
}
