//! The input normalization of a model, one type for the data pipeline, checkpoints and inference.

/// Per-channel normalization `(x / 255 - mean) / std`: what the data pipeline applies, what a checkpoint
/// records (metadata `normalize`, this JSON layout) and what inference applies again.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Normalize {
    /// Per-channel mean (of pixels scaled to [0, 1]).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

impl Normalize {
    /// The CIFAR-10 training set's per-channel mean and standard deviation (airbench's normalization).
    pub const CIFAR10: Normalize = Normalize {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2470, 0.2435, 0.2616],
    };
}

impl Default for Normalize {
    /// The reference's mean 0.5, std 0.5 on every channel (maps pixels to [-1, 1]).
    fn default() -> Self {
        Self {
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }
}
