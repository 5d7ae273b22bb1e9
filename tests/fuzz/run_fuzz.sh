#!/bin/sh
# run_fuzz.sh - one libFuzzer harness for a while, from a seed corpus that it leaves unchanged.
# Usage: run_fuzz.sh HARNESS SEED_DIR SECONDS ARTIFACT_DIR [libFuzzer options...]
# New inputs go to $FUZZ_CORPUS when set (kept), else to a scratch corpus removed afterwards; a
# crashing input is kept in ARTIFACT_DIR (copy it into SEED_DIR and add a test case for it). No
# single allocation may pass 64 MiB and the process may not pass 1 GiB: the inputs are at most
# 8 KiB, and a parser's memory follows what the file holds.
set -eu
harness=$1 seeds=$2 seconds=$3 artifacts=$4
shift 4
if [ -n "${FUZZ_CORPUS:-}" ]; then
    corpus=$FUZZ_CORPUS
else
    corpus=$(mktemp -d)
    trap 'rm -rf "$corpus"' EXIT
fi
mkdir -p "$artifacts" "$corpus"
"$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=64 \
    -max_len=8192 -print_final_stats=1 -error_exitcode=1 -artifact_prefix="$artifacts/" "$@" "$corpus" "$seeds"
