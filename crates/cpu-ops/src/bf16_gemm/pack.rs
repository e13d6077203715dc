//! Packing f32 operands into the kernel's panels of bf16 pairs.

use super::*;

/// Words per packed `a` panel: [`MR`] rows of [`KCP`] pairs each (a shorter last depth block leaves the tail of
/// each row unused), so that the kernel finds row `r`'s pair `p` at the constant offset `r·KCP + p`.
pub(super) const A_PANEL: usize = MR * KCP;

/// Packs rows `r0..r0+mc` and depth pairs `p0..p0+kcp` of `a` into panels of [`MR`] rows (`out[panel][row][pair]`,
/// row stride [`KCP`]), zero-padded: each row of `a` becomes one contiguous run of pair words.
pub(super) fn pack_a(
    a: Mat<'_>,
    k: usize,
    r0: usize,
    mc: usize,
    p0: usize,
    kcp: usize,
    out: &mut Vec<u32>,
) {
    let panels = mc.div_ceil(MR);
    // Every word the kernel reads is written below (padding rows as zeros): no need to clear.
    out.resize(panels * A_PANEL, 0);
    let at = |i: usize, d: usize| {
        if d < k {
            a.data[i * a.rs + d * a.cs]
        } else {
            0.0
        }
    };
    let simd = a.cs == 1 && bf16_supported();
    for (pi, panel) in out[..panels * A_PANEL]
        .chunks_exact_mut(A_PANEL)
        .enumerate()
    {
        let rows = MR.min(mc - pi * MR);
        for r in rows..MR {
            panel[r * KCP..r * KCP + kcp].fill(0);
        }
        for r in 0..rows {
            let i = r0 + pi * MR + r;
            let dst = &mut panel[r * KCP..r * KCP + kcp];
            let mut p = 0;
            #[cfg(target_arch = "x86_64")]
            if simd {
                // Sixteen pairs at a time along the row; the pairs in full bounds only.
                let row = &a.data[i * a.rs..];
                while p + 16 <= kcp && 2 * (p0 + p + 16) <= k {
                    let Some(words) = dst[p..].first_chunk_mut::<16>() else {
                        break;
                    };
                    // SAFETY: features checked; 32 floats from depth 2(p0+p) lie inside row i (checked bound
                    // 2(p0+p+16) <= k and the asserted extent of a).
                    unsafe {
                        super::x86::pairs_from_contiguous(row.as_ptr().add(2 * (p0 + p)), words)
                    };
                    p += 16;
                }
            }
            while p < kcp {
                let d = 2 * (p0 + p);
                dst[p] = pair(at(i, d), at(i, d + 1));
                p += 1;
            }
        }
    }
}

/// Packs columns `c0..c0+nc` and depth pairs `p0..p0+kcp` of `b` into panels of [`NR`] columns
/// (`out[panel][pair][col]`), zero-padded.
pub(super) fn pack_b(
    b: Mat<'_>,
    k: usize,
    c0: usize,
    nc: usize,
    p0: usize,
    kcp: usize,
    out: &mut Vec<u32>,
) {
    let panels = nc.div_ceil(NR);
    // Every word is written below (padding columns as zeros): no need to clear.
    out.resize(panels * kcp * NR, 0);
    let at = |d: usize, j: usize| {
        if d < k {
            b.data[d * b.rs + j * b.cs]
        } else {
            0.0
        }
    };
    let simd = bf16_supported();
    for (pj, panel) in out[..panels * kcp * NR]
        .chunks_exact_mut(kcp * NR)
        .enumerate()
    {
        let cols = NR.min(nc - pj * NR);
        let j0 = c0 + pj * NR;
        if cols < NR {
            for p in 0..kcp {
                panel[p * NR + cols..(p + 1) * NR].fill(0);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if simd && b.rs == 1 {
            // Depth-contiguous columns: sixteen pairs of one column at a time, scattered down the panel.
            let full = if 2 * (p0 + kcp) <= k {
                kcp
            } else {
                (k / 2).saturating_sub(p0).min(kcp)
            };
            for c in 0..cols {
                let col = &b.data[(j0 + c) * b.cs..];
                let mut p = 0;
                while p + 16 <= full {
                    let mut words = [0u32; 16];
                    // SAFETY: features checked; depths 2(p0+p)..2(p0+p+16) <= k of column j0+c lie inside the
                    // asserted extent of b.
                    unsafe {
                        super::x86::pairs_from_contiguous(
                            col.as_ptr().add(2 * (p0 + p)),
                            &mut words,
                        )
                    };
                    for (t, w) in words.iter().enumerate() {
                        panel[(p + t) * NR + c] = *w;
                    }
                    p += 16;
                }
                while p < kcp {
                    let d = 2 * (p0 + p);
                    panel[p * NR + c] = pair(at(d, j0 + c), at(d + 1, j0 + c));
                    p += 1;
                }
            }
            continue;
        }
        for p in 0..kcp {
            let d = 2 * (p0 + p);
            let dst = &mut panel[p * NR..][..NR];
            let mut c = 0;
            #[cfg(target_arch = "x86_64")]
            if simd && b.cs == 1 && d + 1 < k {
                while c + 16 <= cols {
                    // SAFETY: features checked; rows d and d+1 exist (d + 1 < k) and columns j0+c..j0+c+16 are
                    // inside the asserted extent of b.
                    unsafe {
                        super::x86::pairs_from_rows(
                            b.data.as_ptr().add(d * b.rs + j0 + c),
                            b.data.as_ptr().add((d + 1) * b.rs + j0 + c),
                            dst[c..].as_mut_ptr(),
                        )
                    };
                    c += 16;
                }
            }
            while c < cols {
                dst[c] = pair(at(d, j0 + c), at(d + 1, j0 + c));
                c += 1;
            }
        }
    }
}
