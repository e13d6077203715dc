#!/usr/bin/env bash
# The 64-bit ARM build (aarch64 Linux: ARM laptops, Graviton, Raspberry Pi 5), checked from an x86-64 machine.
#
# 1. `cargo clippy --target aarch64-unknown-linux-gnu --workspace --all-targets -D warnings`: every crate
#    compiles for ARM, without the x86-64 kernels (each sits behind `cfg(target_arch = "x86_64")`), and nothing
#    that only the x86-64 paths use is left unused there.
# 2. `cargo test --target aarch64-unknown-linux-gnu -p candle-cpu-ops -p cifar10-model` under qemu-user: the
#    kernels' portable builds (what an ARM CPU runs) against the reference ops, and the models on them, the same
#    tests x86-64 runs (~5 min here, most of it compiling).
#
# Needs the Rust target (rustup), a cross C compiler (two dependencies' build scripts compile C: ring, mimalloc)
# and qemu-user; as root with apt-get it installs the missing Debian packages (gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user). Without them it says what is missing and exits 0 (SKIPPED), as the other
# optional checks do; a failed clippy or test exits non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -x "$target" >/dev/null; then
  timeout 300 rustup target add "$target" || true
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null) \
      || echo "could not install gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user"
  fi
fi
missing=()
rustup target list --installed 2>/dev/null | grep -x "$target" >/dev/null || missing+=("the Rust target $target")
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=("aarch64-linux-gnu-gcc")
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIPPED: the aarch64 checks need ${missing[*]}"
  exit 0
fi

export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"

echo "aarch64: cargo clippy --target $target --workspace --all-targets -- -D warnings"
cargo clippy --target "$target" --workspace --all-targets -- -D warnings

if command -v qemu-aarch64 >/dev/null 2>&1; then
  echo "aarch64: cargo test --target $target -p candle-cpu-ops -p cifar10-model (under qemu-aarch64)"
  cargo test --target "$target" -p candle-cpu-ops -p cifar10-model
else
  echo "SKIPPED: no qemu-aarch64, so the cpu-ops and model tests did not run for aarch64"
fi
