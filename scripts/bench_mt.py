#!/usr/bin/python3
"""bench_mt.py - training speed of hgnn-mt (the translation Transformer on Multi30K) against a
PyTorch reference, in one sitting and interleaved, plus the SST/full step ratio and the achieved
GFLOP/s of hgnn-mt's step against the machine's single-thread SGEMM rate.

Settings: d in --dims (default 64, 128, 256) with ffn = 4d, 4 heads, 3+3 layers, vocabulary
8000, rank r = d/8; methods full and SST at every d, LoRA at d = 64; each with 1 and 2 threads
(--threads). Both programs train on the same SentencePiece model (--spm, or one learned here
with spm_train) and the same training files; the validation and test files given to them are cut
to their first lines, since neither figure below depends on them.

 - hgnn-mt: `hgnn-mt train --steps N --epochs 1 --decode 0`; its median step (step_ms, the
   first step's warm-up falls outside the median) and the mean source+target tokens of its N
   batches give tokens/s = tokens per step / median step.
 - reference (--peer FILE, a peer.py that takes `--bench N`: N timed training steps after 5
   warm-up steps, printing JSON with tokens_per_wall_s): its tokens per wall second. It runs
   under the python running this script (it needs torch and sentencepiece) with
   OMP_NUM_THREADS = threads, MT_DATA pointing at the files above. Without --peer only hgnn-mt
   runs and the reference columns stay empty.

The two alternate setting by setting and repeat by repeat (the order flips every repeat), so a
busy spell of the machine hits both; each figure is the median over --repeats.

FLOPs of one training step of hgnn-mt (`step_flops` below), from the model's shape and the
step's token counts (S source, T target tokens, both with their end/start token; P pairs):
    6 x [ S x L (6 d^2 + 2 d F)                       encoder Q,K,V,O and FFN, the decoder's
                                                       cross-attention K,V on the source
        + T x L (6 d^2 + 2 d F)                       decoder self Q,K,V,O, cross Q,O, FFN
        + L x 2 d x sum over pairs (Ls^2 + Lt^2 + Ls Lt)   attention products QK^T and A V
                                                       (encoder self, decoder self over the full
                                                       square, cross)
        + T x d x V ]                                 output layer (tied embedding)
6 = 2 FLOPs per multiply-add x (forward + two backward products). LoRA keeps its m x n base
frozen (no weight gradient) and adds its rank-r factors: a map costs 4 m n + 6 r (m + n) per
token instead of 6 m n. SST needs the full weight gradient's information every step and is
counted like full. Softmax, layer norms, loss and optimiser are not counted. S/T and the sums
of squared lengths come from the training corpus encoded with the same SentencePiece model
(spm_encode), scaled to the step's measured token count.

Usage: scripts/bench_mt.py [--peer peer.py] [--spm spm8k.model] [--dims 64,128,256]
           [--threads 1,2] [--repeats 3] [--steps 25] [--peer-steps 10] [--quick] [--out F]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import cpu_model, write_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "datasets", "data", "multi30k")
LAYERS, HEADS, VOCAB = 3, 4, 8000
EVAL_LINES = 16  # validation/test lines handed to both programs (unused by the figures)
TARGET_REF = {64: 3.0, 256: 1.5}  # hgnn / reference tokens/s wanted at one thread
TARGET_SST = 1.15                 # SST step / full step wanted


def die(msg):
    sys.exit("bench_mt: " + msg)


def run_json(cmd, env=None, cwd=None):
    """Run cmd; its last stdout line that parses as a JSON object."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if p.returncode != 0:
        die("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode,
                                           (p.stderr or p.stdout).strip()[-2000:]))
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    die("%s printed no JSON line" % " ".join(cmd))


def prepare_data(work):
    """WORK/data: the training files linked, validation and test files cut short."""
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    for lang in ("de", "en"):
        for split in ("train", "val", "test2016"):
            src, dst = os.path.join(DATA, "%s.%s" % (split, lang)), \
                os.path.join(data, "%s.%s" % (split, lang))
            if os.path.exists(dst):
                os.remove(dst)
            if split == "train":
                os.symlink(src, dst)
            else:
                with open(src, encoding="utf-8") as f:
                    head = [next(f) for _ in range(EVAL_LINES)]
                with open(dst, "w", encoding="utf-8") as f:
                    f.writelines(head)
    return data


def learn_spm(work):
    if not shutil.which("spm_train"):
        die("spm_train not found (apt-get install sentencepiece), or pass --spm FILE")
    prefix = os.path.join(work, "spm8k")
    cmd = ["spm_train", "--input=%s,%s" % (os.path.join(DATA, "train.de"),
                                            os.path.join(DATA, "train.en")),
           "--model_prefix=" + prefix, "--model_type=bpe", "--vocab_size=%d" % VOCAB,
           "--character_coverage=1.0"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        die("spm_train failed: " + p.stderr.strip()[-1000:])
    return prefix + ".model"


def corpus_stats(spm):
    """Per sentence pair of the training set: E[Ls], E[Lt], E[Ls^2 + Lt^2 + Ls Lt] (lengths in
    pieces + 1: the source's end token, the target's start/end token)."""
    if not shutil.which("spm_encode"):
        die("spm_encode not found (apt-get install sentencepiece)")
    lens = []
    for lang in ("de", "en"):
        with open(os.path.join(DATA, "train." + lang), "rb") as f:
            p = subprocess.run(["spm_encode", "--model=" + spm, "--output_format=id"], stdin=f,
                               capture_output=True, text=True)
        if p.returncode != 0:
            die("spm_encode failed: " + p.stderr.strip()[-1000:])
        lens.append([len(l.split()) + 1 for l in p.stdout.splitlines()])
    ls, lt = lens
    n = len(ls)
    return {"ls": sum(ls) / n, "lt": sum(lt) / n,
            "sq": sum(a * a + b * b + a * b for a, b in zip(ls, lt)) / n}


def step_flops(d, ffn, method, rank, tokens, st):
    """FLOPs of one training step over `tokens` source+target tokens (module docstring)."""
    pairs = tokens / (st["ls"] + st["lt"])
    S, T = pairs * st["ls"], pairs * st["lt"]

    def maps(shapes):  # per token, FLOPs of the listed m x n maps
        if method == "lora":
            return sum(4 * m * n + 6 * rank * (m + n) for m, n in shapes)
        return sum(6 * m * n for m, n in shapes)
    per_layer = [(d, d)] * 6 + [(ffn, d), (d, ffn)]  # either side: 6 d x d maps and the FFN
    return (S + T) * LAYERS * maps(per_layer) \
        + 6 * LAYERS * 2 * d * pairs * st["sq"] + 6 * T * d * VOCAB


def run_hgnn(a, data, spm, d, method, threads):
    cmd = [a.bin, "train", "--data-dir", data, "--spm-model", spm, "--dim", str(d),
           "--ffn", str(4 * d), "--heads", str(HEADS), "--method", method,
           "--rank", str(d // 8), "--steps", str(a.steps), "--epochs", "1", "--decode", "0",
           "--threads", str(threads), "--seed", "1", "--quiet"]
    j = run_json(cmd, env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    tokens = j["tokens_per_s"] * j["train_seconds"] / j["steps"]
    return {"step_ms": j["step_ms"], "tokens": tokens, "tps": tokens / (j["step_ms"] / 1e3)}


def run_peer(a, data, spm, d, method, threads, work):
    cmd = [sys.executable, a.peer, "--bench", str(a.peer_steps), "--d", str(d), "--ffn",
           str(4 * d), "--heads", str(HEADS), "--method", method, "--rank", str(d // 8),
           "--threads", str(threads), "--spm", spm, "--out", os.path.join(work, "peer_run")]
    env = dict(os.environ, MT_DATA=data, OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS=str(threads))
    return run_json(cmd, env=env, cwd=work)["tokens_per_wall_s"]


def sgemm_gflops(a):
    exe = os.path.join(os.path.dirname(a.bin), "hgnn-bench-linear")
    return max(run_json([exe, "--sgemm", "1"])["sgemm_gflops"] for _ in range(3))


def fmt(x, spec):
    return "" if x is None else spec % x


def report(a, settings, ours, theirs, st, gemm, t_start, load0, final):
    """Write the table of what has been measured so far (and print it when final)."""
    load1 = os.getloadavg()
    t_end = datetime.datetime.now(datetime.timezone.utc)
    done = [s for s in settings if ours[s]]
    med = {s: {k: statistics.median(r[k] for r in ours[s]) for k in ("step_ms", "tokens", "tps")}
           for s in done}
    lines = [
        "# hgnn-mt against the PyTorch reference: training tokens/s (Multi30K, CPU)", "",
        "Measured %s to %s UTC on %s, %d CPUs (%s). **The VM is shared with other jobs and "
        "noisy**: load average %.1f / %.1f / %.1f (1/5/15 min) at the start, %.1f / %.1f / %.1f "
        "at the end; ratios are taken interleaved, absolute figures are not exact." %
        (t_start.strftime("%Y-%m-%d %H:%M"), t_end.strftime("%H:%M"), cpu_model(),
         os.cpu_count(), platform.machine(), *load0, *load1), "",
        "Model: 3+3 layers, ffn 4d, 4 heads, vocabulary %d (one SentencePiece BPE model for both), "
        "rank r = d/8. hgnn-mt: median step over %d steps (`--steps %d --epochs 1 --decode 0`), "
        "tokens/s = mean source+target tokens of those batches / median step. Reference: "
        "tokens per wall second over %d steps after 5 warm-up steps (`--bench %d`). Median of %d "
        "interleaved repeats. Single-thread SGEMM (hgnn-bench-linear --sgemm, best of 6): "
        "%.1f GFLOP/s; %% peak = GFLOP/s / (threads x that). FLOPs per step: "
        "scripts/bench_mt.py's docstring (6 x tokens x map size, attention products, output "
        "layer)." % (VOCAB, a.steps, a.steps, a.peer_steps, a.peer_steps, a.repeats, gemm), "",
        "| threads | d | method | hgnn tokens/s | ref tokens/s | hgnn/ref | target | "
        "hgnn ms/step | SST/full step (<= 1.15) | GFLOP/step | GFLOP/s | % peak |",
        "|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for s in done:
        t, d, m = s
        o = med[s]
        ref = statistics.median(theirs[s]) if theirs[s] else None
        ratio = o["tps"] / ref if ref else None
        target = ""
        if t == 1 and d in TARGET_REF and ratio:
            target = ">= %.1fx: %s" % (TARGET_REF[d],
                                        "met" if ratio >= TARGET_REF[d] else "NOT met")
        sst = ""
        if m == "sst" and (t, d, "full") in med:
            q = o["step_ms"] / med[(t, d, "full")]["step_ms"]
            sst = "%.2f (%s)" % (q, "met" if q <= TARGET_SST else "NOT met")
        gf = step_flops(d, 4 * d, m, d // 8, o["tokens"], st) / 1e9
        rate = gf / (o["step_ms"] / 1e3)
        lines.append("| %d | %d | %s | %.0f | %s | %s | %s | %.1f | %s | %.1f | %.1f | %.0f%% |" %
                     (t, d, m, o["tps"], fmt(ref, "%.0f"), fmt(ratio, "%.2fx"), target,
                      o["step_ms"], sst, gf, rate, 100 * rate / (t * gemm)))
    lines += ["", "Targets: hgnn >= 3x the reference at d = 64 and >= 1.5x at d = 256 (one "
              "thread); SST step <= %.2fx the full step. SST's median step excludes the rare "
              "steps that start an iteration or end a round (every 200 steps)." % TARGET_SST]
    if not final:
        lines += ["", "**Partial**: written while the run was going (it may have been stopped "
                  "since): %d of %d measurements taken." %
                  (sum(map(len, ours.values())), a.repeats * len(settings))]
    if not a.peer:
        lines += ["", "The reference was not run (no --peer): its columns are empty."]
    write_table(lines, a.out, echo=final)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-mt"))
    ap.add_argument("--peer", help="the PyTorch reference's peer.py (measure it here)")
    ap.add_argument("--spm", help="SentencePiece model for both (default: learn one, 8000 BPE)")
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25, help="hgnn-mt steps per measurement")
    ap.add_argument("--peer-steps", type=int, default=10,
                    help="reference steps timed per measurement (after its 5 warm-up steps)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: d 64, full and SST, 1 thread, 1 repeat, few steps")
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "results", "bench_mt.md"))
    a = ap.parse_args()
    if a.quick:
        a.dims, a.threads, a.repeats, a.steps, a.peer_steps = "64", "1", 1, 6, 2
    try:
        dims = [int(v) for v in a.dims.split(",") if v]
        nthreads = [int(v) for v in a.threads.split(",") if v]
    except ValueError:
        die("--dims and --threads take comma-separated integers")
    if not dims or any(d < 8 or d % 8 or d % HEADS for d in dims):
        die("--dims: each d a multiple of 8 (and of %d heads)" % HEADS)
    if not nthreads or any(t < 1 for t in nthreads) or a.repeats < 1 or a.steps < 2 \
            or a.peer_steps < 1:
        die("--threads >= 1, --repeats >= 1, --steps >= 2, --peer-steps >= 1")
    if not os.access(a.bin, os.X_OK):
        die("%s: not built (ninja -C build)" % a.bin)
    if a.peer and not os.path.isfile(a.peer):
        die("--peer %s: no such file" % a.peer)
    a.peer = a.peer and os.path.abspath(a.peer)

    work = tempfile.mkdtemp(prefix="hg_bench_mt_")
    data = prepare_data(work)
    spm = os.path.abspath(a.spm) if a.spm else learn_spm(work)
    st = corpus_stats(spm)
    load0 = os.getloadavg()
    gemm0 = sgemm_gflops(a)
    settings = [(t, d, m) for t in nthreads for d in dims
                for m in (("full", "sst", "lora") if d == 64 else ("full", "sst"))]
    ours = {s: [] for s in settings}
    theirs = {s: [] for s in settings}
    t_start = datetime.datetime.now(datetime.timezone.utc)
    for rep in range(a.repeats):
        for s in settings:
            t, d, m = s
            order = ("peer", "hgnn") if rep % 2 == 0 else ("hgnn", "peer")
            for who in order:
                if who == "hgnn":
                    ours[s].append(run_hgnn(a, data, spm, d, m, t))
                    msg = "%.0f ms/step" % ours[s][-1]["step_ms"]
                elif a.peer:
                    theirs[s].append(run_peer(a, data, spm, d, m, t, work))
                    msg = "reference %.0f tokens/s" % theirs[s][-1]
                else:
                    continue
                print("repeat %d/%d: %d thread(s) d %d %s: %s  (load %.1f)" %
                      (rep + 1, a.repeats, t, d, m, msg, os.getloadavg()[0]), file=sys.stderr,
                      flush=True)
            report(a, settings, ours, theirs, st, gemm0, t_start, load0, False)
    shutil.rmtree(work, ignore_errors=True)
    report(a, settings, ours, theirs, st, max(gemm0, sgemm_gflops(a)), t_start, load0,
           True)


if __name__ == "__main__":
    main()
