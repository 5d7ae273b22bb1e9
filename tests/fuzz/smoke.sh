#!/bin/sh
# smoke.sh - the fuzz suite from the normal build's `meson test`: configures (once) a separate
# clang build of the harnesses in BUILD_DIR (ASan, UBSan, libFuzzer), builds it and runs its
# 'fuzz' suite: each harness for a short while from its seed corpus.
# Usage: smoke.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1 build=$2
# both compilers clang (datasets/ has a C++ file); exported, so a reconfiguration sees them too
export CC=clang CXX=clang++
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$src" -Dfuzz=true -Dcuda=disabled >/dev/null
fi
ninja -C "$build" >/dev/null
if ! meson test -C "$build" --suite fuzz --print-errorlogs; then
    tail -n 100 "$build/meson-logs/testlog.txt"
    exit 1
fi
