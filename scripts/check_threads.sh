#!/bin/sh
# check_threads.sh - the JSON of a run must not depend on --threads (README: determinism).
# Runs every setting below with --threads 1 and each other count given, and diffs the JSON
# without its timing fields. Usage: scripts/check_threads.sh [BIN] [EPOCHS] [THREADS...]
# (defaults: build/hgnn-train, 300, 2). Exit status 1 when any JSON differs.
BIN=${1:-build/hgnn-train}
EPOCHS=${2:-300}
[ $# -ge 2 ] && shift 2 || shift $#
COUNTS=${*:-2}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
strip() {
    tail -n 1 "$1" | tr ',' '\n' | grep -v -e train_seconds -e total_seconds -e epoch_ms \
        -e peak_rss_mib -e '"threads"' -e schedule_seconds
}
status=0
i=0
while read -r setting; do
    [ -z "$setting" ] && continue
    i=$((i + 1))
    # shellcheck disable=SC2086
    "$BIN" $setting --epochs "$EPOCHS" --quiet --threads 1 >"$TMP/r$i.1" || { echo "FAIL run: $setting"; status=1; continue; }
    for t in $COUNTS; do
        # shellcheck disable=SC2086
        "$BIN" $setting --epochs "$EPOCHS" --quiet --threads "$t" >"$TMP/r$i.$t" || { echo "FAIL run: $setting --threads $t"; status=1; continue; }
        if [ "$(strip "$TMP/r$i.1")" = "$(strip "$TMP/r$i.$t")" ]; then
            echo "same     $setting: --threads 1 vs $t"
        else
            echo "DIFFERS  $setting: --threads 1 vs $t"
            diff "$TMP/r$i.1" "$TMP/r$i.$t" | head -n 4
            status=1
        fi
    done
done <<SETTINGS
--dataset cora --task nc
--dataset cora --task lp
--dataset disease_lp
--dataset airport --task lp
--dataset airport --task nc
--dataset cora --task nc --method sst
SETTINGS
exit $status
