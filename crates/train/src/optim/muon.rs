//! Muon (Keller Jordan, as in `KellerJordan/cifar10-airbench`'s `airbench94_muon.py`): momentum SGD whose update
//! of each weight matrix is orthogonalised by a few quintic Newton–Schulz iterations.
//!
//! For each parameter `θ` (a conv filter bank `[co, ci, kh, kw]`, seen as the matrix `[co, ci·kh·kw]`) with a
//! gradient `g`, one step is
//!
//! ```text
//! b ← μ·b + g;   u = g + μ·b (Nesterov) or b
//! θ ← θ · sqrt(co) / ‖θ‖            (filters renormalised, when `normalize_weights`)
//! θ ← θ − lr · NS(u)
//! ```
//!
//! where `NS` scales `u` to unit Frobenius norm (`u / (‖u‖ + 1e-7)`), works on the wide orientation (transposed
//! when it has more rows than columns) and iterates `A = X·Xᵀ; B = b·A + c·A·A; X ← a·X + B·X` with the
//! coefficients [`NS_COEFFS`]: every singular value `σ` of `X` maps to `a·σ + b·σ³ + c·σ⁵`, pushing them
//! towards (roughly) 1. The script runs the iteration in bf16; here it runs in f32 (`gemm`, on the rayon pool).
//! There is no weight decay (the script's Muon has none).

use super::Optimizer;
use super::momentum::Buffer;
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// The quintic Newton–Schulz coefficients `(a, b, c)` of `airbench94_muon.py` (chosen to maximise the slope at 0).
pub const NS_COEFFS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);
/// Added to the Frobenius norm before the update is scaled by its inverse.
pub const NS_EPS: f64 = 1e-7;

/// Muon's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MuonConfig {
    /// The learning rate (the step is `lr` times an update of unit-ish singular values).
    pub lr: f64,
    /// The momentum factor μ.
    pub momentum: f64,
    /// Nesterov momentum: the update orthogonalises `g + μ·b` instead of `b`.
    pub nesterov: bool,
    /// Newton–Schulz iterations.
    pub ns_steps: usize,
    /// Before each update, scale each parameter to Frobenius norm `sqrt(rows)` (airbench's filter
    /// renormalisation: unit mean squared norm per output filter).
    pub normalize_weights: bool,
}

impl Default for MuonConfig {
    /// `airbench94_muon.py`'s: lr 0.24, momentum 0.6 Nesterov, 3 iterations, filters renormalised.
    fn default() -> Self {
        Self {
            lr: 0.24,
            momentum: 0.6,
            nesterov: true,
            ns_steps: 3,
            normalize_weights: true,
        }
    }
}

/// `dst = alpha·dst + beta·lhs·rhs` (`read_dst`) or `beta·lhs·rhs`, row-major `dst [m × n]`; `lhs` and `rhs` given
/// with their row and column strides. Multi-threaded on the rayon pool for large products.
#[allow(clippy::too_many_arguments)]
fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    read_dst: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    alpha: f32,
    beta: f32,
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(m > 0 && n > 0 && k > 0, "muon gemm: empty product");
    assert!(dst.len() >= m * n, "muon gemm: destination too short");
    assert!(
        last(m, k, lhs.1, lhs.2) < lhs.0.len(),
        "muon gemm: lhs too short"
    );
    assert!(
        last(k, n, rhs.1, rhs.2) < rhs.0.len(),
        "muon gemm: rhs too short"
    );
    let par = if m * n * k >= 1 << 20 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertions above keep every read and write inside the slices; `dst` is a unique borrow, so it
    // aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            read_dst,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            alpha,
            beta,
            false,
            false,
            false,
            par,
        );
    }
}

/// The quintic Newton–Schulz orthogonalisation of the row-major matrix `g [rows × cols]` with `steps` iterations
/// (see the module documentation); returns a matrix of the same shape. A zero matrix stays zero.
pub fn newton_schulz5(g: &[f32], rows: usize, cols: usize, steps: usize) -> Vec<f32> {
    assert_eq!(g.len(), rows * cols, "newton_schulz5: {rows}x{cols} matrix");
    if g.is_empty() {
        return Vec::new();
    }
    let norm = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    let inv = (1.0 / (norm + NS_EPS)) as f32;
    let transpose = rows > cols;
    let (m, n) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut x = vec![0f32; m * n];
    if transpose {
        for r in 0..rows {
            for c in 0..cols {
                x[c * rows + r] = g[r * cols + c] * inv;
            }
        }
    } else {
        for (d, &s) in x.iter_mut().zip(g) {
            *d = s * inv;
        }
    }
    let (a, b, c) = (NS_COEFFS.0 as f32, NS_COEFFS.1 as f32, NS_COEFFS.2 as f32);
    let mut gram = vec![0f32; m * m];
    let mut poly = vec![0f32; m * m];
    let mut next = vec![0f32; m * n];
    for _ in 0..steps {
        // A = X·Xᵀ
        gemm_into(m, m, n, &mut gram, false, (&x, n, 1), (&x, 1, n), 0.0, 1.0);
        // B = b·A + c·A·A
        poly.copy_from_slice(&gram);
        gemm_into(m, m, m, &mut poly, true, (&gram, m, 1), (&gram, m, 1), b, c);
        // X ← a·X + B·X
        next.copy_from_slice(&x);
        gemm_into(m, n, m, &mut next, true, (&poly, m, 1), (&x, n, 1), a, 1.0);
        std::mem::swap(&mut x, &mut next);
    }
    if transpose {
        let mut out = vec![0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                out[r * cols + c] = x[c * rows + r];
            }
        }
        out
    } else {
        x
    }
}

struct HostMuon<'a> {
    buf: Mutex<&'a mut [f32]>,
    grad: &'a Tensor,
    rows: usize,
    config: MuonConfig,
}

impl InplaceOp1 for HostMuon<'_> {
    fn name(&self) -> &'static str {
        "muon-host-update"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        super::with_host_slices("muon", storage, layout, self.grad, |theta, g| {
            let mut guard = self
                .buf
                .lock()
                .map_err(|_| candle_core::Error::Msg("muon: poisoned momentum".into()))?;
            let b = &mut **guard;
            if b.len() != theta.len() {
                candle_core::bail!("muon: the momentum does not match the parameter's size");
            }
            let c = self.config;
            let mu = c.momentum as f32;
            let mut u = Vec::with_capacity(g.len());
            for (bi, &gi) in b.iter_mut().zip(g) {
                *bi = mu * *bi + gi;
                u.push(if c.nesterov { gi + mu * *bi } else { *bi });
            }
            if c.normalize_weights {
                let norm = theta
                    .iter()
                    .map(|&v| f64::from(v).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if norm > 0.0 {
                    let s = ((self.rows as f64).sqrt() / norm) as f32;
                    theta.iter_mut().for_each(|t| *t *= s);
                }
            }
            let cols = theta.len() / self.rows;
            let update = newton_schulz5(&u, self.rows, cols, c.ns_steps);
            let lr = c.lr as f32;
            for (t, d) in theta.iter_mut().zip(update) {
                *t -= lr * d;
            }
            Ok(())
        })
    }
}

/// The same step on any device with candle's tensor ops (the host path above is the fast one).
fn device_step(var: &Var, g: &Tensor, b: &mut Tensor, c: MuonConfig) -> Result<()> {
    let next = ((&*b * c.momentum)? + g)?;
    let u = if c.nesterov {
        (g + (&next * c.momentum)?)?
    } else {
        next.clone()
    };
    *b = next;
    let shape = var.shape().clone();
    let rows = shape.dims()[0];
    let cols = shape.elem_count() / rows.max(1);
    let mut theta = var.as_tensor().clone();
    if c.normalize_weights {
        let norm = theta.sqr()?.sum_all()?.sqrt()?;
        theta = theta.broadcast_div(&(norm / (rows as f64).sqrt())?)?;
    }
    let norm = u.sqr()?.sum_all()?.sqrt()?;
    let mut x = u.reshape((rows, cols))?.broadcast_div(&(norm + NS_EPS)?)?;
    let transpose = rows > cols;
    if transpose {
        x = x.t()?.contiguous()?;
    }
    let (a, bc, cc) = NS_COEFFS;
    for _ in 0..c.ns_steps {
        let gram = x.matmul(&x.t()?)?;
        let poly = ((&gram * bc)? + (gram.matmul(&gram)? * cc)?)?;
        x = ((&x * a)? + poly.matmul(&x)?)?;
    }
    if transpose {
        x = x.t()?.contiguous()?;
    }
    let update = x.reshape(shape)?;
    var.set(&(theta - (update * c.lr)?)?)?;
    Ok(())
}

struct Slot {
    name: String,
    var: Var,
    buf: Buffer,
}

/// Muon over named parameters of at least two dimensions (conv filter banks, weight matrices), each seen as the
/// matrix `[dim 0, the rest]`.
///
/// ```
/// use candle_core::{Device, Var};
/// use cifar10_train::optim::{Muon, MuonConfig, Optimizer};
/// let w = Var::ones((4, 2, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let mut muon = Muon::new(vec![("w".to_string(), w.clone())], MuonConfig::default())?;
/// let loss = w.as_tensor().sqr()?.sum_all()?;
/// muon.step(&loss.backward()?)?;
/// assert_eq!(muon.steps(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Muon {
    slots: Vec<Slot>,
    step: u64,
    /// The hyper-parameters; `lr` is the current learning rate.
    pub config: MuonConfig,
}

impl Muon {
    /// Muon over `params`, with zero momentum buffers. Fails on a parameter of fewer than two dimensions (or
    /// none of its elements), naming it, or when a buffer cannot be allocated on a parameter's device.
    pub fn new(params: Vec<(String, Var)>, config: MuonConfig) -> Result<Self> {
        let mut slots = Vec::with_capacity(params.len());
        for (name, var) in params {
            if var.rank() < 2 || var.elem_count() == 0 {
                return Err(Error::Config(format!(
                    "muon: parameter {name:?} has shape {:?}; expected a matrix or a filter bank (2 or more \
                     dimensions, none empty)",
                    var.dims()
                )));
            }
            let buf = Buffer::zeros(&var)?;
            slots.push(Slot { name, var, buf });
        }
        Ok(Self {
            slots,
            step: 0,
            config,
        })
    }
}

impl Optimizer for Muon {
    fn name(&self) -> &'static str {
        "muon"
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            match &mut s.buf {
                Buffer::Host(b) => {
                    let g = g.contiguous()?;
                    let k = HostMuon {
                        buf: Mutex::new(b.as_mut_slice()),
                        grad: &g,
                        rows: s.var.dims()[0],
                        config: c,
                    };
                    s.var.as_tensor().inplace_op1(&k)?;
                }
                Buffer::Device(b) => device_step(&s.var, g, b, c)?,
            }
        }
        Ok(())
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn steps(&self) -> u64 {
        self.step
    }

    /// The momentum buffers as `muon.momentum.<param>`.
    fn state(&self) -> Result<(Vec<(String, Tensor)>, u64)> {
        let mut out = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            out.push((
                format!("muon.momentum.{}", s.name),
                s.buf.to_tensor(&s.var)?,
            ));
        }
        Ok((out, self.step))
    }

    fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
        path: &std::path::Path,
    ) -> Result<()> {
        for s in &mut self.slots {
            let key = format!("muon.momentum.{}", s.name);
            s.buf.load(tensors, &key, &s.var, path)?;
        }
        self.step = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One Newton–Schulz iteration maps each singular value σ to a·σ + b·σ³ + c·σ⁵.
    fn phi(s: f64) -> f64 {
        let (a, b, c) = NS_COEFFS;
        a * s + b * s.powi(3) + c * s.powi(5)
    }

    /// By hand: G = [[3, 0, 0], [0, 4, 0]] has ‖G‖ = 5, so X₀ = diag(0.6, 0.8) (padded with a zero column) and
    /// three iterations give diag(φ³(0.6), φ³(0.8)), φ(σ) = 3.4445σ − 4.775σ³ + 2.0315σ⁵:
    /// φ(0.6) = 1.1933, φ(1.1933) = 0.9119, φ(0.9119) = 0.8011; φ(0.8) = 0.9765, φ(0.9765) = 0.7211,
    /// φ(0.7211) = 1.0895. Its transpose (3 × 2, the tall orientation) gives the transposed result.
    #[test]
    fn newton_schulz_matches_the_singular_value_polynomial() {
        let g = [3.0f32, 0.0, 0.0, 0.0, 4.0, 0.0];
        let got = newton_schulz5(&g, 2, 3, 3);
        let (s1, s2) = (phi(phi(phi(0.6))), phi(phi(phi(0.8))));
        assert!(
            (s1 - 0.8011).abs() < 1e-4 && (s2 - 1.0895).abs() < 1e-4,
            "{s1} {s2}"
        );
        let want = [s1, 0.0, 0.0, 0.0, s2, 0.0];
        for (a, b) in got.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        let gt = [3.0f32, 0.0, 0.0, 4.0, 0.0, 0.0];
        let got_t = newton_schulz5(&gt, 3, 2, 3);
        let want_t = [s1, 0.0, 0.0, s2, 0.0, 0.0];
        for (a, b) in got_t.iter().zip(want_t) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{got_t:?} vs {want_t:?}");
        }
        assert!(newton_schulz5(&[0.0; 6], 2, 3, 3).iter().all(|&v| v == 0.0));
    }

    /// A rotated input: the singular values still follow the polynomial (G = U·diag(2, 1)·Vᵀ with a 2 × 2 rotation
    /// U and V = I), so NS(G) = U·diag(φ³(2/√5), φ³(1/√5)).
    #[test]
    fn newton_schulz_keeps_the_singular_vectors() {
        let (c, s) = (0.6f64, 0.8f64); // a rotation by atan(4/3)
        let g = [2.0 * c, -s, 2.0 * s, c];
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        let got = newton_schulz5(&g32, 2, 2, 3);
        let r5 = 5f64.sqrt();
        let (p1, p2) = (phi(phi(phi(2.0 / r5))), phi(phi(phi(1.0 / r5))));
        let want = [p1 * c, -p2 * s, p1 * s, p2 * c];
        for (a, b) in got.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    /// Two steps by hand on a 2 × 3 "filter bank" with the constant gradient G above (loss = Σ G⊙θ), μ = 0.5
    /// Nesterov, lr 0.1, θ₀ = 2·[[1, 0, 0], [0, 1, 0]] (norm 2√2, renormalised to √2: θ = [[1, 0, 0], [0, 1, 0]]).
    /// Step 1: b = G, u = G + 0.5·G (same direction as G), θ₁ = θ − 0.1·diag(φ³(0.6), φ³(0.8)).
    /// Step 2: b = 1.5·G, u = G + 0.75·G (same direction again), θ renormalised to norm √2, then the same update.
    #[test]
    fn muon_step_matches_hand_computation() {
        let theta0 = [2.0f32, 0.0, 0.0, 0.0, 2.0, 0.0];
        let var = Var::from_slice(&theta0, (2, 3), &Device::Cpu).unwrap();
        let gmat =
            Tensor::from_slice(&[3.0f32, 0.0, 0.0, 0.0, 4.0, 0.0], (2, 3), &Device::Cpu).unwrap();
        let cfg = MuonConfig {
            lr: 0.1,
            momentum: 0.5,
            nesterov: true,
            ns_steps: 3,
            normalize_weights: true,
        };
        let mut opt = Muon::new(vec![("w".into(), var.clone())], cfg).unwrap();
        let (s1, s2) = (phi(phi(phi(0.6))), phi(phi(phi(0.8))));
        let mut want = [1.0f64, 0.0, 0.0, 0.0, 1.0, 0.0];
        for _ in 0..2 {
            let loss = (var.as_tensor() * &gmat).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
            want.iter_mut().for_each(|v| *v *= 2f64.sqrt() / norm);
            want[0] -= 0.1 * s1;
            want[4] -= 0.1 * s2;
            let got = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (a, b) in got.iter().zip(want) {
                assert!((f64::from(*a) - b).abs() < 1e-5, "{got:?} vs {want:?}");
            }
        }
        assert_eq!(opt.steps(), 2);
    }

    /// The tensor-op path (used on other devices) computes what the host kernel does.
    #[test]
    fn device_path_matches_host_path() {
        let dims = (6, 2, 3, 3);
        let init: Vec<f32> = (0..108)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let grad: Vec<f32> = (0..108)
            .map(|i| ((i * 11 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let cfg = MuonConfig::default();
        let host = Var::from_slice(&init, dims, &Device::Cpu).unwrap();
        let mut opt = Muon::new(vec![("w".into(), host.clone())], cfg).unwrap();
        let g = Tensor::from_slice(&grad, dims, &Device::Cpu).unwrap();
        let dev = Var::from_slice(&init, dims, &Device::Cpu).unwrap();
        let mut b = dev.zeros_like().unwrap();
        for _ in 0..2 {
            let loss = (host.as_tensor() * &g).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            device_step(&dev, &g, &mut b, cfg).unwrap();
        }
        let a = host
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let d = dev
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let worst = a
            .iter()
            .zip(&d)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{worst}");
    }

    #[test]
    fn vectors_are_refused_by_name() {
        let v = Var::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = Muon::new(vec![("bias".into(), v)], MuonConfig::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("\"bias\""), "{e}");
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let run = |restore: bool| {
            let var = Var::from_slice(&[1.0f32, 3.0, -1.0, 0.5, 2.0, -2.0], (2, 3), &Device::Cpu)
                .unwrap();
            let cfg = MuonConfig::default();
            let mut opt = Muon::new(vec![("w".into(), var.clone())], cfg).unwrap();
            let step = |opt: &mut Muon| {
                let loss = var.as_tensor().powf(3.0).unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            };
            step(&mut opt);
            if restore {
                let (t, n) = opt.state().unwrap();
                let map: HashMap<_, _> = t.into_iter().collect();
                let mut fresh = Muon::new(vec![("w".into(), var.clone())], cfg).unwrap();
                fresh
                    .load_state(&map, n, std::path::Path::new("x"))
                    .unwrap();
                opt = fresh;
            }
            step(&mut opt);
            var.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(run(false), run(true));
    }
}
