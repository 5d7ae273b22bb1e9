#!/bin/sh
# setup.sh - install hgnn's dependencies from Debian's packages and build it (one command).
# Usage: scripts/setup.sh [BUILD_DIR]   (default: build)
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PKGS="meson ninja-build pkg-config gcc g++ libopenblas-dev liblapacke-dev libigraph-dev libcmocka-dev time
      libsentencepiece-dev libpcre2-dev libopenmpi-dev openmpi-bin
      python3-numpy python3-scipy python3-networkx python3-matplotlib python3-regex clang libclang-rt-14-dev"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
if [ -d "$BUILD" ]; then
    meson setup --reconfigure "$BUILD" >/dev/null
else
    meson setup "$BUILD" --buildtype=release >/dev/null
fi
ninja -C "$BUILD"
echo "setup: built $BUILD/hgnn-train"
