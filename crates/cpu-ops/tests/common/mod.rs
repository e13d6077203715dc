//! Shared test helpers: seeded random tensors, comparisons and f64 reference implementations.
#![allow(dead_code)]

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod erf;
pub use erf::gelu64;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn randv(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

pub fn rand_t(rng: &mut ChaCha8Rng, dims: &[usize]) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(randv(rng, n), dims, &Device::Cpu).unwrap()
}

pub fn var(t: &Tensor) -> Var {
    Var::from_tensor(t).unwrap()
}

pub fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Max |a-b| / max(1, max|b|): a relative error normalised by the reference's scale.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    let e = rel_err(a, b);
    assert!(e < tol, "{what}: relative error {e} >= {tol}");
}

/// f64 reference: 3x3/pad-1 conv + bias, NCHW.
#[allow(clippy::too_many_arguments)]
pub fn ref_conv(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    n: usize,
    ci: usize,
    co: usize,
    h: usize,
    wd: usize,
) -> Vec<f64> {
    let mut out = vec![0f64; n * co * h * wd];
    for img in 0..n {
        for o in 0..co {
            for y in 0..h {
                for xx in 0..wd {
                    let mut s = b[o];
                    for i in 0..ci {
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let iy = y as isize + kh as isize - 1;
                                let ix = xx as isize + kw as isize - 1;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                s += w[((o * ci + i) * 3 + kh) * 3 + kw]
                                    * x[((img * ci + i) * h + iy as usize) * wd + ix as usize];
                            }
                        }
                    }
                    out[((img * co + o) * h + y) * wd + xx] = s;
                }
            }
        }
    }
    out
}

/// f64 reference: 2x2/stride-2 max-pool (optionally of the ReLU), NCHW planes.
pub fn ref_pool(x: &[f64], planes: usize, h: usize, w: usize, relu: bool) -> Vec<f64> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f64; planes * ho * wo];
    for p in 0..planes {
        for y in 0..ho {
            for xx in 0..wo {
                let at = |dy: usize, dx: usize| x[(p * h + 2 * y + dy) * w + 2 * xx + dx];
                let m = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                out[(p * ho + y) * wo + xx] = if relu { m.max(0.0) } else { m };
            }
        }
    }
    out
}

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Central-difference gradient of `f` at `x` in f64.
pub fn fd_grad(x: &[f64], eps: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xp[i];
            xp[i] = orig + eps;
            let up = f(&xp);
            xp[i] = orig - eps;
            let down = f(&xp);
            xp[i] = orig;
            (up - down) / (2.0 * eps)
        })
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Shape of a fused-op finite-difference check: `x [n, ci, h, w]`, `co` output channels; the random weights
/// are scaled by `w_scale` and the biases shifted by `b_shift` (down, so that the ReLU clamps some outputs).
pub struct FusedFd {
    pub seed: u64,
    pub n: usize,
    pub ci: usize,
    pub co: usize,
    pub h: usize,
    pub w: usize,
    pub w_scale: f32,
    pub b_shift: f32,
}

/// conv3x3_relu_pool's input, weight and bias gradients against central differences of the exact f64 math,
/// for the loss `sum(y * r)` with a random `r`; relative error below `tol`.
pub fn check_fused_fd(label: &str, c: &FusedFd, tol: f32) {
    let (n, ci, co, h, w) = (c.n, c.ci, c.co, c.h, c.w);
    let mut g = rng(c.seed);
    let xv = randv(&mut g, n * ci * h * w);
    let wv: Vec<f32> = randv(&mut g, co * ci * 9)
        .iter()
        .map(|v| v * c.w_scale)
        .collect();
    let bv: Vec<f32> = randv(&mut g, co).iter().map(|v| v + c.b_shift).collect();
    let rv = randv(&mut g, n * co * (h / 2) * (w / 2));
    let dev = Device::Cpu;
    let x = var(&Tensor::from_vec(xv.clone(), (n, ci, h, w), &dev).unwrap());
    let wt = var(&Tensor::from_vec(wv.clone(), (co, ci, 3, 3), &dev).unwrap());
    let b = var(&Tensor::from_vec(bv.clone(), co, &dev).unwrap());
    let r = Tensor::from_vec(rv.clone(), (n, co, h / 2, w / 2), &dev).unwrap();
    let y =
        candle_cpu_ops::conv3x3_relu_pool(x.as_tensor(), wt.as_tensor(), b.as_tensor()).unwrap();
    assert!(flat(&y).contains(&0.0) && flat(&y).iter().any(|&v| v > 0.0));
    let grads = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let (x64, w64, b64, r64) = (to64(&xv), to64(&wv), to64(&bv), to64(&rv));
    let l = |xx: &[f64], ww: &[f64], bb: &[f64]| {
        dot(
            &ref_pool(&ref_conv(xx, ww, bb, n, ci, co, h, w), n * co, h, w, true),
            &r64,
        )
    };
    let eps = 1e-6;
    let fdx = fd_grad(&x64, eps, |v| l(v, &w64, &b64));
    let fdw = fd_grad(&w64, eps, |v| l(&x64, v, &b64));
    let fdb = fd_grad(&b64, eps, |v| l(&x64, &w64, v));
    for (name, t, fd) in [("dx", &x, fdx), ("dw", &wt, fdw), ("db", &b, fdb)] {
        let fd32: Vec<f32> = fd.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("{label} FD {name}"),
            &flat(grads.get(t.as_tensor()).unwrap()),
            &fd32,
            tol,
        );
    }
}

/// f64 reference of training-mode BatchNorm (no weight) + bias + GELU over NCHW `x`: returns
/// `(y, mean [c], biased var [c])`.
pub fn ref_bn_gelu(
    x: &[f64],
    b: &[f64],
    n: usize,
    c: usize,
    hw: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (n * hw) as f64;
    let at = |i: usize, ch: usize, p: usize| x[(i * c + ch) * hw + p];
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for ch in 0..c {
        let vals = || (0..n).flat_map(move |i| (0..hw).map(move |p| at(i, ch, p)));
        mean[ch] = vals().sum::<f64>() / m;
        var[ch] = vals().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / m;
    }
    let mut y = vec![0f64; x.len()];
    for i in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                let z = (at(i, ch, p) - mean[ch]) / (var[ch] + eps).sqrt() + b[ch];
                y[(i * c + ch) * hw + p] = gelu64(z);
            }
        }
    }
    (y, mean, var)
}
