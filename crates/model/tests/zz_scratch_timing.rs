use candle_core::{Device, Tensor, Var};
#[test]
fn timing() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (128, 6, 14, 14), &dev).unwrap();
    let x = Var::from_tensor(&x).unwrap();
    let x1 = Tensor::randn(0f32, 1.0, (128, 3, 32, 32), &dev).unwrap();
    let w1 = Var::from_tensor(&Tensor::randn(0f32, 0.1, (6, 3, 5, 5), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (16, 6, 5, 5), &dev).unwrap()).unwrap();
    let b1 = Var::from_tensor(&Tensor::zeros(6, candle_core::DType::F32, &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::zeros(16, candle_core::DType::F32, &dev).unwrap()).unwrap();
    for round in 0..3 {
        for fast in [true, false] {
            cpu_ops::set_enabled(fast);
            let t = std::time::Instant::now();
            for _ in 0..10 {
                let y1 = model::conv_valid(&x1, w1.as_tensor(), b1.as_tensor()).unwrap();
                let y = model::conv_valid(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
                let l = (y1.sum_all().unwrap() + y.sqr().unwrap().sum_all().unwrap()).unwrap();
                let _g = l.backward().unwrap();
            }
            eprintln!("round {round} fast={fast}: {:.1} ms/step", t.elapsed().as_secs_f64() * 100.0);
        }
    }
    cpu_ops::set_enabled(true);
}
