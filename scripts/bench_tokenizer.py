#!/usr/bin/env python3
"""bench_tokenizer.py - speed of GPT-2's byte-level BPE (`hgnn-lm tokenize`, one thread) on the
LM corpus, and its token counts.

Each file is tokenised `--repeats` times (a fresh process each time, so the pre-token cache starts
empty); the encoding's own time is the one hgnn-lm prints (wall clock and process CPU time,
reading and writing the files excluded). The table gives the best of the repeats in MB/s
(1 MB = 10^6 bytes), the token count, and whether detokenizing gave back the exact bytes.
Writes scripts/results/bench_tokenizer.md.
Usage: scripts/bench_tokenizer.py [--bin build/hgnn-lm] [--repeats 3] FILE...
(files: valid.txt and train.txt of the folder $HGNN_LM_CORPUS names, e.g. a Wikipedia text
corpus; the default is datasets/data/lm of the repository)
"""
import argparse
import filecmp
import os
import platform
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import write_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LM = os.environ.get("HGNN_LM_CORPUS", os.path.join(ROOT, "datasets", "data", "lm"))
LINE = re.compile(r": (\d+) bytes, (\d+) tokens, encoded in ([0-9.]+) s wall, ([0-9.]+) s CPU")


def tokenize(binary, path, out):
    p = subprocess.run([binary, "tokenize", "--in", path, "--out", out], capture_output=True,
                       text=True)
    m = LINE.search(p.stdout)
    if p.returncode != 0 or not m:
        sys.exit("bench_tokenizer: tokenize %s failed: %s" % (path, p.stderr.strip()))
    return int(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-lm"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("files", nargs="*",
                    default=[os.path.join(LM, "valid.txt"), os.path.join(LM, "train.txt")])
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tok, back = os.path.join(tmp, "t.bin"), os.path.join(tmp, "back.txt")
        for path in a.files:
            runs = [tokenize(a.bin, path, tok) for _ in range(a.repeats)]
            size, ntok = runs[0][0], runs[0][1]
            wall, cpu = min(r[2] for r in runs), min(r[3] for r in runs)
            p = subprocess.run([a.bin, "detokenize", "--in", tok, "--out", back, "--quiet"])
            exact = p.returncode == 0 and filecmp.cmp(path, back, shallow=False)
            rows.append("| %s | %d | %d | %.3f | %.1f | %.1f | %s |" % (
                os.path.basename(path), size, ntok, size / ntok, size / 1e6 / max(wall, 1e-9),
                size / 1e6 / max(cpu, 1e-9), "yes" if exact else "NO"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# GPT-2 byte-level BPE: hgnn-lm tokenize, one thread",
        "",
        "Best of %d runs per file (fresh process each: the pre-token cache starts empty); the "
        "encoding alone (pre-tokeniser, merges, cache), files read and written excluded. "
        "MB = 10^6 bytes." % a.repeats,
        "The machine (%s, %d CPUs, load average %.1f when the table was written) was shared "
        "with other jobs: wall-clock figures are noisy and low; process CPU time is the fairer "
        "measure of the code." % (platform.machine(), os.cpu_count() or 0, load),
        "",
        "| file | bytes | tokens | bytes/token | MB/s (wall) | MB/s (CPU time) | round trip exact |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ] + rows
    write_table(lines, os.path.join(ROOT, "scripts", "results", "bench_tokenizer.md"))


main()
