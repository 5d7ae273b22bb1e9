#!/bin/bash
# gpu_bundle.sh - pack what a GPU machine without this project's Debian packages needs for
# scripts/gpu_check.sh: the programs, the CUDA test programs, the CUDA module, and the shared
# libraries they load except the C runtime and CUDA's own (the GPU machine brings those), in one
# xz archive (about 25 MiB; a device tool that carries files may cap them, e.g. at 64 MiB).
#
# Usage: scripts/gpu_bundle.sh [BUILD (build)] [ARCHIVE (build-gpu.tar.xz)]
# BUILD must have been configured with the CUDA toolkit (BUILD/libhgnn-cuda.so). Exit 2 when it
# was not, or a file is missing.
set -euo pipefail
build=${1:-build}
out=${2:-build-gpu.tar.xz}
if [ ! -f "$build/libhgnn-cuda.so" ]; then
    echo "gpu_bundle: $build/libhgnn-cuda.so: missing (configure the build with the CUDA toolkit)" >&2
    exit 2
fi
progs=(hgnn-lm hgnn-mt hgnn-train hgnn-gengraph hgnn-bench-lm hgnn-bench-spmm)
tests=(test_cuda test_cuda_layer test_cuda_lorentz test_cuda_nn test_cuda_model)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/gpu/bin" "$tmp/gpu/lib"
for f in "${progs[@]/#/$build/}" "${tests[@]/#/$build/tests/}" "$build/libhgnn-cuda.so"; do
    if [ ! -f "$f" ]; then
        echo "gpu_bundle: $f: missing (run ninja -C $build first)" >&2
        exit 2
    fi
    cp "$f" "$tmp/gpu/bin/"
done
# every library ldd resolves, but the C runtime (glibc, libgcc_s, libstdc++) and CUDA's; one it
# cannot resolve would leave the bundle incomplete
for f in "$tmp"/gpu/bin/*; do ldd "$f"; done > "$tmp/ldd.txt"
if grep -q "not found" "$tmp/ldd.txt"; then
    echo "gpu_bundle: a library is missing here: $(grep "not found" "$tmp/ldd.txt" | sort -u | tr -s ' \t\n' ' ')" >&2
    exit 2
fi
awk '$3 ~ /^\// {print $3}' "$tmp/ldd.txt" | sort -u |
    grep -Ev '/(libc|libm|libpthread|libdl|librt|libgcc_s|libstdc\+\+)\.so|/ld-linux|/cuda[^/]*/|/libcuda|/lib(cublas|cusparse|cusolver|nvJitLink)' |
    while read -r lib; do cp -L "$lib" "$tmp/gpu/lib/"; done
tar -C "$tmp" -cJf "$out" gpu
echo "gpu_bundle: $out: $(du -h "$out" | cut -f1), $(find "$tmp/gpu/bin" -type f | wc -l) programs, $(find "$tmp/gpu/lib" -type f | wc -l) libraries"
