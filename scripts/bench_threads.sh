#!/bin/sh
# bench_threads.sh - median training-step time (epoch_ms) of 3 runs per setting and thread count.
# Usage: scripts/bench_threads.sh [BIN] [EPOCHS] [THREADS...] (defaults: build/hgnn-train, 600,
# 1 2). Runs every setting for EPOCHS epochs without early stopping; prints a Markdown table.
BIN=${1:-build/hgnn-train}
EPOCHS=${2:-600}
[ $# -ge 2 ] && shift 2 || shift $#
COUNTS=${*:-1 2}
ms() { tail -n 1 | tr ',' '\n' | sed -n 's/.*"epoch_ms": *//p'; }
printf '| setting |'; for t in $COUNTS; do printf ' %s thr ms |' "$t"; done; printf '\n|---|'
for t in $COUNTS; do printf -- '---|'; done; printf '\n'
while read -r setting; do
    [ -z "$setting" ] && continue
    printf '| %s |' "$setting"
    for t in $COUNTS; do
        # shellcheck disable=SC2086
        m=$(for i in 1 2 3; do "$BIN" $setting --epochs "$EPOCHS" --patience 1000000 --quiet \
            --threads "$t" | ms; done | sort -g | sed -n 2p)
        printf ' %.3f |' "$m"
    done
    printf '\n'
done <<SETTINGS
--dataset cora --task nc
--dataset cora --task lp
--dataset disease_lp
--dataset airport --task lp
--dataset airport --task nc
--dataset cora --task nc --method sst
SETTINGS
