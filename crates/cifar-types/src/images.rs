use crate::{Error, Result};
use std::sync::Arc;

/// Colour planes per image (R, G, B).
pub const CHANNELS: usize = 3;
/// Width and height of an image.
pub const IMAGE_SIDE: usize = 32;
/// Bytes per image: 3 planes of 32x32.
pub const IMAGE_BYTES: usize = CHANNELS * IMAGE_SIDE * IMAGE_SIDE;
/// The most classes an [`ImageSet`] can hold (labels are one byte).
pub const MAX_CLASSES: usize = 256;

/// CIFAR-10's class names, in label order. Data sets carry their own class names ([`ImageSet::class_names`]);
/// this list is CIFAR-10's (what its `batches.meta.txt` says) and the names [`default_class_names`] gives a
/// 10-class file written before class names were recorded.
pub const CIFAR10_CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Class names for a model or file that records none: CIFAR-10's for 10 classes (every such file this project
/// wrote is a CIFAR-10 one), `class 0`, `class 1`, ... otherwise.
///
/// ```
/// assert_eq!(cifar10_types::default_class_names(10)[3], "cat");
/// assert_eq!(cifar10_types::default_class_names(3), ["class 0", "class 1", "class 2"]);
/// ```
pub fn default_class_names(num_classes: usize) -> Vec<String> {
    if num_classes == CIFAR10_CLASS_NAMES.len() {
        CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..num_classes).map(|i| format!("class {i}")).collect()
    }
}

/// An in-memory set of images: u8 pixels laid out `[N, 3, 32, 32]` (planar R, G, B; each plane row-major),
/// one label per image and the class names.
///
/// The pixels and labels are shared (`Arc<Vec<u8>>`, built from the caller's vectors without a copy): cloning a
/// set (e.g. to hand it to a loader thread or wrap it in an `Arc`) does not copy its 150 MB of training images.
///
/// ```
/// use cifar10_types::{IMAGE_BYTES, ImageSet};
/// let names = vec!["cat".to_string(), "dog".to_string(), "ship".to_string()];
/// let set = ImageSet::new(vec![0; 2 * IMAGE_BYTES], vec![1, 2], names).unwrap();
/// let copy = set.clone();
/// assert!(std::ptr::eq(set.pixels(), copy.pixels())); // shared, not copied
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pixels: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
    class_names: Arc<[String]>,
}

impl ImageSet {
    /// Builds a set, checking that `pixels` holds exactly one image per label, every label names a class and
    /// there are at most [`MAX_CLASSES`] classes.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, class_names: Vec<String>) -> Result<Self> {
        if class_names.len() > MAX_CLASSES {
            return Err(Error::Invalid(format!(
                "image set: {} classes, but at most {MAX_CLASSES} are supported (labels are one byte)",
                class_names.len()
            )));
        }
        if pixels.len() != labels.len() * IMAGE_BYTES {
            return Err(Error::Invalid(format!(
                "image set: {} pixel bytes for {} labels (expected {} bytes)",
                pixels.len(),
                labels.len(),
                labels.len() * IMAGE_BYTES
            )));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| usize::from(**l) >= class_names.len())
        {
            return Err(Error::Invalid(format!(
                "image set: image {i} has label {l}, but there are only {} classes",
                class_names.len()
            )));
        }
        Ok(Self {
            pixels: Arc::new(pixels),
            labels: Arc::new(labels),
            class_names: class_names.into(),
        })
    }

    /// An empty set with the given class names.
    pub fn empty(class_names: Vec<String>) -> Self {
        Self {
            pixels: Arc::default(),
            labels: Arc::default(),
            class_names: class_names.into(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All pixels, `[N, 3, 32, 32]` row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// One label per image, in image order; each is below [`num_classes`](Self::num_classes).
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The class names, indexed by label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of classes (the length of [`class_names`](Self::class_names)).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The 3072 bytes of image `i` (panics if `i >= len()`, like slice indexing).
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// The label of image `i` (panics if `i >= len()`).
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Pixel (r, g, b) of image `i` at row `y`, column `x`.
    pub fn rgb(&self, i: usize, y: usize, x: usize) -> [u8; 3] {
        let img = self.image(i);
        let plane = IMAGE_SIDE * IMAGE_SIDE;
        let o = y * IMAGE_SIDE + x;
        [img[o], img[plane + o], img[2 * plane + o]]
    }

    /// Appends every image of `other` (class names must match).
    pub fn extend(&mut self, other: &ImageSet) -> Result<()> {
        if other.class_names != self.class_names {
            return Err(Error::Invalid(
                "image set: cannot join sets with different class names".into(),
            ));
        }
        Arc::make_mut(&mut self.pixels).extend_from_slice(&other.pixels);
        Arc::make_mut(&mut self.labels).extend_from_slice(&other.labels);
        Ok(())
    }

    /// A new set holding the images at `indices`, in that order (panics on an index out of range).
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            pixels: Arc::new(pixels),
            labels: Arc::new(labels),
            class_names: self.class_names.clone(),
        }
    }

    /// The first `n` images (all of them, shared without a copy, if `n >= len()`).
    pub fn take(&self, n: usize) -> ImageSet {
        if n >= self.len() {
            return self.clone();
        }
        ImageSet {
            pixels: Arc::new(self.pixels[..n * IMAGE_BYTES].to_vec()),
            labels: Arc::new(self.labels[..n].to_vec()),
            class_names: self.class_names.clone(),
        }
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in self.labels.iter() {
            counts[usize::from(l)] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        CIFAR10_CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejects_bad_lengths_and_labels() {
        assert!(ImageSet::new(vec![0; IMAGE_BYTES + 1], vec![0], names()).is_err());
        assert!(ImageSet::new(vec![0; IMAGE_BYTES], vec![10], names()).is_err());
    }

    #[test]
    fn subset_and_pixels() {
        let mut px = vec![0u8; 2 * IMAGE_BYTES];
        px[IMAGE_BYTES + 1024 + 33] = 200; // image 1, green plane, row 1, col 1
        let set = ImageSet::new(px, vec![2, 7], names()).unwrap();
        assert_eq!(set.rgb(1, 1, 1), [0, 200, 0]);
        let sub = set.subset(&[1, 1, 0]);
        assert_eq!(sub.labels(), &[7, 7, 2]);
        assert_eq!(sub.rgb(0, 1, 1), [0, 200, 0]);
        assert_eq!(sub.class_counts()[7], 2);
        assert_eq!(set.take(1).labels(), &[2]);
    }
}
