/* readers.c - the dataset file parsers: labels.txt, features.mtx, self_loops.txt, graph.edges
 * and split files, over one bounded line reader (internal.h).
 *
 * Nothing is sized by a count the file declares: buffers grow with the lines actually read, and
 * a declared count is first checked against the file's size, so a short file that claims a huge
 * matrix or graph fails at once, naming the line. Input echoed in a message goes through
 * hg_quote. */
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../src/hg.h"

/* Most tokens any line of our formats may hold; more means a malformed line. */
#define MAX_TOKENS 4
/* First capacity of the buffers that grow with the input. */
#define GROW_FIRST 4096

/* ------------------------------------------------------------------------------------------ */
/* text input                                                                                   */

int hg_ds_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int hg_text_open(hg_text *t, const char *path)
{
    struct stat st;
    memset(t, 0, sizeof *t);
    t->path = path;
    t->bytes = -1;
    t->f = fopen(path, "r");
    if (!t->f)
        return HG_ERRORF(HG_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(t->f), &st) == 0 && S_ISREG(st.st_mode))
        t->bytes = (int64_t)st.st_size;
    t->cap = 256;
    t->buf = malloc(t->cap);
    if (!t->buf)
        return HG_ERRORF(HG_ENOMEM, "%s: out of memory for a line", path);
    return HG_OK;
}

void hg_text_close(hg_text *t)
{
    if (t->f)
        fclose(t->f);
    free(t->buf);
    t->f = NULL;
    t->buf = NULL;
    t->cap = 0;
}

int hg_text_next(hg_text *t, char **line)
{
    size_t len = 0;
    int c;
    *line = NULL;
    while ((c = getc_unlocked(t->f)) != EOF && c != '\n') {
        if (len == HG_READER_MAX_LINE)
            return HG_ERRORF(HG_EFORMAT, "%s:%lld: line longer than %d bytes (not a text file?)",
                             t->path, (long long)t->lineno + 1, HG_READER_MAX_LINE);
        if (len + 1 >= t->cap) {
            size_t nc = HG_MIN(2 * t->cap, (size_t)HG_READER_MAX_LINE + 1);
            char *p = realloc(t->buf, nc);
            if (!p)
                return HG_ERRORF(HG_ENOMEM, "%s: out of memory for a line", t->path);
            t->buf = p;
            t->cap = nc;
        }
        t->buf[len++] = (char)c;
    }
    if (c == EOF) {
        if (ferror(t->f))
            return HG_ERRORF(HG_EIO, "%s: read error: %s", t->path, strerror(errno));
        if (len == 0)
            return HG_OK;
    }
    t->lineno++;
    while (len > 0 && (t->buf[len - 1] == '\r' || t->buf[len - 1] == ' ' ||
                       t->buf[len - 1] == '\t'))
        len--;
    t->buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)t->buf[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return HG_ERRORF(HG_EFORMAT, "%s:%lld: control character 0x%02x at byte %zu of the "
                             "line (not a text file?)", t->path, (long long)t->lineno, b, i + 1);
    }
    *line = t->buf;
    return HG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* tokens                                                                                       */

/* Split s in place at blanks; stores up to MAX_TOKENS tokens and returns how many there were. */
static int split_ws(char *s, char **tok)
{
    int count = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
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

int hg_ds_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Make room for one more element of `size` bytes in *buf (count used, *alloc held), doubling. */
static int grow(void **buf, int64_t count, int64_t *alloc, size_t size, const char *path)
{
    if (count < *alloc)
        return HG_OK;
    int64_t na = *alloc ? 2 * *alloc : GROW_FIRST;
    void *p = realloc(*buf, (size_t)na * size);
    if (!p)
        return HG_ERRORF(HG_ENOMEM, "%s: out of memory for %lld items", path, (long long)na);
    *buf = p;
    *alloc = na;
    return HG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* labels.txt                                                                                   */

int hg_ds_read_labels(const char *path, int32_t **labels, int64_t *n_out, int32_t *nclasses)
{
    int rc = HG_OK;
    hg_text t;
    int64_t n = 0, alloc = 0;
    int32_t *lab = NULL, maxlab = -1;
    char *line;
    hg_quoted q;

    HG_CHECK(hg_text_open(&t, path));
    for (;;) {
        HG_CHECK(hg_text_next(&t, &line));
        if (!line)
            break;
        char *tok[MAX_TOKENS];
        int ntok = split_ws(line, tok);
        int64_t v;
        if (ntok == 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: empty line, expected an integer label", path,
                           (long long)t.lineno);
            goto done;
        }
        if (ntok != 1 || parse_i64(tok[0], &v) != 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected one integer label, got '%s'", path,
                           (long long)t.lineno, hg_quote(&q, tok[0]));
            goto done;
        }
        if (v < -1 || v >= HG_DATASET_MAX_CLASSES) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: label %lld out of range (-1 = unlabelled, else "
                           "a class in [0, %d))", path, (long long)t.lineno, (long long)v,
                           HG_DATASET_MAX_CLASSES);
            goto done;
        }
        if (n >= INT32_MAX) {
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: more than %d nodes are not supported", path,
                           (long long)t.lineno, INT32_MAX);
            goto done;
        }
        HG_CHECK(grow((void **)&lab, n, &alloc, sizeof *lab, path));
        lab[n++] = (int32_t)v;
        if (v > maxlab)
            maxlab = (int32_t)v;
    }
    if (n == 0) {
        rc = HG_ERRORF(HG_EINVAL, "%s:1: no labels: the graph has zero nodes (one line per node)",
                       path);
        goto done;
    }
    *labels = lab;
    lab = NULL;
    *n_out = n;
    *nclasses = maxlab + 1;
done:
    free(lab);
    hg_text_close(&t);
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

/* The header line: sets *pattern. */
static int mtx_header(hg_text *t, int *pattern)
{
    char *line, magic[32], obj[32], fmt[32], field[32], sym[32], extra[2];
    hg_quoted q;
    int rc = hg_text_next(t, &line);
    if (rc != HG_OK)
        return rc;
    if (!line)
        return HG_ERRORF(HG_EFORMAT, "%s:1: empty file, expected a %%%%MatrixMarket header",
                         t->path);
    if (sscanf(line, "%31s %31s %31s %31s %31s %1s", magic, obj, fmt, field, sym, extra) != 5 ||
        strcasecmp(magic, "%%MatrixMarket") != 0 || strcasecmp(obj, "matrix") != 0)
        return HG_ERRORF(HG_EFORMAT,
                         "%s:1: expected '%%%%MatrixMarket matrix coordinate real general'",
                         t->path);
    if (strcasecmp(fmt, "coordinate") != 0)
        return HG_ERRORF(HG_EFORMAT, "%s:1: format '%s' not supported (only coordinate)",
                         t->path, hg_quote(&q, fmt));
    *pattern = strcasecmp(field, "pattern") == 0;
    if (!*pattern && strcasecmp(field, "real") != 0 && strcasecmp(field, "integer") != 0)
        return HG_ERRORF(HG_EFORMAT, "%s:1: field '%s' not supported (real, integer or pattern)",
                         t->path, hg_quote(&q, field));
    if (strcasecmp(sym, "general") != 0)
        return HG_ERRORF(HG_EFORMAT, "%s:1: symmetry '%s' not supported (only general)", t->path,
                         hg_quote(&q, sym));
    return HG_OK;
}

/* Comments, then the size line 'rows cols entries', checked against n, the column limit and
 * the file's size. */
static int mtx_size(hg_text *t, int pattern, int64_t n, const char *labels_path, int64_t *rows,
                    int64_t *cols, int64_t *nnz)
{
    const char *path = t->path;
    char *line, *tok[MAX_TOKENS];
    for (;;) {
        int rc = hg_text_next(t, &line);
        if (rc != HG_OK)
            return rc;
        if (!line)
            return HG_ERRORF(HG_EFORMAT, "%s:%lld: truncated: no size line 'rows cols entries'",
                             path, (long long)t->lineno + 1);
        if (line[0] == '%')
            continue;
        int ntok = split_ws(line, tok);
        if (ntok == 0)
            continue;
        if (ntok != 3 || parse_i64(tok[0], rows) || parse_i64(tok[1], cols) ||
            parse_i64(tok[2], nnz) || *rows < 0 || *cols < 0 || *nnz < 0)
            return HG_ERRORF(HG_EFORMAT, "%s:%lld: expected the size line 'rows cols entries'",
                             path, (long long)t->lineno);
        break;
    }
    long long at = (long long)t->lineno;
    if (*cols > HG_DATASET_MAX_FEATURES)
        return HG_ERRORF(HG_EINVAL, "%s:%lld: %lld columns: more than %d feature columns are not "
                         "supported", path, at, (long long)*cols, HG_DATASET_MAX_FEATURES);
    if (*rows > n)
        return HG_ERRORF(HG_EINVAL, "%s:%lld: too few lines: %lld labels, but %s:%lld declares "
                         "%lld rows (one label per node)", labels_path, (long long)n + 1,
                         (long long)n, path, at, (long long)*rows);
    if (*rows < n)
        return HG_ERRORF(HG_EINVAL, "%s:%lld: too many lines: %lld labels, but %s:%lld declares "
                         "%lld rows (one label per node)", labels_path, (long long)*rows + 1,
                         (long long)n, path, at, (long long)*rows);
    /* an entry line takes at least 4 bytes ("1 1\n"), 6 with a value; the last may lack '\n' */
    int64_t min_line = pattern ? 4 : 6;
    if (t->bytes >= 0 && *nnz > (t->bytes + 1) / min_line)
        return HG_ERRORF(HG_EFORMAT, "%s:%lld: declares %lld entries, more than the file's %lld "
                         "bytes can hold", path, at, (long long)*nnz, (long long)t->bytes);
    return HG_OK;
}

int hg_ds_read_mtx(hg_csr *out, const char *path, int64_t n, const char *labels_path)
{
    int rc = HG_OK;
    hg_text t;
    int64_t size_line, rows = 0, cols = 0, nnz = 0, got = 0, alloc = 0;
    coo_entry *e = NULL;
    int pattern = 0;
    char *line, *tok[MAX_TOKENS];
    hg_quoted q0, q1;

    memset(out, 0, sizeof *out);
    HG_CHECK(hg_text_open(&t, path));
    HG_CHECK(mtx_header(&t, &pattern));
    HG_CHECK(mtx_size(&t, pattern, n, labels_path, &rows, &cols, &nnz));
    size_line = t.lineno;
    for (;;) {
        HG_CHECK(hg_text_next(&t, &line));
        if (!line)
            break;
        if (line[0] == '%')
            continue;
        int ntok = split_ws(line, tok);
        int64_t i, j;
        double v = 1.0;
        if (ntok == 0)
            continue;
        if (got == nnz) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: more entries than the %lld declared at line %lld",
                           path, (long long)t.lineno, (long long)nnz, (long long)size_line);
            goto done;
        }
        if (ntok != (pattern ? 2 : 3)) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected '%s', got %d fields", path,
                           (long long)t.lineno, pattern ? "row col" : "row col value", ntok);
            goto done;
        }
        if (parse_i64(tok[0], &i) || parse_i64(tok[1], &j)) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: non-numeric index '%s %s'", path,
                           (long long)t.lineno, hg_quote(&q0, tok[0]), hg_quote(&q1, tok[1]));
            goto done;
        }
        if (i < 1 || i > rows || j < 1 || j > cols) {
            rc = HG_ERRORF(HG_EFORMAT,
                           "%s:%lld: index (%lld, %lld) out of range 1..%lld x 1..%lld (1-based)",
                           path, (long long)t.lineno, (long long)i, (long long)j, (long long)rows,
                           (long long)cols);
            goto done;
        }
        if (!pattern) {
            if (parse_f64(tok[2], &v)) {
                rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: non-numeric value '%s'", path,
                               (long long)t.lineno, hg_quote(&q0, tok[2]));
                goto done;
            }
            if (!isfinite(v) || fabs(v) > FLT_MAX) {
                rc = HG_ERRORF(HG_ENUMERIC, "%s:%lld: non-finite value '%s' (float32)", path,
                               (long long)t.lineno, hg_quote(&q0, tok[2]));
                goto done;
            }
        }
        HG_CHECK(grow((void **)&e, got, &alloc, sizeof *e, path));
        e[got].row = i - 1;
        e[got].col = (int32_t)(j - 1);
        e[got].val = v;
        got++;
    }
    if (got < nnz) {
        rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: truncated: %lld of the %lld entries declared at line "
                       "%lld", path, (long long)t.lineno + 1, (long long)got, (long long)nnz,
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
    hg_text_close(&t);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* self_loops.txt, graph.edges, split files                                                     */

/* One node id per line, in [0, n). */
static int node_id_line(char *line, const hg_text *t, int64_t n, int64_t *v)
{
    char *tok[MAX_TOKENS];
    hg_quoted q;
    int ntok = split_ws(line, tok);
    if (ntok != 1 || parse_i64(tok[0], v))
        return HG_ERRORF(HG_EFORMAT, "%s:%lld: expected one node id, got '%s'", t->path,
                         (long long)t->lineno, hg_quote(&q, ntok ? tok[0] : ""));
    if (*v < 0 || *v >= n)
        return HG_ERRORF(HG_EINVAL, "%s:%lld: node %lld out of range 0..%lld", t->path,
                         (long long)t->lineno, (long long)*v, (long long)n - 1);
    return HG_OK;
}

int hg_ds_read_self_loops(uint8_t *flag, const char *path, int64_t n)
{
    int rc = HG_OK;
    hg_text t;
    char *line;

    if (!hg_ds_file_exists(path))
        return HG_OK;
    HG_CHECK(hg_text_open(&t, path));
    for (;;) {
        int64_t v = 0;
        HG_CHECK(hg_text_next(&t, &line));
        if (!line)
            break;
        if (line[strspn(line, " \t")] == '\0')
            continue;
        HG_CHECK(node_id_line(line, &t, n, &v));
        flag[v] = 1;
    }
done:
    hg_text_close(&t);
    return rc;
}

int hg_ds_read_edges(int64_t **keys_out, int64_t *m_out, uint8_t *self_loop, const char *path,
                     int64_t n, const char *labels_path)
{
    int rc = HG_OK;
    hg_text t;
    int64_t *keys = NULL, m = 0, alloc = 0;
    char *line, *tok[MAX_TOKENS];
    hg_quoted q0, q1;

    HG_CHECK(hg_text_open(&t, path));
    for (;;) {
        HG_CHECK(hg_text_next(&t, &line));
        if (!line)
            break;
        int ntok = split_ws(line, tok);
        int64_t u, v;
        if (ntok == 0)
            continue;
        if (ntok != 2) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected two node ids 'u v', got %d fields", path,
                           (long long)t.lineno, ntok);
            goto done;
        }
        if (parse_i64(tok[0], &u) || parse_i64(tok[1], &v)) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: non-integer node id in '%s %s'", path,
                           (long long)t.lineno, hg_quote(&q0, tok[0]), hg_quote(&q1, tok[1]));
            goto done;
        }
        if (u < 0 || v < 0 || u >= n || v >= n) {
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: node id %lld out of range 0..%lld (n = %lld from "
                           "the line count of %s)", path, (long long)t.lineno,
                           (long long)(u < 0 || u >= n ? u : v), (long long)n - 1, (long long)n,
                           labels_path);
            goto done;
        }
        if (u == v) {
            self_loop[u] = 1;
            continue;
        }
        HG_CHECK(grow((void **)&keys, m, &alloc, sizeof *keys, path));
        keys[m++] = hg_ds_pair_key(u, v, n);
    }
    if (m > 0)
        qsort(keys, (size_t)m, sizeof *keys, hg_ds_cmp_i64);
    int64_t uniq = 0;
    for (int64_t k = 0; k < m; k++)
        if (uniq == 0 || keys[uniq - 1] != keys[k])
            keys[uniq++] = keys[k];
    if (uniq == 0) {
        rc = HG_ERRORF(HG_EINVAL,
                       "%s:%lld: empty graph: no edges between distinct nodes (%lld lines)", path,
                       (long long)HG_MAX(t.lineno, (int64_t)1), (long long)t.lineno);
        goto done;
    }
    *keys_out = keys;
    keys = NULL;
    *m_out = uniq;
done:
    free(keys);
    hg_text_close(&t);
    return rc;
}

int hg_ds_read_split(uint8_t *which, int64_t cnt[4], const char *path, int64_t n)
{
    static const char *const words[4] = {"train", "val", "test", "none"};
    int rc = HG_OK;
    hg_text t;
    char *line, *tok[MAX_TOKENS];
    hg_quoted q;

    for (int k = 0; k < 4; k++)
        cnt[k] = 0;
    HG_CHECK(hg_text_open(&t, path));
    for (;;) {
        HG_CHECK(hg_text_next(&t, &line));
        if (!line)
            break;
        int ntok = split_ws(line, tok), w = -1;
        if (t.lineno > n) {
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: too many lines: one per node, %lld nodes", path,
                           (long long)t.lineno, (long long)n);
            goto done;
        }
        for (int k = 0; ntok == 1 && k < 4; k++)
            if (strcmp(tok[0], words[k]) == 0)
                w = k;
        if (w < 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%lld: expected train, val, test or none, got '%s'",
                           path, (long long)t.lineno, hg_quote(&q, ntok ? tok[0] : ""));
            goto done;
        }
        which[t.lineno - 1] = (uint8_t)w;
        cnt[w]++;
    }
    if (t.lineno < n) {
        rc = HG_ERRORF(HG_EINVAL, "%s:%lld: too few lines: %lld, one per node, %lld nodes", path,
                       (long long)t.lineno + 1, (long long)t.lineno, (long long)n);
        goto done;
    }
done:
    hg_text_close(&t);
    return rc;
}
