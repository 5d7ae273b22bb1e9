/* text.c - sentence files (text.h): read whole, validated, split into lines in place. */
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../src/hg.h"

/* Read the whole file into a malloc'd buffer with one spare byte at the end (for a NUL). */
static int read_file(const char *path, char **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1; /* + 1: the end of the file is seen in one pass */
    char *buf = malloc(cap + 1);
    size_t n = 0;
    int rc = HG_OK;
    for (;;) {
        if (!buf) {
            rc = HG_ERRORF(HG_ENOMEM, "%s: out of memory reading %zu bytes", path, cap);
            break;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) {
            rc = HG_ERRORF(HG_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
        if (n < cap)
            break; /* end of file */
        char *grown = realloc(buf, 2 * cap + 1);
        if (!grown)
            free(buf);
        buf = grown;
        cap *= 2;
    }
    fclose(f);
    if (rc != HG_OK) {
        free(buf);
        return rc;
    }
    *data = buf;
    *size = n;
    return HG_OK;
}

/* Check that s[0 .. len) is UTF-8 (RFC 3629) without a NUL byte. On failure returns what is
 * wrong and sets *at to the offset of the first byte of the offending sequence. */
static const char *check_utf8(const unsigned char *s, size_t len, size_t *at)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        *at = i;
        if (c == 0)
            return "NUL byte";
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c < 0xc0)
            return "invalid UTF-8 (continuation byte without a lead byte)";
        if (c < 0xe0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if (c < 0xf0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if (c < 0xf8) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return "invalid UTF-8 (byte 0xf8..0xff)";
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
                return "invalid UTF-8 (sequence cut short)";
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min)
            return "invalid UTF-8 (overlong encoding)";
        if (cp >= 0xd800 && cp <= 0xdfff)
            return "invalid UTF-8 (surrogate code point)";
        if (cp > 0x10ffff)
            return "invalid UTF-8 (code point above U+10FFFF)";
        i += need + 1;
    }
    return NULL;
}

int hg_text_read_lines(hg_text_lines *out, const char *path, int64_t max_line_bytes,
                       int allow_empty)
{
    memset(out, 0, sizeof *out);
    if (max_line_bytes <= 0)
        return HG_ERRORF(HG_EINVAL, "%s: line length limit %lld is not positive", path,
                         (long long)max_line_bytes);
    char *buf;
    size_t size;
    int rc = read_file(path, &buf, &size);
    if (rc != HG_OK)
        return rc;
    /* lines: the '\n's, and one more when the last line has none */
    int64_t n = 0;
    for (const char *p = buf; (p = memchr(p, '\n', size - (size_t)(p - buf))) != NULL; p++)
        n++;
    if (size > 0 && buf[size - 1] != '\n')
        n++;
    if (n == 0 && !allow_empty) {
        free(buf);
        return HG_ERRORF(HG_EINVAL, "%s: empty file, expected one sentence a line", path);
    }
    char **line = malloc((size_t)(n ? n : 1) * sizeof *line);
    if (!line) {
        free(buf);
        return HG_ERRORF(HG_ENOMEM, "%s: out of memory for %lld lines", path, (long long)n);
    }
    char *s = buf;
    const char *end = buf + size;
    for (int64_t i = 0; i < n; i++) {
        char *e = memchr(s, '\n', (size_t)(end - s));
        if (!e)
            e = buf + size; /* the final line without '\n' (the spare byte takes its NUL) */
        char *next = e + 1;
        if (e > s && e[-1] == '\r')
            e--;
        size_t len = (size_t)(e - s), at;
        const char *bad = NULL;
        if ((int64_t)len > max_line_bytes)
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: line is %zu bytes long, more than the limit of %lld",
                           path, (long long)(i + 1), len, (long long)max_line_bytes);
        else if ((bad = check_utf8((const unsigned char *)s, len, &at)) != NULL)
            rc = HG_ERRORF(HG_EINVAL, "%s:%lld: %s at byte %zu", path, (long long)(i + 1), bad,
                           at + 1);
        if (rc != HG_OK) {
            free(line);
            free(buf);
            return rc;
        }
        *e = '\0';
        line[i] = s;
        s = next;
    }
    out->n = n;
    out->line = line;
    out->buf = buf;
    return HG_OK;
}

int hg_text_read_parallel(hg_text_lines *src, hg_text_lines *tgt, const char *src_path,
                          const char *tgt_path, int64_t max_line_bytes)
{
    memset(tgt, 0, sizeof *tgt);
    int rc = hg_text_read_lines(src, src_path, max_line_bytes, 0);
    if (rc == HG_OK)
        rc = hg_text_read_lines(tgt, tgt_path, max_line_bytes, 0);
    if (rc == HG_OK && src->n != tgt->n)
        rc = HG_ERRORF(HG_EINVAL, "%s has %lld lines but %s has %lld", src_path,
                       (long long)src->n, tgt_path, (long long)tgt->n);
    if (rc != HG_OK) {
        hg_text_lines_free(src);
        hg_text_lines_free(tgt);
    }
    return rc;
}

int hg_text_check_utf8(const char *path, const char *buf, size_t len)
{
    size_t at;
    const char *bad = check_utf8((const unsigned char *)buf, len, &at);
    if (!bad)
        return HG_OK;
    long long line = 1;
    size_t start = 0;
    for (size_t i = 0; i < at; i++)
        if (buf[i] == '\n')
            line++, start = i + 1;
    return HG_ERRORF(HG_EINVAL, "%s:%lld: %s at byte %zu", path, line, bad, at - start + 1);
}

void hg_text_lines_free(hg_text_lines *t)
{
    free(t->line);
    free(t->buf);
    memset(t, 0, sizeof *t);
}
