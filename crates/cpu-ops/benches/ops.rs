//! Per-op and whole-model timings, candle's native CPU ops vs this crate (`cargo bench -p
//! cpu-ops`). Prints medians of several runs: the machine is shared and noisy.
//!
//! `cargo bench -p candle-cpu-ops -- airbench` runs only the airbench94 ops (odd-size conv without bias, fused
//! BatchNorm + GELU, GELU, odd-size pool).
//!
//! "bwd" is (forward + backward) minus forward, where the loss is `sum(y * r)` in both cases.
//! GFLOP/s counts 2·N·Co·Ci·9·H·W per conv pass (the input-gradient pass is skipped, and not
//! counted, when the input is not a variable, as for the first layer's image).

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};

/// Timed runs per median (`CPU_OPS_RUNS` overrides; keep it small on a shared machine).
fn runs() -> usize {
    std::env::var("CPU_OPS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9usize)
        .max(1)
}

/// Nanoseconds all of this process's threads have spent on a CPU (Linux `schedstat`), if readable.
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// With `CPU_OPS_CLOCK=cpu`, the benches time CPU time over all threads divided by rayon's thread count instead
/// of wall time: on a machine shared with other work (where wall time mostly measures the waits) that is the
/// better estimate of the idle-machine wall time.
fn cpu_clock() -> bool {
    std::env::var("CPU_OPS_CLOCK").is_ok_and(|v| v == "cpu") && cpu_ns().is_some()
}

fn median_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    f()?;
    let runs = runs();
    let cpu = cpu_clock();
    let threads = rayon::current_num_threads() as f64;
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            if cpu {
                let c0 = cpu_ns().unwrap_or(0);
                f()?;
                Ok((cpu_ns().unwrap_or(0) - c0) as f64 / 1e6 / threads)
            } else {
                let s = Instant::now();
                f().map(|_| s.elapsed().as_secs_f64() * 1e3)
            }
        })
        .collect::<Result<_>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[runs / 2])
}

fn randn(dims: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, dims, &Device::Cpu)
}

type Op1 = fn(&Tensor) -> Result<Tensor>;
type Op2 = fn(&Tensor, &Tensor) -> Result<Tensor>;
type Op3 = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;

/// Returns (forward ms, backward ms) for `op(x, w, b)`.
fn time_op3(op: Op3, x: &Tensor, w: &Var, b: &Var) -> Result<(f64, f64)> {
    let y = op(x, w.as_tensor(), b.as_tensor())?;
    let r = randn(y.dims())?;
    let fwd = median_ms(|| op(x, w.as_tensor(), b.as_tensor()).map(|_| ()))?;
    let both = median_ms(|| {
        let y = op(x, w.as_tensor(), b.as_tensor())?;
        (y * &r)?.sum_all()?.backward().map(|_| ())
    })?;
    Ok((fwd, (both - fwd).max(0.0)))
}

fn gflops(flop: f64, ms: f64) -> f64 {
    flop / ms / 1e6
}

fn conv_benches() -> Result<()> {
    println!(
        "per-op, batch 64, rayon threads = {}",
        rayon::current_num_threads()
    );
    println!(
        "{:<34} {:>9} {:>8} {:>9} {:>8}",
        "op", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s"
    );
    let shapes = [
        (3usize, 32usize, 32usize, false),
        (32, 64, 16, true),
        (64, 128, 8, true),
    ];
    for &(ci, co, hw, track_x) in &shapes {
        let x = randn(&[64, ci, hw, hw])?;
        let x = if track_x {
            Var::from_tensor(&x)?.as_tensor().clone()
        } else {
            x
        };
        let w = Var::from_tensor(&(randn(&[co, ci, 3, 3])? * 0.1)?)?;
        let b = Var::from_tensor(&randn(&[co])?)?;
        let flop = 2.0 * 64.0 * (co * ci * 9 * hw * hw) as f64;
        let bwd_flop = if track_x { 2.0 * flop } else { flop };
        let cases: [(&str, Op3); 4] = [
            ("native conv", candle_cpu_ops::native::conv3x3),
            ("cpu-ops conv3x3", candle_cpu_ops::conv3x3),
            (
                "native conv+relu+pool",
                candle_cpu_ops::native::conv3x3_relu_pool,
            ),
            (
                "cpu-ops conv3x3_relu_pool",
                candle_cpu_ops::conv3x3_relu_pool,
            ),
        ];
        for (name, op) in cases {
            let (f, bw) = time_op3(op, &x, &w, &b)?;
            let label = format!("{name} {ci}->{co} @{hw}");
            println!(
                "{label:<34} {f:>9.2} {:>8.1} {bw:>9.2} {:>8.1}",
                gflops(flop, f),
                gflops(bwd_flop, bw)
            );
        }
    }
    Ok(())
}

fn small_op_benches() -> Result<()> {
    let x = Var::from_tensor(&randn(&[64, 32, 32, 32])?)?;
    let pools: [(&str, Op1); 2] = [
        ("native max_pool2d", candle_cpu_ops::native::max_pool2x2),
        ("cpu-ops max_pool2x2", candle_cpu_ops::max_pool2x2),
    ];
    for (name, op) in pools {
        let r = randn(&[64, 32, 16, 16])?;
        let f = median_ms(|| op(x.as_tensor()).map(|_| ()))?;
        let both = median_ms(|| (op(x.as_tensor())? * &r)?.sum_all()?.backward().map(|_| ()))?;
        println!(
            "{:<34} {f:>9.2} {:>8} {:>9.2}",
            format!("{name} 64x32x32x32"),
            "",
            both - f
        );
    }
    let h = Var::from_tensor(&randn(&[64, 512])?)?;
    let b = Var::from_tensor(&randn(&[512])?)?;
    let ops: [(&str, Op2); 2] = [
        ("native add+relu", candle_cpu_ops::native::bias_relu),
        ("cpu-ops bias_relu", candle_cpu_ops::bias_relu),
    ];
    for (name, op) in ops {
        let r = randn(&[64, 512])?;
        let f = median_ms(|| op(h.as_tensor(), b.as_tensor()).map(|_| ()))?;
        let both = median_ms(|| {
            (op(h.as_tensor(), b.as_tensor())? * &r)?
                .sum_all()?
                .backward()
                .map(|_| ())
        })?;
        println!(
            "{:<34} {f:>9.3} {:>8} {:>9.3}",
            format!("{name} 64x512"),
            "",
            both - f
        );
    }
    Ok(())
}

/// Forward and backward ms of `f` (a closure running the op) with loss `sum(y * r)`, and the backward less the
/// loss's own cost (candle's `y * r`, `sum_all` and their backward on a variable of `y`'s shape: several full
/// passes over `y` that dominate for the cheap elementwise ops). Candle's autograd bookkeeping around an op
/// (zeroed gradient buffers, adds, a strided broadcast add for `sum_all`) costs tens of ms at these sizes and is
/// noisy, so for the BatchNorm / GELU / pool rows the op's own backward (a few ms) is a small part of "bwd".
fn time_fwd_bwd(f: impl Fn() -> Result<Tensor>) -> Result<(f64, f64, f64)> {
    let y = f()?;
    let r = randn(y.dims())?;
    let fwd = median_ms(|| f().map(|_| ()))?;
    let both = median_ms(|| (f()? * &r)?.sum_all()?.backward().map(|_| ()))?;
    let yv = Var::from_tensor(&y)?;
    let loss = median_ms(|| (yv.as_tensor() * &r)?.sum_all()?.backward().map(|_| ()))?;
    let bwd = (both - fwd).max(0.0);
    Ok((fwd, bwd, (bwd - loss).max(0.0)))
}

/// The airbench94 ops at the network's shapes (batch 64): native composite vs this crate.
fn airbench_benches() -> Result<()> {
    println!(
        "airbench94 ops, batch 64, rayon threads = {}",
        rayon::current_num_threads()
    );
    println!(
        "{:<46} {:>9} {:>9} {:>13}",
        "op", "fwd ms", "bwd ms", "bwd-loss ms"
    );
    let row = |label: String, (f, b, net): (f64, f64, f64)| {
        println!("{label:<46} {f:>9.2} {b:>9.2} {net:>13.2}")
    };
    for (ci, co, hw) in [
        (24, 64, 31),
        (64, 64, 15),
        (64, 256, 15),
        (256, 256, 7),
        (256, 256, 3),
    ] {
        let x = Var::from_tensor(&randn(&[64, ci, hw, hw])?)?;
        let w = Var::from_tensor(&(randn(&[co, ci, 3, 3])? * 0.05)?)?;
        let cases: [(&str, Op2); 2] = [
            ("native conv_nobias", candle_cpu_ops::native::conv3x3_nobias),
            ("cpu-ops conv3x3_nobias", candle_cpu_ops::conv3x3_nobias),
        ];
        for (name, op) in cases {
            let t = time_fwd_bwd(|| op(x.as_tensor(), w.as_tensor()))?;
            row(format!("{name} {ci}->{co} @{hw}"), t);
        }
    }
    for (ci, co, hw) in [(24, 64, 31), (64, 256, 15), (256, 256, 7)] {
        let x = Var::from_tensor(&randn(&[64, ci, hw, hw])?)?;
        let w = Var::from_tensor(&(randn(&[co, ci, 3, 3])? * 0.05)?)?;
        let t = time_fwd_bwd(|| {
            candle_cpu_ops::max_pool2x2(&candle_cpu_ops::conv3x3_nobias(
                x.as_tensor(),
                w.as_tensor(),
            )?)
        })?;
        row(format!("cpu-ops conv_nobias+pool {ci}->{co} @{hw}"), t);
        for sparse in [false, true] {
            let k = candle_cpu_ops::KernelConfig::default().with_sparse_backward(sparse);
            let t = time_fwd_bwd(|| k.conv3x3_nobias_pool(x.as_tensor(), w.as_tensor()))?;
            let kind = if sparse { "sparse" } else { "dense" };
            row(
                format!("cpu-ops conv3x3_nobias_pool/{kind} {ci}->{co} @{hw}"),
                t,
            );
        }
    }
    for (n, c, hw) in [(64, 64, 15), (256, 64, 15), (64, 256, 7), (64, 256, 3)] {
        let x = Var::from_tensor(&randn(&[n, c, hw, hw])?)?;
        let b = Var::from_tensor(&randn(&[c])?)?;
        let t = time_fwd_bwd(|| {
            candle_cpu_ops::native::batch_norm_gelu_train(x.as_tensor(), b.as_tensor(), 1e-12)
                .map(|r| r.0)
        })?;
        row(format!("native bn+gelu train {n}x{c}x{hw}x{hw}"), t);
        let t = time_fwd_bwd(|| {
            candle_cpu_ops::batch_norm_gelu_train(x.as_tensor(), b.as_tensor(), 1e-12).map(|r| r.0)
        })?;
        row(
            format!("cpu-ops batch_norm_gelu_train {n}x{c}x{hw}x{hw}"),
            t,
        );
    }
    // The whitening layer: the frozen 2x2 conv + bias + GELU, the bias's gradient only (the image is data).
    let (img, wt) = (randn(&[256, 3, 32, 32])?, randn(&[24, 3, 2, 2])?);
    let b = Var::from_tensor(&randn(&[24])?)?;
    row(
        "cpu-ops patch_conv_gelu 256x3x32x32 -> 24".to_string(),
        time_fwd_bwd(|| candle_cpu_ops::patch_conv_gelu(&img, &wt, b.as_tensor()))?,
    );
    let x = Var::from_tensor(&randn(&[64, 24, 31, 31])?)?;
    let gelus: [(&str, Op1); 2] = [
        ("native gelu_erf", candle_cpu_ops::native::gelu),
        ("cpu-ops gelu", candle_cpu_ops::gelu),
    ];
    for (name, op) in gelus {
        row(
            format!("{name} 24x31x31"),
            time_fwd_bwd(|| op(x.as_tensor()))?,
        );
    }
    let x = Var::from_tensor(&randn(&[64, 64, 31, 31])?)?;
    row(
        "cpu-ops max_pool2x2 64x31x31".to_string(),
        time_fwd_bwd(|| candle_cpu_ops::max_pool2x2(x.as_tensor()))?,
    );
    Ok(())
}

/// `conv3x3_nobias` (and the fused `conv3x3_nobias_pool`) at the small-spatial airbench shapes, batch 256
/// (`cargo bench -p candle-cpu-ops -- convb`): forward, backward with both gradients, backward with the weight gradient
/// only (untracked input); backward times less the loss's own cost (see [`time_fwd_bwd`]).
///
/// `CPU_OPS_COLS="1:1,256:128"` lists the GEMM widths `fwd:dw` to compare (see `candle_cpu_ops::GroupCols`; `1:1` is
/// one GEMM per image), interleaved per shape so that load changes on a shared machine hit every variant alike;
/// `CPU_OPS_PRECISION="f32,bf16"` the convolution arithmetics (bf16 only where the CPU has AVX512-BF16),
/// `CPU_OPS_WINOGRAD="off,f2,f4,auto"` the Winograd tiles (see `candle_cpu_ops::Winograd`; `on` is `auto`, the
/// default), `CPU_OPS_TILED_DW="on,off"` the sparse weight gradient in tiles or image by image (see
/// `KernelConfig::with_tiled_weight_grad`; default `on`).
fn conv_batch_benches() -> Result<()> {
    let n = 256;
    let configs: Vec<(usize, usize)> = std::env::var("CPU_OPS_COLS")
        .unwrap_or_else(|_| "1:1,256:128".into())
        .split(',')
        .filter_map(|c| {
            let (f, d) = c.split_once(':')?;
            Some((f.trim().parse().ok()?, d.trim().parse().ok()?))
        })
        .collect();
    let precisions: Vec<candle_cpu_ops::Precision> = std::env::var("CPU_OPS_PRECISION")
        .unwrap_or_else(|_| "f32".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .filter(|p| *p == candle_cpu_ops::Precision::F32 || candle_cpu_ops::bf16_supported())
        .collect();
    let winograd: Vec<candle_cpu_ops::Winograd> = std::env::var("CPU_OPS_WINOGRAD")
        .unwrap_or_else(|_| "auto".into())
        .split(',')
        .filter_map(|v| match v.trim() {
            "on" => Some(candle_cpu_ops::Winograd::Auto),
            v => v.parse().ok(),
        })
        .collect();
    let tiled: Vec<bool> = std::env::var("CPU_OPS_TILED_DW")
        .unwrap_or_else(|_| "on".into())
        .split(',')
        .filter_map(|v| match v.trim() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        })
        .collect();
    println!(
        "conv3x3_nobias, batch {n}, rayon threads = {}, clock = {}",
        rayon::current_num_threads(),
        if cpu_clock() { "cpu / threads" } else { "wall" }
    );
    println!(
        "{:<46} {:>9} {:>8} {:>11} {:>8} {:>11} {:>8}",
        "op [fwd:dw cols]", "fwd ms", "GFLOP/s", "dx+dW ms", "GFLOP/s", "dW ms", "GFLOP/s"
    );
    for (ci, co, hw) in [
        (24, 64, 31),
        (64, 64, 15),
        (64, 256, 15),
        (256, 256, 7),
        (256, 256, 3),
    ] {
        let flop = 2.0 * (n * co * ci * 9 * hw * hw) as f64;
        let xt = randn(&[n, ci, hw, hw])?;
        let x = Var::from_tensor(&xt)?;
        let w = Var::from_tensor(&(randn(&[co, ci, 3, 3])? * 0.05)?)?;
        for (((&(fc, dc), &prec), &wino), &tile) in configs
            .iter()
            .flat_map(|c| precisions.iter().map(move |p| (c, p)))
            .flat_map(|cp| winograd.iter().map(move |w| (cp, w)))
            .flat_map(|cpw| tiled.iter().map(move |t| (cpw, t)))
        {
            let k = candle_cpu_ops::KernelConfig::default()
                .with_group_cols(candle_cpu_ops::GroupCols { fwd: fc, dw: dc })
                .with_precision(prec)
                .map_err(candle_core::Error::wrap)?
                .with_winograd_tiles(wino)
                .with_tiled_weight_grad(tile);
            let tile = if tile { "" } else { " untiled" };
            let prec = format!("{prec} winograd {wino}{tile}");
            let (f, _, bn) = time_fwd_bwd(|| k.conv3x3_nobias(x.as_tensor(), w.as_tensor()))?;
            let (_, _, bw) = time_fwd_bwd(|| k.conv3x3_nobias(&xt, w.as_tensor()))?;
            println!(
                "{:<46} {f:>9.1} {:>8.1} {bn:>11.1} {:>8.1} {bw:>11.1} {:>8.1}",
                format!("conv3x3_nobias {ci}->{co} @{hw} [{fc}:{dc}] {prec}"),
                gflops(flop, f),
                gflops(2.0 * flop, bn),
                gflops(flop, bw)
            );
            if hw > 3 {
                let (f, _, bn) =
                    time_fwd_bwd(|| k.conv3x3_nobias_pool(x.as_tensor(), w.as_tensor()))?;
                let (_, _, bw) = time_fwd_bwd(|| k.conv3x3_nobias_pool(&xt, w.as_tensor()))?;
                println!(
                    "{:<46} {f:>9.1} {:>8.1} {bn:>11.1} {:>8.1} {bw:>11.1} {:>8.1}",
                    format!("conv3x3_nobias_pool {ci}->{co} @{hw} [{fc}:{dc}] {prec}"),
                    gflops(flop, f),
                    gflops(2.0 * flop, bn),
                    gflops(flop, bw)
                );
            }
        }
    }
    Ok(())
}

/// The reference CNN (3 conv blocks, 2048-512-256-128-10 MLP, no dropout) built from either
/// set of ops; returns the logits.
struct Model {
    conv: Vec<(Var, Var)>,
    fc: Vec<(Var, Var)>,
}

impl Model {
    fn new() -> Result<Self> {
        let conv = [(3, 32), (32, 64), (64, 128)]
            .iter()
            .map(|&(ci, co)| {
                let s = (2.0 / (ci * 9) as f64).sqrt();
                Ok((
                    Var::from_tensor(&(randn(&[co, ci, 3, 3])? * s)?)?,
                    Var::zeros(co, DType::F32, &Device::Cpu)?,
                ))
            })
            .collect::<Result<_>>()?;
        let fc = [(2048, 512), (512, 256), (256, 128), (128, 10)]
            .iter()
            .map(|&(i, o)| {
                let s = (2.0 / i as f64).sqrt();
                Ok((
                    Var::from_tensor(&(randn(&[o, i])? * s)?)?,
                    Var::zeros(o, DType::F32, &Device::Cpu)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self { conv, fc })
    }

    fn forward(&self, x: &Tensor, fast: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for (w, b) in &self.conv {
            h = if fast {
                candle_cpu_ops::conv3x3_relu_pool(&h, w.as_tensor(), b.as_tensor())?
            } else {
                candle_cpu_ops::native::conv3x3_relu_pool(&h, w.as_tensor(), b.as_tensor())?
            };
        }
        let mut h = h.flatten_from(1)?;
        let last = self.fc.len() - 1;
        for (i, (w, b)) in self.fc.iter().enumerate() {
            h = if fast {
                candle_cpu_ops::linear(&h, w.as_tensor(), Some(b.as_tensor()), i < last)?
            } else {
                let y = h
                    .matmul(&w.as_tensor().t()?)?
                    .broadcast_add(b.as_tensor())?;
                if i < last { y.relu()? } else { y }
            };
        }
        Ok(h)
    }
}

fn model_benches(variants: &[bool]) -> Result<()> {
    let model = Model::new()?;
    let labels = Tensor::from_vec(
        (0..64u32).map(|i| i % 10).collect::<Vec<_>>(),
        64,
        &Device::Cpu,
    )?;
    let x64 = randn(&[64, 3, 32, 32])?;
    let x256 = randn(&[256, 3, 32, 32])?;
    for &fast in variants {
        let name = if fast { "cpu-ops" } else { "native" };
        let step = median_ms(|| {
            let logits = model.forward(&x64, fast)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            loss.backward().map(|_| ())
        })?;
        let infer = median_ms(|| model.forward(&x256, fast).map(|_| ()))?;
        println!(
            "model {name:<8} train step b64 {step:>7.1} ms = {:>6.0} img/s | inference b256 {infer:>7.1} ms = {:>6.0} img/s",
            64e3 / step,
            256e3 / infer
        );
    }
    Ok(())
}

/// Runs `CPU_OPS_STEPS` (default 20) plain batch-64 train steps of this crate's model with no
/// timing around them, for `perf stat` / callgrind counts (divide by the step count + 1 warm-up).
fn train_steps() -> Result<()> {
    let steps: usize = std::env::var("CPU_OPS_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let model = Model::new()?;
    let labels = Tensor::from_vec(
        (0..64u32).map(|i| i % 10).collect::<Vec<_>>(),
        64,
        &Device::Cpu,
    )?;
    let x64 = randn(&[64, 3, 32, 32])?;
    let start = Instant::now();
    for _ in 0..steps + 1 {
        let logits = model.forward(&x64, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        loss.backward()?;
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / (steps + 1) as f64;
    println!("{} train steps b64: mean {ms:.1} ms/step", steps + 1);
    Ok(())
}

/// The airbench94 fused conv → pool layers (batch 256) in every precision and backward this CPU has:
/// `cargo bench -p candle-cpu-ops -- pool-bwd`.
fn pool_bwd_benches() -> Result<()> {
    println!(
        "fused conv3x3_nobias_pool, batch 256, rayon threads = {}",
        rayon::current_num_threads()
    );
    println!(
        "{:<46} {:>9} {:>9} {:>13}",
        "op", "fwd ms", "bwd ms", "bwd-loss ms"
    );
    let mut precisions = vec![candle_cpu_ops::Precision::F32];
    if candle_cpu_ops::bf16_supported() {
        precisions.push(candle_cpu_ops::Precision::Bf16);
    }
    for (ci, co, hw) in [(24, 64, 31), (64, 256, 15), (256, 256, 7)] {
        let x = Var::from_tensor(&randn(&[256, ci, hw, hw])?)?;
        let w = Var::from_tensor(&(randn(&[co, ci, 3, 3])? * 0.05)?)?;
        for &p in &precisions {
            for sparse in [false, true] {
                let k = candle_cpu_ops::KernelConfig::default()
                    .with_precision(p)
                    .map_err(candle_core::Error::wrap)?
                    .with_sparse_backward(sparse);
                let t = time_fwd_bwd(|| k.conv3x3_nobias_pool(x.as_tensor(), w.as_tensor()))?;
                let kind = if sparse { "sparse" } else { "dense" };
                println!(
                    "{:<46} {:>9.2} {:>9.2} {:>13.2}",
                    format!("{p:?} {kind} {ci}->{co} @{hw}"),
                    t.0,
                    t.1,
                    t.2
                );
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    if filter.is_empty() || filter == "ops" {
        conv_benches()?;
        small_op_benches()?;
    }
    if filter.is_empty() || filter == "ops" || filter == "airbench" {
        airbench_benches()?;
    }
    if filter == "pool-bwd" {
        pool_bwd_benches()?;
    }
    match filter.as_str() {
        "" | "model" => model_benches(&[false, true])?,
        // Only this crate's model (for profiling).
        "model-fast" => model_benches(&[true])?,
        "convb" => conv_batch_benches()?,
        // A fixed number of train steps, for instruction / cycle counts.
        "train-steps" => train_steps()?,
        _ => {}
    }
    Ok(())
}
