/* test_bleu.c - BLEU and chrF (src/bleu.h) against sacreBLEU 2.6.0's own results on Multi30K
 * (tests/data/bleu_ref/expected_sacrebleu.json: corpus BLEU with the 13a, lowercased 13a,
 * none and intl tokenisers, chrF2, and sentence BLEU), and hand-derived cases: the tokenisers'
 * rules, Python's lowercasing, the smoothing methods, empty and malformed input.
 * The reference data directory comes from HG_BLEU_REF_DIR (tests/meson.build). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/bleu.h"
#include "../src/hg.h"

/* sacreBLEU's scores are reproduced with the same double operations; 1e-9 relative leaves
 * room for a libm that rounds exp/log differently, and is far below the 4 printed decimals. */
static void assert_close(double got, double want, const char *what)
{
    if (!(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want))))
        fail_msg("%s: got %.17g, want %.17g", what, got, want);
    char a[64], b[64];
    snprintf(a, sizeof a, "%.4f", got);
    snprintf(b, sizeof b, "%.4f", want);
    assert_string_equal(a, b);
}

/* ---- a small JSON reader (the expected results) ------------------------------------------- */

typedef struct jv {
    enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } type;
    double num;
    char *str;
    struct jv *item; /* array items / object values */
    char **key;      /* object keys */
    int n;
} jv;

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

static size_t put_utf8(char *o, unsigned c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static const char *parse_string(const char *p, char **out)
{
    char *s = malloc(strlen(p) + 1), *o = s; /* the escaped form is never shorter */
    assert_non_null(s);
    for (p++; *p != '"'; p++) {
        assert_true(*p != '\0');
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        p++;
        const char *esc = "\"\\/bfnrt", *val = "\"\\/\b\f\n\r\t", *e = strchr(esc, *p);
        if (*p && e) {
            *o++ = val[e - esc];
            continue;
        }
        assert_int_equal(*p, 'u');
        unsigned c = (unsigned)strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
        p += 4;
        if (c >= 0xD800 && c < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
            unsigned lo = (unsigned)strtoul((char[5]){p[3], p[4], p[5], p[6], 0}, NULL, 16);
            c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        o += put_utf8(o, c);
    }
    *o = '\0';
    *out = s;
    return p + 1;
}

static const char *parse_value(const char *p, jv *v)
{
    memset(v, 0, sizeof *v);
    p = ws(p);
    if (*p == '{' || *p == '[') {
        int obj = *p == '{';
        v->type = obj ? J_OBJ : J_ARR;
        p = ws(p + 1);
        while (*p != (obj ? '}' : ']')) {
            v->item = realloc(v->item, (size_t)(v->n + 1) * sizeof *v->item);
            assert_non_null(v->item);
            if (obj) {
                v->key = realloc(v->key, (size_t)(v->n + 1) * sizeof *v->key);
                assert_non_null(v->key);
                assert_int_equal(*p, '"');
                p = ws(parse_string(p, &v->key[v->n]));
                assert_int_equal(*p, ':');
                p++;
            }
            p = ws(parse_value(p, &v->item[v->n++]));
            if (*p == ',')
                p = ws(p + 1);
        }
        return p + 1;
    }
    if (*p == '"') {
        v->type = J_STR;
        return parse_string(p, &v->str);
    }
    if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
        v->type = J_BOOL;
        v->num = *p == 't';
        return p + (*p == 't' ? 4 : 5);
    }
    if (!strncmp(p, "null", 4)) {
        v->type = J_NULL;
        return p + 4;
    }
    char *end;
    v->type = J_NUM;
    v->num = strtod(p, &end);
    assert_true(end != p);
    return end;
}

static void jv_free(jv *v)
{
    for (int k = 0; k < v->n; k++) {
        jv_free(&v->item[k]);
        if (v->key)
            free(v->key[k]);
    }
    free(v->item);
    free(v->key);
    free(v->str);
}

/* Member `key` of object v, or NULL. */
static const jv *jget(const jv *v, const char *key)
{
    for (int k = 0; v->type == J_OBJ && k < v->n; k++)
        if (!strcmp(v->key[k], key))
            return &v->item[k];
    return NULL;
}

static const jv *jneed(const jv *v, const char *key)
{
    const jv *r = jget(v, key);
    if (!r)
        fail_msg("expected results: no member '%s'", key);
    return r;
}

/* ---- files --------------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

typedef struct lines {
    char *data;
    char **line;
    int64_t n;
} lines;

/* The lines of a file (split at '\n', as sacreBLEU reads them). */
static void read_lines(const char *path, lines *l)
{
    l->data = slurp(path);
    size_t len = strlen(l->data);
    l->n = 0;
    for (size_t i = 0; i < len; i++)
        l->n += l->data[i] == '\n';
    l->n += len && l->data[len - 1] != '\n';
    l->line = malloc((size_t)(l->n + 1) * sizeof *l->line);
    assert_non_null(l->line);
    char *p = l->data;
    for (int64_t k = 0; k < l->n; k++) {
        l->line[k] = p;
        char *e = strchr(p, '\n');
        if (!e)
            break;
        *e = '\0';
        p = e + 1;
    }
}

static void free_lines(lines *l)
{
    free(l->data);
    free(l->line);
}

static const char *ref_dir(void)
{
    const char *d = getenv("HG_BLEU_REF_DIR");
    if (!d)
        fail_msg("HG_BLEU_REF_DIR is not set (tests/meson.build sets it)");
    return d;
}

typedef struct fixture {
    jv expected;
    lines ref;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char path[4096];
    snprintf(path, sizeof path, "%s/expected_sacrebleu.json", ref_dir());
    char *text = slurp(path);
    parse_value(text, &f->expected);
    free(text);
    snprintf(path, sizeof path, "%s/multi30k/test2016.en", hg_test_data_dir());
    read_lines(path, &f->ref);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    jv_free(&f->expected);
    free_lines(&f->ref);
    free(f);
    return 0;
}

static void assert_i64_list(const int64_t *got, const jv *want, int n, const char *what)
{
    assert_int_equal(want->n, n);
    for (int k = 0; k < n; k++)
        if (got[k] != (int64_t)want->item[k].num)
            fail_msg("%s[%d]: got %lld, want %.0f", what, k, (long long)got[k], want->item[k].num);
}

/* ---- sacreBLEU's results ------------------------------------------------------------------ */

static void test_corpus_cases(void **state)
{
    fixture *f = *state;
    const jv *cases = jneed(&f->expected, "cases");
    int checked = 0;
    for (int c = 0; c < cases->n; c++) {
        const jv *k = &cases->item[c];
        const char *config = jneed(k, "config")->str, *hyp_file = jneed(k, "hyp")->str;
        char path[4096], what[256], sig[128];
        snprintf(path, sizeof path, "%s/%s", ref_dir(), hyp_file);
        snprintf(what, sizeof what, "%s %s", hyp_file, config);
        lines hyp;
        read_lines(path, &hyp);
        assert_int_equal(hyp.n, f->ref.n);
        const char *const *h = (const char *const *)hyp.line, *const *r =
            (const char *const *)f->ref.line;
        if (!strcmp(config, "chrF2")) {
            hg_chrf_opts co;
            hg_chrf_opts_default(&co);
            hg_chrf *m = NULL;
            double score;
            assert_int_equal(hg_chrf_create(&m, &co), HG_OK);
            assert_int_equal(hg_chrf_corpus(m, h, r, hyp.n, &score, NULL), HG_OK);
            assert_close(score, jneed(k, "score")->num, what);
            assert_int_equal(hg_chrf_signature(&co, sig, sizeof sig), HG_OK);
            hg_chrf_free(m);
        } else {
            hg_bleu_opts bo;
            hg_bleu_opts_corpus(&bo);
            const jv *tok = jneed(jneed(k, "kwargs"), "tokenize"), *lc = jget(jneed(k, "kwargs"),
                                                                               "lowercase");
            static const char *const names[] = {"13a", "intl", "none", "char"};
            int t = 0;
            while (t < 4 && strcmp(names[t], tok->str))
                t++;
            assert_true(t < 4);
            bo.tokenize = (hg_bleu_tok)t;
            bo.lowercase = lc && lc->num != 0;
            hg_bleu *m = NULL;
            hg_bleu_result res;
            assert_int_equal(hg_bleu_create(&m, &bo), HG_OK);
            assert_int_equal(hg_bleu_corpus(m, h, r, hyp.n, &res), HG_OK);
            assert_close(res.score, jneed(k, "score")->num, what);
            assert_i64_list(res.counts, jneed(k, "counts"), 4, "counts");
            assert_i64_list(res.totals, jneed(k, "totals"), 4, "totals");
            for (int o = 0; o < 4; o++)
                assert_close(res.precisions[o], jneed(k, "precisions")->item[o].num, "precision");
            assert_close(res.bp, jneed(k, "bp")->num, "bp");
            assert_int_equal(res.sys_len, (int64_t)jneed(k, "sys_len")->num);
            assert_int_equal(res.ref_len, (int64_t)jneed(k, "ref_len")->num);
            assert_int_equal(hg_bleu_signature(&bo, sig, sizeof sig), HG_OK);
            hg_bleu_free(m);
        }
        assert_string_equal(sig, jneed(k, "signature")->str);
        free_lines(&hyp);
        checked++;
    }
    assert_int_equal(checked, 20); /* 4 hypothesis files x (13a, 13a_lc, none, intl, chrF2) */
}

static void test_sentence_cases(void **state)
{
    fixture *f = *state;
    const jv *cases = jneed(&f->expected, "sentence_bleu_default");
    hg_bleu_opts bo;
    hg_bleu_opts_sentence(&bo);
    hg_bleu *m = NULL;
    assert_int_equal(hg_bleu_create(&m, &bo), HG_OK);
    for (int c = 0; c < cases->n; c++) {
        const jv *k = &cases->item[c];
        const char *hyp = jneed(k, "hyp")->str, *ref = jneed(k, "ref")->str;
        int line = (int)jneed(k, "line")->num;
        /* the cases are lines of the shipped files */
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", ref_dir(), jneed(k, "hyp_file")->str);
        lines hl;
        read_lines(path, &hl);
        assert_true(line >= 1 && line <= hl.n);
        assert_string_equal(hl.line[line - 1], hyp);
        assert_string_equal(f->ref.line[line - 1], ref);
        free_lines(&hl);
        hg_bleu_result res;
        assert_int_equal(hg_bleu_sentence(m, hyp, ref, &res), HG_OK);
        assert_close(res.score, jneed(k, "score")->num, "sentence BLEU");
        assert_i64_list(res.counts, jneed(k, "counts"), 4, "counts");
        assert_i64_list(res.totals, jneed(k, "totals"), 4, "totals");
        assert_close(res.bp, jneed(k, "bp")->num, "bp");
    }
    assert_true(cases->n >= 40);
    hg_bleu_free(m);
}

/* ---- hand-derived cases -------------------------------------------------------------------- */

/* BLEU of one segment under tokeniser tok (sentence options otherwise). */
static hg_bleu_result sentence(hg_bleu_tok tok, int lowercase, const char *hyp, const char *ref)
{
    hg_bleu_opts bo;
    hg_bleu_opts_sentence(&bo);
    bo.tokenize = tok;
    bo.lowercase = lowercase;
    hg_bleu *m = NULL;
    hg_bleu_result r;
    assert_int_equal(hg_bleu_create(&m, &bo), HG_OK);
    assert_int_equal(hg_bleu_sentence(m, hyp, ref, &r), HG_OK);
    hg_bleu_free(m);
    return r;
}

static int64_t ntokens(hg_bleu_tok tok, const char *s)
{
    return sentence(tok, 0, s, s).sys_len;
}

static void test_tokenisers(void **state)
{
    (void)state;
    /* 13a: the dash after a digit and the period before a non-digit split; "3.5" stays */
    assert_int_equal(ntokens(HG_BLEU_TOK_13A, "3.5-4"), 3);              /* 3.5 - 4 */
    assert_int_equal(ntokens(HG_BLEU_TOK_13A, "Hello, world!"), 4);      /* Hello , world ! */
    assert_int_equal(ntokens(HG_BLEU_TOK_13A, "It's 1,000."), 3);        /* It's 1,000 . */
    assert_int_equal(ntokens(HG_BLEU_TOK_13A, "a &amp; b &quot;c&quot;"), 6); /* a & b " c " */
    assert_int_equal(ntokens(HG_BLEU_TOK_13A, "x<skipped>y"), 1);        /* xy */
    assert_int_equal(ntokens(HG_BLEU_TOK_13A, "well-\nknown\nfact"), 2); /* wellknown fact */
    /* intl: Unicode punctuation and symbols; punctuation between digits stays */
    assert_int_equal(ntokens(HG_BLEU_TOK_INTL, "x,y"), 3);
    assert_int_equal(ntokens(HG_BLEU_TOK_INTL, "1,000"), 1);
    assert_int_equal(ntokens(HG_BLEU_TOK_INTL, "\xe2\x82\xac" "5"), 2);           /* € 5 */
    assert_int_equal(ntokens(HG_BLEU_TOK_INTL, "\xc2\xab" "ja\xc2\xbb"), 3);      /* « ja » */
    /* none: whitespace as Python's str.split(): no-break space and ideographic space too */
    assert_int_equal(ntokens(HG_BLEU_TOK_NONE, "a\xc2\xa0" "b\xe3\x80\x80" "c\x1c" "d"), 4);
    assert_int_equal(ntokens(HG_BLEU_TOK_NONE, "Hello, world!"), 2);
    /* char: every non-space code point */
    assert_int_equal(ntokens(HG_BLEU_TOK_CHAR, "ab c\xc3\xa9"), 4);
    /* 13a treats the byte form of a multi-byte character like the character */
    assert_int_equal(ntokens(HG_BLEU_TOK_13A, "\xc3\xa9." "\xc3\xa9"), 3); /* é . é */
}

static void test_lowercase(void **state)
{
    (void)state;
    /* Python's str.lower(): final sigma at the end of a word, U+0130 -> "i" U+0307, and the
     * simple mappings elsewhere (Greek, Latin with diacritics, Kelvin sign) */
    hg_bleu_result r = sentence(HG_BLEU_TOK_NONE, 1, "\xce\x9f\xce\x94\xce\x9f\xce\xa3",
                                "\xce\xbf\xce\xb4\xce\xbf\xcf\x82"); /* ΟΔΟΣ vs οδος */
    assert_int_equal(r.counts[0], 1);
    r = sentence(HG_BLEU_TOK_NONE, 1, "\xce\xa3\xce\x91", "\xcf\x83\xce\xb1"); /* ΣΑ vs σα */
    assert_int_equal(r.counts[0], 1);
    /* the final-sigma context skips case-ignorable characters (the apostrophe) on both sides;
     * a squared capital counts as cased though it has no lowercase; a lone sigma is not final */
    static const char *const sigma[][2] = {
        {"A'\xce\xa3", "a'\xcf\x82"},
        {"A\xce\xa3'b", "a\xcf\x83'b"},
        {"A\xce\xa3'", "a\xcf\x82'"},
        {"\xf0\x9f\x84\xb0\xce\xa3", "\xf0\x9f\x84\xb0\xcf\x82"},
        {"\xce\xa3", "\xcf\x83"},
    };
    for (size_t k = 0; k < sizeof sigma / sizeof sigma[0]; k++) {
        r = sentence(HG_BLEU_TOK_NONE, 1, sigma[k][0], sigma[k][1]);
        assert_int_equal(r.counts[0], 1);
        r = sentence(HG_BLEU_TOK_NONE, 1, sigma[k][0], sigma[(k + 1) % 5][1]);
        assert_int_equal(r.counts[0], 0);
    }
    r = sentence(HG_BLEU_TOK_NONE, 1, "\xc4\xb0", "i\xcc\x87"); /* İ vs i + combining dot */
    assert_int_equal(r.counts[0], 1);
    r = sentence(HG_BLEU_TOK_NONE, 1, "\xc3\x89T\xc3\x89 \xe2\x84\xaa", "\xc3\xa9t\xc3\xa9 k");
    assert_int_equal(r.counts[0], 2);
    r = sentence(HG_BLEU_TOK_NONE, 0, "\xc3\x89T\xc3\x89", "\xc3\xa9t\xc3\xa9"); /* mixed case */
    assert_int_equal(r.counts[0], 0);
}

static void test_smoothing(void **state)
{
    (void)state;
    /* "a b c d" against "a b c e": matches 3, 2, 1, 0 of 4, 3, 2, 1 */
    hg_bleu_opts bo;
    hg_bleu_opts_corpus(&bo);
    bo.tokenize = HG_BLEU_TOK_NONE;
    const double want[4] = {
        /* exp: the 4-gram precision is 100 / (2 * 1) */
        exp((log(75.0) + log(200.0 / 3) + log(50.0) + log(50.0)) / 4),
        0.0, /* none: log(0) floored, the score underflows */
        /* floor: 100 * 0.1 / 1 */
        exp((log(75.0) + log(200.0 / 3) + log(50.0) + log(10.0)) / 4),
        /* add-k: k = 1 added to orders 2..4: 3/4, 2/3, 1/2 */
        exp((log(75.0) + log(75.0) + log(200.0 / 3) + log(50.0)) / 4),
    };
    for (int s = 0; s < 4; s++) {
        bo.smooth = (hg_bleu_smooth)s;
        hg_bleu *m = NULL;
        hg_bleu_result r;
        assert_int_equal(hg_bleu_create(&m, &bo), HG_OK);
        assert_int_equal(hg_bleu_sentence(m, "a b c d", "a b c e", &r), HG_OK);
        assert_close(r.score, want[s], "smoothed BLEU");
        assert_int_equal(r.counts[3], 0);
        assert_int_equal(r.totals[3], 1);
        hg_bleu_free(m);
    }
    /* effective order: a 2-token sentence averages over orders 1 and 2 only */
    hg_bleu_result r = sentence(HG_BLEU_TOK_NONE, 0, "a b", "a b");
    assert_close(r.score, 100.0, "effective order");
    char sig[128];
    bo.smooth = HG_BLEU_SMOOTH_FLOOR;
    bo.smooth_value = -1;
    assert_int_equal(hg_bleu_signature(&bo, sig, sizeof sig), HG_OK);
    assert_string_equal(sig, "nrefs:1|case:mixed|eff:no|tok:none|smooth:floor[0.10]|version:2.6.0");
    assert_int_equal(hg_bleu_signature(&bo, sig, 10), HG_EINVAL);
}

static void test_edges(void **state)
{
    (void)state;
    /* empty hypothesis: nothing matches, brevity penalty 0 */
    hg_bleu_result r = sentence(HG_BLEU_TOK_13A, 0, "", "a b c");
    assert_int_equal(r.sys_len, 0);
    assert_int_equal(r.ref_len, 3);
    assert_int_equal(r.totals[0], 0);
    assert_true(r.score == 0.0 && r.bp == 0.0);
    /* a hypothesis longer than its reference: no penalty; 6/7, 5/6, 4/5, 3/4 */
    hg_bleu_opts bo;
    hg_bleu_opts_corpus(&bo);
    hg_bleu *m = NULL;
    assert_int_equal(hg_bleu_create(&m, &bo), HG_OK);
    const char *h[] = {"the cat sat on the mat today"}, *rf[] = {"the cat sat on the mat"};
    assert_int_equal(hg_bleu_corpus(m, h, rf, 1, &r), HG_OK);
    assert_true(r.bp == 1.0);
    double logs = log(6.0 / 7) + log(5.0 / 6) + log(4.0 / 5) + log(3.0 / 4);
    assert_close(r.score, 100 * exp(logs / 4), "longer hypothesis");
    /* empty corpus: score 0, no penalty */
    assert_int_equal(hg_bleu_corpus(m, NULL, NULL, 0, &r), HG_OK);
    assert_true(r.score == 0.0 && r.bp == 1.0 && r.sys_len == 0);
    /* invalid UTF-8: the segment and the byte are named */
    const char *bad[] = {"fine", "x\xc3("}, *good[] = {"fine", "ok"};
    assert_int_equal(hg_bleu_corpus(m, bad, good, 2, &r), HG_EFORMAT);
    assert_string_equal(hg_last_error(), "hypothesis 2: invalid UTF-8 at byte 1");
    assert_int_equal(hg_bleu_corpus(m, good, bad, 2, &r), HG_EFORMAT);
    assert_string_equal(hg_last_error(), "reference 2: invalid UTF-8 at byte 1");
    hg_bleu_free(m);
    hg_chrf_opts co;
    hg_chrf_opts_default(&co);
    hg_chrf *c = NULL;
    double score = -1;
    assert_int_equal(hg_chrf_create(&c, &co), HG_OK);
    assert_int_equal(hg_chrf_corpus(c, NULL, NULL, 0, &score, NULL), HG_OK);
    assert_true(score == 0.0);
    assert_int_equal(hg_chrf_corpus(c, bad, good, 2, &score, NULL), HG_EFORMAT);
    hg_chrf_free(c);
    /* options out of range */
    bo.max_order = 5;
    assert_int_equal(hg_bleu_create(&m, &bo), HG_EINVAL);
    co.char_order = 0;
    assert_int_equal(hg_chrf_create(&c, &co), HG_EINVAL);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_int_equal(hg_utf8_invalid_at("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10), -1);
    assert_int_equal(hg_utf8_invalid_at("a\xc0\x80", 3), 1);         /* overlong */
    assert_int_equal(hg_utf8_invalid_at("ab\xed\xa0\x80", 5), 2);    /* surrogate */
    assert_int_equal(hg_utf8_invalid_at("\xf4\x90\x80\x80", 4), 0);  /* above U+10FFFF */
    assert_int_equal(hg_utf8_invalid_at("\xe2\x82", 2), 0);          /* truncated */
    assert_int_equal(hg_utf8_invalid_at("\x80", 1), 0);              /* stray continuation */
    assert_int_equal(hg_utf8_invalid_at("\xe0\x9f\x80", 3), 0);      /* overlong 3-byte */
}

static void test_chrf_hand(void **state)
{
    (void)state;
    hg_chrf_opts co;
    hg_chrf_opts_default(&co);
    hg_chrf *c = NULL;
    hg_chrf_stats st;
    assert_int_equal(hg_chrf_create(&c, &co), HG_OK);
    /* "a b" (spaces removed: "ab") against "abc": order 1: 2 hyp, 3 ref, 2 matches; order 2:
     * 1, 2, 1; order 3: the hypothesis has none. Effective order 2: precision 1, recall
     * (2/3 + 1/2) / 2 = 7/12, F2 = 5 * 7/12 / (4 + 7/12) = 7/11. */
    assert_int_equal(hg_chrf_segment(c, "a b", "abc", &st), HG_OK);
    assert_int_equal(st.hyp[0], 2);
    assert_int_equal(st.ref[0], 3);
    assert_int_equal(st.match[0], 2);
    assert_int_equal(st.hyp[1], 1);
    assert_int_equal(st.ref[2], 1);
    assert_int_equal(st.hyp[2], 0);
    assert_close(hg_chrf_compute(&co, &st), 700.0 / 11, "chrF2");
    /* epsilon smoothing: per-order F2 5/7, 5/9, then 0 and three epsilons, averaged over 6 */
    co.eps_smoothing = 1;
    assert_close(hg_chrf_compute(&co, &st), 100 * (5.0 / 7 + 5.0 / 9 + 3e-16) / 6, "chrF2 eps");
    /* a hypothesis n-gram counts only when the reference has that order */
    assert_int_equal(hg_chrf_segment(c, "abcd", "ab", &st), HG_OK);
    assert_int_equal(st.hyp[2], 0);
    assert_int_equal(st.hyp[1], 3);
    char sig[128];
    assert_int_equal(hg_chrf_signature(&co, sig, sizeof sig), HG_OK);
    assert_string_equal(sig, "nrefs:1|case:mixed|eff:no|nc:6|nw:0|space:no|version:2.6.0");
    hg_chrf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_corpus_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sentence_cases, setup, teardown),
        cmocka_unit_test(test_tokenisers),
        cmocka_unit_test(test_lowercase),
        cmocka_unit_test(test_smoothing),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_chrf_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
