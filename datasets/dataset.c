/* dataset.c - the dataset loader: the files (readers.c) and splits (split.c) put together, the
 * normalised adjacency and the feature preparation (ARCHITECTURE.md section 2; HGCN's
 * utils/data_utils.py is the reference loader).
 *
 * Order of work in hg_dataset_load: labels.txt (fixes n) -> features.mtx (or identity) ->
 * self_loops.txt -> graph.edges -> split -> adjacency -> feature normalisation and
 * augmentation. Every step owns its temporaries and frees
 * them on every path; the dataset itself is destroyed by the caller-facing loader on failure. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <igraph.h>

#include "datadir.h"
#include "hg_config.h"
#include "../src/hg.h"

/* Airport's degree one-hot is clipped here (HGCN augment: deg[deg > 5] = 5), giving 6 columns. */
#define HG_DATASET_DEG_CLIP 5
/* Columns appended by augment_degree: the one-hot (DEG_CLIP + 1) and a constant 1. */
#define HG_DATASET_AUG_COLS (HG_DATASET_DEG_CLIP + 2)
/* Path buffer size for files inside the dataset directory. */
#define PATH_LEN 4096

static const char *const known_names[] = {"cora", "pubmed", "disease_nc", "disease_lp", "airport"};
#define KNOWN_NAMES_TEXT "cora, pubmed, disease_nc, disease_lp, airport"

/* Translate an igraph status at the boundary (inside a function with `int rc` and `done:`). */
#define IG_CHECK(expr, where)                                                               \
    do {                                                                                    \
        igraph_error_t ig_rc_ = (expr);                                                     \
        if (ig_rc_ != IGRAPH_SUCCESS) {                                                     \
            rc = HG_ERRORF(ig_rc_ == IGRAPH_ENOMEM ? HG_ENOMEM : HG_EIGRAPH, "%s: igraph: %s", \
                           (where), igraph_strerror(ig_rc_));                               \
            goto done;                                                                      \
        }                                                                                   \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                                */

static int make_path(char *buf, const char *dir, const char *file)
{
    int w = snprintf(buf, PATH_LEN, "%s/%s", dir, file);
    if (w < 0 || w >= PATH_LEN)
        return HG_ERRORF(HG_EINVAL, "%s/%s: path too long", dir, file);
    return HG_OK;
}

static int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int identity_csr(hg_csr *out, int64_t n)
{
    int rc = hg_csr_alloc(out, n, n, n);
    if (rc != HG_OK)
        return rc;
    for (int64_t i = 0; i < n; i++) {
        out->rowptr[i + 1] = i + 1;
        out->col[i] = (int32_t)i;
        out->val[i] = 1.0f;
    }
    return HG_OK;
}

/* HGCN normalize(): multiply row i by 1/rowsum_i, with inf -> 0 (so a row summing to exactly 0
 * is multiplied by 0: all-zero rows stay as they are). */
static void normalize_rows(hg_csr *f)
{
    for (int64_t i = 0; i < f->nrows; i++) {
        double s = 0.0;
        for (int64_t k = f->rowptr[i]; k < f->rowptr[i + 1]; k++)
            s += f->val[k];
        double inv = 1.0 / s;
        if (!isfinite(inv))
            inv = 0.0;
        for (int64_t k = f->rowptr[i]; k < f->rowptr[i + 1]; k++)
            f->val[k] = (float)(f->val[k] * inv);
    }
}

/* HGCN augment(): [features | one_hot(min(deg, 5)) | 1]. */
static int augment_features(hg_csr *f, const int64_t *deg)
{
    hg_csr a = {0};
    int rc = hg_csr_alloc(&a, f->nrows, f->ncols + HG_DATASET_AUG_COLS, f->nnz + 2 * f->nrows);
    if (rc != HG_OK)
        return rc;
    int64_t k = 0;
    for (int64_t i = 0; i < f->nrows; i++) {
        for (int64_t p = f->rowptr[i]; p < f->rowptr[i + 1]; p++, k++) {
            a.col[k] = f->col[p];
            a.val[k] = f->val[p];
        }
        int64_t dg = HG_MIN(deg[i], (int64_t)HG_DATASET_DEG_CLIP);
        a.col[k] = (int32_t)(f->ncols + dg);
        a.val[k++] = 1.0f;
        a.col[k] = (int32_t)(f->ncols + HG_DATASET_AUG_COLS - 1);
        a.val[k++] = 1.0f;
        a.rowptr[i + 1] = k;
    }
    hg_csr_destroy(f);
    *f = a;
    return HG_OK;
}

/* Degrees of the graph with the given edges (igraph), plus 1 for a listed self-loop: the row sum
 * of HGCN's adjacency before + I. */
static int graph_degrees(int64_t *deg, int64_t n, const int64_t *keys, int64_t m,
                         const uint8_t *self_loop)
{
    int rc = HG_OK;
    igraph_vector_int_t edges, res;
    igraph_t g;
    int e_ok = 0, r_ok = 0, g_ok = 0;

    IG_CHECK(igraph_vector_int_init(&edges, 2 * m), "degrees");
    e_ok = 1;
    for (int64_t k = 0; k < m; k++) {
        VECTOR(edges)[2 * k] = keys[k] / n;
        VECTOR(edges)[2 * k + 1] = keys[k] % n;
    }
    IG_CHECK(igraph_create(&g, &edges, (igraph_integer_t)n, IGRAPH_UNDIRECTED), "degrees");
    g_ok = 1;
    IG_CHECK(igraph_vector_int_init(&res, 0), "degrees");
    r_ok = 1;
    IG_CHECK(igraph_degree(&g, &res, igraph_vss_all(), IGRAPH_ALL, IGRAPH_NO_LOOPS), "degrees");
    for (int64_t i = 0; i < n; i++)
        deg[i] = (int64_t)VECTOR(res)[i] + (self_loop && self_loop[i] ? 1 : 0);
done:
    if (r_ok)
        igraph_vector_int_destroy(&res);
    if (g_ok)
        igraph_destroy(&g);
    if (e_ok)
        igraph_vector_int_destroy(&edges);
    return rc;
}

/* D^-1 (A + I + L) with A the given edges and L the listed self-loops (NULL: none), CSR with
 * sorted columns (the LorentzAgg product, ARCHITECTURE.md section 3). */
static int build_adj(hg_csr *adj, int64_t n, const int64_t *keys, int64_t m,
                     const uint8_t *self_loop)
{
    int rc = hg_csr_alloc(adj, n, n, n + 2 * m);
    if (rc != HG_OK)
        return rc;
    int64_t *fill = hg_calloc((size_t)n, sizeof *fill, "adjacency fill");
    if (!fill) {
        hg_csr_destroy(adj);
        return HG_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        adj->rowptr[i + 1] = 1;
    for (int64_t k = 0; k < m; k++) {
        adj->rowptr[keys[k] / n + 1]++;
        adj->rowptr[keys[k] % n + 1]++;
    }
    for (int64_t i = 0; i < n; i++)
        adj->rowptr[i + 1] += adj->rowptr[i];
    for (int64_t i = 0; i < n; i++) {
        adj->col[adj->rowptr[i]] = (int32_t)i;
        fill[i] = 1;
    }
    for (int64_t k = 0; k < m; k++) {
        int64_t u = keys[k] / n, v = keys[k] % n;
        adj->col[adj->rowptr[u] + fill[u]++] = (int32_t)v;
        adj->col[adj->rowptr[v] + fill[v]++] = (int32_t)u;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t b = adj->rowptr[i], e = adj->rowptr[i + 1];
        double diag = 1.0 + (self_loop && self_loop[i] ? 1.0 : 0.0);
        double inv = 1.0 / ((double)(e - b - 1) + diag);
        qsort(adj->col + b, (size_t)(e - b), sizeof *adj->col, cmp_i32);
        for (int64_t p = b; p < e; p++)
            adj->val[p] = (float)((adj->col[p] == i ? diag : 1.0) * inv);
    }
    hg_free(fill);
    return HG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* public API                                                                                   */

int hg_dataset_load(hg_dataset *d, const hg_dataset_opts *o)
{
    int rc = HG_OK;
    char path[PATH_LEN], labels_path[PATH_LEN];
    uint8_t *self_loop = NULL;
    int64_t *keys = NULL, m = 0, *train_keys = NULL, *deg = NULL;
    igraph_error_handler_t *old_handler;

    if (!d)
        return HG_ERRORF(HG_EINVAL, "dataset: no output struct given");
    /* igraph's default handler aborts: report its errors as statuses instead (IG_CHECK) */
    old_handler = igraph_set_error_handler(igraph_error_handler_ignore);
    memset(d, 0, sizeof *d);
    if (!o || !o->dir) {
        rc = HG_ERRORF(HG_EINVAL, "dataset: no directory given");
        goto done;
    }
    if (o->task != HG_TASK_NC && o->task != HG_TASK_LP) {
        rc = HG_ERRORF(HG_EINVAL, "dataset: unknown task %d", (int)o->task);
        goto done;
    }
    if (o->neg_pool != HG_NEG_POOL_REFERENCE && o->neg_pool != HG_NEG_POOL_NONEDGE) {
        rc = HG_ERRORF(HG_EINVAL, "dataset: unknown negative pool %d", (int)o->neg_pool);
        goto done;
    }
    if (!(o->val_prop >= 0 && o->test_prop >= 0 && o->val_prop + o->test_prop <= 1)) {
        rc = HG_ERRORF(HG_EINVAL, "dataset: val/test proportions %g/%g must be >= 0 with sum <= 1",
                       o->val_prop, o->test_prop);
        goto done;
    }
    if (!dir_exists(o->dir)) {
        rc = HG_ERRORF(HG_EIO, "%s: no such dataset directory", o->dir);
        goto done;
    }
    d->task = o->task;
    d->neg_pool = o->neg_pool;

    /* labels fix n */
    HG_CHECK(make_path(labels_path, o->dir, "labels.txt"));
    HG_CHECK(hg_ds_read_labels(labels_path, &d->labels, &d->n, &d->nclasses));

    /* features */
    if (o->use_feats) {
        HG_CHECK(make_path(path, o->dir, o->features_file ? o->features_file : "features.mtx"));
        if (!hg_ds_file_exists(path)) {
            rc = HG_ERRORF(HG_EIO, "%s: not found: this dataset has no features; use --use-feats 0 "
                           "(identity features)", path);
            goto done;
        }
        HG_CHECK(hg_ds_read_mtx(&d->feat, path, d->n, labels_path));
    } else {
        HG_CHECK(identity_csr(&d->feat, d->n));
    }

    /* graph */
    self_loop = hg_calloc((size_t)d->n, 1, "self-loop flags");
    if (!self_loop) {
        rc = HG_ENOMEM;
        goto done;
    }
    HG_CHECK(make_path(path, o->dir, "self_loops.txt"));
    HG_CHECK(hg_ds_read_self_loops(self_loop, path, d->n));
    HG_CHECK(make_path(path, o->dir, "graph.edges"));
    HG_CHECK(hg_ds_read_edges(&keys, &m, self_loop, path, d->n, labels_path));
    d->nedges = m;

    /* split and the graph the model sees */
    const int64_t *seen_keys = keys;
    int64_t seen_m = m;
    const uint8_t *seen_loops = self_loop;
    if (o->task == HG_TASK_NC) {
        int have_file = 0;
        if (o->split_file && o->split_file[0]) {
            HG_CHECK(make_path(path, o->dir, o->split_file));
            have_file = hg_ds_file_exists(path);
        }
        if (have_file)
            HG_CHECK(hg_ds_nc_split_file(d, path));
        else
            HG_CHECK(hg_ds_nc_split_random(d, o->val_prop, o->test_prop, o->split_seed,
                                           o->nc_split_reference));
    } else {
        HG_CHECK(hg_ds_lp_split(d, &train_keys, keys, m, o));
        int64_t total_pairs = d->n * (d->n - 1) / 2;
        seen_keys = train_keys;
        seen_m = d->n_train_pos;
        seen_loops = NULL; /* LP ignores self_loops.txt in the adjacency (see dataset.h) */
        if (o->neg_pool == HG_NEG_POOL_REFERENCE) {
            d->neg_excl = train_keys; /* ownership moves to d; seen_keys stays valid */
            d->n_neg_excl = d->n_train_pos;
            train_keys = NULL;
        } else {
            d->neg_excl = hg_calloc((size_t)m, sizeof *d->neg_excl, "negative exclusions");
            if (!d->neg_excl) {
                rc = HG_ENOMEM;
                goto done;
            }
            memcpy(d->neg_excl, keys, (size_t)m * sizeof *keys);
            d->n_neg_excl = m;
        }
        HG_CHECK(hg_ds_neg_excl_index(d));
        if (total_pairs - d->n_neg_excl < 1) {
            rc = HG_ERRORF(HG_EINVAL, "link prediction: the negative pool is empty (complete graph)");
            goto done;
        }
    }
    HG_CHECK(build_adj(&d->adj, d->n, seen_keys, seen_m, seen_loops));

    /* features: normalise, then Airport's degree augmentation */
    if (o->normalize_feats)
        normalize_rows(&d->feat);
    if (o->augment_degree) {
        deg = hg_calloc((size_t)d->n, sizeof *deg, "degrees");
        if (!deg) {
            rc = HG_ENOMEM;
            goto done;
        }
        HG_CHECK(graph_degrees(deg, d->n, seen_keys, seen_m, self_loop));
        HG_CHECK(augment_features(&d->feat, deg));
    }
    d->nfeat = d->feat.ncols;
done:
    if (rc != HG_OK)
        hg_dataset_destroy(d);
    hg_free(train_keys);
    hg_free(deg);
    free(keys); /* grown with realloc by the reader */
    hg_free(self_loop);
    igraph_set_error_handler(old_handler);
    return rc;
}

void hg_dataset_destroy(hg_dataset *d)
{
    if (!d)
        return;
    hg_csr_destroy(&d->feat);
    hg_csr_destroy(&d->adj);
    free(d->labels); /* grown with realloc */
    hg_free(d->idx_train);
    hg_free(d->idx_val);
    hg_free(d->idx_test);
    hg_free(d->train_pos);
    hg_free(d->val_pos);
    hg_free(d->val_neg);
    hg_free(d->test_pos);
    hg_free(d->test_neg);
    hg_free(d->neg_excl);
    hg_free(d->neg_excl_set);
    hg_free(d->neg_excl_bits);
    memset(d, 0, sizeof *d);
}
int hg_dataset_bundled_dir(char *buf, size_t len, const char *name)
{
    int known = 0;
    if (!buf || len == 0 || !name)
        return HG_ERRORF(HG_EINVAL, "dataset: no name or buffer given");
    for (size_t i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
        if (strcmp(name, known_names[i]) == 0)
            known = 1;
    if (!known)
        return HG_ERRORF(HG_EINVAL,
                         "unknown dataset '%s' (known: " KNOWN_NAMES_TEXT "; or --data-dir DIR)",
                         name);
    const int rc = hg_data_find(buf, len, HG_SOURCE_DATA_DIR, name, 1);
    if (rc != HG_EIO)
        return rc;
    return HG_ERRORF(HG_EIO, "dataset '%s' not found (looked in " HG_DATA_SEARCH_TEXT(
                                 HG_SOURCE_DATA_DIR) "); use --data-dir DIR", name);
}
