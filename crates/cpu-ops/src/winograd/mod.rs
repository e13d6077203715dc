//! Winograd F(2x2, 3x3) for the 3x3 / pad-1 convolution's forward GEMM (and so for its input gradient, itself such
//! a convolution): each 2x2 block of outputs comes from a 4x4 block of inputs with 16 multiplies per channel pair
//! instead of 36, so the multiply-adds drop 2.25x (less at odd sizes, where the last tile row and column are half
//! used: 1.98x at 15x15, 1.72x at 7x7).
//!
//! `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A` per tile, summed over input channels: the 16 element positions `ξ` of the 4x4
//! products are 16 independent GEMMs `M_ξ[co × P] = U_ξ[co × ci] · V_ξ[ci × P]` over `P` tiles (of a group of
//! images), run by [`ConvLhs`] (so bf16 or f32 as the convolutions are switched). `U = G g Gᵀ` is computed once
//! per op call, `V = Bᵀ d B` per group of images (row transforms on whole padded rows, then the column transform
//! on even/odd split rows, so both loops run along contiguous memory), and the outputs `Aᵀ M A` written into the
//! same group matrix as the direct path's.
//!
//! The transforms run on AVX-512 (`avx512.rs`, images at most 15 wide) or AVX2 (`avx2.rs`, at most 16 wide);
//! Winograd applies only where one of them does, as the portable transforms here (kept as the reference of the
//! tests) cost about what the 2.25x saves (measured on a 2-core Zen 2: 14% of an airbench94 step).
//!
//! The transforms only add and subtract (and halve, in `G`), so the f32 result differs from the direct one by
//! rounding alone; in bf16 the transformed inputs are rounded (sums of up to four inputs), which measured within
//! the same 1% tolerance as the direct bf16 path (tests/bf16.rs).

use rayon::prelude::*;

use crate::bf16_gemm::ConvLhs;
use crate::conv::{ConvDims, Images};
use crate::util::{Mat, with_scratch_a, with_scratch_c};

/// Fewest input channels for Winograd: below it the GEMMs' depth (`ci`) is too shallow to pay for the transforms.
const MIN_CI: usize = 32;
/// Smallest output side: at 3x3 four tiles cover 9 outputs (16 computed), which leaves almost no saving.
const MIN_SIDE: usize = 5;
/// Most GEMM columns (tiles of all the images of a group).
pub(crate) const COLS: usize = 64;

/// Whether a convolution of these sizes runs as Winograd (when the settings allow it).
pub(crate) fn applies(d: &ConvDims) -> bool {
    d.ci >= MIN_CI && d.h.min(d.w) >= MIN_SIDE && Transforms::best(d.w) != Transforms::Portable
}

/// The code that runs the input and output transforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transforms {
    /// The portable loops of this file.
    Portable,
    /// `avx2.rs`: AVX2 and FMA, images at most 16 wide.
    Avx2,
    /// `avx512.rs`: AVX-512F, images at most 15 wide.
    Avx512,
}

impl Transforms {
    /// The fastest transforms this CPU (as capped, see [`crate::Isa::detect`]) runs for images `w` wide.
    fn best(w: usize) -> Self {
        [Self::Avx512, Self::Avx2]
            .into_iter()
            .find(|t| t.fits(w))
            .unwrap_or(Self::Portable)
    }

    /// Whether these transforms run here for images `w` wide.
    fn fits(self, w: usize) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx2 => {
                cfg!(target_arch = "x86_64") && w <= 16 && crate::Isa::detect() >= crate::Isa::Avx2
            }
            Self::Avx512 => {
                cfg!(target_arch = "x86_64")
                    && w <= 15
                    && crate::Isa::detect() >= crate::Isa::Avx512
            }
        }
    }

    /// The level these transforms are recorded at (see [`crate::isa::record`]).
    fn isa(self) -> crate::Isa {
        match self {
            Self::Portable => crate::Isa::Baseline,
            Self::Avx2 => crate::Isa::Avx2,
            Self::Avx512 => crate::Isa::Avx512,
        }
    }
}

/// Tile rows and columns (2x2 outputs each).
fn tiles(h: usize, w: usize) -> (usize, usize) {
    (h.div_ceil(2), w.div_ceil(2))
}

/// What the transforms of one group need: `g` images of `h × w`, and `p` GEMM columns (the group's tiles) in the
/// transformed matrices `V` and `M`.
#[derive(Clone, Copy)]
struct Group {
    g: usize,
    h: usize,
    w: usize,
    p: usize,
}

/// The sizes an output transform walks: tile rows and tiles per row of an image, its pixels and tiles, and the
/// floats of one channel of the group matrix (`g·h·w`).
struct OutputSizes {
    th: usize,
    tw: usize,
    hw: usize,
    t_img: usize,
    cn: usize,
}

impl Group {
    /// [`OutputSizes`] of this group, after checking what the SIMD output transforms rely on: images at most
    /// `max_w` wide, `m` of `16·co·p` floats with `p` covering the group's tiles, `dst` of `co·g·h·w`, `bias` of
    /// `co`.
    fn output_sizes(
        self,
        max_w: usize,
        m: &[f32],
        co: usize,
        bias: Option<&[f32]>,
        dst: &[f32],
    ) -> OutputSizes {
        let Group { g, h, w, p } = self;
        let (th, tw) = tiles(h, w);
        let (hw, t_img) = (h * w, th * tw);
        let cn = g * hw;
        assert!(w <= max_w && m.len() >= 16 * co * p && p >= g * t_img && dst.len() >= co * cn);
        assert!(bias.is_none_or(|b| b.len() >= co));
        OutputSizes {
            th,
            tw,
            hw,
            t_img,
            cn,
        }
    }
}

/// Tiles per image: the GEMM columns one image adds.
pub(crate) fn tiles_per_image(d: &ConvDims) -> usize {
    let (th, tw) = tiles(d.h, d.w);
    th * tw
}

/// The transformed weights `U_ξ = (G g Gᵀ)_ξ`, one left operand `[co × ci]` per `ξ`.
pub(crate) struct Weights {
    lhs: Vec<ConvLhs<'static>>,
    co: usize,
    ci: usize,
}

impl Weights {
    /// From `w [co, ci, 3, 3]`.
    pub(crate) fn new(w: &[f32], co: usize, ci: usize, p: crate::Precision) -> Self {
        let mut u = vec![vec![0f32; co * ci]; 16];
        for (oi, g) in w.chunks_exact(9).take(co * ci).enumerate() {
            // G g: 4 rows of 3.
            let mut gg = [[0f32; 3]; 4];
            for c in 0..3 {
                let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
                gg[0][c] = g0;
                gg[1][c] = 0.5 * (g0 + g1 + g2);
                gg[2][c] = 0.5 * (g0 - g1 + g2);
                gg[3][c] = g2;
            }
            for (a, r) in gg.iter().enumerate() {
                let row = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (b, &v) in row.iter().enumerate() {
                    u[a * 4 + b][oi] = v;
                }
            }
        }
        // Packing 16 matrices for the bf16 kernel is most of this constructor's time: one per rayon task.
        let lhs = u
            .into_par_iter()
            .map(|m| ConvLhs::owned(m, co, ci, p))
            .collect();
        Self { lhs, co, ci }
    }
}

/// Convolves `g` images into the group matrix `dst[co × (g·hw)]` (image `j`'s channel `o` plane at
/// `dst[o·g·hw + j·hw..][..hw]`), bias added when given: as `conv::conv_group`, by Winograd.
pub(crate) fn conv_group(
    d: &ConvDims,
    x: Images<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    conv_group_with(d, x, g, wts, bias, dst, Transforms::best(d.w));
}

/// [`conv_group`] with the transforms `t` (which must fit `d.w` on this CPU).
fn conv_group_with(
    d: &ConvDims,
    x: Images<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    dst: &mut [f32],
    t: Transforms,
) {
    let (co, ci) = (wts.co, wts.ci);
    let p = g * tiles_per_image(d);
    if p == 0 || co == 0 {
        return;
    }
    assert!(t.fits(d.w), "winograd: {t:?} transforms for an unfit shape");
    crate::isa::record(crate::KernelFamily::Winograd, t.isa());
    let grp = Group {
        g,
        h: d.h,
        w: d.w,
        p,
    };
    with_scratch_a(16 * ci * p, |v| {
        match t {
            // SAFETY: the CPU features and width checked (t.fits); v holds 16 × ci × p floats, x the g images.
            #[cfg(target_arch = "x86_64")]
            Transforms::Avx512 => unsafe { avx512::transform_input(x, ci, grp, v) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Transforms::Avx2 => unsafe { avx2::transform_input(x, ci, grp, v) },
            _ => transform_input(x, ci, grp, v),
        }
        with_scratch_c(16 * co * p, |m| {
            for (xi, lhs) in wts.lhs.iter().enumerate() {
                let b = Mat {
                    data: &v[xi * ci * p..][..ci * p],
                    rs: p,
                    cs: 1,
                };
                lhs.gemm(p, &mut m[xi * co * p..][..co * p], p, false, b);
            }
            match t {
                // SAFETY: as above; m holds 16 × co × p floats, dst co × g·h·w.
                #[cfg(target_arch = "x86_64")]
                Transforms::Avx512 => unsafe { avx512::transform_output(m, co, grp, bias, dst) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Transforms::Avx2 => unsafe { avx2::transform_output(m, co, grp, bias, dst) },
                _ => transform_output(m, co, grp, bias, dst),
            }
        });
    });
}

/// `V_ξ[c][tile] = (Bᵀ d B)_ξ` for every channel and tile of `g` images, into `v[16 × ci × p]`.
fn transform_input(x: Images<'_>, ci: usize, grp: Group, v: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let (th, tw) = tiles(h, w);
    let t_img = th * tw;
    // Padded rows: index q is input column q - 1 (zeros at q = 0 and beyond the row).
    let wp = 2 * tw + 2;
    let mut rows = vec![0f32; 4 * wp];
    let mut t = vec![0f32; 4 * wp];
    let (mut e, mut o) = (vec![0f32; tw + 1], vec![0f32; tw + 1]);
    for j in 0..g {
        for c in 0..ci {
            let plane = &x.data[j * x.img_stride + c * x.plane_stride..][..h * w];
            for ty in 0..th {
                for (k, row) in rows.chunks_exact_mut(wp).enumerate() {
                    // Input row 2·ty - 1 + k.
                    let r = 2 * ty + k;
                    if r >= 1 && r - 1 < h {
                        row[0] = 0.0;
                        row[1..1 + w].copy_from_slice(&plane[(r - 1) * w..][..w]);
                        row[1 + w..].fill(0.0);
                    } else {
                        row.fill(0.0);
                    }
                }
                // Bᵀ d along the rows: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3.
                {
                    let (d0, rest) = rows.split_at(wp);
                    let (d1, rest) = rest.split_at(wp);
                    let (d2, d3) = rest.split_at(wp);
                    let (t0, rest) = t.split_at_mut(wp);
                    let (t1, rest) = rest.split_at_mut(wp);
                    let (t2, t3) = rest.split_at_mut(wp);
                    for q in 0..wp {
                        t0[q] = d0[q] - d2[q];
                        t1[q] = d1[q] + d2[q];
                        t2[q] = d2[q] - d1[q];
                        t3[q] = d1[q] - d3[q];
                    }
                }
                let p0 = j * t_img + ty * tw;
                for (i, ti) in t.chunks_exact(wp).enumerate() {
                    // Tile tx reads padded columns 2tx..2tx+3 = e[tx], o[tx], e[tx+1], o[tx+1].
                    for k in 0..=tw {
                        e[k] = ti[2 * k];
                        o[k] = ti[2 * k + 1];
                    }
                    let at = |b: usize| ((i * 4 + b) * ci + c) * p + p0;
                    for (tx, out) in v[at(0)..][..tw].iter_mut().enumerate() {
                        *out = e[tx] - e[tx + 1];
                    }
                    for (tx, out) in v[at(1)..][..tw].iter_mut().enumerate() {
                        *out = o[tx] + e[tx + 1];
                    }
                    for (tx, out) in v[at(2)..][..tw].iter_mut().enumerate() {
                        *out = e[tx + 1] - o[tx];
                    }
                    for (tx, out) in v[at(3)..][..tw].iter_mut().enumerate() {
                        *out = o[tx] - o[tx + 1];
                    }
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` per tile (`Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`) from `m[16 × co × p]` into the group matrix
/// `dst[co × (g·h·w)]`, plus the bias; the half-used last tile row and column at odd sizes are cut.
fn transform_output(m: &[f32], co: usize, grp: Group, bias: Option<&[f32]>, dst: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let OutputSizes {
        th,
        tw,
        hw,
        t_img,
        cn,
    } = grp.output_sizes(usize::MAX, m, co, bias, dst);
    let mut tmp = vec![0f32; 8 * tw];
    let mut y = vec![0f32; 4 * tw];
    for o in 0..co {
        let bv = bias.map_or(0.0, |b| b[o]);
        for j in 0..g {
            for ty in 0..th {
                let p0 = j * t_img + ty * tw;
                let mrow = |xi: usize| &m[(xi * co + o) * p + p0..][..tw];
                // Aᵀ M down the columns: tmp0_b = m0b + m1b + m2b, tmp1_b = m1b - m2b - m3b.
                for b in 0..4 {
                    let (m0, m1, m2, m3) = (mrow(b), mrow(4 + b), mrow(8 + b), mrow(12 + b));
                    let (lo, hi) = tmp.split_at_mut(4 * tw);
                    let (r0, r1) = (&mut lo[b * tw..][..tw], &mut hi[b * tw..][..tw]);
                    for tx in 0..tw {
                        r0[tx] = m0[tx] + m1[tx] + m2[tx];
                        r1[tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                }
                // (·) A along the rows: y_a0 = t_a0 + t_a1 + t_a2, y_a1 = t_a1 - t_a2 - t_a3.
                for a in 0..2 {
                    let ta = &tmp[a * 4 * tw..][..4 * tw];
                    let (c0, c1, c2, c3) = (
                        &ta[..tw],
                        &ta[tw..2 * tw],
                        &ta[2 * tw..3 * tw],
                        &ta[3 * tw..],
                    );
                    let (ya0, ya1) = y[a * 2 * tw..][..2 * tw].split_at_mut(tw);
                    for tx in 0..tw {
                        ya0[tx] = c0[tx] + c1[tx] + c2[tx] + bv;
                        ya1[tx] = c1[tx] - c2[tx] - c3[tx] + bv;
                    }
                }
                for a in 0..2 {
                    let r = 2 * ty + a;
                    if r >= h {
                        break;
                    }
                    let row = &mut dst[o * cn + j * hw + r * w..][..w];
                    let (ya0, ya1) = y[a * 2 * tw..][..2 * tw].split_at(tw);
                    for (k, out) in row.iter_mut().enumerate() {
                        *out = if k % 2 == 0 { ya0[k / 2] } else { ya1[k / 2] };
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::conv_group as direct_group;
    use crate::util::xorshift;

    fn randv(state: &mut u64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| (xorshift(state) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Winograd against the direct im2col GEMM (f32), group matrices compared, at even, odd, square and
    /// rectangular sizes, with and without bias, one and several images per group.
    #[test]
    fn matches_the_direct_convolution() {
        let mut s = 5u64;
        for &(g, ci, co, h, w) in &[
            (1, 3, 2, 4, 4),
            (2, 5, 7, 7, 7),
            (3, 4, 3, 15, 15),
            (1, 6, 5, 5, 8),
            (2, 2, 3, 6, 9),
            (1, 1, 1, 1, 1),
            (2, 3, 4, 2, 3),
            (2, 3, 2, 16, 16),
            (1, 2, 2, 17, 3),
        ] {
            let d = ConvDims { n: g, ci, co, h, w };
            let x = randv(&mut s, g * ci * h * w);
            let wt = randv(&mut s, co * ci * 9);
            let b = randv(&mut s, co);
            let every = [Transforms::Portable, Transforms::Avx2, Transforms::Avx512];
            let runs = every
                .into_iter()
                .filter(|t| t.fits(w))
                .flat_map(|t| [(None, t), (Some(b.as_slice()), t)]);
            for (bias, t) in runs {
                let xs = Images::nchw(&x, ci, h * w);
                let mut want = vec![0f32; co * g * h * w];
                direct_group(
                    &d,
                    xs,
                    g,
                    &ConvLhs::new(&wt, co, ci * 9, crate::Precision::F32),
                    bias,
                    &mut want,
                );
                // Sentinels past the group matrix: the SIMD stores must not cross its end.
                let len = co * g * h * w;
                let mut got = vec![f32::NAN; len + 16];
                let wts = Weights::new(&wt, co, ci, crate::Precision::F32);
                conv_group_with(&d, xs, g, &wts, bias, &mut got[..len], t);
                assert!(
                    got[len..].iter().all(|v| v.is_nan()),
                    "{t:?} wrote past dst"
                );
                got.truncate(len);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()) * (ci as f32).sqrt(),
                        "g {g} ci {ci} co {co} {h}x{w} {t:?} bias {}: [{i}] {a} vs {b}",
                        bias.is_some()
                    );
                }
            }
        }
    }
}
