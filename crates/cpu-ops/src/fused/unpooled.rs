//! The input gradient of the fused op as a dense convolution by Winograd F(4x4, 3x3): per group of images, the
//! pooled gradient is convolved with the flipped weights as the full-resolution planes it scatters back to (zero
//! but at each window's argmax, and where the ReLU let it through), written plane by plane straight into the
//! input transform's padded buffer (`pool::Unpooled`, `winograd::Planes`), so those planes are never stored
//! whole. Three quarters of them are zeros, but F(4x4)'s GEMMs do 3-3.5x fewer multiply-adds than the direct
//! convolution and run near the FMA units' peak, while the sparse kernel's input-gradient scatter does a load and
//! a store per multiply-add: on AVX2 the dense one measured faster at airbench94's three conv -> pool layers
//! (`docs/performance.md`). The weight gradient stays with the sparse kernel, which measured faster than F(4x4)
//! there; so does the input gradient after a ReLU (`conv3x3_relu_pool`), where fewer windows pass a gradient.

use rayon::prelude::*;

use super::BwdIo;
use crate::KernelConfig;
use crate::conv::{ConvDims, flip_weights, image_groups, image_part_sizes, ungroup};
use crate::pool::Unpooled;
use crate::uninit::Uninit;
use crate::util::with_scratch_b;
use crate::winograd::{self, Planes, Tile};

/// Whether the input gradient of a fused op of sizes `d` runs here under `cfg`: where the convolution of the
/// gradient (`co` input channels, `ci` outputs) runs by F(4x4, 3x3), and only without a ReLU (`relu`): after a
/// ReLU the windows whose maximum is not positive pass no gradient, the sparse kernel skips them, and it measured
/// faster (the reference network's train step at batch 128, 2,539 img/s with this path against 2,711 without).
pub(super) fn applies(cfg: &KernelConfig, d: &ConvDims, relu: bool) -> bool {
    !relu && winograd::pick(cfg, &d.transposed()) == Some(Tile::F4)
}

/// The pooled gradient of `io` as the full-resolution planes it scatters back to.
fn unpooled<'a>(d: &ConvDims, io: &BwdIo<'a>) -> Unpooled<'a> {
    Unpooled {
        gp: io.gp,
        idx: io.idx,
        mask: io.relu.then_some(io.pooled),
        c: d.co,
        h: d.h,
        w: d.w,
    }
}

/// The input gradient `[n, ci, h, w]` of the fused op (see the module's text): `io.w` holds the weights as
/// given, `[co, ci, 3, 3]`.
pub(super) fn input_grad(cfg: &KernelConfig, d: &ConvDims, io: &BwdIo<'_>) -> Vec<f32> {
    let td = d.transposed();
    let (hw, in_img) = (d.hw(), d.ci * d.hw());
    if in_img == 0 || d.co == 0 {
        return crate::util::par_zeroed::<f32>(d.n * in_img);
    }
    let mut dx = Uninit::<f32>::new(d.n * in_img);
    let wf = flip_weights(io.w, d.co, d.ci);
    let wts = winograd::Weights::new(&wf, td.co, td.ci, cfg.precision(), Tile::F4);
    let groups = image_groups(d.n, wts.tiles_per_image(&td), wts.cols());
    let parts = dx.parts(image_part_sizes(&groups, in_img));
    let gy = Planes::Unpooled(unpooled(d, io));
    groups.into_par_iter().zip(parts).for_each(|(r, o)| {
        let (g, gys) = (r.len(), gy.skip(r.start));
        if g == 1 {
            winograd::f4::conv_group(&td, gys, 1, &wts, None, o.zeroed());
        } else {
            with_scratch_b(in_img * g, |tmp| {
                winograd::f4::conv_group(&td, gys, g, &wts, None, tmp);
                ungroup(tmp, g, d.ci, hw, o);
            });
        }
    });
    dx.finish()
}
