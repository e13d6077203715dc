//! The sparse and the dense backward of conv3x3_relu_pool and conv3x3_nobias_pool agree. Its own test binary: it flips the process-wide
//! `set_sparse_backward` switch, which would change the path other tests take.

mod common;

use common::*;

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
            cpu_ops::set_sparse_backward(sparse);
            let y =
                cpu_ops::conv3x3_relu_pool(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
            let gs = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            [&x, &w, &b].map(|v| flat(gs.get(v.as_tensor()).unwrap()))
        };
        let dense = grads(false);
        let sparse = grads(true);
        assert!(cpu_ops::sparse_backward_enabled());
        for (name, (s, d)) in ["dx", "dw", "db"].iter().zip(sparse.iter().zip(&dense)) {
            assert_close(&format!("ci={ci} sparse vs dense {name}"), s, d, 1e-5);
        }
    }
    // conv3x3_nobias_pool (no ReLU: every argmax passes a gradient) at airbench-like channel counts and odd
    // sizes, in the same test so that no other test flips the switch meanwhile.
    for (seed, n, ci, co, hw) in [(40, 2, 24, 16, 31), (41, 3, 64, 32, 15), (42, 2, 256, 8, 7)] {
        let mut g = rng(seed);
        let x = var(&rand_t(&mut g, &[n, ci, hw, hw]));
        let w = var(&(rand_t(&mut g, &[co, ci, 3, 3]) * 0.1).unwrap());
        let r = rand_t(&mut g, &[n, co, hw / 2, hw / 2]);
        let grads = |sparse: bool| {
            cpu_ops::set_sparse_backward(sparse);
            let y = cpu_ops::conv3x3_nobias_pool(x.as_tensor(), w.as_tensor()).unwrap();
            let gs = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            [&x, &w].map(|v| flat(gs.get(v.as_tensor()).unwrap()))
        };
        let dense = grads(false);
        let sparse = grads(true);
        assert!(cpu_ops::sparse_backward_enabled());
        for (name, (s, d)) in ["dx", "dw"].iter().zip(sparse.iter().zip(&dense)) {
            assert_close(
                &format!("nobias ci={ci} sparse vs dense {name}"),
                s,
                d,
                1e-5,
            );
        }
    }
}
