#!/usr/bin/env python3
"""test_lm.py - hgnn-lm's train, eval and generate as a user runs them, on token files made here
(a repeated random pattern): a tiny model's validation loss falls; --threads 2 equals 1; a run
stopped and resumed ends with the bytes of an uninterrupted one; at step 0 every method (full,
LoRA, ReLoRA*, SST) gives the same validation loss; eval reproduces train's final loss; generate
is deterministic for a seed; bad input exits 2 with one line naming the file or option.

Usage: test_lm.py HGNN_LM_TRAIN"""

import json
import os
import random
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
    check(a.get("val_loss") == b.get("val_loss"),
          f"resumed val_loss {b.get('val_loss')} != {a.get('val_loss')}")
    check(read(os.path.join(full, "last.ckpt")) == read(os.path.join(half, "last.ckpt")),
          "the resumed run's last.ckpt differs from the uninterrupted one's")

    # zero distortion: every method's initial model is the same function
    losses = {m: result(run(*base, "--steps", "0", "--method", m, "--rank", "4"), m)
              .get("val_loss") for m in ("full", "lora", "relora", "sst")}
    for m, l in losses.items():
        check(l is not None and abs(l - losses["full"]) <= 1e-5 * abs(losses["full"]),
              f"--steps 0 --method {m}: val_loss {l}, full's {losses['full']}")

    # bad input: exit 2, one line naming the file or option
    trunc, magic, big = (os.path.join(tmp, n) for n in ("trunc.tok", "magic.tok", "big.tok"))
    write_tokens(trunc, [1, 2, 3], 90, count=10)
    write_tokens(magic, [1, 2, 3], 90, magic=b"NOTTOKEN")
    write_tokens(big, [1, 2, 95], 90)
    missing = os.path.join(tmp, "missing.tok")
    cases = [
        (["--train", missing], missing),
        (["--train", trunc], "truncated"),
        (["--train", magic], "bad magic"),
        (["--valid", big], "outside the vocabulary"),
        (["--bogus", "1"], "--bogus"),
        (["--config", "huge"], "--config"),
        (["--method", "svd"], "--method"),
    ]
    for extra, needle in cases:
        p = run(*base, "--steps", "1", *extra)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and needle in lines[0]
              and lines[0].startswith("hgnn-lm: "),
              f"{extra}: status {p.returncode}, stderr {p.stderr!r} (expected '{needle}')")
    for args, needle in ((["eval", "--model", missing], "--model"),
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
