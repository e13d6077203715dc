//! The forward convolution of groups of images: im2col + one GEMM, or Winograd (see [`FwdWeights`]).

use super::*;

/// Convolves `g` images into the group matrix `dst[co × (g·hw)]` (image `j`'s channel `o` plane at
/// `dst[o·g·hw + j·hw..][..hw]`), bias added when given: one GEMM `W[co × 9ci] · cols[9ci × g·hw]`.
pub(crate) fn conv_group(
    d: &ConvDims,
    x: Images<'_>,
    g: usize,
    w: &ConvLhs<'_>,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    let (hw, k) = (d.hw(), d.k());
    let cn = g * hw;
    if cn == 0 {
        return;
    }
    with_scratch_a(k * cn, |cols| {
        im2col_group(x, g, d.ci, d.h, d.w, cols);
        if let Some(b) = bias {
            for (row, &bv) in dst.chunks_exact_mut(cn).zip(b) {
                row.fill(bv);
            }
        }
        let bm = Mat {
            data: cols,
            rs: cn,
            cs: 1,
        };
        w.gemm(cn, dst, cn, bias.is_some(), bm);
    });
}

/// A forward convolution's weights, prepared once per op call: the `[co × 9ci]` matrix of the direct (im2col)
/// GEMM, or the Winograd transform (see [`crate::winograd`]) where that applies.
pub(crate) enum FwdWeights<'a> {
    Direct(ConvLhs<'a>),
    Winograd(winograd::Weights),
}

impl<'a> FwdWeights<'a> {
    /// `wmat [co, ci, 3, 3]` for a convolution of sizes `d` with the settings `cfg`.
    pub(crate) fn new(cfg: &KernelConfig, d: &ConvDims, wmat: &'a [f32]) -> Self {
        match winograd::pick(cfg, d) {
            Some(tile) => FwdWeights::Winograd(winograd::Weights::new(
                wmat,
                d.co,
                d.ci,
                cfg.precision(),
                tile,
            )),
            None => Self::direct(d, wmat, cfg.precision()),
        }
    }

    /// The direct (im2col) path whatever the shape.
    pub(crate) fn direct(d: &ConvDims, wmat: &'a [f32], p: crate::Precision) -> Self {
        FwdWeights::Direct(ConvLhs::new(wmat, d.co, d.k(), p))
    }

    /// The image groups (consecutive images) of a batch of `d.n`: at most `cols` GEMM columns each for the direct
    /// path, [`winograd::COLS`] or [`winograd::COLS_F4`] tiles for Winograd.
    pub(crate) fn groups(&self, d: &ConvDims, cols: usize) -> Vec<Range<usize>> {
        match self {
            FwdWeights::Direct(_) => image_groups(d.n, d.hw(), cols),
            FwdWeights::Winograd(w) => image_groups(d.n, w.tiles_per_image(d), w.cols()),
        }
    }

    /// [`conv_group`] with these weights.
    pub(crate) fn conv_group(
        &self,
        d: &ConvDims,
        x: Images<'_>,
        g: usize,
        bias: Option<&[f32]>,
        dst: &mut [f32],
    ) {
        match self {
            FwdWeights::Direct(w) => conv_group(d, x, g, w, bias, dst),
            FwdWeights::Winograd(w) => winograd::conv_group(d, x, g, w, bias, dst),
        }
    }

    /// The 2x2 max-pool (of the ReLU with `relu`) of [`FwdWeights::conv_group`]'s output into `out[g][co][(h/2)·(w/2)]`
    /// and its argmax `idx`, where the convolution pools as it writes (Winograd F(4x4)): true when done; false,
    /// nothing written, where the caller convolves into a group matrix and pools it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv_group_pool(
        &self,
        d: &ConvDims,
        x: Images<'_>,
        g: usize,
        bias: Option<&[f32]>,
        relu: bool,
        out: &mut [f32],
        idx: &mut [u8],
    ) -> bool {
        match self {
            FwdWeights::Direct(_) => false,
            FwdWeights::Winograd(w) => winograd::conv_group_pool(d, x, g, w, bias, relu, out, idx),
        }
    }
}

/// Convolves one image into `out[co×hw]` (bias added when given). `w` holds `[co × 9ci]`.
pub(crate) fn conv_image(
    d: &ConvDims,
    x: &[f32],
    w: &ConvLhs<'_>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    conv_group(d, Images::nchw(x, d.ci, d.hw()), 1, w, bias, out);
}

/// Splits `data` into one mutable part per range of images (`per_img` floats per image).
pub(crate) fn split_by_images<'a>(
    mut rest: &'a mut [f32],
    ranges: &[Range<usize>],
    per_img: usize,
) -> Vec<&'a mut [f32]> {
    let mut parts = Vec::with_capacity(ranges.len());
    for size in image_part_sizes(ranges, per_img) {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(size);
        parts.push(head);
        rest = tail;
    }
    parts
}

/// The sizes of the parts of a batch's output, one per range of images (`per_img` elements per image).
pub(crate) fn image_part_sizes(
    ranges: &[Range<usize>],
    per_img: usize,
) -> impl Iterator<Item = usize> {
    ranges.iter().map(move |r| r.len() * per_img)
}

/// Batched forward: `[n, ci, h, w]` -> `[n, co, h, w]`.
pub(crate) fn conv_forward(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    conv_forward_grouped(cfg, d, x, wmat, bias, cfg.group_cols().fwd)
}

/// [`conv_forward`] with GEMMs of at most `cols` columns (whole images, at least one; `cols = 1`: one GEMM per image).
pub(crate) fn conv_forward_grouped(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &[f32],
    wmat: &[f32],
    bias: Option<&[f32]>,
    cols: usize,
) -> Vec<f32> {
    conv_forward_with(d, x, &FwdWeights::new(cfg, d, wmat), bias, cols)
}

/// [`conv_forward_grouped`] with weights prepared by the caller (e.g. forced onto the direct path).
pub(crate) fn conv_forward_with(
    d: &ConvDims,
    x: &[f32],
    w: &FwdWeights<'_>,
    bias: Option<&[f32]>,
    cols: usize,
) -> Vec<f32> {
    let mut out = Uninit::<f32>::new(d.out_len());
    let (hw, in_img, out_img) = (d.hw(), d.ci * d.hw(), d.co * d.hw());
    if out_img == 0 {
        return out.finish();
    }
    let groups = w.groups(d, cols);
    let parts = out.parts(image_part_sizes(&groups, out_img));
    groups.into_par_iter().zip(parts).for_each(|(r, o)| {
        let g = r.len();
        let xs = Images::nchw(&x[r.start * in_img..], d.ci, hw);
        if g == 1 {
            w.conv_group(d, xs, 1, bias, o.zeroed());
        } else {
            with_scratch_b(out_img * g, |tmp| {
                w.conv_group(d, xs, g, bias, tmp);
                ungroup(tmp, g, d.co, hw, o);
            });
        }
    });
    out.finish()
}
