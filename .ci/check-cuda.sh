#!/usr/bin/env bash
# Type-check the CUDA build (`--features cuda`) without a GPU or a CUDA toolkit.
#
# candle-kernels' build script runs nvcc even for `cargo check`, so a stub nvcc
# (.ci/nvcc-stub/nvcc) that writes empty PTX / object / archive files stands in
# for the toolkit. `cargo check` never links, so nothing ever needs the real
# kernels; every line of Rust behind the `cuda` feature is still type-checked.
#
# Also checks the CPU-vs-CUDA parity tests of the model and train crates (compiled only with the feature).
#
# Usage: .ci/check-cuda.sh [--cudnn] [extra cargo args...]
#   --cudnn   also check with the `cudnn` feature (needs no cuDNN headers either).
# Environment:
#   CARGO_TARGET_DIR_CUDA  target dir to use (default: target-cuda, git-ignored).
#                          Never point it at the dir of a real CUDA build: the
#                          stub's empty kernels would be reused by cudaforge's cache.
# Exit status: 0 when every check passed, non-zero otherwise.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

stub_dir="$repo_root/.ci/nvcc-stub"
if [[ ! -x "$stub_dir/nvcc" ]]; then
    echo "check-cuda: FAILED: $stub_dir/nvcc is missing or not executable" >&2
    exit 2
fi

features=(cuda)
cargo_args=()
for arg in "$@"; do
    case "$arg" in
        --cudnn) features+=(cudnn) ;;
        *) cargo_args+=("$arg") ;;
    esac
done

# cudaforge looks for nvcc in $NVCC first, then on PATH, then in $CUDA_HOME,
# $CUDA_PATH and /usr/local/cuda; point all of them at the stub so a real toolkit
# installed on the machine is never picked up by accident.
export PATH="$stub_dir:$PATH"
export NVCC="$stub_dir/nvcc"
export CUDA_HOME="$repo_root/.ci"
export CUDA_PATH="$repo_root/.ci"
unset CUDA_ROOT CUDA_TOOLKIT_ROOT_DIR NVCC_CCBIN
# cudarc: skip the `nvcc --version` probe (13.4 is the newest cudarc 0.19.10 knows).
export CUDARC_CUDA_VERSION=13040
# cudaforge / candle-kernels: skip the `nvidia-smi` probe.
export CUDA_COMPUTE_CAP=90
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_CUDA:-target-cuda}"

status=0
# The model and train packages are checked in the same cargo call as cli: their CPU-vs-CUDA parity tests
# (crates/model/tests/cuda.rs, crates/train/tests/cuda.rs) exist only with the feature, and `-p cli --all-targets`
# does not reach other packages' tests. One package set for every call: a call with another set unifies features
# differently and compiled much of the tree again (2 min of a 2-core CI run, when they were checked apart).
packages=(-p cli -p cifar10-model -p cifar10-train)
for feature in "${features[@]}"; do
    echo "check-cuda: cargo check ${packages[*]} --features $feature --all-targets (target dir: $CARGO_TARGET_DIR)"
    start=$SECONDS
    if cargo check "${packages[@]}" --features "$feature" --all-targets ${cargo_args[@]+"${cargo_args[@]}"}; then
        echo "check-cuda: feature '$feature' type-checks ($((SECONDS - start)) s)"
    else
        echo "check-cuda: feature '$feature' FAILED to type-check ($((SECONDS - start)) s)" >&2
        status=1
    fi
done

if [[ $status -eq 0 ]]; then
    echo "check-cuda: OK: cli and the parity tests type-check with features: ${features[*]}"
else
    echo "check-cuda: FAILED: see the cargo errors above" >&2
fi
exit $status
