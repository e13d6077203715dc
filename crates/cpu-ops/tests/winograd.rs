//! The Winograd paths of the 3x3 convolutions (`KernelConfig::with_winograd_tiles`: F(2x2, 3x3) and F(4x4, 3x3))
//! against the direct im2col path, f32, forward and backward, through every public conv op, at the shapes that
//! take them (airbench94's 31x31, 15x15, 7x7 and 3x3 layers, the reference network's 32→64 at 16x16 and 64→128 at
//! 8x8) and at odd and rectangular ones, with the transforms this CPU picks (F(2x2): AVX-512 up to 15 wide, AVX2 up
//! to 16; F(4x4): AVX2, any width). On a CPU without AVX2 the runs take the direct path (and agree trivially).

mod common;

use candle_core::Tensor;
use candle_cpu_ops::{Isa, KernelConfig, Winograd};
use common::*;

type Op = fn(&KernelConfig, &Tensor, &Tensor, &Tensor) -> candle_cpu_ops::Result<Tensor>;

fn nobias(k: &KernelConfig, x: &Tensor, w: &Tensor, _: &Tensor) -> candle_cpu_ops::Result<Tensor> {
    k.conv3x3_nobias(x, w)
}
fn biased(k: &KernelConfig, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_cpu_ops::Result<Tensor> {
    k.conv3x3(x, w, b)
}
fn nobias_pool(
    k: &KernelConfig,
    x: &Tensor,
    w: &Tensor,
    _: &Tensor,
) -> candle_cpu_ops::Result<Tensor> {
    k.conv3x3_nobias_pool(x, w)
}
fn relu_pool(
    k: &KernelConfig,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
) -> candle_cpu_ops::Result<Tensor> {
    k.conv3x3_relu_pool(x, w, b)
}

/// Output, and the gradients of `sum(y · r)` for x, w and b.
fn run(tiles: Winograd, x: &Tensor, w: &Tensor, b: &Tensor, op: Op, seed: u64) -> Vec<Vec<f32>> {
    let k = KernelConfig::default().with_winograd_tiles(tiles);
    let (xv, wv, bv) = (var(x), var(w), var(b));
    let y = op(&k, xv.as_tensor(), wv.as_tensor(), bv.as_tensor()).unwrap();
    let r = rand_t(&mut rng(seed), y.dims());
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![flat(&y)];
    for v in [&xv, &wv, &bv] {
        out.push(g.get(v.as_tensor()).map(flat).unwrap_or_default());
    }
    out
}

/// F(2x2) within 1e-5 of the direct path (its transforms only add, subtract and halve: rounding alone); F(4x4)
/// within 5e-5 (its transforms' coefficients magnify rounding); `Auto` is F(4x4) in f32 where the CPU has AVX2.
#[test]
fn winograd_matches_the_direct_convolution() {
    assert!(KernelConfig::default().winograd(), "on by default");
    assert_eq!(KernelConfig::default().winograd_tiles(), Winograd::Auto);
    let avx2 = Isa::detect() >= Isa::Avx2;
    let ops: [(&str, Op); 4] = [
        ("conv3x3_nobias", nobias),
        ("conv3x3", biased),
        ("conv3x3_nobias_pool", nobias_pool),
        ("conv3x3_relu_pool", relu_pool),
    ];
    for (i, &(n, ci, co, h, w)) in [
        (3usize, 64usize, 64usize, 15usize, 15usize),
        (2, 64, 256, 15, 15),
        (3, 256, 256, 7, 7),
        (4, 64, 128, 8, 8),
        (2, 32, 64, 16, 16),
        (2, 24, 64, 31, 31),
        (2, 16, 32, 9, 12),
        (5, 256, 256, 3, 3),
        (2, 32, 5, 9, 6),
        (3, 40, 7, 5, 13),
    ]
    .iter()
    .enumerate()
    {
        let mut g = rng(300 + i as u64);
        let x = rand_t(&mut g, &[n, ci, h, w]);
        let wt = (rand_t(&mut g, &[co, ci, 3, 3]) * 0.1).unwrap();
        let b = rand_t(&mut g, &[co]);
        for (name, op) in ops {
            let direct = run(Winograd::Off, &x, &wt, &b, op, 7);
            let f4 = run(Winograd::F4x4, &x, &wt, &b, op, 7);
            for (tiles, tol) in [(Winograd::F2x2, 1e-5), (Winograd::F4x4, 5e-5)] {
                let wino = if tiles == Winograd::F4x4 {
                    f4.clone()
                } else {
                    run(tiles, &x, &wt, &b, op, 7)
                };
                for (what, (a, d)) in ["y", "dx", "dw", "db"].iter().zip(wino.iter().zip(&direct)) {
                    assert_eq!(a.len(), d.len(), "{name} {what}");
                    if !a.is_empty() {
                        assert_close(
                            &format!("{name} {tiles} {n}x{ci}->{co} @{h}x{w} {what}"),
                            a,
                            d,
                            tol,
                        );
                    }
                }
            }
            let auto = run(Winograd::Auto, &x, &wt, &b, op, 7);
            if avx2 {
                assert_eq!(auto[0], f4[0], "{name} @{h}x{w}: Auto runs F(4x4) in f32");
            }
        }
    }
}
