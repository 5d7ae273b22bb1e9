/* json.c - the minimal JSON object writer of io.h. */
#include "io.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hg.h"

static void jput(hg_json *j, const char *s, size_t n)
{
    if (j->status != HG_OK || n == 0)
        return;
    if (j->f) {
        if (fwrite(s, 1, n, j->f) != n)
            j->status = HG_ERRORF(HG_EIO, "JSON output: write error: %s", strerror(errno));
        else
            j->len += n;
        return;
    }
    size_t room = j->cap - 1 - j->len;
    size_t m = n < room ? n : room;
    memcpy(j->buf + j->len, s, m);
    j->len += m;
    j->buf[j->len] = '\0';
    if (m < n)
        j->status = HG_ERRORF(HG_EINVAL, "JSON output: buffer of %zu bytes too small", j->cap);
}

static void jputs(hg_json *j, const char *s) { jput(j, s, strlen(s)); }

/* A JSON string literal (RFC 8259 section 7): escape the quote, the backslash and the control
 * characters U+0000..U+001F; everything else is copied. */
static void jstring(hg_json *j, const char *s)
{
    jput(j, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jput(j, run, (size_t)(s - run));
        char esc[8];
        switch (c) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        jputs(j, esc);
        run = s + 1;
    }
    jput(j, run, (size_t)(s - run));
    jput(j, "\"", 1);
}

static int jkey(hg_json *j, const char *key)
{
    if (j->status != HG_OK)
        return 0;
    if (!key) {
        j->status = HG_ERRORF(HG_EINVAL, "JSON output: NULL key");
        return 0;
    }
    if (j->nfields++ > 0)
        jput(j, ", ", 2);
    jstring(j, key);
    jput(j, ": ", 2);
    return j->status == HG_OK;
}

void hg_json_begin_file(hg_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    if (!f)
        j->status = HG_ERRORF(HG_EINVAL, "JSON output: NULL FILE");
    jput(j, "{", 1);
}

void hg_json_begin_buf(hg_json *j, char *buf, size_t cap)
{
    memset(j, 0, sizeof *j);
    j->buf = buf;
    j->cap = cap;
    if (!buf || cap == 0)
        j->status = HG_ERRORF(HG_EINVAL, "JSON output: NULL or empty buffer");
    else
        buf[0] = '\0';
    jput(j, "{", 1);
}

void hg_json_add_str(hg_json *j, const char *key, const char *val)
{
    if (!jkey(j, key))
        return;
    if (val)
        jstring(j, val);
    else
        jputs(j, "null");
}

void hg_json_add_int(hg_json *j, const char *key, int64_t val)
{
    char b[32];
    if (!jkey(j, key))
        return;
    snprintf(b, sizeof b, "%" PRId64, val);
    jputs(j, b);
}

void hg_json_add_double(hg_json *j, const char *key, double val)
{
    char b[40];
    if (!jkey(j, key))
        return;
    if (!isfinite(val)) {
        jputs(j, "null");
        return;
    }
    snprintf(b, sizeof b, "%.17g", val);
    jputs(j, b);
}

void hg_json_add_bool(hg_json *j, const char *key, int val)
{
    if (!jkey(j, key))
        return;
    jputs(j, val ? "true" : "false");
}

void hg_json_add_raw(hg_json *j, const char *key, const char *raw)
{
    if (!jkey(j, key))
        return;
    jputs(j, raw ? raw : "null");
}

int hg_json_end(hg_json *j)
{
    jput(j, "}", 1);
    return j->status;
}
