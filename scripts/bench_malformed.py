#!/usr/bin/env python3
"""bench_malformed.py - what hgnn-train spends on malformed dataset directories.

Generates a small valid dataset (12 nodes: labels.txt, graph.edges, features.mtx, split.txt),
then one directory per defect, each a copy with one file replaced: declared sizes the data does
not back (huge rows, columns or entries in features.mtx), huge node ids, NUL bytes and other
control characters, very long lines, binary junk, truncated files. Runs

    hgnn-train --data-dir DIR --quiet

on each under /usr/bin/time -v (address space limited to --limit-gib, wall time to --timeout,
so that a regression cannot take the machine down) and prints a table: case, input bytes (the
directory), exit code, first stderr line (escaped, truncated), wall time, peak RSS, and pass or
fail against the target: exit code 2, exactly one stderr line of printable ASCII that names the
broken file and a line number, peak RSS at most twice the input plus 64 MiB. Writes the table to
scripts/results/bench_malformed.md.

Usage: scripts/bench_malformed.py [--bin build/hgnn-train] [--timeout 60] [--limit-gib 8]
                                  [--only TEXT] [--out scripts/results/bench_malformed.md]
"""
import argparse
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
N = 12
MTX_HEAD = b"%%MatrixMarket matrix coordinate real general\n"


def valid_files():
    labels = b"".join(b"%d\n" % (i % 3) for i in range(N))
    edges = b"".join(b"%d %d\n" % (i, (i + 1) % N) for i in range(N))
    feats = MTX_HEAD + b"%d 5 %d\n" % (N, N) + b"".join(
        b"%d %d %.2f\n" % (i + 1, i % 5 + 1, 0.5 + i) for i in range(N))
    split = b"".join([b"train\n"] * 6 + [b"val\n"] * 3 + [b"test\n"] * 3)
    return {"labels.txt": labels, "graph.edges": edges, "features.mtx": feats,
            "split.txt": split}


def junk(nbytes, seed):
    return random.Random(seed).randbytes(nbytes)


def nul_hidden_edges():
    """An edge line whose NUL byte hides a huge node id from a parser that stops at the NUL,
    padded to the 113 bytes of the reported case."""
    body = b"".join(b"%d %d\n" % (i, i + 1) for i in range(10))
    bad = b"3 4\x00 2000000000 5\n"
    return (body + bad).ljust(113, b"\n")


# name -> (file replaced, its content, extra options)
def cases():
    return [
        ("valid (reference)", None, None, ["--epochs", "1"]),
        ("mtx declares 12 x 2e9, one entry", "features.mtx",
         MTX_HEAD + b"12 2000000000 1\n1 1 1.0\n", []),
        ("edges: NUL hides id 2e9 (113 B)", "graph.edges", nul_hidden_edges(), []),
        ("mtx declares 1e12 entries", "features.mtx", MTX_HEAD + b"12 5 1000000000000\n1 1 1\n",
         []),
        ("mtx declares 2e9 rows", "features.mtx", MTX_HEAD + b"2000000000 5 1\n1 1 1\n", []),
        ("mtx declares 2^31 - 1 columns", "features.mtx",
         MTX_HEAD + b"12 2147483647 1\n1 2147483647 1\n", []),
        ("edges: node id 4e9", "graph.edges", b"0 1\n1 4000000000\n", []),
        ("edges: node id 2^63", "graph.edges", b"0 1\n1 9223372036854775808\n", []),
        ("labels: NUL byte", "labels.txt", b"0\n1\x00 5\n" + b"0\n" * (N - 2), []),
        ("labels: terminal escape", "labels.txt",
         b"0\n\x1b]0;pwned\x07\x1b[2J\n" + b"0\n" * (N - 2), []),
        ("labels: 64 KiB token", "labels.txt", b"0\n" + b"9" * 65000 + b"\n", []),
        ("edges: 32 MiB line", "graph.edges", b"1" * (32 * MIB), []),
        ("mtx: 32 MiB comment line", "features.mtx", MTX_HEAD + b"%" + b"x" * (32 * MIB), []),
        ("edges: 1 MiB binary junk", "graph.edges", junk(MIB, 1), []),
        ("mtx: 1 MiB binary junk", "features.mtx", junk(MIB, 2), []),
        ("labels: 1 MiB binary junk", "labels.txt", junk(MIB, 3), []),
        ("mtx truncated (1000 declared, 3 given)", "features.mtx",
         MTX_HEAD + b"12 5 1000\n1 1 1\n2 2 1\n3 3 1\n", []),
        ("edges truncated mid-line", "graph.edges", b"0 1\n1 2\n2 ", []),
        ("split: NUL byte", "split.txt", b"train\nval\x00\n" + b"test\n" * (N - 2), []),
        ("self_loops: id 2^40", "self_loops.txt", b"1\n1099511627776\n", []),
    ]


def build(root, name, content):
    d = tempfile.mkdtemp(dir=root)
    for fname, data in valid_files().items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)
    if name:
        with open(os.path.join(d, name), "wb") as f:
            f.write(content)
    return d


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def escape(text, limit=90):
    out = "".join(c if " " <= c < "\x7f" else "\\x%02x" % ord(c) for c in text)
    out = out.replace("|", "\\|").replace("`", "\\x60")
    return out if len(out) <= limit else out[:limit] + "..."


def limit_as(gib):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (gib << 30, gib << 30))
    return apply


def run_case(exe, d, extra, timeout, gib, tmp):
    tfile = os.path.join(tmp, "time.txt")
    cmd = ["/usr/bin/time", "-v", "-o", tfile, exe, "--data-dir", d, "--split-file", "split.txt",
           "--quiet"] + extra
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, preexec_fn=limit_as(gib))
        code, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        code, err = "timeout", e.stderr or b""
    wall = time.monotonic() - t0
    rss_kib = 0
    if os.path.exists(tfile):
        for line in open(tfile):
            if "Maximum resident set size" in line:
                rss_kib = int(line.split(":")[1])
        os.remove(tfile)
    return code, err, wall, rss_kib * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/hgnn-train")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--limit-gib", type=int, default=8, help="address-space limit per run")
    ap.add_argument("--only", default="", help="run the cases whose name contains TEXT")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "bench_malformed.md"))
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"bench_malformed.py: {a.bin} not found: build first (scripts/setup.sh)")
    if not os.access("/usr/bin/time", os.X_OK):
        sys.exit("bench_malformed.py: /usr/bin/time not found (apt-get install time)")
    tmp = tempfile.mkdtemp(prefix="hgnn-malformed-")
    rows = []
    failed = 0
    try:
        for name, fname, content, extra in cases():
            if a.only not in name:
                continue
            d = build(tmp, fname, content)
            nbytes = dir_bytes(d)
            code, err, wall, rss = run_case(a.bin, d, extra, a.timeout, a.limit_gib, tmp)
            shutil.rmtree(d)
            lines = err.decode("latin-1").replace(d + "/", "DIR/").splitlines()
            first = lines[0] if lines else ""
            target = 2 * nbytes + 64 * MIB
            if fname is None:
                ok = code == 0 and rss <= target
            else:
                printable = all(0x20 <= b < 0x7f for b in err.rstrip(b"\n"))
                named = re.search(r"DIR/%s:[0-9]+\b" % re.escape(fname), first) is not None
                ok = code == 2 and len(lines) == 1 and printable and named and rss <= target
            failed += not ok
            rows.append((name, nbytes, code, escape(first), wall, rss / MIB, target / MIB,
                         "pass" if ok else "FAIL"))
            print(f"{name:40s} {nbytes:>10d} B  exit {code!s:>7s}  {wall:7.3f} s  "
                  f"{rss / MIB:8.1f} MiB  {'pass' if ok else 'FAIL'}  {escape(first, 70)}",
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    md = ["# bench_malformed: hgnn-train on malformed dataset directories", "",
          f"`scripts/bench_malformed.py --bin {a.bin}`: one defect per directory (a copy of a "
          "12-node dataset with one file replaced), run under /usr/bin/time -v with the address "
          f"space limited to {a.limit_gib} GiB and {a.timeout:g} s of wall time. Target: exit 2, "
          "one stderr line of printable ASCII naming the broken file and line, peak RSS <= 2 x input + 64 MiB (the valid "
          "reference row: exit 0 and the same memory bound). Timings on a shared machine.", "",
          "| case | input bytes | exit | first stderr line | wall s | peak RSS MiB | "
          "target MiB | result |",
          "|---|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r[0]} | {r[1]} | {r[2]} | `{r[3]}` | {r[4]:.3f} | {r[5]:.1f} | "
                  f"{r[6]:.0f} | {r[7]} |")
    md.append("")
    md.append(f"{len(rows) - failed} of {len(rows)} cases meet the target.")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"wrote {a.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
