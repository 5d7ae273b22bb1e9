/* bleu_tok.c - the text side of the translation metrics (contracts in bleu_tok.h): Python's
 * whitespace and lowercasing, and the tokenisers of sacreBLEU's BLEU, each one a sequence of
 * whole-string rewrites that mirrors the steps sacreBLEU applies, in the same order. */
#include "bleu_tok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <locale.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "bleu.h"
#include "hg.h"

int hg_mt_buf_reserve(hg_mt_buf *b, size_t need)
{
    if (need <= b->cap)
        return HG_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return HG_ERRORF(HG_ENOMEM, "out of memory (text buffer of %zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return HG_OK;
}

void hg_mt_buf_free(hg_mt_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- UTF-8 and Python's whitespace --------------------------------------------------------- */

uint32_t hg_utf8_next(const char **s)
{
    const unsigned char *p = (const unsigned char *)*s;
    uint32_t c = p[0];
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n > 1) {
        c &= 0x3Fu >> (n - 1);
        for (int k = 1; k < n; k++)
            c = (c << 6) | (p[k] & 0x3Fu);
    }
    *s += n;
    return c;
}

int64_t hg_utf8_invalid_at(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* the length of the sequence and the range of its second byte (Unicode's table of
         * well-formed sequences); the other continuation bytes are 0x80..0xBF */
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else
            return (int64_t)i;
        if (i + len > n || p[i + 1] < lo || p[i + 1] > hi)
            return (int64_t)i;
        for (size_t k = 2; k < len; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF)
                return (int64_t)i;
        i += len;
    }
    return -1;
}

/* The code point ending just before p (p > start, valid UTF-8). */
static uint32_t utf8_prev(const char *start, const char **p)
{
    const char *q = *p - 1;
    while (q > start && ((unsigned char)*q & 0xC0) == 0x80)
        q--;
    *p = q;
    const char *r = q;
    return hg_utf8_next(&r);
}

static size_t utf8_put(char *dst, uint32_t c)
{
    if (c < 0x80) {
        dst[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        dst[0] = (char)(0xC0 | (c >> 6));
        dst[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        dst[0] = (char)(0xE0 | (c >> 12));
        dst[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (c >> 18));
    dst[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Python's str.isspace(): the ASCII separators and controls \t..\r, \x1c..\x1f, space, and the
 * Unicode spaces and line/paragraph separators. */
int hg_py_isspace(uint32_t c)
{
    if (c < 0x80)
        return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- setup --------------------------------------------------------------------------------- */

static int compile(void **out, const char *pattern)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return HG_ERRORF(HG_EUNSUPPORTED, "PCRE2 cannot compile '%s': %s", pattern, (char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: matching falls back to the
                                                  interpreter when JIT is unavailable */
    *out = re;
    return HG_OK;
}

int hg_mt_text_init(hg_mt_text *t, hg_bleu_tok kind, int lowercase)
{
    memset(t, 0, sizeof *t);
    if ((unsigned)kind > HG_BLEU_TOK_CHAR)
        return HG_ERRORF(HG_EINVAL, "unknown tokeniser %d", (int)kind);
    t->kind = kind;
    t->lowercase = lowercase != 0;
    int rc = HG_OK;
    if (kind == HG_BLEU_TOK_INTL) {
        /* mteval-v14's international tokenisation, as sacreBLEU's intl applies it: punctuation
         * not preceded by a digit, punctuation not followed by a digit, every symbol. */
        HG_CHECK(compile(&t->re[0], "(\\P{N})(\\p{P})"));
        HG_CHECK(compile(&t->re[1], "(\\p{P})(\\P{N})"));
        HG_CHECK(compile(&t->re[2], "(\\p{S})"));
    }
    if (t->lowercase) {
        t->loc = (void *)newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        if (!t->loc)
            HG_CHECK(HG_ERRORF(HG_EUNSUPPORTED, "lowercasing needs the C.UTF-8 locale"));
        /* Python's Case_Ignorable (marks, format characters, modifiers and the in-word
         * punctuation of word breaking) and Cased (upper, lower and title case letters, plus
         * the uppercase-only ordinal indicators and squared or circled capitals; letters
         * with a case mapping are added in is_cased) */
        HG_CHECK(compile(&t->sigma_re[0],
                         "^[\\p{Mn}\\p{Me}\\p{Cf}\\p{Lm}\\p{Sk}'.:\\x{B7}\\x{387}\\x{55F}"
                         "\\x{5F4}\\x{2018}\\x{2019}\\x{2024}\\x{2027}\\x{FE13}\\x{FE52}"
                         "\\x{FE55}\\x{FF07}\\x{FF0E}\\x{FF1A}]$"));
        HG_CHECK(compile(&t->sigma_re[1],
                         "^[\\p{Lu}\\p{Ll}\\p{Lt}\\x{AA}\\x{BA}\\x{1F130}-\\x{1F149}"
                         "\\x{1F150}-\\x{1F169}\\x{1F170}-\\x{1F189}]$"));
    }
    if (t->re[0] || t->sigma_re[0]) {
        t->md = pcre2_match_data_create(4, NULL);
        if (!t->md)
            HG_CHECK(HG_ERRORF(HG_ENOMEM, "out of memory (PCRE2 match data)"));
    }
done:
    if (rc)
        hg_mt_text_free(t);
    return rc;
}

void hg_mt_text_free(hg_mt_text *t)
{
    for (int k = 0; k < 3; k++)
        pcre2_code_free(t->re[k]);
    for (int k = 0; k < 2; k++)
        pcre2_code_free(t->sigma_re[k]);
    pcre2_match_data_free(t->md);
    if (t->loc)
        freelocale((locale_t)t->loc);
    hg_mt_buf_free(&t->a);
    hg_mt_buf_free(&t->b);
    memset(t, 0, sizeof *t);
}

/* ---- lowercasing --------------------------------------------------------------------------- */

static int class_has(hg_mt_text *t, void *re, uint32_t c)
{
    char u[4];
    size_t n = utf8_put(u, c);
    return pcre2_match(re, (PCRE2_SPTR)u, n, 0, PCRE2_NO_UTF_CHECK, t->md, NULL) > 0;
}

static int is_cased(hg_mt_text *t, uint32_t c)
{
    locale_t loc = (locale_t)t->loc;
    return class_has(t, t->sigma_re[1], c) || towlower_l((wint_t)c, loc) != (wint_t)c ||
           towupper_l((wint_t)c, loc) != (wint_t)c;
}

/* Python lowers a capital sigma to the final form when a cased letter precedes it and none
 * follows it (case-ignorable characters skipped on both sides). at: the sigma in [s, end). */
static int final_sigma(hg_mt_text *t, const char *s, const char *at, const char *end)
{
    const char *p = at;
    uint32_t c = 0;
    int found = 0;
    while (p > s) {
        c = utf8_prev(s, &p);
        if (!class_has(t, t->sigma_re[0], c)) {
            found = 1;
            break;
        }
    }
    if (!found || !is_cased(t, c))
        return 0;
    p = at;
    hg_utf8_next(&p);
    while (p < end) {
        c = hg_utf8_next(&p);
        if (!class_has(t, t->sigma_re[0], c))
            return !is_cased(t, c);
    }
    return 1;
}

/* Python's str.lower() of in[0..n) into out: the simple lowercase mapping, with the one
 * unconditional full mapping (U+0130 -> "i" U+0307) and the final-sigma rule. */
static int lower(hg_mt_text *t, const char *in, size_t n, hg_mt_buf *out)
{
    int rc = hg_mt_buf_reserve(out, 2 * n + 1); /* a lowercase letter may be longer */
    if (rc)
        return rc;
    locale_t loc = (locale_t)t->loc;
    const char *p = in, *end = in + n;
    size_t len = 0;
    while (p < end) {
        const char *at = p;
        uint32_t c = hg_utf8_next(&p), l;
        if (c < 0x80) {
            out->p[len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            continue;
        }
        if (c == 0x130) {
            len += utf8_put(out->p + len, 'i');
            len += utf8_put(out->p + len, 0x307);
            continue;
        }
        if (c == 0x3A3)
            l = final_sigma(t, in, at, end) ? 0x3C2 : 0x3C3;
        else
            l = (uint32_t)towlower_l((wint_t)c, loc);
        len += utf8_put(out->p + len, l);
    }
    out->p[len] = '\0';
    out->len = len;
    return HG_OK;
}

/* ---- rewriting steps (each reads in[0..n) and writes out) --------------------------------- */

/* Python's str.rstrip(): the length without trailing whitespace. */
static size_t rstrip_len(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    size_t keep = 0;
    while (p < end) {
        uint32_t c = hg_utf8_next(&p);
        if (!hg_py_isspace(c))
            keep = (size_t)(p - s);
    }
    return keep;
}

static int copy(const char *in, size_t n, hg_mt_buf *out)
{
    int rc = hg_mt_buf_reserve(out, n + 1);
    if (rc)
        return rc;
    memcpy(out->p, in, n);
    out->p[n] = '\0';
    out->len = n;
    return HG_OK;
}

/* Python's str.replace(from, to): every non-overlapping occurrence, left to right. */
static int replace(const char *in, size_t n, hg_mt_buf *out, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    int rc = hg_mt_buf_reserve(out, n + 1); /* to is never longer than from here */
    if (rc)
        return rc;
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        if (i + fl <= n && !memcmp(in + i, from, fl)) {
            memcpy(out->p + len, to, tl);
            len += tl;
            i += fl;
        } else {
            out->p[len++] = in[i++];
        }
    }
    out->p[len] = '\0';
    out->len = len;
    return HG_OK;
}

/* 13a's first rule: a space on each side of every ASCII punctuation character except
 * apostrophe, comma, hyphen and period (and of every space). */
static int is_13a_punct(unsigned char c)
{
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
           (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* The four rules of the 13a tokeniser on the space-padded line. Each is a left-to-right,
 * non-overlapping substitution of at most two characters, all of whose literal members are
 * ASCII: the bytes of a multi-byte character can neither be one of them nor a digit, so the
 * substitutions give the same result on bytes as on code points. */
enum { R13_PUNCT, R13_PRE_DOT, R13_POST_DOT, R13_DASH };
static int rule_13a(const char *in, size_t n, hg_mt_buf *out, int rule)
{
    int rc = hg_mt_buf_reserve(out, 3 * n + 1);
    if (rc)
        return rc;
    const unsigned char *s = (const unsigned char *)in;
    char *o = out->p;
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i], d = i + 1 < n ? s[i + 1] : 0;
        int pair = i + 1 < n;
        if (rule == R13_PUNCT && is_13a_punct(c)) { /* "x" -> " x " */
            o[len++] = ' ';
            o[len++] = (char)c;
            o[len++] = ' ';
            i++;
        } else if ((rule == R13_PRE_DOT && pair && !is_digit(c) && (d == '.' || d == ',')) ||
                   (rule == R13_DASH && pair && is_digit(c) && d == '-')) { /* "ab" -> "a b " */
            o[len++] = (char)c;
            o[len++] = ' ';
            o[len++] = (char)d;
            o[len++] = ' ';
            i += 2;
        } else if (rule == R13_POST_DOT && pair && (c == '.' || c == ',') && !is_digit(d)) {
            o[len++] = ' '; /* "ab" -> " a b" */
            o[len++] = (char)c;
            o[len++] = ' ';
            o[len++] = (char)d;
            i += 2;
        } else {
            o[len++] = (char)c;
            i++;
        }
    }
    o[len] = '\0';
    out->len = len;
    return HG_OK;
}

static int pad_spaces(const char *in, size_t n, hg_mt_buf *out)
{
    int rc = hg_mt_buf_reserve(out, n + 3);
    if (rc)
        return rc;
    out->p[0] = ' ';
    memcpy(out->p + 1, in, n);
    out->p[n + 1] = ' ';
    out->p[n + 2] = '\0';
    out->len = n + 2;
    return HG_OK;
}

/* One of intl's substitutions: every match of re replaced by repl ($1, $2 its groups). */
static int substitute(hg_mt_text *t, void *re, const char *repl, const char *in, size_t n,
                      hg_mt_buf *out)
{
    size_t need = 3 * n + 1; /* each substitution adds at most two spaces per character */
    for (;;) {
        int rc = hg_mt_buf_reserve(out, need);
        if (rc)
            return rc;
        PCRE2_SIZE olen = out->cap;
        int r = pcre2_substitute(re, (PCRE2_SPTR)in, n, 0,
                                 PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
                                     PCRE2_NO_UTF_CHECK,
                                 t->md, NULL, (PCRE2_SPTR)repl, PCRE2_ZERO_TERMINATED,
                                 (PCRE2_UCHAR *)out->p, &olen);
        if (r >= 0) {
            out->len = olen;
            return HG_OK;
        }
        if (r != PCRE2_ERROR_NOMEMORY || olen <= out->cap) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(r, msg, sizeof msg);
            return HG_ERRORF(HG_EUNSUPPORTED, "PCRE2 substitution failed: %s", (char *)msg);
        }
        need = olen;
    }
}

/* The char tokeniser: every code point followed by a space. */
static int spread_chars(const char *in, size_t n, hg_mt_buf *out)
{
    int rc = hg_mt_buf_reserve(out, 2 * n + 1);
    if (rc)
        return rc;
    const char *p = in, *end = in + n;
    size_t len = 0;
    while (p < end) {
        const char *q = p;
        hg_utf8_next(&p);
        memcpy(out->p + len, q, (size_t)(p - q));
        len += (size_t)(p - q);
        out->p[len++] = ' ';
    }
    out->p[len] = '\0';
    out->len = len;
    return HG_OK;
}

/* ---- the preparations of a segment --------------------------------------------------------- */

/* Chains the steps: each one reads the text so far and writes the scratch buffer not holding
 * it. */
typedef struct chain {
    hg_mt_text *t;
    const char *cur;
    size_t n;
    hg_mt_buf *dst;
} chain;

static void advance(chain *c)
{
    c->cur = c->dst->p;
    c->n = c->dst->len;
    c->dst = c->dst == &c->t->a ? &c->t->b : &c->t->a;
}

#define STEP(c, call)         \
    do {                      \
        rc = (call);          \
        if (rc) return rc;    \
        advance(c);           \
    } while (0)

int hg_mt_text_bleu(hg_mt_text *t, const char *s, const char **out)
{
    chain c = {t, s, strlen(s), &t->a};
    int rc;
    if (t->lowercase)
        STEP(&c, lower(t, c.cur, c.n, c.dst));
    c.n = rstrip_len(c.cur, c.n);
    switch (t->kind) {
    case HG_BLEU_TOK_13A:
        STEP(&c, replace(c.cur, c.n, c.dst, "<skipped>", ""));
        STEP(&c, replace(c.cur, c.n, c.dst, "-\n", ""));
        STEP(&c, replace(c.cur, c.n, c.dst, "\n", " "));
        if (memchr(c.cur, '&', c.n)) {
            STEP(&c, replace(c.cur, c.n, c.dst, "&quot;", "\""));
            STEP(&c, replace(c.cur, c.n, c.dst, "&amp;", "&"));
            STEP(&c, replace(c.cur, c.n, c.dst, "&lt;", "<"));
            STEP(&c, replace(c.cur, c.n, c.dst, "&gt;", ">"));
        }
        STEP(&c, pad_spaces(c.cur, c.n, c.dst));
        STEP(&c, rule_13a(c.cur, c.n, c.dst, R13_PUNCT));
        STEP(&c, rule_13a(c.cur, c.n, c.dst, R13_PRE_DOT));
        STEP(&c, rule_13a(c.cur, c.n, c.dst, R13_POST_DOT));
        STEP(&c, rule_13a(c.cur, c.n, c.dst, R13_DASH));
        break;
    case HG_BLEU_TOK_INTL:
        STEP(&c, substitute(t, t->re[0], "$1 $2 ", c.cur, c.n, c.dst));
        STEP(&c, substitute(t, t->re[1], " $1 $2", c.cur, c.n, c.dst));
        STEP(&c, substitute(t, t->re[2], " $1 ", c.cur, c.n, c.dst));
        break;
    case HG_BLEU_TOK_CHAR:
        STEP(&c, spread_chars(c.cur, c.n, c.dst));
        break;
    default: /* none */
        STEP(&c, copy(c.cur, c.n, c.dst));
        break;
    }
    *out = c.cur;
    return HG_OK;
}

int hg_mt_text_chars(hg_mt_text *t, const char *s, int keep_space, uint32_t **cp, size_t *cap_cp,
                     size_t *n)
{
    chain c = {t, s, strlen(s), &t->a};
    int rc;
    if (t->lowercase)
        STEP(&c, lower(t, c.cur, c.n, c.dst));
    if (*cap_cp < c.n + 1) { /* at most one code point per byte */
        uint32_t *p = realloc(*cp, (c.n + 1) * sizeof *p);
        if (!p)
            return HG_ERRORF(HG_ENOMEM, "out of memory (%zu code points)", c.n + 1);
        *cp = p;
        *cap_cp = c.n + 1;
    }
    const char *p = c.cur, *end = c.cur + c.n;
    size_t k = 0;
    while (p < end) {
        uint32_t u = hg_utf8_next(&p);
        if (keep_space || !hg_py_isspace(u))
            (*cp)[k++] = u;
    }
    *n = k;
    return HG_OK;
}
