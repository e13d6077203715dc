//! Muon against a short PyTorch trace: `bench/airbench94_muon_torch.py --trace` runs airbench94_muon.py's Muon
//! (momentum 0.6 Nesterov, 3 quintic Newton–Schulz iterations, filters renormalised; the iteration in float64) for
//! three steps on two filter banks, one wide (`[4, 27]`) and one tall (`[20, 18]`, orthogonalised transposed),
//! with the rate decaying 0.24, 0.16, 0.08, and writes the weights after each step
//! (`tests/fixtures/muon_trace.json`).

use candle_core::{Device, Tensor, Var};
use cifar10_train::optim::{Muon, MuonConfig, Optimizer};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

#[test]
fn muon_matches_the_pytorch_trace() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/muon_trace.json"
    );
    let text = std::fs::read_to_string(path).expect("the fixture");
    let t: Value = serde_json::from_str(&text).expect("JSON");
    let names = ["wide", "tall"];
    let mut vars = Vec::new();
    for n in names {
        let shape: Vec<usize> = t["shapes"][n]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let v = Var::from_vec(floats(&t["init"][n]), shape.as_slice(), &Device::Cpu).unwrap();
        vars.push((n.to_string(), v));
    }
    let cfg = MuonConfig {
        lr: 0.24,
        momentum: t["momentum"].as_f64().unwrap(),
        nesterov: t["nesterov"].as_bool().unwrap(),
        ns_steps: t["ns_steps"].as_u64().unwrap() as usize,
        normalize_weights: true,
    };
    let mut opt = Muon::new(vars.clone(), cfg).unwrap();
    let lrs = floats(&t["lrs"]);
    let steps = t["after"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (k, after) in steps.iter().enumerate() {
        // loss = Σ G ⊙ θ has the gradient G.
        let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
        for (n, v) in &vars {
            let g = Tensor::from_vec(floats(&t["grads"][k][n.as_str()]), v.shape(), &Device::Cpu)
                .unwrap();
            loss = (loss + (v.as_tensor() * g).unwrap().sum_all().unwrap()).unwrap();
        }
        opt.set_lr(f64::from(lrs[k]));
        opt.step(&loss.backward().unwrap()).unwrap();
        for (n, v) in &vars {
            let want = floats(&after[n.as_str()]);
            let got = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            // f32 against PyTorch's float64: a few ulps of O(1) weights after three steps.
            assert!(worst < 2e-5, "step {k} {n}: worst difference {worst}");
        }
    }
}
