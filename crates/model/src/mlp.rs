use crate::init::{torch_bound, uniform};
use crate::layers::{Dropout, linear};
use crate::{Classifier, Mode, Params, Result};
use candle_core::{Device, Tensor, Var};
use cpu_ops::KernelConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The write-up's "ANN/DNN": a multilayer perceptron on the flattened pixels, with the same head as
/// [`crate::CnnDnn`] (so comparing the two isolates what the convolutions buy):
///
/// ```text
/// flatten [B, 3, 32, 32] -> [B, 3072]
/// dnn.0  Linear(3072, 512) -> ReLU -> Dropout(0.2)
/// dnn.3  Linear(512, 256)  -> ReLU -> Dropout(0.2)
/// dnn.6  Linear(256, 128)  -> ReLU -> Dropout(0.2)
/// dnn.9  Linear(128, 10)
/// ```
///
/// 1,738,890 parameters, PyTorch's default initialisation drawn from the seed; tensor names are those of an
/// `nn.Sequential` named `dnn`.
pub struct Mlp {
    params: Params,
    fcs: Vec<(Var, Var)>,
    dropout: Dropout,
    device: Device,
    kernels: KernelConfig,
    num_classes: usize,
}

/// (name, in, out) of the linear layers; the head's output width (`0` here) is the number of classes.
pub(crate) const MLP_FCS: [(&str, usize, usize); 4] = [
    ("dnn.0", 3072, 512),
    ("dnn.3", 512, 256),
    ("dnn.6", 256, 128),
    ("dnn.9", 128, 0),
];

impl Mlp {
    /// The registry name.
    pub const NAME: &'static str = "mlp";
    /// The dropout probability after each hidden linear layer.
    pub const DROPOUT: f32 = 0.2;

    /// A new model with `num_classes` outputs and PyTorch's default initialisation drawn from `seed`.
    pub fn new(device: &Device, seed: u64, num_classes: usize) -> Result<Self> {
        crate::check_num_classes(num_classes)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Params::default();
        let mut fcs = Vec::new();
        for (name, fin, fout) in crate::with_head(MLP_FCS, num_classes) {
            let bound = torch_bound(fin);
            let w = uniform((fout, fin), bound, &mut rng, device)?;
            let b = uniform(fout, bound, &mut rng, device)?;
            params.push(format!("{name}.weight"), w.clone());
            params.push(format!("{name}.bias"), b.clone());
            fcs.push((w, b));
        }
        Ok(Self {
            params,
            fcs,
            dropout: Dropout { p: Self::DROPOUT },
            device: device.clone(),
            kernels: KernelConfig::default(),
            num_classes,
        })
    }

    /// Forward multiply-adds ×2 per image: the four linear layers.
    pub const fn flops_per_image(num_classes: usize) -> u64 {
        let mut macs = 0;
        let mut i = 0;
        while i < MLP_FCS.len() {
            let out = if i + 1 == MLP_FCS.len() {
                num_classes
            } else {
                MLP_FCS[i].2
            };
            macs += crate::flops::linear_macs(MLP_FCS[i].1, out);
            i += 1;
        }
        2 * macs
    }
}

impl Classifier for Mlp {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn forward(&self, x: &Tensor, mode: Mode<'_>) -> Result<Tensor> {
        let mut rng = match mode {
            Mode::Train(r) => Some(r),
            Mode::Eval => None,
        };
        let mut h = x.flatten_from(1)?;
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
