#!/bin/sh
# fuzz_campaign.sh - a long libFuzzer campaign on one harness (tests/fuzz/).
# Usage: scripts/fuzz_campaign.sh HARNESS SECONDS [JOBS]
#   HARNESS: features, edges, labels, split, self_loops, ckpt or options;
#   JOBS: parallel fuzzing processes (1).
# Configures build-fuzz (clang, ASan + UBSan + libFuzzer: CC=clang CXX=clang++ meson setup
# build-fuzz -Dfuzz=true) when it is missing, builds the harness, and fuzzes from the seed corpus
# tests/fuzz/corpus/HARNESS/ (left unchanged) into build-fuzz/campaign/HARNESS/corpus/, which
# the next campaign continues. A crash leaves its input in build-fuzz/campaign/HARNESS/: copy it
# into the seed corpus (then every fuzz suite run replays it) and add a test case for it to
# tests/test_readers.c or tests/test_cli.sh.
set -eu
cd "$(dirname "$0")/.."
usage="usage: scripts/fuzz_campaign.sh HARNESS SECONDS [JOBS]
  HARNESS: features|edges|labels|split|self_loops|ckpt|options"
harness=${1:?$usage}
seconds=${2:?$usage}
jobs=${3:-1}
case $harness in
features | edges | labels | split | self_loops | ckpt | options) ;;
*) echo "fuzz_campaign.sh: unknown harness '$harness'; $usage" >&2; exit 2 ;;
esac
case $seconds$jobs in
*[!0-9]*) echo "fuzz_campaign.sh: SECONDS and JOBS must be whole numbers; $usage" >&2; exit 2 ;;
esac
if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dcuda=disabled >/dev/null
fi
ninja -C build-fuzz "tests/fuzz/fuzz_$harness" >/dev/null
work=build-fuzz/campaign/$harness
mkdir -p "$work/corpus"
echo "fuzz_campaign: $harness for $seconds s, $jobs job(s); corpus $work/corpus"
parallel=
[ "$jobs" -le 1 ] || parallel="-jobs=$jobs -workers=$jobs"
root=$(pwd)
status=0
# inside $work: parallel jobs write their fuzz-N.log files to the current directory
# shellcheck disable=SC2086 # $parallel: zero or two options
(cd "$work" && FUZZ_CORPUS=corpus "$root/tests/fuzz/run_fuzz.sh" \
    "$root/build-fuzz/tests/fuzz/fuzz_$harness" "$root/tests/fuzz/corpus/$harness" "$seconds" . \
    $parallel) || status=$?
found=$(cd "$work" && ls | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | tr '\n' ' ' || true)
echo "fuzz_campaign: exit $status; inputs that failed in $work: ${found:-none}"
exit $status
