//! Forward-pass cost of a layer, for `cifar list` and `cifar compare`: multiply-adds of the convolutions and
//! linear layers (the bias additions, activations, pooling and normalisation are left out, as usual); a model's
//! FLOP count is twice its multiply-adds.

/// Multiply-adds of a convolution with `cin` inputs, `cout` outputs, a `k`×`k` kernel and `out`×`out` outputs.
pub const fn conv_macs(cin: usize, cout: usize, k: usize, out: usize) -> u64 {
    (cin * k * k * cout * out * out) as u64
}

/// Multiply-adds of a linear layer.
pub const fn linear_macs(fin: usize, fout: usize) -> u64 {
    (fin * fout) as u64
}
