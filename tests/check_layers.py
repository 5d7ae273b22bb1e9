#!/usr/bin/env python3
"""check_layers.py - the layers of hgnn hold (ARCHITECTURE.md, "Layers").

    base <- kernels <- core <- sst <- models <- programs
                       core <- datasets <- programs

A layer may use itself and the layers below it, never one above it nor a sibling: sst and
datasets do not use each other, and a model does not read datasets (the programs tie them).
Two checks:

  includes: every #include "..." in base, kernels, core, sst, datasets, models and programs
            must resolve to a file of the repository (or to the generated hg_config.h) whose
            layer the including file may use;
  symbols:  with --lib LAYER=ARCHIVE (one per layer library, as the build passes them), every
            symbol an object of a layer leaves undefined and another layer library defines must
            come from a layer it may use (catches a call declared by hand, without the header).

Usage: check_layers.py SOURCE_ROOT [--lib LAYER=ARCHIVE ...]
       check_layers.py SOURCE_ROOT --self-test   (the include check fails on planted violations)
Prints one line per violation (file:line: ...) and exits 1 when there is any, 0 otherwise.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

# Each layer and the layers it may use (itself included).
ALLOWED = {
    "base": {"base"},
    "kernels": {"base", "kernels"},
    "core": {"base", "kernels", "core"},
    "sst": {"base", "kernels", "core", "sst"},
    "datasets": {"base", "kernels", "core", "datasets"},
    "models": {"base", "kernels", "core", "sst", "models"},
    "programs": {"base", "kernels", "core", "sst", "datasets", "models", "programs"},
}

# Headers the build provides rather than a folder of the repository.
GENERATED = {"hg_config.h"}

# Files outside the layer folders that belong to a layer: the CPU emulation of the CUDA runtime
# stands in for <cuda_runtime.h> in the kernels' emulated twin.
EXTRA_FILES = {"tests/cuda_emu.h": "kernels"}

SOURCE_EXT = (".c", ".h", ".cu", ".cuh", ".cpp", ".cc", ".def")
SCANNED_DIRS = ("src", "kernels", "sst", "datasets", "hyperbolic", "scripts")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(rel):
    """The layer of a repository-relative path, or None when it is in no layer (tests, data)."""
    rel = rel.replace(os.sep, "/")
    if rel in EXTRA_FILES:
        return EXTRA_FILES[rel]
    if rel in ("src/hg.h", "src/error.c"):
        return "base"
    if not rel.endswith(SOURCE_EXT):
        return None
    parts = rel.split("/")
    top = parts[0]
    if top == "kernels":
        return "kernels"
    if top == "sst":
        return "sst"
    if top == "datasets":
        return "datasets"
    if top == "hyperbolic":
        return "models"
    if top == "scripts" and len(parts) == 2:
        return "programs"
    if top == "src":
        if len(parts) == 2:
            return "core"
        if parts[1] == "cli":
            return "programs"
        if parts[1] == "models":
            return "models"
    return None


def layered_files(root):
    for top in SCANNED_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "data")
            for name in sorted(filenames):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                layer = layer_of(rel)
                if layer is not None:
                    yield rel, layer


def check_includes(root):
    problems = []
    for rel, layer in layered_files(root):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                name = m.group(1)
                if name in GENERATED:
                    continue
                target = os.path.normpath(os.path.join(os.path.dirname(rel), name))
                if not os.path.isfile(os.path.join(root, target)):
                    extra = [p for p in EXTRA_FILES if os.path.basename(p) == name]
                    if not extra:
                        problems.append(f'{rel}:{lineno}: #include "{name}" is no file of the '
                                        f"repository (includes are relative to the including file)")
                        continue
                    target = extra[0]
                target_layer = layer_of(target)
                if target_layer is None:
                    problems.append(f'{rel}:{lineno}: #include "{name}": {target} is in no layer')
                elif target_layer not in ALLOWED[layer]:
                    problems.append(f'{rel}:{lineno}: #include "{name}": layer {layer} may not '
                                    f"use layer {target_layer} ({target})")
    return problems


def nm_symbols(archive):
    """{object: (defined set, undefined set)} of the global symbols of a static library."""
    out = subprocess.run(["nm", "-P", "-A", "-g", archive], check=True, capture_output=True,
                         text=True).stdout
    objects = {}
    for line in out.splitlines():
        head, _, rest = line.partition(": ")
        fields = rest.split()
        if len(fields) < 2:
            continue
        m = re.match(r".*\[(.*)\]$", head)
        obj = m.group(1) if m else head
        defined, undefined = objects.setdefault(obj, (set(), set()))
        (undefined if fields[1] == "U" else defined).add(fields[0])
    return objects


def check_symbols(libs):
    problems = []
    owner = {}  # symbol -> layer whose library defines it
    tables = {}
    for layer, archive in libs.items():
        tables[layer] = nm_symbols(archive)
        for defined, _ in tables[layer].values():
            for sym in defined:
                owner.setdefault(sym, layer)
    for layer, objects in tables.items():
        for obj, (_, undefined) in sorted(objects.items()):
            for sym in sorted(undefined):
                home = owner.get(sym)
                if home is not None and home not in ALLOWED[layer]:
                    where = f"{os.path.basename(libs[layer])}({os.path.basename(obj)})"
                    problems.append(f"{where}: calls {sym} of layer {home}; layer {layer} may "
                                    f"not use it")
    return problems


def self_test(root):
    """Copy the layered sources, plant violations one at a time, and require each to be named."""
    plants = [
        ("kernels/core.c", "../sst/linear.h", "layer kernels may not use layer sst"),
        ("sst/linear.c", "../datasets/dataset.h", "layer sst may not use layer datasets"),
        ("kernels/lorentz_layer.c", "../src/rng.h", "layer kernels may not use layer core"),
        ("src/csr.c", "../hyperbolic/hybonet.h", "layer core may not use layer models"),
        ("hyperbolic/hybonet.c", "../src/cli/options.h", "layer models may not use layer programs"),
        ("hyperbolic/hybonet.h", "../datasets/dataset.h",
         "layer models may not use layer datasets"),
        ("datasets/dataset.c", "no_such_header.h", "is no file of the repository"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for rel, _ in list(layered_files(root)) + [(p, None) for p in EXTRA_FILES]:
            os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
            shutil.copyfile(os.path.join(root, rel), os.path.join(tmp, rel))
        clean = check_includes(tmp)
        if clean:
            print("self-test: the unmodified copy already fails:\n" + "\n".join(clean))
            return 1
        for rel, header, expect in plants:
            line = f'#include "{header}"\n'
            path = os.path.join(tmp, rel)
            with open(path, encoding="utf-8") as f:
                original = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(line + original)
            found = check_includes(tmp)
            with open(path, "w", encoding="utf-8") as f:
                f.write(original)
            if not any(p.startswith(rel + ":1:") and expect in p for p in found):
                print(f"self-test: planting {line.strip()} in {rel} was not reported "
                      f"(got: {found})")
                return 1
            print(f"self-test: planted {line.strip()} in {rel}: reported")
    return 0


def main(argv):
    if len(argv) < 2:
        print("usage: check_layers.py SOURCE_ROOT [--lib LAYER=ARCHIVE ...] | --self-test",
              file=sys.stderr)
        return 2
    root = argv[1]
    if argv[2:] == ["--self-test"]:
        return self_test(root)
    libs = {}
    args = argv[2:]
    while args:
        if args[0] != "--lib" or len(args) < 2 or "=" not in args[1]:
            print(f"check_layers.py: unexpected argument {args[0]!r}", file=sys.stderr)
            return 2
        layer, archive = args[1].split("=", 1)
        if layer not in ALLOWED:
            print(f"check_layers.py: unknown layer {layer!r} in --lib", file=sys.stderr)
            return 2
        libs[layer] = archive
        args = args[2:]
    problems = check_includes(root) + check_symbols(libs)
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers.py: {len(problems)} layer violation(s)")
        return 1
    print(f"check_layers.py: includes of {sum(1 for _ in layered_files(root))} files"
          + (f" and symbols of {len(libs)} libraries" if libs else "") + ": layers hold")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
