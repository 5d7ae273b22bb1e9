#!/bin/sh
# Converter test: convert the original distribution files in SHARED_DIR/datasets-raw with
# scripts/convert_dataset.py and require byte-identical output to SHARED_DIR/datasets/<name>/
# and to the bundled copy SOURCE_ROOT/datasets/data/<name>/.
#   usage: tests/test_convert.sh SOURCE_ROOT SHARED_DIR
# Exit 77 (skip) without the raw files or without /usr/bin/python3 + numpy/scipy/networkx.

if [ $# -ne 2 ]; then
    echo "usage: $0 SOURCE_ROOT SHARED_DIR" >&2
    exit 2
fi
SRC_ROOT=$1
SHARED=$2
RAW=$SHARED/datasets-raw
REF=$SHARED/datasets
BUNDLED=$SRC_ROOT/datasets/data
PY=/usr/bin/python3
CONVERT=$SRC_ROOT/scripts/convert_dataset.py

if [ ! -d "$RAW" ]; then
    echo "SKIP: raw dataset directory $RAW not found"
    exit 77
fi
if [ ! -x "$PY" ]; then
    echo "SKIP: $PY not found"
    exit 77
fi
if ! err=$("$PY" -c 'import numpy, scipy.sparse, networkx' 2>&1); then
    echo "SKIP: $PY cannot import numpy, scipy and networkx: $(printf '%s\n' "$err" | tail -n 1)"
    exit 77
fi
if [ ! -f "$CONVERT" ]; then
    echo "FAIL: $CONVERT not found"
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_convert.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM

pass=0
fail=0

# check NAME FORMAT: convert RAW/NAME into TMP/NAME and compare with the references
check() {
    name=$1
    format=$2
    out=$TMP/$name
    if ! "$PY" "$CONVERT" --format "$format" --name "$name" --src "$RAW/$name" --out "$out" \
            >"$TMP/$name.log" 2>&1; then
        echo "FAIL: $name: convert_dataset.py --format $format exited non-zero:"
        sed 's/^/    /' "$TMP/$name.log"
        fail=$((fail + 1))
        return
    fi
    ok=1
    for refdir in "$REF/$name" "$BUNDLED/$name"; do
        if [ ! -d "$refdir" ]; then
            echo "FAIL: $name: reference directory $refdir not found"
            ok=0
            continue
        fi
        # every reference data file must be produced ...
        for ref in "$refdir"/*; do
            f=$(basename "$ref")
            case $f in README.md) continue ;; esac
            if [ ! -e "$out/$f" ]; then
                echo "FAIL: $name: $f was not produced (reference: $ref)"
                ok=0
            fi
        done
        # ... and every produced file must be byte-identical to its reference
        for got in "$out"/*; do
            f=$(basename "$got")
            if [ ! -e "$refdir/$f" ]; then
                # files the project adds beyond the reference datasets (features_lp.mtx) are checked
                # against the bundled copy only
                [ "$refdir" = "$REF/$name" ] && [ -e "$BUNDLED/$name/$f" ] && continue
                echo "FAIL: $name: produced $f, which $refdir does not have"
                ok=0
            elif ! cmp -s "$got" "$refdir/$f"; then
                echo "FAIL: $name: $f differs from $refdir/$f: $(cmp "$got" "$refdir/$f" 2>&1 | head -n 1)"
                ok=0
            fi
        done
    done
    if [ $ok = 1 ]; then
        echo "PASS: $name ($format): $(ls "$out" | tr '\n' ' ')identical to $REF/$name and $BUNDLED/$name"
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
}

check cora planetoid
check disease_lp hgcn-csv
check disease_nc hgcn-csv
check airport airport

# negative case: a missing raw directory -> non-zero exit, one-line error naming it
missing=$TMP/no-such-raw-dir
"$PY" "$CONVERT" --format planetoid --name cora --src "$missing" --out "$TMP/neg" \
    >"$TMP/neg.out" 2>"$TMP/neg.err"
rc=$?
nlines=$(wc -l <"$TMP/neg.err")
if [ $rc -ne 0 ] && [ "$nlines" -eq 1 ] && grep -q "no-such-raw-dir" "$TMP/neg.err" \
        && [ ! -e "$TMP/neg" ]; then
    echo "PASS: missing raw directory: exit $rc, $(cat "$TMP/neg.err")"
    pass=$((pass + 1))
else
    echo "FAIL: missing raw directory: exit $rc, $nlines stderr line(s), output dir created: $([ -e "$TMP/neg" ] && echo yes || echo no)"
    sed 's/^/    /' "$TMP/neg.err"
    fail=$((fail + 1))
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
