//! The kernels' settings are values (`KernelConfig`), not process-wide switches: stock ops, the sparse backward,
//! and several settings used at once on threads, each giving the numbers of its own single-setting run.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_cpu_ops::{GroupCols, KernelConfig, Precision, Winograd};
use common::*;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn stock_ops_fall_back_to_native_ops() {
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
    let (fast_cfg, stock_cfg) = (KernelConfig::default(), KernelConfig::stock());
    assert!(!fast_cfg.stock_ops() && stock_cfg.stock_ops());
    let fast = fast_cfg.conv3x3_relu_pool(&x, &w, &b).unwrap();
    let stock = stock_cfg.conv3x3_relu_pool(&x, &w, &b).unwrap();
    let native = candle_cpu_ops::native::conv3x3_relu_pool(&x, &w, &b).unwrap();
    // Stock: exactly the native graph; the kernels: the same values up to rounding.
    assert_eq!(max_diff(&stock, &native), 0.0);
    assert!(max_diff(&fast, &native) < 1e-4);
    // The stock path is candle's own op graph, so its backward is candle's (a different graph than the custom
    // op's): check that it at least differentiates.
    let wv = candle_core::Var::from_tensor(&w).unwrap();
    let y = stock_cfg.conv3x3_relu_pool(&x, wv.as_tensor(), &b).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(wv.as_tensor()).is_some());
    // The linear layer follows the same setting.
    let xl = rand_t(&mut rng(3), &[4, 6]);
    let wl = rand_t(&mut rng(4), &[5, 6]);
    let stock_lin = stock_cfg.linear(&xl, &wl, None, true).unwrap();
    let want = xl.matmul(&wl.t().unwrap()).unwrap().relu().unwrap();
    assert_eq!(max_diff(&stock_lin, &want), 0.0);
}

#[test]
fn sparse_and_dense_backward_agree() {
    // The model's second block, and its first (three input channels, the image's gradient included).
    for (seed, n, ci, co, hw) in [(37, 4, 32, 64, 16), (39, 2, 3, 32, 32)] {
        let mut g = rng(seed);
        let x = var(&rand_t(&mut g, &[n, ci, hw, hw]));
        let w = var(&(rand_t(&mut g, &[co, ci, 3, 3]) * 0.1).unwrap());
        let b = var(&rand_t(&mut g, &[co]));
        let r = rand_t(&mut g, &[n, co, hw / 2, hw / 2]);
        let grads = |sparse: bool| {
            let k = KernelConfig::default().with_sparse_backward(sparse);
            let y = k
                .conv3x3_relu_pool(x.as_tensor(), w.as_tensor(), b.as_tensor())
                .unwrap();
            let gs = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            [&x, &w, &b].map(|v| flat(gs.get(v.as_tensor()).unwrap()))
        };
        let dense = grads(false);
        let sparse = grads(true);
        for (name, (s, d)) in ["dx", "dw", "db"].iter().zip(sparse.iter().zip(&dense)) {
            assert_close(&format!("ci={ci} sparse vs dense {name}"), s, d, 1e-5);
        }
    }
    // conv3x3_nobias_pool (no ReLU: every argmax passes a gradient) at airbench-like channel counts and odd sizes:
    // the dense backward, the sparse one with its weight gradient in tiles (the default) and image by image, the
    // input tracked or not (then only the weight gradient runs).
    for (seed, n, ci, co, hw) in [(40, 2, 24, 16, 31), (41, 3, 64, 32, 15), (42, 2, 256, 8, 7)] {
        let mut g = rng(seed);
        let xt = rand_t(&mut g, &[n, ci, hw, hw]);
        let x = var(&xt);
        let w = var(&(rand_t(&mut g, &[co, ci, 3, 3]) * 0.1).unwrap());
        let r = rand_t(&mut g, &[n, co, hw / 2, hw / 2]);
        for track_x in [true, false] {
            let input = if track_x { x.as_tensor() } else { &xt };
            let grads = |k: KernelConfig| {
                let y = k.conv3x3_nobias_pool(input, w.as_tensor()).unwrap();
                let gs = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let dx = gs.get(input).map(flat);
                assert_eq!(dx.is_some(), track_x, "nobias ci={ci}: dx presence");
                [dx.unwrap_or_default(), flat(gs.get(w.as_tensor()).unwrap())]
            };
            let dense = grads(KernelConfig::default().with_sparse_backward(false));
            for tiled in [true, false] {
                let k = KernelConfig::default().with_tiled_weight_grad(tiled);
                assert_eq!(k.tiled_weight_grad(), tiled);
                let sparse = grads(k);
                for (name, (s, d)) in ["dx", "dw"].iter().zip(sparse.iter().zip(&dense)) {
                    assert_close(
                        &format!(
                            "nobias ci={ci} tiled={tiled} dx tracked={track_x} vs dense {name}"
                        ),
                        s,
                        d,
                        1e-5,
                    );
                }
            }
        }
    }
}

/// A small airbench-like block (conv → pool, conv, BatchNorm+GELU, head) forward and backward with settings `k`:
/// the output and every gradient.
fn block(k: &KernelConfig, x: &Tensor, w1: &Tensor, w2: &Tensor, head: &Tensor) -> Vec<Vec<f32>> {
    let (w1, w2, head) = (var(w1), var(w2), var(head));
    let bias = var(&Tensor::zeros(32, DType::F32, &Device::Cpu).unwrap());
    let h = k.conv3x3_nobias_pool(x, w1.as_tensor()).unwrap();
    let h = k.conv3x3_nobias(&h, w2.as_tensor()).unwrap();
    let (h, _, _) = k
        .batch_norm_gelu_train(&h, bias.as_tensor(), 1e-12)
        .unwrap();
    let y = k
        .global_max_linear(&h, head.as_tensor(), 1.0 / 9.0)
        .unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![flat(&y)];
    for v in [&w1, &w2, &head, &bias] {
        out.push(flat(g.get(v.as_tensor()).unwrap()));
    }
    out
}

/// Two (or three) settings used at once on threads, interleaved many times: each result equals, bit for bit, the
/// result of its own settings computed alone beforehand. With process-wide switches, a thread's forward would pick
/// up the other thread's precision (or path) half of the time.
#[test]
fn different_settings_on_threads_keep_their_own_numbers() {
    let mut g = rng(77);
    let x = rand_t(&mut g, &[4, 32, 14, 14]);
    let w1 = (rand_t(&mut g, &[32, 32, 3, 3]) * 0.1).unwrap();
    let w2 = (rand_t(&mut g, &[32, 32, 3, 3]) * 0.1).unwrap();
    let head = rand_t(&mut g, &[10, 32]);
    let mut settings = vec![
        KernelConfig::default(),
        KernelConfig::stock(),
        KernelConfig::default()
            .with_winograd(false)
            .with_sparse_backward(false)
            .with_group_cols(GroupCols { fwd: 1, dw: 1 }),
    ];
    if let Ok(bf16) = KernelConfig::default().with_precision(Precision::Bf16) {
        settings.push(bf16);
    }
    // F(2x2) tiles where the default takes F(4x4) (AVX2 CPUs).
    if candle_cpu_ops::Isa::detect() >= candle_cpu_ops::Isa::Avx2 {
        settings.push(KernelConfig::default().with_winograd_tiles(Winograd::F2x2));
    }
    let alone: Vec<_> = settings
        .iter()
        .map(|k| block(k, &x, &w1, &w2, &head))
        .collect();
    // The settings give different numbers (else this test could not fail).
    for (i, a) in alone.iter().enumerate().skip(1) {
        assert_ne!(a, &alone[0], "settings {i} gave the default's numbers");
    }
    std::thread::scope(|s| {
        for (k, want) in settings.iter().zip(&alone) {
            let (x, w1, w2, head) = (&x, &w1, &w2, &head);
            s.spawn(move || {
                for round in 0..6 {
                    let got = block(k, x, w1, w2, head);
                    assert!(got == *want, "{k:?}, round {round}: the numbers changed");
                }
            });
        }
    });
}

/// The Winograd setting's names (the benches' `CPU_OPS_WINOGRAD` values) read back as themselves, others are
/// refused with the list; `with_winograd(bool)` is `Auto` or `Off`.
#[test]
fn winograd_names_and_switch() {
    for w in Winograd::ALL {
        assert_eq!(w.name().parse::<Winograd>(), Ok(w));
    }
    let err = "f3".parse::<Winograd>().unwrap_err();
    assert!(
        err.contains("off, f2, f4 or auto") && err.contains("f3"),
        "{err}"
    );
    let k = KernelConfig::default();
    assert_eq!(k.with_winograd(false).winograd_tiles(), Winograd::Off);
    assert!(!k.with_winograd(false).winograd());
    assert_eq!(
        k.with_winograd_tiles(Winograd::F2x2)
            .with_winograd(true)
            .winograd_tiles(),
        Winograd::Auto
    );
}
