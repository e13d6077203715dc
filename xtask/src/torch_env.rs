//! The environment `cargo xtask bench` hands to each PyTorch process, so that PyTorch runs at its best known CPU
//! setup and every row says which one it ran with.
//!
//! * Threads: `torch.set_num_threads(--threads)` (the scripts' `--threads`), and `OMP_NUM_THREADS` /
//!   `MKL_NUM_THREADS` equal to it, so the OpenMP pool that oneDNN and inductor's C++ kernels use has the same
//!   size as ours.
//! * Allocator: PyTorch frees and re-allocates its large activations every step; glibc returns blocks above its
//!   mmap threshold to the OS each time, so every step faults its pages in again. jemalloc (Debian
//!   `libjemalloc2`) with decay off keeps them, as mimalloc with `purge_delay -1` does for us; tcmalloc
//!   (`libtcmalloc-minimal4`) with its release rate at 0 likewise, but measured slower than glibc here
//!   (docs/performance.md). `auto` preloads jemalloc when installed, else keeps glibc with tunables; `inherit`
//!   changes nothing (the setup before issue 29).
//! * Every variable that steers these is first removed from the inherited environment, and the process reports
//!   the allocator it actually mapped (the scripts read `/proc/self/maps`) and its thread count; [`TorchSetup::check_row`]
//!   refuses a row that differs from what was asked, so a missing library cannot silently fall back.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The allocator asked for on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// jemalloc when installed, else glibc with tunables.
    Auto,
    /// jemalloc preloaded, decay off (`MALLOC_CONF`).
    Jemalloc,
    /// tcmalloc (minimal) preloaded, release rate 0.
    Tcmalloc,
    /// glibc's malloc with tunables (largest mmap threshold, no trimming, transparent huge pages).
    Glibc,
    /// The inherited environment, untouched.
    Inherit,
}

/// jemalloc's settings: Intel's recommendation for PyTorch on CPUs, with decay off (freed pages are kept).
pub const JEMALLOC_CONF: &str = "oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1";
/// glibc's tunables: the largest mmap threshold glibc accepts (32 MiB), no trimming, huge pages by madvise.
pub const GLIBC_TUNABLES: &str = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184:glibc.malloc.hugetlb=1";
const JEMALLOC_LIBS: &[&str] = &["libjemalloc.so.2", "libjemalloc.so"];
const TCMALLOC_LIBS: &[&str] = &[
    "libtcmalloc_minimal.so.4",
    "libtcmalloc.so.4",
    "libtcmalloc_minimal.so",
    "libtcmalloc.so",
];

/// Variables that steer the allocator or the thread pools. All are removed from the inherited environment
/// before the setup's own are set (except under [`Allocator::Inherit`]).
pub const CONTROLLED: &[&str] = &[
    "LD_PRELOAD",
    "MALLOC_CONF",
    "GLIBC_TUNABLES",
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "TCMALLOC_RELEASE_RATE",
    "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "OMP_PROC_BIND",
    "GOMP_SPINCOUNT",
    "TORCHINDUCTOR_CACHE_DIR",
];

/// Where shared libraries are looked for: the multiarch directory of this target, then the usual others.
pub fn library_dirs() -> Vec<PathBuf> {
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    [
        multiarch.as_str(),
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
        "/lib64",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

fn find_lib(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// A resolved PyTorch setup: what the process gets and what it must report back.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchSetup {
    /// The allocator the process must report: `jemalloc`, `tcmalloc` or `glibc`; `None` under `inherit`.
    pub allocator: Option<&'static str>,
    /// The library preloaded, if any.
    pub preload: Option<PathBuf>,
    /// Threads (torch, OpenMP, MKL).
    pub threads: usize,
    /// inductor's cache directory (a fresh one per `xtask bench`, so the first compile of a run is cold).
    pub inductor_cache: Option<PathBuf>,
}

impl TorchSetup {
    /// Resolves `choice` against the libraries installed in `dirs`; an allocator asked for by name that is not
    /// installed is an error, not a fallback.
    pub fn resolve(
        choice: Allocator,
        threads: usize,
        dirs: &[PathBuf],
        inductor_cache: Option<PathBuf>,
    ) -> Result<Self> {
        let jemalloc = || find_lib(JEMALLOC_LIBS, dirs);
        let tcmalloc = || find_lib(TCMALLOC_LIBS, dirs);
        let missing = |name: &str, package: &str| {
            anyhow::anyhow!(
                "--torch-allocators {name}: no {} in {}; install it (Debian: apt-get install {package}) or ask \
                 for auto or glibc",
                if name == "jemalloc" {
                    JEMALLOC_LIBS.join(" or ")
                } else {
                    TCMALLOC_LIBS.join(" or ")
                },
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (allocator, preload) = match choice {
            Allocator::Inherit => (None, None),
            Allocator::Glibc => (Some("glibc"), None),
            Allocator::Jemalloc => (
                Some("jemalloc"),
                Some(jemalloc().ok_or_else(|| missing("jemalloc", "libjemalloc2"))?),
            ),
            Allocator::Tcmalloc => (
                Some("tcmalloc"),
                Some(tcmalloc().ok_or_else(|| missing("tcmalloc", "libtcmalloc-minimal4"))?),
            ),
            Allocator::Auto => match jemalloc() {
                Some(p) => (Some("jemalloc"), Some(p)),
                None => (Some("glibc"), None),
            },
        };
        if threads == 0 {
            bail!("--threads: expected at least 1, found 0");
        }
        Ok(Self {
            allocator,
            preload,
            threads,
            inductor_cache,
        })
    }

    /// The variables this setup sets (after removing every [`CONTROLLED`] one, except under `inherit`).
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let Some(allocator) = self.allocator else {
            return Vec::new();
        };
        let threads = OsString::from(self.threads.to_string());
        let mut env = vec![
            ("OMP_NUM_THREADS", threads.clone()),
            ("MKL_NUM_THREADS", threads),
        ];
        if let Some(p) = &self.preload {
            env.push(("LD_PRELOAD", p.clone().into_os_string()));
        }
        match allocator {
            "jemalloc" => env.push(("MALLOC_CONF", JEMALLOC_CONF.into())),
            "tcmalloc" => {
                env.push(("TCMALLOC_RELEASE_RATE", "0".into()));
                // tcmalloc prints a line for every allocation above 1 GiB by default.
                env.push((
                    "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD",
                    "1099511627776".into(),
                ));
            }
            _ => env.push(("GLIBC_TUNABLES", GLIBC_TUNABLES.into())),
        }
        if let Some(d) = &self.inductor_cache {
            env.push(("TORCHINDUCTOR_CACHE_DIR", d.clone().into_os_string()));
        }
        env
    }

    /// Sets up `cmd`'s environment: every controlled variable removed, then this setup's set.
    pub fn apply(&self, cmd: &mut Command) {
        if self.allocator.is_none() {
            return;
        }
        for v in CONTROLLED {
            cmd.env_remove(v);
        }
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
    }

    /// The name rows carry: the allocator, or `inherited`.
    pub fn name(&self) -> &'static str {
        self.allocator.unwrap_or("inherited")
    }

    /// Refuses a PyTorch JSON row whose reported allocator or thread count is not this setup's.
    pub fn check_row(&self, row: &serde_json::Value, script: &Path) -> Result<()> {
        let threads = row["threads"].as_u64().with_context(|| {
            format!(
                "{}: a bench row without \"threads\" (an older script?): {row}",
                script.display()
            )
        })?;
        if threads != self.threads as u64 {
            bail!(
                "{}: asked for {} threads, the PyTorch process runs {threads}",
                script.display(),
                self.threads
            );
        }
        let Some(want) = self.allocator else {
            return Ok(());
        };
        let got = row["allocator"].as_str().with_context(|| {
            format!(
                "{}: a bench row without \"allocator\" (an older script?): {row}",
                script.display()
            )
        })?;
        if got != want {
            bail!(
                "{}: asked for {want}{}, the PyTorch process runs {got}",
                script.display(),
                self.preload
                    .as_ref()
                    .map(|p| format!(" (LD_PRELOAD={})", p.display()))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// The 1-minute load average (`/proc/loadavg`), where the system has one: printed next to every figure, since
/// the machine may be shared and PyTorch's OpenMP threads slow down far more than ours when cores are taken.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// The environment changes `cmd` carries: `Some(value)` set, `None` removed.
    fn envs(cmd: &Command) -> BTreeMap<String, Option<String>> {
        cmd.get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    fn lib_dir(names: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for n in names {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        d
    }

    #[test]
    fn jemalloc_is_preloaded_with_its_settings_and_the_threads() {
        let d = lib_dir(&["libjemalloc.so.2", "libtcmalloc_minimal.so.4"]);
        let cache = PathBuf::from("cache-dir");
        let s = TorchSetup::resolve(
            Allocator::Auto,
            2,
            &[d.path().to_path_buf()],
            Some(cache.clone()),
        )
        .unwrap();
        assert_eq!(s.allocator, Some("jemalloc"));
        let mut cmd = Command::new("python3");
        s.apply(&mut cmd);
        let e = envs(&cmd);
        let lib = d.path().join("libjemalloc.so.2");
        assert_eq!(e["LD_PRELOAD"].as_deref(), Some(lib.to_str().unwrap()));
        assert_eq!(e["MALLOC_CONF"].as_deref(), Some(JEMALLOC_CONF));
        assert!(JEMALLOC_CONF.contains("dirty_decay_ms:-1"));
        assert_eq!(e["OMP_NUM_THREADS"].as_deref(), Some("2"));
        assert_eq!(e["MKL_NUM_THREADS"].as_deref(), Some("2"));
        assert_eq!(e["TORCHINDUCTOR_CACHE_DIR"].as_deref(), Some("cache-dir"));
        // Whatever the caller's environment holds, glibc's tunables and tcmalloc's settings do not leak in.
        assert_eq!(e["GLIBC_TUNABLES"], None);
        assert_eq!(e["TCMALLOC_RELEASE_RATE"], None);
        assert_eq!(e["MALLOC_ARENA_MAX"], None);
        for v in CONTROLLED {
            assert!(e.contains_key(*v), "{v} neither set nor removed");
        }
    }

    #[test]
    fn tcmalloc_by_name_and_glibc_tunables_when_jemalloc_is_missing() {
        let d = lib_dir(&["libtcmalloc_minimal.so.4"]);
        let s =
            TorchSetup::resolve(Allocator::Tcmalloc, 3, &[d.path().to_path_buf()], None).unwrap();
        assert_eq!(s.allocator, Some("tcmalloc"));
        let mut cmd = Command::new("python3");
        s.apply(&mut cmd);
        let e = envs(&cmd);
        assert!(
            e["LD_PRELOAD"]
                .as_deref()
                .unwrap()
                .ends_with("libtcmalloc_minimal.so.4")
        );
        assert_eq!(e["TCMALLOC_RELEASE_RATE"].as_deref(), Some("0"));
        assert_eq!(e["MALLOC_CONF"], None);
        assert_eq!(e["OMP_NUM_THREADS"].as_deref(), Some("3"));

        // auto does not pick tcmalloc (slower than tuned glibc here).
        let s = TorchSetup::resolve(Allocator::Auto, 2, &[d.path().to_path_buf()], None).unwrap();
        assert_eq!((s.allocator, s.preload.clone()), (Some("glibc"), None));
        let mut cmd = Command::new("python3");
        s.apply(&mut cmd);
        let e = envs(&cmd);
        assert_eq!(e["LD_PRELOAD"], None);
        assert_eq!(e["GLIBC_TUNABLES"].as_deref(), Some(GLIBC_TUNABLES));
    }

    #[test]
    fn an_allocator_asked_for_by_name_must_be_installed() {
        let empty = lib_dir(&[]);
        let dirs = [empty.path().to_path_buf()];
        let e = TorchSetup::resolve(Allocator::Jemalloc, 2, &dirs, None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("libjemalloc.so.2") && msg.contains("libjemalloc2"),
            "{msg}"
        );
        let e = TorchSetup::resolve(Allocator::Tcmalloc, 2, &dirs, None).unwrap_err();
        assert!(e.to_string().contains("libtcmalloc-minimal4"), "{e}");
        assert!(TorchSetup::resolve(Allocator::Glibc, 0, &dirs, None).is_err());
    }

    #[test]
    fn inherit_leaves_the_environment_alone() {
        let s = TorchSetup::resolve(Allocator::Inherit, 2, &[], None).unwrap();
        let mut cmd = Command::new("python3");
        s.apply(&mut cmd);
        assert!(envs(&cmd).is_empty());
        assert_eq!(s.name(), "inherited");
    }

    #[test]
    fn rows_that_ran_another_allocator_or_thread_count_are_refused() {
        let d = lib_dir(&["libjemalloc.so.2"]);
        let s =
            TorchSetup::resolve(Allocator::Jemalloc, 2, &[d.path().to_path_buf()], None).unwrap();
        let script = Path::new("bench/airbench94_torch.py");
        assert!(
            s.check_row(&json!({"allocator": "jemalloc", "threads": 2}), script)
                .is_ok()
        );
        let e = s
            .check_row(&json!({"allocator": "glibc", "threads": 2}), script)
            .unwrap_err();
        assert!(e.to_string().contains("asked for jemalloc"), "{e}");
        assert!(e.to_string().contains("runs glibc"), "{e}");
        let e = s
            .check_row(&json!({"allocator": "jemalloc", "threads": 16}), script)
            .unwrap_err();
        assert!(e.to_string().contains("runs 16"), "{e}");
        assert!(s.check_row(&json!({"threads": 2}), script).is_err());
        assert!(
            s.check_row(&json!({"allocator": "jemalloc"}), script)
                .is_err()
        );
        // `inherit` checks the threads only.
        let i = TorchSetup::resolve(Allocator::Inherit, 2, &[], None).unwrap();
        assert!(
            i.check_row(&json!({"allocator": "glibc", "threads": 2}), script)
                .is_ok()
        );
        assert!(
            i.check_row(&json!({"allocator": "glibc", "threads": 1}), script)
                .is_err()
        );
    }
}
