#!/bin/sh
# test_faults.sh - hgnn-train's --out directory under sudden death and failing writes: runs killed
# with SIGKILL at random moments must leave one consistent set of files (scripts/check_outdir.py)
# whose checkpoint loads; a second run into the same directory killed early must leave nothing of
# the first passing for its own; a file-size limit and a full disk end the run with exit status 3
# and one line naming the file and the system's reason, leaving no temporary file.
# Usage: test_faults.sh PATH/TO/hgnn-train   (meson passes the built program)
set -u
BIN=${1:?usage: test_faults.sh HGNN_TRAIN}
SRC=$(cd "$(dirname "$0")/.." && pwd)
CHECK="python3 $SRC/scripts/check_outdir.py"
TMP=$(mktemp -d)
MNT=
cleanup() {
    [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
ko() { fail=$((fail + 1)); echo "FAIL - $1"; }
RUN="--dataset disease_lp --task lp --epochs 300 --save-every 5 --quiet"

# random N: a number in [0, N)
random() { echo $(( $(od -An -N4 -tu4 /dev/urandom) % $1 )); }

# run_killed DIR SECONDS ARGS...: start a run, SIGKILL it after SECONDS (if still running)
run_killed() {
    dir=$1 delay=$2
    shift 2
    "$BIN" $RUN --out "$dir" "$@" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

# no_tmp DIR: no temporary file left in DIR
no_tmp() { [ -z "$(find "$1" -name '*.tmp' -o -name '*.new' 2>/dev/null)" ]; }

# --- kills at random moments: one consistent set whose checkpoint loads ---
runs=${FAULT_RUNS:-20}
i=0
unfinished=
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    dir=$TMP/kill$i
    ms=$(( 50 + $(random 1000) ))
    run_killed "$dir" "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    [ -f "$dir/last.ckpt" ] && [ ! -f "$dir/result.json" ] && unfinished=$dir
    if msg=$($CHECK "$dir" 2>&1); then
        if [ -f "$dir/checkpoint.bin" ]; then
            if "$BIN" --dataset disease_lp --task lp --epochs 0 --quiet \
                --load "$dir/checkpoint.bin" >/dev/null 2>"$TMP/err"; then
                ok "kill after ${ms} ms: $msg; checkpoint loads"
            else
                ko "kill after ${ms} ms: checkpoint does not load: $(cat "$TMP/err")"
            fi
        else
            ok "kill after ${ms} ms: $msg"
        fi
    else
        ko "kill after ${ms} ms: $msg"
    fi
done

# --- a run killed before its end, resumed to its end: consistent, complete ---
if [ -z "$unfinished" ]; then
    echo "skip - resume: every run finished or saved nothing before its kill"
elif "$BIN" --resume "$unfinished" --quiet >/dev/null 2>"$TMP/err" &&
    msg=$($CHECK "$unfinished" 2>&1) && [ -f "$unfinished/result.json" ]; then
    ok "resumed after the kill: $msg"
else
    ko "resume after the kill: $(cat "$TMP/err") $msg"
fi

# --- a second run into a finished run's directory, killed early ---
dir=$TMP/second
"$BIN" $RUN --out "$dir" >/dev/null 2>&1
first=$(grep -o '"run": "[^"]*"' "$dir/manifest.json")
for delay in 0.05 0.3; do
    run_killed "$dir" "$delay" --seed 7
    # killed before it started writing, the first run's set is whole; afterwards nothing of it
    # may be left (check_outdir.py: every file it finds belongs to the manifest's run)
    if msg=$($CHECK "$dir" 2>&1) && { grep -q -- "$first" "$dir/manifest.json" 2>/dev/null ||
        [ ! -f "$dir/result.json" ]; }; then
        ok "second run killed after $delay s: $msg"
    else
        ko "second run killed after $delay s: $msg"
        ls -l "$dir"
    fi
    "$BIN" $RUN --out "$dir" >/dev/null 2>&1 # a finished first run again
    first=$(grep -o '"run": "[^"]*"' "$dir/manifest.json")
done

# --- the checker and the recovery: a set whose renames a kill interrupted, and broken sets ---
dir=$TMP/set
"$BIN" $RUN --out "$dir" >/dev/null 2>&1
mv "$dir/checkpoint.bin" "$dir/checkpoint.bin.new" && cp "$dir/last.ckpt" "$dir/checkpoint.bin"
if msg=$($CHECK "$dir" 2>&1) && "$BIN" --resume "$dir" --quiet >/dev/null 2>"$TMP/err" &&
    [ ! -f "$dir/checkpoint.bin.new" ] && msg=$($CHECK "$dir" 2>&1) && no_tmp "$dir"; then
    ok "interrupted renames: consistent, completed by --resume: $msg"
else
    ko "interrupted renames: $msg $(cat "$TMP/err")"
fi
cp -r "$dir" "$TMP/good"
# expect_inconsistent NAME: check_outdir.py rejects $dir (exit 1, naming a file); $dir restored
expect_inconsistent() {
    if msg=$($CHECK "$dir" 2>&1); then
        ko "$1: accepted: $msg"
    elif [ $? -eq 1 ] && echo "$msg" | grep -q "$dir"; then
        ok "$1: $msg"
    else
        ko "$1: $msg"
    fi
    rm -rf "$dir" && cp -r "$TMP/good" "$dir"
}
printf 'x' >>"$dir/embeddings.npy"
expect_inconsistent "an embedding file of another size"
python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1; open(p, "wb").write(b)' "$dir/checkpoint.bin"
expect_inconsistent "a checkpoint of the same size, one bit changed"
printf '1,2' >>"$dir/log.csv"
expect_inconsistent "log.csv ending in a partial line"
rm "$dir/manifest.json"
expect_inconsistent "saved files without a manifest"
python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))
m["files"] = [f for f in m["files"] if f["name"] != "result.json"]
json.dump(m, open(sys.argv[1], "w"))' "$dir/manifest.json"
expect_inconsistent "a result.json the manifest does not list"

# expect_write_failure NAME DIR REASON: the last run exited 3 with one line naming a file in DIR
# and REASON; no temporary file left; the directory is consistent
expect_write_failure() {
    name=$1 dir=$2 reason=$3
    lines=$(wc -l <"$TMP/err")
    if [ "$code" -eq 3 ] && [ "$lines" -eq 1 ] && grep -q -- "$dir/.*$reason" "$TMP/err" &&
        no_tmp "$dir" && msg=$($CHECK "$dir" 2>&1); then
        ok "$name: $(cat "$TMP/err")"
    else
        ko "$name: exit $code, $lines stderr lines, wanted /$reason/: $(cat "$TMP/err")"
        ls -l "$dir"
    fi
}

# --- a file-size limit (SIGXFSZ ignored: the write fails with EFBIG) ---
for kib in 8 100; do
    dir=$TMP/fsize$kib
    (ulimit -f "$kib" && exec "$BIN" $RUN --out "$dir") >/dev/null 2>"$TMP/err"
    code=$?
    expect_write_failure "ulimit -f $kib" "$dir" "File too large"
done

# --- a full disk, then a read-only file system: a small tmpfs (root only) ---
mkdir -p "$TMP/mnt"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=200k tmpfs "$TMP/mnt" 2>/dev/null; then
    MNT=$TMP/mnt
    dir=$MNT/out
    "$BIN" $RUN --out "$dir" >/dev/null 2>"$TMP/err"
    code=$?
    expect_write_failure "full disk" "$dir" "No space left on device"
    mount -o remount,ro "$MNT"
    "$BIN" $RUN --out "$dir" >/dev/null 2>"$TMP/err"
    code=$?
    if [ "$code" -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
        grep -q "$dir/.*Read-only file system" "$TMP/err"; then
        ok "read-only file system: $(cat "$TMP/err")"
    else
        ko "read-only file system: exit $code: $(cat "$TMP/err")"
    fi
    umount "$MNT" && MNT=
else
    echo "skip - full disk: needs root and mount -t tmpfs"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
