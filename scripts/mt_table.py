#!/usr/bin/python3
"""mt_table.py - reproduce the SST paper's translation table with hgnn-mt on Multi30K (De -> En).

Trains the encoder-decoder Transformer with every linear map full rank, LoRA, ReLoRA* and SST at
widths d in --dims (ffn 4d, 4 heads, 3+3 layers; rank r = d/8) for --epochs (default 30) over
--seeds seeds (default 1), one hgnn-mt run per cell with its own --out folder under --runs.
A cell whose folder holds result.json is done and skipped; one interrupted half-way (args.txt
without result.json) is continued with `hgnn-mt train --resume`; so the script can be stopped
and started again. Cells run --jobs at a time (each on --threads threads). Writes
  OUTDIR/TAG.md    test BLEU (beam 2) per d and method, how much of LoRA's gap to full SST
                   closes per d ((SST - LoRA) / (full - LoRA)), and per cell BLEU beam/greedy,
                   validation perplexity, trainable parameters
  OUTDIR/TAG.json  every run's result line
  OUTDIR/TAG.png   validation loss against steps per method, one panel per d (each run's log.csv)
Usage: scripts/mt_table.py [--dims 64,128,256] [--methods full,lora,relora,sst] [--seeds 1]
           [--epochs 30] [--steps N] [--jobs 1] [--threads 1] [--runs DIR] [--outdir DIR]
           [--tag mt_table] [--extra "--spm-model spm.model"] [--bin build/hgnn-mt]
"""
import argparse
import concurrent.futures as cf
import csv
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import mean_std, pyplot, write_json, write_table  # noqa: E402
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["full", "lora", "relora", "sst"]
NAMES = {"full": "full", "lora": "LoRA", "relora": "ReLoRA*", "sst": "SST"}
COLORS = {"full": "gray", "lora": "tab:orange", "relora": "tab:green", "sst": "tab:blue"}


def cell_dir(a, d, method, seed):
    """One folder per cell and budget: a different --epochs/--steps is another cell."""
    budget = "e%d" % a.epochs + ("_n%d" % a.steps if a.steps else "")
    rank = "" if method == "full" else "_r%d" % (d // 8)
    return os.path.join(a.runs, "d%d_%s%s_%s_s%d" % (d, method, rank, budget, seed))


def run_cell(a, d, method, seed):
    """The cell's result (its result.json), training it first unless it is done."""
    out = cell_dir(a, d, method, seed)
    result = os.path.join(out, "result.json")
    if not os.path.exists(result):
        if os.path.exists(os.path.join(out, "args.txt")):
            cmd = [a.bin, "train", "--resume", out, "--quiet"]
        else:
            cmd = [a.bin, "train", "--dim", str(d), "--ffn", str(4 * d), "--heads", "4",
                   "--method", method, "--rank", str(d // 8), "--epochs", str(a.epochs),
                   "--seed", str(seed), "--threads", str(a.threads), "--out", out,
                   "--quiet"] + (["--steps", str(a.steps)] if a.steps else []) + a.extra.split()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(result):
            raise RuntimeError("%s (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                     (p.stderr or p.stdout).strip()[-1500:]))
    with open(result) as f:
        return json.load(f)


def read_log(path):
    """(steps, validation losses) of a run's log.csv."""
    steps, vals = [], []
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("val_loss"):
                    steps.append(int(row["step"]))
                    vals.append(float(row["val_loss"]))
    except OSError:
        pass
    return steps, vals




def write_report(a, dims, methods, results, failed):
    def get(d, m, key):
        return [r[key] for (dd, mm, _), r in results.items() if (dd, mm) == (d, m) and key in r]

    seeds = "%d seed%s from %d" % (a.seeds, "s" if a.seeds > 1 else "", a.first_seed)
    budget = "%d epochs" % a.epochs + (", at most %d steps" % a.steps if a.steps else "")
    lines = ["# Multi30K De -> En with hgnn-mt: full / LoRA / ReLoRA* / SST", "",
             "Test BLEU (test2016, beam 2), %s, %s; d = width, ffn 4d, 4 heads, 3+3 layers, "
             "rank r = d/8%s. SST closes: (SST - LoRA) / (full - LoRA), the share of LoRA's gap "
             "to full training that SST recovers." %
             (seeds, budget, "; extra options: " + a.extra if a.extra else ""), "",
             "| d | r | " + " | ".join(NAMES[m] for m in methods) + " | SST closes |",
             "|---:|---:|" + "---:|" * (len(methods) + 1)]
    for d in dims:
        bleu = {m: get(d, m, "test_bleu") for m in methods}
        closes = "-"
        if all(bleu.get(m) for m in ("full", "lora", "sst")):
            f, l, s = (statistics.mean(bleu[m]) for m in ("full", "lora", "sst"))
            closes = "%.0f%%" % (100 * (s - l) / (f - l)) if f != l else "- (full = LoRA)"
        lines.append("| %d | %d | " % (d, d // 8) + " | ".join(mean_std(bleu[m]) for m in methods)
                     + " | %s |" % closes)
    lines += ["", "| d | method | BLEU beam 2 | BLEU greedy | val ppl | trainable params | "
              "optimiser floats | steps | runs |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for d in dims:
        for m in methods:
            n = len(get(d, m, "val_ppl"))
            params = get(d, m, "trainable_params")
            state = get(d, m, "optimizer_state_floats")
            steps = get(d, m, "steps")
            lines.append("| %d | %s | %s | %s | %s | %s | %s | %s | %d%s |" % (
                d, NAMES[m], mean_std(get(d, m, "test_bleu")),
                mean_std(get(d, m, "test_bleu_greedy")), mean_std(get(d, m, "val_ppl")),
                params[0] if params else "-", state[0] if state else "-",
                steps[0] if steps else "-", n,
                " (%d failed)" % failed[(d, m)] if failed.get((d, m)) else ""))
    lines += ["", "Runs: %s (one folder per cell: log.csv, result.json, checkpoints)." % a.runs]
    write_table(lines, os.path.join(a.outdir, a.tag + ".md"))
    write_json([dict(r, _cell={"dim": d, "method": m, "seed": s})
                for (d, m, s), r in sorted(results.items())], os.path.join(a.outdir, a.tag + ".json"))


def plot(a, dims, methods, results):
    plt = pyplot("mt_table")
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.4), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for m in methods:
            first = True
            for (dd, mm, s) in sorted(results):
                if (dd, mm) != (d, m):
                    continue
                steps, vals = read_log(os.path.join(cell_dir(a, d, m, s), "log.csv"))
                ax.plot(steps, vals, color=COLORS[m], lw=1.2, marker=".", ms=3, alpha=0.85,
                        label=NAMES[m] if first else None)
                first = False
        ax.set_title("d = %d, r = %d" % (d, d // 8), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("validation loss (NLL per token)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(a.outdir, a.tag + ".png"), dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-mt"))
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=0, help="cap on the steps of every run (0: none)")
    ap.add_argument("--jobs", type=int, default=1, help="cells trained at once")
    ap.add_argument("--threads", type=int, default=1, help="threads of every run")
    ap.add_argument("--extra", default="", help="options appended to every fresh run")
    ap.add_argument("--runs", default=os.path.join(ROOT, "out", "mt_table"),
                    help="folder of the runs (one per cell)")
    ap.add_argument("--outdir", default=os.path.join(ROOT, "scripts", "results"))
    ap.add_argument("--tag", default="mt_table", help="output file name stem")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("mt_table: %s not found; build first (scripts/setup.sh)" % a.bin)
    try:
        dims = [int(v) for v in a.dims.split(",") if v]
    except ValueError:
        sys.exit("mt_table: --dims %s: comma-separated widths, e.g. 64,128" % a.dims)
    if not dims or any(d < 8 or d % 8 for d in dims):
        sys.exit("mt_table: --dims: every width a multiple of 8 (r = d/8, 4 heads)")
    methods = [m for m in a.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            sys.exit("mt_table: --methods %s: unknown (one of %s)" % (m, ", ".join(METHODS)))
    if a.seeds < 1 or a.epochs < 1 or a.steps < 0 or a.jobs < 1 or a.threads < 1:
        sys.exit("mt_table: --seeds, --epochs, --jobs, --threads >= 1; --steps >= 0")
    a.runs = os.path.abspath(a.runs)

    cells = [(d, m, a.first_seed + s) for d in dims for m in methods for s in range(a.seeds)]
    results, failed = {}, {}
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futs = {ex.submit(run_cell, a, *c): c for c in cells}
        for fut in cf.as_completed(futs):
            d, m, s = futs[fut]
            try:
                r = fut.result()
            except RuntimeError as e:
                failed[(d, m)] = failed.get((d, m), 0) + 1
                print("mt_table: d %d %s seed %d failed: %s" % (d, m, s, e), file=sys.stderr)
                continue
            results[(d, m, s)] = r
            print("  d %d %-6s seed %d: BLEU %.2f (greedy %.2f), val ppl %.2f, %d steps, %.0f s"
                  % (d, m, s, r.get("test_bleu", float("nan")),
                     r.get("test_bleu_greedy", float("nan")), r["val_ppl"], r["steps"],
                     r.get("total_seconds", 0.0)), file=sys.stderr, flush=True)
    write_report(a, dims, methods, results, failed)
    plot(a, dims, methods, results)
    if failed:
        sys.exit("mt_table: %d run(s) failed (see above); the table leaves them out" %
                 sum(failed.values()))


if __name__ == "__main__":
    main()
