#!/usr/bin/python3
"""lm_table.py - language-model pre-training with hgnn-lm: full / LoRA / ReLoRA* / SST compared.

Trains the OPT-style model of one configuration (default: small, the default of `hgnn-lm train`)
on the bundled Wikipedia corpus with every linear map full rank, LoRA, ReLoRA* and SST (rank
d/12 unless --rank), at the configuration's token budget (or --tokens), one hgnn-lm run per
method and seed with its own --out folder under --runs. A run whose folder holds result.json is
done and skipped; one interrupted half-way (args.txt without result.json) is continued with
`hgnn-lm train --resume`. Runs go --jobs at a time, one thread each. Writes
  OUTDIR/TAG.md    validation perplexity per method (whole validation file, final model), the
                   share of LoRA's gap to full that SST closes ((LoRA - SST) / (LoRA - full), in
                   perplexity), trainable parameters, optimiser-state bytes, tokens/s
  OUTDIR/TAG.json  every run's result line
  OUTDIR/TAG.png   validation perplexity against training tokens, one line per method
Usage: scripts/lm_table.py [--config small] [--methods full,lora,relora,sst] [--seeds 1]
           [--tokens N] [--jobs 2] [--runs DIR] [--outdir DIR] [--tag lm_small] [--extra "..."]
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


def run_dir(a, method, seed):
    budget = "_t%d" % a.tokens if a.tokens else ""
    return os.path.join(a.runs, "%s_%s%s_s%d" % (a.config, method, budget, seed))


def run(a, method, seed):
    """The run's result (its result.json), training it first unless it is done."""
    out = run_dir(a, method, seed)
    result = os.path.join(out, "result.json")
    if not os.path.exists(result):
        if os.path.exists(os.path.join(out, "args.txt")):
            cmd = [a.bin, "train", "--resume", out, "--quiet"]
        else:
            cmd = [a.bin, "train", "--config", a.config, "--method", method, "--seed", str(seed),
                   "--out", out, "--quiet"] + (["--tokens", str(a.tokens)] if a.tokens else [])
            cmd += (["--rank", str(a.rank)] if a.rank else []) + a.extra.split()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(result):
            raise RuntimeError("%s (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                     (p.stderr or p.stdout).strip()[-1500:]))
    with open(result) as f:
        return json.load(f)


def read_log(path, step_tokens):
    """(training tokens, validation perplexities) of a run's log.csv."""
    toks, ppl = [], []
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("val_ppl"):
                    toks.append(int(row["step"]) * step_tokens)
                    ppl.append(float(row["val_ppl"]))
    except OSError:
        pass
    return toks, ppl




def write_report(a, methods, results, failed):
    def get(m, key):
        return [r[key] for (mm, _), r in sorted(results.items()) if mm == m and key in r]

    any_r = next(iter(results.values()), {})
    lines = ["# Language-model pre-training with hgnn-lm: full / LoRA / ReLoRA* / SST", "",
             "OPT-style decoder (`--config %s`: %s layers, d %s, %s heads, FFN %s, context %s, "
             "GPT-2 vocabulary) on the bundled Wikipedia corpus, %s training tokens, %d seed%s "
             "from %d; rank %s for the low-rank methods%s. Validation perplexity of the final "
             "model over the whole validation file. SST closes: (LoRA - SST) / (LoRA - full) "
             "in perplexity, the share of LoRA's gap to full training that SST recovers." %
             (a.config, any_r.get("layers"), any_r.get("dim"), any_r.get("heads"),
              any_r.get("ffn"), any_r.get("ctx"), "{:,}".format(any_r.get("tokens", 0)),
              a.seeds, "s" if a.seeds > 1 else "", a.first_seed,
              a.rank or "d/12", "; extra options: " + a.extra if a.extra else ""), "",
             "| method | val ppl | val loss | trainable params | optimiser state (MiB) | "
             "tokens/s | train s | peak RSS (MiB) | runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        state = get(m, "optimizer_state_floats")
        params = get(m, "trainable_params")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %d%s |" % (
            NAMES[m], mean_std(get(m, "val_ppl")), mean_std(get(m, "val_loss"), "%.4f"),
            "{:,}".format(params[0]) if params else "-",
            "%.1f" % (state[0] * 4 / 2**20) if state else "-",
            mean_std(get(m, "tokens_per_s"), "%.0f"), mean_std(get(m, "train_seconds"), "%.0f"),
            mean_std(get(m, "peak_rss_mib"), "%.0f"), len(get(m, "val_ppl")),
            " (%d failed)" % failed[m] if failed.get(m) else ""))
    ppl = {m: get(m, "val_ppl") for m in methods}
    if all(ppl.get(m) for m in ("full", "lora", "sst")):
        f, l, s = (statistics.mean(ppl[m]) for m in ("full", "lora", "sst"))
        lines += ["", "SST closes %s of LoRA's gap to full rank (full %.2f, SST %.2f, LoRA %.2f)."
                  % ("%.0f%%" % (100 * (l - s) / (l - f)) if l != f else "- (full = LoRA)",
                     f, s, l)]
    lines += ["", "Runs: %s (one folder per run: log.csv, result.json, checkpoints). Command: "
              "`scripts/lm_table.py %s`." % (a.runs, " ".join(sys.argv[1:]))]
    write_table(lines, os.path.join(a.outdir, a.tag + ".md"))
    write_json([dict(r, _run={"method": m, "seed": s}) for (m, s), r in sorted(results.items())],
               os.path.join(a.outdir, a.tag + ".json"))


def plot(a, methods, results):
    plt = pyplot("lm_table")
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m in methods:
        first = True
        for (mm, s), r in sorted(results.items()):
            if mm != m:
                continue
            step_tokens = r["tokens"] // max(r["steps"], 1)
            toks, ppl = read_log(os.path.join(run_dir(a, m, s), "log.csv"), step_tokens)
            ax.plot(toks, ppl, color=COLORS[m], lw=1.2, marker=".", ms=4,
                    label=NAMES[m] if first else None)
            ax.plot([r["tokens"]], [r["val_ppl"]], color=COLORS[m], marker="*", ms=8)
            first = False
    ax.set_yscale("log")
    ax.set_xlabel("training tokens", fontsize=9)
    ax.set_ylabel("validation perplexity", fontsize=9)
    ax.set_title("hgnn-lm --config %s (stars: final model, whole validation file)" % a.config,
                 fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(a.outdir, a.tag + ".png"), dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-lm"))
    ap.add_argument("--config", default="small")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=0, help="token budget (0: the configuration's)")
    ap.add_argument("--rank", type=int, default=0, help="rank (0: d/12)")
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once")
    ap.add_argument("--extra", default="", help="options appended to every fresh run")
    ap.add_argument("--runs", default=os.path.join(ROOT, "out", "lm_table"))
    ap.add_argument("--outdir", default=os.path.join(ROOT, "scripts", "results"))
    ap.add_argument("--tag", default="", help="output file name stem (lm_CONFIG)")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit("lm_table: %s not found; build first (scripts/setup.sh)" % a.bin)
    methods = [m for m in a.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            sys.exit("lm_table: --methods %s: unknown (one of %s)" % (m, ", ".join(METHODS)))
    if a.seeds < 1 or a.jobs < 1 or a.tokens < 0 or a.rank < 0:
        sys.exit("lm_table: --seeds and --jobs >= 1; --tokens, --rank >= 0")
    a.tag = a.tag or "lm_" + a.config.replace("-", "")
    a.runs = os.path.abspath(a.runs)
    cells = [(m, a.first_seed + s) for s in range(a.seeds) for m in methods]
    results, failed = {}, {}
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futs = {ex.submit(run, a, *c): c for c in cells}
        for fut in cf.as_completed(futs):
            m, s = futs[fut]
            try:
                results[(m, s)] = fut.result()
                print("lm_table: %s seed %d: validation perplexity %.2f" %
                      (m, s, results[(m, s)]["val_ppl"]), flush=True)
            except RuntimeError as e:
                failed[m] = failed.get(m, 0) + 1
                print("lm_table: %s seed %d failed: %s" % (m, s, e), file=sys.stderr)
    if not results:
        sys.exit("lm_table: every run failed")
    write_report(a, methods, results, failed)
    plot(a, methods, results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
