//! The dense backward of the fused op: unpool into a scratch plane, then GEMMs over it.

use rayon::prelude::*;

use super::{BwdIo, dx_parts};
use crate::bf16_gemm::{ConvLhs, conv_gemm};
use crate::conv::{ConvDims, conv_image, im2col, sum_partials, sum8};
use crate::pool::unpool_plane;
use crate::util::{Mat, split_ranges, with_scratch_a, with_scratch_b};

/// The dense backward (for channel counts the sparse kernel has no variant for, e.g. 5, and
/// with `KernelConfig::with_sparse_backward(false)`): one pass over the images, per thread: scatter the pooled
/// gradient of an image into a scratch plane set (the ReLU mask, if any, read off the pooled output), then
/// its bias-gradient sums,
/// its weight-gradient GEMM (accumulating `dWᵀ[9ci × co]`) and its input-gradient convolution,
/// while the plane is still in cache. Returns `(dx, dWᵀ, db)`.
pub(super) fn dense_backward(
    p: crate::Precision,
    d: &ConvDims,
    io: &BwdIo<'_>,
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (hw, phw, k) = (d.hw(), (d.h / 2) * (d.w / 2), d.k());
    let (in_img, g_img, p_img) = (d.ci * hw, d.co * hw, d.co * phw);
    let ranges = split_ranges(d.n, rayon::current_num_threads());
    let mut dx = crate::util::par_zeroed::<f32>(if want_dx { d.n * in_img } else { 0 });
    let parts = dx_parts(&mut dx, &ranges, in_img, want_dx);
    let wlen = if want_dw { k * d.co } else { 0 };
    let td = d.transposed();
    // The flipped weights `[ci × 9co]` of the input gradient, packed once for all images.
    let wl = ConvLhs::new(io.w, td.co, td.k(), p);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = ranges
        .into_par_iter()
        .zip(parts)
        .map(|(r, dx_part)| {
            let mut acc_w = vec![0f32; wlen];
            let mut acc_b = vec![0f32; d.co];
            for (pos, img) in r.enumerate() {
                with_scratch_b(g_img, |g| {
                    g.fill(0.0);
                    let pr = img * p_img..(img + 1) * p_img;
                    let (gp, id, po) = (&io.gp[pr.clone()], &io.idx[pr.clone()], &io.pooled[pr]);
                    for (c, plane) in g.chunks_exact_mut(hw.max(1)).enumerate() {
                        let q = c * phw..(c + 1) * phw;
                        let mask = io.relu.then_some(&po[q.clone()]);
                        unpool_plane(&gp[q.clone()], &id[q], mask, d.w, plane);
                        acc_b[c] += sum8(plane);
                    }
                    if want_dw {
                        with_scratch_a(k * hw, |cols| {
                            im2col(&io.xs[img * in_img..][..in_img], d.ci, d.h, d.w, cols);
                            let a = Mat {
                                data: cols,
                                rs: hw,
                                cs: 1,
                            };
                            let gt = Mat {
                                data: g,
                                rs: 1,
                                cs: hw,
                            };
                            conv_gemm(p, k, d.co, hw, &mut acc_w, d.co, true, a, gt);
                        });
                    }
                    if want_dx {
                        conv_image(&td, g, &wl, None, &mut dx_part[pos * in_img..][..in_img]);
                    }
                });
            }
            (acc_w, acc_b)
        })
        .collect();
    let (ws, bs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    (
        want_dx.then_some(dx),
        sum_partials(ws, wlen),
        sum_partials(bs, d.co),
    )
}
