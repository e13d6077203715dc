use crate::init::{torch_bound, uniform};
use crate::layers::{Dropout, conv_relu_pool, linear};
use crate::{Classifier, Mode, Params, Result};
use candle_core::{Device, Tensor, Var};
use cpu_ops::KernelConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The reference "CNN+DNN":
///
/// ```text
/// cnn.0  Conv2d(3, 32, 3, 1, 1)   -> ReLU -> MaxPool(2)      [B, 32, 16, 16]
/// cnn.3  Conv2d(32, 64, 3, 1, 1)  -> ReLU -> MaxPool(2)      [B, 64, 8, 8]
/// cnn.6  Conv2d(64, 128, 3, 1, 1) -> ReLU -> MaxPool(2)      [B, 128, 4, 4] -> flatten 2048
/// dnn.0  Linear(2048, 512) -> ReLU -> Dropout(0.2)
/// dnn.3  Linear(512, 256)  -> ReLU -> Dropout(0.2)
/// dnn.6  Linear(256, 128)  -> ReLU -> Dropout(0.2)
/// dnn.9  Linear(128, 10)
/// ```
///
/// Tensor names are those of the PyTorch reference's `state_dict` (`cnn.0.weight`, `cnn.0.bias`, ...,
/// `dnn.9.bias`), so weights carry over between the two.
pub struct CnnDnn {
    params: Params,
    convs: Vec<(Var, Var)>,
    fcs: Vec<(Var, Var)>,
    dropout: Dropout,
    device: Device,
    kernels: KernelConfig,
    num_classes: usize,
}

/// (name, in, out) of the conv layers and the linear layers.
const CONVS: [(&str, usize, usize); 3] = [("cnn.0", 3, 32), ("cnn.3", 32, 64), ("cnn.6", 64, 128)];
/// The head's output width is the number of classes (`0` here, filled in by [`CnnDnn::new`]).
const FCS: [(&str, usize, usize); 4] = [
    ("dnn.0", 2048, 512),
    ("dnn.3", 512, 256),
    ("dnn.6", 256, 128),
    ("dnn.9", 128, 0),
];

impl CnnDnn {
    /// The registry name.
    pub const NAME: &'static str = "cnn-dnn";
    /// The dropout probability after each hidden linear layer.
    pub const DROPOUT: f32 = 0.2;

    /// A new model with `num_classes` outputs and PyTorch's default initialisation drawn from `seed`.
    pub fn new(device: &Device, seed: u64, num_classes: usize) -> Result<Self> {
        crate::check_num_classes(num_classes)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Params::default();
        let mut convs = Vec::new();
        for (name, cin, cout) in CONVS {
            let bound = torch_bound(cin * 9);
            let w = uniform((cout, cin, 3, 3), bound, &mut rng, device)?;
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
            dropout: Dropout { p: Self::DROPOUT },
            device: device.clone(),
            kernels: KernelConfig::default(),
            num_classes,
        })
    }

    /// The output of the convolutional part, `[B, 128, 4, 4]`, and of each block before it.
    pub fn features(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs = Vec::with_capacity(self.convs.len());
        let mut h = x.clone();
        for (w, b) in &self.convs {
            h = conv_relu_pool(&self.kernels, &h, w.as_tensor(), b.as_tensor())?;
            outs.push(h.clone());
        }
        Ok(outs)
    }
}

impl Classifier for CnnDnn {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn forward(&self, x: &Tensor, mode: Mode<'_>) -> Result<Tensor> {
        let mut rng = match mode {
            Mode::Train(r) => Some(r),
            Mode::Eval => None,
        };
        let mut h = x.clone();
        for (w, b) in &self.convs {
            h = conv_relu_pool(&self.kernels, &h, w.as_tensor(), b.as_tensor())?;
        }
        h = h.flatten_from(1)?;
        let last = self.fcs.len() - 1;
        for (i, (w, b)) in self.fcs.iter().enumerate() {
            h = linear(&self.kernels, &h, w.as_tensor(), b.as_tensor(), i < last)?;
            if i < last {
                h = self.dropout.forward(&h, rng.as_deref_mut())?;
            }
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

impl CnnDnn {
    /// Forward multiply-adds ×2 per image: the three 3x3 convolutions (at 32, 16 and 8 pixels) and the four
    /// linear layers.
    pub const fn flops_per_image(num_classes: usize) -> u64 {
        let sides = [32, 16, 8];
        let mut macs = 0;
        let mut i = 0;
        while i < CONVS.len() {
            macs += crate::flops::conv_macs(CONVS[i].1, CONVS[i].2, 3, sides[i]);
            i += 1;
        }
        let mut i = 0;
        while i < FCS.len() {
            let out = if i + 1 == FCS.len() {
                num_classes
            } else {
                FCS[i].2
            };
            macs += crate::flops::linear_macs(FCS[i].1, out);
            i += 1;
        }
        2 * macs
    }
}
