/* test_text.c - sentence files (datasets/text.h): lines as written (CRLF, a last line without
 * '\n', empty lines), and every kind of bad input failing with the right status and a one-line
 * message naming the file and line: invalid UTF-8 of each kind, NUL bytes, over-long lines,
 * empty and missing files, parallel sides of different lengths. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../datasets/text.h"
#include "../src/hg.h"
#include "hg_config.h"

static char dir[4096], path[4200], path2[4200];

static void write_to(const char *p, const void *data, size_t size)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}
#define WRITE_LIT(p, s) write_to((p), (s), sizeof(s) - 1) /* embedded NULs included */

/* The last message starts with "file:line:" (line 0: "file:"), holds want, and is one line of
 * printable ASCII. */
static void check_msg_(const char *file, int line, const char *want, const char *src, int at)
{
    const char *msg = hg_last_error();
    char head[4300];
    if (line > 0)
        snprintf(head, sizeof head, "%s:%d:", file, line);
    else
        snprintf(head, sizeof head, "%s:", file);
    if (strncmp(msg, head, strlen(head)) != 0 || (want && !strstr(msg, want)))
        fail_msg("%s:%d: want '%s...' with '%s', got '%s'", src, at, head, want ? want : "", msg);
    for (const char *p = msg; *p; p++)
        if (!(*p >= 0x20 && *p < 0x7f))
            fail_msg("%s:%d: byte 0x%02x in the message '%s'", src, at, (unsigned char)*p, msg);
}
#define check_msg(file, line, want) check_msg_((file), (line), (want), __FILE__, __LINE__)

/* Reading path fails with status, the output zeroed. */
static void expect_fail(int status, int64_t max_line, int allow_empty)
{
    hg_text_lines t;
    memset(&t, 0x5a, sizeof t);
    assert_int_equal(hg_text_read_lines(&t, path, max_line, allow_empty), status);
    assert_int_equal(t.n, 0);
    assert_null(t.line);
    assert_null(t.buf);
}

static void test_lines_as_written(void **state)
{
    (void)state;
    hg_text_lines t;
    /* CRLF, an empty line, a '\r' inside a line kept, a last line without '\n' */
    WRITE_LIT(path, "a b\r\n\nc\rd\n\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80\r\nlast");
    assert_int_equal(hg_text_read_lines(&t, path, 100, 0), HG_OK);
    assert_int_equal(t.n, 5);
    assert_string_equal(t.line[0], "a b");
    assert_string_equal(t.line[1], "");
    assert_string_equal(t.line[2], "c\rd");
    assert_string_equal(t.line[3], "\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_string_equal(t.line[4], "last");
    hg_text_lines_free(&t);
    assert_int_equal(t.n, 0);
    hg_text_lines_free(&t); /* zeroed: fine */

    WRITE_LIT(path, "one\ntwo\n"); /* the final '\n' opens no line */
    assert_int_equal(hg_text_read_lines(&t, path, 3, 0), HG_OK); /* exactly at the limit */
    assert_int_equal(t.n, 2);
    assert_string_equal(t.line[1], "two");
    hg_text_lines_free(&t);

    WRITE_LIT(path, "\n"); /* one empty line */
    assert_int_equal(hg_text_read_lines(&t, path, 1, 0), HG_OK);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.line[0], "");
    hg_text_lines_free(&t);

    /* the edges of the valid ranges: U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000,
     * U+10FFFF */
    WRITE_LIT(path, "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                    "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\n");
    assert_int_equal(hg_text_read_lines(&t, path, 100, 0), HG_OK);
    assert_int_equal(t.n, 1);
    assert_int_equal(strlen(t.line[0]), 24);
    hg_text_lines_free(&t);
}

static void test_empty(void **state)
{
    (void)state;
    hg_text_lines t;
    WRITE_LIT(path, "");
    expect_fail(HG_EINVAL, 100, 0);
    check_msg(path, 0, "empty file");
    assert_int_equal(hg_text_read_lines(&t, path, 100, 1), HG_OK);
    assert_int_equal(t.n, 0);
    hg_text_lines_free(&t);
}

/* Each malformed sequence, alone on line 2 between valid text, is reported with its kind and the
 * byte where it starts. */
static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        const char *kind;
    } bad[] = {
        {"\xc0\xaf", "overlong"},             /* '/' in two bytes */
        {"\xc1\xbf", "overlong"},
        {"\xe0\x80\xaf", "overlong"},         /* '/' in three bytes */
        {"\xf0\x8f\xbf\xbf", "overlong"},     /* U+FFFF in four bytes */
        {"\xed\xa0\x80", "surrogate"},        /* U+D800 */
        {"\xed\xbf\xbf", "surrogate"},        /* U+DFFF */
        {"\xf4\x90\x80\x80", "above U+10FFFF"},
        {"\xf5\x80\x80\x80", "above U+10FFFF"},
        {"\xe2\x82", "cut short"},            /* euro sign without its last byte, then "z" */
        {"\xf0\x9f\x98", "cut short"},
        {"\xc3", "cut short"},
        {"\x80", "continuation byte"},
        {"\xbf\xbf", "continuation byte"},
        {"\xf8\x88\x80\x80\x80", "0xf8"},
        {"\xff", "0xf8"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char text[64];
        int len = snprintf(text, sizeof text, "fine \xc3\xa4\nab%sz\nok\n", bad[k].bytes);
        write_to(path, text, (size_t)len);
        expect_fail(HG_EINVAL, 100, 0);
        check_msg(path, 2, "invalid UTF-8");
        check_msg(path, 2, bad[k].kind);
        check_msg(path, 2, "at byte 3");
    }
    /* cut short by the end of the line, and by the end of the file */
    WRITE_LIT(path, "ok\nab\xe2\x82\n");
    expect_fail(HG_EINVAL, 100, 0);
    check_msg(path, 2, "cut short");
    WRITE_LIT(path, "ok\nab\xe2\x82");
    expect_fail(HG_EINVAL, 100, 0);
    check_msg(path, 2, "cut short");
}

static void test_nul_and_long_lines(void **state)
{
    (void)state;
    WRITE_LIT(path, "a\nb\0c\n");
    expect_fail(HG_EINVAL, 100, 0);
    check_msg(path, 2, "NUL byte at byte 2");
    WRITE_LIT(path, "\0");
    expect_fail(HG_EINVAL, 100, 0);
    check_msg(path, 1, "NUL byte");

    /* a 1 MiB line (line 3) against a limit of 1000 bytes, and one byte over a limit */
    size_t big = (size_t)1 << 20;
    char *text = malloc(big + 16);
    assert_non_null(text);
    memcpy(text, "x\ny\n", 4);
    memset(text + 4, 'q', big);
    text[4 + big] = '\n';
    write_to(path, text, big + 5);
    free(text);
    expect_fail(HG_EINVAL, 1000, 0);
    check_msg(path, 3, "line is 1048576 bytes long, more than the limit of 1000");
    WRITE_LIT(path, "abc\nabcd\r\n");
    expect_fail(HG_EINVAL, 3, 0);
    check_msg(path, 2, "4 bytes long");
    expect_fail(HG_EINVAL, 0, 0); /* no limit is no limit */
}

static void test_unreadable(void **state)
{
    (void)state;
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/no_such_file.de", dir);
    hg_text_lines t;
    assert_int_equal(hg_text_read_lines(&t, missing, 100, 0), HG_EIO);
    check_msg(missing, 0, "cannot open");
    assert_int_equal(hg_text_read_lines(&t, dir, 100, 0), HG_EIO); /* a directory */
    check_msg(dir, 0, NULL);
    assert_null(t.buf);
}

static void test_parallel(void **state)
{
    (void)state;
    hg_text_lines s, t;
    WRITE_LIT(path, "eins\nzwei\n");
    WRITE_LIT(path2, "one\ntwo");
    assert_int_equal(hg_text_read_parallel(&s, &t, path, path2, 100), HG_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(t.n, 2);
    assert_string_equal(s.line[1], "zwei");
    assert_string_equal(t.line[1], "two");
    hg_text_lines_free(&s);
    hg_text_lines_free(&t);

    WRITE_LIT(path2, "one\ntwo\nthree\n");
    assert_int_equal(hg_text_read_parallel(&s, &t, path, path2, 100), HG_EINVAL);
    char want[9000];
    snprintf(want, sizeof want, "%s has 2 lines but %s has 3", path, path2);
    assert_string_equal(hg_last_error(), want);
    assert_null(s.buf);
    assert_null(t.buf);

    WRITE_LIT(path2, ""); /* an empty side */
    assert_int_equal(hg_text_read_parallel(&s, &t, path, path2, 100), HG_EINVAL);
    check_msg(path2, 0, "empty file");
    assert_int_equal(hg_text_read_parallel(&s, &t, path2, path, 100), HG_EINVAL);
    check_msg(path2, 0, "empty file");
    WRITE_LIT(path2, "ok\n\xed\xa0\x80\n"); /* a bad target line */
    assert_int_equal(hg_text_read_parallel(&s, &t, path, path2, 100), HG_EINVAL);
    check_msg(path2, 2, "surrogate");
    assert_null(s.buf);
    assert_null(t.buf);
}

/* The shipped corpus reads as it is: the known line counts, both sides alike. */
static void test_multi30k(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int64_t n;
    } split[] = {{"train", 29000}, {"val", 1014}, {"test2016", 1000}};
    for (size_t k = 0; k < 3; k++) {
        char de[4096], en[4096];
        snprintf(de, sizeof de, "%s/multi30k/%s.de", HG_SOURCE_DATA_DIR, split[k].name);
        snprintf(en, sizeof en, "%s/multi30k/%s.en", HG_SOURCE_DATA_DIR, split[k].name);
        hg_text_lines s, t;
        assert_int_equal(hg_text_read_parallel(&s, &t, de, en, 4096), HG_OK);
        assert_int_equal(s.n, split[k].n);
        assert_int_equal(t.n, split[k].n);
        for (int64_t i = 0; i < s.n; i++)
            assert_true(strlen(s.line[i]) > 0 && strlen(t.line[i]) > 0);
        hg_text_lines_free(&s);
        hg_text_lines_free(&t);
    }
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/hgnn_test_text_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/a.de", dir);
    snprintf(path2, sizeof path2, "%s/b.en", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    unlink(path2);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_as_written), cmocka_unit_test(test_empty),
        cmocka_unit_test(test_invalid_utf8),     cmocka_unit_test(test_nul_and_long_lines),
        cmocka_unit_test(test_unreadable),       cmocka_unit_test(test_parallel),
        cmocka_unit_test(test_multi30k),
    };
    return cmocka_run_group_tests_name("text", tests, setup, teardown) ? 1 : 0;
}
