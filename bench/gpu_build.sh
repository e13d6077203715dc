#!/usr/bin/env bash
# Builds the CUDA binaries that bench/gpu_check.sh runs, on a machine with no GPU, no NVIDIA driver and no
# system CUDA toolkit (docs/cuda.md, "Checking a build on a GPU"):
#
#   bench/gpu_build.sh TOOLKIT_DIR OUT_BIN_DIR [PYTHON]
#
# 1. pip-installs CUDA's compiler, runtime, CCCL headers, cuBLAS, cuRAND and NVRTC wheels into TOOLKIT_DIR
#    (about 1.2 GB; skipped when TOOLKIT_DIR/nvidia/cu13/bin/nvcc exists). CUDA_TOOLKIT_VERSION (default 13.0)
#    must be no newer than the CUDA version of the GPU machine's driver: the kernels are shipped as PTX, which a
#    driver older than the compiler refuses.
# 2. writes a stub libcuda.so (every driver entry point cudarc declares, each returning CUDA_ERROR_NO_DEVICE;
#    soname libcuda.so.1) for the linker: on the GPU machine the driver's real one is loaded instead. Loaded on
#    purpose where there is no driver (LD_LIBRARY_PATH=TOOLKIT_DIR/nvidia/cu13/lib with a libcuda.so.1 link), it
#    lets the CUDA build start as on a machine with the driver and no GPU: `--device auto` falls back to the CPU
#    and the parity tests skip.
# 3. builds `cifar` and the two CPU-vs-CUDA parity test binaries with `--features cuda` for CUDA_COMPUTE_CAP
#    (default 90: H100/H200) in CARGO_TARGET_DIR (default target-gpu, git-ignored; never target-cuda, the
#    type-check's stub kernels), and copies them, stripped, into OUT_BIN_DIR as cifar, model-cuda, train-cuda;
#    with CUDNN=1 also `cifar` with `--features cudnn` (candle's cuDNN convolutions) as cifar-cudnn, linked
#    against a stub libcudnn.so.9 made the same way (the GPU machine's cuDNN 9 is loaded at run time).
# The first build compiles candle's CUDA kernels: about 25 minutes on 2 cores.
set -euo pipefail

toolkit=${1:?usage: bench/gpu_build.sh TOOLKIT_DIR OUT_BIN_DIR [PYTHON]}
bin_out=${2:?usage: bench/gpu_build.sh TOOLKIT_DIR OUT_BIN_DIR [PYTHON]}
python=${3:-python3}
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# CUDA 13.0's wheels (a toolkit for the 580 drivers); the versions pinned so that a newer crt or nvvm is not
# pulled in beside nvcc 13.0.
case "${CUDA_TOOLKIT_VERSION:-13.0}" in
    13.0) wheels=("nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88"
                  "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85" "nvidia-cublas==13.1.0.3"
                  "nvidia-curand==10.4.0.35" "nvidia-cuda-nvrtc==13.0.88")
          cudarc_version=13000 ;;
    *) echo "gpu_build: CUDA_TOOLKIT_VERSION: expected 13.0, found ${CUDA_TOOLKIT_VERSION}" >&2; exit 2 ;;
esac
cuda="$toolkit/nvidia/cu13"
if [[ ! -x "$cuda/bin/nvcc" ]]; then
    "$python" -m pip install -q --no-deps --target "$toolkit" "${wheels[@]}"
fi
"$cuda/bin/nvcc" --version | tail -1

# The unversioned names the linker looks for.
for lib in cublas.so.13 cublasLt.so.13 curand.so.10 nvrtc.so.13 cudart.so.13; do
    ln -sf "lib$lib" "$cuda/lib/lib${lib%.so.*}.so"
done
# The link-time stub of the driver library.
cudarc_src=$(cargo metadata --format-version 1 --all-features | "$python" -c \
    'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc").rsplit("/",1)[0])')
stub_c="$toolkit/libcuda-stub.c"
grep -ohE '^\s+fn (cu[A-Za-z0-9_]+)\(' "$cudarc_src/src/driver/sys/mod.rs" | sed -E 's/^\s+fn (cu[A-Za-z0-9_]+)\(/\1/' \
    | sort -u | awk '{print "int " $1 "(void) { return 100; }"}' >"$stub_c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/libcuda.so" "$stub_c"
if [[ "${CUDNN:-0}" == 1 ]]; then
    # The same for cuDNN 9 (cudarc ships its bindings; the GPU machine's libcudnn.so.9, e.g. PyTorch's wheel,
    # is the real one): CUDNN_STATUS_NOT_INITIALIZED from every entry point.
    grep -ohE '^\s+fn (cudnn[A-Za-z0-9_]+)\(' "$cudarc_src/src/cudnn/sys/mod.rs" \
        | sed -E 's/^\s+fn (cudnn[A-Za-z0-9_]+)\(/\1/' | sort -u | awk '{print "int " $1 "(void) { return 1001; }"}' \
        >"$toolkit/libcudnn-stub.c"
    cc -shared -fPIC -Wl,-soname,libcudnn.so.9 -o "$cuda/lib/libcudnn.so" "$toolkit/libcudnn-stub.c"
fi

export CUDA_PATH="$cuda" CUDA_HOME="$cuda" PATH="$cuda/bin:$PATH" LIBRARY_PATH="$cuda/lib"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=$cudarc_version
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-gpu}
mkdir -p "$bin_out"
if [[ "${CUDNN:-0}" == 1 ]]; then
    cargo build --release -p cli --features cudnn
    strip -o "$bin_out/cifar-cudnn" "$CARGO_TARGET_DIR/release/cifar"
fi
cargo build --release -p cli --features cuda
# The parity tests: `--no-run` prints each test executable's path.
tests=$(cargo test --release --features cuda -p cifar10-model -p cifar10-train --test cuda --no-run \
    --message-format json | "$python" -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda":
        print(m["package_id"], m["executable"])')
strip -o "$bin_out/cifar" "$CARGO_TARGET_DIR/release/cifar"
while read -r id exe; do
    case "$id" in
        *model*) strip -o "$bin_out/model-cuda" "$exe" ;;
        *train*) strip -o "$bin_out/train-cuda" "$exe" ;;
    esac
done <<<"$tests"
ls -la "$bin_out"
