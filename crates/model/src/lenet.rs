use crate::flops::{conv_macs, linear_macs};
use crate::init::{torch_bound, uniform};
use crate::layers::{conv_valid_act, linear};
use crate::{Classifier, Mode, Params, Result};
use candle_core::{Device, Tensor, Var};
use cpu_ops::KernelConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// LeNet-5 (LeCun et al. 1998) for 3x32x32 inputs, as common modern re-implementations write it:
///
/// ```text
/// features.0  Conv2d(3, 6, 5)   -> ReLU -> MaxPool(2)      [B, 6, 28, 28] -> [B, 6, 14, 14]
/// features.3  Conv2d(6, 16, 5)  -> ReLU -> MaxPool(2)      [B, 16, 10, 10] -> [B, 16, 5, 5] -> flatten 400
/// classifier.0  Linear(400, 120) -> ReLU
/// classifier.2  Linear(120, 84)  -> ReLU
/// classifier.4  Linear(84, 10)
/// ```
///
/// Choices against the 1998 paper: three input channels (colour) instead of one; ReLU instead of the scaled tanh;
/// 2x2 max-pooling instead of trainable average subsampling; C3 connects every one of the 6 maps to every one of
/// the 16 (no sparse connection table); a plain linear output layer with softmax cross-entropy instead of the RBF
/// units; no dropout; PyTorch's default initialisation. 62,006 parameters.
pub struct LeNet5 {
    params: Params,
    convs: Vec<(Var, Var)>,
    fcs: Vec<(Var, Var)>,
    device: Device,
    kernels: KernelConfig,
    num_classes: usize,
}

/// (name, in, out) of the 5x5 conv layers, and their output sides before pooling.
const CONVS: [(&str, usize, usize); 2] = [("features.0", 3, 6), ("features.3", 6, 16)];
const CONV_OUT: [usize; 2] = [28, 10];
const KERNEL: usize = 5;
/// (name, in, out) of the linear layers; the head's output width (`0` here) is the number of classes.
const FCS: [(&str, usize, usize); 3] = [
    ("classifier.0", 400, 120),
    ("classifier.2", 120, 84),
    ("classifier.4", 84, 0),
];

impl LeNet5 {
    /// The registry name.
    pub const NAME: &'static str = "lenet5";

    /// A new model with `num_classes` outputs and PyTorch's default initialisation drawn from `seed`.
    pub fn new(device: &Device, seed: u64, num_classes: usize) -> Result<Self> {
        crate::check_num_classes(num_classes)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Params::default();
        let mut convs = Vec::new();
        for (name, cin, cout) in CONVS {
            let bound = torch_bound(cin * KERNEL * KERNEL);
            let w = uniform((cout, cin, KERNEL, KERNEL), bound, &mut rng, device)?;
            let b = uniform(cout, bound, &mut rng, device)?;
            params.push(format!("{name}.weight"), w.clone());
            params.push(format!("{name}.bias"), b.clone());
            convs.push((w, b));
        }
        let mut fcs = Vec::new();
        for (name, fin, fout) in crate::with_head(FCS, num_classes) {
            let bound = torch_bound(fin);
            let w = uniform((fout, fin), bound, &mut rng, device)?;
            let b = uniform(fout, bound, &mut rng, device)?;
            params.push(format!("{name}.weight"), w.clone());
            params.push(format!("{name}.bias"), b.clone());
            fcs.push((w, b));
        }
        Ok(Self {
            params,
            convs,
            fcs,
            device: device.clone(),
            kernels: KernelConfig::default(),
            num_classes,
        })
    }

    /// The output of each conv block (conv, ReLU, pool): `[B, 6, 14, 14]`, `[B, 16, 5, 5]`.
    pub fn features(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs = Vec::with_capacity(self.convs.len());
        let mut h = x.clone();
        for (w, b) in &self.convs {
            h = conv_block(&self.kernels, &h, w.as_tensor(), b.as_tensor())?;
            outs.push(h.clone());
        }
        Ok(outs)
    }

    /// Forward multiply-adds ×2 per image: the two convolutions and the three linear layers.
    pub const fn flops_per_image(num_classes: usize) -> u64 {
        let mut macs = 0;
        let mut i = 0;
        while i < CONVS.len() {
            macs += conv_macs(CONVS[i].1, CONVS[i].2, KERNEL, CONV_OUT[i]);
            i += 1;
        }
        let mut i = 0;
        while i < FCS.len() {
            let out = if i + 1 == FCS.len() {
                num_classes
            } else {
                FCS[i].2
            };
            macs += linear_macs(FCS[i].1, out);
            i += 1;
        }
        2 * macs
    }
}

/// Conv 5x5 (valid) + bias -> ReLU (one im2col GEMM with fused bias and ReLU on the CPU) -> 2x2 max-pool
/// (the `cpu-ops` kernel).
fn conv_block(k: &KernelConfig, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let y = conv_valid_act(k, x, w, b, true)?;
    Ok(k.max_pool2x2(&y)?)
}

impl Classifier for LeNet5 {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn forward(&self, x: &Tensor, _mode: Mode<'_>) -> Result<Tensor> {
        let mut h = x.clone();
        for (w, b) in &self.convs {
            h = conv_block(&self.kernels, &h, w.as_tensor(), b.as_tensor())?;
        }
        h = h.flatten_from(1)?;
        let last = self.fcs.len() - 1;
        for (i, (w, b)) in self.fcs.iter().enumerate() {
            h = linear(&self.kernels, &h, w.as_tensor(), b.as_tensor(), i < last)?;
        }
        Ok(h)
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
}
