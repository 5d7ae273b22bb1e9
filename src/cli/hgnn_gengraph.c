/* hgnn_gengraph.c - the hgnn-gengraph program: writes a synthetic dataset directory (the layout
 * datasets/dataset.h reads: graph.edges, labels.txt, features.mtx, README.md) for benchmarks of
 * how the training cost grows with nodes and edges (scripts/bench_gpu.py).
 *
 * Contract:
 * - graph: igraph, seeded with --seed. `er`: G(n, m) Erdos-Renyi with m = round(n * D / 2)
 *   undirected edges, no loops, no multi-edges. `ba`: Barabasi-Albert preferential attachment
 *   (power 1, psumtree: no loops or multi-edges), each new node attaching D/2 edges (D must be
 *   an even integer), so m = (n - D/2) * D/2 + (edges among the first nodes), average degree
 *   about D with a power-law tail.
 * - labels (C classes): `ball` (default) grows C balls at once, level by level, by breadth-first
 *   search from C distinct seed nodes drawn uniformly; each level's frontier is expanded in a
 *   seeded random order (so that no ball wins every tie) and a node takes the class of the first
 *   frontier node that reaches it. Classes are connected regions of the graph and neighbours
 *   tend to share a class. Nodes no ball reaches (another connected component) and every node
 *   with `random` get a uniform class.
 * - features: F binary columns, exactly K distinct non-zeros (value 1) per node. Each non-zero
 *   is, with probability P (--feature-signal), a column of the node's class block (columns j
 *   with j mod C == class), otherwise a uniform column; repeats are redrawn uniformly. P = 0
 *   gives features independent of the labels.
 * - every random choice comes from --seed (igraph's generator for the graph, hg_rng streams for
 *   the rest): the same options write byte-identical files.
 * - graph.edges is sorted, u < v; features.mtx is sorted by (row, col), 1-based. Each file is
 *   written to FILE.tmp and renamed; README.md (parameters and counts) is written last, so a
 *   directory with README.md is complete.
 *
 * Exit codes: 0 success, 2 bad options or an --out directory that cannot be created (one line on
 * stderr), 3 failure while generating or writing (one line on stderr). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <igraph.h>

#include "hg_config.h"
#include "../hg.h"
#include "../io.h"
#include "../rng.h"
#include "args.h"

enum { EXIT_INPUT = 2, EXIT_RUN = 3 };
enum { MODEL_ER = 0, MODEL_BA = 1 };
enum { LABELS_BALL = 0, LABELS_RANDOM = 1 };

/* Largest node count: labels.txt lines are limited to INT32_MAX by the loader; a generous
 * practical bound keeps m * 8 bytes of edge keys addressable everywhere. */
#define GEN_MAX_NODES 100000000LL

typedef struct gen_opts {
    const char *out;
    int64_t nodes;
    double avg_degree;
    int model;
    int64_t features, feat_nnz;
    double signal;
    int64_t classes;
    int labels;
    uint64_t seed;
    int quiet;
} gen_opts;

static void usage(void)
{
    printf(
        "usage: hgnn-gengraph --out DIR [options]\n"
        "\n"
        "Writes a synthetic dataset (graph.edges, labels.txt, features.mtx, README.md) that\n"
        "hgnn-train reads with --data-dir DIR (node classification uses a seeded random split).\n"
        "\n"
        "  --out DIR              output directory (created with its parents)\n"
        "  --nodes N              nodes (10000)\n"
        "  --avg-degree D         average degree (10): er draws m = round(N * D / 2) edges;\n"
        "                         ba attaches D/2 edges per new node (D an even integer)\n"
        "  --model er|ba          igraph Erdos-Renyi G(n, m) or Barabasi-Albert (er)\n"
        "  --features F           binary feature columns (100)\n"
        "  --feat-nnz K           non-zeros per node, distinct columns (5)\n"
        "  --feature-signal P     probability that a non-zero is drawn from the node's class\n"
        "                         block (columns j with j mod C == class) (0.5)\n"
        "  --classes C            classes (5)\n"
        "  --labels ball|random   ball: C breadth-first balls grown at once from random seeds\n"
        "                         (classes follow the graph); random: uniform classes (ball)\n"
        "  --seed S               seed of every random choice (1)\n"
        "  --quiet                no summary line\n"
        "  --help\n");
}

/* One option of hgnn-gengraph (hg_arg_program.option). */
static int gen_option(void *ctx, const char *key, const char *val)
{
    gen_opts *o = ctx;
    int64_t seed = 0;
    int rc = HG_OK;
#define IS(name) (!strcmp(key, name))
    if (IS("--out"))
        o->out = val;
    else if (IS("--nodes"))
        rc = hg_arg_i64(key, val, 2, GEN_MAX_NODES, &o->nodes);
    else if (IS("--avg-degree"))
        rc = hg_arg_double(key, val, 1e-9, 1e6, &o->avg_degree);
    else if (IS("--model"))
        rc = hg_arg_choice(key, val, "a model", (const char *const[]){"er", "ba", NULL},
                           &o->model);
    else if (IS("--features"))
        rc = hg_arg_i64(key, val, 1, 1 << 24, &o->features);
    else if (IS("--feat-nnz"))
        rc = hg_arg_i64(key, val, 0, 1 << 24, &o->feat_nnz);
    else if (IS("--feature-signal"))
        rc = hg_arg_double(key, val, 0.0, 1.0, &o->signal);
    else if (IS("--classes"))
        rc = hg_arg_i64(key, val, 1, 65536, &o->classes);
    else if (IS("--labels"))
        rc = hg_arg_choice(key, val, "a label rule", (const char *const[]){"ball", "random", NULL},
                           &o->labels);
    else if (IS("--seed")) {
        rc = hg_arg_i64(key, val, 0, INT64_MAX, &seed);
        o->seed = (uint64_t)seed;
    } else
        return hg_arg_unknown(key);
#undef IS
    return rc;
}

/* Returns HG_OK, HG_EINVAL (message recorded) or HG_ARG_DONE for --help (printed). */
static int parse_options(gen_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->nodes = 10000;
    o->avg_degree = 10.0;
    o->model = MODEL_ER;
    o->features = 100;
    o->feat_nnz = 5;
    o->signal = 0.5;
    o->classes = 5;
    o->labels = LABELS_BALL;
    o->seed = 1;
    const hg_arg_program prog = {usage, NULL, &o->quiet, NULL, gen_option, o};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc != HG_OK)
        return rc;
    if (!o->out || !o->out[0])
        return HG_ERRORF(HG_EINVAL, "no output: give --out DIR (see --help)");
    if (o->feat_nnz > o->features)
        return HG_ERRORF(HG_EINVAL, "option --feat-nnz %lld: more non-zeros per node than the "
                         "%lld feature columns", (long long)o->feat_nnz, (long long)o->features);
    if (o->classes > o->nodes)
        return HG_ERRORF(HG_EINVAL, "option --classes %lld: more classes than the %lld nodes",
                         (long long)o->classes, (long long)o->nodes);
    double max_deg = (double)(o->nodes - 1);
    if (o->model == MODEL_ER && o->avg_degree > max_deg)
        return HG_ERRORF(HG_EINVAL, "option --avg-degree %g: more than n - 1 = %lld (a simple "
                         "graph)", o->avg_degree, (long long)o->nodes - 1);
    if (o->model == MODEL_ER && llround(o->nodes * o->avg_degree / 2.0) < 1)
        return HG_ERRORF(HG_EINVAL, "option --avg-degree %g: no edge at %lld nodes", o->avg_degree,
                         (long long)o->nodes);
    if (o->model == MODEL_BA) {
        double h = o->avg_degree / 2.0;
        if (h != floor(h) || h < 1)
            return HG_ERRORF(HG_EINVAL, "option --avg-degree %g: the ba model needs an even integer "
                             ">= 2 (D/2 edges per new node)", o->avg_degree);
        if (h >= (double)o->nodes)
            return HG_ERRORF(HG_EINVAL, "option --avg-degree %g: the ba model needs D/2 < n = %lld",
                             o->avg_degree, (long long)o->nodes);
    }
    return HG_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The graph as sorted unique keys u * n + v, u < v. */
static int make_graph(const gen_opts *o, int64_t **keys_out, int64_t *m_out)
{
    int rc = HG_OK;
    igraph_t g;
    igraph_vector_int_t el;
    int g_ok = 0, el_ok = 0;
    int64_t *keys = NULL, n = o->nodes;
    igraph_error_t ig;

    igraph_rng_seed(igraph_rng_default(), (igraph_uint_t)o->seed);
    if (o->model == MODEL_ER)
        ig = igraph_erdos_renyi_game_gnm(&g, (igraph_integer_t)n,
                                         (igraph_integer_t)llround(n * o->avg_degree / 2.0),
                                         IGRAPH_UNDIRECTED, IGRAPH_NO_LOOPS);
    else
        ig = igraph_barabasi_game(&g, (igraph_integer_t)n, 1.0,
                                  (igraph_integer_t)(o->avg_degree / 2.0), NULL, 0, 1.0,
                                  IGRAPH_UNDIRECTED, IGRAPH_BARABASI_PSUMTREE, NULL);
    if (ig != IGRAPH_SUCCESS) {
        rc = HG_ERRORF(HG_EIGRAPH, "igraph: %s", igraph_strerror(ig));
        goto done;
    }
    g_ok = 1;
    if ((ig = igraph_vector_int_init(&el, 0)) != IGRAPH_SUCCESS ||
        (el_ok = 1, ig = igraph_get_edgelist(&g, &el, 0)) != IGRAPH_SUCCESS) {
        rc = HG_ERRORF(HG_EIGRAPH, "igraph: %s", igraph_strerror(ig));
        goto done;
    }
    int64_t ne = (int64_t)igraph_ecount(&g), m = 0;
    keys = hg_calloc((size_t)HG_MAX(ne, 1), sizeof *keys, "edge keys");
    if (!keys) {
        rc = HG_ENOMEM;
        goto done;
    }
    for (int64_t e = 0; e < ne; e++) {
        int64_t u = VECTOR(el)[2 * e], v = VECTOR(el)[2 * e + 1];
        if (u != v)
            keys[m++] = u < v ? u * n + v : v * n + u;
    }
    qsort(keys, (size_t)m, sizeof *keys, cmp_i64);
    int64_t uniq = 0;
    for (int64_t k = 0; k < m; k++)
        if (uniq == 0 || keys[uniq - 1] != keys[k])
            keys[uniq++] = keys[k];
    *keys_out = keys;
    keys = NULL;
    *m_out = uniq;
done:
    free(keys);
    if (el_ok)
        igraph_vector_int_destroy(&el);
    if (g_ok)
        igraph_destroy(&g);
    return rc;
}

/* Labels by C simultaneous breadth-first balls (see the contract above), or uniform. */
static int make_labels(const gen_opts *o, const int64_t *keys, int64_t m, int32_t *lab)
{
    int64_t n = o->nodes, C = o->classes;
    hg_rng rng;
    hg_rng_seed(&rng, hg_rng_derive(o->seed, 1));
    for (int64_t i = 0; i < n; i++)
        lab[i] = -1;
    if (o->labels == LABELS_BALL) {
        int64_t *rowptr = hg_calloc((size_t)n + 1, sizeof *rowptr, "adjacency rows");
        int32_t *adj = hg_calloc((size_t)HG_MAX(2 * m, 1), sizeof *adj, "adjacency");
        int64_t *queue = hg_calloc((size_t)n, sizeof *queue, "bfs queue");
        if (!rowptr || !adj || !queue) {
            free(rowptr);
            free(adj);
            free(queue);
            return HG_ENOMEM;
        }
        for (int64_t e = 0; e < m; e++) {
            rowptr[keys[e] / n + 1]++;
            rowptr[keys[e] % n + 1]++;
        }
        for (int64_t i = 0; i < n; i++)
            rowptr[i + 1] += rowptr[i];
        /* neighbour lists in key order (a fixed order: the search is deterministic) */
        int64_t *fill = queue; /* borrowed as the fill cursor before the search */
        memcpy(fill, rowptr, (size_t)n * sizeof *fill);
        for (int64_t e = 0; e < m; e++) {
            int64_t u = keys[e] / n, v = keys[e] % n;
            adj[fill[u]++] = (int32_t)v;
        }
        for (int64_t e = 0; e < m; e++) {
            int64_t u = keys[e] / n, v = keys[e] % n;
            adj[fill[v]++] = (int32_t)u;
        }
        int64_t head = 0, tail = 0;
        for (int64_t c = 0; c < C; c++) {
            int64_t s;
            do
                s = (int64_t)hg_rng_below(&rng, (uint64_t)n);
            while (lab[s] >= 0);
            lab[s] = (int32_t)c;
            queue[tail++] = s;
        }
        while (head < tail) { /* one level: its frontier in a seeded random order */
            int64_t end = tail;
            hg_rng_shuffle_i64(&rng, queue + head, end - head);
            for (; head < end; head++) {
                int64_t u = queue[head];
                for (int64_t p = rowptr[u]; p < rowptr[u + 1]; p++)
                    if (lab[adj[p]] < 0) {
                        lab[adj[p]] = lab[u];
                        queue[tail++] = adj[p];
                    }
            }
        }
        free(rowptr);
        free(adj);
        free(queue);
    }
    for (int64_t i = 0; i < n; i++)
        if (lab[i] < 0)
            lab[i] = (int32_t)hg_rng_below(&rng, (uint64_t)C);
    return HG_OK;
}

/* cols[K] for node i of class c: distinct, sorted. */
static void node_features(const gen_opts *o, hg_rng *rng, int32_t c, int32_t *cols)
{
    int64_t F = o->features, K = o->feat_nnz, C = o->classes;
    int64_t block = c < F ? (F - c + C - 1) / C : 0; /* columns c, c + C, c + 2C, ... < F */
    for (int64_t k = 0; k < K; k++) {
        int64_t j;
        if (block > 0 && hg_rng_uniform(rng) < o->signal)
            j = c + C * (int64_t)hg_rng_below(rng, (uint64_t)block);
        else
            j = (int64_t)hg_rng_below(rng, (uint64_t)F);
        for (;;) {
            int dup = 0;
            for (int64_t q = 0; q < k; q++)
                dup |= cols[q] == j;
            if (!dup)
                break;
            j = (int64_t)hg_rng_below(rng, (uint64_t)F);
        }
        cols[k] = (int32_t)j;
    }
    qsort(cols, (size_t)K, sizeof *cols, cmp_i32);
}

/* ---- files: PATH.tmp, then renamed ---- */

typedef struct out_file {
    char path[4200], tmp[4210];
    FILE *f;
} out_file;

static int out_open(out_file *of, const char *dir, const char *name)
{
    snprintf(of->path, sizeof of->path, "%s/%s", dir, name);
    snprintf(of->tmp, sizeof of->tmp, "%s.tmp", of->path);
    of->f = fopen(of->tmp, "w");
    if (!of->f)
        return HG_ERRORF(HG_EIO, "%s: %s", of->tmp, strerror(errno));
    setvbuf(of->f, NULL, _IOFBF, 1 << 20);
    return HG_OK;
}

static int out_close(out_file *of)
{
    int bad_write = ferror(of->f);
    if (fclose(of->f) != 0 || bad_write) {
        remove(of->tmp);
        return HG_ERRORF(HG_EIO, "%s: write failed: %s", of->tmp, strerror(errno));
    }
    if (rename(of->tmp, of->path) != 0) {
        int e = errno;
        remove(of->tmp);
        return HG_ERRORF(HG_EIO, "%s: rename failed: %s", of->path, strerror(e));
    }
    return HG_OK;
}

/* Decimal digits of v >= 0 into buf (no NUL); returns the length. Faster than fprintf for the
 * tens of millions of numbers a large graph has. */
static int put_u64(char *buf, uint64_t v)
{
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = t[n - 1 - i];
    return n;
}

static void put_pair(FILE *f, uint64_t a, uint64_t b, const char *tail)
{
    char buf[64];
    int len = put_u64(buf, a);
    buf[len++] = ' ';
    len += put_u64(buf + len, b);
    for (const char *t = tail; *t; t++)
        buf[len++] = *t;
    fwrite(buf, 1, (size_t)len, f);
}

static int write_edges(const gen_opts *o, const int64_t *keys, int64_t m)
{
    out_file of;
    int rc = out_open(&of, o->out, "graph.edges");
    if (rc)
        return rc;
    for (int64_t e = 0; e < m; e++)
        put_pair(of.f, (uint64_t)(keys[e] / o->nodes), (uint64_t)(keys[e] % o->nodes), "\n");
    return out_close(&of);
}

static int write_labels(const gen_opts *o, const int32_t *lab)
{
    out_file of;
    int rc = out_open(&of, o->out, "labels.txt");
    if (rc)
        return rc;
    for (int64_t i = 0; i < o->nodes; i++)
        fprintf(of.f, "%d\n", lab[i]);
    return out_close(&of);
}

static int write_features(const gen_opts *o, const int32_t *lab, int64_t *nnz_out)
{
    out_file of;
    int rc = out_open(&of, o->out, "features.mtx");
    if (rc)
        return rc;
    int32_t *cols = hg_calloc((size_t)HG_MAX(o->feat_nnz, 1), sizeof *cols, "feature columns");
    if (!cols) {
        fclose(of.f);
        remove(of.tmp);
        return HG_ENOMEM;
    }
    hg_rng rng;
    hg_rng_seed(&rng, hg_rng_derive(o->seed, 2));
    int64_t nnz = o->nodes * o->feat_nnz;
    fprintf(of.f, "%%%%MatrixMarket matrix coordinate real general\n");
    fprintf(of.f, "%% hgnn-gengraph: %lld binary features per node, class signal %g\n",
            (long long)o->feat_nnz, o->signal);
    fprintf(of.f, "%lld %lld %lld\n", (long long)o->nodes, (long long)o->features,
            (long long)nnz);
    for (int64_t i = 0; i < o->nodes; i++) {
        node_features(o, &rng, lab[i], cols);
        for (int64_t k = 0; k < o->feat_nnz; k++)
            put_pair(of.f, (uint64_t)i + 1, (uint64_t)cols[k] + 1, " 1\n");
    }
    free(cols);
    *nnz_out = nnz;
    return out_close(&of);
}

static int write_readme(const gen_opts *o, int64_t m, int64_t feat_nnz, const int32_t *lab,
                        int argc, char **argv)
{
    int64_t *hist = hg_calloc((size_t)o->classes, sizeof *hist, "class histogram");
    if (!hist)
        return HG_ENOMEM;
    for (int64_t i = 0; i < o->nodes; i++)
        hist[lab[i]]++;
    out_file of;
    int rc = out_open(&of, o->out, "README.md");
    if (rc) {
        free(hist);
        return rc;
    }
    FILE *f = of.f;
    fprintf(f, "# synthetic graph (hgnn-gengraph %s)\n\n", HG_VERSION);
    fprintf(f, "Generated by:");
    for (int i = 0; i < argc; i++)
        fprintf(f, " %s", argv[i]);
    fprintf(f, "\n\n");
    if (o->model == MODEL_ER)
        fprintf(f, "- graph: igraph Erdos-Renyi G(n, m), m = round(n * %g / 2), no loops or "
                "multi-edges\n", o->avg_degree);
    else
        fprintf(f, "- graph: igraph Barabasi-Albert (power 1, psumtree), %lld edges per new node\n",
                (long long)(o->avg_degree / 2.0));
    if (o->labels == LABELS_BALL)
        fprintf(f, "- labels: %lld breadth-first balls grown at once from uniform seed nodes, "
                "each level's frontier in a random order (unreached nodes: uniform class)\n",
                (long long)o->classes);
    else
        fprintf(f, "- labels: uniform over %lld classes\n", (long long)o->classes);
    fprintf(f, "- features: %lld binary columns, %lld distinct non-zeros per node, each from the "
            "node's class block (columns j mod %lld == class) with probability %g\n",
            (long long)o->features, (long long)o->feat_nnz, (long long)o->classes, o->signal);
    fprintf(f, "- no split file: hgnn-train --task nc uses its seeded random split\n\n");
    fprintf(f, "| quantity | value |\n| --- | --- |\n");
    fprintf(f, "| nodes | %lld |\n", (long long)o->nodes);
    fprintf(f, "| undirected_edges | %lld |\n", (long long)m);
    fprintf(f, "| average_degree | %.4f |\n", 2.0 * (double)m / (double)o->nodes);
    fprintf(f, "| feature_dims | %lld |\n", (long long)o->features);
    fprintf(f, "| feature_nnz | %lld |\n", (long long)feat_nnz);
    fprintf(f, "| classes | %lld |\n", (long long)o->classes);
    fprintf(f, "| class_histogram | [");
    for (int64_t c = 0; c < o->classes; c++)
        fprintf(f, "%s%lld", c ? ", " : "", (long long)hist[c]);
    fprintf(f, "] |\n");
    fprintf(f, "| seed | %llu |\n", (unsigned long long)o->seed);
    free(hist);
    return out_close(&of);
}

int main(int argc, char **argv)
{
    gen_opts o;
    int rc = parse_options(&o, argc, argv);
    if (rc == HG_ARG_DONE) /* --help */
        return 0;
    if (rc) {
        fprintf(stderr, "hgnn-gengraph: %s\n", hg_last_error());
        return EXIT_INPUT;
    }
    int64_t *keys = NULL, m = 0, feat_nnz = 0;
    int32_t *lab = NULL;
    double t0 = hg_now();
    if ((rc = hg_mkdir_p(o.out))) { /* an unusable --out is a bad option */
        fprintf(stderr, "hgnn-gengraph: %s\n", hg_last_error());
        return EXIT_INPUT;
    }
    if ((rc = make_graph(&o, &keys, &m)))
        goto fail;
    lab = hg_calloc((size_t)o.nodes, sizeof *lab, "labels");
    if (!lab) {
        rc = HG_ENOMEM;
        goto fail;
    }
    if ((rc = make_labels(&o, keys, m, lab)) || (rc = write_edges(&o, keys, m)) ||
        (rc = write_labels(&o, lab)) || (rc = write_features(&o, lab, &feat_nnz)) ||
        (rc = write_readme(&o, m, feat_nnz, lab, argc, argv)))
        goto fail;
    if (!o.quiet)
        printf("hgnn-gengraph: %s | %s, %lld nodes, %lld edges, %lld features (%lld non-zeros), "
               "%lld classes | %.2f s\n", o.out, o.model == MODEL_ER ? "er" : "ba",
               (long long)o.nodes, (long long)m, (long long)o.features, (long long)feat_nnz,
               (long long)o.classes, hg_now() - t0);
    free(keys);
    free(lab);
    return 0;
fail:
    fprintf(stderr, "hgnn-gengraph: %s\n", hg_last_error()[0] ? hg_last_error() : hg_strerror(rc));
    free(keys);
    free(lab);
    return EXIT_RUN;
}
