//! The one place that asks the CPU which vector instructions it has: every kernel with several builds (AVX-512,
//! AVX2, the portable one) picks by [`Isa::detect`], so all of them agree on what each level means.
//!
//! `CPU_OPS_MAX_ISA` ([`MAX_ISA_VAR`]: `avx2` or `baseline`) caps the level, so that an AVX-512 machine runs
//! exactly the builds an older CPU would (bf16 included: it needs AVX-512). The patched `gemm-common` of this
//! workspace (vendor/README.md) honours the same variable for candle's and this crate's f32 GEMMs. Which build
//! of each kernel ran is recorded ([`builds_run`]), so that a caller can show and check it.

use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that caps [`Isa::detect`]: `avx2`, `baseline` (or `avx512`: no cap), read once per
/// process.
pub const MAX_ISA_VAR: &str = "CPU_OPS_MAX_ISA";

/// The instruction-set level a kernel build is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable code (whatever the compiler's target baseline allows).
    Baseline,
    /// AVX2 with FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F, BW and VL with AVX2 and FMA (x86-64-v4).
    Avx512,
}

impl Isa {
    /// The level the kernels run at: the highest this CPU has, capped by `CPU_OPS_MAX_ISA`; decided once per
    /// process.
    pub fn detect() -> Isa {
        static DETECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            let hw = Isa::hardware();
            match Isa::cap() {
                Ok(Some(cap)) => hw.min(cap),
                _ => hw,
            }
        })
    }

    /// The highest level this CPU has, whatever the cap.
    pub fn hardware() -> Isa {
        static HW: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *HW.get_or_init(detect_now)
    }

    /// The cap `CPU_OPS_MAX_ISA` sets: `Ok(None)` when unset, an error naming the variable for a value that is
    /// not a level's name (then no cap applies).
    pub fn cap() -> Result<Option<Isa>, crate::Error> {
        let value = match std::env::var(MAX_ISA_VAR) {
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Ok(v) if v.trim().is_empty() => return Ok(None),
            Ok(v) => v,
            Err(std::env::VarError::NotUnicode(v)) => v.to_string_lossy().into_owned(),
        };
        Isa::from_name(value.trim())
            .map(Some)
            .ok_or(crate::Error::Env {
                name: MAX_ISA_VAR,
                value,
                expected: "avx512, avx2 or baseline (or unset)",
            })
    }

    /// The level named `baseline`, `avx2` or `avx512` (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Isa> {
        [Isa::Baseline, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name))
    }

    /// The level's name: `baseline`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernel families whose build [`builds_run`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFamily {
    /// The fused conv → pool ops' sparse backward.
    SparseBackward,
    /// The 2x2 max-pool (and the fused ops' pool).
    Pool,
    /// The whitening (patch) convolution.
    PatchConv,
    /// GELU and the fused BatchNorm + GELU.
    Gelu,
    /// The Winograd transforms (F(2x2, 3x3): AVX-512 or AVX2; F(4x4, 3x3): AVX2).
    Winograd,
    /// The bf16 GEMM (AVX512-BF16 only).
    Bf16Gemm,
}

impl KernelFamily {
    /// Every family, in report order.
    pub const ALL: [KernelFamily; 6] = [
        KernelFamily::SparseBackward,
        KernelFamily::Pool,
        KernelFamily::PatchConv,
        KernelFamily::Gelu,
        KernelFamily::Winograd,
        KernelFamily::Bf16Gemm,
    ];

    /// The family's name in reports (`sparse-backward`, `pool`, `patch-conv`, `gelu`, `winograd`, `bf16-gemm`).
    pub fn name(self) -> &'static str {
        match self {
            KernelFamily::SparseBackward => "sparse-backward",
            KernelFamily::Pool => "pool",
            KernelFamily::PatchConv => "patch-conv",
            KernelFamily::Gelu => "gelu",
            KernelFamily::Winograd => "winograd",
            KernelFamily::Bf16Gemm => "bf16-gemm",
        }
    }
}

/// One bit per level (1 << level) for each family, set when a build of that level is picked.
static RUN: [AtomicU8; 6] = [const { AtomicU8::new(0) }; 6];

/// Notes that `family`'s `isa` build was picked (the dispatch points call it).
#[inline]
pub(crate) fn record(family: KernelFamily, isa: Isa) {
    RUN[family as usize].fetch_or(1 << isa as u8, Ordering::Relaxed);
}

/// Notes that `family`'s build for [`Isa::detect`]'s level was picked (families with a build for every level).
#[inline]
pub(crate) fn record_detected(family: KernelFamily) {
    record(family, Isa::detect());
}

/// The builds this process has picked so far: for each kernel family that ran, the levels of its builds (a family
/// runs one level per process, unless a test calls builds directly).
pub fn builds_run() -> Vec<(KernelFamily, Vec<Isa>)> {
    KernelFamily::ALL
        .into_iter()
        .filter_map(|f| {
            let bits = RUN[f as usize].load(Ordering::Relaxed);
            let levels: Vec<Isa> = [Isa::Baseline, Isa::Avx2, Isa::Avx512]
                .into_iter()
                .filter(|&i| bits & (1 << i as u8) != 0)
                .collect();
            (!levels.is_empty()).then_some((f, levels))
        })
        .collect()
}

fn detect_now() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let v3 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        if v3
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
        {
            return Isa::Avx512;
        }
        if v3 {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_detection_is_stable() {
        assert!(Isa::Baseline < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
        assert_eq!(Isa::detect(), Isa::detect());
        assert!(Isa::detect() <= Isa::hardware());
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::env::var_os(MAX_ISA_VAR).is_none()
        {
            assert_eq!(Isa::detect(), Isa::Avx512);
        }
        for i in [Isa::Baseline, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::from_name(i.name()), Some(i));
        }
        assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse4"), None);
    }
}
