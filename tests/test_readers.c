/* test_readers.c - the dataset parsers on hostile input (datasets/internal.h): control
 * characters and NUL bytes, over-long lines, declared sizes the file cannot back, and the quoting
 * of input echoed in messages. (test_datasets.c covers the loader on well-formed and ordinary
 * malformed directories.) */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../datasets/internal.h"
#include "../src/hg.h"

static char path[4096];

/* Write size bytes to the test's file (path). */
static void write_bytes(const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}
#define WRITE_LIT(s) write_bytes((s), sizeof(s) - 1) /* a literal, embedded NULs included */

/* The last message: starts with path:line: (line 0: path: only), holds want (if given), and is
 * one line of printable ASCII. */
static void check_msg_(int line, const char *want, const char *file, int at)
{
    const char *msg = hg_last_error();
    char head[4200];
    if (line > 0)
        snprintf(head, sizeof head, "%s:%d:", path, line);
    else
        snprintf(head, sizeof head, "%s:", path);
    if (strncmp(msg, head, strlen(head)) != 0 || (want && !strstr(msg, want)))
        fail_msg("%s:%d: want '%s...' with '%s', got '%s'", file, at, head, want ? want : "", msg);
    for (const char *p = msg; *p; p++)
        if (!(*p >= 0x20 && *p < 0x7f))
            fail_msg("%s:%d: byte 0x%02x in the message '%s'", file, at, (unsigned char)*p, msg);
}
#define check_msg(line, want) check_msg_((line), (want), __FILE__, __LINE__)

static int read_labels(void)
{
    int32_t *labels = NULL, nclasses = 0;
    int64_t n = 0;
    int rc = hg_ds_read_labels(path, &labels, &n, &nclasses);
    free(labels);
    return rc;
}

static int read_edges(int64_t n, int64_t *m)
{
    uint8_t loops[64] = {0};
    int64_t *keys = NULL;
    assert_true(n <= 64);
    int rc = hg_ds_read_edges(&keys, m, loops, path, n, "labels.txt");
    free(keys);
    return rc;
}

static int read_mtx(int64_t n, hg_csr *a)
{
    return hg_ds_read_mtx(a, path, n, "labels.txt");
}

static int read_split(int64_t n)
{
    uint8_t which[16];
    int64_t cnt[4];
    assert_true(n <= 16);
    return hg_ds_read_split(which, cnt, path, n);
}

static int read_self_loops(int64_t n)
{
    uint8_t flags[64] = {0};
    assert_true(n <= 64);
    return hg_ds_read_self_loops(flags, path, n);
}

/* A NUL byte hides the rest of its line from C string functions: every parser rejects the line
 * itself, naming it, before anything reads past the NUL (an edge list's id 3000000000 after it
 * would otherwise size the graph). Other control characters likewise; a tab and a final CR are
 * text. */
static void test_control_characters(void **state)
{
    (void)state;
    int64_t m = 0;
    hg_csr a;

    WRITE_LIT("0 1\n1 2\0 3000000000\n2 3\n");
    assert_int_equal(read_edges(4, &m), HG_EFORMAT);
    check_msg(2, "control character 0x00");
    WRITE_LIT("0 1\n1\x1b[2J 2\n");
    assert_int_equal(read_edges(4, &m), HG_EFORMAT);
    check_msg(2, "control character 0x1b");
    WRITE_LIT("0 1\n1 2\r3\n");
    assert_int_equal(read_edges(4, &m), HG_EFORMAT);
    check_msg(2, "control character 0x0d");
    WRITE_LIT("0\t1\r\n1  2\r\n");
    assert_int_equal(read_edges(4, &m), HG_OK);
    assert_int_equal(m, 2);

    WRITE_LIT("0\n1\0\n");
    assert_int_equal(read_labels(), HG_EFORMAT);
    check_msg(2, "control character 0x00");
    WRITE_LIT("0\n\x7f\n");
    assert_int_equal(read_labels(), HG_EFORMAT);
    check_msg(2, "control character 0x7f");

    WRITE_LIT("%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1\n2 2\0 5\n");
    assert_int_equal(read_mtx(2, &a), HG_EFORMAT);
    check_msg(4, "control character 0x00");
    WRITE_LIT("%%MatrixMarket matrix coordinate real general\n% \x07\n2 2 0\n");
    assert_int_equal(read_mtx(2, &a), HG_EFORMAT); /* in a comment too */
    check_msg(2, "control character 0x07");

    WRITE_LIT("train\nval\0\n");
    assert_int_equal(read_split(2), HG_EFORMAT);
    check_msg(2, "control character 0x00");
    WRITE_LIT("1\n\0" "2\n");
    assert_int_equal(read_self_loops(4), HG_EFORMAT);
    check_msg(2, "control character 0x00");
}

/* Lines longer than HG_READER_MAX_LINE bytes are malformed, found without holding more than that
 * of them; a line of exactly that length is read. */
static void test_long_lines(void **state)
{
    (void)state;
    static const char head[] = "%%MatrixMarket matrix coordinate real general\n";
    size_t hl = sizeof head - 1, max = HG_READER_MAX_LINE;
    char *buf = malloc(hl + max + 64);
    assert_non_null(buf);
    hg_csr a;
    for (int extra = 0; extra <= 1; extra++) {
        memcpy(buf, head, hl);
        buf[hl] = '%';
        memset(buf + hl + 1, 'x', max - 1 + (size_t)extra); /* the comment: max + extra bytes */
        size_t len = hl + max + (size_t)extra;
        len += (size_t)sprintf(buf + len, "\n2 1 1\n1 1 1\n");
        write_bytes(buf, len);
        int rc = read_mtx(2, &a);
        if (extra == 0) {
            assert_int_equal(rc, HG_OK);
            assert_int_equal(a.nnz, 1);
            hg_csr_destroy(&a);
        } else {
            assert_int_equal(rc, HG_EFORMAT);
            check_msg(2, "line longer than");
        }
    }
    /* no line terminator at all: the same */
    memset(buf, '1', max + 1);
    write_bytes(buf, max + 1);
    int64_t m;
    assert_int_equal(read_edges(4, &m), HG_EFORMAT);
    check_msg(1, "line longer than");
    free(buf);
}

/* Counts declared by features.mtx are checked before anything is sized by them: the entries
 * against the file's size, the columns against HG_DATASET_MAX_FEATURES, the rows against the
 * labels. */
static void test_declared_sizes(void **state)
{
    (void)state;
    hg_csr a;
    char buf[256];

    WRITE_LIT("%%MatrixMarket matrix coordinate real general\n12 2000000000 1\n1 1 1.0\n");
    assert_int_equal(read_mtx(12, &a), HG_EINVAL);
    check_msg(2, "2000000000 columns");
    snprintf(buf, sizeof buf, "%%%%MatrixMarket matrix coordinate real general\n3 %d 1\n3 %d 1\n",
             HG_DATASET_MAX_FEATURES, HG_DATASET_MAX_FEATURES);
    write_bytes(buf, strlen(buf));
    assert_int_equal(read_mtx(3, &a), HG_OK); /* the limit itself is fine */
    assert_int_equal(a.ncols, HG_DATASET_MAX_FEATURES);
    assert_int_equal(a.col[0], HG_DATASET_MAX_FEATURES - 1);
    hg_csr_destroy(&a);
    snprintf(buf, sizeof buf, "%%%%MatrixMarket matrix coordinate real general\n3 %d 0\n",
             HG_DATASET_MAX_FEATURES + 1);
    write_bytes(buf, strlen(buf));
    assert_int_equal(read_mtx(3, &a), HG_EINVAL);
    check_msg(2, "columns");

    /* 1e12 entries in 70 bytes: at once, naming the size line */
    WRITE_LIT("%%MatrixMarket matrix coordinate real general\n12 5 1000000000000\n1 1 1\n");
    assert_int_equal(read_mtx(12, &a), HG_EFORMAT);
    check_msg(2, "declares 1000000000000 entries");
    /* as many as the bytes allow: read, then found truncated */
    WRITE_LIT("%%MatrixMarket matrix coordinate pattern general\n% padding\n2 2 9\n1 1\n");
    assert_int_equal(read_mtx(2, &a), HG_EFORMAT);
    check_msg(5, "truncated");
    WRITE_LIT("%%MatrixMarket matrix coordinate real general\n2000000000 5 1\n1 1 1\n");
    assert_int_equal(read_mtx(12, &a), HG_EINVAL);
    assert_non_null(strstr(hg_last_error(), "labels.txt:13:"));
    /* node ids past the graph, however large */
    int64_t m;
    WRITE_LIT("0 1\n1 9223372036854775807\n");
    assert_int_equal(read_edges(4, &m), HG_EINVAL);
    check_msg(2, "out of range");
    WRITE_LIT("0 1\n1 9223372036854775808\n");
    assert_int_equal(read_edges(4, &m), HG_EFORMAT);
    check_msg(2, NULL);
}

/* Input shown in a message is escaped and cut: no raw byte of the file reaches the terminal. */
static void test_quoting(void **state)
{
    (void)state;
    hg_quoted q;
    assert_string_equal(hg_quote(&q, "abc 12"), "abc 12");
    assert_string_equal(hg_quote(&q, "a'b\"c\\d"), "a\\x27b\\x22c\\x5cd");
    assert_string_equal(hg_quote(&q, "\xff\x80\x1b"), "\\xff\\x80\\x1b");
    char longs[200];
    memset(longs, 'z', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    const char *s = hg_quote(&q, longs);
    assert_int_equal(strlen(s), HG_QUOTE_MAX + 3);
    assert_string_equal(s + HG_QUOTE_MAX, "...");
    memset(longs, '\xee', sizeof longs - 1);
    assert_int_equal(strlen(hg_quote(&q, longs)), 4 * HG_QUOTE_MAX + 3); /* the worst case fits */

    WRITE_LIT("0\n\xc3\xa9t\xc3\xa9\n");
    assert_int_equal(read_labels(), HG_EFORMAT);
    check_msg(2, "'\\xc3\\xa9t\\xc3\\xa9'");
    char line[300];
    memset(line, '7', sizeof line);
    memcpy(line, "0\nx", 3);
    line[sizeof line - 1] = '\n';
    write_bytes(line, sizeof line);
    assert_int_equal(read_labels(), HG_EFORMAT);
    check_msg(2, "...'");
    assert_true(strlen(hg_last_error()) < strlen(path) + 150);
    hg_csr a;
    WRITE_LIT("%%MatrixMarket matrix co\xf0rdinate real general\n1 1 0\n");
    assert_int_equal(read_mtx(1, &a), HG_EFORMAT);
    check_msg(1, "co\\xf0rdinate");
    WRITE_LIT("train\nva'l\n");
    assert_int_equal(read_split(2), HG_EFORMAT);
    check_msg(2, "va\\x27l");
    WRITE_LIT("\xff\n");
    assert_int_equal(read_self_loops(4), HG_EFORMAT);
    check_msg(1, "\\xff");
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/hgnn_test_readers_XXXXXX", base && *base ? base : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_declared_sizes),
        cmocka_unit_test(test_quoting),
    };
    return cmocka_run_group_tests_name("readers", tests, setup, teardown) ? 1 : 0;
}
