#!/usr/bin/python3
"""bench_gpu.py - epoch time of hgnn-train on the CPU and the GPU, on every bundled dataset and on
synthetic graphs of growing size, with the achieved memory bandwidth of the aggregation SpMM.

For every bundled setting (cora nc, pubmed nc, airport nc, disease_nc nc, cora lp, disease_lp lp,
airport lp, pubmed lp) and for igraph G(n, m) graphs of 1e4, 3e4, 1e5, 3e5, 1e6 nodes (average
degree 10, 100 binary features with 5 non-zeros per node, 5 classes; written by hgnn-gengraph into
BUILD/bench-graphs/, reused when present; --quick stops at 1e5), hgnn-train runs a fixed number
of epochs with early stopping off (--patience > --epochs) on --device cpu (--threads) and on
--device cuda. The figure is hgnn-train's `epoch_ms`: the median time of one training step
(forward, backward, optimiser step; evaluation excluded). When `--device cuda` does not work
(no CUDA build or no device: hgnn-train exits non-zero) the GPU columns read "n/a (no CUDA
device)" and a note quotes hgnn-train's message.

For the synthetic graphs hgnn-bench-spmm times the aggregation Y = A X (A = D^-1 (A + I), X n x 16)
and reports the effective bandwidth (rowptr + col + val + X once + Y once, over the median time:
a lower bound on the traffic), as a fraction of the measured memcpy copy bandwidth on the CPU and
of --gpu-peak-gbs on the GPU (default: the data-sheet HBM bandwidth of the detected GPU from a
small table, else 3350 GB/s = H100 SXM). The cost growth is summarised by least-squares fits of
ms/epoch against edges over the synthetic series (slope, intercept, R^2) and by the exponent of
a log-log fit (1 = linear).

The Transformer rows (off with --no-transformer): hgnn-mt on the bundled Multi30K at d in
--mt-dims (FFN 4d, 4 heads, 3+3 layers, vocabulary 8000: scripts/bench_mt.py's settings and its
FLOP count of a step) for --mt-steps steps without decoding, its tokens/s = tokens per step /
median step; and hgnn-lm's training step from hgnn-bench-lm (random tokens, dropout 0) at
`small` (B 8, T 256) and `opt-125m` (B 8, T 1024; --lm-cpu-steps on the CPU, where one step takes
about a minute), with B T (6 N + 12 L d T) FLOPs a step. Every row CPU and GPU side by side:
tokens/s, achieved TFLOP/s and, on the GPU, the share of its FP32 peak (--gpu-peak-tflops, else
the data sheet of the detected GPU: the non-tensor-core FP32 rate, since the FP32 GEMMs run
without TF32); the GPU also runs each row with --precision bf16, against the dense BF16
tensor-core peak (--gpu-peak-bf16-tflops, else the data sheet), and the hgnn-lm rows with
--attention fused as well (in both precisions): the measurement that picks the attention kernel.

Writes the Markdown to scripts/results/bench_gpu.md (--out) and the raw numbers with the machine
description (CPU model, cores, GPU name) to the same path with .json.

Usage: scripts/bench_gpu.py [--build build] [--threads N] [--epochs 30] [--repeat 1] [--quick]
                            [--sizes 1e4,3e4,...|none] [--gpu-peak-gbs G] [--no-bundled] [--no-gpu]
                            [--no-transformer] [--mt-dims 64,256,512] [--mt-steps 30]
                            [--lm-configs small,opt-125m] [--lm-steps 5] [--lm-cpu-steps 1]
                            [--gpu-peak-tflops T] [--gpu-peak-bf16-tflops T]
"""
import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_mt  # noqa: E402  (its model, data preparation and FLOP count)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SETTINGS = [("cora", "nc"), ("pubmed", "nc"), ("airport", "nc"), ("disease_nc", "nc"),
            ("cora", "lp"), ("disease_lp", "lp"), ("airport", "lp"), ("pubmed", "lp")]
SIZES = [10000, 30000, 100000, 300000, 1000000]
QUICK_MAX = 100000
AVG_DEGREE, FEATURES, FEAT_NNZ, CLASSES, GRAPH_SEED = 10, 100, 5, 5, 1

# Data-sheet memory bandwidth (GB/s) by GPU name (substring, first match); the default is H100 SXM.
GPU_PEAK_GBS = [("H200", 4800), ("H100 NVL", 3900), ("H100 PCIe", 2000), ("H100", 3350),
                ("A100-SXM4-80GB", 2039), ("A100 80GB PCIe", 1935), ("A100", 1555),
                ("L40S", 864), ("L4", 300), ("A10", 600), ("V100", 900)]
DEFAULT_GPU_PEAK_GBS = 3350
# Data-sheet FP32 rate without tensor cores (TFLOP/s), as above; the default is H100 SXM.
GPU_PEAK_TFLOPS = [("H200", 67), ("H100 NVL", 60), ("H100 PCIe", 51), ("H100", 67),
                   ("A100", 19.5), ("L40S", 91.6), ("L4", 30.3), ("A10", 31.2), ("V100", 15.7)]
DEFAULT_GPU_PEAK_TFLOPS = 67
# Data-sheet dense BF16 tensor-core rate (TFLOP/s, no sparsity), as above; the default is H100 SXM.
GPU_PEAK_BF16_TFLOPS = [("H200", 989), ("H100 NVL", 835), ("H100 PCIe", 756), ("H100", 989),
                        ("A100", 312), ("L40S", 362), ("L4", 121), ("A10", 125)]
DEFAULT_GPU_PEAK_BF16_TFLOPS = 989
LM_SHAPES = {"small": (8, 256), "opt-125m": (8, 1024)}  # config -> (batch, ctx)
# hgnn-lm's GPU runs: (precision, attention kernel, key of the row); hgnn-mt's: the first and third
LM_GPU_VARIANTS = [("fp32", "gemm", "gpu"), ("fp32", "fused", "gpu_fused"),
                   ("bf16", "gemm", "gpu_bf16"), ("bf16", "fused", "gpu_bf16_fused")]
NO_GPU = "n/a (no CUDA device)"


def last_json(stdout):
    """The JSON object on the last line of a program's stdout (hgnn-train's convention)."""
    return json.loads(stdout.strip().splitlines()[-1])


def one_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(no message)"


def run_train(binary, data_args, device, threads, epochs):
    cmd = [binary] + data_args + ["--epochs", str(epochs), "--patience", str(epochs + 1),
                                  "--device", device, "--threads", str(threads), "--quiet",
                                  "--log-freq", "0"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, "%s (exit %d)" % (one_line(p.stderr), p.returncode)
    res = last_json(p.stdout)
    res["wall_seconds"] = time.time() - t0
    res["command"] = " ".join(os.path.relpath(c, ROOT) if c == binary else c for c in cmd)
    return res, None


def run_spmm(binary, data_args, device, threads):
    cmd = [binary] + data_args + ["--device", device, "--threads", str(threads), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, "%s (exit %d)" % (one_line(p.stderr), p.returncode)
    return last_json(p.stdout), None


def keep_best(old, new, key, runs_key):
    """Of two results (dicts or None) the one with the smaller `key`; the list of every run's
    value is kept under runs_key."""
    if new is None:
        return old
    runs = (old[runs_key] if old else []) + [new[key]]
    best = new if old is None or new[key] < old[key] else old
    best[runs_key] = runs
    return best


def gen_graph(binary, cache, n):
    d = os.path.join(cache, "er-n%d-d%d-f%d-k%d-c%d-s%d" % (n, AVG_DEGREE, FEATURES, FEAT_NNZ,
                                                             CLASSES, GRAPH_SEED))
    if os.path.exists(os.path.join(d, "README.md")):  # written last: the directory is complete
        return d
    cmd = [binary, "--out", d, "--nodes", str(n), "--avg-degree", str(AVG_DEGREE), "--model", "er",
           "--features", str(FEATURES), "--feat-nnz", str(FEAT_NNZ), "--classes", str(CLASSES),
           "--seed", str(GRAPH_SEED), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("bench_gpu: %s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    return d


def machine_info():
    info = {"hostname": platform.node(), "cpu_cores": os.cpu_count(), "cpu_model": "unknown",
            "os": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            info["memory_gib"] = round(kb / 2 ** 20, 1)
    except OSError:
        pass
    info["gpu_name"] = None
    if shutil.which("nvidia-smi"):
        p = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                            "--format=csv,noheader"], capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip():
            parts = [s.strip() for s in p.stdout.strip().splitlines()[0].split(",")]
            info["gpu_name"] = parts[0]
            info["gpu_memory"] = parts[1] if len(parts) > 1 else None
            info["gpu_driver"] = parts[2] if len(parts) > 2 else None
    return info


def fit_line(xs, ys):
    """Least squares y = a + b x: (a, b, R^2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return a, b, (1 - ss_res / ss_tot) if ss_tot else 1.0


def growth(rows, key):
    pts = [(r["edges"], r[key]["epoch_ms"]) for r in rows if r.get(key)]
    if len(pts) < 3:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    a, b, r2 = fit_line(xs, ys)
    la, lb, lr2 = fit_line([math.log(x) for x in xs], [math.log(y) for y in ys])
    return {"intercept_ms": a, "ms_per_million_edges": b * 1e6, "r2": r2,
            "loglog_exponent": lb, "loglog_r2": lr2, "points": len(pts)}


def fmt_ms(res):
    return "%.3f" % res["epoch_ms"] if res else None


def cell(res, err, gpu_ok, fmt, short=False):
    """A GPU cell: the figure, or why there is none (the error itself is in the JSON)."""
    if res:
        return fmt(res)
    if not gpu_ok:
        return "n/a" if short else NO_GPU
    return "failed"


def gpu_peak(given, flag, table, default, gpu_name):
    """A GPU peak and where it comes from: the option's value, else the data sheet of the first
    entry of table whose name the GPU's contains, else the default (H100 SXM)."""
    if given is not None:
        return given, flag
    for key, value in table:
        if gpu_name and key.lower() in gpu_name.lower():
            return value, "data sheet of %s" % key
    return default, "default: H100 SXM data sheet"


def run_lm(binary, config, device, threads, steps, precision="fp32", attention="gemm"):
    """hgnn-bench-lm's step at the configuration's (B, T): its JSON, or None and why."""
    b, t = LM_SHAPES[config]
    cmd = [binary, "--config", config, "--batch", str(b), "--ctx", str(t), "--device", device,
           "--threads", str(threads), "--steps", str(steps), "--warmup", "1",
           "--precision", precision, "--attention", attention]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, "%s (exit %d)" % (one_line(p.stderr), p.returncode)
    res = last_json(p.stdout)
    res["tflops"] = res["step_flops"] / (res["step_ms"] * 1e-3) / 1e12
    return res, None


def run_mt(binary, data, spm, stats, d, device, threads, steps, precision="fp32"):
    """hgnn-mt's training step at width d (scripts/bench_mt.py's model): tokens/s and TFLOP/s."""
    cmd = [binary, "train", "--data-dir", data, "--spm-model", spm, "--dim", str(d),
           "--ffn", str(4 * d), "--heads", str(bench_mt.HEADS), "--steps", str(steps),
           "--epochs", "1", "--decode", "0", "--device", device, "--threads", str(threads),
           "--seed", "1", "--quiet", "--precision", precision]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, "%s (exit %d)" % (one_line(p.stderr), p.returncode)
    j = last_json(p.stdout)
    tokens = j["tokens_per_s"] * j["train_seconds"] / j["steps"]
    flops = bench_mt.step_flops(d, 4 * d, "full", 0, tokens, stats)
    return {"step_ms": j["step_ms"], "tokens_per_s": tokens / (j["step_ms"] * 1e-3),
            "tflops": flops / (j["step_ms"] * 1e-3) / 1e12, "step_flops": flops}, None


def transformer_rows(a, gpu_ok, gpu_note, work):
    """The hgnn-mt and hgnn-lm rows, CPU and GPU side by side."""
    rows = []
    mt_bin, lm_bin = os.path.join(a.build, "hgnn-mt"), os.path.join(a.build, "hgnn-bench-lm")
    dims = [int(x) for x in a.mt_dims.split(",")] if a.mt_dims else []
    if dims:
        data = bench_mt.prepare_data(work)
        spm = bench_mt.learn_spm(work)
        stats = bench_mt.corpus_stats(spm)
        for d in dims:
            row = {"program": "hgnn-mt", "setting": "d %d" % d}
            row["cpu"], err = run_mt(mt_bin, data, spm, stats, d, "cpu", a.threads, a.mt_steps)
            if err:
                sys.exit("bench_gpu: hgnn-mt d %d on the CPU failed: %s" % (d, err))
            for prec, key in (("fp32", "gpu"), ("bf16", "gpu_bf16")):
                row[key], row[key + "_error"] = (
                    run_mt(mt_bin, data, spm, stats, d, "cuda", a.threads, a.mt_steps, prec)
                    if gpu_ok else (None, gpu_note))
            rows.append(row)
            print("  hgnn-mt d %d done" % d, file=sys.stderr)
    for config in (a.lm_configs.split(",") if a.lm_configs else []):
        if config not in LM_SHAPES:
            sys.exit("bench_gpu: --lm-configs: unknown configuration %r" % config)
        b, t = LM_SHAPES[config]
        row = {"program": "hgnn-lm", "setting": "%s B %d T %d" % (config, b, t)}
        row["cpu"], err = run_lm(lm_bin, config, "cpu", a.threads,
                                 a.lm_cpu_steps if config == "opt-125m" else a.lm_steps)
        if err:
            sys.exit("bench_gpu: hgnn-bench-lm %s on the CPU failed: %s" % (config, err))
        for prec, att, key in LM_GPU_VARIANTS:
            row[key], row[key + "_error"] = (
                run_lm(lm_bin, config, "cuda", a.threads, a.lm_steps, prec, att)
                if gpu_ok else (None, gpu_note))
        rows.append(row)
        print("  hgnn-lm %s done" % config, file=sys.stderr)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build directory with hgnn-train, hgnn-gengraph, hgnn-bench-spmm")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="CPU threads of hgnn-train and the CPU SpMM (default: all cores)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs per run, early stopping off")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all settings (training and SpMM); the fastest run of each "
                         "is reported")
    ap.add_argument("--quick", action="store_true", help="synthetic graphs up to 1e5 nodes")
    ap.add_argument("--sizes", default=None,
                    help="synthetic node counts, comma-separated (none: no synthetic graphs)")
    ap.add_argument("--gpu-peak-gbs", type=float, default=None,
                    help="GPU memory bandwidth for the SpMM fraction (default: by GPU name, "
                         "else 3350 = H100 SXM)")
    ap.add_argument("--no-bundled", action="store_true", help="only the synthetic series")
    ap.add_argument("--no-gpu", action="store_true", help="do not try --device cuda")
    ap.add_argument("--cache-dir", default=None, help="synthetic graphs (default BUILD/bench-graphs)")
    ap.add_argument("--no-transformer", action="store_true", help="no hgnn-mt / hgnn-lm rows")
    ap.add_argument("--mt-dims", default="64,256,512", help="hgnn-mt widths (empty: none)")
    ap.add_argument("--mt-steps", type=int, default=30, help="hgnn-mt training steps per run")
    ap.add_argument("--lm-configs", default="small,opt-125m", help="hgnn-lm configurations")
    ap.add_argument("--lm-steps", type=int, default=5, help="timed hgnn-lm steps")
    ap.add_argument("--lm-cpu-steps", type=int, default=1,
                    help="timed hgnn-lm steps of opt-125m on the CPU")
    ap.add_argument("--gpu-peak-tflops", type=float, default=None,
                    help="GPU FP32 peak (default: by GPU name, else 67 = H100 SXM)")
    ap.add_argument("--gpu-peak-bf16-tflops", type=float, default=None,
                    help="GPU dense BF16 tensor-core peak (default: by GPU name, else 989 = H100 "
                         "SXM)")
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "results", "bench_gpu.md"))
    a = ap.parse_args()
    train_bin = os.path.join(a.build, "hgnn-train")
    gen_bin = os.path.join(a.build, "hgnn-gengraph")
    spmm_bin = os.path.join(a.build, "hgnn-bench-spmm")
    for b in (train_bin, gen_bin, spmm_bin):
        if not os.access(b, os.X_OK):
            sys.exit("bench_gpu: %s not found; build first (ninja -C %s)" % (b, a.build))
    sizes = [] if a.sizes == "none" else \
        [int(float(s)) for s in a.sizes.split(",")] if a.sizes else \
        [s for s in SIZES if not a.quick or s <= QUICK_MAX]
    cache = a.cache_dir or os.path.join(a.build, "bench-graphs")
    info = machine_info()
    t_start = time.time()

    # does --device cuda work at all? (one short run on the smallest dataset)
    gpu_ok, gpu_note = False, "skipped (--no-gpu)"
    if not a.no_gpu:
        res, err = run_train(train_bin, ["--dataset", "disease_nc", "--task", "nc"], "cuda", 1, 2)
        gpu_ok, gpu_note = res is not None, err
    gpu_name = info["gpu_name"]
    spmm_done = {}  # SpMM of a dataset: measured once per round, shared by its tasks

    def measure(row, data_args, spmm_args, rnd):
        """One round of every measurement of a row; each keeps its fastest run so far."""
        label = row["setting"]
        res, err = run_train(train_bin, data_args, "cpu", a.threads, a.epochs)
        if err:
            sys.exit("bench_gpu: hgnn-train %s on the CPU failed: %s" % (label, err))
        row["cpu"] = keep_best(row.get("cpu"), res, "epoch_ms", "epoch_ms_runs")
        if gpu_ok:
            res, row["gpu_error"] = run_train(train_bin, data_args, "cuda", a.threads, a.epochs)
            row["gpu"] = keep_best(row.get("gpu"), res, "epoch_ms", "epoch_ms_runs")
        else:
            row["gpu"], row["gpu_error"] = None, gpu_note
        key = (tuple(spmm_args), rnd)
        if key not in spmm_done:
            res, err = run_spmm(spmm_bin, spmm_args, "cpu", a.threads)
            if err:
                sys.exit("bench_gpu: hgnn-bench-spmm %s on the CPU failed: %s" % (label, err))
            gres, gerr = (run_spmm(spmm_bin, spmm_args, "cuda", a.threads) if gpu_ok
                          else (None, gpu_note))
            spmm_done[key] = (res, gres, gerr)
        res, gres, gerr = spmm_done[key]
        row["spmm_cpu"] = keep_best(row.get("spmm_cpu"), dict(res), "ms", "ms_runs")
        row["spmm_gpu"] = keep_best(row.get("spmm_gpu"), dict(gres) if gres else None, "ms",
                                    "ms_runs")
        row["spmm_gpu_error"] = gerr
        row["nodes"], row["edges"] = row["spmm_cpu"]["nodes"], row["spmm_cpu"]["edges"]
        row["nnz"] = row["spmm_cpu"]["nnz"]
        print("  round %d %-22s cpu %s ms%s (%.0f s so far)" % (
            rnd + 1, label, fmt_ms(row["cpu"]),
            ", gpu %s ms" % fmt_ms(row["gpu"]) if row["gpu"] else "", time.time() - t_start),
            file=sys.stderr)

    # every setting once per round, --repeat rounds: a transient load on a shared machine then
    # slows one run of a setting, not all of them
    jobs, bundled, synthetic = [], [], []
    if not a.no_bundled:
        for ds, task in SETTINGS:
            bundled.append({"setting": "%s %s" % (ds, task)})
            jobs.append((bundled[-1], ["--dataset", ds, "--task", task], ["--dataset", ds]))
    for n in sizes:
        d = gen_graph(gen_bin, cache, n)
        synthetic.append({"setting": "er n=%g" % n,
                          "data_dir": os.path.relpath(d, ROOT) if d.startswith(ROOT + os.sep)
                          else d})
        jobs.append((synthetic[-1], ["--data-dir", d, "--task", "nc"], ["--data-dir", d]))
    for rnd in range(a.repeat):
        for row, data_args, spmm_args in jobs:
            measure(row, data_args, spmm_args, rnd)

    for r in bundled + synthetic:
        if r["spmm_gpu"] and r["spmm_gpu"].get("device_name") and not gpu_name:
            gpu_name = r["spmm_gpu"]["device_name"]
    peak, peak_src = gpu_peak(a.gpu_peak_gbs, "--gpu-peak-gbs", GPU_PEAK_GBS,
                              DEFAULT_GPU_PEAK_GBS, gpu_name)
    # one CPU peak for every row: the best copy bandwidth measured by any hgnn-bench-spmm run
    copy = max([r["spmm_cpu"]["copy_gbs"] for r in bundled + synthetic] or [0.0])
    for r in bundled + synthetic:
        r["spmm_cpu"]["fraction_of_copy"] = r["spmm_cpu"]["gbs"] / copy
        if r["spmm_gpu"]:
            r["spmm_gpu"]["fraction_of_peak"] = r["spmm_gpu"]["gbs"] / peak
    fits = {"cpu": growth(synthetic, "cpu"), "gpu": growth(synthetic, "gpu")}
    tf_rows = []
    if not a.no_transformer:
        with tempfile.TemporaryDirectory() as work:
            tf_rows = transformer_rows(a, gpu_ok, gpu_note, work)
    tpeak, tpeak_src = gpu_peak(a.gpu_peak_tflops, "--gpu-peak-tflops", GPU_PEAK_TFLOPS,
                                DEFAULT_GPU_PEAK_TFLOPS, gpu_name)
    bpeak, bpeak_src = gpu_peak(a.gpu_peak_bf16_tflops, "--gpu-peak-bf16-tflops",
                                GPU_PEAK_BF16_TFLOPS, DEFAULT_GPU_PEAK_BF16_TFLOPS, gpu_name)

    def ratio(r):
        if r["cpu"] and r["gpu"]:
            x = r["cpu"]["epoch_ms"] / r["gpu"]["epoch_ms"]
            return ("%.1fx" if x >= 1 else "%.2fx") % x
        return "-"

    def per_elem(res, r):  # ns per (node + edge) of one training step
        return "%.1f" % (res["epoch_ms"] * 1e6 / (r["nodes"] + r["edges"]))

    gpu_label = gpu_name or "none"
    lines = []
    lines.append("hgnn-train epoch time, CPU vs GPU: %s, %s (%d cores, %s threads used), GPU: %s; "
                 "%d epochs per run, early stopping off%s; %s"
                 % (info["hostname"], info["cpu_model"], info["cpu_cores"], a.threads, gpu_label,
                    a.epochs, ", fastest of %d rounds" % a.repeat if a.repeat > 1 else "",
                    time.strftime("%Y-%m-%d")))
    lines.append("")
    lines.append("ms/epoch = hgnn-train's `epoch_ms`: median time of one training step (forward, "
                 "backward, optimiser step; evaluation excluded). Reference hyperparameters for the "
                 "bundled datasets; hgnn-train defaults (dim 16, 2 layers) for the synthetic ones.")
    if not gpu_ok:
        lines.append("")
        lines.append("GPU columns: `%s --device cuda` failed here: %s"
                     % (os.path.relpath(train_bin, ROOT), gpu_note))
    if bundled:
        lines.append("")
        lines.append("| setting | nodes | edges | CPU ms/epoch | GPU ms/epoch | CPU/GPU |")
        lines.append("|---|---|---|---|---|---|")
        for r in bundled:
            lines.append("| %s | %d | %d | %s | %s | %s |" % (
                r["setting"], r["nodes"], r["edges"], fmt_ms(r["cpu"]),
                cell(r["gpu"], r["gpu_error"], gpu_ok, fmt_ms), ratio(r)))
    if synthetic:
        lines.append("")
        lines.append("Synthetic graphs (`hgnn-gengraph --model er --avg-degree %d --features %d "
                     "--feat-nnz %d --classes %d --seed %d`, task nc, random split):"
                     % (AVG_DEGREE, FEATURES, FEAT_NNZ, CLASSES, GRAPH_SEED))
        lines.append("")
        lines.append("| nodes | edges | CPU ms/epoch | GPU ms/epoch | CPU/GPU | CPU ns/(n+m) | "
                     "GPU ns/(n+m) | SpMM CPU ms | CPU GB/s (% of copy) | SpMM GPU ms | "
                     "GPU GB/s (% of peak) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in synthetic:
            sc, sg = r["spmm_cpu"], r["spmm_gpu"]
            lines.append("| %d | %d | %s | %s | %s | %s | %s | %.3f | %.1f (%.0f%%) | %s | %s |" % (
                r["nodes"], r["edges"], fmt_ms(r["cpu"]),
                cell(r["gpu"], r["gpu_error"], gpu_ok, fmt_ms), ratio(r), per_elem(r["cpu"], r),
                cell(r["gpu"], r["gpu_error"], gpu_ok, lambda x: per_elem(x, r), True),
                sc["ms"], sc["gbs"], 100 * sc["fraction_of_copy"],
                cell(sg, r["spmm_gpu_error"], gpu_ok, lambda x: "%.3f" % x["ms"], True),
                cell(sg, r["spmm_gpu_error"], gpu_ok,
                     lambda x: "%.1f (%.1f%%)" % (x["gbs"], 100 * x["fraction_of_peak"]))))
        lines.append("")
        lines.append("SpMM: Y = A X with A = D^-1 (A + I) (nnz = 2m + n), X n x 16, hg_k_csr_spmm, "
                     "median of 21 repetitions; GB/s counts rowptr + col + val + X (each row once) "
                     "+ Y: a lower bound on the traffic (the JSON's `gbs_gather` counts X once per "
                     "non-zero instead: the upper bound; %.1f GB/s on the CPU at %d nodes). CPU "
                     "peak: memcpy copy bandwidth (best of the runs: %.1f GB/s, %d threads; above "
                     "100%%: the working set stays in the caches); GPU peak: "
                     "%.0f GB/s (%s)."
                     % (synthetic[-1]["spmm_cpu"]["gbs_gather"], synthetic[-1]["nodes"], copy,
                        a.threads, peak, peak_src))
        for dev in ("cpu", "gpu"):
            f = fits[dev]
            if f:
                lines.append("%s cost growth over the synthetic series: ms/epoch = %.3f + %.3f per "
                             "million edges (R^2 %.4f); log-log exponent %.3f (1 = linear)."
                             % (dev.upper(), f["intercept_ms"], f["ms_per_million_edges"], f["r2"],
                                f["loglog_exponent"]))
    if tf_rows:
        lines.append("")
        lines.append("Transformer training steps (hgnn-mt: Multi30K, FFN 4d, 3+3 layers, "
                     "vocabulary 8000, %d steps; hgnn-lm: hgnn-bench-lm, random tokens), FP32, and "
                     "on the GPU also `--precision bf16` (the products on bfloat16 tensor cores). "
                     "TFLOP/s from the FLOP count of a step; GPU peak %.1f TFLOP/s FP32 (%s), %.0f "
                     "TFLOP/s dense BF16 (%s)."
                     % (a.mt_steps, tpeak, tpeak_src, bpeak, bpeak_src))
        lines.append("")
        lines.append("| program | setting | precision, attention | CPU ms/step | CPU tokens/s | "
                     "CPU TFLOP/s | GPU ms/step | GPU tokens/s | GPU TFLOP/s (% of peak) | "
                     "GPU/CPU |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in tf_rows:
            c = r["cpu"]
            for prec, att, key in LM_GPU_VARIANTS:
                if key not in r:
                    continue
                peak = bpeak if prec == "bf16" else tpeak
                g, err = r.get(key), r.get(key + "_error")
                cpu_cells = ("%.1f | %.0f | %.3f" % (c["step_ms"], c["tokens_per_s"], c["tflops"])
                             if key == "gpu" else "- | - | -")
                lines.append("| %s | %s | %s, %s | %s | %s | %s | %s | %s |" % (
                    r["program"], r["setting"], prec, att, cpu_cells,
                    cell(g, err, gpu_ok, lambda x: "%.2f" % x["step_ms"], True),
                    cell(g, err, gpu_ok, lambda x: "%.0f" % x["tokens_per_s"], True),
                    cell(g, err, gpu_ok,
                         lambda x: "%.2f (%.1f%%)" % (x["tflops"], 100 * x["tflops"] / peak),
                         True),
                    "%.1fx" % (g["tokens_per_s"] / c["tokens_per_s"]) if g else "-"))
    lines.append("")
    lines.append("Command: `scripts/bench_gpu.py%s` (%.0f s)." % (
        "".join(" " + x for x in sys.argv[1:]), time.time() - t_start))
    text = "\n".join(lines) + "\n"
    print(text)

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    raw = {"machine": dict(info, gpu_name=gpu_name), "threads": a.threads, "epochs": a.epochs,
           "gpu_available": gpu_ok, "gpu_note": None if gpu_ok else gpu_note,
           "cpu_copy_gbs": copy, "gpu_peak_gbs": peak, "gpu_peak_source": peak_src, "bundled": bundled,
           "synthetic": synthetic, "fits": fits, "transformer": tf_rows,
           "gpu_peak_tflops": tpeak, "gpu_peak_tflops_source": tpeak_src,
           "gpu_peak_bf16_tflops": bpeak, "gpu_peak_bf16_tflops_source": bpeak_src,
           "argv": sys.argv[1:],
           "seconds": time.time() - t_start}
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(raw, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
