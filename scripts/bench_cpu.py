#!/usr/bin/python3
"""bench_cpu.py - time hgnn-train on every reference setting (CPU) and compare with the PyTorch
HyboNet reference's per-step times on the same machine kind.

Prints a Markdown table (epochs, ms per training step, total seconds, peak RSS, speed-up) and
writes it to scripts/results/bench_cpu.md (or --out). Also estimates the physical floor of one
Cora node-classification step (flops and bytes moved) and how far the measured step is from it.

Usage: scripts/bench_cpu.py [--bin build/hgnn-train] [--seeds 1] [--threads 1] [--quick]
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

# PyTorch HyboNet reference on this machine kind (Debian torch 1.13 + OpenBLAS, 1 thread): ms per
# training step (forward, backward, optimiser step), measured outside this repository.
REFERENCE_STEP_MS = {
    ("cora", "nc"): 50.0,
    ("cora", "lp"): 62.0,
    ("disease_lp", "lp"): 3.6,
    ("airport", "lp"): 8.4,
    ("airport", "nc"): 12.4,
}
SETTINGS = [("cora", "nc"), ("cora", "lp"), ("disease_lp", "lp"), ("airport", "lp"),
            ("airport", "nc"), ("disease_nc", "nc"), ("pubmed", "nc"), ("pubmed", "lp")]


def run(binary, dataset, task, seed, threads, extra):
    cmd = [binary, "--dataset", dataset, "--task", task, "--seed", str(seed), "--threads",
           str(threads), "--quiet"] + extra
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit("bench_cpu: %s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["wall_seconds"] = wall
    return res


def cora_floor(data_dir, dim=16, layers=2, dropout=0.9, classes=7):
    """Flops and bytes of one Cora NC training step as hgnn computes it (2 graph layers of width
    16; dropped input entries are skipped, so the first layer's work scales with 1 - dropout)."""
    n = 2708
    with open(os.path.join(data_dir, "cora", "features.mtx")) as f:
        for line in f:
            if not line.startswith("%"):
                _, cols, nnz_f = map(int, line.split())
                break
    with open(os.path.join(data_dir, "cora", "graph.edges")) as f:
        m = sum(1 for _ in f)
    nnz_x = (nnz_f + n) * (1 - dropout)  # surviving entries of the expmap0 input
    nnz_a = 2 * m + n                   # D^-1 (A + I)
    act = n * dim * 4                   # one activation matrix, bytes
    flops = byts = 0
    # layer 0: sparse x W^T forward and its weight gradient
    flops += 2 * (2 * nnz_x * dim)
    byts += 2 * (nnz_x * 8 + act) + 2 * (cols + 1) * dim * 4
    # later layers: dense product forward, weight gradient, input gradient
    flops += (layers - 1) * 3 * (2 * n * dim * dim)
    byts += (layers - 1) * 3 * 2 * act
    # every layer: aggregation forward and backward, head and centroid (about 8 flops/element)
    flops += layers * (2 * 2 * nnz_a * dim + 2 * 2 * 8 * n * dim)
    byts += layers * (2 * (nnz_a * 8 + 2 * act) + 2 * 2 * 2 * act)
    # decoder: logits, their gradient, class-point gradient
    flops += 3 * 2 * n * dim * classes
    byts += 3 * act
    return flops, byts


def machine_rates(working_set_bytes):
    """Attainable fp32 GEMM flop rate (one thread) and copy bandwidth for an array of the step's
    working-set size, measured with NumPy (OpenBLAS) so the floor uses this machine's figures."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads OpenBLAS: one core, as the step
    import numpy as np
    a = np.random.rand(1024, 1024).astype(np.float32)
    b = np.random.rand(1024, 1024).astype(np.float32)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    gflops = 5 * 2 * 1024 ** 3 / (time.perf_counter() - t) / 1e9
    x = np.ones(max(working_set_bytes // 8, 1 << 16), dtype=np.float32)
    y = np.empty_like(x)
    np.copyto(y, x)
    reps = 50
    t = time.perf_counter()
    for _ in range(reps):
        np.copyto(y, x)
    gbs = reps * 2 * x.nbytes / (time.perf_counter() - t) / 1e9  # read + write
    return gflops, gbs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-train"))
    ap.add_argument("--seeds", type=int, default=1, help="seeds per setting (1234, 1235, ...)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="only the five settings with reference times")
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "results", "bench_cpu.md"))
    ap.add_argument("--peak-gflops", type=float, default=0,
                    help="fp32 flop rate of one core (default: measured, 1024^3 SGEMM)")
    ap.add_argument("--bandwidth-gbs", type=float, default=0,
                    help="copy bandwidth (default: measured on an array of the step's working set)")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("bench_cpu: %s not found; build first (scripts/setup.sh)" % a.bin)

    settings = [s for s in SETTINGS if not a.quick or s in REFERENCE_STEP_MS]
    rows = []
    for ds, task in settings:
        res = [run(a.bin, ds, task, 1234 + i, a.threads, []) for i in range(a.seeds)]
        step = sorted(r["epoch_ms"] for r in res)[len(res) // 2]
        metric = "test_acc" if task == "nc" else "test_roc_auc"
        rows.append({
            "setting": "%s %s" % (ds, task),
            "epochs": sum(r["epochs"] for r in res) / len(res),
            "step_ms": step,
            "total_s": sum(r["total_seconds"] for r in res) / len(res),
            "rss": max(r["peak_rss_mib"] for r in res),
            "metric": sum(r[metric] for r in res) / len(res) * 100,
            "metric_name": metric,
            "ref": REFERENCE_STEP_MS.get((ds, task)),
        })
        print("  %-14s done" % rows[-1]["setting"], file=sys.stderr)

    lines = []
    lines.append("hgnn-train CPU benchmark: %s, %d thread(s), %d seed(s), %s"
                 % (os.uname().nodename, a.threads, a.seeds, time.strftime("%Y-%m-%d")))
    lines.append("")
    lines.append("| setting | epochs | ms/step | total s | peak RSS MiB | test metric | "
                 "reference ms/step | speed-up per step |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = "%.1f" % r["ref"] if r["ref"] else "-"
        spd = "%.0fx" % (r["ref"] / r["step_ms"]) if r["ref"] else "-"
        lines.append("| %s | %.0f | %.3f | %.2f | %.1f | %s %.1f | %s | %s |"
                     % (r["setting"], r["epochs"], r["step_ms"], r["total_s"], r["rss"],
                        r["metric_name"], r["metric"], ref, spd))
    flops, byts = cora_floor(os.path.join(ROOT, "datasets", "data"))
    if not a.peak_gflops or not a.bandwidth_gbs:
        g, bw = machine_rates(int(byts / 4))
        a.peak_gflops = a.peak_gflops or g
        a.bandwidth_gbs = a.bandwidth_gbs or bw
    t_flops = flops / (a.peak_gflops * 1e9) * 1e3
    t_bytes = byts / (a.bandwidth_gbs * 1e9) * 1e3
    floor = max(t_flops, t_bytes)
    cora = next((r for r in rows if r["setting"] == "cora nc"), None)
    lines.append("")
    lines.append("Physical floor of one Cora NC step (2 graph layers, dim 16, dropout 0.9): %.2f "
                 "MFLOP, %.2f MB moved -> %.3f ms at %.0f GFLOP/s (SGEMM, measured), %.3f ms at "
                 "%.0f GB/s (copy of a working-set-sized array, measured); floor %.3f ms."
                 % (flops / 1e6, byts / 1e6, t_flops, a.peak_gflops, t_bytes, a.bandwidth_gbs, floor))
    if cora:
        lines.append("Measured %.3f ms: %.1fx the floor." % (cora["step_ms"], cora["step_ms"] / floor))
    write_table(lines, a.out)


if __name__ == "__main__":
    main()
