#!/usr/bin/python3
"""bench_lm.py - training-step speed and memory of hgnn-lm's language model (hgnn-bench-lm)
against a PyTorch model of the same shape and llm.c's CPU trainer, in one sitting and
interleaved, plus the step ratios of the training methods and the bytes each one holds.

Settings: the configurations small (4 layers, d 256, 4 heads, FFN 1024) and opt-125m (12 layers,
d 768, 12 heads, FFN 3072), vocabulary 50257 (50304 in the models), B = 4 windows of T = 128
random tokens, with 1 and 2 threads (--threads); hgnn with the methods full, LoRA, ReLoRA* and
SST at rank d/12 (21 and 64).

 - hgnn: `hgnn-bench-lm --config C --method M --threads N --steps S --warmup 1`; its median
   step (fwd+bwd + update) and the forward / backward / update split.
 - PyTorch (--peers DIR: DIR/torch_gpt.py): variants opt (ReLU, as hgnn's full model), sst and
   lora at the same rank, `--B 4 --T 128 --warmup 1 --steps S`; its median ms per step. The
   program fixes torch to one thread; with N > 1 threads it is run with torch.set_num_threads
   turned to N (a wrapper below).
 - llm.c (--llmc PATH: a checkout or the bare git directory of karpathy/llm.c; with --peers,
   DIR/train_gpt2_bench.patch applied to train_gpt2.c of commit LLMC_COMMIT, built in a
   temporary folder with llm.c's flags, OMP_NUM_THREADS = N): the median of its timed steps
   after the first. Its random-init checkpoints and token file come from
   DIR/make_llmc_inputs.py.
Without --peers only hgnn runs and the peers' columns stay empty (a note says so).

Each figure is the median over --repeats; the programs alternate setting by setting and repeat
by repeat (the order flips every repeat), so a busy spell of the machine hits all of them.
Peak RSS: every program's ru_maxrss as wait4 reports it (the same measure for all; for the
Python peer it includes the interpreter and torch).

FLOPs per training step: B T (6 N + 12 L d T), with N the parameters of the full-rank model less
its position table (hgnn-bench-lm's flops_params of the full method; the same shapes in all three
programs). It is given for full-rank training only (PyTorch opt, llm.c, hgnn full), against the
single-thread SGEMM rate (hgnn-bench-linear --sgemm, 1024^3, best of 6) times the threads.

Usage: scripts/bench_lm.py [--peers DIR] [--llmc PATH] [--configs small,opt-125m]
           [--threads 1,2] [--methods full,lora,relora,sst] [--repeats 3 | 1=3,2=1]
           [--steps small=5,opt-125m=2] [--peer-steps small=3,opt-125m=2]
           [--llmc-steps small=3,opt-125m=1] [--quick] [--out F]
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
from benchutil import cpu_model, write_json, write_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLMC_COMMIT = "f1e2ace"
B, T = 4, 128
CONFIGS = {"small": {"torch": "small", "llmc": "gpt2_small.bin", "d": 256},
           "opt-125m": {"torch": "124M", "llmc": "gpt2_124M.bin", "d": 768}}
PEER_OF = {"full": "opt", "lora": "lora", "relora": "lora", "sst": "sst"}  # PyTorch variant
TARGET_TORCH = {"small": 1.5}   # hgnn / PyTorch tokens/s wanted (one thread)
TARGET_LLMC = 3.0               # hgnn / llm.c tokens/s wanted (one thread, both sizes)
TARGET_STEP = {"sst": 1.15, "lora": 1.0}  # method step / full step wanted
# The reference figures of one machine of this kind (one thread, B 4, T 128, random tokens,
# median of 5 interleaved): ms/step, tokens/s, GFLOP/s, peak MiB.
REFERENCE = {("small", "torch", "opt"): (1435, 357, 34.9, 812),
             ("small", "torch", "sst"): (1607, 319, None, 827),
             ("small", "torch", "lora"): (1525, 336, None, 814),
             ("small", "llmc", ""): (4128, 124, 12.1, 731),
             ("opt-125m", "torch", "opt"): (8386, 61, 46.2, 3124),
             ("opt-125m", "torch", "sst"): (12955, 40, None, 3496),
             ("opt-125m", "torch", "lora"): (7560, 68, None, 2801),
             ("opt-125m", "llmc", ""): (32062, 16, 12.1, 3093)}
REFERENCE_SGEMM = 65.0

# Runs torch_gpt.py with torch.set_num_threads(n) whatever the program asks for.
TORCH_THREADS = ("import runpy, sys, torch\n"
                 "n = int(sys.argv[1]); f = torch.set_num_threads\n"
                 "torch.set_num_threads = lambda _: f(n)\n"
                 "sys.argv = sys.argv[2:]\n"
                 "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def die(msg):
    sys.exit("bench_lm: " + msg)


def run(cmd, env=None, cwd=None):
    """Run cmd; (its stdout, its peak RSS in bytes from wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read()
        if p.returncode != 0:
            die("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode,
                                               (err.read() or text).strip()[-2000:]))
    return text, ru.ru_maxrss * 1024


def env_threads(n):
    return dict(os.environ, OMP_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS="1",
                MKL_NUM_THREADS=str(n))


def run_hgnn(a, config, method, threads):
    out, rss = run([a.bin, "--config", config, "--method", method, "--threads", str(threads),
                    "--steps", str(a.steps[config]), "--warmup", "1"], env=env_threads(1))
    j = json.loads(out.strip().splitlines()[-1])
    j["rss"] = rss
    return j


def run_torch(a, config, variant, threads, work):
    args = [os.path.join(a.peers, "torch_gpt.py"), "--config", CONFIGS[config]["torch"],
            "--variant", variant, "--B", str(B), "--T", str(T), "--warmup", "1", "--steps",
            str(a.peer_steps[config]), "--data", os.path.join(work, "train.bin")]
    cmd = [sys.executable] + (args if threads == 1 else
                              ["-c", TORCH_THREADS, str(threads)] + args)
    out, rss = run(cmd, env=env_threads(threads), cwd=work)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return {"step_ms": json.loads(line[7:])["median_ms"], "rss": rss}
    die("torch_gpt.py printed no RESULT line")


def run_llmc(a, config, threads, work):
    steps = a.llmc_steps[config] + 1  # the first is a warm-up
    out, rss = run([os.path.join(work, "train_gpt2_bench"),
                    os.path.join(work, CONFIGS[config]["llmc"]), os.path.join(work, "train.bin"),
                    str(B), str(T), str(steps)], env=env_threads(threads), cwd=work)
    ms = [float(l.rsplit("(took ", 1)[1].split(" ms")[0]) for l in out.splitlines()
          if l.startswith("step ") and "(took " in l]
    if len(ms) != steps:
        die("train_gpt2_bench printed %d step times, not %d" % (len(ms), steps))
    return {"step_ms": statistics.median(ms[1:]), "rss": rss}


def build_llmc(a, work):
    """WORK/train_gpt2_bench from llm.c at LLMC_COMMIT with the peers' patch."""
    src = os.path.join(work, "llmc")
    os.makedirs(src)
    if os.path.isfile(os.path.join(a.llmc, "train_gpt2.c")):
        shutil.copytree(a.llmc, src, dirs_exist_ok=True)
    else:
        git = subprocess.run(["git", "--git-dir", a.llmc, "archive", LLMC_COMMIT],
                             capture_output=True)
        if git.returncode != 0:
            die("--llmc %s: not an llm.c checkout, and git archive %s failed: %s" %
                (a.llmc, LLMC_COMMIT, git.stderr.decode().strip()))
        subprocess.run(["tar", "-x", "-C", src], input=git.stdout, check=True)
    c = os.path.join(src, "train_gpt2_bench.c")
    shutil.copy(os.path.join(src, "train_gpt2.c"), c)
    with open(os.path.join(a.peers, "train_gpt2_bench.patch")) as f:
        p = subprocess.run(["patch", c], stdin=f, capture_output=True, text=True)
    if p.returncode != 0:
        die("the llm.c patch does not apply (llm.c commit %s wanted): %s" %
            (LLMC_COMMIT, p.stdout.strip()))
    p = subprocess.run(["gcc", "-Ofast", "-march=native", "-fopenmp", "-DOMP", "-o",
                        os.path.join(work, "train_gpt2_bench"), c, "-lm"], cwd=src,
                       capture_output=True, text=True)
    if p.returncode != 0:
        die("building llm.c failed: " + p.stderr.strip()[-2000:])


def sgemm_gflops(a):
    exe = os.path.join(os.path.dirname(a.bin), "hgnn-bench-linear")
    return max(json.loads(run([exe, "--sgemm", "1"])[0])["sgemm_gflops"] for _ in range(3))


def med(rs, key):
    return statistics.median(r[key] for r in rs) if rs else None


def fmt(x, spec="%.0f"):
    return "" if x is None else spec % x


def met(ok):
    return "met" if ok else "NOT met"


def ref_cells(config, prog, variant, threads):
    r = REFERENCE.get((config, prog, variant)) if threads == 1 else None
    return "" if r is None else "%d ms, %d tok/s, %s GFLOP/s, %d MiB" % (
        r[0], r[1], fmt(r[2], "%.1f") or "-", r[3])


def report(a, res, gemm, t_start, load0, final):
    """The tables of what has been measured so far (printed and written when final)."""
    load1 = os.getloadavg()
    t_end = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        "# hgnn-lm's training step against PyTorch and llm.c (CPU, B = %d, T = %d)" % (B, T), "",
        "Measured %s to %s UTC on %s, %d CPUs (%s). **The VM is shared**: load average "
        "%.1f / %.1f / %.1f (1/5/15 min) at the start, %.1f / %.1f / %.1f at the end%s; "
        "ratios are taken in one sitting, interleaved; absolute figures are not exact." %
        (t_start.strftime("%Y-%m-%d %H:%M"), t_end.strftime("%H:%M"), cpu_model(),
         os.cpu_count(), platform.machine(), *load0, *load1,
         (" (" + a.note + ")") if a.note else ""), "",
        "Random tokens, vocabulary 50257 (50304 in the models), rank d/12 (21, 64), dropout "
        "0. Steps timed per run (after one warm-up step): hgnn %s; PyTorch %s; llm.c %s. "
        "Median of %s interleaved repeats. ms/step: forward + backward + optimiser update "
        "(hgnn: also the gradient norm and clipping). GFLOP/s: B T (6 N + 12 L d T) per step "
        "with N the full-rank model's parameters less the position table (small: %s, "
        "opt-125m: %s), for full-rank training only; %% SGEMM: of threads x the single-thread "
        "1024^3 SGEMM rate (hgnn-bench-linear --sgemm, best of 6): %.1f GFLOP/s here. Peak "
        "RSS: ru_maxrss of each run (PyTorch's includes Python and torch). hgnn's forward / "
        "backward / update columns: the split of its step (forward timed in a separate pass "
        "without gradient)." % (
            fmt_steps(a.steps), fmt_steps(a.peer_steps),
            fmt_steps(a.llmc_steps), fmt_repeats(a.repeats), fmt_n(res, "small"), fmt_n(res, "opt-125m"),
            gemm), ""]
    lines += ["| threads | config | program | ms/step | tokens/s | GFLOP/s | % SGEMM | "
              "peak RSS MiB | fwd / bwd / update ms | vs PyTorch | vs llm.c | "
              "step / full | another machine's figure (1 thread) |",
              "|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    checks = []
    for t in a.threads:
        for c in a.configs:
            torch = {v: med(res.get((t, c, "torch", v), []), "step_ms")
                     for v in ("opt", "sst", "lora")}
            llmc = med(res.get((t, c, "llmc", ""), []), "step_ms")
            full = med(res.get((t, c, "hgnn", "full"), []), "step_ms")
            nflop = n_flops(res, c)
            for prog, variant in [("hgnn", m) for m in a.methods] + \
                    [("torch", v) for v in ("opt", "sst", "lora")] + [("llmc", "")]:
                rs = res.get((t, c, prog, variant), [])
                if not rs:
                    continue
                ms, rss = med(rs, "step_ms"), med(rs, "rss") / 2**20
                tps = B * T / (ms / 1e3)
                dense = (prog, variant) in (("hgnn", "full"), ("torch", "opt"), ("llmc", ""))
                gf = nflop / (ms / 1e3) / 1e9 if dense and nflop else None
                split = vs_t = vs_l = ratio = ""
                if prog == "hgnn":
                    split = "%.0f / %.0f / %.0f" % (med(rs, "forward_ms"), med(rs, "backward_ms"),
                                                    med(rs, "update_ms"))
                    pt = torch[PEER_OF[variant]]
                    if pt:
                        r = pt / ms
                        vs_t = "%.2fx" % r
                        if t == 1 and c in TARGET_TORCH and variant == "full":
                            vs_t += " (>= %.1fx: %s)" % (TARGET_TORCH[c],
                                                         met(r >= TARGET_TORCH[c]))
                            checks.append(("%s: hgnn %.2fx PyTorch's tokens/s (>= %.1fx)" %
                                           (c, r, TARGET_TORCH[c]), r >= TARGET_TORCH[c]))
                    if llmc:
                        r = llmc / ms
                        vs_l = "%.2fx" % r
                        if t == 1 and variant == "full":
                            vs_l += " (>= %.0fx: %s)" % (TARGET_LLMC, met(r >= TARGET_LLMC))
                            checks.append(("%s: hgnn %.2fx llm.c's tokens/s (>= %.0fx)" %
                                           (c, r, TARGET_LLMC), r >= TARGET_LLMC))
                    if full and variant != "full":
                        q = ms / full
                        ratio = "%.2f" % q
                        if variant in TARGET_STEP:
                            ratio += " (<= %.2f: %s)" % (TARGET_STEP[variant],
                                                         met(q <= TARGET_STEP[variant]))
                            if t == 1:
                                checks.append(("%s: %s step / full step %.2f (<= %.2f)" %
                                               (c, variant, q, TARGET_STEP[variant]),
                                               q <= TARGET_STEP[variant]))
                name = {"hgnn": "hgnn %s" % variant, "torch": "PyTorch %s" % variant,
                        "llmc": "llm.c train_gpt2.c"}[prog]
                lines.append("| %d | %s | %s | %.0f | %.0f | %s | %s | %.0f | %s | %s | %s | %s "
                             "| %s |" % (t, c, name, ms, tps, fmt(gf, "%.1f"),
                                         fmt(gf and 100 * gf / (t * gemm), "%.0f%%"), rss,
                                         split, vs_t, vs_l, ratio,
                                         ref_cells(c, prog, variant, t)))
    memory_checks(a, res, checks)
    lines += ["", "The right-hand column: the figures of another machine of this kind (its "
              "single-thread SGEMM about %.0f GFLOP/s), for scale only; the ratios are this "
              "sitting's." % REFERENCE_SGEMM, "", "## Targets (one thread)", "",
              "hgnn full >= %.1fx PyTorch's tokens/s at small, >= %.0fx llm.c's at both sizes; "
              "SST step <= %.2fx and LoRA step <= %.2fx the full step; peak memory below "
              "PyTorch's, SST's and LoRA's below full's." % (
                  TARGET_TORCH["small"], TARGET_LLMC, TARGET_STEP["sst"], TARGET_STEP["lora"]),
              ""]
    lines += ["- %s: **%s**" % (what, met(ok)) for what, ok in checks] or ["- (not measured)"]
    lines += memory_table(a, res)
    if not final:
        lines += ["", "**Partial**: written while the run was going (it may have been stopped "
                  "since)."]
    if not a.peers:
        lines += ["", "The peers were not run (no --peers): their columns are empty."]
    elif not a.llmc:
        lines += ["", "llm.c was not run (no --llmc)."]
    text_out(a, lines, res, gemm, final)


def memory_checks(a, res, checks):
    """Append the peak-memory targets at one thread to checks: hgnn full below PyTorch's, SST
    and LoRA below full."""
    for c in a.configs:
        full = med(res.get((1, c, "hgnn", "full"), []), "rss")
        pt = med(res.get((1, c, "torch", "opt"), []), "rss")
        if full and pt:
            checks.append(("%s: hgnn full peak RSS %.0f MiB below PyTorch's %.0f MiB" %
                           (c, full / 2**20, pt / 2**20), full < pt))
        for m in ("sst", "lora"):
            r = med(res.get((1, c, "hgnn", m), []), "rss")
            if full and r:
                checks.append(("%s: hgnn %s peak RSS %.0f MiB below full's %.0f MiB" %
                               (c, m, r / 2**20, full / 2**20), r < full))


def memory_table(a, res):
    """opt-125m (or the largest configuration measured), one thread: bytes per class."""
    c = "opt-125m" if "opt-125m" in a.configs else a.configs[-1]
    rows = [(m, res.get((1, c, "hgnn", m), [])) for m in a.methods]
    rows = [(m, rs) for m, rs in rows if rs]
    if not rows:
        return []
    mib = 2**20
    lines = ["", "## Memory by class: %s, one thread, B = %d, T = %d (MiB)" % (c, B, T), "",
             "Trainable parameters, their gradients, the optimiser's state (both Adam moments), "
             "frozen tensors (LoRA's W0, SST's unsampled singular vectors), derived buffers (the "
             "materialised weight W of LoRA, ReLoRA* and SST maps on the dense path; the forward's X V "
             "that SST maps on the factored path keep for their backward), the shared workspace; "
             "other = peak RSS less these (activations, the logits chunk, code and libraries).",
             "", "| method | trainable | gradients | optimiser | frozen | derived | workspace | "
             "other | peak RSS | ms/step |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, rs in rows:
        j = rs[-1]
        parts = [j["bytes_" + k] for k in ("trainable", "grads", "optimizer", "frozen",
                                           "derived", "workspace")]
        rss = med(rs, "rss")
        lines.append("| %s | %s | %.0f | %.0f | %.0f |" % (
            m, " | ".join("%.1f" % (v / mib) for v in parts), (rss - sum(parts)) / mib,
            rss / mib, med(rs, "step_ms")))
    return lines


def text_out(a, lines, res, gemm, final):
    write_table(lines, a.out, echo=final)
    write_json({"sgemm_gflops": gemm, "B": B, "T": T, "runs": [
        dict(threads=k[0], config=k[1], program=k[2], variant=k[3], results=v)
        for k, v in res.items()]}, os.path.splitext(a.out)[0] + ".json")


def n_flops(res, c):
    for k, v in res.items():
        if k[1] == c and k[2] == "hgnn" and v:
            return B * T * (6 * v[0]["flops_params"] + 12 * v[0]["layers"] * v[0]["dim"] * T)
    return None


def fmt_n(res, c):
    for k, v in res.items():
        if k[1] == c and k[2] == "hgnn" and v:
            return "%.2fM" % (v[0]["flops_params"] / 1e6)
    return "-"


def fmt_repeats(r):
    vals = set(r.values())
    if len(vals) == 1:
        return str(vals.pop())
    return ", ".join("%d (%d thread%s)" % (n, t, "s" if t > 1 else "") for t, n in r.items())


def fmt_steps(d):
    return ", ".join("%s %d" % kv for kv in d.items())


def parse_steps(s, what):
    try:
        d = dict((k, int(v)) for k, v in (p.split("=") for p in s.split(",") if p))
    except ValueError:
        die("%s: expected config=steps,... e.g. small=5,opt-125m=2" % what)
    if set(d) - set(CONFIGS) or any(v < 1 for v in d.values()):
        die("%s: configurations %s, steps >= 1" % (what, ", ".join(CONFIGS)))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "hgnn-bench-lm"))
    ap.add_argument("--peers", help="folder of torch_gpt.py, make_llmc_inputs.py and "
                    "train_gpt2_bench.patch (without it only hgnn runs)")
    ap.add_argument("--llmc", help="llm.c: a checkout or its bare git directory")
    ap.add_argument("--configs", default="small,opt-125m")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--methods", default="full,lora,relora,sst")
    ap.add_argument("--repeats", default="3",
                    help="N, or per thread count: e.g. 1=3,2=1")
    ap.add_argument("--steps", default="small=5,opt-125m=2", help="hgnn's timed steps")
    ap.add_argument("--peer-steps", default="small=3,opt-125m=2", help="PyTorch's timed steps")
    ap.add_argument("--llmc-steps", default="small=3,opt-125m=1", help="llm.c's timed steps")
    ap.add_argument("--note", default="", help="added to the load line (what else ran)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: small, 1 thread, 1 repeat, 1 step each")
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "results", "bench_lm.md"))
    a = ap.parse_args()
    if a.quick:
        a.configs, a.threads, a.repeats = "small", "1", "1"
        a.steps = a.peer_steps = a.llmc_steps = "small=1"
    a.configs = [c for c in a.configs.split(",") if c]
    a.methods = [m for m in a.methods.split(",") if m]
    try:
        a.threads = [int(v) for v in a.threads.split(",") if v]
        if "=" in a.repeats:
            a.repeats = dict((int(k), int(v)) for k, v in
                             (p.split("=") for p in a.repeats.split(",") if p))
        else:
            a.repeats = dict((t, int(a.repeats)) for t in a.threads)
    except ValueError:
        die("--threads takes comma-separated integers, --repeats N or THREADS=N,...")
    if not a.configs or set(a.configs) - set(CONFIGS):
        die("--configs: from %s" % ", ".join(CONFIGS))
    if not a.methods or set(a.methods) - set(PEER_OF):
        die("--methods: from %s" % ", ".join(PEER_OF))
    if not a.threads or min(a.threads) < 1 or \
            any(a.repeats.get(t, 0) < 1 for t in a.threads):
        die("--threads >= 1, --repeats >= 1 for every thread count")
    a.steps = parse_steps(a.steps, "--steps")
    a.peer_steps = parse_steps(a.peer_steps, "--peer-steps")
    a.llmc_steps = parse_steps(a.llmc_steps, "--llmc-steps")
    for c in a.configs:
        for d in (a.steps, a.peer_steps, a.llmc_steps):
            d.setdefault(c, 1)
    if not os.access(a.bin, os.X_OK):
        die("%s: not built (ninja -C build)" % a.bin)
    if a.peers:
        a.peers = os.path.abspath(a.peers)
        for f in ("torch_gpt.py", "make_llmc_inputs.py", "train_gpt2_bench.patch"):
            if not os.path.isfile(os.path.join(a.peers, f)):
                die("--peers %s: no %s there" % (a.peers, f))
    if a.llmc and not a.peers:
        die("--llmc needs --peers (the patch is there)")
    a.llmc = a.llmc and os.path.abspath(a.llmc)

    work = tempfile.mkdtemp(prefix="hg_bench_lm_")
    if a.peers:
        run([sys.executable, os.path.join(a.peers, "make_llmc_inputs.py"), work])
        if a.llmc:
            build_llmc(a, work)
    load0 = os.getloadavg()
    gemm0 = sgemm_gflops(a)
    res = {}
    t_start = datetime.datetime.now(datetime.timezone.utc)
    for rep in range(max(a.repeats.values())):
        for t in [t for t in a.threads if rep < a.repeats[t]]:
            for c in a.configs:
                jobs = [("hgnn", m) for m in a.methods]
                if a.peers:
                    jobs += [("torch", v) for v in ("opt", "sst", "lora")]
                    if a.llmc:
                        jobs.append(("llmc", ""))
                if rep % 2:
                    jobs.reverse()
                for prog, v in jobs:
                    if prog == "hgnn":
                        r = run_hgnn(a, c, v, t)
                    elif prog == "torch":
                        r = run_torch(a, c, v, t, work)
                    else:
                        r = run_llmc(a, c, t, work)
                    res.setdefault((t, c, prog, v), []).append(r)
                    print("repeat %d/%d: %d thread(s) %s %s %s: %.0f ms/step, %.0f MiB  "
                          "(load %.1f)" % (rep + 1, a.repeats[t], t, c, prog, v, r["step_ms"],
                                           r["rss"] / 2**20, os.getloadavg()[0]),
                          file=sys.stderr, flush=True)
                    report(a, res, gemm0, t_start, load0, False)
    shutil.rmtree(work, ignore_errors=True)
    report(a, res, max(gemm0, sgemm_gflops(a)), t_start, load0, True)


if __name__ == "__main__":
    main()
