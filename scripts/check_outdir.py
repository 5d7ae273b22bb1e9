#!/usr/bin/env python3
"""check_outdir.py - check that an hgnn-train --out directory holds one consistent set of files.

Usage: check_outdir.py DIR

DIR/manifest.json (written last at every save, see src/outdir.h) names the run, the step and,
for each file of the set, its size and FNV-1a 64 checksum (log.csv: of its first `size` bytes,
which must end a line). A file matches when it, or its staged copy NAME.new whose rename a kill
interrupted, has that size and checksum. Files of the set that the manifest does not list must
not exist. Without a manifest, nothing was saved yet: none of the saved files may exist.
Exit 0 when consistent (one line saying what was found), 1 with a message naming the file."""
import json
import os
import sys

SAVED = ["checkpoint.bin", "embeddings.npy", "last.ckpt", "result.json"]
OFFSET, PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv1a64(data):
    h = OFFSET
    for b in data:
        h = ((h ^ b) * PRIME) & MASK
    return h


def matches(path, size, want, prefix):
    try:
        with open(path, "rb") as f:
            data = f.read(size + (0 if prefix else 1))
    except FileNotFoundError:
        return "missing"
    if len(data) < size or (not prefix and len(data) != size):
        return "size differs"
    data = data[:size]
    if prefix and size > 0 and data[-1:] != b"\n":
        return "does not end with a whole line"
    if fnv1a64(data) != want:
        return "checksum differs"
    return None


def check(d):
    man = os.path.join(d, "manifest.json")
    if not os.path.exists(man):
        stale = [n for n in SAVED if os.path.exists(os.path.join(d, n))]
        if stale:
            return "%s: no manifest.json, but %s exist(s)" % (d, ", ".join(stale))
        return None, "%s: nothing saved yet" % d
    try:
        with open(man, encoding="utf-8") as f:
            m = json.load(f)
        files = {e["name"]: e for e in m["files"]}
        run, step = m["run"], m["step"]
    except (ValueError, KeyError, TypeError) as e:
        return "%s: malformed manifest (%s)" % (man, e)
    for name, e in files.items():
        path = os.path.join(d, name)
        want = int(e["fnv1a64"], 16)
        prefix = bool(e.get("prefix"))
        why = matches(path, e["size"], want, prefix)
        if why and not prefix and matches(path + ".new", e["size"], want, False) is None:
            why = None  # committed, its rename interrupted
        if why:
            return "%s: %s (manifest of run %s, step %s)" % (path, why, run, step)
    for name in SAVED:
        if name not in files and os.path.exists(os.path.join(d, name)):
            return "%s: not in the manifest of run %s, step %s" % (os.path.join(d, name), run,
                                                                   step)
    log = os.path.join(d, "log.csv")
    if os.path.exists(log) and os.path.getsize(log) > 0:
        with open(log, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                return "%s: does not end with a whole line" % log
    return None, "%s: consistent: run %s, step %s, %d files" % (d, run, step, len(files))


def main():
    if len(sys.argv) != 2:
        print("usage: check_outdir.py DIR", file=sys.stderr)
        return 2
    r = check(sys.argv[1])
    if isinstance(r, str):
        print("check_outdir: " + r, file=sys.stderr)
        return 1
    print(r[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
