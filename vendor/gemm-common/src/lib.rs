#![cfg_attr(not(feature = "std"), no_std)]

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

#[cfg(feature = "wasm-simd128-enable")]
pub const DEFAULT_WASM_SIMD128: bool = true;

#[cfg(not(feature = "wasm-simd128-enable"))]
pub const DEFAULT_WASM_SIMD128: bool = false;

static WASM_SIMD128: AtomicBool = AtomicBool::new(DEFAULT_WASM_SIMD128);

#[inline]
pub fn get_wasm_simd128() -> bool {
    WASM_SIMD128.load(Relaxed)
}
#[inline]
pub fn set_wasm_simd128(enable: bool) {
    WASM_SIMD128.store(enable, Relaxed)
}

extern crate alloc;

pub mod cache;

pub mod gemm;
pub mod gemv;
pub mod gevv;

pub mod horizontal_microkernel;
pub mod microkernel;

pub mod pack_operands;
pub mod simd;

pub use pulp;

#[derive(Copy, Clone, Debug)]
pub enum Parallelism {
    None,
    #[cfg(feature = "rayon")]
    Rayon(usize),
}

pub struct Ptr<T: ?Sized>(pub *mut T);

impl<T: ?Sized> Clone for Ptr<T> {
    #[inline]
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Ptr<T> {}

unsafe impl<T: ?Sized> Send for Ptr<T> {}
unsafe impl<T: ?Sized> Sync for Ptr<T> {}

impl<T> Ptr<T> {
    #[inline(always)]
    pub fn wrapping_offset(self, offset: isize) -> Self {
        Ptr::<T>(self.0.wrapping_offset(offset))
    }
    #[inline(always)]
    pub fn wrapping_add(self, offset: usize) -> Self {
        Ptr::<T>(self.0.wrapping_add(offset))
    }
}

#[cfg(not(feature = "std"))]
#[macro_export]
macro_rules! feature_detected {
    ($tt: tt) => {
        cfg!(feature = $tt)
    };
}

// cifar10-rs patch (see vendor/README.md): the run-time dispatch also honours `CPU_OPS_MAX_ISA`, so that one
// environment variable makes this crate pick the kernels an AVX2-only (or older) CPU would run.
#[cfg(all(feature = "std", any(target_arch = "x86", target_arch = "x86_64")))]
#[macro_export]
macro_rules! feature_detected {
    ($tt: tt) => {
        (::std::arch::is_x86_feature_detected!($tt) && $crate::isa_cap::allows($tt))
    };
}

/// `CPU_OPS_MAX_ISA` (cifar10-rs patch): `avx2` hides the AVX-512 features from the dispatch, `baseline` also AVX2
/// and FMA; unset or `avx512`, nothing is hidden.
#[cfg(all(feature = "std", any(target_arch = "x86", target_arch = "x86_64")))]
#[doc(hidden)]
pub mod isa_cap {
    /// 2: everything allowed, 1: up to AVX2 + FMA, 0: neither.
    fn level() -> u8 {
        static LEVEL: ::std::sync::OnceLock<u8> = ::std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| match ::std::env::var("CPU_OPS_MAX_ISA").as_deref() {
            Ok("avx2") => 1,
            Ok("baseline") => 0,
            _ => 2,
        })
    }

    /// Whether the dispatch may use `feature`.
    pub fn allows(feature: &str) -> bool {
        match level() {
            2 => true,
            1 => !feature.starts_with("avx512"),
            _ => !(feature.starts_with("avx") || feature == "fma" || feature == "f16c"),
        }
    }
}
#[cfg(all(feature = "std", target_arch = "aarch64"))]
#[macro_export]
macro_rules! feature_detected {
    ($tt: tt) => {
        ::std::arch::is_aarch64_feature_detected!($tt)
    };
}
#[cfg(all(feature = "std", target_family = "wasm"))]
#[macro_export]
macro_rules! feature_detected {
    ("simd128") => {
        $crate::get_wasm_simd128()
    };
}
