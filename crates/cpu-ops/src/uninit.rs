//! An op's output vector written part by part by the parallel work that fills it, with no zeroing pass first where
//! a part is filled by copies.
//!
//! [`crate::util::par_zeroed`] `memset`s an output before the kernels overwrite it. Where a worker fills its part
//! by copying (a group's convolution output copied from the group matrix into the images, [`crate::conv::ungroup`])
//! an [`Uninit`] skips that pass: the part is written once, by the copies. Parts a kernel writes in place are zeroed
//! first ([`Part::zeroed`]). The vector counts the elements its parts initialised and [`Uninit::finish`] gives it
//! out only when that count covers it, so a part left unwritten is a panic (an internal invariant), never
//! uninitialised memory read.
//!
//! Zeroing each part just before its kernel writes it, instead of the whole output first, was measured and not
//! kept (docs/performance.md, Zen 3): glibc's `memset` of a large output streams past the caches, and zeroing near
//! the write brought the lines into cache ahead of the kernel's own data (the conv -> pool backward's kernel got
//! slower), or stalled on a locked count after each plane (BatchNorm).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A vector of `len` elements, uninitialised until its [`Part`]s are.
pub(crate) struct Uninit<T> {
    v: Vec<T>,
    len: usize,
    /// Elements initialised so far, one count per part handed out, each on a cache line of its own (parts are
    /// written by different threads).
    done: Vec<Count>,
    /// Whether the parts were handed out (only once: a second split could initialise an element twice).
    split: bool,
}

/// One part's count of initialised elements, alone on its cache line.
#[repr(align(128))]
#[derive(Default)]
struct Count(AtomicUsize);

/// One part of an [`Uninit`]: a range of it that becomes `&mut [T]` once, zeroed ([`Part::zeroed`]), or is
/// copied into piece by piece ([`Part::pieces`]).
pub(crate) struct Part<'a, T> {
    mem: &'a mut [MaybeUninit<T>],
    done: &'a AtomicUsize,
}

impl<T: bytemuck::Zeroable + Copy> Uninit<T> {
    /// Room for `len` elements, none initialised.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            v: Vec::with_capacity(len),
            len,
            done: Vec::new(),
            split: false,
        }
    }

    /// The memory and one count per part; only once.
    fn split(&mut self, parts: usize) -> (&mut [MaybeUninit<T>], &[Count]) {
        assert!(!self.split, "Uninit: the parts were already handed out");
        self.split = true;
        self.done = (0..parts).map(|_| Count::default()).collect();
        (&mut self.v.spare_capacity_mut()[..self.len], &self.done)
    }

    /// The vector as consecutive parts of `sizes` elements, from the start.
    ///
    /// # Panics
    /// If the parts were already handed out, or if the sizes add up to more than the vector (internal
    /// invariants). Sizes that add up to less leave the rest in no part, and [`Uninit::finish`] panics.
    pub(crate) fn parts(&mut self, sizes: impl IntoIterator<Item = usize>) -> Vec<Part<'_, T>> {
        let sizes: Vec<usize> = sizes.into_iter().collect();
        let (mut rest, counts) = self.split(sizes.len());
        let mut parts = Vec::with_capacity(sizes.len());
        for (&size, count) in sizes.iter().zip(counts) {
            let (mem, tail) = std::mem::take(&mut rest).split_at_mut(size);
            parts.push(Part {
                mem,
                done: &count.0,
            });
            rest = tail;
        }
        parts
    }

    /// The vector, every element of it initialised by its parts.
    ///
    /// # Panics
    /// If some element was not (a part never written: an internal invariant).
    pub(crate) fn finish(mut self) -> Vec<T> {
        let done: usize = self.done.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
        assert_eq!(
            done, self.len,
            "Uninit::finish: {done} of {} elements initialised",
            self.len
        );
        // SAFETY: the capacity is at least `len`; the parts are disjoint ranges of `0..len` (split from one slice,
        // handed out once), each added its length to a count when it initialised all of its elements and was
        // consumed doing so, so counts adding up to `len` mean every element of `0..len` is initialised. (The
        // parts' borrows of `self` ended, so every count is final and visible here.)
        unsafe { self.v.set_len(self.len) };
        self.v
    }
}

impl<'a, T: bytemuck::Zeroable + Copy> Part<'a, T> {
    /// The part, zeroed.
    pub(crate) fn zeroed(self) -> &'a mut [T] {
        for m in self.mem.iter_mut() {
            *m = MaybeUninit::new(T::zeroed());
        }
        self.done.fetch_add(self.mem.len(), Ordering::Relaxed);
        // SAFETY: every element was written just above.
        unsafe { assume_init(self.mem) }
    }

    /// The part as a cursor over consecutive pieces of `n` elements, written one after another by this thread
    /// and counted once for the part when the cursor is dropped (a locked add per piece would wait for the stores
    /// just made).
    pub(crate) fn pieces(self, n: usize) -> Pieces<'a, T> {
        Pieces {
            rest: self.mem,
            n,
            count: 0,
            done: self.done,
        }
    }
}

/// A [`Part`] written piece by piece ([`Part::pieces`]); what it initialised is added to the part's count when it
/// is dropped (a cursor forgotten instead leaves its pieces uncounted, and [`Uninit::finish`] panics).
pub(crate) struct Pieces<'a, T> {
    rest: &'a mut [MaybeUninit<T>],
    n: usize,
    /// Elements initialised through this cursor so far.
    count: usize,
    done: &'a AtomicUsize,
}

impl<'a, T: bytemuck::Zeroable + Copy> Pieces<'a, T> {
    /// The next piece, uninitialised; `None` once fewer than `n` elements are left.
    fn take(&mut self) -> Option<&'a mut [MaybeUninit<T>]> {
        if self.rest.len() < self.n {
            return None;
        }
        let (head, tail) = std::mem::take(&mut self.rest).split_at_mut(self.n);
        self.rest = tail;
        Some(head)
    }

    /// The next piece, a copy of `src`; `None` once fewer than `n` elements are left.
    ///
    /// # Panics
    /// If `src` is not `n` long (an internal invariant).
    pub(crate) fn next_copied(&mut self, src: &[T]) -> Option<&'a mut [T]> {
        assert_eq!(
            src.len(),
            self.n,
            "Pieces::next_copied: a piece of {} elements",
            self.n
        );
        let mem = self.take()?;
        for (m, &v) in mem.iter_mut().zip(src) {
            *m = MaybeUninit::new(v);
        }
        self.count += mem.len();
        // SAFETY: every element was written just above (`src` is as long as the piece).
        Some(unsafe { assume_init(mem) })
    }
}

impl<T> Drop for Pieces<'_, T> {
    fn drop(&mut self) {
        self.done.fetch_add(self.count, Ordering::Relaxed);
    }
}

/// `mem` as the initialised slice it has become.
///
/// # Safety
/// Every element of `mem` must be initialised.
unsafe fn assume_init<T>(mem: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the caller initialised every element.
    unsafe { &mut *(std::ptr::from_mut::<[MaybeUninit<T>]>(mem) as *mut [T]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// Parts zeroed and parts copied into piece by piece, in parallel, make up the vector; empty parts too.
    #[test]
    fn parts_written_in_parallel_make_the_vector() {
        let src: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let mut u = Uninit::<f32>::new(100);
        let parts = u.parts([40, 0, 60]);
        parts.into_par_iter().enumerate().for_each(|(i, p)| {
            if i == 0 {
                let mut pieces = p.pieces(10);
                for piece in src.chunks(10) {
                    assert!(pieces.next_copied(piece).is_some());
                }
                assert!(pieces.next_copied(&src[..10]).is_none(), "the part is full");
            } else {
                p.zeroed().fill(7.0);
            }
        });
        let v = u.finish();
        assert_eq!(&v[..40], &src[..]);
        assert!(v[40..].iter().all(|&x| x == 7.0));
        let empty = Uninit::<u8>::new(0);
        assert!(empty.finish().is_empty());
    }

    /// A part left unwritten: `finish` refuses the vector.
    #[test]
    #[should_panic(expected = "60 of 100 elements initialised")]
    fn a_part_not_written_is_a_panic() {
        let mut u = Uninit::<f32>::new(100);
        let mut parts = u.parts([40, 60]);
        parts.swap_remove(1).zeroed();
        drop(parts);
        u.finish();
    }

    /// Sizes that leave a rest of the vector in no part: a panic.
    #[test]
    #[should_panic(expected = "96 of 100 elements initialised")]
    fn a_rest_in_no_part_is_a_panic() {
        let mut u = Uninit::<f32>::new(100);
        for p in u.parts([90, 6]) {
            p.zeroed();
        }
        u.finish();
    }

    /// A part copied into piece by piece but not to its end: a panic.
    #[test]
    #[should_panic(expected = "8 of 12 elements initialised")]
    fn pieces_short_of_the_part_are_a_panic() {
        let mut u = Uninit::<f32>::new(12);
        let mut pieces = u.parts([12]).swap_remove(0).pieces(8);
        assert!(pieces.next_copied(&[1.0; 8]).is_some());
        assert!(
            pieces.next_copied(&[1.0; 8]).is_none(),
            "4 left, a piece is 8"
        );
        drop(pieces);
        u.finish();
    }

    /// A cursor forgotten, not dropped, never counts its pieces: the vector is refused, not handed out unwritten.
    #[test]
    #[should_panic(expected = "0 of 16 elements initialised")]
    fn forgotten_pieces_are_not_counted() {
        let mut u = Uninit::<f32>::new(16);
        let mut pieces = u.parts([16]).swap_remove(0).pieces(8);
        pieces.next_copied(&[1.0; 8]);
        pieces.next_copied(&[1.0; 8]);
        std::mem::forget(pieces);
        u.finish();
    }

    /// Handing the parts out twice would let an element be counted twice.
    #[test]
    #[should_panic(expected = "already handed out")]
    fn parts_are_handed_out_once() {
        let mut u = Uninit::<f32>::new(10);
        u.parts([10]).swap_remove(0).zeroed();
        u.parts([10]);
    }
}
