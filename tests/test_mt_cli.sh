#!/bin/sh
# test_mt_cli.sh - hgnn-mt as a user runs it, on a tiny corpus (the first 300 sentence pairs of
# the bundled Multi30K) and a tiny model: bad input and options (exit status 2, one line naming
# the file, line or option, no crash); identical results from identical runs and from 1 or 2
# threads; a run interrupted (cut short, or killed with SIGKILL) and resumed ends as the run
# never interrupted; `translate` reproduces the training run's own test translations, batched
# as sentence by sentence.
# Usage: test_mt_cli.sh PATH/TO/hgnn-mt   (meson passes the built program)
set -u
BIN=${1:?usage: test_mt_cli.sh HGNN_MT}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=$SRC/datasets/data/multi30k
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
ko() { fail=$((fail + 1)); echo "FAIL - $1"; }

# the corpus: 300 training pairs, 30 validation and 30 test pairs
C=$TMP/c
mkdir "$C"
for l in de en; do
    head -n 300 "$DATA/train.$l" >"$C/train.$l"
    head -n 30 "$DATA/val.$l" >"$C/val.$l"
    head -n 30 "$DATA/test2016.$l" >"$C/test.$l"
done
# every file given; the model tiny (15 batches an epoch, 8 epochs: about a second of training)
FILES="--train-src $C/train.de --train-tgt $C/train.en --valid-src $C/val.de --valid-tgt $C/val.en
 --test-src $C/test.de --test-tgt $C/test.en"
MODEL="--vocab 200 --dim 16 --ffn 32 --heads 2 --enc-layers 1 --dec-layers 1"
RUN="$FILES $MODEL --max-tokens 800 --lr 3e-2 --warmup 10 --epochs 8 --max-extra 10 --quiet"
# idle threads sleep instead of spinning (the machine may have fewer free cores than threads)
export OMP_WAIT_POLICY=passive

# expect_error NAME PATTERN ARGS...: exit status 2, exactly one stderr line "hgnn-mt: ..."
# matching PATTERN (standard input empty)
expect_error() {
    name=$1 pat=$2
    shift 2
    "$BIN" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
    code=$?
    lines=$(wc -l <"$TMP/err")
    if [ "$code" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "^hgnn-mt: .*$pat" "$TMP/err"; then
        ok "$name: $(cat "$TMP/err")"
    else
        ko "$name: exit $code, $lines stderr lines, wanted /$pat/:"
        head -c 2000 "$TMP/err"
    fi
}

# json_field FILE KEY: value of KEY in the JSON object on the last line of FILE
json_field() { tail -n 1 "$1" | tr ',' '\n' | grep "\"$2\":" | head -n 1 | sed 's/.*: *//; s/[}"]//g'; }

# same_results DIR1 DIR2: the result lines agree in every field but the timings and the thread
# count, and the test translations are the same bytes
same_results() {
    strip() { tr ',' '\n' <"$1/result.json" |
        grep -v '"train_seconds"\|"tokens_per_s"\|"total_seconds"\|"step_ms"\|"peak_rss_mib"\|"threads"'; }
    strip "$1" >"$TMP/j1" && strip "$2" >"$TMP/j2" && cmp -s "$TMP/j1" "$TMP/j2" &&
        cmp -s "$1/test.hyp" "$2/test.hyp" && cmp -s "$1/test.greedy.hyp" "$2/test.greedy.hyp"
}

# ---- bad input and options ----
B=$TMP/bad
mkdir "$B"
T1="--train-src $C/train.de --train-tgt $C/train.en"
head -n 299 "$C/train.en" >"$B/short.en"
expect_error "line counts differ" "train.de has 300 lines but .*short.en has 299" train $RUN \
    --train-src "$C/train.de" --train-tgt "$B/short.en"
: >"$B/empty.de"
: >"$B/empty.en"
expect_error "empty training files" "empty.de: empty file" train $RUN \
    --train-src "$B/empty.de" --train-tgt "$B/empty.en"
expect_error "empty target file" "empty.en: empty file" train $RUN \
    --train-src "$C/train.de" --train-tgt "$B/empty.en"
sed '17s/$/ \xff\xfe/' "$C/train.de" >"$B/utf8.de"
expect_error "invalid UTF-8 in a training line" "utf8.de:17: invalid UTF-8" train $RUN \
    --train-src "$B/utf8.de" --train-tgt "$C/train.en"
sed '30s/$/ \xc3(/' "$C/val.en" >"$B/utf8.en"
expect_error "invalid UTF-8 in a validation line" "utf8.en:30: invalid UTF-8" train $RUN \
    --valid-tgt "$B/utf8.en"
{ head -n 5 "$C/train.de"; head -c 1048576 /dev/zero | tr '\000' 'a'; echo; tail -n 294 "$C/train.de"; } \
    >"$B/long.de"
expect_error "1 MiB line (default --max-line)" "long.de:6: line is 1048576 bytes long" train $RUN \
    --train-src "$B/long.de" --train-tgt "$C/train.en"
yes '' | head -n 300 >"$B/blank.de"
yes '' | head -n 300 >"$B/blank.en"
expect_error "only blank lines to learn pieces from" "blank.de and .*blank.en: .*--vocab" train \
    $RUN --train-src "$B/blank.de" --train-tgt "$B/blank.en"
expect_error "vocabulary too large for the corpus" "option --vocab 100000" train $RUN \
    --vocab 100000
expect_error "missing SentencePiece model" "/nonexistent: cannot open" train $RUN \
    --spm-model /nonexistent
head -c 4096 "$BIN" >"$B/garbage.model"
expect_error "garbage SentencePiece model" "garbage.model: not a SentencePiece model" train $RUN \
    --spm-model "$B/garbage.model"
expect_error "missing training file" "$B/none.de: cannot open" train $RUN \
    --train-src "$B/none.de"
expect_error "unknown option (train)" "unknown option '--bogus'" train --bogus 1
expect_error "unknown option (translate)" "unknown option '--bogus'" translate --bogus 1
expect_error "unknown option (score)" "unknown option '--bogus'" score --bogus 1
expect_error "bad number" "option --dim" train $RUN --dim x
expect_error "unknown command" "unknown command 'frob'" frob
mkdir "$B/norun"
expect_error "translate --model: no run there" "option --model $B/norun: .*args.txt" \
    translate --model "$B/norun"
expect_error "translate --model: no such directory" "option --model $B/none: .*args.txt" \
    translate --model "$B/none"
expect_error "train --resume: no run there" "option --resume $B/norun: .*args.txt" \
    train --resume "$B/norun"

# ---- reproducibility: the same run twice, and with 2 threads ----
"$BIN" train $RUN --out "$TMP/u" >"$TMP/u.out" 2>"$TMP/u.err"
code=$?
if [ $code -eq 0 ] && [ -s "$TMP/u/result.json" ] && [ -s "$TMP/u/test.hyp" ] &&
    [ -s "$TMP/u/last.ckpt" ] && [ "$(json_field "$TMP/u.out" steps)" = 120 ]; then
    ok "tiny run: val_loss $(json_field "$TMP/u.out" val_loss), test BLEU $(json_field "$TMP/u.out" test_bleu)"
else
    ko "tiny run (exit $code): $(cat "$TMP/u.err")"
fi
# the translations are not all alike (a model that says one thing would hide reorderings)
[ "$(sort -u "$TMP/u/test.hyp" | wc -l)" -ge 10 ] && ok "the tiny model's translations differ" ||
    ko "the tiny model's translations are nearly all the same"
"$BIN" train $RUN --out "$TMP/u2" >/dev/null 2>"$TMP/err"
same_results "$TMP/u" "$TMP/u2" && cmp -s "$TMP/u/last.ckpt" "$TMP/u2/last.ckpt" &&
    ok "two identical runs: same result.json (but timings), test.hyp and last.ckpt" ||
    ko "two identical runs differ $(cat "$TMP/err")"
"$BIN" train $RUN --threads 2 --out "$TMP/t2" >/dev/null 2>"$TMP/err"
same_results "$TMP/u" "$TMP/t2" && cmp -s "$TMP/u/last.ckpt" "$TMP/t2/last.ckpt" &&
    ok "--threads 2 == --threads 1: result.json, test.hyp, last.ckpt" ||
    ko "--threads 2 differs from --threads 1 $(cat "$TMP/err")"

# ---- resume ----
# cut short by --steps, then resumed with the run's own length (--steps 0: all epochs)
"$BIN" train $RUN --steps 13 --out "$TMP/a" >/dev/null 2>"$TMP/err" &&
    [ "$(json_field "$TMP/a/result.json" steps)" = 13 ] &&
    "$BIN" train --resume "$TMP/a" --steps 0 >/dev/null 2>>"$TMP/err" &&
    same_results "$TMP/u" "$TMP/a" &&
    ok "--steps 13, then --resume --steps 0: the uninterrupted run's results and test.hyp" ||
    ko "--steps 13 then --resume: $(cat "$TMP/err")"

# killed with SIGKILL once it has saved an evaluation, then resumed: the same files as the run
# never killed (but log.csv's step times); SST, with iterations and rounds inside the run, so
# that its own state is resumed too
no_ms() { cut -d, -f1-5 "$1"; }
SST="--method sst --rank 4 --sst-steps 7 --sst-warmup 2 --seed 3"
"$BIN" train $RUN $SST --out "$TMP/s" >/dev/null 2>"$TMP/err" || ko "SST run: $(cat "$TMP/err")"
"$BIN" train $RUN $SST --save-every 5 --out "$TMP/k" >/dev/null 2>&1 &
pid=$!
i=0
while [ "$(cat "$TMP/k/log.csv" 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 3000 ] &&
    kill -0 $pid 2>/dev/null; do
    sleep 0.01
    i=$((i + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -f "$TMP/k/result.json" ]; then
    echo "skip - SIGKILL and resume: the run finished before the kill"
else
    at=$(tail -n 1 "$TMP/k/log.csv" 2>/dev/null | cut -d, -f1)
    "$BIN" train --resume "$TMP/k" >/dev/null 2>"$TMP/err" && same_results "$TMP/s" "$TMP/k" &&
        cmp -s "$TMP/s/last.ckpt" "$TMP/k/last.ckpt" &&
        [ "$(no_ms "$TMP/s/log.csv")" = "$(no_ms "$TMP/k/log.csv")" ] &&
        ok "SST run killed (last evaluation logged: step ${at:-none}) and resumed: same results, test.hyp, last.ckpt, log.csv" ||
        ko "SST run killed and resumed differs: $(cat "$TMP/err")"
fi

# ---- translate with the trained model ----
M=$TMP/u
tr_ok() { "$BIN" translate --model "$M" "$@" 2>"$TMP/err"; }
tr_ok --beam 1 --input "$C/test.de" >"$TMP/g.hyp" && cmp -s "$TMP/g.hyp" "$M/test.greedy.hyp" &&
    ok "translate --beam 1 == the run's test.greedy.hyp" ||
    ko "translate --beam 1 != test.greedy.hyp $(cat "$TMP/err")"
tr_ok <"$C/test.de" >"$TMP/b.hyp" && cmp -s "$TMP/b.hyp" "$M/test.hyp" &&
    ok "translate (the run's beam 2, standard input) == the run's test.hyp" ||
    ko "translate != test.hyp $(cat "$TMP/err")"
tr_ok --beam 2 --decode-batch 1 <"$C/test.de" >"$TMP/b1.hyp" &&
    tr_ok --beam 2 --decode-batch 200 <"$C/test.de" >"$TMP/b200.hyp" &&
    cmp -s "$TMP/b1.hyp" "$TMP/b200.hyp" && [ "$(wc -l <"$TMP/b1.hyp")" -eq 30 ] &&
    ok "translate --beam 2: --decode-batch 1 == --decode-batch 200" ||
    ko "translate --decode-batch 1 != 200 $(cat "$TMP/err")"
tr_ok --beam 4 --decode-batch 7 <"$C/test.de" >"$TMP/b4a.hyp" &&
    tr_ok --beam 4 --decode-batch 7 --threads 2 <"$C/test.de" >"$TMP/b4b.hyp" &&
    tr_ok --beam 4 --decode-batch 1 <"$C/test.de" >"$TMP/b4c.hyp" &&
    cmp -s "$TMP/b4a.hyp" "$TMP/b4b.hyp" && cmp -s "$TMP/b4a.hyp" "$TMP/b4c.hyp" &&
    ok "translate --beam 4: repeated, 2 threads, batches of 7 or 1: the same output" ||
    ko "translate --beam 4 runs differ $(cat "$TMP/err")"
: >"$TMP/none.txt"
tr_ok --input "$TMP/none.txt" >"$TMP/none.hyp" && [ ! -s "$TMP/none.hyp" ] &&
    ok "translate: empty input, empty output" || ko "translate: empty input $(cat "$TMP/err")"
expect_error "translate: invalid UTF-8 in the input" "utf8.de:17: invalid UTF-8" translate \
    --model "$M" --input "$B/utf8.de"
cp -r "$M" "$TMP/nockpt"
rm "$TMP/nockpt/last.ckpt"
expect_error "translate: the run saved no parameters" "last.ckpt" translate --model "$TMP/nockpt"
cp -r "$M" "$TMP/trunc"
head -c 1000 "$M/last.ckpt" >"$TMP/trunc/last.ckpt"
expect_error "translate: truncated last.ckpt" "last.ckpt" translate --model "$TMP/trunc"

# ---- score ----
"$BIN" score --ref "$C/test.en" --hyp "$C/test.en" >"$TMP/out" 2>"$TMP/err" &&
    grep -q '^100\.0000' "$TMP/out" && ok "score: the reference against itself is 100" ||
    ko "score of the reference against itself: $(cat "$TMP/out" "$TMP/err")"
head -n 29 "$C/test.en" >"$B/short_test.en"
expect_error "score: line counts differ" "short_test.en has 29 lines but .*test.en has 30" score \
    --ref "$C/test.en" --hyp "$B/short_test.en"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
