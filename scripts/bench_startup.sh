#!/bin/sh
# bench_startup.sh - start-up cost of hgnn-train: wall time and peak RSS of `--help` and of a
# short CPU Cora run (`--dataset cora --task nc --epochs 50`), median of REPEATS runs, the
# programs measured interleaved (run i of every program before run i + 1 of any), through
# /usr/bin/time -v. Prints a Markdown table and writes it to scripts/results/bench_startup.md.
# Usage: scripts/bench_startup.sh [LABEL=BIN ...] (default: the CUDA build, build/hgnn-train
# with its module, and the CPU-only build, build-cpu/hgnn-train). REPEATS=5 by default.
cd "$(dirname "$0")/.." || exit 1
[ $# -eq 0 ] && set -- "cuda build (module)=build/hgnn-train" "cpu-only build=build-cpu/hgnn-train"
REPEATS=${REPEATS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# one measurement: "seconds kib" of BIN ARGS
measure() {
    /usr/bin/time -v "$@" >/dev/null 2>"$TMP/t" || true
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
                    for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
                /Maximum resident set size/ { rss = $2 }
                END { printf "%s %s\n", wall, rss }' "$TMP/t"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
i=0
while [ "$i" -lt "$REPEATS" ]; do
    j=0
    for spec in "$@"; do
        bin=${spec#*=}
        measure "$bin" --help >>"$TMP/help.$j"
        measure "$bin" --dataset cora --task nc --epochs 50 --quiet >>"$TMP/cora.$j"
        j=$((j + 1))
    done
    i=$((i + 1))
done
{
    printf '| build | CUDA libraries linked | --help wall s | --help peak RSS MiB | Cora 50 epochs wall s | Cora peak RSS MiB |\n'
    printf '|---|---|---|---|---|---|\n'
    j=0
    for spec in "$@"; do
        label=${spec%%=*}
        bin=${spec#*=}
        libs=$(ldd "$bin" 2>/dev/null | grep -c -E 'libcudart|libcublas|libcusparse|libcusolver')
        hw=$(cut -d' ' -f1 "$TMP/help.$j" | median)
        hr=$(cut -d' ' -f2 "$TMP/help.$j" | median)
        cw=$(cut -d' ' -f1 "$TMP/cora.$j" | median)
        cr=$(cut -d' ' -f2 "$TMP/cora.$j" | median)
        printf '| %s | %s | %.3f | %.1f | %.3f | %.1f |\n' "$label" "$libs" "$hw" \
            "$(echo "$hr" | awk '{ print $1 / 1024 }')" "$cw" "$(echo "$cr" | awk '{ print $1 / 1024 }')"
        j=$((j + 1))
    done
    printf '\nMedians of %s interleaved runs (/usr/bin/time -v) on %s; the machine may be shared.\n' \
        "$REPEATS" "$(uname -n)"
} >"$TMP/table"
cat "$TMP/table"
mkdir -p scripts/results
cp "$TMP/table" scripts/results/bench_startup.md
