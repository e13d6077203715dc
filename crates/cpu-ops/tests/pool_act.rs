//! max_pool2x2, bias_relu, linear and the fused conv3x3_relu_pool against candle's native ops
//! and f64 references.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;

/// Reference max-pool gradient (PyTorch convention: all of a window's gradient to its first
/// maximum), computed directly from the data.
fn ref_pool_grad(x: &[f32], g: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let (ho, wo) = (h / 2, w / 2);
    for p in 0..planes {
        for y in 0..ho {
            for xx in 0..wo {
                let mut best = (0, 0);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let at = |dy: usize, dx: usize| x[(p * h + 2 * y + dy) * w + 2 * xx + dx];
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
fn max_pool_forward_and_backward() {
    for (seed, dims) in [
        (1, [2, 3, 8, 8]),
        (2, [1, 1, 2, 2]),
        (3, [3, 2, 6, 4]),
        (4, [64, 4, 4, 4]),
    ] {
        let mut g = rng(seed);
        let xv = randv(&mut g, dims.iter().product());
        let x = var(&Tensor::from_vec(xv.clone(), &dims, &Device::Cpu).unwrap());
        let y = candle_cpu_ops::max_pool2x2(x.as_tensor()).unwrap();
        let yn = candle_cpu_ops::native::max_pool2x2(x.as_tensor()).unwrap();
        assert_eq!(flat(&y), flat(&yn), "forward {dims:?}");
        let r = rand_t(&mut g, y.dims());
        let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let planes = dims[0] * dims[1];
        let want = ref_pool_grad(&xv, &flat(&r), planes, dims[2], dims[3]);
        assert_eq!(
            flat(grads.get(x.as_tensor()).unwrap()),
            want,
            "backward {dims:?}"
        );
    }
}

/// Documents why the pool gradient is compared with a reference and not with candle: candle
/// 0.11.1's max_pool2d backward gives a unique maximum only a quarter of the gradient.
#[test]
fn candle_native_pool_backward_is_scaled() {
    let x = var(&Tensor::new(&[[[[1f32, 2.], [4., 3.]]]], &Device::Cpu).unwrap());
    let native = candle_cpu_ops::native::max_pool2x2(x.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let ours = candle_cpu_ops::max_pool2x2(x.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(flat(ours.get(x.as_tensor()).unwrap()), vec![0., 0., 1., 0.]);
    let n = flat(native.get(x.as_tensor()).unwrap());
    // If this fails after a candle upgrade, candle fixed its pool backward: update the note in
    // `native` and compare the pool gradient with candle directly.
    assert_eq!(n, vec![0., 0., 0.25, 0.]);
}

#[test]
fn max_pool_non_contiguous_and_errors() {
    let mut g = rng(5);
    let base = var(&rand_t(&mut g, &[2, 4, 3, 6]));
    let x = base.as_tensor().transpose(2, 3).unwrap(); // [2, 4, 6, 3]: odd width, floor -> [2, 4, 3, 1]
    let y = candle_cpu_ops::max_pool2x2(&x).unwrap();
    assert_eq!(y.dims(), &[2, 4, 3, 1]);
    assert_eq!(
        flat(&y),
        flat(&candle_cpu_ops::native::max_pool2x2(&x.contiguous().unwrap()).unwrap())
    );
    let x = x.narrow(3, 0, 2).unwrap(); // [2, 4, 6, 2], strided
    let y = candle_cpu_ops::max_pool2x2(&x).unwrap();
    assert_eq!(
        flat(&y),
        flat(&candle_cpu_ops::native::max_pool2x2(&x.contiguous().unwrap()).unwrap())
    );
    let grads = y.sum_all().unwrap().backward().unwrap();
    let gb = flat(grads.get(base.as_tensor()).unwrap());
    // One unit of gradient per window, none for the narrowed-away column.
    assert_eq!(gb.iter().sum::<f32>(), (2 * 4 * 3) as f32);
    let err =
        candle_cpu_ops::max_pool2x2(&Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap());
    assert!(err.unwrap_err().to_string().contains("max_pool2x2"));
}

#[test]
fn bias_relu_matches_native() {
    for (seed, n, f) in [(6, 64, 512), (7, 1, 10), (8, 3, 7)] {
        let mut g = rng(seed);
        let x = var(&rand_t(&mut g, &[n, f]));
        let b = var(&rand_t(&mut g, &[f]));
        let r = rand_t(&mut g, &[n, f]);
        let y = candle_cpu_ops::bias_relu(x.as_tensor(), b.as_tensor()).unwrap();
        let yn = candle_cpu_ops::native::bias_relu(x.as_tensor(), b.as_tensor()).unwrap();
        assert_close("bias_relu forward", &flat(&y), &flat(&yn), 1e-6);
        let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gn = (yn * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &b] {
            assert_close(
                "bias_relu grad",
                &flat(go.get(v.as_tensor()).unwrap()),
                &flat(gn.get(v.as_tensor()).unwrap()),
                1e-5,
            );
        }
    }
    let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
    assert!(
        candle_cpu_ops::bias_relu(&x, &b)
            .unwrap_err()
            .to_string()
            .contains("bias_relu")
    );
}

#[test]
fn linear_matches_candle_nn_layout() {
    let mut g = rng(9);
    let x = var(&rand_t(&mut g, &[5, 7]));
    let w = var(&rand_t(&mut g, &[3, 7]));
    let b = var(&rand_t(&mut g, &[3]));
    for relu in [false, true] {
        for bias in [false, true] {
            let bo = bias.then_some(b.as_tensor());
            let y = candle_cpu_ops::linear(x.as_tensor(), w.as_tensor(), bo, relu).unwrap();
            let mut e = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
            if bias {
                e = e.broadcast_add(b.as_tensor()).unwrap();
            }
            if relu {
                e = e.relu().unwrap();
            }
            assert_close("linear", &flat(&y), &flat(&e), 1e-6);
            let go = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let ge = e.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert_close(
                "linear dw",
                &flat(go.get(w.as_tensor()).unwrap()),
                &flat(ge.get(w.as_tensor()).unwrap()),
                1e-5,
            );
        }
    }
    assert!(
        candle_cpu_ops::linear(x.as_tensor(), &w.as_tensor().t().unwrap(), None, false).is_err()
    );
}

/// Fused op vs the unfused composition (our conv + candle relu + our pool, since candle's
/// pool backward is scaled), forward and all three gradients.
#[test]
fn fused_matches_composition() {
    for (seed, n, ci, co, h, w) in [
        (10, 2, 3, 4, 8, 8),
        (11, 1, 1, 3, 6, 6),
        (12, 3, 5, 2, 4, 2),
        (13, 4, 3, 32, 32, 32),
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
        assert_close("fused forward", &flat(&y), &flat(&e), 1e-6);
        assert_close("fused forward vs native", &flat(&y), &flat(&yn), 1e-5);
        let go = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let ge = (e * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &wt, &b] {
            assert_close(
                "fused grad",
                &flat(go.get(v.as_tensor()).unwrap()),
                &flat(ge.get(v.as_tensor()).unwrap()),
                1e-5,
            );
        }
    }
}

/// Fused op gradients against central differences of the exact f64 math. Random data keeps
/// every window's maximum and every ReLU input away from a kink by far more than eps.
#[test]
fn fused_gradients_match_f64_finite_differences() {
    let c = FusedFd {
        seed: 14,
        n: 2,
        ci: 2,
        co: 3,
        h: 4,
        w: 6,
        w_scale: 1.0,
        // Shifted down so that some pooled outputs are clamped to zero by the ReLU.
        b_shift: -1.5,
    };
    check_fused_fd("fused", &c, 1e-5);
}

/// The pool that every fallback off the fast path runs (CUDA, non-f32 tensors; not the stock ops):
/// the same forward as the CPU op and PyTorch's gradient, odd sizes included.
#[test]
fn reduce_pool_has_the_kernels_gradient() {
    for (seed, dims) in [(5, [2, 3, 8, 8]), (6, [1, 2, 7, 5]), (7, [3, 1, 2, 3])] {
        let mut g = rng(seed);
        let xv = randv(&mut g, dims.iter().product());
        let x = var(&Tensor::from_vec(xv.clone(), &dims, &Device::Cpu).unwrap());
        let y = candle_cpu_ops::native::max_pool2x2_reduce(x.as_tensor()).unwrap();
        let want_y = candle_cpu_ops::max_pool2x2(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), want_y.dims(), "{dims:?}");
        assert_eq!(flat(&y), flat(&want_y), "forward {dims:?}");
        let r = rand_t(&mut g, y.dims());
        let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let want = ref_pool_grad(&xv, &flat(&r), dims[0] * dims[1], dims[2], dims[3]);
        assert_eq!(
            flat(grads.get(x.as_tensor()).unwrap()),
            want,
            "backward {dims:?}"
        );
    }
}

/// Off the fast path (here: f64 tensors, as CUDA ones would be) the pooling ops of the default kernel settings
/// train like the CPU kernels: the same gradients as the f32 fast path, and not candle's quartered ones, which the
/// stock settings keep.
#[test]
fn pooling_ops_off_the_fast_path_have_the_kernels_gradients() {
    let k = candle_cpu_ops::KernelConfig::default();
    let mut g = rng(8);
    let (x, w, b) = (
        rand_t(&mut g, &[2, 3, 6, 6]),
        rand_t(&mut g, &[4, 3, 3, 3]),
        rand_t(&mut g, &[4]),
    );
    type Op =
        fn(&candle_cpu_ops::KernelConfig, &Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor>;
    let ops: [(&str, Op); 3] = [
        ("max_pool2x2", |k, x, _, _| k.max_pool2x2(x)),
        ("conv3x3_relu_pool", |k, x, w, b| {
            k.conv3x3_relu_pool(x, w, b)
        }),
        ("conv3x3_nobias_pool", |k, x, w, _| {
            k.conv3x3_nobias_pool(x, w)
        }),
    ];
    // Gradients of x, w and b under (op(x, w, b) · r).sum() in `dtype`, back in f32.
    let grads = |k: &candle_cpu_ops::KernelConfig, op: Op, dtype: DType| -> Vec<Vec<f32>> {
        let vs: Vec<_> = [&x, &w, &b]
            .iter()
            .map(|t| var(&t.to_dtype(dtype).unwrap()))
            .collect();
        let y = op(k, vs[0].as_tensor(), vs[1].as_tensor(), vs[2].as_tensor()).unwrap();
        let r = Tensor::ones(y.dims(), dtype, &Device::Cpu).unwrap();
        let gs = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        vs.iter()
            .filter_map(|v| gs.get(v.as_tensor()))
            .map(|t| flat(&t.to_dtype(DType::F32).unwrap()))
            .collect()
    };
    for (name, op) in ops {
        let fast = grads(&k, op, DType::F32);
        let fallback = grads(&k, op, DType::F64);
        assert_eq!(fast.len(), fallback.len(), "{name}: gradients present");
        for (a, b) in fallback.iter().zip(&fast) {
            assert_close(name, a, b, 1e-5);
        }
        let stock = grads(&candle_cpu_ops::KernelConfig::stock(), op, DType::F64);
        assert!(
            rel_err(&stock[0], &fast[0]) > 0.1,
            "{name}: the stock ops' pool gradient should still be candle's (scaled)"
        );
    }
}
