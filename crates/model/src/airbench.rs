//! airbench94 (Keller Jordan, `KellerJordan/cifar10-airbench`, `legacy/airbench94.py`, MIT licence; paper
//! arXiv 2404.00498): the network of the field's 94% CIFAR-10 speed recipe.
//!
//! ```text
//! 0        Conv2d(3, 24, 2, padding 0, bias)  frozen patch-whitening weights, bias trained for 3 epochs -> GELU
//! 2, 3, 4  ConvGroup(24→64), (64→256), (256→256):
//!          conv1 3x3 same, no bias -> MaxPool 2x2 (floor) -> norm1 BatchNorm -> GELU
//!          conv2 3x3 same, no bias -> norm2 BatchNorm -> GELU                    31 → 15 → 7 → 3
//! 5        MaxPool 3x3 (3 → 1) -> flatten
//! 7        Linear(256, classes, no bias) -> × 1/9
//! ```
//!
//! Tensor names are those of the PyTorch module's `state_dict` (`nn.Sequential` indices), so weights carry over:
//! parameters `0.bias`, `{2,3,4}.conv{1,2}.weight`, `{2,3,4}.norm{1,2}.bias`, `7.weight`; buffers `0.weight` (the
//! whitening filters), `{2,3,4}.norm{1,2}.weight` (frozen at 1), `.running_mean`, `.running_var`.
//!
//! BatchNorm: eps 1e-12, running statistics updated with momentum 0.4 (PyTorch's convention: `running ← 0.6 ·
//! running + 0.4 · batch`, the unbiased batch variance), weight frozen at 1, bias trained.

use crate::init::{torch_bound, uniform};
use crate::{Classifier, Error, Mode, Params, Result};
use candle_core::{DType, Device, Tensor, Var};
use cpu_ops::KernelConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Output channels of the whitening layer: the 12 eigen-filters of 2x2x3 patches and their negatives.
pub const WHITEN_WIDTH: usize = 24;
/// Widths of the three conv groups.
pub const WIDTHS: [usize; 3] = [64, 256, 256];
const BN_EPS: f64 = 1e-12;
/// PyTorch's BatchNorm momentum (the weight of the new batch statistic).
const BN_MOMENTUM: f64 = 0.4;
const LOGIT_SCALE: f64 = 1.0 / 9.0;
const WHITEN_EPS: f64 = 5e-4;
/// Training images the whitening layer is computed from.
pub const WHITEN_IMAGES: usize = 5000;

/// A BatchNorm layer with frozen unit weight.
struct Norm {
    bias: Var,
    mean: Var,
    var: Var,
}

impl Norm {
    fn new(
        name: &str,
        c: usize,
        params: &mut Params,
        buffers: &mut Params,
        dev: &Device,
    ) -> Result<Self> {
        let bias = Var::zeros(c, DType::F32, dev)?;
        let weight = Var::ones(c, DType::F32, dev)?;
        let mean = Var::zeros(c, DType::F32, dev)?;
        let var = Var::ones(c, DType::F32, dev)?;
        params.push(format!("{name}.bias"), bias.clone());
        buffers.push(format!("{name}.weight"), weight);
        buffers.push(format!("{name}.running_mean"), mean.clone());
        buffers.push(format!("{name}.running_var"), var.clone());
        Ok(Self { bias, mean, var })
    }

    /// `gelu(batchnorm(x))`; in training with the batch statistics (and a running-statistics update).
    fn forward_gelu(&self, k: &KernelConfig, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let (y, m, v) = k.batch_norm_gelu_train(x, self.bias.as_tensor(), BN_EPS)?;
            let keep = 1.0 - BN_MOMENTUM;
            self.mean
                .set(&((self.mean.as_tensor() * keep)? + (m * BN_MOMENTUM)?)?)?;
            self.var
                .set(&((self.var.as_tensor() * keep)? + (v * BN_MOMENTUM)?)?)?;
            Ok(y)
        } else {
            // The statistics and bias are variables; detached, the op takes its fused no-gradient kernel.
            Ok(k.batch_norm_gelu_eval(
                x,
                &self.mean.as_tensor().detach(),
                &self.var.as_tensor().detach(),
                &self.bias.as_tensor().detach(),
                BN_EPS,
            )?)
        }
    }
}

struct Group {
    conv1: Var,
    norm1: Norm,
    conv2: Var,
    norm2: Norm,
}

/// A 3x3 conv weight with PyTorch's default init, then identity (`dirac_`) on the first `cin` output filters.
fn dirac_conv(cin: usize, cout: usize, rng: &mut ChaCha8Rng, dev: &Device) -> Result<Var> {
    let w = uniform((cout, cin, 3, 3), torch_bound(cin * 9), rng, dev)?;
    let mut data = w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let per_filter = cin * 9;
    for o in 0..cin.min(cout) {
        let filter = &mut data[o * per_filter..(o + 1) * per_filter];
        filter.fill(0.0);
        filter[o * 9 + 4] = 1.0;
    }
    Ok(Var::from_vec(data, (cout, cin, 3, 3), dev)?)
}

/// The airbench94 network. See the module documentation for the layers and names.
pub struct AirBench94 {
    params: Params,
    buffers: Params,
    whiten_w: Var,
    whiten_b: Var,
    groups: Vec<Group>,
    head: Var,
    device: Device,
    kernels: KernelConfig,
    num_classes: usize,
    /// The epoch in progress (1-based; 0 before training).
    epoch: AtomicUsize,
}

impl AirBench94 {
    /// The registry name.
    pub const NAME: &'static str = "airbench94";
    /// The whitening bias trains during the first this-many epochs, then stays frozen.
    pub const WHITEN_BIAS_EPOCHS: usize = 3;

    /// A new network with `num_classes` outputs and PyTorch's default init (plus `dirac_`) drawn from `seed`. The whitening filters are zero
    /// until [`Classifier::init_from_data`] computes them.
    pub fn new(device: &Device, seed: u64, num_classes: usize) -> Result<Self> {
        Self::with_widths(device, seed, WIDTHS, num_classes)
    }

    /// The same architecture with other conv-group widths (e.g. a small one for tests or quick experiments).
    pub fn with_widths(
        device: &Device,
        seed: u64,
        widths: [usize; 3],
        num_classes: usize,
    ) -> Result<Self> {
        crate::check_num_classes(num_classes)?;
        if widths.contains(&0) {
            return Err(Error::Candle(candle_core::Error::Msg(format!(
                "airbench94: conv-group widths must be at least 1, found {widths:?}"
            ))));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Params::default();
        let mut buffers = Params::default();
        let whiten_w = Var::zeros((WHITEN_WIDTH, 3, 2, 2), DType::F32, device)?;
        let whiten_b = Var::zeros(WHITEN_WIDTH, DType::F32, device)?;
        buffers.push("0.weight", whiten_w.clone());
        params.push("0.bias", whiten_b.clone());
        let mut groups = Vec::new();
        let mut cin = WHITEN_WIDTH;
        for (i, &w) in widths.iter().enumerate() {
            let name = i + 2;
            let conv1 = dirac_conv(cin, w, &mut rng, device)?;
            params.push(format!("{name}.conv1.weight"), conv1.clone());
            let norm1 = Norm::new(
                &format!("{name}.norm1"),
                w,
                &mut params,
                &mut buffers,
                device,
            )?;
            let conv2 = dirac_conv(w, w, &mut rng, device)?;
            params.push(format!("{name}.conv2.weight"), conv2.clone());
            let norm2 = Norm::new(
                &format!("{name}.norm2"),
                w,
                &mut params,
                &mut buffers,
                device,
            )?;
            groups.push(Group {
                conv1,
                norm1,
                conv2,
                norm2,
            });
            cin = w;
        }
        let head = uniform((num_classes, cin), torch_bound(cin), &mut rng, device)?;
        params.push("7.weight", head.clone());
        Ok(Self {
            params,
            buffers,
            whiten_w,
            whiten_b,
            groups,
            head,
            device: device.clone(),
            kernels: KernelConfig::default(),
            num_classes,
            epoch: AtomicUsize::new(0),
        })
    }

    fn whiten_bias_trains(&self) -> bool {
        self.epoch.load(Ordering::Relaxed) <= Self::WHITEN_BIAS_EPOCHS
    }
}

impl Classifier for AirBench94 {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn forward(&self, x: &Tensor, mode: Mode<'_>) -> Result<Tensor> {
        let train = mode.is_train();
        // In evaluation nothing is differentiated: detached weights keep candle from recording the graph, so each
        // intermediate is freed as soon as the next layer has read it, and the ops take their no-gradient paths.
        let p = |v: &Var| {
            if train {
                v.as_tensor().clone()
            } else {
                v.as_tensor().detach()
            }
        };
        let x = if train { x.clone() } else { x.detach() };
        let bias = if train && self.whiten_bias_trains() {
            self.whiten_b.as_tensor().clone()
        } else {
            self.whiten_b.as_tensor().detach()
        };
        // The frozen whitening conv + bias + GELU, fused (a gradient for the bias only).
        let k = &self.kernels;
        let mut h = k.patch_conv_gelu(&x, &self.whiten_w.as_tensor().detach(), &bias)?;
        for g in &self.groups {
            // conv → 2x2 max-pool fused: only the pooled maxima receive a gradient (a sparse backward).
            h = k.conv3x3_nobias_pool(&h, &p(&g.conv1))?;
            h = g.norm1.forward_gelu(k, &h, train)?;
            h = k.conv3x3_nobias(&h, &p(&g.conv2))?;
            h = g.norm2.forward_gelu(k, &h, train)?;
        }
        // MaxPool2d(3) over the final 3x3 map (the per-channel maximum), the linear head and its scale, fused.
        Ok(k.global_max_linear(&h, &p(&self.head), LOGIT_SCALE)?)
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn kernels(&self) -> KernelConfig {
        self.kernels
    }

    fn set_kernels(&mut self, kernels: KernelConfig) -> Result<()> {
        self.kernels = kernels;
        Ok(())
    }

    fn buffers(&self) -> &Params {
        &self.buffers
    }

    fn init_images(&self) -> usize {
        WHITEN_IMAGES
    }

    /// Computes the whitening filters from the 2x2 patches of `images` (uncentred covariance, eigenvectors scaled
    /// by `1/sqrt(eigenvalue + 5e-4)`, with their negatives).
    fn init_from_data(&self, images: &Tensor) -> Result<()> {
        let w = whitening_filters(images)?;
        self.whiten_w
            .set(&Tensor::from_vec(w, (WHITEN_WIDTH, 3, 2, 2), &self.device)?)?;
        Ok(())
    }

    fn start_epoch(&self, epoch: usize) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    fn is_norm_param(&self, name: &str) -> bool {
        name.contains(".norm")
    }
}

/// The 24 whitening filters (`[24, 3, 2, 2]` row-major) of normalized images `[N, 3, H, W]`.
#[allow(clippy::needless_range_loop)] // symmetric-matrix index arithmetic reads best with indices
pub fn whitening_filters(images: &Tensor) -> Result<Vec<f32>> {
    let (n, c, h, w) = images.dims4()?;
    if c != 3 || h < 2 || w < 2 || n == 0 {
        return Err(Error::Candle(candle_core::Error::Msg(format!(
            "whitening needs images [N>0, 3, H>=2, W>=2], found {:?}",
            images.dims()
        ))));
    }
    let px = images
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    const D: usize = 12;
    let mut cov = [[0f64; D]; D];
    let plane = h * w;
    let mut p = [0f64; D];
    for img in px.chunks_exact(3 * plane) {
        // Per image in f32-exact f64 sums, then into the total.
        let mut local = [[0f64; D]; D];
        for y in 0..h - 1 {
            for x in 0..w - 1 {
                for ch in 0..3 {
                    for dy in 0..2 {
                        for dx in 0..2 {
                            p[ch * 4 + dy * 2 + dx] =
                                f64::from(img[ch * plane + (y + dy) * w + x + dx]);
                        }
                    }
                }
                for i in 0..D {
                    for j in i..D {
                        local[i][j] += p[i] * p[j];
                    }
                }
            }
        }
        for i in 0..D {
            for j in i..D {
                cov[i][j] += local[i][j];
            }
        }
    }
    let count = (n * (h - 1) * (w - 1)) as f64;
    for i in 0..D {
        for j in i..D {
            cov[i][j] /= count;
            cov[j][i] = cov[i][j];
        }
    }
    let (values, vectors) = jacobi_eigen(cov);
    let mut order: Vec<usize> = (0..D).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut out = vec![0f32; WHITEN_WIDTH * D];
    for (k, &e) in order.iter().enumerate() {
        let scale = 1.0 / (values[e].max(0.0) + WHITEN_EPS).sqrt();
        for i in 0..D {
            let v = (vectors[i][e] * scale) as f32;
            out[k * D + i] = v;
            out[(k + D) * D + i] = -v;
        }
    }
    Ok(out)
}

/// Eigenvalues and eigenvectors (as columns) of a symmetric matrix, by cyclic Jacobi rotations.
#[allow(clippy::needless_range_loop)] // rotations update rows and columns by index
pub(crate) fn jacobi_eigen<const N: usize>(mut a: [[f64; N]; N]) -> ([f64; N], [[f64; N]; N]) {
    let mut v = [[0f64; N]; N];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..N)
            .flat_map(|i| (0..N).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let scale: f64 = (0..N).map(|i| a[i][i] * a[i][i]).sum::<f64>().max(1e-300);
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..N {
            for q in p + 1..N {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..N {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..N {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    let mut values = [0f64; N];
    for (i, v) in values.iter_mut().enumerate() {
        *v = a[i][i];
    }
    (values, v)
}

impl AirBench94 {
    /// Forward multiply-adds ×2 per image: the 2x2 whitening conv (32 → 31 pixels), each group's two 3x3
    /// convolutions (the first before its pool, at 31, 15 and 7 pixels; the second after, at 15, 7 and 3) and
    /// the linear layer.
    pub const fn flops_per_image(num_classes: usize) -> u64 {
        use crate::flops::{conv_macs, linear_macs};
        let mut macs = conv_macs(3, WHITEN_WIDTH, 2, 31);
        let sides = [31, 15, 7, 3];
        let mut cin = WHITEN_WIDTH;
        let mut i = 0;
        while i < WIDTHS.len() {
            macs += conv_macs(cin, WIDTHS[i], 3, sides[i]);
            macs += conv_macs(WIDTHS[i], WIDTHS[i], 3, sides[i + 1]);
            cin = WIDTHS[i];
            i += 1;
        }
        2 * (macs + linear_macs(WIDTHS[2], num_classes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises() {
        let a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]];
        let (vals, vecs) = jacobi_eigen(a);
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i][j] * vecs[j][k]).sum();
                assert!((av - vals[k] * vecs[i][k]).abs() < 1e-10);
            }
        }
        let trace: f64 = vals.iter().sum();
        assert!((trace - 8.0).abs() < 1e-10);
    }
}
