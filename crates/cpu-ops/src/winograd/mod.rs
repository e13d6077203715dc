//! Winograd for the 3x3 / pad-1 convolution's forward GEMM (and so for its input gradient, itself such a
//! convolution): F(4x4, 3x3) for f32 GEMMs ([`f4`]), and this file's F(2x2, 3x3) for bf16 ones (see [`pick`]).
//!
//! F(2x2, 3x3): each 2x2 block of outputs comes from a 4x4 block of inputs with 16 multiplies per channel pair
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
use crate::pool::Unpooled;
use crate::util::{Mat, with_scratch_a, with_scratch_c};

/// Fewest input channels for Winograd: below it the GEMMs' depth (`ci`) is too shallow to pay for the transforms.
const MIN_CI: usize = 32;
/// Smallest output side: at 3x3 four tiles cover 9 outputs (16 computed), which leaves almost no saving.
const MIN_SIDE: usize = 5;
/// Most GEMM columns (tiles of all the images of a group).
pub(crate) const COLS: usize = 64;

/// Fewest input channels for F(4x4, 3x3): its 4x saving pays for the transforms at shallower GEMMs than
/// F(2x2)'s. Measured (CPU time, batch 256, 2-core Zen 2): airbench94's 24->64 @31 conv -> pool forward 50 ms
/// direct, 38 ms by F(4x4).
const F4_MIN_CI: usize = 16;
/// Smallest output side for F(4x4, 3x3): at 3x3 one tile covers the image, 36 products per channel pair instead
/// of 81.
const F4_MIN_SIDE: usize = 3;
/// Most GEMM columns (tiles) of one F(4x4, 3x3) group below [`F4_DEEP`] input channels: each tile is 4x the
/// outputs of an F(2x2) one, so fewer keep the transformed matrices (`36 × ci × COLS_F4` floats) near the size
/// F(2x2)'s reach with [`COLS`]. Measured (CPU time, batch 256, 2-core Zen 2): 64->256 @15 forward 63.5 ms at 32
/// tiles, 70-73 at 64, 79 at 128; 64->64 @15 20 ms at 32, 21-22 at 16, 64 and 128.
pub(crate) const COLS_F4: usize = 32;
/// Input channels (the GEMMs' depth) from which F(4x4, 3x3) groups take [`COLS_F4_DEEP`] tiles.
const F4_DEEP: usize = 128;
/// Most GEMM columns of one F(4x4, 3x3) group from [`F4_DEEP`] input channels: with 36 weight matrices of
/// `co × ci` (9.4 MB at 256 -> 256) read once per group, wide groups amortise them. Measured as above: 256->256 @7
/// forward 56-62 ms at 32 or 64 tiles, 51-53 at 128, 47-48 at 256; @3 19 ms at 32, 15-16 at 128 and 256.
const COLS_F4_DEEP: usize = 256;
/// [`COLS_F4_DEEP`] for bf16 GEMMs, whose packed weights are half the bytes and whose transformed inputs were
/// converted to bf16 once more in the GEMM's packing when this was measured: narrower groups kept those inputs in
/// the caches (2-core AMD Zen 4, airbench94-muon bf16 F(4x4) training step, batch 2000, five alternated pairs):
/// 648.8 img/s median at 64 tiles against 594.9 at 256, every pair faster; 32 tiles won one of three pairs
/// against 64. Since then the input transform writes the packed pairs itself (`f4/packed.rs`); the width was not
/// measured again.
/// The tiles a group holds do not change any sum's order (each GEMM sums over channels per tile).
const COLS_F4_DEEP_BF16: usize = 64;

/// The Winograd tiles a convolution runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tile {
    /// F(2x2, 3x3).
    F2,
    /// F(4x4, 3x3) (see [`f4`]).
    F4,
}

/// Whether F(2x2, 3x3) runs for a convolution of these sizes.
fn f2_applies(d: &ConvDims) -> bool {
    d.ci >= MIN_CI && d.h.min(d.w) >= MIN_SIDE && Transforms::best(d.w) != Transforms::Portable
}

/// Whether F(4x4, 3x3)'s transforms (AVX2 code only, any image size) run on this CPU, as capped.
fn f4_runs_here() -> bool {
    cfg!(target_arch = "x86_64") && crate::Isa::detect() >= crate::Isa::Avx2
}

/// Whether F(4x4, 3x3) runs for a convolution of these sizes.
fn f4_applies(d: &ConvDims) -> bool {
    f4_runs_here() && d.ci >= F4_MIN_CI && d.h.min(d.w) >= F4_MIN_SIDE
}

/// The Winograd tiles a convolution of sizes `d` runs with under the settings `cfg` (see [`crate::Winograd`]), or
/// `None` for the direct path.
pub(crate) fn pick(cfg: &crate::KernelConfig, d: &ConvDims) -> Option<Tile> {
    let (f2, f4) = (
        f2_applies(d).then_some(Tile::F2),
        f4_applies(d).then_some(Tile::F4),
    );
    match cfg.winograd_tiles() {
        crate::Winograd::Off => None,
        crate::Winograd::F2x2 => f2,
        crate::Winograd::F4x4 => f4,
        crate::Winograd::Auto if cfg.precision() == crate::Precision::F32 => f4.or(f2),
        crate::Winograd::Auto => f2,
    }
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

/// Floats between one ξ's transformed matrix (`V`, `M`, and F(4x4)'s `dM`) and the next beyond its end: 64 bytes,
/// so that the 16 (F(2x2)) or 36 (F(4x4)) matrices do not start a multiple of 4 KiB apart. Unpadded they do for
/// most layers (`rows × p × 4` bytes, with `p` = 64 tiles and channels a multiple of 16, or F(4x4)'s rows of
/// 8-float multiples and channels a multiple of 4), and then the vectors a transform reads or writes for one
/// block of tiles, one per matrix, fall in one set of the 8-way L1 (16 or 36 lines for 8 ways). Measured:
/// F(4x4)'s padding took the AVX2 airbench94 bench's CPU time from 68-74 s to 62-63 s (docs/performance.md,
/// seventh AVX2 round); F(2x2)'s, see its eighth; the misses themselves were not counted.
pub(crate) const XI_PAD: usize = 16;

/// What the transforms of one group need: `g` images of `h × w`, and `p` GEMM columns (the group's tiles) in the
/// transformed matrices `V` and `M` (rows of `p` floats, one ξ's matrix [`Group::xi_stride`] floats after the
/// previous one's start).
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
    /// The distance in floats from one ξ's F(2x2) matrix of `rows` rows (of `p` floats) to the next (see
    /// [`XI_PAD`]).
    fn xi_stride(self, rows: usize) -> usize {
        rows * self.p + XI_PAD
    }

    /// [`OutputSizes`] of this group, after checking what the SIMD output transforms rely on: images at most
    /// `max_w` wide, `m` of 16 matrices `co × p` ([`Group::xi_stride`] apart) with `p` covering the group's tiles,
    /// `dst` of `co·g·h·w`, `bias` of `co`.
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
        assert!(
            w <= max_w
                && m.len() >= 16 * self.xi_stride(co)
                && p >= g * t_img
                && dst.len() >= co * cn
        );
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

/// The images the F(4x4, 3x3) transforms read: NCHW planes, or a max-pool's gradient scattered back to full
/// resolution plane by plane as they are read (the fused conv -> pool ops' backward).
#[derive(Clone, Copy)]
pub(crate) enum Planes<'a> {
    /// Stored planes.
    Dense(Images<'a>),
    /// A pooled gradient, unpooled on the fly.
    Unpooled(Unpooled<'a>),
}

impl Planes<'_> {
    /// The same images from image `n` on.
    pub(crate) fn skip(self, n: usize) -> Self {
        match self {
            Planes::Dense(x) => Planes::Dense(Images {
                data: &x.data[n * x.img_stride..],
                ..x
            }),
            Planes::Unpooled(u) => Planes::Unpooled(u.skip(n)),
        }
    }

    /// Writes image `j`'s channel `c` plane (`h × w`) into `dst`, row `r` at `dst[r·stride..][..w]`.
    // Read by the F(4x4) transforms only (x86-64).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn write_plane(
        &self,
        j: usize,
        c: usize,
        (h, w): (usize, usize),
        dst: &mut [f32],
        stride: usize,
    ) {
        match self {
            Planes::Dense(x) => {
                let at = j * x.img_stride + c * x.plane_stride;
                let src = &x.data[at..][..h * w];
                for (r, row) in src.chunks_exact(w).enumerate() {
                    crate::util::copy_row(&mut dst[r * stride..][..w], row);
                }
                // The plane two channels on, which the transforms copy after the next one (the F(4x4) bf16
                // transform takes channels in pairs): fetched from memory while this pair is transformed.
                #[cfg(target_arch = "x86_64")]
                if let Some(next) = x
                    .data
                    .get(at + 2 * x.plane_stride..)
                    .and_then(|n| n.get(..h * w))
                {
                    for line in next.chunks(16) {
                        // SAFETY: a prefetch hint reads nothing; the pointer is inside `next`.
                        unsafe {
                            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                                line.as_ptr().cast(),
                            )
                        };
                    }
                }
            }
            Planes::Unpooled(u) => u.write_plane(j, c, dst, stride),
        }
    }
}

/// Tiles per image: the GEMM columns one image adds.
fn tiles_per_image(d: &ConvDims) -> usize {
    let (th, tw) = tiles(d.h, d.w);
    th * tw
}

/// The transformed weights `U_ξ = (G g Gᵀ)_ξ`, one left operand `[co × ci]` per `ξ`.
pub(crate) struct Weights {
    lhs: Vec<ConvLhs<'static>>,
    co: usize,
    ci: usize,
    tile: Tile,
    /// The GEMMs run on the bf16 kernel (see [`Weights::cols`]).
    bf16: bool,
}

impl Weights {
    /// From `w [co, ci, 3, 3]`, for the tiles `tile`.
    pub(crate) fn new(w: &[f32], co: usize, ci: usize, p: crate::Precision, tile: Tile) -> Self {
        let u = match tile {
            Tile::F2 => f2_weights(w, co, ci),
            Tile::F4 => f4::weights(w, co, ci),
        };
        // Packing 16 or 36 matrices for the bf16 kernel is most of this constructor's time: one per rayon task.
        let lhs = u
            .into_par_iter()
            .map(|m| ConvLhs::owned(m, co, ci, p))
            .collect();
        let bf16 = p == crate::Precision::Bf16 && crate::bf16_supported();
        Self {
            lhs,
            co,
            ci,
            tile,
            bf16,
        }
    }

    /// The GEMM columns (tiles) one image of sizes `d` adds.
    pub(crate) fn tiles_per_image(&self, d: &ConvDims) -> usize {
        match self.tile {
            Tile::F2 => tiles_per_image(d),
            Tile::F4 => {
                let (th, tw) = f4::tiles(d.h, d.w);
                th * tw
            }
        }
    }

    /// The most GEMM columns (tiles) of one group of images.
    pub(crate) fn cols(&self) -> usize {
        match self.tile {
            Tile::F2 => COLS,
            Tile::F4 if self.ci >= F4_DEEP && self.bf16 => COLS_F4_DEEP_BF16,
            Tile::F4 if self.ci >= F4_DEEP => COLS_F4_DEEP,
            Tile::F4 => COLS_F4,
        }
    }
}

/// `G` of F(2x2, 3x3).
const G2: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// `U = G g Gᵀ` of F(2x2, 3x3) for every `[co, ci, 3, 3]` kernel: 16 matrices `[co × ci]`.
fn f2_weights(w: &[f32], co: usize, ci: usize) -> Vec<Vec<f32>> {
    transform_weights(w, co, ci, &G2)
}

/// `U = G g Gᵀ` of every `[co, ci, 3, 3]` kernel for the `α × 3` matrix `g_mat`: `α²` matrices `[co × ci]`,
/// `ξ = α·a + b`.
///
/// Each `U_ξ` is a fixed combination of the 9 taps, `U_ξ = Σ_{r,c} G[a][r]·G[b][c] · g[r][c]`: the taps are
/// first gathered into 9 contiguous planes, then the matrices are computed in parallel from them, each a run of
/// contiguous multiply-adds. (Kernel by kernel, 36 scattered floats per kernel on one thread, F(4x4)'s took 3.9%
/// of an airbench94 training step and held inference at 0.78x its speed now.)
fn transform_weights(w: &[f32], co: usize, ci: usize, g_mat: &[[f64; 3]]) -> Vec<Vec<f32>> {
    let (n, alpha) = (co * ci, g_mat.len());
    let taps: Vec<Vec<f32>> = (0..9)
        .into_par_iter()
        .map(|t| w.chunks_exact(9).take(n).map(|g| g[t]).collect())
        .collect();
    (0..alpha * alpha)
        .into_par_iter()
        .map(|xi| {
            let (a, b) = (xi / alpha, xi % alpha);
            let mut u = vec![0f32; n];
            for (t, tap) in taps.iter().enumerate() {
                let coef = (g_mat[a][t / 3] * g_mat[b][t % 3]) as f32;
                if coef != 0.0 {
                    for (o, &v) in u.iter_mut().zip(tap) {
                        *o += coef * v;
                    }
                }
            }
            u
        })
        .collect()
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
    match wts.tile {
        Tile::F2 => conv_group_with(d, x, g, wts, bias, dst, Transforms::best(d.w)),
        Tile::F4 => f4::conv_group(d, Planes::Dense(x), g, wts, bias, dst),
    }
}

/// The 2x2 max-pool (of the ReLU with `relu`) of [`conv_group`]'s output, `out[g][co][(h/2)·(w/2)]` with each
/// window's argmax (0-3, row-major in the window) in `idx`, where these weights' tiles pool in their output
/// transform (F(4x4)): true when done; false, nothing written, where the caller convolves and pools.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_group_pool(
    d: &ConvDims,
    x: Images<'_>,
    g: usize,
    wts: &Weights,
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    idx: &mut [u8],
) -> bool {
    match wts.tile {
        Tile::F2 => false,
        Tile::F4 => {
            f4::conv_group_pool(d, Planes::Dense(x), g, wts, bias, relu, out, idx);
            true
        }
    }
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
    let (sv, sm) = (grp.xi_stride(ci), grp.xi_stride(co));
    with_scratch_a(16 * sv, |v| {
        match t {
            // SAFETY: the CPU features and width checked (t.fits); v holds 16 matrices ci × p, sv apart, x the g
            // images.
            #[cfg(target_arch = "x86_64")]
            Transforms::Avx512 => unsafe { avx512::transform_input(x, ci, grp, v) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Transforms::Avx2 => unsafe { avx2::transform_input(x, ci, grp, v) },
            _ => transform_input(x, ci, grp, v),
        }
        with_scratch_c(16 * sm, |m| {
            for (xi, lhs) in wts.lhs.iter().enumerate() {
                let b = Mat {
                    data: &v[xi * sv..][..ci * p],
                    rs: p,
                    cs: 1,
                };
                lhs.gemm(p, &mut m[xi * sm..][..co * p], p, false, b);
            }
            match t {
                // SAFETY: as above; m holds 16 matrices co × p, sm apart, dst co × g·h·w.
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

/// Whether the weight gradient of a convolution of sizes `d` runs as F(4x4, 3x3) under the settings `cfg`: where
/// its forward does.
pub(crate) fn weight_grad_applies(cfg: &crate::KernelConfig, d: &ConvDims) -> bool {
    pick(cfg, d) == Some(Tile::F4)
}

/// `V_ξ[c][tile] = (Bᵀ d B)_ξ` for every channel and tile of `g` images, into `v` (16 matrices `ci × p`,
/// [`Group::xi_stride`] apart).
fn transform_input(x: Images<'_>, ci: usize, grp: Group, v: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let sv = grp.xi_stride(ci);
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
                    let at = |b: usize| (i * 4 + b) * sv + c * p + p0;
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

/// `Y = Aᵀ M A` per tile (`Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`) from `m` (16 matrices `co × p`,
/// [`Group::xi_stride`] apart) into the group matrix `dst[co × (g·h·w)]`, plus the bias; the half-used last tile
/// row and column at odd sizes are cut.
fn transform_output(m: &[f32], co: usize, grp: Group, bias: Option<&[f32]>, dst: &mut [f32]) {
    let Group { g, h, w, p } = grp;
    let sm = grp.xi_stride(co);
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
                let mrow = |xi: usize| &m[xi * sm + o * p + p0..][..tw];
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
// Without x86-64 the F(4x4) transforms (AVX2) are never picked (`f4_runs_here`): their callers' code is compiled
// out, so what only they use is unused there.
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_imports, unused_variables)
)]
pub(crate) mod f4;

#[cfg(test)]
mod tests;
