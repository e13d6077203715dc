use cifar_types::{CHANNELS, IMAGE_BYTES, IMAGE_SIDE};
use rand::Rng;
use serde::{Deserialize, Serialize};

const PLANE: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Flips one `[3, 32, 32]` u8 image left-right in place.
///
/// ```
/// let mut img = vec![0u8; 3072];
/// img[0] = 9; // row 0, column 0 of the red plane
/// augment::hflip(&mut img);
/// assert_eq!(img[31], 9);
/// ```
pub fn hflip(image: &mut [u8]) {
    for row in image.chunks_exact_mut(IMAGE_SIDE) {
        row.reverse();
    }
}

/// Crops a 32x32 window out of `src` zero-padded by `pad` pixels on every side, as torchvision's
/// `RandomCrop(32, padding=pad)` with offsets `(dy, dx)` in `0..=2*pad`; `dy = dx = pad` is the identity.
/// Padding is black (0) before normalization.
pub fn pad_crop(src: &[u8], dst: &mut [u8], pad: usize, dy: usize, dx: usize) {
    let side = IMAGE_SIDE as isize;
    let (oy, ox) = (dy as isize - pad as isize, dx as isize - pad as isize);
    for c in 0..CHANNELS {
        let s = &src[c * PLANE..(c + 1) * PLANE];
        let d = &mut dst[c * PLANE..(c + 1) * PLANE];
        for y in 0..side {
            let sy = y + oy;
            let drow = &mut d[(y * side) as usize..((y + 1) * side) as usize];
            if !(0..side).contains(&sy) {
                drow.fill(0);
                continue;
            }
            let srow = &s[(sy * side) as usize..((sy + 1) * side) as usize];
            // Columns x with 0 <= x + ox < side come from the source, the rest are padding.
            let x0 = (-ox).clamp(0, side);
            let x1 = (side - ox).clamp(0, side);
            drow[..x0 as usize].fill(0);
            drow[x1 as usize..].fill(0);
            if x1 > x0 {
                drow[x0 as usize..x1 as usize]
                    .copy_from_slice(&srow[(x0 + ox) as usize..(x1 + ox) as usize]);
            }
        }
    }
}

/// Per-channel normalization `(x / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
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

/// Writes the normalized f32 values of one `[3, 32, 32]` u8 image into `dst`.
pub fn normalize_into(src: &[u8], dst: &mut [f32], norm: &Normalize) {
    for c in 0..CHANNELS {
        let scale = 1.0 / (255.0 * norm.std[c]);
        let shift = norm.mean[c] / norm.std[c];
        for (d, &s) in dst[c * PLANE..(c + 1) * PLANE]
            .iter_mut()
            .zip(&src[c * PLANE..(c + 1) * PLANE])
        {
            *d = f32::from(s) * scale - shift;
        }
    }
}

/// The augmentation recipe: which random transforms run, then normalization.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Probability of a horizontal flip (the reference: 0.5).
    pub flip_prob: f64,
    /// Zero padding for the random crop (the reference: 4); 0 disables the crop.
    pub crop_pad: usize,
    pub normalize: Normalize,
}

impl Default for Augment {
    /// The reference's training augmentation.
    fn default() -> Self {
        Self {
            flip_prob: 0.5,
            crop_pad: 4,
            normalize: Normalize::default(),
        }
    }
}

impl Augment {
    /// Normalization only, for evaluation batches.
    pub fn none() -> Self {
        Self {
            flip_prob: 0.0,
            crop_pad: 0,
            normalize: Normalize::default(),
        }
    }

    /// Augments and normalizes one image into `dst` (3072 f32).
    pub fn apply<R: Rng>(&self, src: &[u8], dst: &mut [f32], rng: &mut R) {
        let mut buf = [0u8; IMAGE_BYTES];
        let cropped = self.crop_pad > 0;
        if cropped {
            let dy = rng.random_range(0..=2 * self.crop_pad);
            let dx = rng.random_range(0..=2 * self.crop_pad);
            pad_crop(src, &mut buf, self.crop_pad, dy, dx);
        }
        let flipped = self.flip_prob > 0.0 && rng.random_bool(self.flip_prob.min(1.0));
        if flipped {
            if !cropped {
                buf.copy_from_slice(src);
            }
            hflip(&mut buf);
        }
        let cur: &[u8] = if cropped || flipped { &buf } else { src };
        normalize_into(cur, dst, &self.normalize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ramp() -> Vec<u8> {
        (0..IMAGE_BYTES).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn crop_at_centre_is_identity_and_shift_moves_pixels() {
        let src = ramp();
        let mut dst = vec![0; IMAGE_BYTES];
        pad_crop(&src, &mut dst, 4, 4, 4);
        assert_eq!(src, dst);
        // dy = dx = 0: the window starts 4 pixels above/left of the image.
        pad_crop(&src, &mut dst, 4, 0, 0);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let want = if y < 4 || x < 4 {
                        0
                    } else {
                        src[c * PLANE + (y - 4) * 32 + (x - 4)]
                    };
                    assert_eq!(dst[c * PLANE + y * 32 + x], want, "c{c} y{y} x{x}");
                }
            }
        }
        // dy = dx = 8: 4 pixels below/right.
        pad_crop(&src, &mut dst, 4, 8, 8);
        assert_eq!(dst[0], src[4 * 32 + 4]);
        assert_eq!(dst[31 * 32 + 31], 0);
        assert_eq!(dst[27 * 32 + 27], src[31 * 32 + 31]);
    }

    #[test]
    fn flip_twice_is_identity() {
        let src = ramp();
        let mut img = src.clone();
        hflip(&mut img);
        assert_ne!(img, src);
        assert_eq!(img[PLANE + 5 * 32], src[PLANE + 5 * 32 + 31]);
        hflip(&mut img);
        assert_eq!(img, src);
    }

    #[test]
    fn normalize_maps_to_minus_one_one() {
        let mut src = vec![0u8; IMAGE_BYTES];
        src[1] = 255;
        src[2] = 51;
        let mut dst = vec![0f32; IMAGE_BYTES];
        normalize_into(&src, &mut dst, &Normalize::default());
        assert_eq!(dst[0], -1.0);
        assert!((dst[1] - 1.0).abs() < 1e-6);
        assert!((dst[2] - (0.2 - 0.5) / 0.5).abs() < 1e-6);
    }

    #[test]
    fn apply_is_seeded() {
        let src = ramp();
        let aug = Augment::default();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut out = vec![0f32; IMAGE_BYTES * 8];
            for chunk in out.chunks_exact_mut(IMAGE_BYTES) {
                aug.apply(&src, chunk, &mut rng);
            }
            out
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
