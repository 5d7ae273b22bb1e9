#!/bin/sh
# bench_mt_data.sh - the translation data path on Multi30K (build/hgnn-bench-mt-data): reading
# train.{de,en}, training the joint BPE model (8000 pieces), encoding the 58,000 training
# sentences and batching them, on 1 and 2 threads; and, when SentencePiece's command-line tools
# are installed (Debian package sentencepiece), the same training by
#   spm_train --input=train.de,train.en --model_type=bpe --vocab_size=8000 --character_coverage=1.0
# timed alongside (runs interleaved) and its vocabulary compared with ours piece by piece.
# Prints a Markdown table and writes it to scripts/results/bench_mt_data.md.
# Usage: scripts/bench_mt_data.sh [BUILD_DIR]   (default: build). REPEATS=3 by default.
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build}/hgnn-bench-mt-data
DATA=datasets/data/multi30k
REPEATS=${REPEATS:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
load=$(cut -d' ' -f1 /proc/loadavg)
have_cli=0
command -v spm_train >/dev/null 2>&1 && command -v spm_export_vocab >/dev/null 2>&1 && have_cli=1
i=0
while [ "$i" -lt "$REPEATS" ]; do
    for t in 1 2; do
        "$BIN" --reps 1 --threads "$t" --save "$TMP/ours.model" >>"$TMP/ours.$t"
    done
    if [ "$have_cli" -eq 1 ]; then
        s=$(date +%s.%N)
        spm_train --input="$DATA/train.de,$DATA/train.en" --model_prefix="$TMP/cli" \
            --model_type=bpe --vocab_size=8000 --character_coverage=1.0 >/dev/null 2>&1
        e=$(date +%s.%N)
        echo "$s $e" | awk '{ print $2 - $1 }' >>"$TMP/cli.train"
    fi
    i=$((i + 1))
done
{
    printf '| step (Multi30K train, both sides) | 1 thread s | 2 threads s |\n|---|---|---|\n'
    for k in read_s:"read 2 x 29,000 lines" train_s:"train BPE, 8000 pieces" \
             train_cpu_s:"train BPE, 8000 pieces: CPU time" encode_s:"encode 58,000 sentences" \
             encode_cpu_s:"encode 58,000 sentences: CPU time" batch_s:"batches (4096 tokens)"; do
        key=${k%%:*}
        printf '| %s | %s | %s |\n' "${k#*:}" "$(field "$key" <"$TMP/ours.1" | median)" \
            "$(field "$key" <"$TMP/ours.2" | median)"
    done
    printf '\n%s tokens in %s batches.\n' "$(field tokens <"$TMP/ours.1" | head -1)" \
        "$(field batches <"$TMP/ours.1" | head -1)"
    if [ "$have_cli" -eq 1 ]; then
        spm_export_vocab --model="$TMP/ours.model" >"$TMP/ours.vocab" 2>/dev/null
        if cmp -s "$TMP/ours.vocab" "$TMP/cli.vocab"; then same=identical; else
            same="DIFFERENT ($(diff "$TMP/ours.vocab" "$TMP/cli.vocab" | grep -c '^<') lines)"; fi
        printf '\nspm_train (command line, same data and options): %s s to train; its vocabulary\n' \
            "$(median <"$TMP/cli.train")"
        printf 'file and that of hg_spm_train (spm_export_vocab) are %s (%s pieces).\n' \
            "$same" "$(wc -l <"$TMP/cli.vocab")"
    else
        printf '\nspm_train not installed: no comparison with the command-line tool.\n'
    fi
    printf '\nMedians of %s interleaved runs on %s (%s cores, load average %s at the start); the\n' \
        "$REPEATS" "$(uname -n)" "$(nproc)" "$load"
    printf 'machine may be shared: wall times then stretch, CPU times less so.\n'
} >"$TMP/table"
cat "$TMP/table"
mkdir -p scripts/results
cp "$TMP/table" scripts/results/bench_mt_data.md
