use candle_core::{Device, Tensor};
use model::{Mode, registry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use train::loss::cross_entropy;
use train::optim::{Adam, AdamConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    model::device::prepare_cpu_threads();
    let batch: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(64);
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let net = registry::build("cnn-dnn", &dev, 0).unwrap();
    let mut opt = Adam::new(net.params().iter(), AdamConfig::default()).unwrap();
    let x: Vec<f32> = (0..batch * 3072)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let x = Tensor::from_vec(x, (batch, 3, 32, 32), &dev).unwrap();
    let y = Tensor::from_vec(y, batch, &dev).unwrap();
    let mut t = [0f64; 4];
    for it in 0..120 {
        let t0 = Instant::now();
        let logits = net.forward(&x, Mode::Train(&mut rng)).unwrap();
        let t1 = Instant::now();
        let loss = cross_entropy(&logits, &y, 0.0).unwrap();
        loss.to_scalar::<f32>().unwrap();
        let t2 = Instant::now();
        let g = loss.backward().unwrap();
        let t3 = Instant::now();
        opt.step(&g).unwrap();
        drop(g);
        let t4 = Instant::now();
        if it >= 20 {
            t[0] += (t1 - t0).as_secs_f64();
            t[1] += (t2 - t1).as_secs_f64();
            t[2] += (t3 - t2).as_secs_f64();
            t[3] += (t4 - t3).as_secs_f64();
        }
    }
    let tot: f64 = t.iter().sum();
    println!(
        "per step ms: fwd {:.2} loss {:.2} bwd {:.2} adam {:.2} total {:.2} => {:.0} img/s",
        t[0] * 10.0,
        t[1] * 10.0,
        t[2] * 10.0,
        t[3] * 10.0,
        tot * 10.0,
        batch as f64 * 100.0 / tot
    );
}
