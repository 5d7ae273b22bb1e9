/* dataset.h - graph datasets for node classification and link prediction (ARCHITECTURE.md sections 2, 3).
 *
 * A dataset directory holds graph.edges (igraph edge list, 0-based, undirected), features.mtx
 * (Matrix Market coordinate real, nodes x dims, optional with use_feats = 0), labels.txt (one
 * integer per node, -1 = unlabelled), and optionally split.txt / split_hybonet.txt (Planetoid:
 * train/val/test/none per node) and self_loops.txt (nodes whose original adjacency has a loop).
 * Every parse error names the file and line, and input echoed in it is escaped and truncated.
 * Lines holding a control character (other than a tab) or longer than 64 KiB are malformed;
 * memory stays proportional to what the files hold, whatever counts they declare.
 *
 * Choices made by the loader (HGCN's utils/data_utils.py is the reference):
 * - n = number of lines of labels.txt; graph.edges may not name a node >= n (nodes without edges
 *   exist). Repeated edges (either orientation) count once; a line 'u u' marks a self-loop, like
 *   self_loops.txt. features.mtx must have n rows; duplicate entries are summed.
 * - normalize_feats: row i times 1/rowsum_i with inf -> 0 (HGCN normalize): an all-zero row stays
 *   zero, and so does a signed row whose sum is exactly 0.
 * - adj, NC: D^-1 (A + L + I) with L the listed self-loops (diagonal 2 before normalisation, as
 *   HGCN). adj, LP: D^-1 (A_train + I); self-loops are ignored (HGCN would make them positive
 *   "edges" (i, i); we never split, score or sample (i, i) pairs).
 * - augment_degree: deg = neighbours in the graph the model sees (LP: training edges) + 1 for a
 *   listed self-loop, in both tasks (the row sum of HGCN's adjacency).
 * - NC random split: round() is half-to-even (rint), as Python's round(); the label > 0 group
 *   is shuffled before the label 0 group, both with one hg_rng seeded by split_seed.
 * - LP split: one hg_rng seeded by split_seed shuffles the sorted edge keys, then draws the
 *   val/test negatives (distinct across val and test, never edges of the full graph, never
 *   (i, i)). Training negatives exclude (i, i) too; the reference pool contains them. */
#ifndef HG_DATASET_H
#define HG_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "../src/csr.h"
#include "../src/rng.h"

typedef enum { HG_TASK_NC = 0, HG_TASK_LP = 1 } hg_task;

/* Labels are classes in [0, HG_DATASET_MAX_CLASSES): a typo such as 100000000 would otherwise
 * size every per-class buffer (logits, class points) by it. */
#define HG_DATASET_MAX_CLASSES 65536

/* features.mtx may declare at most this many columns: the model's first layer is sized by the
 * column count, which no entry of a sparse file has to back (a three-line file could declare
 * two billion). Bag-of-words features of the usual graph datasets have a few thousand. */
#define HG_DATASET_MAX_FEATURES (1 << 20)

typedef enum {
    HG_NEG_POOL_REFERENCE = 0, /* pairs that are not training edges: HGCN's pool (all non-edges plus
                                  val/test positives), without the (i, i) pairs (ours) */
    HG_NEG_POOL_NONEDGE = 1    /* pairs that are not edges of the full graph (no val/test leak) */
} hg_neg_pool;

typedef struct hg_dataset_opts {
    const char *dir;       /* dataset directory */
    const char *name;      /* name used for dataset-specific rules (airport, cora, ...): may be NULL */
    hg_task task;
    int use_feats;         /* 0: identity features (n x n) */
    int normalize_feats;   /* row-normalise features (before Airport's augmentation) */
    int augment_degree;    /* append one-hot(min(deg, 5)) (6 cols) and a constant 1 column
                              (Airport); deg counts neighbours in the (training) graph plus a
                              listed self-loop */
    const char *features_file; /* feature file name inside dir; NULL = "features.mtx" */
    const char *split_file;/* NC: split file name inside dir ("split_hybonet.txt"); NULL or a
                              missing file: random split by val_prop/test_prop */
    double val_prop, test_prop; /* NC random split or LP edge split (0.05 / 0.10) */
    uint64_t split_seed;
    int nc_split_reference; /* NC random split with HGCN's overlapping groups (label != 0 and
                               label != 1): a node can be in train and test; for comparison with
                               published figures only */
    hg_neg_pool neg_pool;
} hg_dataset_opts;

typedef struct hg_dataset {
    hg_task task;       /* the task the dataset was prepared for (which parts below are filled) */
    int64_t n;          /* nodes */
    int64_t nfeat;      /* feature columns after augmentation (identity: n) */
    hg_csr feat;        /* (n x nfeat) features, normalised/augmented as requested */
    int32_t *labels;    /* (n) class per node, -1 unlabelled */
    int32_t nclasses;   /* 1 + max label */
    int64_t nedges;     /* undirected edges in graph.edges */
    hg_csr adj;         /* (n x n) D^-1 (A + I) of the graph the model sees (LP: training edges) */

    /* node classification (NULL / 0 for LP); each list sorted ascending */
    int64_t *idx_train, *idx_val, *idx_test; /* node indices */
    int64_t n_train, n_val, n_test;

    /* link prediction (NULL / 0 for NC): pairs (u, v) with u < v, stored as [2 * count]
     * (u0, v0, u1, v1, ...), in the split's shuffled order */
    int32_t *train_pos, *val_pos, *val_neg, *test_pos, *test_neg;
    int64_t n_train_pos, n_val_pos, n_test_pos; /* val_neg/test_neg have as many as the positives */
    hg_neg_pool neg_pool;
    /* sorted keys u * n + v (u < v) of the pairs excluded from training negatives */
    int64_t *neg_excl;
    int64_t n_neg_excl;
    /* the same keys in an open-addressing hash set (linear probing, slot -1 = empty, at most
       half full, neg_excl_mask + 1 slots), built at load: the sampler's membership test */
    int64_t *neg_excl_set;
    int64_t neg_excl_mask;
    /* a blocked Bloom filter in front of it (word h >> neg_excl_shift of the key's hash h holds
       a few bits of it; at least 16 bits per key): most non-excluded pairs are rejected by one
       L1 load */
    uint64_t *neg_excl_bits;
    int neg_excl_shift;
} hg_dataset;

/* Load and prepare. Errors (message names file:line): HG_EIO, HG_EFORMAT, HG_ENUMERIC (NaN/Inf
 * feature), HG_EINVAL (empty graph, inconsistent sizes, bad options), HG_EIGRAPH, HG_ENOMEM. */
int hg_dataset_load(hg_dataset *d, const hg_dataset_opts *o);
void hg_dataset_destroy(hg_dataset *d); /* safe on a zeroed struct */

/* Draw `count` training negatives uniformly (with replacement) from the pool, into
 * out[2 * count] as (u, v) pairs with u < v (never u == v), by rejection against neg_excl.
 * No allocation. Only for a dataset loaded with task LP. */
void hg_dataset_sample_negatives(const hg_dataset *d, hg_rng *rng, int32_t *out, int64_t count);

/* Resolve a dataset name to the bundled directory (writes into buf): the first existing of
 * $HGNN_DATA_DIR/<name>, HG_SOURCE_DATA_DIR/<name>, HG_INSTALL_DATA_DIR/<name>. Returns HG_EINVAL
 * with a message listing the known names if unknown (or buf too small), HG_EIO if not found. */
int hg_dataset_bundled_dir(char *buf, size_t len, const char *name);

#endif
