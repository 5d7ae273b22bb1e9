/* gpt2bpe_files.c - the files of the GPT-2 tokeniser: encoder.json and vocab.bpe read into
 * token bytes and merges (gpt2bpe_internal.h), and token files written (gpt2bpe.h; tokens.c
 * reads them).
 *
 * The vocabulary files write each byte as one printable character (GPT-2's map of bytes to
 * code points): printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for
 * themselves, and the other 68 bytes, in increasing order, are U+0100..U+0143. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2bpe.h"
#include "gpt2bpe_internal.h"
#include "../src/hg.h"
#include "../src/io.h"

/* The byte a vocabulary character stands for, or -1. */
static int char_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 0x100 || cp >= 0x100 + 68)
        return -1;
    uint32_t k = cp - 0x100; /* the k-th byte that is not printable */
    return k < 33 ? (int)k : k < 67 ? (int)(0x7F + k - 33) : 0xAD;
}

/* One UTF-8 sequence at p (before end): its code point in *cp and its length, or 0 when it is
 * not well-formed. */
static int utf8_char(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
    unsigned c = p[0];
    int n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
          : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || end - p < n)
        return 0;
    uint32_t v = n == 1 ? c : c & (0x7Fu >> n);
    for (int k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[k] & 0x3Fu);
    }
    if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (n == 4 && (v < 0x10000 ||
                                                                          v > 0x10FFFF)))
        return 0;
    *cp = v;
    return n;
}

/* ---- encoder.json -------------------------------------------------------------------------- */

typedef struct json_in {
    const unsigned char *p, *start, *end;
    const char *path;
} json_in;

static int json_err(const json_in *j, const char *what)
{
    hg_quoted q;
    return HG_ERRORF(HG_EFORMAT, "%s: byte %zu: %s", hg_quote(&q, j->path),
                     (size_t)(j->p - j->start), what);
}

static void json_ws(json_in *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hex4(const unsigned char *p, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int c = p[k], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

/* A JSON string of vocabulary characters: its bytes appended at out[*n] (room for as many
 * bytes as the string has characters is the caller's). */
static int json_token(json_in *j, char *out, size_t *n)
{
    if (j->p >= j->end || *j->p != '"')
        return json_err(j, "expected a string");
    j->p++;
    for (;;) {
        if (j->p >= j->end)
            return json_err(j, "unterminated string");
        uint32_t cp;
        if (*j->p == '"') {
            j->p++;
            return HG_OK;
        } else if (*j->p == '\\') {
            static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
            const char *e = j->p + 1 < j->end ? strchr(esc, j->p[1]) : NULL;
            if (e && *e) {
                cp = (unsigned char)val[e - esc];
                j->p += 2;
            } else if (j->end - j->p >= 6 && j->p[1] == 'u' && hex4(j->p + 2, &cp)) {
                j->p += 6; /* a surrogate is no vocabulary character: rejected below */
            } else
                return json_err(j, "bad escape in string");
        } else {
            int len = utf8_char(j->p, j->end, &cp);
            if (len == 0 || cp < 0x20)
                return json_err(j, "invalid UTF-8 or control character in string");
            j->p += len;
        }
        int b = char_byte(cp);
        if (b < 0)
            return json_err(j, "character outside GPT-2's byte characters in a token");
        out[(*n)++] = (char)b;
    }
}

int hg_gpt2_read_vocab(const char *path, int32_t *n_out, uint32_t **off_out, char **bytes_out)
{
    char *text;
    size_t len;
    int rc = hg_file_read(path, &text, &len);
    if (rc != HG_OK)
        return rc;
    json_in j = {(const unsigned char *)text, (const unsigned char *)text,
                 (const unsigned char *)text + len, path};
    /* tokens in file order: raw[roff[k] .. roff[k + 1]) and their ids tid[k] */
    size_t cap = 1024, n = 0;
    char *raw = malloc(len + 1);
    uint32_t *roff = malloc((cap + 1) * sizeof *roff), *off = NULL;
    int32_t *tid = malloc(cap * sizeof *tid), *at = NULL;
    char *bytes = NULL;
    if (!raw || !roff || !tid)
        goto nomem;
    roff[0] = 0;
    json_ws(&j);
    if (j.p >= j.end || *j.p != '{') {
        rc = json_err(&j, "expected '{'");
        goto done;
    }
    j.p++;
    json_ws(&j);
    int more = j.p >= j.end || *j.p != '}'; /* '{}' holds no token */
    while (more) {
        if (n == cap) {
            cap *= 2;
            uint32_t *r2 = realloc(roff, (cap + 1) * sizeof *roff);
            if (r2)
                roff = r2;
            int32_t *t2 = realloc(tid, cap * sizeof *tid);
            if (t2)
                tid = t2;
            if (!r2 || !t2)
                goto nomem;
        }
        size_t m = roff[n];
        HG_CHECK(json_token(&j, raw, &m));
        if (m == roff[n]) {
            rc = json_err(&j, "empty token");
            goto done;
        }
        roff[n + 1] = (uint32_t)m;
        json_ws(&j);
        if (j.p >= j.end || *j.p != ':') {
            rc = json_err(&j, "expected ':'");
            goto done;
        }
        j.p++;
        json_ws(&j);
        int64_t v = 0;
        const unsigned char *d = j.p;
        while (j.p < j.end && *j.p >= '0' && *j.p <= '9' && v <= 65536)
            v = 10 * v + (*j.p++ - '0');
        if (j.p == d || v >= 65536) {
            rc = json_err(&j, j.p == d ? "expected a token id" : "token id above 65535");
            goto done;
        }
        tid[n++] = (int32_t)v;
        json_ws(&j);
        if (j.p >= j.end || (*j.p != ',' && *j.p != '}')) {
            rc = json_err(&j, "expected ',' or '}'");
            goto done;
        }
        more = *j.p++ == ',';
        json_ws(&j);
    }
    if (n == 0) {
        if (j.p >= j.end || *j.p != '}') {
            rc = json_err(&j, "expected '}'");
            goto done;
        }
        j.p++;
    }
    json_ws(&j);
    if (j.p != j.end) {
        rc = json_err(&j, "text after the object");
        goto done;
    }
    /* ids 0..n-1, each once: place each token at its id */
    hg_quoted q;
    at = malloc((n + 1) * sizeof *at);
    off = malloc((n + 1) * sizeof *off);
    bytes = malloc(roff[n] + 1);
    if (!at || !off || !bytes)
        goto nomem;
    for (size_t k = 0; k < n; k++)
        at[k] = -1;
    for (size_t k = 0; k < n; k++) {
        if ((size_t)tid[k] >= n || at[tid[k]] >= 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s: token id %d is %s", hg_quote(&q, path), (int)tid[k],
                           (size_t)tid[k] >= n ? "not below the number of tokens" : "repeated");
            goto done;
        }
        at[tid[k]] = (int32_t)k;
    }
    off[0] = 0;
    for (size_t id = 0; id < n; id++) {
        size_t k = (size_t)at[id], m = roff[k + 1] - roff[k];
        memcpy(bytes + off[id], raw + roff[k], m);
        off[id + 1] = off[id] + (uint32_t)m;
    }
    *n_out = (int32_t)n;
    *off_out = off;
    *bytes_out = bytes;
    off = NULL;
    bytes = NULL;
    rc = HG_OK;
    goto done;
nomem:
    rc = HG_ERRORF(HG_ENOMEM, "%s: out of memory", path);
done:
    free(text);
    free(raw);
    free(roff);
    free(tid);
    free(at);
    free(off);
    free(bytes);
    return rc;
}

/* ---- vocab.bpe ----------------------------------------------------------------------------- */

void hg_gpt2_merges_free(hg_gpt2_merges *m)
{
    free(m->off);
    free(m->bytes);
    free(m->line);
    memset(m, 0, sizeof *m);
}

int hg_gpt2_read_merges(const char *path, hg_gpt2_merges *m)
{
    memset(m, 0, sizeof *m);
    char *text;
    size_t len;
    int rc = hg_file_read(path, &text, &len);
    if (rc != HG_OK)
        return rc;
    hg_quoted q;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    m->off = malloc((2 * lines + 3) * sizeof *m->off);
    m->line = malloc((lines + 1) * sizeof *m->line);
    m->bytes = malloc(len + 1);
    if (!m->off || !m->line || !m->bytes) {
        rc = HG_ERRORF(HG_ENOMEM, "%s: out of memory", hg_quote(&q, path));
        goto done;
    }
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    if (len < 8 || memcmp(text, "#version", 8) != 0) {
        rc = HG_ERRORF(HG_EFORMAT, "%s:1: expected the header line '#version: ...'",
                       hg_quote(&q, path));
        goto done;
    }
    p = memchr(p, '\n', len);
    p = p ? p + 1 : end;
    size_t nb = 0;
    m->off[0] = 0;
    for (int32_t lineno = 2; p < end; lineno++) {
        const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        int parts = 0;
        size_t part_start = nb;
        while (p < eol) {
            uint32_t cp;
            int b = 0, n = *p == ' ' ? 1 : utf8_char(p, eol, &cp);
            if (n == 0 || (*p != ' ' && (b = char_byte(cp)) < 0)) {
                rc = HG_ERRORF(HG_EFORMAT, "%s:%d: %s", hg_quote(&q, path), (int)lineno,
                               n ? "character outside GPT-2's byte characters"
                                 : "invalid UTF-8");
                goto done;
            }
            if (*p == ' ') {
                if (nb == part_start || parts > 0)
                    break; /* an empty part, or a third one: rejected below */
                m->off[2 * m->n + 1] = (uint32_t)nb;
                m->max_len = HG_MAX(m->max_len, nb - part_start);
                part_start = nb;
                parts = 1;
            } else
                m->bytes[nb++] = (char)b;
            p += n;
        }
        if (p != eol || parts != 1 || nb == part_start) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%d: expected a merge 'LEFT RIGHT'", hg_quote(&q, path),
                           (int)lineno);
            goto done;
        }
        m->max_len = HG_MAX(m->max_len, nb - part_start);
        m->off[2 * m->n + 2] = (uint32_t)nb;
        m->line[m->n++] = lineno;
        p = eol + 1;
    }
    rc = HG_OK;
done:
    free(text);
    if (rc != HG_OK)
        hg_gpt2_merges_free(m);
    return rc;
}

/* ---- token files --------------------------------------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int k = 0; k < n; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

int hg_tokfile_write(const char *path, const int32_t *ids, size_t n, int32_t vocab)
{
    if (vocab < 1 || vocab > 65536)
        return HG_ERRORF(HG_EINVAL, "token file: vocabulary size %d outside [1, 65536]",
                         (int)vocab);
    unsigned char *buf = malloc(HG_TOKFILE_HEADER + 2 * n);
    if (!buf)
        return HG_ERRORF(HG_ENOMEM, "out of memory (token file of %zu tokens)", n);
    memcpy(buf, HG_TOKFILE_MAGIC, 8);
    put_le(buf + 8, HG_TOKFILE_VERSION, 4);
    put_le(buf + 12, (uint64_t)vocab, 4);
    put_le(buf + 16, n, 8);
    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= vocab) {
            free(buf);
            return HG_ERRORF(HG_EINVAL, "token %zu is %lld, outside the vocabulary of %d", k,
                             (long long)ids[k], (int)vocab);
        }
        put_le(buf + HG_TOKFILE_HEADER + 2 * k, (uint64_t)ids[k], 2);
    }
    int rc = hg_file_write(path, buf, HG_TOKFILE_HEADER + 2 * n);
    free(buf);
    return rc;
}
