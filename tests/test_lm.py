#!/usr/bin/env python3
"""test_lm.py - hgnn-lm's train, eval and generate as a user runs them, on token and text files
made here (a repeated random pattern; a few English sentences): a tiny model's validation loss
falls; --threads 2 equals 1; a run stopped and resumed ends with the bytes and the result.json of
an uninterrupted one; at step 0 LoRA and ReLoRA* give the full model's validation loss bit for
bit and SST within its rounding bound; eval reproduces train's final loss, on text or tokens
alike; --prune-sigma 1 is the unpruned model exactly; --positions sizes the position table and
eval/generate rebuild it; generate is deterministic for a seed and continues a text prompt; the
bundled corpus is the default; bad input exits 2 with one line naming the file or option.

Usage: test_lm.py HGNN_LM_TRAIN"""

import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile

EXE = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def write_tokens(path, ids, vocab, count=None, magic=b"HGTOK1\0\0"):
    with open(path, "wb") as f:
        f.write(magic + struct.pack("<IIQ", 1, vocab, len(ids) if count is None else count))
        f.write(struct.pack("<%dH" % len(ids), *ids))


def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True)


def result(p, what):
    check(p.returncode == 0, f"{what}: status {p.returncode}: {p.stderr.strip()}")
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        check(False, f"{what}: no JSON last line in {p.stdout!r}")
        return {}


def read(path):
    with open(path, "rb") as f:
        return f.read()


with tempfile.TemporaryDirectory() as tmp:
    rnd = random.Random(3)
    pattern = [rnd.randrange(90) for _ in range(23)]
    train, valid = os.path.join(tmp, "train.tok"), os.path.join(tmp, "valid.tok")
    write_tokens(train, [pattern[i % 23] for i in range(3000)], 90)
    write_tokens(valid, [pattern[(i + 5) % 23] for i in range(300)], 90)
    base = ["train", "--config", "tiny", "--dim", "32", "--ffn", "64", "--ctx", "16", "--batch",
            "4", "--train", train, "--valid", valid, "--warmup", "5", "--lr", "3e-3",
            "--eval-every", "10", "--quiet"]

    # the loss falls; the files of --out
    out = os.path.join(tmp, "run")
    r0 = result(run(*base, "--steps", "0"), "steps 0")
    r = result(run(*base, "--steps", "40", "--dropout", "0", "--out", out), "train")
    check(r.get("val_loss", 99) < r0.get("val_loss", 0) - 1.0,
          f"validation loss did not fall: {r0.get('val_loss')} -> {r.get('val_loss')}")
    for key in ("config", "method", "rank", "layers", "dim", "steps", "tokens", "seed",
                "val_loss", "val_ppl", "train_seconds", "tokens_per_s", "trainable_params",
                "optimizer_state_floats", "peak_rss_mib"):
        check(key in r, f"JSON has no {key}")
    check(r.get("tokens") == 40 * 4 * 16, f"tokens {r.get('tokens')}, expected {40 * 4 * 16}")
    for name in ("result.json", "log.csv", "last.ckpt", "args.txt"):
        check(os.path.exists(os.path.join(out, name)), f"--out wrote no {name}")

    # eval: the final model's validation loss again
    e = result(run("eval", "--model", out, "--quiet"), "eval")
    check(abs(e.get("loss", 0) - r.get("val_loss", 1)) <= 1e-9,
          f"eval loss {e.get('loss')} != train's {r.get('val_loss')}")

    # generate: ids in range, as many as asked, the same for the same seed
    g = [run("generate", "--model", out, "--prompt-ids", "1 2 3", "--tokens", "8", "--seed",
             "4", "--top-k", "5") for _ in range(2)]
    ids = g[0].stdout.split()
    check(g[0].returncode == 0 and len(ids) == 8 and all(0 <= int(x) < 90 for x in ids),
          f"generate: {g[0].stdout!r} {g[0].stderr!r}")
    check(g[0].stdout == g[1].stdout, "generate differs between two runs with one seed")
    greedy = run("generate", "--model", out, "--prompt-ids", " ".join(map(str, pattern[:4])),
                 "--tokens", "6", "--temperature", "0")
    check(greedy.stdout.split() == [str(x) for x in pattern[4:10]],
          f"greedy generation does not continue the learned pattern: {greedy.stdout!r}")

    # eval --prune-sigma: keeping every singular value is the model itself, bit for bit (the
    # weights are copied, not rebuilt); half of them gives another finite perplexity. For the
    # full model (out) and an SST one.
    sst_out = os.path.join(tmp, "sst")
    result(run(*base, "--steps", "10", "--method", "sst", "--rank", "4", "--out", sst_out),
           "sst train")
    for d in (out, sst_out):
        e = result(run("eval", "--model", d, "--text", valid, "--prune-sigma", "1,0.5",
                       "--quiet"), "eval --prune-sigma " + d)
        pr = e.get("pruned_ppl") or [[0, 0], [0, 0]]
        check(pr[0] == [1, e.get("ppl")], f"{d}: keep 1 gives {pr[0]}, unpruned ppl {e.get('ppl')}")
        check(pr[1][0] == 0.5 and math.isfinite(pr[1][1]) and pr[1][1] != e.get("ppl"),
              f"{d}: keep 0.5 gives {pr[1]}, unpruned ppl {e.get('ppl')}")

    # --positions: the position table's rows (default: the configuration's context, 64 for tiny,
    # or --ctx when larger); eval and generate rebuild the same model from args.txt
    pos_runs = {}
    for extra in ([], ["--positions", "16"], ["--positions", "40"], ["--ctx", "80"]):
        d = os.path.join(tmp, "pos" + "".join(extra))
        pos_runs[tuple(extra)] = (d, result(run(*base, "--steps", "2", *extra, "--out", d),
                                            "positions " + " ".join(extra)))
    params = {k: r.get("trainable_params", 0) for k, (d, r) in pos_runs.items()}
    for k, rows in (((), 64), (("--positions", "40"), 40), (("--ctx", "80"), 80)):
        check(params[k] - params[("--positions", "16")] == (rows - 16) * 32,
              f"{k}: {params[k]} trainable parameters, --positions 16 has "
              f"{params[('--positions', '16')]}: not a table of {rows} positions")
    # rows no window reaches are drawn after the used ones and never trained: the same run
    losses = {k: r.get("val_loss") for k, (d, r) in pos_runs.items() if "--ctx" not in k}
    check(len(set(losses.values())) == 1, f"the position table's size changes the run: {losses}")
    d, r = pos_runs[("--positions", "40")]
    e = result(run("eval", "--model", d, "--quiet"), "eval --positions 40")
    check(e.get("loss") == r.get("val_loss"), f"--positions 40: eval {e.get('loss')} != train's "
          f"{r.get('val_loss')}")
    g = run("generate", "--model", d, "--prompt-ids", "1 2", "--tokens", "3", "--temperature", "0")
    check(g.returncode == 0 and len(g.stdout.split()) == 3, f"generate --positions 40: {g!r}")

    # text files (GPT-2's vocabulary): train and eval read text or the same text's token file
    # alike; generate continues a text prompt, greedily the same twice
    text = os.path.join(tmp, "text.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("The cat sat on the mat. The dog sat on the log. Some text follows here.\n" * 6)
    text_tok = os.path.join(tmp, "text.tok")
    p = run("tokenize", "--in", text, "--out", text_tok, "--quiet")
    check(p.returncode == 0, f"tokenize: {p.stderr!r}")
    tout = os.path.join(tmp, "text_run")
    tr = result(run("train", "--config", "tiny", "--layers", "1", "--dim", "16", "--heads", "2",
                    "--ffn", "32", "--ctx", "16", "--batch", "2", "--train", text, "--valid", text,
                    "--steps", "3", "--quiet", "--out", tout), "train on text")
    check(tr.get("vocab") == 50304, f"text model's vocabulary {tr.get('vocab')}, expected 50304")
    e1 = result(run("eval", "--model", tout, "--text", text, "--quiet"), "eval --text text")
    e2 = result(run("eval", "--model", tout, "--text", text_tok, "--quiet"), "eval --text tokens")
    check(e1.get("loss") == tr.get("val_loss") == e2.get("loss"),
          f"loss of the text {e1.get('loss')}, of its tokens {e2.get('loss')}, "
          f"train's {tr.get('val_loss')}")
    gen = [run("generate", "--model", tout, "--prompt", "Some text", "--tokens", "5",
               "--temperature", "0") for _ in range(2)]
    check(gen[0].returncode == 0 and gen[0].stdout.startswith("Some text")
          and len(gen[0].stdout.rstrip("\n")) > len("Some text"),
          f"generate --prompt: {gen[0].stdout!r} {gen[0].stderr!r}")
    check(gen[0].stdout == gen[1].stdout, "greedy generate differs between two runs")

    # the bundled corpus: named by --help and read when --train is not given (a small --valid
    # keeps the final evaluation quick)
    h = run("train", "--help")
    check(h.returncode == 0 and "bundled" in h.stdout, f"train --help: {h.stdout!r}")
    p = run("train", "--config", "tiny", "--steps", "0", "--valid", text, "--eval-tokens", "1000")
    banner = re.search(r"\| (\d+) training, (\d+) validation tokens", p.stdout)
    check(p.returncode == 0 and banner and int(banner.group(1)) > 1000000,
          f"train on the bundled corpus: status {p.returncode} {p.stdout[:300]!r} {p.stderr!r}")

    # --threads 2 == 1 (SST: sampling, SVD), bitwise
    outs = []
    for t in ("1", "2"):
        d = os.path.join(tmp, "threads" + t)
        result(run(*base, "--steps", "12", "--method", "sst", "--rank", "4", "--threads", t,
                   "--out", d), "threads " + t)
        outs.append(read(os.path.join(d, "last.ckpt")))
    check(outs[0] == outs[1], "--threads 2 gives another last.ckpt than --threads 1")

    # resume == uninterrupted
    full, half = os.path.join(tmp, "full"), os.path.join(tmp, "half")
    common = [*base, "--method", "lora", "--rank", "4", "--save-every", "10"]
    a = result(run(*common, "--steps", "20", "--out", full), "uninterrupted")
    result(run(*common, "--steps", "10", "--out", half), "first half")
    b = result(run("train", "--resume", half, "--steps", "20", "--quiet"), "resumed")
    timing = ("train_seconds", "tokens_per_s", "total_seconds", "step_ms", "peak_rss_mib")
    ja, jb = (json.loads(read(os.path.join(d, "result.json"))) for d in (full, half))
    check(ja.keys() == jb.keys() and all(ja[k] == jb[k] for k in ja if k not in timing),
          f"the resumed run's result.json {jb} differs from the uninterrupted one's {ja}")
    check(a.get("val_loss") == b.get("val_loss"),
          f"resumed val_loss {b.get('val_loss')} != {a.get('val_loss')}")
    check(read(os.path.join(full, "last.ckpt")) == read(os.path.join(half, "last.ckpt")),
          "the resumed run's last.ckpt differs from the uninterrupted one's")

    # zero distortion: every method's initial model is the same function. LoRA and ReLoRA*
    # start from W = W0 + s B A with B = 0: the product is exactly 0 and W0 + 0 = W0, so their
    # loss has the full model's bits. SST's weight is rebuilt in float from the SVD of W0: each
    # entry is off by at most (k + 2) u relative (u = 2^-24; k = min(m, n) = 32 products summed,
    # plus the rounding of the stored factors), so the loss moves by at most (k + 2) u times its
    # relative sensitivity to the maps' weights, sum |W dL/dW| / L, which at the OPT
    # initialisation (weights N(0, 0.02^2), logits << 1) is below 1 (about 0.003 here). A real
    # distortion (a dropped spectral part, a wrong scale, B != 0) moves it by O(1e-3) or more.
    losses = {m: result(run(*base, "--steps", "0", "--method", m, "--rank", "4"), m)
              .get("val_loss") for m in ("full", "lora", "relora", "sst")}
    ref = losses["full"] or 1.0
    for m in ("lora", "relora"):
        check(losses[m] == ref, f"--steps 0 --method {m}: val_loss {losses[m]!r}, full's {ref!r}")
    tol = (32 + 2) * 2.0 ** -24 * abs(ref)
    check(losses["sst"] is not None and abs(losses["sst"] - ref) <= tol,
          f"--steps 0 --method sst: val_loss {losses['sst']!r}, full's {ref!r} (tolerance {tol:.3g})")

    # bad input: exit 2, one line naming the file or option
    def bad(name, data):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    body = struct.pack("<3H", 1, 2, 3)
    trunc = bad("trunc.tok", b"HGTOK1\0\0" + struct.pack("<IIQ", 1, 90, 10) + body)
    magic = bad("magic.tok", b"HGTOK9\0\0" + struct.pack("<IIQ", 1, 90, 3) + body)
    version = bad("version.tok", b"HGTOK1\0\0" + struct.pack("<IIQ", 2, 90, 3) + body)
    big = bad("big.tok", b"HGTOK1\0\0" + struct.pack("<IIQ", 1, 90, 3)
              + struct.pack("<3H", 1, 2, 95))
    binary = bad("binary.tok", b"NOTTOKEN" + struct.pack("<IIQ", 1, 90, 3) + body)
    empty = bad("empty.txt", b"")
    latin1 = bad("latin1.txt", "caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    missing = os.path.join(tmp, "missing.tok")
    cases = [
        (["--train", missing], missing + ": cannot open"),
        (["--train", trunc], trunc + ": truncated"),
        (["--train", magic], magic + ": not a token file (bad magic)"),
        (["--train", version], version + ": format version 2 is not supported"),
        (["--train", big], big + ": token 3 is 95, outside the vocabulary of 90"),
        (["--valid", big], big + ": token 3 is 95"),
        (["--train", binary], binary + ": not a token file (bad magic) nor UTF-8 text (line 1: "
         "NUL byte"),
        (["--train", empty], empty + ": empty text"),
        (["--train", latin1], latin1 + ": not a token file (bad magic) nor UTF-8 text (line 1: "
         "invalid UTF-8"),
        (["--rank", "33"], "option --rank 33: larger than --dim 32"),
        (["--ctx", "70", "--positions", "64"],
         "option --ctx 70: above the position table of 64 positions (--positions)"),
        (["--positions", "8"], "option --ctx 16: above the position table of 8 positions"),
        (["--bogus", "1"], "--bogus"),
        (["--config", "huge"], "--config"),
        (["--method", "svd"], "--method"),
        (["--sst-product", "sparse"], "option --sst-product: 'sparse' is not a product path"),
    ]
    for extra, needle in cases:
        p = run(*base, "--steps", "1", "--method", "sst", *extra)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and needle in lines[0]
              and lines[0].startswith("hgnn-lm: "),
              f"{extra}: status {p.returncode}, stderr {p.stderr!r} (expected '{needle}')")
    for args, needle in ((["eval", "--model", missing], "--model"),
                         (["generate", "--model", out, "--prompt", "Some text"],
                          "option --prompt: the model's vocabulary is 90, not GPT-2's 50257"),
                         (["eval", "--model", out, "--text", text], "larger than the model's"),
                         (["generate", "--model", out, "--prompt-ids", "1 999"], "--prompt-ids"),
                         (["generate", "--model", out, "--prompt-ids", "1", "--tokens", "99"],
                          "context")):
        p = run(*args)
        check(p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
              and needle in p.stderr, f"{args}: status {p.returncode}, stderr {p.stderr!r}")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok")
