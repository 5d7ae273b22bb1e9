#!/usr/bin/env python3
"""test_dist.py - data-parallel training under mpirun (src/dist.h), as a user runs it.

  * hgnn-lm train and hgnn-mt train, every method (full, LoRA, ReLoRA* with merges, SST across
    iteration and round ends): 2 ranks with --grad-accum 1 against 1 rank with --grad-accum 2,
    which draw the same windows / batches and dropout masks. The replicas are compared at every
    step (--check-every 1: SST's sampled indices, ReLoRA*'s merges and SST's round-end SVDs
    being the same on both ranks is what keeps their parameters identical), and the losses of
    log.csv and the final parameters must match the 1-rank run's up to the order of the
    floating-point sums (see TOL below);
  * a checkpoint of the 2-rank run resumes with 1 rank (and --grad-accum 2) to the same end;
  * one rank killed with SIGKILL mid-run: the job ends with a non-zero status within 60 s, and
    the last checkpoint still loads (hgnn-lm eval --model DIR, and a resume to the end);
  * a non-finite loss (a NaN written into a checkpoint, resumed): every rank stops at the same
    step, one message naming the rank, exit status 3, last.ckpt untouched (the rank-specific
    case, one rank's NaN named by every rank, is test_dist.c's);
  * bad options under mpirun: one message (not one per rank), exit status 2.

Usage: test_dist.py MPIRUN HGNN_LM HGNN_MT SOURCE_ROOT"""

import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time

MPIRUN, LM, MT, ROOT = sys.argv[1:5]
# Tolerance. Both runs compute the gradients of the same micro-batches with the same dropout
# masks; only the order of the float32 sums differs (1 rank accumulates the second micro-batch into
# the first's gradient inside the backward products, 2 ranks add two finished gradients in the
# all-reduce): a difference in the last bits of a step's gradient. How far such a difference
# carries depends on the run: Adam takes full-size steps of random sign on coordinates whose
# gradient is rounding noise (attention keys' biases, SST's freshly restarted vectors), and
# SST's round-end SVDs turn the vectors of nearly equal singular values freely. So each
# comparison is calibrated on the run itself: the 1-rank run is repeated with its learning rate
# moved by one float32 ulp (a perturbation of the same size), and the 2-rank run must lie within
# SPREAD x that spread (with floors FLOOR_LOSS, relative, and FLOOR_PARAM, absolute). A run on
# other windows (1 rank, --grad-accum 1: half the data) must fall outside it: the comparison can
# fail.
SPREAD = 10.0
FLOOR_LOSS = 1e-6
FLOOR_PARAM = 1e-5
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    else:
        print("ok  ", what)


def mpirun(np_, *args):
    cmd = [MPIRUN, "--oversubscribe", "-np", str(np_)]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return cmd + list(args)


def run(cmd, what):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"{what}: status {p.returncode}: {p.stderr.strip()[-500:]}")
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        check(False, f"{what}: no JSON last line in {p.stdout[-300:]!r}")
        return {}


def read_ckpt(path):
    """Tensors of a checkpoint (io.h's format, version 2): name -> list of values."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"HGCKPT1\0", path
    (meta_len,) = struct.unpack_from("<Q", b, 16)
    at = 24 + meta_len
    (n,) = struct.unpack_from("<Q", b, at)
    at += 8
    out = {}
    for _ in range(n):
        (ln,) = struct.unpack_from("<I", b, at)
        name = b[at + 4:at + 4 + ln].decode()
        at += 4 + ln
        dtype, count = struct.unpack_from("<IQ", b, at)
        at += 12
        fmt = "<%d%s" % (count, "f" if dtype == 0 else "Q")
        out[name] = struct.unpack_from(fmt, b, at)
        at += count * (4 if dtype == 0 else 8)
    return out


def poison(path, name):
    """Write NaN into the first float of tensor `name` of a checkpoint, and its checksum anew
    (FNV-1a 64 of every byte before it)."""
    with open(path, "rb") as f:
        b = bytearray(f.read())
    (meta_len,) = struct.unpack_from("<Q", b, 16)
    at = 24 + meta_len + 8
    while True:
        (ln,) = struct.unpack_from("<I", b, at)
        found = b[at + 4:at + 4 + ln].decode() == name
        at += 4 + ln
        dtype, count = struct.unpack_from("<IQ", b, at)
        at += 12
        if found:
            struct.pack_into("<f", b, at, float("nan"))
            break
        at += count * (4 if dtype == 0 else 8)
    h = 0xcbf29ce484222325
    for byte in b[:-8]:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    struct.pack_into("<Q", b, len(b) - 8, h)
    with open(path, "wb") as f:
        f.write(b)


def log_losses(path):
    with open(path) as f:
        rows = [line.strip().split(",") for line in f][1:]
    return [(int(r[0]), float(r[1]), float(r[3])) for r in rows]  # step, loss, val_loss


def differences(a_dir, b_dir, what):
    """Largest relative difference of log.csv's losses (training and validation) and largest
    absolute difference of the final parameters (and where) between two runs' directories."""
    la, lb = log_losses(os.path.join(a_dir, "log.csv")), log_losses(os.path.join(b_dir, "log.csv"))
    check(len(la) == len(lb) and len(la) > 3 and [x[0] for x in la] == [x[0] for x in lb],
          f"{what}: log.csv steps {[x[0] for x in la]} vs {[x[0] for x in lb]}")
    loss = 0.0
    for (_, xa, va), (_, xb, vb) in zip(la, lb):
        for x, y in ((xa, xb), (va, vb)):
            loss = max(loss, abs(x - y) / max(abs(y), 1e-12))
    ca, cb = read_ckpt(os.path.join(a_dir, "last.ckpt")), read_ckpt(os.path.join(b_dir, "last.ckpt"))
    check(sorted(ca) == sorted(cb), f"{what}: the same tensors in last.ckpt")
    wa, wb = parameters(ca), parameters(cb)
    param, where = 0.0, ""
    for name, va in wa.items():
        d = max(abs(x - y) for x, y in zip(va, wb[name])) if va else 0.0
        if d > param:
            param, where = d, name
    return loss, param, where


def compare(exe, args, lr, extra, tag, mpi_extra=()):
    """1 rank with --grad-accum 2 (twice: the learning rate as given and one ulp above), 2 ranks
    with --grad-accum 1: the 2-rank run within the calibrated tolerance. Returns the directories
    and the tolerances."""
    nudged = repr(struct.unpack("<f", struct.pack("<I", struct.unpack("<I", struct.pack(
        "<f", float(lr)))[0] + 1))[0])
    one, ref, two = (os.path.join(tmp, f"{tag}_{x}") for x in ("one", "ref", "two"))
    r1 = run([exe, *args, "--lr", lr, *extra, "--grad-accum", "2", "--out", one], f"{tag} 1 rank")
    run([exe, *args, "--lr", nudged, *extra, "--grad-accum", "2", "--out", ref],
        f"{tag} 1 rank, lr {nudged}")
    r2 = run(mpirun(2, exe, *args, "--lr", lr, *extra, *mpi_extra, "--out", two), f"{tag} 2 ranks")
    check(r1.get("world_size") == 1 and r2.get("world_size") == 2,
          f"{tag}: world_size {r1.get('world_size')}, {r2.get('world_size')}")
    check(0.0 <= r2.get("comm_share", -1) < 1.0, f"{tag}: comm_share {r2.get('comm_share')}")
    sl, sp, _ = differences(ref, one, tag)
    tol_loss, tol_param = max(SPREAD * sl, FLOOR_LOSS), max(SPREAD * sp, FLOOR_PARAM)
    dl, dp, where = differences(two, one, tag)
    check(dl <= tol_loss, f"{tag}: 2 ranks' losses agree with 1 rank's: {dl:.2e} "
          f"(tolerance {tol_loss:.2e})")
    check(dp <= tol_param, f"{tag}: 2 ranks' final parameters agree with 1 rank's: {dp:.2e} at "
          f"{where} (tolerance {tol_param:.2e})")
    return one, two, tol_loss, tol_param


def control(exe, args, lr, one, tol_loss, tol_param, tag):
    """A run on other data (1 rank, --grad-accum 1) must fail the comparison."""
    half = os.path.join(tmp, f"{tag}_half")
    run([exe, *args, "--lr", lr, "--out", half], f"{tag} 1 rank, half the data")
    dl, dp, _ = differences(half, one, tag)
    check(dl > tol_loss and dp > tol_param, f"{tag}: a run on half the data differs: losses "
          f"{dl:.2e}, parameters {dp:.2e}")


def parameters(ck):
    """The model's parameters in a form both runs must agree on: SST's maps as their weight
    W = sum_p sigma[p] U[p]^T V[p] (which triplet sits at which storage position follows the
    sampled indices, and a singular vector's sign is the SVD's choice: neither changes W), every
    other parameter as stored. Left out: optimiser moments and the maps' schedules (state, not
    parameters), the best model's copy, and the attention keys' biases: softmax is unchanged by
    a shift of all of a query's scores, so their true gradient is zero and Adam turns the
    rounding noise of either run into full-size steps of random sign, with no effect on any
    output."""
    out = {}
    for name, v in ck.items():
        base = name.rsplit(".", 1)[0]
        if (name.startswith(("best/", "driver/")) or name.endswith((".sched", ".adam_m",
                                                                       ".adam_v", ".k.b"))
                or not isinstance(v[0], float)):
            continue
        if base + ".U_S" not in ck:
            out[name] = v
        elif name.endswith(".sigma"):
            sig = v
            us, vs, ur, vr = (ck[base + t] for t in (".U_S", ".V_S", ".U_R", ".V_R"))
            kk = len(sig)
            m, n = (len(us) + len(ur)) // kk, (len(vs) + len(vr)) // kk
            rows_u, rows_v = list(us) + list(ur), list(vs) + list(vr)
            w = [0.0] * (m * n)
            for p in range(kk):
                u, vv = rows_u[p * m:(p + 1) * m], rows_v[p * n:(p + 1) * n]
                for i in range(m):
                    c = sig[p] * u[i]
                    for j in range(n):
                        w[i * n + j] += c * vv[j]
            out[base + ".W"] = w
    return out


def read_json(d):
    with open(os.path.join(d, "result.json")) as f:
        return json.load(f)


def write_tokens(path, ids, vocab):
    with open(path, "wb") as f:
        f.write(b"HGTOK1\0\0" + struct.pack("<IIQ", 1, vocab, len(ids)))
        f.write(struct.pack("<%dH" % len(ids), *ids))


METHODS = {
    "full": [],
    "lora": ["--method", "lora", "--rank", "4"],
    "relora": ["--method", "relora", "--rank", "4", "--sst-steps", "10", "--sst-warmup", "2"],
    # uniform sampling: a draw proportional to sigma is a discrete choice that a rounding-level
    # difference of sigma can flip (then the runs train other vectors and part for good); the
    # uniform draw depends on the generator alone, so the runs stay within rounding of each other
    "sst": ["--method", "sst", "--rank", "4", "--sst-steps", "5", "--sst-rounds-iters", "2",
            "--sst-warmup", "2", "--sst-sampling", "uniform"],
}

with tempfile.TemporaryDirectory() as tmp:
    # ---- hgnn-lm: token files of a noisy repeated pattern
    rnd = random.Random(5)
    pattern = [rnd.randrange(90) for _ in range(23)]
    train, valid = os.path.join(tmp, "train.tok"), os.path.join(tmp, "valid.tok")
    write_tokens(train, [pattern[i % 23] if rnd.random() < 0.9 else rnd.randrange(90)
                         for i in range(4000)], 90)
    write_tokens(valid, [pattern[(i + 5) % 23] for i in range(300)], 90)
    lm = ["train", "--config", "tiny", "--layers", "1", "--dim", "16", "--heads", "2", "--ffn",
          "32", "--ctx", "16", "--batch", "2", "--train", train, "--valid", valid, "--warmup",
          "5", "--eval-every", "10", "--steps", "60", "--check-every", "1", "--quiet"]
    for method, extra in METHODS.items():
        one, two, tl, tp = compare(LM, lm, "3e-3", extra, f"lm_{method}")
        if method == "full":
            control(LM, lm, "3e-3", one, tl, tp, "lm_full")
        if method == "sst":
            sst_one, sst_tol = one, (tl, tp)

    # resume: 2 ranks for 30 steps, then 1 rank (grad-accum 2) to 60; against the 60-step run
    part = os.path.join(tmp, "lm_part")
    run(mpirun(2, LM, *lm, "--lr", "3e-3", *METHODS["sst"], "--out", part, "--steps", "30"),
        "lm sst 2 ranks, 30 steps")
    run([LM, "train", "--resume", part, "--steps", "60", "--grad-accum", "2", "--quiet"],
        "lm sst resumed with 1 rank")
    dl, dp, where = differences(part, sst_one, "lm sst resumed")
    check(dl <= sst_tol[0] and dp <= sst_tol[1], f"lm sst: 2 ranks resumed with 1 agree with 1 "
          f"rank: losses {dl:.2e}, parameters {dp:.2e} at {where}")

    # bad options: one line from the whole job, status 2
    p = subprocess.run(mpirun(2, LM, *lm, "--dim", "x"), capture_output=True, text=True,
                       timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("hgnn-lm:")]
    check(p.returncode == 2 and len(lines) == 1 and "--dim" in lines[0],
          f"bad option under mpirun: status {p.returncode}, messages {lines}")

    # ---- a rank killed mid-run: the job ends, the last checkpoint loads
    kill_dir = os.path.join(tmp, "lm_kill")
    slow = [a if a != "60" else "100000" for a in lm]
    job = subprocess.Popen(mpirun(2, LM, *slow, "--out", kill_dir, "--save-every", "20",
                                  "--eval-every", "20"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    manifest = os.path.join(kill_dir, "manifest.json")
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(manifest):
        time.sleep(0.1)
    time.sleep(0.5)  # a few more saves
    ranks = []
    for pid in os.listdir("/proc"):  # the ranks: hgnn-lm processes whose parent is our mpirun
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            if int(fields[1]) == job.pid and cmd[0].endswith(b"hgnn-lm"):
                ranks.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    check(len(ranks) == 2 and os.path.exists(manifest), f"found the 2 ranks {ranks} and a save")
    t0 = time.time()
    if ranks:
        os.kill(max(ranks), signal.SIGKILL)
    try:
        _, err = job.communicate(timeout=60)
        check(job.returncode != 0, f"killed rank: job status {job.returncode} "
              f"after {time.time() - t0:.1f} s")
    except subprocess.TimeoutExpired:
        job.kill()
        job.communicate()
        check(False, "killed rank: the job still runs 60 s later")
    e = subprocess.run([LM, "eval", "--model", kill_dir, "--quiet"], capture_output=True,
                       text=True, timeout=120)
    check(e.returncode == 0, f"eval of the killed run's checkpoint: {e.stderr.strip()}")
    with open(manifest) as f:
        saved = json.load(f)["step"]
    run(mpirun(2, LM, "train", "--resume", kill_dir, "--steps", str(saved + 20), "--quiet"),
        f"the killed run resumed with 2 ranks from step {saved}")

    # ---- a non-finite loss: every rank stops at the same step, one message, the checkpoint kept
    poison(os.path.join(part, "last.ckpt"), "pos")
    with open(os.path.join(part, "last.ckpt"), "rb") as f:
        before = f.read()
    t0 = time.time()
    p = subprocess.run(mpirun(2, LM, "train", "--resume", part, "--steps", "70", "--quiet"),
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("hgnn-lm:")]
    check(p.returncode == 3 and len(lines) == 1 and "step 61: rank 0 of 2 saw a non-finite" in
          lines[0], f"NaN on both ranks: status {p.returncode} after {time.time() - t0:.1f} s, "
          f"messages {lines}")
    with open(os.path.join(part, "last.ckpt"), "rb") as f:
        check(f.read() == before, "NaN: last.ckpt kept as it was")

    # ---- hgnn-mt: the first 300 pairs of the bundled Multi30K
    data = os.path.join(ROOT, "datasets", "data", "multi30k")
    files = []
    for split, out, n in (("train", "train", 300), ("val", "valid", 30), ("test2016", "test", 30)):
        for lang, side in (("de", "src"), ("en", "tgt")):
            path = os.path.join(tmp, f"{out}.{lang}")
            with open(os.path.join(data, f"{split}.{lang}")) as f, open(path, "w") as g:
                g.writelines(f.readlines()[:n])
            files += [f"--{out}-{side}", path]
    mt = ["train", *files, "--vocab", "200", "--dim", "16", "--ffn", "32", "--heads", "2",
          "--enc-layers", "1", "--dec-layers", "1", "--max-tokens", "400", "--warmup", "10",
          "--steps", "56", "--eval-every", "8", "--decode", "0", "--check-every", "1", "--quiet"]
    for method, extra in METHODS.items():
        one, two, tl, tp = compare(MT, mt, "3e-2", extra, f"mt_{method}")
        check(read_json(one).get("epochs") == read_json(two).get("epochs"),
              f"mt {method}: the same epochs")
        if method == "full":
            control(MT, mt, "3e-2", one, tl, tp, "mt_full")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("all passed")
