//! CPU-vs-CUDA parity of the training side: each optimizer's device path (Adam, SGD with Nesterov momentum and
//! weight decay, Muon) against its host path over a few steps, and whole short runs of the reference (one epoch),
//! airbench94 and airbench94-muon (three) recipes on the synthetic task on `cuda:0` against the same runs on the
//! CPU, with the tolerances `tests/fallback.rs` measured for the same ops on the CPU.
//!
//! Compiled only with `--features cuda`; where no CUDA device opens each test says so on stderr and passes without
//! checking. Run it on a GPU machine with
//! `cargo test --release -p cifar10-train --features cuda --test cuda -- --nocapture --test-threads 1`
//! (docs/cuda.md); the printed differences are the measured figures.
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use cifar10_train::optim::{
    Adam, AdamConfig, Muon, MuonConfig, Optimizer, ParamGroup, Sgd, SgdConfig,
};
use cifar10_train::{StopFlag, TrainConfig, run};

fn cuda_or_skip() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: CUDA device 0 does not open ({e})");
            None
        }
    }
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_device(&Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("tensor to host")
}

/// ‖got − want‖ / ‖want‖.
fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    assert!(got.iter().all(|v| v.is_finite()), "non-finite value");
    let num: f64 = got.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    (num / den).sqrt()
}

/// A filter bank `[8, 4, 3, 3]` and a bias `[8]` on `device`, the same values on every device.
fn params(device: &Device) -> Vec<(String, Var)> {
    let w: Vec<f32> = (0..288)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let b: Vec<f32> = (0..8).map(|i| 0.1 * i as f32 - 0.3).collect();
    vec![
        (
            "w".into(),
            Var::from_vec(w, (8, 4, 3, 3), device).expect("w"),
        ),
        ("b".into(), Var::from_vec(b, 8, device).expect("b")),
    ]
}

/// Three steps of `make`'s optimizer on the loss Σ c·θ² + Σ sin(θ) (gradients that depend on θ, so the steps
/// compound); the parameters' final values.
fn three_steps(
    device: &Device,
    make: &dyn Fn(Vec<(String, Var)>) -> Box<dyn Optimizer>,
) -> Vec<Vec<f64>> {
    let ps = params(device);
    let mut opt = make(ps.clone());
    for _ in 0..3 {
        let mut loss = Tensor::zeros((), DType::F32, device).expect("zero");
        for (i, (_, v)) in ps.iter().enumerate() {
            let t = v.as_tensor();
            let term = ((t.sqr().expect("sqr") * (0.5 + i as f64)).expect("scale")
                + t.sin().expect("sin"))
            .expect("add")
            .sum_all()
            .expect("sum");
            loss = (loss + term).expect("add");
        }
        let grads = loss.backward().expect("backward");
        opt.step(&grads).expect("step");
    }
    ps.iter().map(|(_, v)| host(v.as_tensor())).collect()
}

#[test]
fn optimizers_device_paths_match_the_host_paths() {
    let Some(gpu) = cuda_or_skip() else { return };
    type Make = Box<dyn Fn(Vec<(String, Var)>) -> Box<dyn Optimizer>>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "adamw",
            Box::new(|ps| {
                let cfg = AdamConfig {
                    lr: 0.01,
                    weight_decay: 0.05,
                    ..AdamConfig::default()
                };
                Box::new(Adam::new(ps.iter().map(|(n, v)| (n.as_str(), v)), cfg).expect("adam"))
            }),
        ),
        (
            "sgd-nesterov",
            Box::new(|ps| {
                let group = ParamGroup {
                    params: ps,
                    lr_scale: 1.0,
                    weight_decay: 5e-3,
                };
                let cfg = SgdConfig {
                    lr: 0.05,
                    momentum: 0.85,
                    nesterov: true,
                };
                Box::new(Sgd::new(vec![group], cfg).expect("sgd"))
            }),
        ),
        (
            "muon",
            Box::new(|ps| {
                let filters = ps.into_iter().filter(|(n, _)| n == "w").collect();
                Box::new(Muon::new(filters, MuonConfig::default()).expect("muon"))
            }),
        ),
    ];
    for (name, make) in &cases {
        let cpu = three_steps(&Device::Cpu, make.as_ref());
        let cuda = three_steps(&gpu, make.as_ref());
        for (i, (c, g)) in cuda.iter().zip(&cpu).enumerate() {
            let e = rel_err(c, g);
            println!(
                "{name}: parameter {i} after 3 steps: relative error {e:.2e} (tolerance 1e-5)"
            );
            assert!(e <= 1e-5, "{name}: parameter {i}: relative error {e:.3e}");
        }
    }
}

/// A run of `cfg` on the synthetic task on `device`: per-epoch train losses and the test accuracy.
fn losses(cfg: &TrainConfig, device: &str) -> (Vec<f64>, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = TrainConfig {
        device: device.into(),
        ..cfg.clone()
    };
    let o = run(
        &cfg,
        &common::data(),
        &dir.path().join("run"),
        &StopFlag::default(),
        false,
    )
    .unwrap_or_else(|e| panic!("run on {device}: {e}"));
    let test = o.test_report.map(|r| r.accuracy).unwrap_or(f64::NAN);
    (
        o.history.epochs.iter().map(|e| e.train_loss).collect(),
        test,
    )
}

/// The runs on the CPU and on cuda:0 agree: each epoch's train loss within `loss_tol` (relative), the loss falls on
/// cuda:0 over more than one epoch, and with `acc_tol` the test accuracies agree (the tolerances of
/// `tests/fallback.rs`, which measured them for the same ops on the CPU).
fn compare_runs(name: &str, cfg: TrainConfig, loss_tol: f64, acc_tol: Option<f64>) {
    if cuda_or_skip().is_none() {
        return;
    }
    let (cpu, cuda) = (losses(&cfg, "cpu"), losses(&cfg, "cuda:0"));
    println!(
        "{name}: train loss per epoch cpu {:.5?} cuda {:.5?}; test accuracy cpu {:.4} cuda {:.4}",
        cpu.0, cuda.0, cpu.1, cuda.1
    );
    common::assert_runs_agree(name, &cuda, &cpu, loss_tol, acc_tol);
    let l = &cuda.0;
    if l.len() > 1 {
        assert!(
            l[l.len() - 1] < l[0],
            "{name}: the loss did not fall on cuda: {l:?}"
        );
    }
}

#[test]
fn reference_recipe_trains_on_cuda_as_on_the_cpu() {
    // Adam drifts apart from rounding within a few epochs (tests/fallback.rs): one epoch, 1%.
    compare_runs("reference", common::tiny_config(1), 1e-2, None);
}

#[test]
fn airbench94_recipe_trains_on_cuda_as_on_the_cpu() {
    compare_runs(
        "airbench94",
        common::short_recipe("airbench94", 3),
        1e-3,
        Some(0.02),
    );
}

#[test]
fn airbench94_muon_recipe_trains_on_cuda_as_on_the_cpu() {
    compare_runs(
        "airbench94-muon",
        common::short_recipe("airbench94-muon", 3),
        3e-3,
        Some(0.02),
    );
}
