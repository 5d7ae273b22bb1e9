/* dataset.c - graph datasets: parsing, node and edge splits, negative pools and the normalised
 * adjacency (ARCHITECTURE.md section 2; HGCN's utils/data_utils.py is the reference loader).
 *
 * Order of work in hg_dataset_load: labels.txt (fixes n) -> features.mtx (or identity) ->
 * self_loops.txt -> graph.edges (validated line by line, then read by igraph) -> split ->
 * adjacency -> feature normalisation and augmentation. Every step owns its temporaries and frees
 * them on every path; the dataset itself is destroyed by the caller-facing loader on failure. */
#include "dataset.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <igraph.h>

#include "hg_config.h"
#include "../src/hg.h"

/* Airport's degree one-hot is clipped here (HGCN augment: deg[deg > 5] = 5), giving 6 columns. */
#define HG_DATASET_DEG_CLIP 5
/* Columns appended by augment_degree: the one-hot (DEG_CLIP + 1) and a constant 1. */
#define HG_DATASET_AUG_COLS (HG_DATASET_DEG_CLIP + 2)
/* Most tokens any line of our formats may hold; more means a malformed line. */
#define MAX_TOKENS 4
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

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int open_read(FILE **f, const char *path)
{
    *f = fopen(path, "r");
    if (!*f)
        return HG_ERRORF(HG_EIO, "%s: cannot open: %s", path, strerror(errno));
    return HG_OK;
}

/* Read the next line (without its line terminator and trailing blanks) into *buf; returns its
 * length, or -1 at the end of the file. Counts lines in *lineno. */
static ssize_t next_line(FILE *f, char **buf, size_t *cap, int64_t *lineno)
{
    ssize_t len = getline(buf, cap, f);
    if (len < 0)
        return -1;
    (*lineno)++;
    while (len > 0 && ((*buf)[len - 1] == '\n' || (*buf)[len - 1] == '\r' ||
                       (*buf)[len - 1] == ' ' || (*buf)[len - 1] == '\t'))
        (*buf)[--len] = '\0';
    return len;
}

static int read_error(FILE *f, const char *path)
{
    if (ferror(f))
        return HG_ERRORF(HG_EIO, "%s: read error: %s", path, strerror(errno));
    return HG_OK;
}

/* Split s in place at blanks; stores up to MAX_TOKENS tokens and returns how many there were. */
static int split_ws(char *s, char **tok)
{
    int count = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, " \t\r\v\f", &save); t; t = strtok_r(NULL, " \t\r\v\f", &save)) {
        if (count < MAX_TOKENS)
            tok[count] = t;
        count++;
    }
    return count;
}

/* Whole-token base-10 integer. Returns 0 on success. */
static int parse_i64(const char *tok, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(tok, &end, 10);
    if (end == tok || *end != '\0' || errno == ERANGE)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Whole-token real number (may be NaN or infinite: the caller decides). Returns 0 on success. */
static int parse_f64(const char *tok, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(tok, &end);
    if (end == tok || *end != '\0')
        return -1;
    *out = v; /* ERANGE: overflow gives +-HUGE_VAL (rejected as non-finite), underflow ~0 */
    return 0;
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

static int bsearch_i64(const int64_t *a, int64_t n, int64_t key)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == key;
}

/* Key of the unordered pair {u, v}, u < v. */
static int64_t pair_key(int64_t u, int64_t v, int64_t n) { return u < v ? u * n + v : v * n + u; }

static void key_to_pair(int64_t key, int64_t n, int32_t *out)
{
    out[0] = (int32_t)(key / n);
    out[1] = (int32_t)(key % n);
}

/* ------------------------------------------------------------------------------------------ */
/* labels.txt                                                                                   */

static int read_labels(hg_dataset *d, const char *path)
{
    int rc = HG_OK;
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0, n = 0, alloc = 0;
    int32_t *lab = NULL, maxlab = -1;
    ssize_t len;

    HG_CHECK(open_read(&f, path));
    while ((len = next_line(f, &line, &cap, &lineno)) >= 0) {
        char *tok[MAX_TOKENS];
        int ntok = split_ws(line, tok);
        int64_t v;
        if (ntok == 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: empty line, expected an integer label", path,
                           (long long)lineno);
            goto done;
        }
        if (ntok != 1 || parse_i64(tok[0], &v) != 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected one integer label, got '%s'", path,
                           (long long)lineno, tok[0]);
            goto done;
        }
        if (v < -1 || v >= HG_DATASET_MAX_CLASSES) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: label %lld out of range (-1 = unlabelled, else "
                           "a class in [0, %d))", path, (long long)lineno, (long long)v,
                           HG_DATASET_MAX_CLASSES);
            goto done;
        }
        if (n == alloc) {
            int64_t na = alloc ? 2 * alloc : 4096;
            int32_t *p = realloc(lab, (size_t)na * sizeof *lab);
            if (!p) {
                rc = HG_ERRORF(HG_ENOMEM, "%s: out of memory for labels", path);
                goto done;
            }
            lab = p;
            alloc = na;
        }
        lab[n++] = (int32_t)v;
        if (v > maxlab)
            maxlab = (int32_t)v;
        if (n > INT32_MAX) {
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: more than %d nodes are not supported", path,
                           (long long)lineno, INT32_MAX);
            goto done;
        }
    }
    HG_CHECK(read_error(f, path));
    if (n == 0) {
        rc = HG_ERRORF(HG_EINVAL, "%s:1: no labels: the graph has zero nodes (one line per node)",
                       path);
        goto done;
    }
    d->labels = lab;
    lab = NULL;
    d->n = n;
    d->nclasses = maxlab + 1;
done:
    free(lab);
    free(line);
    if (f)
        fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* features.mtx                                                                                 */

typedef struct {
    int64_t row;
    int32_t col;
    double val;
} coo_entry;

static int cmp_coo(const void *a, const void *b)
{
    const coo_entry *x = a, *y = b;
    if (x->row != y->row)
        return (x->row > y->row) - (x->row < y->row);
    return (x->col > y->col) - (x->col < y->col);
}

/* Matrix Market coordinate real/integer/pattern general -> CSR with sorted columns and
 * duplicates summed. rows must equal n (the label count): a mismatch names both files. */
static int read_mtx(hg_csr *out, const char *path, int64_t n, const char *labels_path)
{
    int rc = HG_OK;
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0, size_line = 0, rows = 0, cols = 0, nnz = 0, got = 0, alloc = 0;
    coo_entry *e = NULL;
    int pattern = 0;
    ssize_t len;
    char *tok[MAX_TOKENS];

    HG_CHECK(open_read(&f, path));
    /* header */
    if ((len = next_line(f, &line, &cap, &lineno)) < 0) {
        HG_CHECK(read_error(f, path));
        rc = HG_ERRORF(HG_EFORMAT, "%s:1: empty file, expected a %%%%MatrixMarket header", path);
        goto done;
    }
    {
        char magic[32], obj[32], fmt[32], field[32], sym[32], extra[2];
        if (sscanf(line, "%31s %31s %31s %31s %31s %1s", magic, obj, fmt, field, sym, extra) != 5 ||
            strcasecmp(magic, "%%MatrixMarket") != 0 || strcasecmp(obj, "matrix") != 0) {
            rc = HG_ERRORF(HG_EFORMAT,
                           "%s:1: expected '%%%%MatrixMarket matrix coordinate real general'", path);
            goto done;
        }
        if (strcasecmp(fmt, "coordinate") != 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:1: format '%s' not supported (only coordinate)", path,
                           fmt);
            goto done;
        }
        if (strcasecmp(field, "pattern") == 0)
            pattern = 1;
        else if (strcasecmp(field, "real") != 0 && strcasecmp(field, "integer") != 0) {
            rc = HG_ERRORF(HG_EFORMAT,
                           "%s:1: field '%s' not supported (real, integer or pattern)", path, field);
            goto done;
        }
        if (strcasecmp(sym, "general") != 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:1: symmetry '%s' not supported (only general)", path,
                           sym);
            goto done;
        }
    }
    /* comments, then the size line */
    for (;;) {
        if ((len = next_line(f, &line, &cap, &lineno)) < 0) {
            HG_CHECK(read_error(f, path));
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: truncated: no size line 'rows cols entries'",
                           path, (long long)lineno + 1);
            goto done;
        }
        if (line[0] == '%')
            continue;
        int ntok = split_ws(line, tok);
        if (ntok == 0)
            continue;
        if (ntok != 3 || parse_i64(tok[0], &rows) || parse_i64(tok[1], &cols) ||
            parse_i64(tok[2], &nnz) || rows < 0 || cols < 0 || nnz < 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected the size line 'rows cols entries'",
                           path, (long long)lineno);
            goto done;
        }
        size_line = lineno;
        break;
    }
    if (cols > INT32_MAX) {
        rc = HG_ERRORF(HG_EINVAL, "%s:%lld: %lld columns: more than %d are not supported", path,
                       (long long)size_line, (long long)cols, INT32_MAX);
        goto done;
    }
    if (rows != n) {
        if (rows > n)
            rc = HG_ERRORF(HG_EINVAL,
                           "%s:%lld: too few lines: %lld labels, but %s:%lld declares %lld rows "
                           "(one label per node)",
                           labels_path, (long long)n + 1, (long long)n, path,
                           (long long)size_line, (long long)rows);
        else
            rc = HG_ERRORF(HG_EINVAL,
                           "%s:%lld: too many lines: %lld labels, but %s:%lld declares %lld rows "
                           "(one label per node)",
                           labels_path, (long long)rows + 1, (long long)n, path,
                           (long long)size_line, (long long)rows);
        goto done;
    }
    /* entries; grow the buffer as they arrive so that a lying header cannot force a huge
     * allocation before the truncation is noticed */
    while ((len = next_line(f, &line, &cap, &lineno)) >= 0) {
        if (line[0] == '%')
            continue;
        int ntok = split_ws(line, tok);
        int64_t i, j;
        double v = 1.0;
        if (ntok == 0)
            continue;
        if (got == nnz) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: more entries than the %lld declared at line %lld",
                           path, (long long)lineno, (long long)nnz, (long long)size_line);
            goto done;
        }
        if (ntok != (pattern ? 2 : 3)) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected '%s', got %d fields", path,
                           (long long)lineno, pattern ? "row col" : "row col value", ntok);
            goto done;
        }
        if (parse_i64(tok[0], &i) || parse_i64(tok[1], &j)) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: non-numeric index '%s %s'", path,
                           (long long)lineno, tok[0], tok[1]);
            goto done;
        }
        if (i < 1 || i > rows || j < 1 || j > cols) {
            rc = HG_ERRORF(HG_EFORMAT,
                           "%s:%lld: index (%lld, %lld) out of range 1..%lld x 1..%lld (1-based)",
                           path, (long long)lineno, (long long)i, (long long)j, (long long)rows,
                           (long long)cols);
            goto done;
        }
        if (!pattern) {
            if (parse_f64(tok[2], &v)) {
                rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: non-numeric value '%s'", path,
                               (long long)lineno, tok[2]);
                goto done;
            }
            if (!isfinite(v) || fabs(v) > FLT_MAX) {
                rc = HG_ERRORF(HG_ENUMERIC, "%s:%lld: non-finite value '%s' (float32)", path,
                               (long long)lineno, tok[2]);
                goto done;
            }
        }
        if (got == alloc) {
            int64_t na = alloc ? 2 * alloc : HG_MIN(HG_MAX(nnz, 1), (int64_t)1 << 16);
            coo_entry *p = realloc(e, (size_t)na * sizeof *e);
            if (!p) {
                rc = HG_ERRORF(HG_ENOMEM, "%s: out of memory for %lld entries", path,
                               (long long)na);
                goto done;
            }
            e = p;
            alloc = na;
        }
        e[got].row = i - 1;
        e[got].col = (int32_t)(j - 1);
        e[got].val = v;
        got++;
    }
    HG_CHECK(read_error(f, path));
    if (got < nnz) {
        rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: truncated: %lld of the %lld entries declared at line %lld",
                       path, (long long)lineno + 1, (long long)got, (long long)nnz,
                       (long long)size_line);
        goto done;
    }
    /* sort by (row, col) and sum duplicates */
    if (got > 0)
        qsort(e, (size_t)got, sizeof *e, cmp_coo);
    int64_t uniq = 0;
    for (int64_t k = 0; k < got; k++) {
        if (uniq > 0 && e[uniq - 1].row == e[k].row && e[uniq - 1].col == e[k].col)
            e[uniq - 1].val += e[k].val;
        else
            e[uniq++] = e[k];
    }
    HG_CHECK(hg_csr_alloc(out, rows, cols, uniq));
    for (int64_t k = 0; k < uniq; k++) {
        if (!(fabs(e[k].val) <= FLT_MAX)) {
            hg_csr_destroy(out);
            rc = HG_ERRORF(HG_ENUMERIC,
                           "%s: duplicate entries of (%lld, %lld) sum outside float32 range", path,
                           (long long)e[k].row + 1, (long long)e[k].col + 1);
            goto done;
        }
        out->rowptr[e[k].row + 1]++;
        out->col[k] = e[k].col;
        out->val[k] = (float)e[k].val;
    }
    for (int64_t r = 0; r < rows; r++)
        out->rowptr[r + 1] += out->rowptr[r];
done:
    free(e);
    free(line);
    if (f)
        fclose(f);
    return rc;
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

/* ------------------------------------------------------------------------------------------ */
/* self_loops.txt and graph.edges                                                               */

/* Optional list of node ids whose original adjacency has a self-loop. */
static int read_self_loops(uint8_t *flag, const char *path, int64_t n)
{
    int rc = HG_OK;
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0;
    ssize_t len;

    if (!file_exists(path))
        return HG_OK;
    HG_CHECK(open_read(&f, path));
    while ((len = next_line(f, &line, &cap, &lineno)) >= 0) {
        char *tok[MAX_TOKENS];
        int ntok = split_ws(line, tok);
        int64_t v;
        if (ntok == 0)
            continue;
        if (ntok != 1 || parse_i64(tok[0], &v)) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected one node id", path, (long long)lineno);
            goto done;
        }
        if (v < 0 || v >= n) {
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: node %lld out of range 0..%lld", path,
                           (long long)lineno, (long long)v, (long long)n - 1);
            goto done;
        }
        flag[v] = 1;
    }
    HG_CHECK(read_error(f, path));
done:
    free(line);
    if (f)
        fclose(f);
    return rc;
}

/* Validate every line of the edge list (igraph reports no line numbers): two node ids in
 * 0..n-1 per non-blank line. */
static int prescan_edges(FILE *f, const char *path, int64_t n, const char *labels_path,
                         int64_t *nlines)
{
    int rc = HG_OK;
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0;
    ssize_t len;

    while ((len = next_line(f, &line, &cap, &lineno)) >= 0) {
        char *tok[MAX_TOKENS];
        int ntok = split_ws(line, tok);
        int64_t u, v;
        if (ntok == 0)
            continue;
        if (ntok != 2) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected two node ids 'u v', got %d fields", path,
                           (long long)lineno, ntok);
            goto done;
        }
        if (parse_i64(tok[0], &u) || parse_i64(tok[1], &v)) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: non-integer node id in '%s %s'", path,
                           (long long)lineno, tok[0], tok[1]);
            goto done;
        }
        if (u < 0 || v < 0 || u >= n || v >= n) {
            rc = HG_ERRORF(HG_EINVAL,
                           "%s:%lld: node id %lld out of range 0..%lld (n = %lld from the line "
                           "count of %s)",
                           path, (long long)lineno, (long long)(u < 0 || u >= n ? u : v),
                           (long long)n - 1, (long long)n, labels_path);
            goto done;
        }
    }
    HG_CHECK(read_error(f, path));
    *nlines = lineno;
done:
    free(line);
    return rc;
}

/* Read graph.edges with igraph after validation; return the sorted unique keys u * n + v (u < v)
 * of the undirected edges. Lines 'u u' mark a self-loop (like self_loops.txt); repeated edges
 * (either orientation) count once, as in HGCN's binary adjacency. */
static int read_edges(int64_t **keys_out, int64_t *m_out, uint8_t *self_loop, const char *path,
                      int64_t n, const char *labels_path)
{
    int rc = HG_OK;
    FILE *f = NULL;
    igraph_t g;
    igraph_vector_int_t el;
    int g_ok = 0, el_ok = 0;
    int64_t *keys = NULL, m = 0, nlines = 0;

    HG_CHECK(open_read(&f, path));
    HG_CHECK(prescan_edges(f, path, n, labels_path, &nlines));
    rewind(f);
    IG_CHECK(igraph_read_graph_edgelist(&g, f, (igraph_integer_t)n, IGRAPH_UNDIRECTED), path);
    g_ok = 1;
    if ((int64_t)igraph_vcount(&g) != n) {
        rc = HG_ERRORF(HG_EIGRAPH, "%s: igraph read %lld nodes, expected %lld", path,
                       (long long)igraph_vcount(&g), (long long)n);
        goto done;
    }
    IG_CHECK(igraph_vector_int_init(&el, 0), path);
    el_ok = 1;
    IG_CHECK(igraph_get_edgelist(&g, &el, 0), path);
    int64_t ne = (int64_t)igraph_ecount(&g);
    keys = hg_calloc((size_t)HG_MAX(ne, 1), sizeof *keys, "edge keys");
    if (!keys) {
        rc = HG_ENOMEM;
        goto done;
    }
    for (int64_t e = 0; e < ne; e++) {
        int64_t u = VECTOR(el)[2 * e], v = VECTOR(el)[2 * e + 1];
        if (u == v)
            self_loop[u] = 1;
        else
            keys[m++] = pair_key(u, v, n);
    }
    qsort(keys, (size_t)m, sizeof *keys, cmp_i64);
    int64_t uniq = 0;
    for (int64_t k = 0; k < m; k++)
        if (uniq == 0 || keys[uniq - 1] != keys[k])
            keys[uniq++] = keys[k];
    m = uniq;
    if (m == 0) {
        rc = HG_ERRORF(HG_EINVAL,
                       "%s:%lld: empty graph: no edges between distinct nodes (%lld lines)", path,
                       (long long)HG_MAX(nlines, (int64_t)1), (long long)nlines);
        goto done;
    }
    *keys_out = keys;
    keys = NULL;
    *m_out = m;
done:
    free(keys);
    if (el_ok)
        igraph_vector_int_destroy(&el);
    if (g_ok)
        igraph_destroy(&g);
    if (f)
        fclose(f);
    return rc;
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
/* node-classification splits                                                                   */

static int alloc_nc_idx(hg_dataset *d, int64_t ntr, int64_t nva, int64_t nte)
{
    d->idx_train = hg_calloc((size_t)HG_MAX(ntr, 1), sizeof *d->idx_train, "idx_train");
    d->idx_val = hg_calloc((size_t)HG_MAX(nva, 1), sizeof *d->idx_val, "idx_val");
    d->idx_test = hg_calloc((size_t)HG_MAX(nte, 1), sizeof *d->idx_test, "idx_test");
    if (!d->idx_train || !d->idx_val || !d->idx_test)
        return HG_ENOMEM;
    return HG_OK;
}

/* split.txt / split_hybonet.txt: train/val/test/none per node. */
static int nc_split_file(hg_dataset *d, const char *path)
{
    int rc = HG_OK;
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0, cnt[4] = {0, 0, 0, 0};
    uint8_t *which = NULL;
    ssize_t len;
    static const char *const words[4] = {"train", "val", "test", "none"};

    which = hg_calloc((size_t)d->n, 1, "split");
    if (!which) {
        rc = HG_ENOMEM;
        goto done;
    }
    HG_CHECK(open_read(&f, path));
    while ((len = next_line(f, &line, &cap, &lineno)) >= 0) {
        char *tok[MAX_TOKENS];
        int ntok = split_ws(line, tok), w = -1;
        if (lineno > d->n) {
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: too many lines: one per node, %lld nodes", path,
                           (long long)lineno, (long long)d->n);
            goto done;
        }
        for (int k = 0; ntok == 1 && k < 4; k++)
            if (strcmp(tok[0], words[k]) == 0)
                w = k;
        if (w < 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected train, val, test or none, got '%s'",
                           path, (long long)lineno, ntok ? tok[0] : "");
            goto done;
        }
        which[lineno - 1] = (uint8_t)w;
        cnt[w]++;
    }
    HG_CHECK(read_error(f, path));
    if (lineno < d->n) {
        rc = HG_ERRORF(HG_EINVAL, "%s:%lld: too few lines: %lld, one per node, %lld nodes", path,
                       (long long)lineno + 1, (long long)lineno, (long long)d->n);
        goto done;
    }
    HG_CHECK(alloc_nc_idx(d, cnt[0], cnt[1], cnt[2]));
    for (int64_t i = 0; i < d->n; i++) {
        if (d->labels[i] < 0) /* an unlabelled node cannot be trained or scored: left out */
            continue;
        if (which[i] == 0)
            d->idx_train[d->n_train++] = i;
        else if (which[i] == 1)
            d->idx_val[d->n_val++] = i;
        else if (which[i] == 2)
            d->idx_test[d->n_test++] = i;
    }
done:
    hg_free(which);
    free(line);
    if (f)
        fclose(f);
    return rc;
}

/* HGCN's split_data without its overlap: label 0 vs label > 0 (-1 ignored), each
 * group shuffled; round(prop * min(#zero, #nonzero)) of each group to val, the same rule to
 * test, the rest to train. rint() rounds half to even, as Python's round(). */
/* Sort ascending and drop repeats (the overlapping reference groups can draw a node twice). */
static void sort_unique(int64_t *a, int64_t *n)
{
    qsort(a, (size_t)*n, sizeof(int64_t), cmp_i64);
    int64_t w = 0;
    for (int64_t i = 0; i < *n; i++)
        if (w == 0 || a[w - 1] != a[i])
            a[w++] = a[i];
    *n = w;
}

static int nc_split_random(hg_dataset *d, double val_prop, double test_prop, uint64_t seed,
                           int reference_groups)
{
    int rc = HG_OK;
    int64_t *grp[2] = {NULL, NULL}, cnt[2] = {0, 0};
    hg_rng rng;

    for (int g = 0; g < 2; g++) {
        grp[g] = hg_calloc((size_t)d->n, sizeof *grp[g], "split group");
        if (!grp[g]) {
            rc = HG_ENOMEM;
            goto done;
        }
    }
    for (int64_t i = 0; i < d->n; i++) {
        if (d->labels[i] < 0)
            continue;
        if (reference_groups) { /* HGCN: pos = label != 0, neg = label != 1 (overlapping) */
            if (d->labels[i] != 1)
                grp[0][cnt[0]++] = i;
            if (d->labels[i] != 0)
                grp[1][cnt[1]++] = i;
        } else if (d->labels[i] == 0) {
            grp[0][cnt[0]++] = i;
        } else {
            grp[1][cnt[1]++] = i;
        }
    }
    int64_t mn = HG_MIN(cnt[0], cnt[1]);
    int64_t nv = (int64_t)rint(val_prop * (double)mn);
    int64_t nt = (int64_t)rint(test_prop * (double)mn);
    if (nv + nt > mn) /* only by rounding when val_prop + test_prop is close to 1 */
        nt = mn - nv;
    HG_CHECK(alloc_nc_idx(d, cnt[0] + cnt[1] - 2 * (nv + nt), 2 * nv, 2 * nt));
    hg_rng_seed(&rng, seed);
    /* nonzero group first, as the reference shuffles pos_idx before neg_idx */
    hg_rng_shuffle_i64(&rng, grp[1], cnt[1]);
    hg_rng_shuffle_i64(&rng, grp[0], cnt[0]);
    for (int g = 0; g < 2; g++) {
        for (int64_t k = 0; k < cnt[g]; k++) {
            if (k < nv)
                d->idx_val[d->n_val++] = grp[g][k];
            else if (k < nv + nt)
                d->idx_test[d->n_test++] = grp[g][k];
            else
                d->idx_train[d->n_train++] = grp[g][k];
        }
    }
    sort_unique(d->idx_train, &d->n_train);
    sort_unique(d->idx_val, &d->n_val);
    sort_unique(d->idx_test, &d->n_test);
done:
    hg_free(grp[0]);
    hg_free(grp[1]);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* link-prediction split                                                                        */

/* Open-addressing set of non-negative int64 keys (-1 = empty slot). */
/* Multiplier of the key hashes (Fibonacci hashing: 2^64 / golden ratio). */
#define HG_NEG_HASH_MUL 0x9e3779b97f4a7c15ULL
/* The filter in front of the exclusion set is a blocked Bloom filter: one 64-bit word per key
 * (chosen by the top bits of key * HG_NEG_HASH_MUL), HG_NEG_FILTER_K bits set in it (chosen by
 * the top bits of key * HG_NEG_FILTER_MUL), HG_NEG_FILTER_BITS_PER_KEY bits per excluded key:
 * one word load answers "not excluded" for all but about 1% of the non-excluded pairs; each
 * false positive costs a probe of the set, a cache miss and a mispredicted branch. */
#define HG_NEG_FILTER_BITS_PER_KEY 16
#define HG_NEG_FILTER_K 3
#define HG_NEG_FILTER_MUL 0xc2b2ae3d27d4eb4fULL

/* The filter word mask of a key: HG_NEG_FILTER_K bit positions from 6-bit fields of its hash. */
static inline uint64_t filter_mask(int64_t key)
{
    const uint64_t g = (uint64_t)key * HG_NEG_FILTER_MUL;
    uint64_t m = 0;
    for (int b = 0; b < HG_NEG_FILTER_K; b++)
        m |= (uint64_t)1 << (g >> (58 - 6 * b) & 63);
    return m;
}
typedef struct {
    int64_t *slot;
    int64_t mask;
} key_set;

static int key_set_init(key_set *s, int64_t count)
{
    int64_t cap = 16;
    while (cap < 2 * count + 1)
        cap *= 2;
    s->slot = hg_calloc((size_t)cap, sizeof *s->slot, "key set");
    if (!s->slot)
        return HG_ENOMEM;
    for (int64_t i = 0; i < cap; i++)
        s->slot[i] = -1;
    s->mask = cap - 1;
    return HG_OK;
}

/* Insert key; returns 0 if it was already present. */
static int key_set_insert(key_set *s, int64_t key)
{
    uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ULL;
    int64_t i = (int64_t)(h >> 17) & s->mask;
    while (s->slot[i] != -1) {
        if (s->slot[i] == key)
            return 0;
        i = (i + 1) & s->mask;
    }
    s->slot[i] = key;
    return 1;
}

/* A uniformly random unordered pair u != v, as its key. */
static int64_t random_pair_key(hg_rng *rng, int64_t n)
{
    int64_t u, v;
    do {
        u = (int64_t)hg_rng_below(rng, (uint64_t)n);
        v = (int64_t)hg_rng_below(rng, (uint64_t)n);
    } while (u == v);
    return pair_key(u, v, n);
}

/* HGCN mask_edges: shuffle the edges (split seed); val = first floor(m * val_prop), test = next
 * floor(m * test_prop), train = the rest. val/test negatives: as many distinct random non-edges
 * of the full graph (u < v, u != v), drawn by rejection with the same stream. Returns the sorted
 * training keys in *train_keys. */
static int lp_split(hg_dataset *d, int64_t **train_keys, const int64_t *keys, int64_t m,
                    const hg_dataset_opts *o)
{
    int rc = HG_OK;
    int64_t n = d->n, *shuf = NULL, *tk = NULL;
    key_set drawn = {0};
    hg_rng rng;

    int64_t nv = (int64_t)floor((double)m * o->val_prop);
    int64_t nt = (int64_t)floor((double)m * o->test_prop);
    int64_t ntr = m - nv - nt;
    int64_t total_pairs = n * (n - 1) / 2;
    if (ntr < 1) {
        rc = HG_ERRORF(HG_EINVAL, "link prediction: no training edges left (%lld edges, %lld val, "
                       "%lld test)", (long long)m, (long long)nv, (long long)nt);
        goto done;
    }
    if (total_pairs - m < nv + nt) {
        rc = HG_ERRORF(HG_EINVAL, "link prediction: %lld non-edges, fewer than the %lld val/test "
                       "negatives needed", (long long)(total_pairs - m), (long long)(nv + nt));
        goto done;
    }
    shuf = hg_calloc((size_t)m, sizeof *shuf, "edge shuffle");
    tk = hg_calloc((size_t)ntr, sizeof *tk, "training edges");
    d->train_pos = hg_calloc((size_t)(2 * ntr), sizeof(int32_t), "train_pos");
    d->val_pos = hg_calloc((size_t)HG_MAX(2 * nv, 1), sizeof(int32_t), "val_pos");
    d->val_neg = hg_calloc((size_t)HG_MAX(2 * nv, 1), sizeof(int32_t), "val_neg");
    d->test_pos = hg_calloc((size_t)HG_MAX(2 * nt, 1), sizeof(int32_t), "test_pos");
    d->test_neg = hg_calloc((size_t)HG_MAX(2 * nt, 1), sizeof(int32_t), "test_neg");
    if (!shuf || !tk || !d->train_pos || !d->val_pos || !d->val_neg || !d->test_pos ||
        !d->test_neg) {
        rc = HG_ENOMEM;
        goto done;
    }
    memcpy(shuf, keys, (size_t)m * sizeof *shuf);
    hg_rng_seed(&rng, o->split_seed);
    hg_rng_shuffle_i64(&rng, shuf, m);
    for (int64_t k = 0; k < nv; k++)
        key_to_pair(shuf[k], n, d->val_pos + 2 * k);
    for (int64_t k = 0; k < nt; k++)
        key_to_pair(shuf[nv + k], n, d->test_pos + 2 * k);
    for (int64_t k = 0; k < ntr; k++) {
        key_to_pair(shuf[nv + nt + k], n, d->train_pos + 2 * k);
        tk[k] = shuf[nv + nt + k];
    }
    d->n_val_pos = nv;
    d->n_test_pos = nt;
    d->n_train_pos = ntr;

    HG_CHECK(key_set_init(&drawn, nv + nt));
    for (int64_t k = 0; k < nv + nt; k++) {
        int64_t key;
        do
            key = random_pair_key(&rng, n);
        while (bsearch_i64(keys, m, key) || !key_set_insert(&drawn, key));
        key_to_pair(key, n, k < nv ? d->val_neg + 2 * k : d->test_neg + 2 * (k - nv));
    }
    qsort(tk, (size_t)ntr, sizeof *tk, cmp_i64);
    *train_keys = tk;
    tk = NULL;
done:
    hg_free(drawn.slot);
    hg_free(shuf);
    hg_free(tk);
    return rc;
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
    HG_CHECK(read_labels(d, labels_path));

    /* features */
    if (o->use_feats) {
        HG_CHECK(make_path(path, o->dir, o->features_file ? o->features_file : "features.mtx"));
        if (!file_exists(path)) {
            rc = HG_ERRORF(HG_EIO, "%s: not found: this dataset has no features; use --use-feats 0 "
                           "(identity features)", path);
            goto done;
        }
        HG_CHECK(read_mtx(&d->feat, path, d->n, labels_path));
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
    HG_CHECK(read_self_loops(self_loop, path, d->n));
    HG_CHECK(make_path(path, o->dir, "graph.edges"));
    HG_CHECK(read_edges(&keys, &m, self_loop, path, d->n, labels_path));
    d->nedges = m;

    /* split and the graph the model sees */
    const int64_t *seen_keys = keys;
    int64_t seen_m = m;
    const uint8_t *seen_loops = self_loop;
    if (o->task == HG_TASK_NC) {
        int have_file = 0;
        if (o->split_file && o->split_file[0]) {
            HG_CHECK(make_path(path, o->dir, o->split_file));
            have_file = file_exists(path);
        }
        if (have_file)
            HG_CHECK(nc_split_file(d, path));
        else
            HG_CHECK(nc_split_random(d, o->val_prop, o->test_prop, o->split_seed,
                                     o->nc_split_reference));
    } else {
        HG_CHECK(lp_split(d, &train_keys, keys, m, o));
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
        key_set excl = {0};
        HG_CHECK(key_set_init(&excl, d->n_neg_excl));
        d->neg_excl_set = excl.slot;
        d->neg_excl_mask = excl.mask;
        int words = 0; /* log2 of the filter size in words */
        while (((int64_t)64 << words) < HG_NEG_FILTER_BITS_PER_KEY * d->n_neg_excl)
            words++;
        d->neg_excl_shift = 64 - words;
        d->neg_excl_bits = hg_calloc((size_t)1 << words, sizeof *d->neg_excl_bits,
                                     "negative filter");
        if (!d->neg_excl_bits) {
            rc = HG_ENOMEM;
            goto done;
        }
        for (int64_t k = 0; k < d->n_neg_excl; k++) {
            key_set_insert(&excl, d->neg_excl[k]);
            const int64_t key = d->neg_excl[k];
            const uint64_t h = (uint64_t)key * HG_NEG_HASH_MUL;
            d->neg_excl_bits[words ? h >> d->neg_excl_shift : 0] |= filter_mask(key);
        }
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
    hg_free(keys);
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

/* Membership in the exclusion set: the filter bit, then the slot sequence of key_set_insert.
 * The fields are passed as values: read from the struct, every store of a sampled pair (an
 * int32_t, which may alias the int shift) would force them to be reloaded. */
static inline int excl_has(const uint64_t *bits, int shift, const int64_t *slot, int64_t mask,
                           int64_t key)
{
    const uint64_t h = (uint64_t)key * HG_NEG_HASH_MUL, m = filter_mask(key);
    if ((bits[shift < 64 ? h >> shift : 0] & m) != m)
        return 0;
    for (int64_t i = (int64_t)(h >> 17) & mask;; i = (i + 1) & mask) {
        if (slot[i] == key)
            return 1;
        if (slot[i] == -1)
            return 0;
    }
}

/* The sampler's own generator: HG_NEG_LANES xoshiro256** streams side by side (one vector step
 * gives HG_NEG_LANES 64-bit draws, where one library call gives one through a state that makes
 * a round trip through memory), seeded on every call from 4 * HG_NEG_LANES draws of the caller's
 * generator, so the caller's stream still decides everything. */
#define HG_NEG_LANES 8
typedef uint64_t neg_lanes __attribute__((vector_size(8 * HG_NEG_LANES)));

static inline neg_lanes rotl_lanes(neg_lanes x, int k) { return (x << k) | (x >> (64 - k)); }

static inline neg_lanes xoshiro_lanes(neg_lanes *s)
{
    neg_lanes result = rotl_lanes(s[1] * 5, 7) * 9;
    neg_lanes t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl_lanes(s[3], 45);
    return result;
}

void hg_dataset_sample_negatives(const hg_dataset *d, hg_rng *rng, int32_t *out, int64_t count)
{
    int64_t n = d->n;
    if (n < 2) { /* no pairs at all: only a zeroed dataset gets here (load rejects it) */
        memset(out, 0, (size_t)(2 * HG_MAX(count, (int64_t)0)) * sizeof *out);
        return;
    }
    neg_lanes s[4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < HG_NEG_LANES; j++)
            s[i][j] = hg_rng_u64(rng);
    for (int j = 0; j < HG_NEG_LANES; j++) /* xoshiro's one forbidden state */
        if (!(s[0][j] | s[1][j] | s[2][j] | s[3][j]))
            s[0][j] = 1;
    /* Rejection sampling, uniform over the pool. Each 64-bit draw is a candidate: u and v
       uniform in [0, n) from its two 32-bit halves by Lemire's multiply-shift, exact because a
       candidate whose low product word falls below 2^32 mod n is rejected as a whole (the halves
       are independent, so each stays uniform and the two stay independent); then (u, u), then
       pairs in the exclusion set (the filter and hash set built at load, or for a dataset built
       without them a binary search in neg_excl). Candidates are taken in lane order. */
    const uint64_t n64 = (uint64_t)n, thresh = (uint64_t)((uint32_t)(-(uint32_t)n) % (uint32_t)n);
    const uint64_t *bits = d->neg_excl_bits;
    const int shift = d->neg_excl_shift;
    const int64_t *slot = d->neg_excl_set, mask = d->neg_excl_mask;
    const int64_t *sorted = d->neg_excl, nsorted = d->n_neg_excl;
    int64_t k = 0;
    while (k < count) {
        const neg_lanes x = xoshiro_lanes(s);
        const neg_lanes mu = (x & 0xffffffffu) * n64, mv = (x >> 32) * n64;
        const neg_lanes u = mu >> 32, v = mv >> 32;
        const neg_lanes lt = u < v;
        const neg_lanes lo = (u & lt) | (v & ~lt), hi = (v & lt) | (u & ~lt);
        const neg_lanes rej = ((mu & 0xffffffffu) < thresh) | ((mv & 0xffffffffu) < thresh) |
                              (u == v);
        /* the filter test of all lanes, without branches: "maybe" lanes need the exact test */
        const neg_lanes key = lo * n64 + hi;
        neg_lanes maybe = rej;
        if (slot) {
            const neg_lanes h = key * HG_NEG_HASH_MUL, g = key * HG_NEG_FILTER_MUL;
            neg_lanes m = {0}, w;
            for (int b = 0; b < HG_NEG_FILTER_K; b++)
                m |= ((neg_lanes){0} + 1) << (g >> (58 - 6 * b) & 63);
            const neg_lanes widx = shift < 64 ? h >> shift : (neg_lanes){0};
            for (int j = 0; j < HG_NEG_LANES; j++)
                w[j] = bits[widx[j]];
            maybe |= (w & m) == m;
        } else {
            maybe = ~(neg_lanes){0};
        }
        uint64_t l[HG_NEG_LANES], r[HG_NEG_LANES], q[HG_NEG_LANES], e[HG_NEG_LANES];
        memcpy(l, &lo, sizeof l); /* through memory: the loops below load lanes, not extract */
        memcpy(r, &hi, sizeof r);
        memcpy(q, &maybe, sizeof q);
        memcpy(e, &rej, sizeof e);
        uint64_t any = 0;
        for (int j = 0; j < HG_NEG_LANES; j++)
            any |= q[j];
        if (!any && k + HG_NEG_LANES <= count) { /* the common case: every lane is a negative */
            for (int j = 0; j < HG_NEG_LANES; j++) {
                out[2 * (k + j)] = (int32_t)l[j];
                out[2 * (k + j) + 1] = (int32_t)r[j];
            }
            k += HG_NEG_LANES;
            continue;
        }
        for (int j = 0; j < HG_NEG_LANES && k < count; j++) {
            if (e[j])
                continue;
            const int64_t a = (int64_t)l[j], b = (int64_t)r[j], kj = a * n + b;
            if (q[j] && (slot ? excl_has(bits, shift, slot, mask, kj)
                              : bsearch_i64(sorted, nsorted, kj)))
                continue;
            out[2 * k] = (int32_t)a;
            out[2 * k + 1] = (int32_t)b;
            k++;
        }
    }
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
    const char *roots[3] = {getenv("HGNN_DATA_DIR"), HG_SOURCE_DATA_DIR, HG_INSTALL_DATA_DIR};
    for (int i = 0; i < 3; i++) {
        if (!roots[i] || !roots[i][0])
            continue;
        int w = snprintf(buf, len, "%s/%s", roots[i], name);
        if (w < 0 || (size_t)w >= len)
            return HG_ERRORF(HG_EINVAL, "dataset '%s': path %s/%s does not fit in %zu bytes", name,
                             roots[i], name, len);
        if (dir_exists(buf))
            return HG_OK;
    }
    buf[0] = '\0';
    return HG_ERRORF(HG_EIO,
                     "dataset '%s' not found (looked in $HGNN_DATA_DIR, " HG_SOURCE_DATA_DIR
                     ", " HG_INSTALL_DATA_DIR "); use --data-dir DIR",
                     name);
}
