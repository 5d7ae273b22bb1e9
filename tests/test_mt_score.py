#!/usr/bin/env python3
"""test_mt_score.py - `hgnn-mt score` as a user runs it: the printed scores equal sacreBLEU
2.6.0's (tests/data/bleu_ref/expected_sacrebleu.json, 4 decimals), --sentence and --json, and
bad input (one line "hgnn-mt: ...", exit status 2).

Usage: test_mt_score.py HGNN_MT SOURCE_ROOT"""

import json
import os
import subprocess
import sys
import tempfile

EXE, ROOT = sys.argv[1], sys.argv[2]
DATA = os.path.join(ROOT, "tests", "data", "bleu_ref")
REF = os.path.join(ROOT, "datasets", "data", "multi30k", "test2016.en")
failures = []


def run(*args):
    return subprocess.run([EXE, "score", *args], capture_output=True, text=True)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


expected = json.load(open(os.path.join(DATA, "expected_sacrebleu.json"), encoding="utf-8"))
hyp = os.path.join(DATA, "hyp_swaphalf.en")
flags = {"13a": [], "13a_lc": ["--lowercase"], "intl": ["--tokenize", "intl"],
         "none": ["--tokenize", "none"], "chrF2": ["--metric", "chrf"]}
for case in expected["cases"]:
    if case["hyp"] != "hyp_swaphalf.en":
        continue
    p = run("--ref", REF, "--hyp", hyp, *flags[case["config"]])
    want = f"{case['score']:.4f}"
    check(p.returncode == 0 and p.stdout == want + "\n",
          f"{case['config']}: printed {p.stdout!r} (status {p.returncode}, {p.stderr!r}), "
          f"want {want}")
    if case["config"] == "13a":
        p = run("--ref", REF, "--hyp", hyp, "--json")
        got = json.loads(p.stdout)
        check(got["counts"] == case["counts"] and got["totals"] == case["totals"] and
              got["sys_len"] == case["sys_len"] and got["ref_len"] == case["ref_len"] and
              got["signature"] == case["signature"] and f"{got['score']:.4f}" == want,
              f"--json: {p.stdout!r}")

# --sentence: one line per segment, each sentence_bleu's score
p = run("--ref", REF, "--hyp", hyp, "--sentence")
lines = p.stdout.splitlines()
check(p.returncode == 0 and len(lines) == 1000,
      f"--sentence: {len(lines)} lines, status {p.returncode}")
for s in expected["sentence_bleu_default"]:
    if s["hyp_file"] == "hyp_swaphalf.en":
        check(lines[s["line"] - 1] == f"{s['score']:.4f}",
              f"--sentence line {s['line']}: {lines[s['line'] - 1]} vs {s['score']:.4f}")

# bad input: one line naming the file (and line), exit status 2
with tempfile.TemporaryDirectory() as tmp:
    bad = os.path.join(tmp, "bad.en")
    with open(bad, "wb") as f:
        f.write(b"fine\nbroken \xc3( here\n")
    short = os.path.join(tmp, "short.en")
    with open(short, "w", encoding="utf-8") as f:
        f.write("one line\n")
    two = os.path.join(tmp, "two.en")
    with open(two, "w", encoding="utf-8") as f:
        f.write("a\nb\n")
    for args, needle in [
        (["--ref", two, "--hyp", bad], bad + ":2: invalid UTF-8 at byte 8"),
        (["--ref", REF, "--hyp", short], "has 1 lines but"),
        (["--ref", REF, "--hyp", os.path.join(tmp, "missing.en")], "missing.en"),
        (["--ref", REF, "--hyp", hyp, "--bogus", "1"], "unknown option '--bogus'"),
        (["--ref", REF, "--hyp", hyp, "--tokenize", "zh"], "option --tokenize: 'zh'"),
        (["--ref", REF], "needs --ref and --hyp"),
    ]:
        p = run(*args)
        err = p.stderr.splitlines()
        check(p.returncode == 2 and len(err) == 1 and err[0].startswith("hgnn-mt: ") and
              needle in err[0] and p.stdout == "",
              f"{args}: status {p.returncode}, stderr {p.stderr!r}, want a line with {needle!r}")
p = subprocess.run([EXE, "translate-nothing"], capture_output=True, text=True)
check(p.returncode == 2 and "unknown command" in p.stderr, f"unknown command: {p.stderr!r}")

print("test_mt_score:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
