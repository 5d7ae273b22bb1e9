#!/usr/bin/env python3
"""bench_sst.py - cost of one training step per linear-map method relative to full rank, and the
amortised share of SST's re-orthogonalisation (target: an SST step must cost at most 1.3x a
full-rank step on the same problem).

Every run trains a fixed number of epochs (no early stopping), so each method does the same work;
`epoch_ms` is the median step time, `schedule_seconds` the time spent in SST round ends (SVD) and
ReLoRA merges, reported as a share of all training time. Writes scripts/results/bench_sst.md.
Usage: scripts/bench_sst.py [--bin build/hgnn-train] [--epochs 3400] [--threads 1]
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import write_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = [("cora", "nc"), ("disease_lp", "lp"), ("airport", "lp"), ("pubmed", "nc")]
METHODS = [("full", 1), ("lora", 1), ("relora", 1), ("sst", 1), ("sst", 2)]


def run(binary, ds, task, method, rank, epochs, threads):
    cmd = [binary, "--dataset", ds, "--task", task, "--method", method, "--rank", str(rank),
           "--epochs", str(epochs), "--patience", str(10 * epochs), "--threads", str(threads),
           "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("bench_sst: %s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-train"))
    ap.add_argument("--epochs", type=int, default=3400,
                    help="epochs per run (3400 covers two SST rounds at r = 1: 16 x 100 steps each)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "results", "bench_sst.md"))
    a = ap.parse_args()
    lines = ["Step cost per method (%d epochs each, %d thread(s), %s, %s)" %
             (a.epochs, a.threads, os.uname().nodename, time.strftime("%Y-%m-%d")), "",
             "| setting | method | ms/step | vs full | schedule share | SVD rounds / merges |",
             "|---|---|---|---|---|---|"]
    for ds, task in SETTINGS:
        full = None
        for method, rank in METHODS:
            r = run(a.bin, ds, task, method, rank, a.epochs, a.threads)
            if method == "full":
                full = r["epoch_ms"]
            name = method if method == "full" else "%s r=%d" % (method, rank)
            share = r["schedule_seconds"] / max(r["train_seconds"], 1e-12)
            lines.append("| %s %s | %s | %.3f | %.2fx | %.2f%% | %d / %d |" % (
                ds, task, name, r["epoch_ms"], r["epoch_ms"] / full, 100 * share,
                r["sst_reorths"], r["relora_merges"]))
            print("  %s %s %s done" % (ds, task, name), file=sys.stderr)
    write_table(lines, a.out)


if __name__ == "__main__":
    main()
