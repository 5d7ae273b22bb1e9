#!/bin/sh
# test_cli.sh - hgnn-train as a user runs it: options, bad input files, outputs, determinism.
# Usage: test_cli.sh PATH/TO/hgnn-train [PATH/TO/hgnn-train-emu]   (meson passes the built programs)
# The second program is hgnn-train linked with the emulated CUDA backend (tests/cuda_emu.h): with
# it, the --device cuda cases run the whole device path (device memory, every CUDA kernel, the
# checkpoint round trip) on machines without a GPU.
set -u
BIN=${1:?usage: test_cli.sh HGNN_TRAIN [HGNN_TRAIN_EMU]}
EMU=${2:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=$SRC/datasets/data
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
ko() { fail=$((fail + 1)); echo "FAIL - $1"; }

# expect_error NAME PATTERN ARGS...: exit code 2, exactly one stderr line matching PATTERN, no crash
expect_error() {
    name=$1 pat=$2
    shift 2
    "$BIN" --quiet "$@" >"$TMP/out" 2>"$TMP/err"
    code=$?
    lines=$(wc -l <"$TMP/err")
    if [ "$code" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pat" "$TMP/err"; then
        ok "$name: $(cat "$TMP/err")"
    else
        ko "$name: exit $code, $lines stderr lines, wanted /$pat/:"
        cat "$TMP/err"
    fi
}

# json_field FILE KEY: value of KEY in the last line of FILE
json_field() { tail -n 1 "$1" | tr ',' '\n' | grep "\"$2\":" | head -n 1 | sed 's/.*: *//; s/[}"]//g'; }

# --- options ---
"$BIN" --help >"$TMP/out" 2>&1 && grep -q "usage: hgnn-train" "$TMP/out" && ok "--help" || ko "--help"
expect_error "unknown option" "unknown option '--frobnicate'" --dataset cora --frobnicate 1
expect_error "unknown dataset" "unknown dataset 'nosuch'" --dataset nosuch
expect_error "missing data" "no data" --task nc
expect_error "bad task" "option --task" --dataset cora --task xx
expect_error "bad number" "option --lr" --dataset cora --lr abc
expect_error "bad method" "option --method" --dataset cora --method svd
expect_error "missing value" "needs a value" --dataset cora --lr
expect_error "bad lr schedule" "option --lr-schedule" --dataset cora --lr-schedule linear
expect_error "no such dir" "not a directory" --data-dir "$TMP/none"

# --- broken input files (a copy of disease_lp, one defect each) ---
mk() { rm -rf "$TMP/d"; cp -r "$DATA/disease_lp" "$TMP/d"; chmod -R u+w "$TMP/d"; }
mk; head -n 100 "$DATA/disease_lp/features.mtx" >"$TMP/d/features.mtx"
expect_error "truncated features.mtx" "features.mtx" --data-dir "$TMP/d" --task lp
mk; echo "5 999999" >>"$TMP/d/graph.edges"
expect_error "node id out of range" "graph.edges:2665" --data-dir "$TMP/d" --task lp
mk; echo "1 x" >>"$TMP/d/graph.edges"
expect_error "malformed edge line" "graph.edges:2665" --data-dir "$TMP/d" --task lp
mk; head -n 100 "$DATA/disease_lp/labels.txt" >"$TMP/d/labels.txt"
expect_error "label file too short" "labels.txt\|features.mtx" --data-dir "$TMP/d" --task lp
mk; sed -i '7s/.*/abc/' "$TMP/d/labels.txt"
expect_error "non-integer label" "labels.txt:7" --data-dir "$TMP/d" --task lp
mk; sed -i '10s/ [^ ]*$/ nan/' "$TMP/d/features.mtx"
expect_error "NaN feature" "features.mtx:10" --data-dir "$TMP/d" --task lp
mk; sed -i '12s/ [^ ]*$/ inf/' "$TMP/d/features.mtx"
expect_error "Inf feature" "features.mtx:12" --data-dir "$TMP/d" --task lp
mk; : >"$TMP/d/graph.edges"
expect_error "empty graph" "graph.edges" --data-dir "$TMP/d" --task lp
mk; rm "$TMP/d/features.mtx"
expect_error "missing features with --use-feats 1" "features.mtx" --data-dir "$TMP/d" --task lp --use-feats 1
mk; rm "$TMP/d/labels.txt"
expect_error "missing labels" "labels.txt" --data-dir "$TMP/d" --task lp

mk; sed -i '1s/.*/100000000/' "$TMP/d/labels.txt"
expect_error "absurd label" "labels.txt:1" --data-dir "$TMP/d" --task nc
mk; printf '%%%%MatrixMarket matrix coordinate real general\n2665 0 0\n' >"$TMP/d/features.mtx"
"$BIN" --data-dir "$TMP/d" --task lp --epochs 2 --quiet >"$TMP/out" 2>"$TMP/err"
code=$?
[ $code -eq 0 ] || [ $code -eq 2 ] && [ "$(wc -l <"$TMP/err")" -le 1 ] &&
    ok "features.mtx with no columns: exit $code $(cat "$TMP/err")" || ko "features.mtx with no columns (exit $code)"

# hostile files: declared sizes no data backs, NUL bytes, terminal escapes, binary junk. Each
# must fail in bounded time and memory (a 2 GiB address space, 30 s), with one printable line.
# (A sanitizer build reserves terabytes of address space up front: no limit there.)
as_limit=2097152
LC_ALL=C grep -q __asan_init "$BIN" && as_limit=unlimited
expect_malformed() {
    name=$1 pat=$2
    shift 2
    (ulimit -v $as_limit; exec timeout 30 "$BIN" --quiet "$@") >"$TMP/out" 2>"$TMP/err"
    code=$?
    lines=$(wc -l <"$TMP/err")
    if [ "$code" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pat" "$TMP/err" &&
        ! LC_ALL=C grep -q '[^[:print:]]' "$TMP/err"; then
        ok "$name: $(cat "$TMP/err")"
    else
        ko "$name: exit $code, $lines stderr lines, wanted /$pat/ in printable ASCII:"
        LC_ALL=C cat -v "$TMP/err"
    fi
}
mk; printf '%%%%MatrixMarket matrix coordinate real general\n2665 2000000000 1\n1 1 1.0\n' \
    >"$TMP/d/features.mtx"
expect_malformed "features.mtx declaring 2e9 columns" "features.mtx:2: .*columns" --data-dir "$TMP/d" --task lp
mk; printf '%%%%MatrixMarket matrix coordinate real general\n2665 5 1000000000000\n1 1 1.0\n' \
    >"$TMP/d/features.mtx"
expect_malformed "features.mtx declaring 1e12 entries" "features.mtx:2: declares" --data-dir "$TMP/d" --task lp
mk; printf '3 4\000 2000000000 5\n' >>"$TMP/d/graph.edges"
expect_malformed "NUL byte hiding a node id" "graph.edges:2665: control character 0x00" --data-dir "$TMP/d" --task lp
mk; printf '0\n\033]0;pwned\007\033[2J\n' >"$TMP/l"; tail -n +3 "$TMP/d/labels.txt" >>"$TMP/l"
mv "$TMP/l" "$TMP/d/labels.txt"
expect_malformed "terminal escape in labels.txt" "labels.txt:2: control character 0x1b" --data-dir "$TMP/d" --task lp
mk; sed -i '5s/.*/\xc3\xa9t\xc3\xa9/' "$TMP/d/labels.txt"
expect_malformed "non-ASCII label echoed escaped" "labels.txt:5: .*'\\\\xc3\\\\xa9t" --data-dir "$TMP/d" --task lp
mk; head -c 1048576 /dev/zero | tr '\000' '7' >"$TMP/d/graph.edges"
expect_malformed "1 MiB line in graph.edges" "graph.edges:1: line longer" --data-dir "$TMP/d" --task lp
mk; head -c 65536 "$BIN" >"$TMP/d/features.mtx"
expect_malformed "binary junk as features.mtx" "features.mtx:1:" --data-dir "$TMP/d" --task lp

# unlabelled (-1) nodes named in a split file are left out, not indexed
rm -rf "$TMP/c"; cp -r "$DATA/cora" "$TMP/c"; chmod -R u+w "$TMP/c"
sed -i '1s/.*/-1/; 6s/.*/-1/' "$TMP/c/labels.txt"
"$BIN" --data-dir "$TMP/c" --dataset cora --task nc --epochs 5 --quiet >"$TMP/out" 2>"$TMP/err" &&
    tail -n 1 "$TMP/out" | grep -q test_acc && ok "unlabelled nodes in the split file" ||
    { ko "unlabelled nodes in the split file"; cat "$TMP/err"; }

# a small feature dimension (narrower than the model width) trains (one graph layer)
"$BIN" --dataset disease_lp --num-layers 1 --epochs 5 --quiet >"$TMP/out" 2>"$TMP/err" &&
    tail -n 1 "$TMP/out" | grep -q test_roc_auc && ok "disease_lp with one graph layer (11 features)" ||
    { ko "disease_lp --num-layers 1"; cat "$TMP/err"; }

# --- a short run with outputs ---
"$BIN" --dataset cora --task nc --epochs 15 --log-freq 5 --out "$TMP/run1" >"$TMP/r1" 2>"$TMP/e1"
code=$?
if [ $code -eq 0 ] && tail -n 1 "$TMP/r1" | grep -q '"test_acc"' && [ -s "$TMP/run1/result.json" ] &&
    [ -s "$TMP/run1/checkpoint.bin" ] && [ -s "$TMP/run1/log.csv" ] &&
    head -c 6 "$TMP/run1/embeddings.npy" | grep -q "NUMPY" &&
    [ "$(wc -l <"$TMP/run1/log.csv")" -eq 16 ]; then
    ok "cora nc 15 epochs with --out (JSON, log.csv, embeddings.npy, checkpoint.bin)"
else
    ko "cora nc run with --out (exit $code)"
    cat "$TMP/e1"
    tail -n 3 "$TMP/r1"
fi

# --- the saved checkpoint reproduces the best model's metrics ---
"$BIN" --dataset cora --task nc --epochs 0 --quiet --load "$TMP/run1/checkpoint.bin" >"$TMP/r1b" 2>"$TMP/e1b"
if [ "$(json_field "$TMP/r1b" test_acc)" = "$(json_field "$TMP/r1" test_acc)" ] &&
    [ "$(json_field "$TMP/r1b" val_f1)" = "$(json_field "$TMP/r1" val_f1)" ]; then
    ok "--load checkpoint.bin --epochs 0 reproduces the best epoch's val/test metrics"
else
    ko "--load checkpoint reproduces metrics"
    cat "$TMP/e1b"
fi
expect_error "checkpoint of another model" "layer0" --dataset disease_lp --epochs 0 --load "$TMP/run1/checkpoint.bin"
head -c 300 "$TMP/run1/checkpoint.bin" >"$TMP/trunc.bin"
expect_error "truncated checkpoint" "trunc.bin" --dataset cora --task nc --epochs 0 --load "$TMP/trunc.bin"

# --- determinism: same seed, same numbers ---
strip() { tail -n 1 "$1" | tr ',' '\n' | grep -v -e seconds -e epoch_ms -e peak_rss; }
"$BIN" --dataset cora --task nc --epochs 15 --quiet >"$TMP/r2" 2>/dev/null
if [ "$(strip "$TMP/r1")" = "$(strip "$TMP/r2")" ]; then ok "same seed, same JSON"; else
    ko "same seed, same JSON"
    diff "$TMP/r1" "$TMP/r2" | tail -n 4
fi
"$BIN" --dataset cora --task nc --epochs 15 --quiet --threads 2 >"$TMP/r2t" 2>/dev/null
if [ "$(strip "$TMP/r1" | grep -v '"threads"')" = "$(strip "$TMP/r2t" | grep -v '"threads"')" ]; then
    ok "--threads 2, same JSON"
else
    ko "--threads 2, same JSON"
    diff "$TMP/r1" "$TMP/r2t" | tail -n 4
fi
"$BIN" --dataset cora --task nc --epochs 15 --quiet --seed 7 >"$TMP/r3" 2>/dev/null
if [ "$(json_field "$TMP/r3" val_f1)" != "$(json_field "$TMP/r1" val_f1)" ] ||
    [ "$(json_field "$TMP/r3" test_acc)" != "$(json_field "$TMP/r1" test_acc)" ]; then
    ok "another seed, other numbers"
else ko "another seed gave identical metrics"; fi

# --- resume: a run killed (SIGKILL) at a random point and resumed with --resume ends exactly as
# the same run never interrupted: same JSON but for the timings, and the same bytes in last.ckpt
# (every parameter, optimiser moment, generator and counter, and the best model), checkpoint.bin,
# embeddings.npy and log.csv (but for its step_ms column) ---
# (RBIN: the program, RSPAN: the kill comes within RSPAN seconds of the start)
RBIN=$BIN RSPAN=0.4
resume_case() {
    name=$1
    shift
    rm -rf "$TMP/ra" "$TMP/rb"
    "$RBIN" "$@" --quiet --out "$TMP/ra" >"$TMP/ra.json" 2>"$TMP/ra.err"
    "$RBIN" "$@" --quiet --out "$TMP/rb" >/dev/null 2>&1 &
    pid=$!
    while [ ! -e "$TMP/rb/args.txt" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
    sleep "$(awk -v span="$RSPAN" 'BEGIN { srand(); printf "%.3f", 0.02 + span * rand() }')"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    at=$(($(wc -l <"$TMP/rb/log.csv") - 1))
    # the resumed run may change what does not change the results (here: the thread count)
    "$RBIN" --resume "$TMP/rb" --threads 2 --quiet >"$TMP/rb.json" 2>"$TMP/rb.err"
    code=$?
    same=1
    for f in last.ckpt checkpoint.bin embeddings.npy; do
        cmp -s "$TMP/ra/$f" "$TMP/rb/$f" || { same=0; echo "  $f differs"; }
    done
    [ "$(cut -d, -f1-6 "$TMP/ra/log.csv")" = "$(cut -d, -f1-6 "$TMP/rb/log.csv")" ] ||
        { same=0; echo "  log.csv differs"; }
    if [ $code -eq 0 ] && [ $same = 1 ] &&
        [ "$(strip "$TMP/ra.json" | grep -v '"threads"')" = "$(strip "$TMP/rb.json" | grep -v '"threads"')" ]; then
        ok "$name: killed at epoch $at, resumed: same JSON, last.ckpt, checkpoint.bin, embeddings, log"
    else
        ko "$name: killed at epoch $at, resumed (exit $code)"
        cat "$TMP/ra.err" "$TMP/rb.err"
        diff "$TMP/ra.json" "$TMP/rb.json" | tail -n 4
    fi
}
resume_case "resume nc" --dataset cora --task nc --epochs 600 --patience 150 --save-every 7
resume_case "resume lp (negative sampler)" --dataset disease_lp --epochs 1500 --save-every 11
resume_case "resume sst (sampling generator, rounds)" --dataset disease_lp --method sst --rank 1 \
    --sst-steps 5 --epochs 1200 --save-every 13
resume_case "resume relora, cosine schedule" --dataset airport --task lp --method relora --rank 2 \
    --sst-steps 7 --epochs 500 --save-every 13 --lr-schedule cosine --warmup-steps 20
expect_error "resume without a run" "args.txt" --resume "$TMP/none"
# a resumed run that has finished repeats its result
"$BIN" --resume "$TMP/rb" --quiet >"$TMP/rc.json" 2>&1 &&
    [ "$(strip "$TMP/rc.json" | grep -v '"threads"')" = "$(strip "$TMP/rb.json" | grep -v '"threads"')" ] &&
    ok "--resume of a finished run repeats its result" || ko "--resume of a finished run"

# --- the NaN guard: exit 3 naming the epoch; the best checkpoint so far is kept and loads ---
"$BIN" --dataset cora --task nc --lr 10 --grad-clip none --epochs 50 --quiet --out "$TMP/nan" \
    >/dev/null 2>"$TMP/nan.err"
code=$?
if [ $code -eq 3 ] && [ "$(wc -l <"$TMP/nan.err")" -eq 1 ] && grep -q "epoch [0-9]*: training loss is" "$TMP/nan.err" &&
    "$BIN" --dataset cora --task nc --epochs 0 --quiet --load "$TMP/nan/checkpoint.bin" >/dev/null 2>&1; then
    ok "divergence: $(cat "$TMP/nan.err"); checkpoint.bin kept"
else
    ko "divergence (exit $code)"
    cat "$TMP/nan.err"
fi

# --- epochs 0 evaluates the initial model; link prediction runs ---
"$BIN" --dataset disease_lp --epochs 0 --quiet >"$TMP/r4" 2>"$TMP/e4" &&
    [ "$(json_field "$TMP/r4" best_epoch)" = "0" ] && tail -n 1 "$TMP/r4" | grep -q test_roc_auc &&
    ok "--epochs 0 (lp)" || { ko "--epochs 0 (lp)"; cat "$TMP/e4"; }
"$BIN" --dataset airport --task lp --epochs 5 --quiet >"$TMP/r5" 2>"$TMP/e5" &&
    tail -n 1 "$TMP/r5" | grep -q test_ap && ok "airport lp 5 epochs" || { ko "airport lp"; cat "$TMP/e5"; }

# --- zero distortion: every method starts from the same function (same seed, --epochs 0) ---
zd_ok=1
for m in full lora relora sst; do
    "$BIN" --dataset cora --task nc --method $m --dropout 0.9 --epochs 0 --quiet >"$TMP/zd_$m" 2>"$TMP/e7" || zd_ok=0
    [ "$(json_field "$TMP/zd_$m" test_acc)" = "$(json_field "$TMP/zd_full" test_acc)" ] &&
        [ "$(json_field "$TMP/zd_$m" val_f1)" = "$(json_field "$TMP/zd_full" val_f1)" ] || zd_ok=0
done
[ $zd_ok = 1 ] && ok "--epochs 0: full, lora, relora, sst give the same initial metrics" ||
    { ko "zero distortion from the command line"; cat "$TMP/e7"; }

# --- SST training with a pruning sweep ---
"$BIN" --dataset disease_lp --method sst --rank 1 --epochs 30 --quiet --prune-sigma 1,16 >"$TMP/r8" 2>"$TMP/e8"
if [ $? -eq 0 ] && tail -n 1 "$TMP/r8" | grep -q '"prune": \[{"keep": 1,' &&
    [ "$(tail -n 1 "$TMP/r8" | sed 's/.*"keep": 16[^}]*"test_roc_auc": \([0-9.e-]*\).*/\1/')" = "$(json_field "$TMP/r8" test_roc_auc)" ]; then
    ok "sst with --prune-sigma 1,16 (keeping all 16 reproduces the unpruned metric)"
else
    ko "sst --prune-sigma"
    cat "$TMP/e8"
    tail -n 1 "$TMP/r8"
fi
expect_error "bad rank" "rank" --dataset cora --method sst --rank 40 --epochs 1

# --- a dataset the program has never seen: a generated directory in the same format ---
mkdir -p "$TMP/new"
awk 'BEGIN { n = 60; for (i = 0; i < n; i++) { print i, (i + 1) % n > "/dev/stderr" } }' 2>"$TMP/new/e0" >/dev/null
awk '{ if ($1 < $2) print $1, $2; else print $2, $1 }' "$TMP/new/e0" | sort -n -k1,1 -k2,2 | uniq >"$TMP/new/graph.edges"
awk 'BEGIN { for (i = 0; i < 60; i++) print (i < 30 ? 0 : 1) }' >"$TMP/new/labels.txt"
awk 'BEGIN { print "%%MatrixMarket matrix coordinate real general"; print 60, 3, 120;
             for (i = 1; i <= 60; i++) { print i, 1, (i <= 30 ? 1 : 0.1); print i, 2, (i % 7) + 1 } }' >"$TMP/new/features.mtx"
"$BIN" --data-dir "$TMP/new" --task nc --num-layers 2 --epochs 30 --quiet >"$TMP/r6" 2>"$TMP/e6" &&
    tail -n 1 "$TMP/r6" | grep -q test_f1 && ok "unseen dataset directory (nc)" || { ko "unseen dataset"; cat "$TMP/e6"; }

# --- --device cuda ---
if "$BIN" --dataset disease_lp --task lp --epochs 1 --quiet --device cuda >"$TMP/out" 2>"$TMP/err"; then
    ok "--device cuda runs on this machine's GPU"
else
    code=$?
    [ "$code" -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q -- "--device cuda" "$TMP/err" &&
        ok "--device cuda without a usable GPU: $(cat "$TMP/err")" ||
        { ko "--device cuda without a GPU: exit $code"; cat "$TMP/err"; }
fi
expect_error "bad device" "option --device" --dataset cora --device tpu
if [ -n "$EMU" ]; then
    # same seeds on both devices. The device sums in other orders, so the runs agree to float
    # rounding at first and then drift apart like two seeds: the losses of the first 20 epochs
    # agree to 1e-4 (the whole step's parity), the final metric within the seed spread; and the
    # device run is deterministic.
    "$BIN" --dataset cora --task nc --quiet --out "$TMP/oc_cpu" >"$TMP/c_cpu" 2>&1
    "$EMU" --dataset cora --task nc --quiet --device cuda --out "$TMP/oc_gpu" >"$TMP/c_gpu" 2>"$TMP/e_gpu"
    # (HG_EMU_GUARD=1: device memory is unreadable by host code, tests/cuda_emu.cpp)
    HG_EMU_GUARD=1 "$EMU" --dataset cora --task nc --epochs 30 --quiet --device cuda >"$TMP/c_gpu2" 2>&1
    HG_EMU_GUARD=1 "$EMU" --dataset cora --task nc --epochs 30 --quiet --device cuda >"$TMP/c_gpu3" 2>&1
    a=$(json_field "$TMP/c_cpu" test_acc) b=$(json_field "$TMP/c_gpu" test_acc)
    drift=$(paste -d, "$TMP/oc_cpu/log.csv" "$TMP/oc_gpu/log.csv" | awk -F, 'NR > 1 && NR <= 21 {
        d = ($2 - $9) / $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.1e", m }')
    if [ -n "$b" ] && awk -v a="$a" -v b="$b" -v d="$drift" \
        'BEGIN { exit !(b - a < 0.03 && a - b < 0.03 && d < 1e-4) }' &&
        [ "$(json_field "$TMP/c_gpu2" val_f1)" = "$(json_field "$TMP/c_gpu3" val_f1)" ]; then
        ok "cora nc on the (emulated) GPU: test acc $b, CPU $a; loss drift over 20 epochs $drift; deterministic"
    else
        ko "cora nc on the emulated GPU: $b against the CPU's $a, loss drift $drift"
        cat "$TMP/e_gpu"
    fi
    "$BIN" --dataset disease_lp --task lp --epochs 100 --quiet >"$TMP/l_cpu" 2>&1
    "$EMU" --dataset disease_lp --task lp --epochs 100 --quiet --device cuda >"$TMP/l_gpu" 2>"$TMP/e_gpu"
    a=$(json_field "$TMP/l_cpu" test_roc_auc) b=$(json_field "$TMP/l_gpu" test_roc_auc)
    if [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN { exit !(b - a < 0.02 && a - b < 0.02) }'; then
        ok "disease_lp on the (emulated) GPU: test roc_auc $b, CPU $a"
    else
        ko "disease_lp on the emulated GPU: $b against the CPU's $a"
        cat "$TMP/e_gpu"
    fi
    # every low-rank method on the device, with its schedule (SST rounds, ReLoRA merges) and a
    # checkpoint round trip: --load CKPT --epochs 0 reproduces the best epoch's metrics
    # resume on the device (the registry's copies to and from device memory)
    RBIN=$EMU RSPAN=3
    export HG_EMU_GUARD=1
    resume_case "resume on the (emulated) GPU, sst" --dataset disease_lp --method sst --rank 1 \
        --sst-steps 5 --epochs 60 --save-every 9 --device cuda
    unset HG_EMU_GUARD
    for m in lora relora sst; do
        HG_EMU_GUARD=1 "$EMU" --dataset airport --task lp --method $m --rank 1 --epochs 60 \
            --sst-steps 5 --device cuda --quiet --out "$TMP/o_$m" >"$TMP/m_$m" 2>"$TMP/e_$m" &&
        HG_EMU_GUARD=1 "$EMU" --dataset airport --task lp --method $m --rank 1 --epochs 0 \
            --device cuda --quiet --prune-sigma 1 \
            --load "$TMP/o_$m/checkpoint.bin" >"$TMP/m2_$m" 2>>"$TMP/e_$m" &&
        [ "$(json_field "$TMP/m_$m" test_roc_auc)" = "$(json_field "$TMP/m2_$m" test_roc_auc)" ] &&
            ok "$m on the (emulated) GPU, checkpoint round trip ($(json_field "$TMP/m_$m" test_roc_auc))" ||
            { ko "$m on the emulated GPU"; cat "$TMP/e_$m"; }
    done
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
