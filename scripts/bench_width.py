#!/usr/bin/python3
"""bench_width.py - HyboNet step time against the model width on Cora node classification (CPU,
one thread), next to a physical floor for each width.

For every --dim (default 16, 64, 128) it runs `hgnn-train --dataset cora --task nc --dim D` a
few times, round-robin over the widths, and keeps the median of the runs' epoch_ms (itself the
median step time of a run) and the largest peak RSS. The floor of one training step is

    GEMM FLOPs / measured SGEMM rate  +  streamed bytes / measured copy bandwidth

with the GEMM FLOPs of the dense products (every graph layer after the first: z = hd W^T, the
weight gradient dz^T hd, the input gradient dz W, 2 n d^2 each; the class logits and their
gradients) and the bytes that the sparse and element-wise passes must stream at least once (the
CSR arrays of the input and of the aggregation, forward and backward, and every n x d activation
each pass reads or writes). The SGEMM rate is measured here at each width's own layer shape
(n x d times d x d, one thread, NumPy on the system OpenBLAS) and the copy bandwidth by copying
a 32 MiB array. Prints a Markdown table and writes it to scripts/results/bench_width.md (--out).

Usage: scripts/bench_width.py [--bin build/hgnn-train] [--dims 16,64,128] [--repeats 5]
                              [--epochs 30] [--out FILE]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import write_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "datasets", "data", "cora")
# Cora NC with the reference settings: 3 layers = 2 graph layers, 7 classes, dropout 0.9,
# 140 training nodes (the split the bundled --dataset cora uses)
LAYERS, CLASSES, DROPOUT, N_TRAIN = 2, 7, 0.9, 140


def cora_sizes():
    """n, feature columns, stored feature entries, adjacency entries (D^-1 (A + I))."""
    with open(os.path.join(DATA, "features.mtx")) as f:
        for line in f:
            if not line.startswith("%"):
                n, cols, nnz_f = map(int, line.split())
                break
    with open(os.path.join(DATA, "graph.edges")) as f:
        m = sum(1 for line in f if line.strip())
    return n, cols, nnz_f, 2 * m + n


def step_cost(d):
    """(GEMM flops, streamed bytes) of one training step at width d."""
    n, cols, nnz_f, nnz_a = cora_sizes()
    din0, nnz_x = cols + 1, nnz_f + n          # expmap0 input: the time coordinate added
    act = 4 * n * d                             # one n x d float activation
    flops = (LAYERS - 1) * 3 * 2 * n * d * d    # dense layers: forward, weight and input grads
    flops += 2 * n * CLASSES * d + 2 * 2 * N_TRAIN * CLASSES * d  # logits, their gradients
    byts = 0
    # first layer: the CSR input forward (values, columns) and transposed backward, the weight
    # and its gradient, z and y written, dz read
    byts += 2 * 8 * nnz_x + 2 * 4 * din0 * d + 3 * act
    # aggregation, every layer: A forward and A^T backward (8 bytes an entry), y read, S and out
    # written; gS read, dy formed
    byts += LAYERS * (2 * 8 * nnz_a + 5 * act)
    # dense layers' element-wise passes: x read, hd z y written; z hd x S_prev read, dz gx written
    byts += (LAYERS - 1) * 10 * act
    # decoder, loss and the top centroid backward
    byts += 4 * act
    return flops, byts


def machine_rates(dims):
    """SGEMM rate (flop/s) at each width's layer shape and copy bandwidth (bytes/s), one thread."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads OpenBLAS
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy as np
    n = cora_sizes()[0]
    rates = {}
    for d in dims:
        a = np.random.rand(n, d).astype(np.float32)
        b = np.random.rand(d, d).astype(np.float32)
        c = np.empty((n, d), np.float32)
        np.matmul(a, b, out=c)
        reps = max(3, int(2e9 / (2 * n * d * d)))
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                np.matmul(a, b, out=c)
            best = min(best, (time.perf_counter() - t0) / reps)
        rates[d] = 2 * n * d * d / best
    src = np.ones(8 << 20, np.float32)  # 32 MiB
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(10):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return rates, 2 * src.nbytes / best  # read + write


def run(binary, dim, epochs):
    """(median step ms, peak RSS MiB) of one run. The peak RSS comes from GNU time, whose child
    starts from time's small address space: a process's ru_maxrss (what hgnn-train reports)
    keeps the high-water mark of the address space it replaced at exec, so a child started
    straight from this Python process would report at least this process's size."""
    cmd = ["/usr/bin/time", "-f", "HG_MAXRSS_KB %M", binary, "--dataset", "cora", "--task", "nc",
           "--dim", str(dim), "--epochs", str(epochs), "--threads", "1", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("bench_width: %s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    res = json.loads(p.stdout.strip().splitlines()[-1])
    kb = [l for l in p.stderr.splitlines() if l.startswith("HG_MAXRSS_KB ")]
    return res["epoch_ms"], int(kb[-1].split()[1]) / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-train"))
    ap.add_argument("--dims", default="16,64,128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "results", "bench_width.md"))
    a = ap.parse_args()
    dims = [int(x) for x in a.dims.split(",")]
    if not os.access("/usr/bin/time", os.X_OK):
        sys.exit("bench_width: needs GNU time (apt-get install time) for the peak RSS")
    ms = {d: [] for d in dims}
    rss = {d: 0.0 for d in dims}
    for _ in range(a.repeats):  # round-robin: a busy spell hits every width alike
        for d in dims:
            t, r = run(a.bin, d, a.epochs)
            ms[d].append(t)
            rss[d] = max(rss[d], r)
    rates, bw = machine_rates(dims)  # after the runs: NumPy is loaded only here
    lines = ["# HyboNet step time against the width (Cora NC, CPU, 1 thread)", "",
             "`%s`, %d epochs, median of %d runs (each run: its median step). Machine: %s, "
             "%d CPUs, shared with other jobs while measured. Floor = GEMM FLOPs / SGEMM rate "
             "(measured at the layer shape n x d x d) + streamed bytes / copy bandwidth "
             "(%.1f GB/s measured)." % (os.path.relpath(a.bin, ROOT), a.epochs, a.repeats,
                                        platform.processor() or platform.machine(),
                                        os.cpu_count(), bw / 1e9), "",
             "| dim | ms/step | peak RSS MiB | GEMM MFLOP | SGEMM GFLOP/s | MB streamed | "
             "floor ms | measured / floor |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in dims:
        med = sorted(ms[d])[len(ms[d]) // 2]
        flops, byts = step_cost(d)
        floor = 1e3 * (flops / rates[d] + byts / bw)
        lines.append("| %d | %.3f | %.1f | %.1f | %.1f | %.2f | %.3f | %.1f |" % (
            d, med, rss[d], flops / 1e6, rates[d] / 1e9, byts / 1e6, floor, med / floor))
    write_table(lines, a.out)


if __name__ == "__main__":
    main()
