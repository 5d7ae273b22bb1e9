/* test_datasets.c - graph dataset loading (datasets/dataset.c): counts of the bundled datasets
 * against their READMEs, adjacency normalisation, node and edge splits, negative sampling,
 * Airport's degree augmentation, and one malformed input per error path (file:line messages). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../datasets/dataset.h"
#include "../src/hg.h"

/* Row sums of D^-1 (A + I) are 1 up to float32 rounding of each entry (~deg * 2^-24) and of
 * the double sum: 1e-5 leaves room for rows of a few hundred entries. */
#define ROWSUM_ATOL 1e-5

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                    */

static hg_dataset_opts base_opts(const char *dir, hg_task task)
{
    hg_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.task = task;
    o.use_feats = 1;
    o.normalize_feats = 1;
    o.val_prop = task == HG_TASK_LP ? 0.05 : 0.15;
    o.test_prop = task == HG_TASK_LP ? 0.10 : 0.15;
    o.split_seed = 1234;
    o.neg_pool = HG_NEG_POOL_REFERENCE;
    return o;
}

static void bundled_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", hg_test_data_dir(), name);
}

static void load_ok(hg_dataset *d, const hg_dataset_opts *o)
{
    int rc = hg_dataset_load(d, o);
    if (rc != HG_OK)
        fail_msg("hg_dataset_load(%s): %s: %s", o->dir, hg_strerror(rc), hg_last_error());
}

/* Sorted unique keys u * n + v (u < v) of graph.edges, read independently of the loader. */
static int64_t *read_edge_keys(const char *dir, int64_t n, int64_t *m_out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/graph.edges", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int64_t cap = 1024, m = 0;
    int64_t *k = malloc((size_t)cap * sizeof *k);
    long long u, v;
    while (fscanf(f, "%lld %lld", &u, &v) == 2) {
        if (m == cap) {
            cap *= 2;
            k = realloc(k, (size_t)cap * sizeof *k);
            assert_non_null(k);
        }
        assert_true(u != v);
        k[m++] = u < v ? u * n + v : v * n + u;
    }
    fclose(f);
    for (int64_t i = 1; i < m; i++) /* the files are sorted and unique (README) */
        assert_true(k[i - 1] < k[i]);
    *m_out = m;
    return k;
}

static int has_key(const int64_t *k, int64_t m, int64_t key)
{
    int64_t lo = 0, hi = m;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (k[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m && k[lo] == key;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void check_histogram(const hg_dataset *d, const int64_t *want, int nclasses)
{
    assert_int_equal(d->nclasses, nclasses);
    int64_t h[16] = {0};
    for (int64_t i = 0; i < d->n; i++) {
        assert_true(d->labels[i] >= 0 && d->labels[i] < nclasses);
        h[d->labels[i]]++;
    }
    for (int c = 0; c < nclasses; c++)
        assert_int_equal(h[c], want[c]);
}

/* Rows of D^-1 (A + I) sum to 1, columns strictly increasing, diagonal present, structure
 * symmetric, and each row's weights equal (diagonal possibly doubled by a self-loop). */
static void check_adj(const hg_csr *a, int64_t n)
{
    assert_int_equal(a->nrows, n);
    assert_int_equal(a->ncols, n);
    assert_int_equal(a->rowptr[0], 0);
    assert_int_equal(a->rowptr[n], a->nnz);
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        int diag = 0;
        for (int64_t p = a->rowptr[i]; p < a->rowptr[i + 1]; p++) {
            if (p > a->rowptr[i])
                assert_true(a->col[p - 1] < a->col[p]);
            assert_true(a->val[p] > 0.0f);
            s += a->val[p];
            if (a->col[p] == i)
                diag = 1;
        }
        assert_true(diag);
        if (!(fabs(s - 1.0) <= ROWSUM_ATOL))
            fail_msg("adjacency row %lld sums to %.9g", (long long)i, s);
    }
    /* symmetric structure: entry (i, j) has a twin (j, i) */
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = a->rowptr[i]; p < a->rowptr[i + 1]; p++) {
            int64_t j = a->col[p], found = 0;
            for (int64_t q = a->rowptr[j]; q < a->rowptr[j + 1]; q++)
                if (a->col[q] == i)
                    found = 1;
            assert_true(found);
        }
}

/* Off-diagonal entries of adjacency row i. */
static int64_t adj_neighbours(const hg_csr *a, int64_t i)
{
    return a->rowptr[i + 1] - a->rowptr[i] - 1;
}

static float adj_diag(const hg_csr *a, int64_t i)
{
    for (int64_t p = a->rowptr[i]; p < a->rowptr[i + 1]; p++)
        if (a->col[p] == i)
            return a->val[p];
    return -1.0f;
}

/* NC split index lists: ascending, in range, pairwise disjoint. */
static void check_nc_disjoint(const hg_dataset *d)
{
    unsigned char *seen = calloc((size_t)d->n, 1);
    const int64_t *lists[3] = {d->idx_train, d->idx_val, d->idx_test};
    int64_t counts[3] = {d->n_train, d->n_val, d->n_test};
    for (int s = 0; s < 3; s++)
        for (int64_t k = 0; k < counts[s]; k++) {
            int64_t i = lists[s][k];
            assert_true(i >= 0 && i < d->n);
            if (k > 0)
                assert_true(lists[s][k - 1] < i);
            assert_int_equal(seen[i], 0);
            seen[i] = 1;
        }
    free(seen);
}

/* ---------------------------------------------------------------------------------------- */
/* bundled datasets: counts from the READMEs                                                  */

static void test_cora_counts(void **state)
{
    (void)state;
    char dir[4096];
    bundled_path(dir, sizeof dir, "cora");
    hg_dataset_opts o = base_opts(dir, HG_TASK_NC);
    o.split_file = "split_hybonet.txt";
    o.normalize_feats = 0;
    hg_dataset d;
    load_ok(&d, &o);
    assert_int_equal(d.task, HG_TASK_NC);
    assert_int_equal(d.n, 2708);
    assert_int_equal(d.nedges, 5278);
    assert_int_equal(d.nfeat, 1433);
    assert_int_equal(d.feat.nrows, 2708);
    assert_int_equal(d.feat.nnz, 49216);
    for (int64_t k = 0; k < d.feat.nnz; k++) /* binary bag of words */
        assert_true(d.feat.val[k] == 1.0f);
    const int64_t hist[7] = {351, 217, 418, 818, 426, 298, 180};
    check_histogram(&d, hist, 7);
    assert_int_equal(d.n_train, 140);
    assert_int_equal(d.n_val, 1000);
    assert_int_equal(d.n_test, 1000);
    check_nc_disjoint(&d);
    for (int64_t k = 0; k < 140; k++) /* Planetoid: train = the first 140 nodes */
        assert_int_equal(d.idx_train[k], k);
    assert_int_equal(d.idx_val[0], 140);
    assert_int_equal(d.adj.nnz, 2708 + 2 * 5278);
    check_adj(&d.adj, d.n);
    assert_null(d.train_pos);
    hg_dataset_destroy(&d);
    hg_dataset_destroy(&d); /* zeroed: safe again */

    o.split_file = "split.txt";
    o.normalize_feats = 1;
    load_ok(&d, &o);
    assert_int_equal(d.n_train, 140);
    assert_int_equal(d.n_val, 500);
    assert_int_equal(d.n_test, 1000);
    for (int64_t i = 0; i < d.n; i++) { /* every Cora row has words: rows sum to 1 */
        double s = 0.0;
        for (int64_t p = d.feat.rowptr[i]; p < d.feat.rowptr[i + 1]; p++)
            s += d.feat.val[p];
        assert_true(fabs(s - 1.0) < 1e-5);
    }
    hg_dataset_destroy(&d);
}

static void test_pubmed_counts(void **state)
{
    (void)state;
    char dir[4096];
    bundled_path(dir, sizeof dir, "pubmed");
    hg_dataset_opts o = base_opts(dir, HG_TASK_NC);
    o.split_file = "split_hybonet.txt";
    o.use_feats = 0;
    hg_dataset d;
    load_ok(&d, &o);
    assert_int_equal(d.n, 19717);
    assert_int_equal(d.nedges, 44324);
    assert_int_equal(d.nfeat, 19717);
    assert_int_equal(d.feat.nnz, 19717);
    const int64_t hist[3] = {4103, 7739, 7875};
    check_histogram(&d, hist, 3);
    assert_int_equal(d.n_train, 60);
    assert_int_equal(d.n_val, 1000);
    assert_int_equal(d.n_test, 1000);
    check_nc_disjoint(&d);
    check_adj(&d.adj, d.n);
    /* the three listed self-loops: diagonal weight 2 before normalisation */
    const int64_t loops[3] = {3918, 6992, 8806};
    for (int k = 0; k < 3; k++) {
        int64_t i = loops[k];
        double want = 2.0 / (double)(adj_neighbours(&d.adj, i) + 2);
        assert_true(fabs(adj_diag(&d.adj, i) - want) < 1e-7);
    }
    assert_true(fabs(adj_diag(&d.adj, 0) - 1.0 / (double)(adj_neighbours(&d.adj, 0) + 1)) < 1e-7);
    hg_dataset_destroy(&d);

    /* no features.mtx in this copy: use_feats 1 must say how to proceed */
    o.use_feats = 1;
    int rc = hg_dataset_load(&d, &o);
    assert_int_equal(rc, HG_EIO);
    assert_non_null(strstr(hg_last_error(), "features.mtx"));
    assert_non_null(strstr(hg_last_error(), "--use-feats 0"));
    assert_null(d.labels);
    hg_dataset_destroy(&d);
}

static void test_disease_counts(void **state)
{
    (void)state;
    char dir[4096];
    hg_dataset d;
    bundled_path(dir, sizeof dir, "disease_nc");
    hg_dataset_opts o = base_opts(dir, HG_TASK_NC);
    o.use_feats = 0;
    o.val_prop = 0.10;
    o.test_prop = 0.60;
    load_ok(&d, &o);
    assert_int_equal(d.n, 1044);
    assert_int_equal(d.nedges, 1043);
    const int64_t hist_nc[2] = {833, 211};
    check_histogram(&d, hist_nc, 2);
    check_adj(&d.adj, d.n);
    hg_dataset_destroy(&d);

    bundled_path(dir, sizeof dir, "disease_lp");
    o = base_opts(dir, HG_TASK_LP);
    o.normalize_feats = 0;
    load_ok(&d, &o);
    assert_int_equal(d.task, HG_TASK_LP);
    assert_int_equal(d.n, 2665);
    assert_int_equal(d.nedges, 2664);
    assert_int_equal(d.nfeat, 11);
    assert_int_equal(d.feat.nnz, 29313);
    const int64_t hist_lp[2] = {1605, 1060};
    check_histogram(&d, hist_lp, 2);
    assert_null(d.idx_train);
    /* raw values kept (both signs) */
    int neg = 0;
    for (int64_t k = 0; k < d.feat.nnz; k++)
        neg += d.feat.val[k] < 0.0f;
    assert_true(neg > 0);
    hg_dataset_destroy(&d);
}

/* Airport: counts, and the augmentation [normalised 4 | one-hot(min(deg, 5)) | 1]. */
static void check_airport_augment(const hg_dataset *d, int64_t loop_node)
{
    assert_int_equal(d->nfeat, 4 + 7);
    for (int64_t i = 0; i < d->n; i++) {
        int64_t deg = adj_neighbours(&d->adj, i) + (i == loop_node ? 1 : 0);
        int64_t want_hot = 4 + (deg < 5 ? deg : 5);
        int hot = 0, konst = 0;
        double s = 0.0;
        int64_t base = 0;
        for (int64_t p = d->feat.rowptr[i]; p < d->feat.rowptr[i + 1]; p++) {
            int32_t c = d->feat.col[p];
            if (c < 4) {
                s += d->feat.val[p];
                base++;
            } else if (c < 10) {
                assert_int_equal(c, want_hot);
                assert_true(d->feat.val[p] == 1.0f);
                hot++;
            } else {
                assert_int_equal(c, 10);
                assert_true(d->feat.val[p] == 1.0f);
                konst++;
            }
        }
        assert_int_equal(hot, 1);
        assert_int_equal(konst, 1);
        if (base > 0 && s != 0.0) /* normalised part: rows sum to 1 */
            assert_true(fabs(s - 1.0) < 1e-5);
    }
}

static void test_airport_counts_augment(void **state)
{
    (void)state;
    char dir[4096];
    bundled_path(dir, sizeof dir, "airport");
    hg_dataset_opts o = base_opts(dir, HG_TASK_NC);
    o.augment_degree = 1;
    hg_dataset d;
    load_ok(&d, &o);
    assert_int_equal(d.n, 3188);
    assert_int_equal(d.nedges, 18630);
    assert_int_equal(d.feat.nnz, 12691 + 2 * 3188);
    const int64_t hist[4] = {521, 1443, 999, 225};
    check_histogram(&d, hist, 4);
    check_adj(&d.adj, d.n);
    /* the listed self-loop (node 2349): diagonal 2 / (deg + 2) */
    double want = 2.0 / (double)(adj_neighbours(&d.adj, 2349) + 2);
    assert_true(fabs(adj_diag(&d.adj, 2349) - want) < 1e-7);
    check_airport_augment(&d, 2349);
    /* the 4 isolated nodes: one-hot at degree 0 (their adjacency row is the diagonal only) */
    int64_t isolated = 0;
    for (int64_t i = 0; i < d.n; i++)
        isolated += adj_neighbours(&d.adj, i) == 0 && i != 2349;
    assert_int_equal(isolated, 4);
    hg_dataset_destroy(&d);

    /* LP: the degree counts training edges only (adjacency has the training graph) */
    o = base_opts(dir, HG_TASK_LP);
    o.augment_degree = 1;
    load_ok(&d, &o);
    assert_int_equal(d.adj.nnz, d.n + 2 * d.n_train_pos);
    check_airport_augment(&d, 2349);
    hg_dataset_destroy(&d);

    /* without augmentation the raw 4 columns */
    o = base_opts(dir, HG_TASK_NC);
    o.normalize_feats = 0;
    load_ok(&d, &o);
    assert_int_equal(d.nfeat, 4);
    assert_int_equal(d.feat.nnz, 12691);
    assert_true(fabs(d.feat.val[0] - 0.5142588721377778) < 1e-7);
    hg_dataset_destroy(&d);
}

static void test_use_feats0_identity(void **state)
{
    (void)state;
    char dir[4096];
    bundled_path(dir, sizeof dir, "cora");
    hg_dataset_opts o = base_opts(dir, HG_TASK_NC);
    o.use_feats = 0;
    o.split_file = "split.txt";
    hg_dataset d;
    load_ok(&d, &o);
    assert_int_equal(d.nfeat, d.n);
    assert_int_equal(d.feat.nrows, d.n);
    assert_int_equal(d.feat.nnz, d.n);
    for (int64_t i = 0; i < d.n; i++) {
        assert_int_equal(d.feat.rowptr[i], i);
        assert_int_equal(d.feat.col[i], i);
        assert_true(d.feat.val[i] == 1.0f);
    }
    hg_dataset_destroy(&d);
}

/* ---------------------------------------------------------------------------------------- */
/* node-classification random split                                                           */

static void check_nc_random(const char *name, double vp, double tp)
{
    char dir[4096];
    bundled_path(dir, sizeof dir, name);
    hg_dataset_opts o = base_opts(dir, HG_TASK_NC);
    o.use_feats = 0;
    o.val_prop = vp;
    o.test_prop = tp;
    o.split_file = "split.txt"; /* absent in these directories: random split */
    hg_dataset a, b, c;
    load_ok(&a, &o);
    load_ok(&b, &o);
    o.split_seed = 99;
    load_ok(&c, &o);

    int64_t zero = 0, nonzero = 0;
    for (int64_t i = 0; i < a.n; i++) {
        zero += a.labels[i] == 0;
        nonzero += a.labels[i] > 0;
    }
    int64_t mn = zero < nonzero ? zero : nonzero;
    int64_t nv = (int64_t)rint(vp * (double)mn), nt = (int64_t)rint(tp * (double)mn);
    assert_int_equal(a.n_val, 2 * nv);
    assert_int_equal(a.n_test, 2 * nt);
    assert_int_equal(a.n_train, zero + nonzero - 2 * (nv + nt));
    check_nc_disjoint(&a);
    /* each set takes nv / nt from each group */
    int64_t vz = 0, tz = 0;
    for (int64_t k = 0; k < a.n_val; k++)
        vz += a.labels[a.idx_val[k]] == 0;
    for (int64_t k = 0; k < a.n_test; k++)
        tz += a.labels[a.idx_test[k]] == 0;
    assert_int_equal(vz, nv);
    assert_int_equal(tz, nt);
    /* deterministic for a seed, different for another */
    assert_memory_equal(a.idx_val, b.idx_val, (size_t)a.n_val * sizeof(int64_t));
    assert_memory_equal(a.idx_test, b.idx_test, (size_t)a.n_test * sizeof(int64_t));
    assert_memory_equal(a.idx_train, b.idx_train, (size_t)a.n_train * sizeof(int64_t));
    assert_int_equal(c.n_val, a.n_val);
    assert_memory_not_equal(a.idx_val, c.idx_val, (size_t)a.n_val * sizeof(int64_t));
    hg_dataset_destroy(&a);
    hg_dataset_destroy(&b);
    hg_dataset_destroy(&c);
}

static void test_nc_random_split(void **state)
{
    (void)state;
    check_nc_random("disease_nc", 0.10, 0.60); /* min(833, 211): val 21, test 127 per group */
    check_nc_random("airport", 0.15, 0.15);    /* min(521, 2667): 78 per group */
}

/* ---------------------------------------------------------------------------------------- */
/* link-prediction split and negatives                                                        */

static void pairs_to_keys(int64_t *out, const int32_t *p, int64_t count, int64_t n)
{
    for (int64_t k = 0; k < count; k++) {
        assert_true(p[2 * k] >= 0 && p[2 * k] < p[2 * k + 1] && p[2 * k + 1] < n);
        out[k] = (int64_t)p[2 * k] * n + p[2 * k + 1];
    }
}

static void check_lp(const char *name)
{
    char dir[4096];
    bundled_path(dir, sizeof dir, name);
    hg_dataset_opts o = base_opts(dir, HG_TASK_LP);
    hg_dataset d;
    load_ok(&d, &o);
    int64_t n = d.n, m;
    int64_t *edges = read_edge_keys(dir, n, &m);
    assert_int_equal(d.nedges, m);
    int64_t nv = (int64_t)floor((double)m * 0.05), nt = (int64_t)floor((double)m * 0.10);
    assert_int_equal(d.n_val_pos, nv);
    assert_int_equal(d.n_test_pos, nt);
    assert_int_equal(d.n_train_pos, m - nv - nt);

    /* positives: a partition of the edge set */
    int64_t *pos = malloc((size_t)m * sizeof *pos);
    pairs_to_keys(pos, d.train_pos, d.n_train_pos, n);
    pairs_to_keys(pos + d.n_train_pos, d.val_pos, nv, n);
    pairs_to_keys(pos + d.n_train_pos + nv, d.test_pos, nt, n);
    qsort(pos, (size_t)m, sizeof *pos, cmp_i64);
    assert_memory_equal(pos, edges, (size_t)m * sizeof *pos);

    /* negatives: non-edges, distinct across val and test */
    int64_t *neg = malloc((size_t)(nv + nt) * sizeof *neg);
    pairs_to_keys(neg, d.val_neg, nv, n);
    pairs_to_keys(neg + nv, d.test_neg, nt, n);
    for (int64_t k = 0; k < nv + nt; k++)
        assert_false(has_key(edges, m, neg[k]));
    qsort(neg, (size_t)(nv + nt), sizeof *neg, cmp_i64);
    for (int64_t k = 1; k < nv + nt; k++)
        assert_true(neg[k - 1] < neg[k]);

    /* adjacency: exactly the training edges (+ I) */
    int64_t *train = malloc((size_t)d.n_train_pos * sizeof *train);
    pairs_to_keys(train, d.train_pos, d.n_train_pos, n);
    qsort(train, (size_t)d.n_train_pos, sizeof *train, cmp_i64);
    check_adj(&d.adj, n);
    assert_int_equal(d.adj.nnz, n + 2 * d.n_train_pos);
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = d.adj.rowptr[i]; p < d.adj.rowptr[i + 1]; p++) {
            int64_t j = d.adj.col[p];
            if (j != i)
                assert_true(has_key(train, d.n_train_pos, i < j ? i * n + j : j * n + i));
        }
    /* reference pool excludes exactly the training edges */
    assert_int_equal(d.n_neg_excl, d.n_train_pos);
    assert_memory_equal(d.neg_excl, train, (size_t)d.n_train_pos * sizeof *train);

    /* same seed, same split; another seed, another one */
    hg_dataset e;
    load_ok(&e, &o);
    assert_memory_equal(d.val_pos, e.val_pos, (size_t)(2 * nv) * sizeof(int32_t));
    assert_memory_equal(d.test_neg, e.test_neg, (size_t)(2 * nt) * sizeof(int32_t));
    hg_dataset_destroy(&e);
    o.split_seed = 7;
    load_ok(&e, &o);
    assert_memory_not_equal(d.val_pos, e.val_pos, (size_t)(2 * nv) * sizeof(int32_t));
    hg_dataset_destroy(&e);

    free(train);
    free(neg);
    free(pos);
    free(edges);
    hg_dataset_destroy(&d);
}

static void test_lp_split(void **state)
{
    (void)state;
    check_lp("disease_lp"); /* 2664 edges: 133 / 266 / 2265 */
    check_lp("cora");       /* 5278 edges: 263 / 527 / 4488 */
}

static void test_sample_negatives_bundled(void **state)
{
    (void)state;
    char dir[4096];
    bundled_path(dir, sizeof dir, "cora");
    enum { COUNT = 200000 };
    int32_t *a = malloc(2 * COUNT * sizeof *a), *b = malloc(2 * COUNT * sizeof *b);
    for (int pool = 0; pool < 2; pool++) {
        hg_dataset_opts o = base_opts(dir, HG_TASK_LP);
        o.neg_pool = pool == 0 ? HG_NEG_POOL_REFERENCE : HG_NEG_POOL_NONEDGE;
        hg_dataset d;
        load_ok(&d, &o);
        int64_t n = d.n, m;
        int64_t *edges = read_edge_keys(dir, n, &m);
        int64_t *train = malloc((size_t)d.n_train_pos * sizeof *train);
        pairs_to_keys(train, d.train_pos, d.n_train_pos, n);
        qsort(train, (size_t)d.n_train_pos, sizeof *train, cmp_i64);
        hg_rng r;
        hg_rng_seed(&r, 42);
        hg_dataset_sample_negatives(&d, &r, a, COUNT);
        for (int64_t k = 0; k < COUNT; k++) {
            assert_true(a[2 * k] < a[2 * k + 1]); /* u < v: never (i, i) */
            assert_true(a[2 * k] >= 0 && a[2 * k + 1] < n);
            int64_t key = (int64_t)a[2 * k] * n + a[2 * k + 1];
            assert_false(has_key(train, d.n_train_pos, key));
            if (pool == 1)
                assert_false(has_key(edges, m, key));
        }
        hg_rng_seed(&r, 42);
        hg_dataset_sample_negatives(&d, &r, b, COUNT);
        assert_memory_equal(a, b, 2 * COUNT * sizeof *a);
        hg_rng_seed(&r, 43);
        hg_dataset_sample_negatives(&d, &r, b, COUNT);
        assert_memory_not_equal(a, b, 2 * COUNT * sizeof *a);
        free(train);
        free(edges);
        hg_dataset_destroy(&d);
    }
    free(a);
    free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* temporary datasets                                                                         */

static char tmpdir[4096];

static void write_file(const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
}

static const char *const tmp_files[] = {"labels.txt", "graph.edges", "features.mtx",
                                        "split.txt", "self_loops.txt"};

static int tmp_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/hgnn_test_datasets_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmp_teardown(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof tmp_files / sizeof tmp_files[0]; k++)
        remove_file(tmp_files[k]);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/cora", tmpdir);
    rmdir(sub);
    return rmdir(tmpdir);
}

/* A valid 4-node dataset; each malformed case then overwrites one file. */
#define GOOD_LABELS "0\n1\n0\n1\n"
#define GOOD_EDGES "0 1\n1 2\n2 3\n"
#define GOOD_MTX                                      \
    "%%MatrixMarket matrix coordinate real general\n" \
    "% a comment\n"                                   \
    "4 2 5\n"                                         \
    "1 1 1.0\n"                                       \
    "2 2 2.0\n"                                       \
    "3 1 0.5\n"                                       \
    "3 2 0.5\n"                                       \
    "4 1 3\n"

static void write_good(void)
{
    for (size_t k = 0; k < sizeof tmp_files / sizeof tmp_files[0]; k++)
        remove_file(tmp_files[k]);
    write_file("labels.txt", GOOD_LABELS);
    write_file("graph.edges", GOOD_EDGES);
    write_file("features.mtx", GOOD_MTX);
}

/* Load must fail with `status` and a message containing both strings. */
static void expect_fail_(const hg_dataset_opts *o, int status, const char *s1, const char *s2,
                         const char *file, int line)
{
    hg_dataset d;
    hg_error_clear();
    int rc = hg_dataset_load(&d, o);
    const char *msg = hg_last_error();
    if (rc != status || !strstr(msg, s1) || (s2 && !strstr(msg, s2)))
        fail_msg("%s:%d: want %s with '%s'%s%s, got %s: '%s'", file, line, hg_strerror(status), s1,
                 s2 ? " and " : "", s2 ? s2 : "", hg_strerror(rc), msg);
    /* the struct is left zeroed: destroy is a no-op */
    assert_null(d.labels);
    assert_null(d.feat.rowptr);
    assert_null(d.adj.rowptr);
    hg_dataset_destroy(&d);
}
#define expect_fail(o, status, s1, s2) expect_fail_((o), (status), (s1), (s2), __FILE__, __LINE__)

static void test_tiny_valid(void **state)
{
    (void)state;
    write_good();
    hg_dataset_opts o = base_opts(tmpdir, HG_TASK_NC);
    o.val_prop = 0.5;
    o.test_prop = 0.5;
    hg_dataset d;
    load_ok(&d, &o);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.nedges, 3);
    assert_int_equal(d.nfeat, 2);
    assert_int_equal(d.feat.nnz, 5);
    /* normalised rows: (1, 0), (0, 1), (0.5, 0.5), (1, 0) */
    const float want[5] = {1.0f, 1.0f, 0.5f, 0.5f, 1.0f};
    hg_assert_allclose_f(d.feat.val, want, 5, 0.0, 0.0, "normalised features");
    /* path 0-1-2-3: row 1 = {0, 1, 2} each 1/3 */
    assert_int_equal(d.adj.rowptr[2] - d.adj.rowptr[1], 3);
    check_adj(&d.adj, 4);
    /* 2 nodes per group: round(0.5 * 2) = 1 each to val and test, none left to train */
    assert_int_equal(d.n_val, 2);
    assert_int_equal(d.n_test, 2);
    assert_int_equal(d.n_train, 0);
    hg_dataset_destroy(&d);

    /* duplicates summed, unsorted entries, pattern field, reversed and repeated edges, a self-loop
     * line, a self_loops.txt and a split file */
    write_file("features.mtx", "%%MatrixMarket matrix coordinate pattern general\n4 3 4\n"
                               "4 3\n1 2\n1 2\n2 1\n");
    write_file("graph.edges", "1 0\n0 1\n\n2 1\n3 3\n2 3\n");
    write_file("self_loops.txt", "1\n");
    write_file("split.txt", "train\nval\ntest\nnone\n");
    o.normalize_feats = 0;
    o.split_file = "split.txt";
    load_ok(&d, &o);
    assert_int_equal(d.nedges, 3);
    assert_int_equal(d.feat.nnz, 3);
    assert_int_equal(d.feat.col[0], 1);
    assert_true(d.feat.val[0] == 2.0f); /* (1, 2) twice */
    assert_int_equal(d.feat.rowptr[3], 2);
    assert_int_equal(d.feat.col[2], 2);
    check_adj(&d.adj, 4);
    assert_true(fabs(adj_diag(&d.adj, 1) - 0.5) < 1e-7); /* (1 + 1) / (2 + 2) */
    assert_true(fabs(adj_diag(&d.adj, 3) - 2.0 / 3.0) < 1e-7); /* loop line '3 3' */
    assert_int_equal(d.n_train, 1);
    assert_int_equal(d.idx_train[0], 0);
    assert_int_equal(d.idx_val[0], 1);
    assert_int_equal(d.idx_test[0], 2);
    hg_dataset_destroy(&d);
}

/* A small LP graph (6-cycle): the two pools by exhaustive sampling. REFERENCE = the 15 pairs
 * minus the 4 training edges = 9 non-edges + 2 val/test positives; NONEDGE = the 9 non-edges.
 * Each pool pair is drawn with probability 1/|pool|. */
static void test_sample_negatives_pools(void **state)
{
    (void)state;
    write_good();
    write_file("labels.txt", "0\n0\n0\n0\n0\n0\n");
    write_file("graph.edges", "0 1\n1 2\n2 3\n3 4\n4 5\n0 5\n");
    remove_file("features.mtx");
    enum { N = 6, COUNT = 110000 };
    int32_t *s = malloc(2 * COUNT * sizeof *s);
    for (int pool = 0; pool < 2; pool++) {
        hg_dataset_opts o = base_opts(tmpdir, HG_TASK_LP);
        o.use_feats = 0;
        o.val_prop = 0.2; /* floor(1.2) = 1 */
        o.test_prop = 0.2;
        o.neg_pool = pool == 0 ? HG_NEG_POOL_REFERENCE : HG_NEG_POOL_NONEDGE;
        hg_dataset d;
        load_ok(&d, &o);
        assert_int_equal(d.n_val_pos, 1);
        assert_int_equal(d.n_test_pos, 1);
        assert_int_equal(d.n_train_pos, 4);
        int in_pool[N * N] = {0};
        for (int u = 0; u < N; u++)
            for (int v = u + 1; v < N; v++)
                in_pool[u * N + v] = 1;
        for (int64_t k = 0; k < 4; k++)
            in_pool[d.train_pos[2 * k] * N + d.train_pos[2 * k + 1]] = 0;
        if (pool == 1) {
            in_pool[d.val_pos[0] * N + d.val_pos[1]] = 0;
            in_pool[d.test_pos[0] * N + d.test_pos[1]] = 0;
        }
        int pool_size = 0;
        for (int k = 0; k < N * N; k++)
            pool_size += in_pool[k];
        assert_int_equal(pool_size, pool == 0 ? 11 : 9);
        hg_rng r;
        hg_rng_seed(&r, 5);
        hg_dataset_sample_negatives(&d, &r, s, COUNT);
        int64_t hist[N * N] = {0};
        for (int64_t k = 0; k < COUNT; k++) {
            assert_true(s[2 * k] < s[2 * k + 1]);
            hist[s[2 * k] * N + s[2 * k + 1]]++;
        }
        /* binomial(COUNT, 1/pool_size): 6 standard deviations */
        double mean = (double)COUNT / pool_size;
        double sd = sqrt(mean * (1.0 - 1.0 / pool_size));
        for (int k = 0; k < N * N; k++) {
            if (!in_pool[k])
                assert_int_equal(hist[k], 0);
            else if (!(fabs((double)hist[k] - mean) < 6.0 * sd))
                fail_msg("pair %d: %lld draws, expected %.0f +- %.0f", k, (long long)hist[k], mean,
                         sd);
        }
        hg_dataset_destroy(&d);
    }
    free(s);
}

/* ---------------------------------------------------------------------------------------- */
/* malformed inputs                                                                           */

static void test_bad_mtx(void **state)
{
    (void)state;
    hg_dataset_opts o = base_opts(tmpdir, HG_TASK_NC);

    write_good(); /* truncated: 5 declared, 3 present: the 4th is missing at line 7 */
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n% c\n4 2 5\n"
                               "1 1 1.0\n2 2 2.0\n3 1 0.5\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:7:", "truncated");

    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 2\n"
                               "1 1 1.0\n5 1 1.0\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:4:", "out of range");
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 2\n"
                               "1 1 1.0\n4 3 1.0\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:4:", "out of range");
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 2\n"
                               "1 1 1.0\n2 1 abc\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:4:", "non-numeric");
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 2\n"
                               "1 1 1.0\n2 1 nan\n");
    expect_fail(&o, HG_ENUMERIC, "features.mtx:4:", NULL);
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 2\n"
                               "1 1 1.0\n2 1 NaN\n");
    expect_fail(&o, HG_ENUMERIC, "features.mtx:4:", NULL);
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 2\n"
                               "1 1 -inf\n2 1 1.0\n");
    expect_fail(&o, HG_ENUMERIC, "features.mtx:3:", NULL);
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 2\n"
                               "1 1 1.0\n2 1 1e999\n");
    expect_fail(&o, HG_ENUMERIC, "features.mtx:4:", NULL);
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 2 1\n"
                               "1 1 1.0\n2 1 1.0\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:4:", "more entries");
    write_file("features.mtx", "%%MatrixMarket matrix array real general\n4 2\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:1:", "coordinate");
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real symmetric\n4 4 0\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:1:", "general");
    write_file("features.mtx", "4 2 0\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:1:", "MatrixMarket");
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n4 x 0\n");
    expect_fail(&o, HG_EFORMAT, "features.mtx:2:", "size line");
    /* rows != nodes: 5 rows for 4 labels */
    write_file("features.mtx", "%%MatrixMarket matrix coordinate real general\n5 2 0\n");
    expect_fail(&o, HG_EINVAL, "labels.txt:5:", "features.mtx:2");

    /* missing with use_feats 1; fine with use_feats 0 */
    remove_file("features.mtx");
    expect_fail(&o, HG_EIO, "features.mtx", "--use-feats 0");
    o.use_feats = 0;
    hg_dataset d;
    load_ok(&d, &o);
    hg_dataset_destroy(&d);
}

static void test_bad_labels(void **state)
{
    (void)state;
    hg_dataset_opts o = base_opts(tmpdir, HG_TASK_NC);

    write_good();
    write_file("labels.txt", "0\n1\n0\n"); /* 3 labels, features declare 4 rows */
    expect_fail(&o, HG_EINVAL, "labels.txt:4:", "too few");
    write_file("labels.txt", "0\n1\n0\n1\n1\n");
    expect_fail(&o, HG_EINVAL, "labels.txt:5:", "too many");
    write_file("labels.txt", "0\n1\nabc\n1\n");
    expect_fail(&o, HG_EFORMAT, "labels.txt:3:", "abc");
    write_file("labels.txt", "0\n1.5\n0\n1\n");
    expect_fail(&o, HG_EFORMAT, "labels.txt:2:", "1.5");
    write_file("labels.txt", "0\n1\n\n1\n");
    expect_fail(&o, HG_EFORMAT, "labels.txt:3:", "empty");
    write_file("labels.txt", "0\n1\n-2\n1\n");
    expect_fail(&o, HG_EFORMAT, "labels.txt:3:", "out of range");
    write_file("labels.txt", "");
    expect_fail(&o, HG_EINVAL, "labels.txt:1:", "zero nodes");
    /* too short without features: the edge list names the missing node */
    o.use_feats = 0;
    write_file("labels.txt", "0\n1\n0\n");
    expect_fail(&o, HG_EINVAL, "graph.edges:3:", "labels.txt");
    remove_file("labels.txt");
    expect_fail(&o, HG_EIO, "labels.txt", NULL);
}

static void test_bad_edges(void **state)
{
    (void)state;
    hg_dataset_opts o = base_opts(tmpdir, HG_TASK_NC);

    write_good();
    write_file("graph.edges", "0 1\n1 7\n");
    expect_fail(&o, HG_EINVAL, "graph.edges:2:", "out of range");
    write_file("graph.edges", "0 1\n-1 2\n");
    expect_fail(&o, HG_EINVAL, "graph.edges:2:", "out of range");
    write_file("graph.edges", "0 1\n1 x\n");
    expect_fail(&o, HG_EFORMAT, "graph.edges:2:", NULL);
    write_file("graph.edges", "0 1\n1 2 3\n");
    expect_fail(&o, HG_EFORMAT, "graph.edges:2:", NULL);
    write_file("graph.edges", "0 1\n99999999999999999999 2\n");
    expect_fail(&o, HG_EFORMAT, "graph.edges:2:", NULL);
    write_file("graph.edges", "");
    expect_fail(&o, HG_EINVAL, "graph.edges:1:", "empty graph");
    write_file("graph.edges", "2 2\n");
    expect_fail(&o, HG_EINVAL, "graph.edges:1:", "empty graph");
    write_good();
    write_file("self_loops.txt", "1\n9\n");
    expect_fail(&o, HG_EINVAL, "self_loops.txt:2:", NULL);
    remove_file("self_loops.txt");
    remove_file("graph.edges");
    expect_fail(&o, HG_EIO, "graph.edges", NULL);
}

static void test_bad_split_and_opts(void **state)
{
    (void)state;
    hg_dataset_opts o = base_opts(tmpdir, HG_TASK_NC);
    o.split_file = "split.txt";

    write_good();
    write_file("split.txt", "train\nvalid\ntest\nnone\n");
    expect_fail(&o, HG_EFORMAT, "split.txt:2:", "valid");
    write_file("split.txt", "train\nval\ntest\n");
    expect_fail(&o, HG_EINVAL, "split.txt:4:", "too few");
    write_file("split.txt", "train\nval\ntest\nnone\nnone\n");
    expect_fail(&o, HG_EINVAL, "split.txt:5:", "too many");
    remove_file("split.txt");

    o.val_prop = 0.7;
    o.test_prop = 0.7;
    expect_fail(&o, HG_EINVAL, "proportions", NULL);
    o = base_opts(tmpdir, HG_TASK_LP);
    o.val_prop = 0.5;
    o.test_prop = 0.5; /* 3 edges: floor(1.5) = 1 each, train 1: fine */
    hg_dataset d;
    load_ok(&d, &o);
    hg_dataset_destroy(&d);
    o.val_prop = 1.0; /* all 3 edges to val */
    o.test_prop = 0.0;
    expect_fail(&o, HG_EINVAL, "no training edges", NULL);
    o = base_opts("/nonexistent/hgnn/dir", HG_TASK_NC);
    expect_fail(&o, HG_EIO, "/nonexistent/hgnn/dir", NULL);
}

static void test_bundled_dir(void **state)
{
    (void)state;
    char buf[4096];
    int rc = hg_dataset_bundled_dir(buf, sizeof buf, "x");
    assert_int_equal(rc, HG_EINVAL);
    assert_non_null(strstr(hg_last_error(), "unknown dataset 'x'"));
    assert_non_null(strstr(hg_last_error(), "cora, pubmed, disease_nc, disease_lp, airport"));

    unsetenv("HGNN_DATA_DIR");
    const char *names[5] = {"cora", "pubmed", "disease_nc", "disease_lp", "airport"};
    for (int k = 0; k < 5; k++) {
        rc = hg_dataset_bundled_dir(buf, sizeof buf, names[k]);
        assert_int_equal(rc, HG_OK);
        char want[4096];
        bundled_path(want, sizeof want, names[k]);
        assert_string_equal(buf, want);
    }
    /* $HGNN_DATA_DIR comes first when it holds the dataset */
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/cora", tmpdir);
    assert_int_equal(mkdir(sub, 0700), 0);
    setenv("HGNN_DATA_DIR", tmpdir, 1);
    rc = hg_dataset_bundled_dir(buf, sizeof buf, "cora");
    assert_int_equal(rc, HG_OK);
    assert_string_equal(buf, sub);
    rc = hg_dataset_bundled_dir(buf, sizeof buf, "airport"); /* not there: falls through */
    assert_int_equal(rc, HG_OK);
    assert_non_null(strstr(buf, "/airport"));
    assert_null(strstr(buf, tmpdir));
    unsetenv("HGNN_DATA_DIR");
    rmdir(sub);
    rc = hg_dataset_bundled_dir(buf, 8, "cora");
    assert_int_equal(rc, HG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest bundled[] = {
        cmocka_unit_test(test_cora_counts),
        cmocka_unit_test(test_pubmed_counts),
        cmocka_unit_test(test_disease_counts),
        cmocka_unit_test(test_airport_counts_augment),
        cmocka_unit_test(test_use_feats0_identity),
        cmocka_unit_test(test_nc_random_split),
        cmocka_unit_test(test_lp_split),
        cmocka_unit_test(test_sample_negatives_bundled),
    };
    const struct CMUnitTest tmp[] = {
        cmocka_unit_test(test_tiny_valid),
        cmocka_unit_test(test_sample_negatives_pools),
        cmocka_unit_test(test_bad_mtx),
        cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_bad_edges),
        cmocka_unit_test(test_bad_split_and_opts),
        cmocka_unit_test(test_bundled_dir),
    };
    int failed = cmocka_run_group_tests_name("datasets_bundled", bundled, NULL, NULL);
    failed += cmocka_run_group_tests_name("datasets_malformed", tmp, tmp_setup, tmp_teardown);
    return failed ? 1 : 0;
}
