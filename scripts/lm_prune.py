#!/usr/bin/python3
"""lm_prune.py - singular-value pruning of trained language models (hgnn-lm eval --prune-sigma).

For each training run folder given (written by `hgnn-lm train --out DIR`, e.g. by
scripts/lm_table.py), evaluates the final model with every linear map of the attention and MLP
blocks cut to a fraction of its singular values (the largest kept; SST keeps its own triplets,
the other methods an SVD of their weight), and reports the validation perplexity per fraction.
Writes
  OUTDIR/TAG.md    perplexity per model and fraction kept, and its ratio to the unpruned one
  OUTDIR/TAG.json  the eval result lines
  OUTDIR/TAG.png   perplexity against the fraction kept, one line per model
Usage: scripts/lm_prune.py DIR [DIR ...] [--fractions 1,0.9,...] [--eval-tokens 65536]
           [--jobs 2] [--outdir DIR] [--tag lm_prune]
"""
import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import pyplot, write_json, write_table  # noqa: E402
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = {"full": "full", "lora": "LoRA", "relora": "ReLoRA*", "sst": "SST"}


def evaluate(a, run):
    """The eval result line of run's model over the fractions, and its training result."""
    with open(os.path.join(run, "result.json")) as f:
        trained = json.load(f)
    cmd = [a.bin, "eval", "--model", run, "--prune-sigma", a.fractions, "--eval-tokens",
           str(a.eval_tokens), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                 (p.stderr or p.stdout).strip()[-1500:]))
    return json.loads(p.stdout.strip().splitlines()[-1]), trained


def label(trained):
    m = trained.get("method", "?")
    rank = " r %d" % trained["rank"] if trained.get("rank") else ""
    return "%s%s (%s, seed %s)" % (NAMES.get(m, m), rank, trained.get("config", "?"),
                                  trained.get("seed", "?"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="training run folders (hgnn-lm train --out)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-lm"))
    ap.add_argument("--fractions", default="1,0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2,0.1")
    ap.add_argument("--eval-tokens", type=int, default=65536,
                    help="validation tokens evaluated (0: all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--outdir", default=os.path.join(ROOT, "scripts", "results"))
    ap.add_argument("--tag", default="lm_prune")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("lm_prune: %s not found; build first (scripts/setup.sh)" % a.bin)
    for run in a.runs:
        if not os.path.exists(os.path.join(run, "result.json")):
            sys.exit("lm_prune: %s: no result.json (not a finished hgnn-lm train --out folder)"
                     % run)
    with cf.ThreadPoolExecutor(max_workers=max(a.jobs, 1)) as ex:
        results = list(ex.map(lambda r: evaluate(a, r), a.runs))
    fracs = [float(f) for f in a.fractions.split(",")]
    lines = ["# Singular-value pruning of hgnn-lm models", "",
             "Validation perplexity (first %s validation tokens) with every attention and MLP map "
             "rebuilt from the given fraction of its singular values, the largest kept "
             "(`hgnn-lm eval --prune-sigma`); in brackets the ratio to the unpruned model." %
             ("{:,}".format(a.eval_tokens) if a.eval_tokens else "all"), "",
             "| model | " + " | ".join("%g" % f for f in fracs) + " |",
             "|---|" + "---:|" * len(fracs)]
    for (ev, trained) in results:
        pp = {f: p for f, p in ev["pruned_ppl"]}
        lines.append("| %s | " % label(trained) + " | ".join(
            "%.1f (%.2fx)" % (pp[f], pp[f] / ev["ppl"]) for f in fracs) + " |")
    lines += ["", "Command: `scripts/lm_prune.py %s`." % " ".join(sys.argv[1:])]
    write_table(lines, os.path.join(a.outdir, a.tag + ".md"))
    write_json([dict(ev, trained=tr) for ev, tr in results], os.path.join(a.outdir, a.tag + ".json"))
    plt = pyplot("lm_prune")
    if plt is None:
        return 0
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for ev, trained in results:
        xs, ys = zip(*sorted(ev["pruned_ppl"]))
        ax.plot(xs, ys, marker=".", lw=1.2, label=label(trained))
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("fraction of singular values kept", fontsize=9)
    ax.set_ylabel("validation perplexity", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(a.outdir, a.tag + ".png"), dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
