#!/bin/bash
# gpu_check.sh - the GPU checks in one call, on a machine with an NVIDIA GPU, from the repository
# root: every CUDA test program against the real backend (each CUDA op against its CPU twin),
# tests/test_device.py with the real programs (hgnn-lm and hgnn-mt on the device against the
# CPU, bf16, fused attention), then scripts/bench_gpu.py (CPU and GPU side by side). Everything
# is written under OUT: nvidia-smi.txt, one log per check, bench_gpu.md/.json, summary.txt (one
# line per check: its exit status; 77 = skipped, no device).
#
# Usage: scripts/gpu_check.sh [SOURCE (build-gpu.tar.xz, else build)] [OUT ($OUT, else gpu-check)]
# SOURCE: the archive of scripts/gpu_bundle.sh (for a machine without this project's Debian
# packages: it is unpacked and its libraries put on LD_LIBRARY_PATH), or a build directory
# configured with the CUDA toolkit. Environment: BENCH=0 skips the benchmark; BENCH_ARGS (default
# "--epochs 30 --sizes 1e4,1e5,1e6") are handed to bench_gpu.py; CHECK_TIMEOUT (600) bounds each
# check in seconds. Exit: 0 when every check passed or skipped, 1 otherwise, 2 on bad usage.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-}
if [ -z "$src" ]; then
    if [ -f "$root/build-gpu.tar.xz" ]; then src=$root/build-gpu.tar.xz; else src=$root/build; fi
fi
out=${2:-${OUT:-gpu-check}}
limit=${CHECK_TIMEOUT:-600}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -f "$src" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    tar -C "$work" -xJf "$src" || { echo "gpu_check: $src: not an archive of gpu_bundle.sh" >&2; exit 2; }
    progs=$work/gpu/bin
    tests=$work/gpu/bin
    export LD_LIBRARY_PATH=$work/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
elif [ -d "$src" ]; then
    progs=$(cd "$src" && pwd)
    tests=$progs/tests
else
    echo "gpu_check: $src: no such archive or build directory" >&2
    exit 2
fi
if [ ! -f "$progs/libhgnn-cuda.so" ]; then
    echo "gpu_check: $progs/libhgnn-cuda.so: missing (a build without the CUDA toolkit?)" >&2
    exit 2
fi
export HGNN_CUDA_MODULE=$progs/libhgnn-cuda.so
export HGNN_DATA_DIR=$root/datasets/data
export CMOCKA_MESSAGE_OUTPUT=stdout
: > "$out/summary.txt"
failed=0

check() { # name command...: run it with its log in OUT/name.log, its status in summary.txt
    local name=$1
    shift
    local t0=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc ($((SECONDS - t0)) s)" | tee -a "$out/summary.txt"
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then failed=1; fi
}

{ nvidia-smi || echo "nvidia-smi: not available"; } > "$out/nvidia-smi.txt" 2>&1
for t in test_cuda test_cuda_layer test_cuda_lorentz test_cuda_nn test_cuda_model; do
    check "$t" "$tests/$t"
done
check test_device python3 "$root/tests/test_device.py" "$progs/hgnn-lm" "$progs/hgnn-lm" \
    "$progs/hgnn-mt" "$progs/hgnn-mt" "$root"
if [ "${BENCH:-1}" != 0 ]; then
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of options
    check bench_gpu python3 "$root/scripts/bench_gpu.py" --build "$progs" \
        ${BENCH_ARGS:---epochs 30 --sizes 1e4,1e5,1e6} --out "$out/bench_gpu.md"
fi
exit $failed
