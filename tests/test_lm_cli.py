#!/usr/bin/env python3
"""test_lm_cli.py - `hgnn-lm tokenize` / `detokenize` as a user runs them: both formats give back
the exact bytes (invalid UTF-8 and NUL included), the ids equal GPT-2's on the test vectors and,
when Python's `regex` module is there, equal a direct Python transcription of GPT-2's encoder
(the expression run by `regex`, as GPT-2's own code does) on random text from many Unicode
classes; bad input is one line "hgnn-lm: ..." naming the file, exit status 2.

Usage: test_lm_cli.py HGNN_LM SOURCE_ROOT"""

import json
import os
import random
import struct
import subprocess
import sys
import tempfile

EXE, ROOT = sys.argv[1], sys.argv[2]
VOCAB = os.path.join(ROOT, "datasets", "data", "gpt2")
VECTORS = os.path.join(ROOT, "tests", "data", "gpt2", "test_vectors.jsonl")
failures = []


def run(cmd, *args):
    return subprocess.run([EXE, cmd, *args], capture_output=True)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def tokenize_ids(tmp, data):
    """The ids hgnn-lm gives the bytes `data` (through --format ids)."""
    src, out = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.ids")
    with open(src, "wb") as f:
        f.write(data)
    p = run("tokenize", "--in", src, "--out", out, "--format", "ids", "--quiet")
    check(p.returncode == 0, f"tokenize --format ids: status {p.returncode} {p.stderr!r}")
    with open(out, "rb") as f:
        text = f.read()
    check(text.endswith(b"\n"), "ids file ends with a newline")
    return [int(x) for x in text.split()]


def reference_encoder():
    """GPT-2's encoder written out in Python (None without the `regex` module)."""
    try:
        import regex
    except ImportError:
        return None
    with open(os.path.join(VOCAB, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    with open(os.path.join(VOCAB, "vocab.bpe"), encoding="utf-8") as f:
        merges = f.read().split("\n")[1:-1]
    ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    keep = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    other = [b for b in range(256) if b not in keep]
    char = {b: chr(b) if b in keep else chr(256 + other.index(b)) for b in range(256)}
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def bpe(word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(ranks.get((parts[i], parts[i + 1]), -1), i) for i in range(len(parts) - 1)]
            ranked = [p for p in pairs if p[0] >= 0]
            if not ranked:
                break
            r, i = min(ranked)
            a, b = parts[i], parts[i + 1]
            merged, k = [], 0
            while k < len(parts):
                if k + 1 < len(parts) and parts[k] == a and parts[k + 1] == b:
                    merged.append(a + b)
                    k += 2
                else:
                    merged.append(parts[k])
                    k += 1
            parts = merged
        return [enc[p] for p in parts]

    def encode(text):
        ids = []
        for piece in pat.findall(text):
            ids += bpe("".join(char[b] for b in piece.encode("utf-8")))
        return ids

    return encode


def random_unicode(rng, n):
    """Text drawn from many classes: ASCII, Latin, Greek, Cyrillic, CJK, Arabic digits, emoji,
    white space of several kinds (NBSP, ideographic, line separators), marks and controls."""
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
             " ", "  ", "\n", "\t", "\r\n", ".,;:!?-()[]{}\"'/\\@#$%^&*_+=<>|~`",
             "'s't're've'm'll'd", "éàüößñçøåÆŒ", "αβγδΩ", "жзийДЖ", "日本語中文", "٠١٢٣",
             "Ⅳ½²", "😀👍🏽🇩🇪", "\u00a0\u2009\u3000\u2028\u0085", "\u200b\u200d\u0301",
             "\x00\x01\x1f\x7f"]
    out = []
    while len(out) < n:
        pool = rng.choice(pools)
        out.extend(rng.choice(pool) for _ in range(rng.randint(1, 6)))
    return "".join(out)


def main():
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        # round trips, both formats, of text, of arbitrary bytes and of nothing at all
        samples = [b"", b"Hello world\n", "naïve café — “q” 日本語\n\n".encode(),
                   bytes(rng.randrange(256) for _ in range(5000)),
                   b"\xff\xfe\x00abc \xc3\n\x80 ok"]
        for k, data in enumerate(samples):
            src = os.path.join(tmp, "s.txt")
            with open(src, "wb") as f:
                f.write(data)
            for fmt in ("bin", "ids"):
                tok, back = os.path.join(tmp, "s." + fmt), os.path.join(tmp, "back.txt")
                p = run("tokenize", "--in", src, "--out", tok, "--format", fmt)
                check(p.returncode == 0 and b"tokens" in p.stdout,
                      f"sample {k} tokenize {fmt}: {p.returncode} {p.stderr!r}")
                p = run("detokenize", "--in", tok, "--out", back)
                with open(back, "rb") as f:
                    check(p.returncode == 0 and f.read() == data,
                          f"sample {k} {fmt}: round trip differs ({p.stderr!r})")
        # the token file: header, then the ids as uint16
        with open(os.path.join(tmp, "hello.txt"), "wb") as f:
            f.write(b"Hello world")
        p = run("tokenize", "--in", os.path.join(tmp, "hello.txt"),
                "--out", os.path.join(tmp, "hello.bin"))
        with open(os.path.join(tmp, "hello.bin"), "rb") as f:
            raw = f.read()
        check(raw == b"HGTOK1\0\0" + struct.pack("<IIQHH", 1, 50257, 2, 15496, 995),
              f"token file bytes {raw!r}")

        # the ids of the test vectors
        with open(VECTORS, encoding="utf-8") as f:
            vectors = [json.loads(line) for line in f]
        for v in vectors:
            got = tokenize_ids(tmp, v["text"].encode("utf-8"))
            check(got == v["ids"], f"vector {v['text']!r}: {got} != {v['ids']}")

        # a direct transcription of GPT-2's encoder on random text
        encode = reference_encoder()
        if encode is None:
            print("SKIP: no Python regex module; reference comparison not run")
        else:
            for trial in range(40):
                text = random_unicode(rng, rng.randint(1, 3000))
                got = tokenize_ids(tmp, text.encode("utf-8"))
                want = encode(text)
                check(got == want, f"random text {trial} ({text[:40]!r}...): ids differ")

        # bad input: one line naming the file, exit status 2
        def bad(cmd, args, needle, write=None):
            if write is not None:
                with open(os.path.join(tmp, "bad"), "wb") as f:
                    f.write(write)
            p = run(cmd, *args)
            err = p.stderr.decode("utf-8", "replace")
            check(p.returncode == 2 and err.startswith("hgnn-lm: ") and err.count("\n") == 1
                  and needle in err, f"{cmd} {args}: status {p.returncode}, {err!r}")

        b = os.path.join(tmp, "bad")
        o = os.path.join(tmp, "o")
        bad("tokenize", ["--in", os.path.join(tmp, "missing.txt"), "--out", o], "missing.txt")
        bad("detokenize", ["--in", os.path.join(tmp, "missing.bin"), "--out", o], "missing.bin")
        bad("tokenize", ["--in", b, "--out", o, "--colour", "red"], "--colour", b"x")
        bad("tokenize", ["--in", b, "--out", o, "--format", "hex"], "--format")
        bad("tokenize", ["--in", b], "--out")
        bad("detokenize", ["--in", b, "--out", o], "truncated", raw[:-1])
        bad("detokenize", ["--in", b, "--out", o], "bad magic", b"HGTOKX\0\0" + raw[8:])
        bad("detokenize", ["--in", b, "--out", o], "outside the vocabulary",
            raw[:-2] + struct.pack("<H", 50257))
        bad("detokenize", ["--in", b, "--out", o], "vocabulary size 50000",
            raw[:12] + struct.pack("<I", 50000) + raw[16:])
        bad("detokenize", ["--in", b, "--out", o], "not a token id", b"15496 99x5\n")
        bad("detokenize", ["--in", b, "--out", o], "outside the vocabulary", b"1 50257\n")
        bad("detokenize", ["--in", b, "--out", o], "not a token id",
            bytes(rng.randrange(256) for _ in range(300)).replace(b"H", b"h"))
        p = subprocess.run([EXE, "frobnicate"], capture_output=True)
        check(p.returncode == 2 and b"unknown command" in p.stderr, "unknown command")
        p = run("tokenize", "--help")
        check(p.returncode == 0 and b"--format" in p.stdout, "tokenize --help")

    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("all hgnn-lm checks passed")


main()
