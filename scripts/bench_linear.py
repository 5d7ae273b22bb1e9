#!/usr/bin/env python3
"""bench_linear.py - one training step of one linear map through sst/, per method and shape.

Runs build/hgnn-bench-linear (forward + backward + the group's fused optimiser step) for rows
T = 4096 and the shapes of the Transformer's maps (out x in) 512x512, 2048x512, 512x2048,
768x3072 and 3072x768, with every method: full rank, LoRA (r = d/8), ReLoRA* (r = d/8) and SST
(r = d/8), d = min(out, in). Repeats are interleaved (round-robin over all cases) and the median
is kept. Prints, and writes to scripts/results/bench_linear.md (and .json):

  - ms per step, its ratio to full rank, and full rank's FLOP floor (6 T m n over the measured
    single-thread SGEMM rate: three GEMMs of that size are the least any method does);
  - the amortised cost of the schedule's boundary work at the paper's settings, an upper bound:
    a run with a boundary at every step (SST: an iteration start and a round end; ReLoRA*: a
    merge) gives its extra time, divided by T3 = 200 (SST's round ends come only every
    T2 = ceil(d / r) iterations);
  - bytes the map holds (parameters, frozen ones and the materialised weight included, gradients,
    moments, own scratch) and their ratio to full rank, and apart the shared workspace the
    map asks of its model's group (activation-sized products, the round-end SVD), which every
    map of a model reuses in turn.

Targets (for the record): SST <= 1.15x full, LoRA <= 1.0x, LoRA and SST memory below full's.

Usage: scripts/bench_linear.py [--build build] [--rows 4096] [--repeat 3] [--reps 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import write_table  # noqa: E402

SHAPES = [(512, 512), (2048, 512), (512, 2048), (768, 3072), (3072, 768)]
METHODS = ["full", "lora", "relora", "sst"]
T3 = 200


def run(exe, args):
    out = subprocess.run([exe] + args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median kept)")
    ap.add_argument("--reps", type=int, default=3, help="timed steps per run (median kept)")
    ap.add_argument("--shapes", default=None, help="e.g. 512x512,768x3072")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "bench_linear"))
    a = ap.parse_args()
    exe = os.path.join(a.build, "hgnn-bench-linear")
    if not os.access(exe, os.X_OK):
        sys.exit(f"bench_linear.py: {exe} not found: build first (scripts/setup.sh)")
    shapes = SHAPES
    if a.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]

    gflops = max(run(exe, ["--sgemm", "1"])["sgemm_gflops"] for _ in range(3))
    samples = {}
    for rnd in range(a.repeat):
        for (m, n) in shapes:
            for meth in METHODS:
                r = run(exe, ["--method", meth, "--m", str(m), "--n", str(n),
                              "--rows", str(a.rows), "--reps", str(a.reps)])
                samples.setdefault((m, n, meth), []).append(r)
                print(f"round {rnd + 1}/{a.repeat}: {m}x{n} {meth} {r['step_ms']:.1f} ms",
                      file=sys.stderr)

    rows_out = []
    lines = [f"# One linear map, one training step (rows T = {a.rows})", "",
             f"Measured single-thread SGEMM rate: {gflops:.1f} GFLOP/s. Medians of {a.repeat} "
             f"interleaved runs of {a.reps} steps each. Bytes held: parameters (frozen and the "
             "materialised weight included) + gradients + moments + own scratch.", "",
             "| shape (out x in) | method | r | ms/step | vs full | floor (full) ms | "
             "boundary, amortised ms | bytes held (MiB) | vs full | shared workspace (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (m, n) in shapes:
        full_ms = statistics.median(s["step_ms"] for s in samples[(m, n, "full")])
        full_b = None
        floor_ms = 6.0 * a.rows * m * n / (gflops * 1e9) * 1e3
        for meth in METHODS:
            ss = samples[(m, n, meth)]
            ms = statistics.median(s["step_ms"] for s in ss)
            s0 = ss[0]
            held = s0["params_bytes"] + s0["grads_bytes"] + s0["moments_bytes"] + s0["scratch_bytes"]
            if meth == "full":
                full_b = held
            r = s0["rank"]
            extra = statistics.median(s["boundary_extra_ms"] for s in ss)
            # an upper bound: the measured boundary is an iteration start plus a round end, which
            # at the paper's settings come every T3 and every T3 * ceil(k / r) steps
            amort = extra / T3 if meth in ("sst", "relora") else 0.0
            rec = dict(shape=f"{m}x{n}", method=meth, rank=r, step_ms=ms, ratio=ms / full_ms,
                       floor_ms=floor_ms, boundary_amortised_ms=amort, held_bytes=held,
                       held_ratio=held / full_b, shared_workspace_bytes=s0["shared_workspace_bytes"])
            rows_out.append(rec)
            lines.append(f"| {m}x{n} | {meth} | {r or '-'} | {ms:.1f} | {ms / full_ms:.2f} | "
                         f"{floor_ms:.1f} | {amort:.3f} | {held / 2**20:.2f} | "
                         f"{held / full_b:.2f} | {s0['shared_workspace_bytes'] / 2**20:.2f} |")
    write_table(lines, a.out + ".md")
    with open(a.out + ".json", "w") as f:
        json.dump(dict(sgemm_gflops=gflops, rows=a.rows, results=rows_out), f, indent=1)


if __name__ == "__main__":
    main()
