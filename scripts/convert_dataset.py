#!/usr/bin/python3
"""Convert a graph dataset from its original distribution format into hgnn's plain format.

  convert_dataset.py --format planetoid|hgcn-csv|airport --name NAME --src RAWDIR --out OUTDIR

Formats (node order exactly as HazyResearch/hgcn's loaders produce it):
  planetoid  RAWDIR/ind.NAME.{x,y,tx,ty,allx,ally,graph,test.index}   (load_citation_data)
  hgcn-csv   RAWDIR/NAME.edges.csv, NAME.labels.npy, NAME.feats.npz (optional)  (load_synthetic_data)
  airport    RAWDIR/NAME.p, a pickled networkx graph with node attribute 'feat'  (load_data_airport)

Output (see datasets/data/README.md): graph.edges, features.mtx, labels.txt, and per format
split.txt + split_hybonet.txt (planetoid), node_ids.txt (hgcn-csv, airport), self_loops.txt (if any).

Needs numpy, scipy and networkx (Debian: python3-numpy python3-scipy python3-networkx).
"""

import argparse
import os
import pickle
import sys
import warnings

PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "convert_dataset.py"


class ConvertError(Exception):
    """A one-line, user-facing error (normally naming the offending file)."""


def fail(msg):
    raise ConvertError(msg)


try:
    import numpy as np
    import scipy.sparse as sp
    import networkx as nx  # noqa: F401  (needed to unpickle airport.p)
except ImportError as e:  # pragma: no cover
    sys.stderr.write("%s: error: %s (install python3-numpy python3-scipy python3-networkx and run "
                     "with /usr/bin/python3)\n" % (PROG, e))
    sys.exit(2)


# ---------------------------------------------------------------------------------------------
# reading


class _CompatUnpickler(pickle.Unpickler):
    """Old pickles name scipy.sparse.csr etc.; fall back to scipy.sparse when those modules go."""

    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if module.startswith("scipy.sparse") and hasattr(sp, name):
                return getattr(sp, name)
            raise


def load_pickle(path):
    if not os.path.isfile(path):
        fail("%s: file not found" % path)
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Planetoid pickles were written by Python 2.
            return _CompatUnpickler(f, encoding="latin1").load()
    except ConvertError:
        raise
    except Exception as e:
        fail("%s: cannot unpickle: %s" % (path, _oneline(e)))


def _oneline(e):
    s = str(e).strip().splitlines()
    return (type(e).__name__ + ": " + s[0]) if s else type(e).__name__


def require_file(path):
    if not os.path.isfile(path):
        fail("%s: file not found" % path)
    return path


# ---------------------------------------------------------------------------------------------
# writing


def fmt_value(v, dtype):
    """float32 -> %.9g (round-trips float32); float64 -> Python repr (shortest round-trip)."""
    if dtype == np.float32:
        return "%.9g" % float(v)
    if np.issubdtype(dtype, np.floating):
        return repr(float(v))
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return str(int(v))
    fail("unsupported feature dtype %s" % dtype)


def write_lines(path, lines):
    with open(path, "w", newline="\n") as f:
        for line in lines:
            f.write(line)
            f.write("\n")


def write_features(path, feats, comment):
    """feats: scipy sparse or dense 2-D array. Writes non-zeros sorted by (row, col), 1-based."""
    if sp.issparse(feats):
        # duplicate entries are summed, as a loader converting to csr would see them
        csr = sp.csr_matrix(feats, copy=True)
        csr.sum_duplicates()
        coo = csr.tocoo()
        rows, cols, vals = coo.row, coo.col, coo.data
        dtype, shape = csr.dtype, csr.shape
    else:
        arr = np.asarray(feats)
        if arr.ndim != 2:
            fail("%s: features are not a matrix (shape %s)" % (path, arr.shape))
        rows, cols = np.nonzero(arr)
        vals = arr[rows, cols]
        dtype = arr.dtype
        shape = arr.shape
    keep = vals != 0
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    if not np.all(np.isfinite(vals.astype(np.float64))):
        fail("%s: features contain NaN/inf" % path)
    with open(path, "w", newline="\n") as f:
        f.write("%%MatrixMarket matrix coordinate real general\n")
        f.write("%% %s\n" % comment)
        f.write("%d %d %d\n" % (shape[0], shape[1], len(vals)))
        f.writelines("%d %d %s\n" % (r + 1, c + 1, fmt_value(v, dtype))
                     for r, c, v in zip(rows.tolist(), cols.tolist(), vals))
    return shape, len(vals), dtype


def write_graph(out, n, edge_pairs, loops):
    """edge_pairs: iterable of (u, v) node indices (any orientation, duplicates allowed)."""
    edges = set()
    for u, v in edge_pairs:
        if u == v:
            continue
        edges.add((u, v) if u < v else (v, u))
    for u, v in edges:
        if not (0 <= u < n and 0 <= v < n):
            fail("edge (%d, %d) refers to a node outside 0..%d" % (u, v, n - 1))
    edges = sorted(edges)
    write_lines(os.path.join(out, "graph.edges"), ("%d %d" % e for e in edges))
    loops = sorted(set(loops))
    if loops:
        write_lines(os.path.join(out, "self_loops.txt"), (str(i) for i in loops))
    return len(edges), len(loops)


def write_labels(out, labels):
    write_lines(os.path.join(out, "labels.txt"), (str(int(l)) for l in labels))


def int_labels(labels, path):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        fail("%s: labels must be a 1-D array (shape %s)" % (path, labels.shape))
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            fail("%s: labels are not integral" % path)
    elif not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        fail("%s: unsupported label dtype %s" % (path, labels.dtype))
    return labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# formats


def convert_planetoid(name, src, out):
    """HGCN load_citation_data (== Kipf's GCN load_data)."""
    objs = {}
    for key in ("x", "y", "tx", "ty", "allx", "ally", "graph"):
        path = os.path.join(src, "ind.%s.%s" % (name, key))
        objs[key] = load_pickle(path)
    idx_path = require_file(os.path.join(src, "ind.%s.test.index" % name))
    try:
        with open(idx_path) as f:
            test_idx_reorder = [int(line.strip()) for line in f if line.strip()]
    except ValueError as e:
        fail("%s: malformed index file: %s" % (idx_path, _oneline(e)))

    def mat(key, want_sparse):
        o = objs[key]
        path = os.path.join(src, "ind.%s.%s" % (name, key))
        if want_sparse:
            if not sp.issparse(o):
                try:
                    o = sp.csr_matrix(np.asarray(o))
                except Exception:
                    fail("%s: expected a (sparse) matrix, got %s" % (path, type(o).__name__))
            return sp.csr_matrix(o)
        o = np.asarray(o)
        if o.ndim != 2:
            fail("%s: expected a 2-D one-hot label array, got shape %s" % (path, o.shape))
        return o

    x, tx, allx = mat("x", True), mat("tx", True), mat("allx", True)
    y, ty, ally = mat("y", False), mat("ty", False), mat("ally", False)
    graph = objs["graph"]
    gpath = os.path.join(src, "ind.%s.graph" % name)
    if not hasattr(graph, "items"):
        fail("%s: expected a dict of adjacency lists, got %s" % (gpath, type(graph).__name__))

    nfeat = allx.shape[1]
    for key, m in (("x", x), ("tx", tx)):
        if m.shape[1] != nfeat:
            fail("ind.%s.%s: %d feature columns, allx has %d" % (name, key, m.shape[1], nfeat))
    ncls = ally.shape[1]
    for key, m in (("y", y), ("ty", ty)):
        if m.shape[1] != ncls:
            fail("ind.%s.%s: %d classes, ally has %d" % (name, key, m.shape[1], ncls))
    if allx.shape[0] != ally.shape[0] or tx.shape[0] != ty.shape[0]:
        fail("ind.%s.*: allx/ally or tx/ty row counts differ" % name)
    if len(test_idx_reorder) != tx.shape[0]:
        fail("%s: %d indices but tx has %d rows" % (idx_path, len(test_idx_reorder), tx.shape[0]))
    if len(set(test_idx_reorder)) != len(test_idx_reorder):
        fail("%s: duplicate test indices" % idx_path)

    # adjacency: nx.from_dict_of_lists(graph); node ids are the dict's integer keys
    pairs, loops, nodes = [], [], set()
    try:
        for u, nbrs in graph.items():
            u = int(u)
            nodes.add(u)
            for v in nbrs:
                v = int(v)
                nodes.add(v)
                if u == v:
                    loops.append(u)
                else:
                    pairs.append((u, v))
    except (TypeError, ValueError) as e:
        fail("%s: malformed adjacency lists: %s" % (gpath, _oneline(e)))
    if nodes and min(nodes) < 0:
        fail("%s: negative node id %d" % (gpath, min(nodes)))

    test_idx_range = np.sort(np.array(test_idx_reorder, dtype=np.int64))
    reorder = np.array(test_idx_reorder, dtype=np.int64)
    nall, ntest = allx.shape[0], len(test_idx_reorder)
    lo, hi = int(test_idx_range[0]), int(test_idx_range[-1])
    if lo < nall:
        fail("%s: test index %d overlaps the allx rows 0..%d" % (idx_path, lo, nall - 1))
    if lo == nall and hi == nall + ntest - 1:
        # HGCN/GCN: features = vstack(allx, tx); features[test_idx_reorder] = features[test_idx_range]
        src_of = np.arange(nall + ntest)
        src_of[reorder] = test_idx_range
        feats = sp.vstack((allx, tx)).tocsr()[src_of]
        onehot = np.vstack((ally, ty))[src_of]
    else:
        # Citeseer: some test-range nodes (isolated in the graph) have no tx/ty row. Pad them
        # with empty features and label -1 (as GCN's loader does), so node id = index throughout.
        n = max(hi + 1, max(nodes) + 1 if nodes else 0)
        sys.stderr.write("%s: note: %d nodes in %d..%d have no allx/tx row; they get empty "
                         "features and label -1\n" % (PROG, n - nall - ntest, nall, n - 1))
        tx_ext = sp.lil_matrix((n - nall, nfeat), dtype=tx.dtype)
        tx_ext[reorder - nall, :] = tx
        ty_ext = np.zeros((n - nall, ncls), dtype=ty.dtype)
        ty_ext[reorder - nall, :] = ty
        feats = sp.vstack((allx, sp.csr_matrix(tx_ext))).tocsr()
        onehot = np.vstack((ally, ty_ext))
    labels = np.argmax(onehot, axis=1).astype(np.int64)
    labels[~np.any(onehot != 0, axis=1)] = -1
    n = feats.shape[0]

    if nodes and max(nodes) >= n:
        fail("%s: node id %d outside the %d feature rows" % (gpath, max(nodes), n))
    if len(nodes) != n:
        sys.stderr.write("%s: note: graph mentions %d of %d nodes; the rest are isolated\n"
                         % (PROG, len(nodes), n))

    os.makedirs(out, exist_ok=True)
    ne, nl = write_graph(out, n, pairs, loops)
    fshape, nnz, dt = write_features(
        os.path.join(out, "features.mtx"), feats,
        "%s features (raw Planetoid values, %s) from HazyResearch/hgcn" % (name, feats.dtype))
    write_labels(out, labels)

    ntrain = y.shape[0]
    test_set = set(test_idx_range.tolist())
    for fname, nval in (("split.txt", 500), ("split_hybonet.txt", 1000)):
        if ntrain + nval > n:
            fail("ind.%s.y: train %d + val %d exceeds %d nodes" % (name, ntrain, nval, n))
        tags = ["none"] * n
        for i in range(ntrain):
            tags[i] = "train"
        for i in range(ntrain, ntrain + nval):
            tags[i] = "val"
        for i in test_set:
            if tags[i] != "none":
                fail("%s: test node %d is also in the %s split (%s)" % (idx_path, i, tags[i], fname))
            tags[i] = "test"
        write_lines(os.path.join(out, fname), tags)
    return ("%d nodes, %d edges, %d self-loops, features %dx%d nnz %d (%s), %d classes, "
            "train %d / val 500 (hybonet 1000) / test %d"
            % (n, ne, nl, fshape[0], fshape[1], nnz, dt, ncls, ntrain, len(test_set)))


def convert_hgcn_csv(name, src, out):
    """HGCN load_synthetic_data: node ids by first appearance in NAME.edges.csv."""
    csv_path = require_file(os.path.join(src, "%s.edges.csv" % name))
    labels_path = require_file(os.path.join(src, "%s.labels.npy" % name))
    feats_path = os.path.join(src, "%s.feats.npz" % name)

    object_to_idx = {}
    pairs = []
    loops = []
    with open(csv_path, "r") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip().split(",")
            if len(parts) != 2:
                fail("%s:%d: expected 'n1,n2', got %r" % (csv_path, lineno, line.rstrip()))
            ij = []
            for key in parts:
                if key not in object_to_idx:
                    object_to_idx[key] = len(object_to_idx)
                ij.append(object_to_idx[key])
            i, j = ij
            if i == j:
                loops.append(i)
            else:
                pairs.append((i, j))
    n = len(object_to_idx)
    if n == 0:
        fail("%s: no edges" % csv_path)

    try:
        labels = np.load(labels_path, allow_pickle=False)
    except Exception as e:
        fail("%s: cannot read: %s" % (labels_path, _oneline(e)))
    labels = int_labels(labels, labels_path)
    if labels.shape[0] != n:
        fail("%s: %d labels but %s has %d nodes" % (labels_path, labels.shape[0], csv_path, n))

    feats = None
    if os.path.exists(feats_path):
        try:
            feats = sp.load_npz(feats_path)
        except Exception as e:
            fail("%s: cannot read: %s" % (feats_path, _oneline(e)))
        if feats.shape[0] != n:
            fail("%s: %d rows but %s has %d nodes" % (feats_path, feats.shape[0], csv_path, n))

    os.makedirs(out, exist_ok=True)
    ne, nl = write_graph(out, n, pairs, loops)
    if feats is not None:
        fshape, nnz, dt = write_features(
            os.path.join(out, "features.mtx"), feats,
            "%s features (raw HGCN values, %s) from HazyResearch/hgcn" % (name, feats.dtype))
        ftxt = "features %dx%d nnz %d (%s)" % (fshape[0], fshape[1], nnz, dt)
    else:
        sys.stderr.write("%s: warning: %s not found; no features.mtx written (train with "
                         "identity features)\n" % (PROG, feats_path))
        ftxt = "no features"
    write_labels(out, labels)
    write_lines(os.path.join(out, "node_ids.txt"), object_to_idx.keys())
    return ("%d nodes, %d edges, %d self-loops, %s, %d classes"
            % (n, ne, nl, ftxt, len(np.unique(labels))))


def convert_airport(name, src, out):
    """HGCN load_data_airport(return_label=True)."""
    path = os.path.join(src, "%s.p" % name)
    graph = load_pickle(path)
    if not isinstance(graph, nx.Graph):
        fail("%s: expected a pickled networkx graph, got %s" % (path, type(graph).__name__))
    order = list(graph.nodes())
    n = len(order)
    if n == 0:
        fail("%s: graph has no nodes" % path)
    index = {u: i for i, u in enumerate(order)}
    try:
        rows = [graph.nodes[u]["feat"] for u in order]
    except KeyError:
        fail("%s: a node lacks the 'feat' attribute" % path)
    try:
        feat = np.array(rows)
    except Exception as e:
        fail("%s: 'feat' attributes do not form a matrix: %s" % (path, _oneline(e)))
    if feat.ndim != 2 or feat.shape[1] < 5 or not np.issubdtype(feat.dtype, np.number):
        fail("%s: 'feat' must be numeric with >= 5 columns (got shape %s)" % (path, feat.shape))
    label_idx = 4
    digitized = np.digitize(feat[:, label_idx], [7.0 / 7, 8.0 / 7, 9.0 / 7])
    labels = digitized - digitized.min()
    feats = feat[:, :label_idx]

    pairs, loops = [], []
    for u, v in graph.edges():
        i, j = index[u], index[v]
        if i == j:
            loops.append(i)
        else:
            pairs.append((i, j))

    os.makedirs(out, exist_ok=True)
    ne, nl = write_graph(out, n, pairs, loops)
    fshape, nnz, dt = write_features(
        os.path.join(out, "features.mtx"), feats,
        "%s features = columns 0..3 of node attribute 'feat' (%s, raw) from HazyResearch/hgcn "
        "data/%s/%s.p" % (name, feats.dtype, name, name))
    # HGCN's link-prediction loader (return_label=False) keeps every column of 'feat'
    write_features(
        os.path.join(out, "features_lp.mtx"), feat,
        "%s link-prediction features = all columns of node attribute 'feat' (%s, raw) from "
        "HazyResearch/hgcn data/%s/%s.p (load_data_airport with return_label=False)"
        % (name, feat.dtype, name, name))
    write_labels(out, labels)
    write_lines(os.path.join(out, "node_ids.txt"), (str(u) for u in order))
    return ("%d nodes, %d edges, %d self-loops, features %dx%d nnz %d (%s), %d classes"
            % (n, ne, nl, fshape[0], fshape[1], nnz, dt, len(np.unique(labels))))


FORMATS = {"planetoid": convert_planetoid, "hgcn-csv": convert_hgcn_csv, "airport": convert_airport}


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a graph dataset from its original distribution format "
                    "(Planetoid pickles, HGCN csv/npz/npy, HGCN airport.p) into hgnn's plain format.")
    ap.add_argument("--format", required=True, choices=sorted(FORMATS))
    ap.add_argument("--name", required=True,
                    help="dataset name as used in the raw file names (cora, pubmed, disease_nc, airport)")
    ap.add_argument("--src", required=True, help="directory with the raw files")
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    args = ap.parse_args(argv)

    try:
        if not os.path.isdir(args.src):
            fail("%s: source directory not found" % args.src)
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            fail("%s: output path exists and is not a directory" % args.out)
        summary = FORMATS[args.format](args.name, args.src, args.out)
    except ConvertError as e:
        sys.stderr.write("%s: error: %s\n" % (PROG, e))
        return 1
    except OSError as e:
        where = e.filename if e.filename else ""
        sys.stderr.write("%s: error: %s%s\n" % (PROG, (where + ": ") if where else "",
                                                e.strerror or _oneline(e)))
        return 1
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # malformed input that slipped past the checks
        sys.stderr.write("%s: error: %s (format %s, src %s): %s\n"
                         % (PROG, args.name, args.format, args.src, _oneline(e)))
        return 1
    print("%s: %s -> %s: %s" % (PROG, args.name, args.out, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
