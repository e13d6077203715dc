//! A download progress bar (bytes, rate, ETA) to plug into [`crate::fetch`]'s callback.

use indicatif::{ProgressBar, ProgressStyle};

/// Lazily created indicatif bar; hidden by indicatif when stderr is not a terminal.
///
/// ```no_run
/// let mut bar = cifar10_dataset::DownloadBar::new();
/// let outcome = cifar10_dataset::fetch("data".as_ref(), &Default::default(), &mut |d, t| bar.update(d, t))?;
/// bar.finish();
/// # Ok::<(), cifar10_dataset::Error>(())
/// ```
#[derive(Default)]
pub struct DownloadBar {
    bar: Option<ProgressBar>,
    has_len: bool,
}

impl DownloadBar {
    /// A bar that appears on the first [`update`](Self::update).
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows `done` of `total` bytes.
    pub fn update(&mut self, done: u64, total: Option<u64>) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::no_length();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} downloading {bytes} {wide_bar} {total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        if let Some(t) = total
            && !self.has_len
        {
            bar.set_length(t);
            self.has_len = true;
        }
        bar.set_position(done);
    }

    /// Removes the bar from the terminal.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
