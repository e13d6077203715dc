use cifar_types::{CHANNELS, IMAGE_BYTES, IMAGE_SIDE, Normalize};
use rand::Rng;
use serde::{Deserialize, Serialize};

const PLANE: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Flips one `[3, 32, 32]` u8 image left-right in place.
///
/// ```
/// let mut img = vec![0u8; 3072];
/// img[0] = 9; // row 0, column 0 of the red plane
/// cifar10_augment::hflip(&mut img);
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

/// Crops a 32x32 window out of `src` reflect-padded by `pad` pixels (PyTorch's `F.pad(mode='reflect')`: the
/// edge pixel is not repeated), offsets `(dy, dx)` in `0..=2*pad`; `dy = dx = pad` is the identity. This is
/// airbench's random translate.
///
/// ```
/// let src: Vec<u8> = (0..3072).map(|i| (i % 32) as u8).collect(); // every row is 0..32
/// let mut dst = vec![0u8; 3072];
/// cifar10_augment::reflect_crop(&src, &mut dst, 2, 2, 0); // shifted right by 2: columns -2, -1 reflect to 2, 1
/// assert_eq!(&dst[..4], &[2, 1, 0, 1]);
/// ```
pub fn reflect_crop(src: &[u8], dst: &mut [u8], pad: usize, dy: usize, dx: usize) {
    let side = IMAGE_SIDE as isize;
    let reflect = |v: isize| -> usize {
        let v = if v < 0 { -v } else { v };
        let v = if v >= side { 2 * (side - 1) - v } else { v };
        v.clamp(0, side - 1) as usize
    };
    let (oy, ox) = (dy as isize - pad as isize, dx as isize - pad as isize);
    for c in 0..CHANNELS {
        let s = &src[c * PLANE..(c + 1) * PLANE];
        let d = &mut dst[c * PLANE..(c + 1) * PLANE];
        for y in 0..IMAGE_SIDE {
            let sy = reflect(y as isize + oy);
            let srow = &s[sy * IMAGE_SIDE..(sy + 1) * IMAGE_SIDE];
            let drow = &mut d[y * IMAGE_SIDE..(y + 1) * IMAGE_SIDE];
            if ox == 0 {
                drow.copy_from_slice(srow);
            } else {
                for (x, v) in drow.iter_mut().enumerate() {
                    *v = srow[reflect(x as isize + ox)];
                }
            }
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
#[serde(default)]
pub struct Augment {
    /// Probability of a horizontal flip (the reference: 0.5); with `alternating_flip`, the probability of the
    /// image's run-long base flip.
    pub flip_prob: f64,
    /// airbench's alternating flip: each image gets one random flip for the whole run (with `flip_prob`), and every
    /// second epoch (2, 4, ...) the whole set is mirrored, so an image is seen both ways in any two epochs.
    pub alternating_flip: bool,
    /// Zero padding for the random crop (the reference: 4); 0 disables the crop.
    pub crop_pad: usize,
    /// airbench's random translate: a random shift of up to this many pixels on each axis of the image
    /// reflect-padded by as many (0: off). Used instead of `crop_pad` when both are set.
    pub translate: usize,
    /// The normalization applied after the transforms (the reference: mean 0.5, std 0.5 per channel).
    pub normalize: Normalize,
}

impl Default for Augment {
    /// The reference's training augmentation.
    fn default() -> Self {
        Self {
            flip_prob: 0.5,
            alternating_flip: false,
            crop_pad: 4,
            translate: 0,
            normalize: Normalize::default(),
        }
    }
}

/// Where an image stands in a run, for the transforms that depend on more than a per-batch random stream
/// (alternating flip).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageAt {
    /// The image's index in its set.
    pub index: usize,
    /// The epoch (1-based; 0 outside training).
    pub epoch: usize,
    /// The run's seed.
    pub run_seed: u64,
}

impl ImageAt {
    /// The image's run-long base flip under alternating flip (a hash of the run seed and the index).
    fn base_flip(&self, p: f64) -> bool {
        let h = crate::batch_seed(self.run_seed ^ 0x616c_745f_666c_6970, 0, self.index);
        ((h >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

impl Augment {
    /// Normalization only, for evaluation batches.
    pub fn none() -> Self {
        Self {
            flip_prob: 0.0,
            alternating_flip: false,
            crop_pad: 0,
            translate: 0,
            normalize: Normalize::default(),
        }
    }

    /// airbench94's training augmentation: alternating flip, translate by up to 2 pixels (reflect padding), the
    /// CIFAR-10 mean/std normalization.
    pub fn airbench() -> Self {
        Self {
            flip_prob: 0.5,
            alternating_flip: true,
            crop_pad: 0,
            translate: 2,
            normalize: Normalize::CIFAR10,
        }
    }

    /// Augments and normalizes one image into `dst` (3072 f32).
    pub fn apply<R: Rng>(&self, src: &[u8], dst: &mut [f32], rng: &mut R) {
        self.apply_at(src, dst, rng, ImageAt::default());
    }

    /// [`Augment::apply`] for image `at` (needed by the alternating flip).
    pub fn apply_at<R: Rng>(&self, src: &[u8], dst: &mut [f32], rng: &mut R, at: ImageAt) {
        let mut buf = [0u8; IMAGE_BYTES];
        let cropped = self.translate > 0 || self.crop_pad > 0;
        if self.translate > 0 {
            let dy = rng.random_range(0..=2 * self.translate);
            let dx = rng.random_range(0..=2 * self.translate);
            reflect_crop(src, &mut buf, self.translate, dy, dx);
        } else if self.crop_pad > 0 {
            let dy = rng.random_range(0..=2 * self.crop_pad);
            let dx = rng.random_range(0..=2 * self.crop_pad);
            pad_crop(src, &mut buf, self.crop_pad, dy, dx);
        }
        let flipped = if self.alternating_flip {
            at.base_flip(self.flip_prob) ^ (at.epoch >= 1 && at.epoch.is_multiple_of(2))
        } else {
            self.flip_prob > 0.0 && rng.random_bool(self.flip_prob.min(1.0))
        };
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
