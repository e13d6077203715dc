//! Gradients: the input gradient as the forward conv of the flipped weights, the weight gradient's GEMMs with
//! per-thread partial sums, the bias gradient.

use super::*;

/// `[co, ci, 3, 3]` -> `[ci, co, 3, 3]` with the 3x3 window rotated by 180°.
pub(crate) fn flip_weights(wmat: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let mut out = vec![0f32; co * ci * 9];
    if co == 0 {
        return out;
    }
    out.par_chunks_mut(co * 9).enumerate().for_each(|(i, row)| {
        for (o, dst) in row.chunks_exact_mut(9).enumerate() {
            let src = &wmat[(o * ci + i) * 9..][..9];
            for t in 0..9 {
                dst[t] = src[8 - t];
            }
        }
    });
    out
}

/// Gradient of the input: a 3x3 convolution of `gy` with the flipped weights.
pub(crate) fn conv_input_grad(
    cfg: &KernelConfig,
    d: &ConvDims,
    gy: &[f32],
    wmat: &[f32],
) -> Vec<f32> {
    let wf = flip_weights(wmat, d.co, d.ci);
    conv_forward(cfg, &d.transposed(), gy, &wf, None)
}

/// Gradient of the weights `[co × 9ci]`: by Winograd F(4x4, 3x3) where the forward runs that way (see
/// [`winograd::f4::weight_grad`]), else as below.
///
/// Each thread accumulates the transpose `dWᵀ[9ci × co] += cols[9ci × G] · gyᵀ[G × co]` over groups of its
/// images (`G` = images × H·W ≈ [`DW_COLS`], the images' im2col blocks side by side and their output gradients
/// gathered into one `[co × G]` matrix): with that destination layout gemm packs the (small) `gy` block rather
/// than transposing the (4.5x larger) im2col matrix. The partial sums are transposed once at the end.
pub(crate) fn conv_weight_grad(
    cfg: &KernelConfig,
    d: &ConvDims,
    x: &[f32],
    gy: &[f32],
) -> Vec<f32> {
    if winograd::weight_grad_applies(cfg, d) {
        return winograd::f4::weight_grad(cfg.precision(), d, x, gy);
    }
    conv_weight_grad_grouped(cfg.precision(), d, x, gy, cfg.group_cols().dw)
}

/// [`conv_weight_grad`] with GEMMs of depth at most `cols` (whole images, at least one; `cols = 1`: one GEMM per image).
pub(crate) fn conv_weight_grad_grouped(
    p: crate::Precision,
    d: &ConvDims,
    x: &[f32],
    gy: &[f32],
    cols: usize,
) -> Vec<f32> {
    let (hw, k) = (d.hw(), d.k());
    let (in_img, out_img) = (d.ci * hw, d.co * hw);
    let wlen = d.co * k;
    let per = images_per_group(hw, cols);
    let ranges = split_ranges(d.n, rayon::current_num_threads());
    let partials: Vec<Vec<f32>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; wlen];
            let groups = split_ranges(r.len(), r.len().div_ceil(per));
            let gmax = groups.iter().map(|s| s.len()).max().unwrap_or(0);
            with_scratch_a(k * gmax * hw, |colbuf| {
                with_scratch_b(if gmax > 1 { out_img * gmax } else { 0 }, |gtbuf| {
                    for (pos, s) in groups.iter().enumerate() {
                        let (first, g) = (r.start + s.start, s.len());
                        let cn = g * hw;
                        let cols = &mut colbuf[..k * cn];
                        im2col_group(
                            Images::nchw(&x[first * in_img..], d.ci, hw),
                            g,
                            d.ci,
                            d.h,
                            d.w,
                            cols,
                        );
                        let gys = &gy[first * out_img..][..g * out_img];
                        let gm: &[f32] = if g == 1 {
                            gys
                        } else {
                            group(gys, g, d.co, hw, gtbuf);
                            &gtbuf[..g * out_img]
                        };
                        let a = Mat {
                            data: cols,
                            rs: cn,
                            cs: 1,
                        };
                        let gt = Mat {
                            data: gm,
                            rs: 1,
                            cs: cn,
                        };
                        conv_gemm(p, k, d.co, cn, &mut acc, d.co, pos > 0, a, gt);
                    }
                })
            });
            acc
        })
        .collect();
    untranspose_weight_grad(&sum_partials(partials, wlen), d.co, k)
}

/// Turns an accumulated `dWᵀ [k × co]` into `dW [co × k]` (the weight layout `[Co, Ci, 3, 3]`).
pub(crate) fn untranspose_weight_grad(wt: &[f32], co: usize, k: usize) -> Vec<f32> {
    let mut dw = vec![0f32; co * k];
    for (i, row) in wt.chunks_exact(co.max(1)).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            dw[o * k + i] = v;
        }
    }
    dw
}

/// Per-channel sum of `gy[n, c, hw]`.
pub(crate) fn bias_grad(gy: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    let ranges = split_ranges(n, rayon::current_num_threads());
    let partials: Vec<Vec<f32>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; c];
            for img in r {
                for (ch, a) in acc.iter_mut().enumerate() {
                    let row = &gy[(img * c + ch) * hw..][..hw];
                    *a += sum8(row);
                }
            }
            acc
        })
        .collect();
    sum_partials(partials, c)
}

/// A vectorisable sum with 8 independent accumulators.
pub(crate) fn sum8(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for (l, &x) in lanes.iter_mut().zip(ch) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// The element-wise sum of the threads' partial results (`len` zeros where there are none), added in the
/// partials' order (the same bits however many threads add), by rayon's threads in pieces: a weight gradient's
/// partials (up to 590,000 floats at 256 -> 256) summed on the calling thread alone left the other cores idle.
pub(crate) fn sum_partials(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    /// Floats a task adds up.
    const CHUNK: usize = 1 << 14;
    let mut it = partials.into_iter();
    let Some(mut total) = it.next() else {
        return vec![0f32; len];
    };
    let rest: Vec<Vec<f32>> = it.collect();
    let add = |k: usize, t: &mut [f32]| {
        for p in &rest {
            for (t, v) in t.iter_mut().zip(&p[(k * CHUNK).min(p.len())..]) {
                *t += v;
            }
        }
    };
    if total.len() <= CHUNK {
        add(0, &mut total);
    } else {
        total
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, t)| add(k, t));
    }
    total
}
