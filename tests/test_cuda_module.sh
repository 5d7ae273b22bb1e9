#!/bin/sh
# The GPU backend is a module loaded at run time: the program links none of the CUDA libraries,
# and --device cuda without a loadable module is one clear line and exit status 2.
# Usage: test_cuda_module.sh HGNN_TRAIN
BIN=$1
fail=0
if command -v ldd >/dev/null 2>&1; then
    if ldd "$BIN" | grep -E 'libcuda|libcublas|libcusparse|libcusolver|libcudart'; then
        echo "FAIL: $BIN links CUDA libraries"
        fail=1
    else
        echo "ok: $BIN links no CUDA library"
    fi
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for module in /nonexistent/libhgnn-cuda.so "$TMP/empty.so"; do
    : >"$TMP/empty.so" # a file that is not a loadable module
    HGNN_CUDA_MODULE=$module "$BIN" --dataset cora --epochs 1 --quiet --device cuda \
        >"$TMP/out" 2>"$TMP/err"
    code=$?
    if [ "$code" -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q -- "--device cuda" "$TMP/err"; then
        echo "ok: HGNN_CUDA_MODULE=$module: exit 2: $(cat "$TMP/err")"
    else
        echo "FAIL: HGNN_CUDA_MODULE=$module: exit $code"
        cat "$TMP/err"
        fail=1
    fi
done
# the CPU still runs with the variable pointing nowhere (nothing is loaded unless asked for)
if HGNN_CUDA_MODULE=/nonexistent "$BIN" --dataset cora --epochs 2 --quiet >"$TMP/out" 2>"$TMP/err"; then
    echo "ok: the CPU runs without the module"
else
    echo "FAIL: CPU run without the module"
    cat "$TMP/err"
    fail=1
fi
exit $fail
