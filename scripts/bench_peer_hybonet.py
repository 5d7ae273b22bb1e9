#!/usr/bin/python3
"""bench_peer_hybonet.py - hgnn-train against the PyTorch HyboNet reference, per training step, on
the five bundled settings (CPU, one thread), measured in one sitting and interleaved.

The reference is the `gcn/` folder of https://github.com/chenweize1998/fully-hyperbolic-nn
(HyboNet, Chen et al. 2022). To measure it here:

    apt-get install python3-torch python3-scipy python3-networkx python3-sklearn
    git clone https://github.com/chenweize1998/fully-hyperbolic-nn
    pip install --no-deps geoopt   # or a geoopt checkout on PYTHONPATH (--peer-pythonpath)
    scripts/bench_peer_hybonet.py --peer fully-hyperbolic-nn/gcn [--peer-data DIR]

--peer-data is the reference's data folder (its DATAPATH: cora/, disease_lp/, airport/ in its
own format; default PEER/data). The reference's train.py is not modified: a copy with a timing
patch (the wall time of each epoch's training part, zero_grad through the scheduler step) runs
from a temporary folder with the checkout on PYTHONPATH, under OMP_NUM_THREADS=1 and
OPENBLAS_NUM_THREADS=1, and reports the median of epochs 11..end. hgnn-train runs the same
setting with --threads 1 and reports its own median step (epoch_ms). The two alternate, setting
by setting, repeat by repeat, so a busy spell of the machine hits both.

Without --peer, the reference's per-step figures come from --peer-ms (default: the figures
measured earlier on this machine kind, listed in PUBLISHED_MS) and only hgnn-train runs; the
table says which source every ratio uses. Writes the table to
scripts/results/bench_peer_hybonet.md (--out).

Usage: scripts/bench_peer_hybonet.py [--bin build/hgnn-train] [--peer DIR] [--peer-data DIR]
           [--peer-pythonpath DIRS] [--peer-ms cora_nc=97,...] [--repeats 3] [--epochs 210]
           [--seed 1234] [--settings cora_nc,cora_lp,disease_lp,airport_lp,airport_nc] [--out F]
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import write_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# PyTorch HyboNet (Debian torch, OpenBLAS, one thread) ms per training step, measured earlier on
# this machine kind with the protocol below.
PUBLISHED_MS = {"cora_nc": 97.0, "cora_lp": 98.4, "disease_lp": 7.2, "airport_lp": 19.0,
                "airport_nc": 22.2}

REF_COMMON = ["--model", "HyboNet", "--manifold", "Lorentz", "--dim", "16", "--bias", "1",
              "--patience", "500", "--log-freq", "5", "--cuda", "-1"]
# setting -> (hgnn-train arguments, reference train.py arguments)
SETTINGS = {
    "cora_nc": (["--dataset", "cora", "--task", "nc"],
                ["--task", "nc", "--dataset", "cora", "--lr", "0.02", "--num-layers", "3",
                 "--dropout", "0.9", "--weight-decay", "0.01", "--margin", "1",
                 "--grad-clip", "1"]),
    "cora_lp": (["--dataset", "cora", "--task", "lp"],
                ["--task", "lp", "--dataset", "cora", "--lr", "0.02", "--num-layers", "2",
                 "--dropout", "0.7", "--weight-decay", "1e-3", "--grad-clip", "0.5",
                 "--margin", "0.1"]),
    "disease_lp": (["--dataset", "disease_lp", "--task", "lp"],
                   ["--task", "lp", "--dataset", "disease_lp", "--lr", "0.005", "--num-layers",
                    "2", "--normalize-feats", "0", "--weight-decay", "0", "--margin", "30",
                    "--dropout", "0", "--grad-clip", "0.5"]),
    "airport_lp": (["--dataset", "airport", "--task", "lp"],
                   ["--task", "lp", "--dataset", "airport", "--lr", "0.01", "--num-layers", "2",
                    "--dropout", "0", "--weight-decay", "0"]),
    "airport_nc": (["--dataset", "airport", "--task", "nc", "--nc-split", "reference"],
                   ["--task", "nc", "--dataset", "airport", "--lr", "0.02", "--num-layers", "6",
                    "--act", "relu", "--weight-decay", "1e-4", "--dropout", "0",
                    "--grad-clip", "1"]),
}
SKIP_EPOCHS = 10  # the reference's median is over epochs 11..end (warm-up excluded)


def patched_train(src):
    """The reference's train.py with per-epoch training-step timing; fails loudly when the
    expected lines are missing (another revision of the reference)."""
    steps = [
        (r"^(\s*)t = time\.time\(\)\n", r"\g<0>\g<1>_hg_t0 = time.perf_counter()\n"),
        (r"^(\s*)lr_scheduler\.step\(\)\n",
         r"\g<0>\g<1>_HG_STEPS.append(time.perf_counter() - _hg_t0)\n"),
        (r"^(\s*)logging\.info\(\"Optimization Finished!\"\)\n",
         r"\g<1>print('HG_STEP_TIMES ' + json.dumps(_HG_STEPS), flush=True)\n\g<0>"),
        (r"^def train\(args\):\n", r"_HG_STEPS = []\n\n\n\g<0>"),
    ]
    for pat, rep in steps:
        src, k = re.subn(pat, rep, src, count=1, flags=re.M)
        if k != 1:
            sys.exit("bench_peer_hybonet: the reference's train.py has no line matching %r; "
                     "this script knows the revision of gcn/train.py with that line" % pat)
    return src


def run_peer(script, peer, data, pythonpath, args, seed, epochs):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               DATAPATH=data, LOG_DIR=tempfile.gettempdir(),
               PYTHONPATH=os.pathsep.join([peer] + pythonpath +
                                          [os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, script] + REF_COMMON + args + ["--seed", str(seed), "--epochs",
                                                         str(epochs)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=peer, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith("HG_STEP_TIMES ")]
    if p.returncode != 0 or not lines:
        sys.exit("bench_peer_hybonet: reference run failed (%s):\n%s" %
                 (" ".join(cmd), (p.stderr or p.stdout).strip()[-2000:]))
    times = json.loads(lines[-1].split(" ", 1)[1])[SKIP_EPOCHS:]
    if not times:
        sys.exit("bench_peer_hybonet: --epochs must exceed %d" % SKIP_EPOCHS)
    return 1e3 * statistics.median(times)


def run_hgnn(binary, args, seed, epochs):
    cmd = [binary] + args + ["--seed", str(seed), "--threads", "1", "--epochs", str(epochs),
                             "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("bench_peer_hybonet: %s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    return json.loads(p.stdout.strip().splitlines()[-1])["epoch_ms"]


def parse_ms(text):
    """(ms per setting, the settings given on the command line)."""
    ms, given = dict(PUBLISHED_MS), set()
    for item in filter(None, text.split(",")):
        key, _, val = item.partition("=")
        if key not in PUBLISHED_MS:
            sys.exit("bench_peer_hybonet: --peer-ms %s: unknown setting (one of %s)" %
                     (key, ", ".join(PUBLISHED_MS)))
        try:
            ms[key] = float(val)
        except ValueError:
            sys.exit("bench_peer_hybonet: --peer-ms %s: not a number of milliseconds" % item)
        given.add(key)
    return ms, given


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-train"))
    ap.add_argument("--peer", help="the reference's gcn/ folder (measure it here)")
    ap.add_argument("--peer-data", help="the reference's DATAPATH (default PEER/data)")
    ap.add_argument("--peer-pythonpath", default="",
                    help="extra PYTHONPATH entries for the reference (e.g. a geoopt checkout)")
    ap.add_argument("--peer-ms", default="",
                    help="reference ms/step when not measured: setting=ms,... (default: "
                         "the earlier measurements)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=210)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--out",
                    default=os.path.join(ROOT, "scripts", "results", "bench_peer_hybonet.md"))
    a = ap.parse_args()
    names = [s for s in a.settings.split(",") if s]
    for s in names:
        if s not in SETTINGS:
            sys.exit("bench_peer_hybonet: --settings %s: unknown (one of %s)" %
                     (s, ", ".join(SETTINGS)))
    peer_ms, given = parse_ms(a.peer_ms)
    script = None
    if a.peer:
        peer = os.path.abspath(a.peer)
        try:
            with open(os.path.join(peer, "train.py")) as f:
                src = patched_train(f.read())
        except OSError as e:
            sys.exit("bench_peer_hybonet: --peer %s: %s" % (a.peer, e))
        tmp = tempfile.mkdtemp(prefix="hg_peer_")
        script = os.path.join(tmp, "train_timed.py")
        with open(script, "w") as f:
            f.write(src)
        data = os.path.abspath(a.peer_data or os.path.join(peer, "data"))
        extra = [os.path.abspath(p) for p in a.peer_pythonpath.split(os.pathsep) if p]

    ours = {s: [] for s in names}
    theirs = {s: [] for s in names}
    for r in range(a.repeats):
        for s in names:
            hg_args, ref_args = SETTINGS[s]
            order = ("peer", "hgnn") if r % 2 == 0 else ("hgnn", "peer")
            for who in order:
                if who == "hgnn":
                    ours[s].append(run_hgnn(a.bin, hg_args, a.seed, a.epochs))
                elif script:
                    theirs[s].append(run_peer(script, peer, data, extra, ref_args, a.seed,
                                              a.epochs))
    lines = ["# hgnn-train against the PyTorch HyboNet reference (CPU, 1 thread)", "",
             "%d epochs, seed %d, median of %d interleaved repeats (hgnn: its median step; "
             "reference: median of epochs %d..end). Machine: %s, %d CPUs, shared with other "
             "jobs while measured." % (a.epochs, a.seed, a.repeats, SKIP_EPOCHS + 1,
                                       platform.processor() or platform.machine(),
                                       os.cpu_count()), "",
             "| setting | hgnn ms/step | reference ms/step | reference source | ratio |",
             "|---|---:|---:|---|---:|"]
    for s in names:
        mine = statistics.median(ours[s])
        if theirs[s]:
            ref, src = statistics.median(theirs[s]), "measured now, interleaved"
        else:
            ref = peer_ms[s]
            src = ("--peer-ms (given)" if s in given else
                   "earlier measurement on this machine kind (not now)")
        lines.append("| %s | %.3f | %.1f | %s | %.0fx |" % (s, mine, ref, src, ref / mine))
    write_table(lines, a.out)


if __name__ == "__main__":
    main()
