#!/usr/bin/env python3
"""test_device.py - hgnn-lm and hgnn-mt with --device cuda against --device cpu, the programs as a
user runs them, on the GPU backend (a real GPU, or the CPU emulation of the CUDA runtime linked
into the *-emu builds).

hgnn-lm: a tiny OPT on a repeated random token pattern, every method (full, LoRA, ReLoRA*, SST), 12
steps with an SST iteration every 3 steps and a round (an SVD) every 6, evaluated every step: the
training loss, gradient norm and validation loss of every step on the device agree with the CPU's
within TOL (the two sum in other orders, so the bits differ); two device runs are the same bits;
`eval --device cuda` of the saved model gives the CPU's perplexity; `generate` on the device writes
the CPU's text. hgnn-mt: a tiny translation model on the first 200 pairs of the bundled Multi30K
(10 validation, 6 test), full and SST, 9 steps: the losses agree, and the beam-search test
translations are the CPU's. hgnn-lm and hgnn-mt with --attention fused (CPU and device) follow the
CPU's batched-product attention within TOL. With --precision bf16 (both programs): close to the
fp32 run, not equal to it, and (hgnn-lm) the same bits on repeat; the CPU refuses bf16.

Usage: test_device.py HGNN_LM HGNN_LM_DEVICE HGNN_MT HGNN_MT_DEVICE SOURCE_ROOT (HGNN_*_DEVICE: the
same program built against the emulated runtime, or the program itself on a machine with a GPU;
exit 77, skipped, when --device cuda finds no device)."""

import csv
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

LM, LM_DEV, MT, MT_DEV, ROOT = sys.argv[1:6]
# Relative agreement of a CPU and a device run over a dozen steps: float sums in other orders
# (about 1e-7 each) grown by the steps' sensitivity; 1e-4 still catches a wrong kernel, whose
# loss is off at the first step by far more.
TOL = 1e-4
# bf16 products against the fp32 CPU run: each product off by up to 2^-7 of its terms, grown
# by a dozen steps at lr 1e-2 (measured on the emulator, which rounds as the tensor cores do:
# worst 2.4e-2 for full, 2.1e-3 for SST); a wrong product is off by far more at its first step.
BF16_TOL = 5e-2
failures = []


def check(cond, what):
    print(("ok   - " if cond else "FAIL - ") + what)
    if not cond:
        failures.append(what)


def run(exe, *args):
    p = subprocess.run([exe, *args], capture_output=True, text=True)
    if p.returncode != 0:
        check(False, "%s %s: exit %d: %s" % (os.path.basename(exe), " ".join(args[:2]),
                                             p.returncode, p.stderr.strip()[-500:]))
    return p


def last_json(p):
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def log_rows(d):
    try:
        with open(os.path.join(d, "log.csv")) as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def close(a, b):
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def compare_logs(cpu_dir, dev_dir, keys, what, tol=TOL):
    a, b = log_rows(cpu_dir), log_rows(dev_dir)
    check(len(a) > 0 and len(a) == len(b), "%s: %d CPU and %d device log lines" % (what, len(a),
                                                                                   len(b)))
    worst = 0.0
    for ra, rb in zip(a, b):
        for k in keys:
            x, y = float(ra[k]), float(rb[k])
            worst = max(worst, abs(x - y) / max(1.0, abs(x)))
    check(worst <= tol, "%s: %s agree step by step (worst relative difference %.2e, tolerance "
          "%.0e)" % (what, ", ".join(keys), worst, tol))


def same_file(p, q):
    try:
        with open(p, "rb") as f, open(q, "rb") as g:
            return f.read() == g.read()
    except OSError:
        return False


with tempfile.TemporaryDirectory() as tmp:
    # ---------------------------------------------------------------- hgnn-lm
    rnd = random.Random(5)
    pattern = [rnd.randrange(90) for _ in range(19)]
    ids = [pattern[i % 19] if rnd.random() < 0.9 else rnd.randrange(96) for i in range(6000)]
    toks, vtoks = os.path.join(tmp, "t.tok"), os.path.join(tmp, "v.tok")
    for path, part in ((toks, ids), (vtoks, ids[:200])):
        with open(path, "wb") as f:
            f.write(b"HGTOK1\0\0" + struct.pack("<IIQ", 1, 96, len(part)))
            f.write(struct.pack("<%dH" % len(part), *part))
    common = ["--config", "tiny", "--train", toks, "--valid", vtoks, "--eval-tokens", "128",
              "--batch", "2", "--ctx", "32", "--steps", "12", "--eval-every", "1",
              "--lr", "1e-2", "--warmup", "2", "--sst-steps", "3", "--sst-rounds-iters", "2",
              "--sst-warmup", "1", "--quiet"]
    # without a usable device (the real programs on a machine with no GPU): skip
    probe = subprocess.run([LM_DEV, "train", *common, "--steps", "0", "--device", "cuda"],
                           capture_output=True, text=True)
    if probe.returncode != 0 and "--device cuda" in probe.stderr:
        print("skip: " + probe.stderr.strip())
        sys.exit(77)
    for method in ("full", "lora", "relora", "sst"):
        d_cpu, d_dev, d_dev2 = (os.path.join(tmp, "lm_%s_%s" % (method, w))
                                for w in ("cpu", "dev", "dev2"))
        m = ["--method", method, "--rank", "4"]
        run(LM, "train", *common, *m, "--out", d_cpu)
        run(LM_DEV, "train", *common, *m, "--device", "cuda", "--out", d_dev)
        run(LM_DEV, "train", *common, *m, "--device", "cuda", "--out", d_dev2)
        compare_logs(d_cpu, d_dev, ("loss", "grad_norm", "val_loss"), "hgnn-lm %s" % method)
        runs = [[(r["loss"], r["grad_norm"], r["val_loss"]) for r in log_rows(d)]
                for d in (d_dev, d_dev2)]
        check(len(runs[0]) > 0 and runs[0] == runs[1],
              "hgnn-lm %s: two device runs log the same losses to the last digit" % method)
        check(same_file(os.path.join(d_dev, "last.ckpt"), os.path.join(d_dev2, "last.ckpt")),
              "hgnn-lm %s: two device runs save the same bytes" % method)
        if method == "sst":
            e_cpu = last_json(run(LM, "eval", "--model", d_cpu, "--text", vtoks))
            e_dev = last_json(run(LM_DEV, "eval", "--model", d_cpu, "--text", vtoks,
                                  "--device", "cuda"))
            check("loss" in e_cpu and "loss" in e_dev and close(e_cpu["loss"], e_dev["loss"]),
                  "hgnn-lm eval: device %s, CPU %s" % (e_dev.get("loss"), e_cpu.get("loss")))
            g = ["generate", "--model", d_cpu, "--prompt-ids", " ".join(map(str, pattern[:5])),
                 "--tokens", "12", "--temperature", "0.8", "--seed", "3"]
            g_cpu, g_dev = run(LM, *g), run(LM_DEV, *g, "--device", "cuda")
            check(g_cpu.returncode == 0 and g_cpu.stdout == g_dev.stdout,
                  "hgnn-lm generate: the device writes the CPU's %d bytes" % len(g_cpu.stdout))

    # --attention fused: causal self-attention in one kernel, on the CPU and the device, follows
    # the batched-product path (the same mathematics and dropout masks, other float sums)
    d_cpu = os.path.join(tmp, "lm_sst_cpu")
    for exe, where, extra in ((LM, "CPU", []), (LM_DEV, "device", ["--device", "cuda"])):
        d_f = os.path.join(tmp, "lm_sst_fused_" + where)
        run(exe, "train", *common, "--method", "sst", "--rank", "4", "--attention", "fused",
            *extra, "--out", d_f)
        compare_logs(d_cpu, d_f, ("loss", "grad_norm", "val_loss"),
                     "hgnn-lm sst --attention fused (%s) against the CPU's batched products"
                     % where)

    # --precision bf16: the products on bfloat16 (kernels.h, HG_PREC_BF16), fp32 everywhere else.
    # Each product is off by up to 2^-7 of its terms' magnitudes, not 1e-7: the runs follow the
    # fp32 CPU run within BF16_TOL, differ from it (the rounding happens), and repeat bitwise.
    for method in ("full", "sst"):
        d_cpu, d_b, d_b2 = (os.path.join(tmp, "lm_%s_%s" % (method, w))
                            for w in ("cpu", "bf16", "bf16b"))
        m = ["--method", method, "--rank", "4", "--device", "cuda", "--precision", "bf16"]
        r_b = last_json(run(LM_DEV, "train", *common, *m, "--out", d_b))
        run(LM_DEV, "train", *common, *m, "--out", d_b2)
        check(r_b.get("precision") == "bf16",
              "hgnn-lm %s bf16: result says precision %s" % (method, r_b.get("precision")))
        compare_logs(d_cpu, d_b, ("loss", "val_loss"), "hgnn-lm %s bf16" % method, BF16_TOL)
        a, b = log_rows(d_cpu), log_rows(d_b)
        check(any(ra["loss"] != rb["loss"] for ra, rb in zip(a, b)),
              "hgnn-lm %s bf16: the losses are not the fp32 ones (the products are rounded)"
              % method)
        runs = [[(r["loss"], r["grad_norm"], r["val_loss"]) for r in log_rows(d)]
                for d in (d_b, d_b2)]
        check(len(runs[0]) > 0 and runs[0] == runs[1] and
              same_file(os.path.join(d_b, "last.ckpt"), os.path.join(d_b2, "last.ckpt")),
              "hgnn-lm %s bf16: two runs log the same losses and save the same bytes" % method)
    p = subprocess.run([LM, "train", *common, "--precision", "bf16"], capture_output=True,
                       text=True)
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 2 and len(lines) == 1 and "--precision bf16" in lines[0],
          "hgnn-lm --precision bf16 on the CPU: exit %d, %r" % (p.returncode, p.stderr.strip()))

    # ---------------------------------------------------------------- hgnn-mt
    data = os.path.join(ROOT, "datasets", "data", "multi30k")
    c = os.path.join(tmp, "mt")
    os.makedirs(c)
    for lang in ("de", "en"):
        for name, src, n in (("train", "train", 200), ("val", "val", 10), ("test", "test2016", 6)):
            with open(os.path.join(data, "%s.%s" % (src, lang))) as f:
                lines = f.readlines()[:n]
            with open(os.path.join(c, "%s.%s" % (name, lang)), "w") as f:
                f.writelines(lines)
    files = []
    for flag, name in (("--train", "train"), ("--valid", "val"), ("--test", "test")):
        files += [flag + "-src", os.path.join(c, name + ".de"), flag + "-tgt",
                  os.path.join(c, name + ".en")]
    mt_common = files + ["--vocab", "200", "--dim", "16", "--ffn", "32", "--heads", "2",
                         "--enc-layers", "1", "--dec-layers", "1", "--max-tokens", "200",
                         "--lr", "3e-2", "--warmup", "4", "--steps", "9", "--eval-every", "3",
                         "--log-freq", "1", "--max-extra", "8", "--sst-steps", "3",
                         "--sst-rounds-iters", "2", "--quiet"]
    for method in ("full", "sst"):
        d_cpu, d_dev = (os.path.join(tmp, "mt_%s_%s" % (method, w)) for w in ("cpu", "dev"))
        m = ["--method", method, "--rank", "4"]
        r_cpu = last_json(run(MT, "train", *mt_common, *m, "--out", d_cpu))
        r_dev = last_json(run(MT_DEV, "train", *mt_common, *m, "--device", "cuda",
                              "--out", d_dev))
        compare_logs(d_cpu, d_dev, ("loss", "val_loss"), "hgnn-mt %s" % method)
        keys = ("val_loss", "test_bleu", "test_chrf")
        check(all(k in r_cpu and k in r_dev and close(r_cpu[k], r_dev[k]) for k in keys),
              "hgnn-mt %s: device %s, CPU %s" % (method, {k: r_dev.get(k) for k in keys},
                                                 {k: r_cpu.get(k) for k in keys}))
        check(same_file(os.path.join(d_cpu, "test.hyp"), os.path.join(d_dev, "test.hyp")),
              "hgnn-mt %s: the device's beam-search test translations are the CPU's" % method)

    d_cpu = os.path.join(tmp, "mt_sst_cpu")
    for exe, where, extra in ((MT, "CPU", []), (MT_DEV, "device", ["--device", "cuda"])):
        d_f = os.path.join(tmp, "mt_sst_fused_" + where)
        run(exe, "train", *mt_common, "--method", "sst", "--rank", "4", "--attention", "fused",
            *extra, "--out", d_f)
        compare_logs(d_cpu, d_f, ("loss", "val_loss"),
                     "hgnn-mt sst --attention fused (%s) against the CPU's batched products"
                     % where)
        check(same_file(os.path.join(d_cpu, "test.hyp"), os.path.join(d_f, "test.hyp")),
              "hgnn-mt sst --attention fused (%s): the CPU's test translations" % where)
    d_b = os.path.join(tmp, "mt_sst_bf16")
    r_b = last_json(run(MT_DEV, "train", *mt_common, "--method", "sst", "--rank", "4",
                        "--device", "cuda", "--precision", "bf16", "--out", d_b))
    compare_logs(d_cpu, d_b, ("loss", "val_loss"), "hgnn-mt sst bf16", BF16_TOL)
    check(r_b.get("precision") == "bf16" and "test_bleu" in r_b and
          os.path.getsize(os.path.join(d_b, "test.hyp")) > 0,
          "hgnn-mt sst bf16: trains, translates the test set (BLEU %s)" % r_b.get("test_bleu"))

print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
