//! A few CIFAR-10 test images (32x32 PNG from the test split, named by their true class), built in so that the
//! page can show a prediction without an upload (`GET /samples/NAME.png`, the page's sample buttons and
//! `/?demo`). They are not all easy: the `fast` preset's model (80% test accuracy) calls the cat a dog.

/// `(name, PNG bytes)`, in the order the page shows them.
pub const SAMPLES: [(&str, &[u8]); 6] = [
    ("airplane", include_bytes!("../assets/samples/airplane.png")),
    ("bird", include_bytes!("../assets/samples/bird.png")),
    ("cat", include_bytes!("../assets/samples/cat.png")),
    ("dog", include_bytes!("../assets/samples/dog.png")),
    ("horse", include_bytes!("../assets/samples/horse.png")),
    ("ship", include_bytes!("../assets/samples/ship.png")),
];

/// The PNG bytes of the sample `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    SAMPLES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
