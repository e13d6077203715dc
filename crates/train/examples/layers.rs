use candle_core::{Device, Tensor, Var};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn med(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[7]
}

fn main() {
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    model::device::prepare_cpu_threads();
    let n = 64;
    for &(ci, co, hw, track) in &[
        (3usize, 32usize, 32usize, false),
        (32, 64, 16, true),
        (64, 128, 8, true),
    ] {
        let x = Tensor::randn(0f32, 1., (n, ci, hw, hw), &Device::Cpu).unwrap();
        let x = if track {
            Var::from_tensor(&x).unwrap().as_tensor().clone()
        } else {
            x
        };
        let w = Var::from_tensor(
            &(Tensor::randn(0f32, 1., (co, ci, 3, 3), &Device::Cpu).unwrap() * 0.1).unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1., co, &Device::Cpu).unwrap()).unwrap();
        let y = cpu_ops::conv3x3_relu_pool(&x, w.as_tensor(), b.as_tensor()).unwrap();
        let r = Tensor::randn(0f32, 1., y.dims(), &Device::Cpu).unwrap();
        let f = med(|| {
            cpu_ops::conv3x3_relu_pool(&x, w.as_tensor(), b.as_tensor()).unwrap();
        });
        let fb = med(|| {
            let y = cpu_ops::conv3x3_relu_pool(&x, w.as_tensor(), b.as_tensor()).unwrap();
            (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        });
        let flop = 2.0 * (n * co * ci * 9 * hw * hw) as f64;
        let bflop = if track { 2.0 * flop } else { flop };
        println!(
            "conv {ci}->{co}@{hw}: fwd {f:.2} ms ({:.0} GF/s) bwd {:.2} ms ({:.0} GF/s)",
            flop / f / 1e6,
            fb - f,
            bflop / (fb - f) / 1e6
        );
    }
    for &(i, o) in &[(2048usize, 512usize), (512, 256), (256, 128), (128, 10)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, i), &Device::Cpu).unwrap()).unwrap();
        let w =
            Var::from_tensor(&Tensor::randn(0f32, 0.05, (o, i), &Device::Cpu).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1., o, &Device::Cpu).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1., (n, o), &Device::Cpu).unwrap();
        let f = med(|| {
            cpu_ops::linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), true).unwrap();
        });
        let fb = med(|| {
            let y =
                cpu_ops::linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), true).unwrap();
            (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        });
        let flop = 2.0 * (n * i * o) as f64;
        println!(
            "linear {i}->{o}: fwd {f:.3} ms ({:.0} GF/s) bwd {:.3} ms ({:.0} GF/s)",
            flop / f / 1e6,
            fb - f,
            2.0 * flop / (fb - f) / 1e6
        );
    }
}
