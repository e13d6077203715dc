#!/usr/bin/env bash
# The GPU check of a CUDA build, in one go, on a machine with an NVIDIA GPU, its driver, Python with PyTorch, and
# no Rust toolchain (docs/cuda.md, "Checking a build on a GPU"). Build on a machine with the toolkit, copy the
# binaries over, then from the repository root:
#
#   bench/gpu_check.sh BIN_DIR [FOLDER_DATA] [OUT_DIR]
#
# BIN_DIR holds `cifar` (built with --features cuda) and the two parity test binaries `model-cuda` and
# `train-cuda` (crates/model/tests/cuda.rs, crates/train/tests/cuda.rs), and optionally `cifar-cudnn` (built with
# --features cudnn), whose steps are timed too. FOLDER_DATA is an image-folder data set
# (e.g. `cargo xtask export-folder --limit-train 10000 --limit-test 2000` of the real archive) for short real-data
# runs; without it those are left out. Steps:
#   1. the GPU, the driver and the CUDA libraries the binary resolves;
#   2. the CPU-vs-CUDA parity tests (every model's forward and backward; the optimizers; short recipe runs);
#   3. `cifar bench --device cuda:0` (cnn-dnn at 64/128/512, airbench94 at 1024/256) next to PyTorch's eager
#      steps of the same recipes on the same GPU (bench/reference_seed.py, bench/airbench94_torch.py), PyTorch
#      both with its default (cuDNN may use TF32) and with plain f32 like ours;
#   4. real-data runs on the GPU: the reference recipe for 3 epochs and airbench94 (9.9 epochs) on FOLDER_DATA.
# Every log lands in OUT_DIR (default gpu-check); the last lines printed are the summary.
set -uo pipefail

bin=${1:?usage: bench/gpu_check.sh BIN_DIR [FOLDER_DATA] [OUT_DIR]}
data=${2:-}
out=${3:-gpu-check}
mkdir -p "$out"
log="$out/gpu-check.log"
: >"$log"
summary=()
say() { echo "$*" | tee -a "$log"; }
step() { say "=== $* ($(date -u +%H:%M:%S) UTC)"; }
# Runs a command (stopped after STEP_TIMEOUT seconds, default 240: one hang must not eat the rest) with its output
# appended to the log; records its exit status (124: timed out) and wall time in the summary.
run() {
    local name=$1
    shift
    local t0=$SECONDS
    say "--- $name: $*"
    timeout "${STEP_TIMEOUT:-240}" "$@" >>"$log" 2>&1
    local rc=$?
    summary+=("$(printf '%-34s rc %-3s %4d s' "$name" "$rc" $((SECONDS - t0)))")
    return $rc
}

step "GPU and driver"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$log"

# cuBLAS, cuRAND and NVRTC: a toolkit's when CUDA_PATH is set, else the NVIDIA wheels next to PyTorch. The
# driver's libcuda.so.1 comes from the system.
libdirs=()
if [[ -n "${CUDA_PATH:-}" ]]; then
    libdirs+=("$CUDA_PATH/lib64" "$CUDA_PATH/lib")
fi
if nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__) if nvidia.__file__ else list(nvidia.__path__)[0])' 2>/dev/null); then
    while IFS= read -r d; do libdirs+=("$d"); done < <(find "$nv" -name 'lib*.so*' \( -name 'libcublas*' -o -name 'libcurand*' -o -name 'libnvrtc*' -o -name 'libcudart*' -o -name 'libcudnn.so*' \) -printf '%h\n' | sort -u)
fi
LD_LIBRARY_PATH=$(IFS=:; echo "${libdirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$bin/cifar" | grep -E 'cuda|cublas|curand|nvrtc|not found' | tee -a "$log"

step "CPU-vs-CUDA parity tests"
run "model parity (model-cuda)" "$bin/model-cuda" --nocapture --test-threads 1
run "train parity (train-cuda)" "$bin/train-cuda" --nocapture --test-threads 1
grep -E 'relative error|train loss per epoch|^test |test result|panicked|skipped' "$log" | tail -40

step "Throughput: ours and PyTorch's on this GPU"
run "cifar bench cnn-dnn" "$bin/cifar" bench --device cuda:0 --model cnn-dnn --train-batches 64,128,512 \
    --steps 20 --repeats 5 --json
run "cifar bench airbench94" "$bin/cifar" bench --device cuda:0 --model airbench94 --train-batches 1024,256 \
    --steps 10 --repeats 5 --json
if [[ -x "$bin/cifar-cudnn" ]]; then
    run "cifar-cudnn bench cnn-dnn" "$bin/cifar-cudnn" bench --device cuda:0 --model cnn-dnn \
        --train-batches 64,128,512 --steps 20 --repeats 5 --json
    run "cifar-cudnn bench airbench94" "$bin/cifar-cudnn" bench --device cuda:0 --model airbench94 \
        --train-batches 1024,256 --steps 10 --repeats 5 --json
fi
for tf in "" --no-tf32; do
    run "torch cnn-dnn ${tf:-default}" python3 bench/reference_seed.py --bench --device cuda --archive none \
        --batches 64,128,512 --steps 20 --warmup 10 $tf
    run "torch airbench94 ${tf:-default}" python3 bench/airbench94_torch.py --bench --device cuda --archive none \
        --batch 1024,256 --steps 10 --warmup 6 $tf
done
grep -E '^\{"bench"' "$log" >"$out/bench.jsonl"
python3 - "$log" <<'EOF' | tee -a "$log"
import json, sys
rows, ours = [], "candle f32"
for l in open(sys.argv[1]):
    if l.startswith("--- "):  # the step that printed the rows below
        ours = "candle + cuDNN f32" if "cifar-cudnn" in l else "candle f32"
    if not l.startswith('{"bench"'):
        continue
    r = json.loads(l)
    r["_ours"] = ours
    rows.append(r)
print(f"{'side':<9}{'model':<12}{'bench':<10}{'batch':>6}  {'layout / tf32':<22}{'img/s':>10}")
for r in rows:
    side = "torch" if "torch" in r else "ours"
    how = f"{r.get('layout', '')} tf32={r.get('cudnn_tf32', '')}" if side == "torch" else r["_ours"]
    rate = r.get("img_per_s") or r.get("images_per_s") or r.get("median_img_per_s")
    print(f"{side:<9}{r.get('model', ''):<12}{r['bench']:<10}{r.get('batch', ''):>6}  {str(how)[:22]:<22}"
          f"{rate if rate is None else round(rate):>10}")
EOF

if [[ -n "$data" ]]; then
    step "Real data on the GPU: $data"
    run "train reference 3 epochs" "$bin/cifar" train --dataset folder --data-dir "$data" --preset reference \
        --epochs 3 --seed 0 --device cuda:0 --out "$out/reference-cuda"
    run "train airbench94" "$bin/cifar" train --dataset folder --data-dir "$data" --preset airbench94 \
        --seed 0 --device cuda:0 --out "$out/airbench94-cuda"
    for r in reference-cuda airbench94-cuda; do
        [[ -f "$out/$r/metrics.csv" ]] && { say "--- $r/metrics.csv"; tee -a "$log" <"$out/$r/metrics.csv"; }
    done
    grep -hE 'test accuracy|test acc|wall|elapsed' "$log" | tail -8
fi

step "Summary"
printf '%s\n' "${summary[@]}" | tee -a "$log"
