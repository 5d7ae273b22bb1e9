#!/usr/bin/python3
"""sst_table.py - reproduce the SST paper's graph table with hgnn-train.

For every dataset/task where the data exist here, trains HyboNet with every linear map in each
mode (full, LoRA, ReLoRA*, SST) at ranks 1 and 2, over several seeds, and writes
  scripts/results/sst_table.md   Markdown table, test metric mean +- std (percent)
  scripts/results/sst_table.json every run's JSON result
  scripts/results/sst_table.png  test metric against method and rank
  scripts/results/sst_prune.md   singular-value pruning sweep: test metric against K kept
Usage: scripts/sst_table.py [--seeds 3] [--jobs 2] [--quick] [--bin build/hgnn-train]
       [--extra "--sst-sampling mixed"]   (options appended to every run, e.g. to compare choices)
"""
import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = [("cora", "nc"), ("disease_lp", "lp"), ("airport", "lp"), ("airport", "nc"),
            ("cora", "lp"), ("disease_nc", "nc"), ("pubmed", "nc"), ("pubmed", "lp")]
QUICK = [("cora", "nc"), ("disease_lp", "lp"), ("airport", "lp")]
METHODS = [("full", 0), ("lora", 1), ("relora", 1), ("sst", 1), ("lora", 2), ("relora", 2),
           ("sst", 2)]
PRUNE_K = [1, 2, 4, 8, 12, 16]
# the PyTorch implementation of the same specification inside the HyboNet reference
REFERENCE = {
    ("cora", "nc"): {("full", 0): 80.9, ("lora", 1): 44.4, ("sst", 1): 75.7, ("lora", 2): 64.0,
                     ("sst", 2): 75.9},
    ("disease_lp", "lp"): {("full", 0): 96.5, ("lora", 1): 89.3, ("sst", 1): 93.8,
                           ("lora", 2): 95.8, ("sst", 2): 96.6},
    ("airport", "lp"): {("full", 0): 96.4, ("lora", 1): 93.9, ("sst", 1): 95.0},
}


def run_one(binary, ds, task, method, rank, seed, extra):
    cmd = [binary, "--dataset", ds, "--task", task, "--method", method, "--seed", str(seed),
           "--quiet", "--prune-sigma", ",".join(str(k) for k in PRUNE_K)] + extra
    if method != "full":
        cmd += ["--rank", str(rank)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.strip()))
    return json.loads(p.stdout.strip().splitlines()[-1])


def metric_key(task):
    return "test_acc" if task == "nc" else "test_roc_auc"


def fmt(vals):
    if not vals:
        return "-"
    m = statistics.mean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return "%.1f ± %.1f" % (m, s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-train"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1234)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="only cora nc, disease_lp lp and airport lp")
    ap.add_argument("--extra", default="", help="options appended to every run")
    ap.add_argument("--methods", default="full,lora,relora,sst",
                    help="comma-separated subset of the methods to run")
    ap.add_argument("--outdir", default=os.path.join(ROOT, "scripts", "results"))
    ap.add_argument("--tag", default="sst_table", help="output file name stem")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("sst_table: %s not found; build first (scripts/setup.sh)" % a.bin)
    settings = QUICK if a.quick else SETTINGS
    extra = a.extra.split()
    methods = [(m, r) for m, r in METHODS if m in a.methods.split(",")]
    jobs = []
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        for ds, task in settings:
            for method, rank in methods:
                for s in range(a.seeds):
                    seed = a.first_seed + s
                    fut = ex.submit(run_one, a.bin, ds, task, method, rank, seed, extra)
                    jobs.append(((ds, task, method, rank, seed), fut))
        results = []
        for key, fut in jobs:
            r = fut.result()
            results.append((key, r))
            print("  %-10s %s %-6s r=%d seed %d: %s %.4f (%d epochs, %.1f s)" % (
                key[0], key[1], key[2], key[3], key[4], metric_key(key[1]),
                r[metric_key(key[1])], r["epochs"], r["total_seconds"]), file=sys.stderr)

    os.makedirs(a.outdir, exist_ok=True)
    with open(os.path.join(a.outdir, a.tag + ".json"), "w") as f:
        json.dump([dict(r, _key=list(k)) for k, r in results], f, indent=1)

    def vals(ds, task, method, rank, field=None):
        field = field or metric_key(task)
        return [r[field] * 100 for k, r in results if k[:4] == (ds, task, method, rank)]

    head = "| setting | " + " | ".join(
        "full" if m == "full" else "%s r=%d" % ({"lora": "LoRA", "relora": "ReLoRA*",
                                                 "sst": "SST"}[m], r) for m, r in methods) + " |"
    lines = ["Test metric (%%, mean ± std over %d seeds from %d), hgnn-train %s" %
             (a.seeds, a.first_seed, " ".join(extra) or "defaults"), "", head,
             "|---" * (len(methods) + 1) + "|"]
    for ds, task in settings:
        name = "%s %s %s" % (ds, task, "accuracy" if task == "nc" else "ROC AUC")
        lines.append("| %s | " % name + " | ".join(fmt(vals(ds, task, m, r)) for m, r in methods)
                     + " |")
        ref = REFERENCE.get((ds, task))
        if ref:
            lines.append("| (PyTorch reference) | " + " | ".join(
                "%.1f" % ref[(m, r)] if (m, r) in ref else "-" for m, r in methods) + " |")
    lines.append("")
    lines.append("Trainable parameters / optimiser-state floats (first seed):")
    lines.append("")
    lines.append("| setting | " + " | ".join(h.strip() for h in head.split("|")[2:-1]) + " |")
    lines.append("|---" * (len(methods) + 1) + "|")
    for ds, task in settings:
        cells = []
        for m, rk in methods:
            rr = [r for k, r in results if k[:4] == (ds, task, m, rk)]
            cells.append("%d / %d" % (rr[0]["trainable_params"], rr[0]["optimizer_state_floats"])
                         if rr else "-")
        lines.append("| %s %s | " % (ds, task) + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(a.outdir, a.tag + ".md"), "w") as f:
        f.write(text)

    # pruning sweep: test metric of the best model keeping the K largest singular values
    pl = ["Singular-value pruning at inference (test metric %%, mean over seeds; K = singular "
          "values kept per weight, of min(out, in) = 16)", "",
          "| setting | method | " + " | ".join("K=%d" % k for k in PRUNE_K) + " | unpruned |",
          "|---|---" + "|---" * (len(PRUNE_K) + 1) + "|"]
    for ds, task in settings:
        for m, rk in methods:
            if m not in ("full", "sst"):
                continue
            rr = [r for k, r in results if k[:4] == (ds, task, m, rk)]
            if not rr or "prune" not in rr[0]:
                continue
            cells = []
            for i, _ in enumerate(PRUNE_K):
                cells.append("%.1f" % statistics.mean(r["prune"][i][metric_key(task)] * 100
                                                      for r in rr))
            pl.append("| %s %s | %s | %s | %.1f |" % (
                ds, task, m if m == "full" else "sst r=%d" % rk, " | ".join(cells),
                statistics.mean(r[metric_key(task)] * 100 for r in rr)))
    ptext = "\n".join(pl) + "\n"
    print(ptext)
    with open(os.path.join(a.outdir, a.tag.replace("table", "prune") + ".md"), "w") as f:
        f.write(ptext)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("sst_table: matplotlib not available, no plot", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3.4), squeeze=False)
    for ax, (ds, task) in zip(axes[0], settings):
        labels, means, errs = [], [], []
        for m, rk in methods:
            v = vals(ds, task, m, rk)
            labels.append("full" if m == "full" else "%s\nr=%d" % (m, rk))
            means.append(statistics.mean(v))
            errs.append(statistics.stdev(v) if len(v) > 1 else 0.0)
        colors = ["gray" if l == "full" else {"lora": "tab:orange", "relora": "tab:green",
                                              "sst": "tab:blue"}[l.split("\n")[0]] for l in labels]
        ax.bar(range(len(labels)), means, yerr=errs, color=colors, capsize=2)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title("%s %s" % (ds, task), fontsize=9)
        ax.set_ylabel(metric_key(task).replace("test_", "test ") + " (%)", fontsize=8)
        lo = min(m - e for m, e in zip(means, errs))
        ax.set_ylim(max(0, lo - 5), 100)
    fig.tight_layout()
    fig.savefig(os.path.join(a.outdir, a.tag + ".png"), dpi=110)


if __name__ == "__main__":
    main()
