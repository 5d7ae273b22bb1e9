/* bleu.c - BLEU and chrF as sacreBLEU 2.6.0 computes them (contracts in bleu.h).
 *
 * A segment's n-grams are counted in an open-addressing table keyed by the n-gram itself: word
 * n-grams as tuples of token ids (the tokens of the segment pair interned first, compared byte
 * for byte), character n-grams as tuples of code points. Equal keys are compared in full, so a
 * hash collision costs a probe, never a wrong count. */
#include "bleu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bleu_tok.h"
#include "hg.h"
#include "io.h"

/* ---- the n-gram table ---------------------------------------------------------------------- */

#define KEY_MAX 6 /* the longest n-gram: chrF's order 6 */

typedef struct ng_slot {
    uint32_t key[KEY_MAX];
    uint32_t n;          /* n-gram length; 0: empty slot */
    int64_t hyp, ref;    /* occurrences in the hypothesis and in the reference */
} ng_slot;

typedef struct ng_table {
    ng_slot *slot;
    uint32_t *used;      /* the occupied slots, in insertion order */
    size_t alloc, mask, nused;
} ng_table;

/* Empty the table, sized for up to `entries` distinct n-grams (load factor <= 1/2). */
static int table_reset(ng_table *t, size_t entries)
{
    size_t cap = 64;
    while (cap < 2 * entries)
        cap *= 2;
    if (cap > t->alloc) {
        ng_slot *s = realloc(t->slot, cap * sizeof *s);
        uint32_t *u = s ? realloc(t->used, cap * sizeof *u) : NULL;
        if (s)
            t->slot = s;
        if (u)
            t->used = u;
        if (!s || !u)
            return HG_ERRORF(HG_ENOMEM, "out of memory (n-gram table of %zu entries)", cap);
        t->alloc = cap;
    }
    t->mask = cap - 1;
    t->nused = 0;
    memset(t->slot, 0, cap * sizeof *t->slot);
    return HG_OK;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

/* The slot of n-gram key[0..n), created empty if absent. The table never fills up (reset
 * sizes it for every n-gram of the segment pair). */
static ng_slot *table_get(ng_table *t, const uint32_t *key, uint32_t n)
{
    uint64_t h = n;
    for (uint32_t k = 0; k < n; k++)
        h = mix(h * UINT64_C(0x9E3779B97F4A7C15) + key[k]);
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        ng_slot *s = &t->slot[i];
        if (!s->n) {
            s->n = n;
            memcpy(s->key, key, n * sizeof *key);
            t->used[t->nused++] = (uint32_t)i;
            return s;
        }
        if (s->n == n && !memcmp(s->key, key, n * sizeof *key))
            return s;
    }
}

/* Count every n-gram of orders 1..order of seq[0..len) into the hyp or the ref column. */
static void table_count(ng_table *t, const uint32_t *seq, size_t len, int order, int is_hyp)
{
    for (int n = 1; n <= order; n++)
        for (size_t i = 0; i + (size_t)n <= len; i++) {
            ng_slot *s = table_get(t, seq + i, (uint32_t)n);
            if (is_hyp)
                s->hyp++;
            else
                s->ref++;
        }
}

/* Per order (0-based): the hypothesis n-grams and their clipped matches. */
static void table_matches(const ng_table *t, int64_t *hyp_total, int64_t *match)
{
    for (size_t u = 0; u < t->nused; u++) {
        const ng_slot *s = &t->slot[t->used[u]];
        hyp_total[s->n - 1] += s->hyp;
        match[s->n - 1] += HG_MIN(s->hyp, s->ref);
    }
}

static void table_free(ng_table *t)
{
    free(t->slot);
    free(t->used);
    memset(t, 0, sizeof *t);
}

/* ---- segments ------------------------------------------------------------------------------ */

/* What both scorers share: the text preparation, the table, and a segment's two sequences. */
typedef struct mt_scratch {
    hg_mt_text text;
    ng_table table;
    hg_mt_buf ref_text;          /* the tokenised reference, kept while the hypothesis is done */
    uint32_t *seq[2];            /* 0: hypothesis, 1: reference (token ids or code points) */
    size_t seq_cap[2], seq_len[2];
    /* token interning (BLEU): the tokens of the segment pair, distinct, and their table */
    const char **tok_s;
    uint32_t *tok_len, *tok_slot, ntok;
    size_t tok_alloc, tok_mask;
} mt_scratch;

static void scratch_free(mt_scratch *s)
{
    hg_mt_text_free(&s->text);
    table_free(&s->table);
    hg_mt_buf_free(&s->ref_text);
    for (int k = 0; k < 2; k++)
        free(s->seq[k]);
    free(s->tok_s);
    free(s->tok_len);
    free(s->tok_slot);
    memset(s, 0, sizeof *s);
}

/* HG_EFORMAT for invalid UTF-8 in a segment: "hypothesis 12: invalid UTF-8 at byte 3" (index
 * < 0: no number). */
static int check_utf8(const char *s, const char *what, int64_t index)
{
    int64_t at = hg_utf8_invalid_at(s, strlen(s));
    if (at < 0)
        return HG_OK;
    if (index < 0)
        return HG_ERRORF(HG_EFORMAT, "%s: invalid UTF-8 at byte %lld", what, (long long)at);
    return HG_ERRORF(HG_EFORMAT, "%s %lld: invalid UTF-8 at byte %lld", what,
                     (long long)index + 1, (long long)at);
}

static int check_pair(const char *hyp, const char *ref, int64_t index)
{
    if (!hyp || !ref)
        return HG_ERRORF(HG_EINVAL, "NULL segment");
    int rc = check_utf8(hyp, "hypothesis", index);
    return rc ? rc : check_utf8(ref, "reference", index);
}

static int seq_reserve(mt_scratch *s, int which, size_t n)
{
    if (n <= s->seq_cap[which])
        return HG_OK;
    uint32_t *p = realloc(s->seq[which], n * sizeof *p);
    if (!p)
        return HG_ERRORF(HG_ENOMEM, "out of memory (%zu tokens)", n);
    s->seq[which] = p;
    s->seq_cap[which] = n;
    return HG_OK;
}

/* Size the interning table for up to `tokens` distinct tokens and empty it. */
static int intern_reset(mt_scratch *s, size_t tokens)
{
    size_t cap = 64;
    while (cap < 2 * tokens)
        cap *= 2;
    if (cap > s->tok_alloc) {
        const char **ts = realloc(s->tok_s, cap * sizeof *ts);
        if (ts)
            s->tok_s = ts;
        uint32_t *tl = ts ? realloc(s->tok_len, cap * sizeof *tl) : NULL;
        if (tl)
            s->tok_len = tl;
        uint32_t *slot = tl ? realloc(s->tok_slot, cap * sizeof *slot) : NULL;
        if (slot)
            s->tok_slot = slot;
        if (!slot)
            return HG_ERRORF(HG_ENOMEM, "out of memory (token table of %zu entries)", cap);
        s->tok_alloc = cap;
    }
    s->tok_mask = cap - 1;
    s->ntok = 0;
    memset(s->tok_slot, 0xFF, cap * sizeof *s->tok_slot); /* UINT32_MAX: empty */
    return HG_OK;
}

/* The id of token p[0..len) (ids are dense, in order of first appearance). */
static uint32_t intern(mt_scratch *s, const char *p, uint32_t len)
{
    uint64_t h = hg_fnv1a64(HG_FNV64_OFFSET, p, len);
    for (size_t i = (size_t)mix(h) & s->tok_mask;; i = (i + 1) & s->tok_mask) {
        uint32_t id = s->tok_slot[i];
        if (id == UINT32_MAX) {
            id = s->ntok++;
            s->tok_s[id] = p;
            s->tok_len[id] = len;
            s->tok_slot[i] = id;
            return id;
        }
        if (s->tok_len[id] == len && !memcmp(s->tok_s[id], p, len))
            return id;
    }
}

/* The whitespace-separated tokens of text as ids into seq[which] (interning table already
 * sized for them). */
static void tokens_to_ids(mt_scratch *s, const char *text, int which)
{
    const char *p = text, *start = NULL;
    size_t n = 0;
    for (;;) {
        const char *at = p;
        uint32_t c = *p ? hg_utf8_next(&p) : ' ';
        int space = hg_py_isspace(c);
        if (!space && !start)
            start = at;
        if (space && start) {
            s->seq[which][n++] = intern(s, start, (uint32_t)(at - start));
            start = NULL;
        }
        if (!*at)
            break;
    }
    s->seq_len[which] = n;
}

/* ---- BLEU ---------------------------------------------------------------------------------- */

struct hg_bleu {
    hg_bleu_opts o;
    mt_scratch s;
};

void hg_bleu_opts_corpus(hg_bleu_opts *o)
{
    o->tokenize = HG_BLEU_TOK_13A;
    o->lowercase = 0;
    o->max_order = HG_BLEU_MAX_ORDER;
    o->smooth = HG_BLEU_SMOOTH_EXP;
    o->smooth_value = -1.0;
    o->effective_order = 0;
}

void hg_bleu_opts_sentence(hg_bleu_opts *o)
{
    hg_bleu_opts_corpus(o);
    o->effective_order = 1;
}

static int bleu_opts_check(const hg_bleu_opts *o)
{
    if (!o)
        return HG_ERRORF(HG_EINVAL, "BLEU: NULL options");
    if ((unsigned)o->tokenize > HG_BLEU_TOK_CHAR)
        return HG_ERRORF(HG_EINVAL, "BLEU: unknown tokeniser %d", (int)o->tokenize);
    if ((unsigned)o->smooth > HG_BLEU_SMOOTH_ADD_K)
        return HG_ERRORF(HG_EINVAL, "BLEU: unknown smoothing %d", (int)o->smooth);
    if (o->max_order < 1 || o->max_order > HG_BLEU_MAX_ORDER)
        return HG_ERRORF(HG_EINVAL, "BLEU: max order %d is not in [1, %d]", o->max_order,
                         HG_BLEU_MAX_ORDER);
    if (!isfinite(o->smooth_value))
        return HG_ERRORF(HG_EINVAL, "BLEU: smoothing value is not finite");
    return HG_OK;
}

int hg_bleu_create(hg_bleu **out, const hg_bleu_opts *o)
{
    int rc = bleu_opts_check(o);
    if (rc)
        return rc;
    hg_bleu *b = hg_calloc(1, sizeof *b, "BLEU scorer");
    if (!b)
        return HG_ENOMEM;
    b->o = *o;
    rc = hg_mt_text_init(&b->s.text, o->tokenize, o->lowercase);
    if (rc) {
        hg_free(b);
        return rc;
    }
    *out = b;
    return HG_OK;
}

void hg_bleu_free(hg_bleu *b)
{
    if (!b)
        return;
    scratch_free(&b->s);
    hg_free(b);
}

/* Tokenise one side into text (the reference's is kept in ref_text) and count its tokens. */
static int bleu_side(hg_bleu *b, const char *seg, int which, const char **text, size_t *ntok)
{
    int rc = hg_mt_text_bleu(&b->s.text, seg, text);
    if (rc)
        return rc;
    if (which == 1) {
        size_t len = strlen(*text);
        if ((rc = hg_mt_buf_reserve(&b->s.ref_text, len + 1)))
            return rc;
        memcpy(b->s.ref_text.p, *text, len + 1);
        *text = b->s.ref_text.p;
    }
    size_t n = 0;
    int in_tok = 0;
    for (const char *p = *text; *p;) {
        int space = hg_py_isspace(hg_utf8_next(&p));
        n += !space && !in_tok;
        in_tok = !space;
    }
    *ntok = n;
    return seq_reserve(&b->s, which, n + 1);
}

static int bleu_segment(hg_bleu *b, const char *hyp, const char *ref, int64_t index,
                        hg_bleu_stats *st)
{
    int rc = check_pair(hyp, ref, index);
    if (rc)
        return rc;
    mt_scratch *s = &b->s;
    const char *ht, *rt;
    size_t nh, nr;
    if ((rc = bleu_side(b, ref, 1, &rt, &nr)) || (rc = bleu_side(b, hyp, 0, &ht, &nh)) ||
        (rc = intern_reset(s, nh + nr)))
        return rc;
    tokens_to_ids(s, rt, 1);
    tokens_to_ids(s, ht, 0);
    int order = b->o.max_order;
    if ((rc = table_reset(&s->table, (nh + nr) * (size_t)order)))
        return rc;
    table_count(&s->table, s->seq[1], nr, order, 0);
    table_count(&s->table, s->seq[0], nh, order, 1);
    memset(st, 0, sizeof *st);
    table_matches(&s->table, st->totals, st->counts);
    st->sys_len = (int64_t)nh;
    st->ref_len = (int64_t)nr; /* one reference: the closest is that one */
    return HG_OK;
}

int hg_bleu_segment(hg_bleu *b, const char *hyp, const char *ref, hg_bleu_stats *st)
{
    if (!b || !st)
        return HG_ERRORF(HG_EINVAL, "BLEU: NULL argument");
    return bleu_segment(b, hyp, ref, -1, st);
}

/* sacreBLEU's floor of the logarithm: log(0) counts as -9999999999. */
static double floored_log(double x) { return x == 0.0 ? -9999999999.0 : log(x); }

void hg_bleu_compute(const hg_bleu_opts *o, const hg_bleu_stats *st, hg_bleu_result *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->counts, st->counts, sizeof out->counts);
    memcpy(out->totals, st->totals, sizeof out->totals);
    out->sys_len = st->sys_len;
    out->ref_len = st->ref_len;
    out->bp = 1.0;
    if (st->sys_len < st->ref_len)
        out->bp = st->sys_len > 0 ? exp(1.0 - (double)st->ref_len / (double)st->sys_len) : 0.0;
    int order = o->max_order, any = 0;
    for (int n = 0; n < order; n++)
        any |= st->counts[n] != 0;
    if (!any)
        return; /* no match at all: 0, whatever the smoothing */
    double value = o->smooth_value >= 0 ? o->smooth_value
                   : o->smooth == HG_BLEU_SMOOTH_FLOOR ? 0.1 : 1.0;
    double mteval = 1.0;
    int eff = order;
    for (int n = 1; n <= order; n++) {
        double correct = (double)st->counts[n - 1], total = (double)st->totals[n - 1];
        if (o->smooth == HG_BLEU_SMOOTH_ADD_K && n > 1) {
            correct += value;
            total += value;
        }
        if (total == 0)
            break;
        if (o->effective_order)
            eff = n;
        double *p = &out->precisions[n - 1];
        if (correct == 0) {
            if (o->smooth == HG_BLEU_SMOOTH_EXP) {
                mteval *= 2;
                *p = 100.0 / (mteval * total);
            } else if (o->smooth == HG_BLEU_SMOOTH_FLOOR) {
                *p = 100.0 * value / total;
            }
        } else {
            *p = 100.0 * correct / total;
        }
    }
    double sum = 0.0;
    for (int n = 0; n < eff; n++)
        sum += floored_log(out->precisions[n]);
    out->score = out->bp * exp(sum / eff);
}

int hg_bleu_corpus(hg_bleu *b, const char *const *hyps, const char *const *refs, int64_t n,
                   hg_bleu_result *out)
{
    if (!b || !out || n < 0 || (n > 0 && (!hyps || !refs)))
        return HG_ERRORF(HG_EINVAL, "BLEU: bad corpus arguments");
    hg_bleu_stats sum = {0}, st;
    for (int64_t i = 0; i < n; i++) {
        int rc = bleu_segment(b, hyps[i], refs[i], i, &st);
        if (rc)
            return rc;
        sum.sys_len += st.sys_len;
        sum.ref_len += st.ref_len;
        for (int k = 0; k < HG_BLEU_MAX_ORDER; k++) {
            sum.counts[k] += st.counts[k];
            sum.totals[k] += st.totals[k];
        }
    }
    hg_bleu_compute(&b->o, &sum, out);
    return HG_OK;
}

int hg_bleu_sentence(hg_bleu *b, const char *hyp, const char *ref, hg_bleu_result *out)
{
    return hg_bleu_corpus(b, &hyp, &ref, 1, out);
}

static int signature_done(int len, size_t cap)
{
    if (len < 0 || (size_t)len >= cap)
        return HG_ERRORF(HG_EINVAL, "signature: buffer of %zu bytes too small", cap);
    return HG_OK;
}

int hg_bleu_signature(const hg_bleu_opts *o, char *buf, size_t cap)
{
    static const char *const tok[] = {"13a", "intl", "none", "char"};
    static const char *const smooth[] = {"exp", "none", "floor", "add-k"};
    int rc = bleu_opts_check(o);
    if (rc)
        return rc;
    char sm[48];
    if (o->smooth == HG_BLEU_SMOOTH_FLOOR || o->smooth == HG_BLEU_SMOOTH_ADD_K)
        snprintf(sm, sizeof sm, "%s[%.2f]", smooth[o->smooth],
                 o->smooth_value >= 0 ? o->smooth_value
                 : o->smooth == HG_BLEU_SMOOTH_FLOOR ? 0.1 : 1.0);
    else
        snprintf(sm, sizeof sm, "%s", smooth[o->smooth]);
    int len = snprintf(buf, cap, "nrefs:1|case:%s|eff:%s|tok:%s|smooth:%s|version:2.6.0",
                       o->lowercase ? "lc" : "mixed", o->effective_order ? "yes" : "no",
                       tok[o->tokenize], sm);
    return signature_done(len, cap);
}

/* ---- chrF ---------------------------------------------------------------------------------- */

struct hg_chrf {
    hg_chrf_opts o;
    mt_scratch s;
};

void hg_chrf_opts_default(hg_chrf_opts *o)
{
    o->char_order = HG_CHRF_MAX_ORDER;
    o->beta = 2;
    o->lowercase = 0;
    o->whitespace = 0;
    o->eps_smoothing = 0;
}

static int chrf_opts_check(const hg_chrf_opts *o)
{
    if (!o)
        return HG_ERRORF(HG_EINVAL, "chrF: NULL options");
    if (o->char_order < 1 || o->char_order > HG_CHRF_MAX_ORDER)
        return HG_ERRORF(HG_EINVAL, "chrF: character order %d is not in [1, %d]",
                         o->char_order, HG_CHRF_MAX_ORDER);
    if (o->beta < 0 || o->beta > 1000)
        return HG_ERRORF(HG_EINVAL, "chrF: beta %d is not in [0, 1000]", o->beta);
    return HG_OK;
}

int hg_chrf_create(hg_chrf **out, const hg_chrf_opts *o)
{
    int rc = chrf_opts_check(o);
    if (rc)
        return rc;
    hg_chrf *c = hg_calloc(1, sizeof *c, "chrF scorer");
    if (!c)
        return HG_ENOMEM;
    c->o = *o;
    rc = hg_mt_text_init(&c->s.text, HG_BLEU_TOK_NONE, o->lowercase);
    if (rc) {
        hg_free(c);
        return rc;
    }
    *out = c;
    return HG_OK;
}

void hg_chrf_free(hg_chrf *c)
{
    if (!c)
        return;
    scratch_free(&c->s);
    hg_free(c);
}

static int chrf_segment(hg_chrf *c, const char *hyp, const char *ref, int64_t index,
                        hg_chrf_stats *st)
{
    int rc = check_pair(hyp, ref, index);
    if (rc)
        return rc;
    mt_scratch *s = &c->s;
    int order = c->o.char_order;
    for (int k = 0; k < 2; k++)
        if ((rc = hg_mt_text_chars(&s->text, k ? ref : hyp, c->o.whitespace, &s->seq[k],
                                   &s->seq_cap[k], &s->seq_len[k])))
            return rc;
    size_t nh = s->seq_len[0], nr = s->seq_len[1];
    if ((rc = table_reset(&s->table, (nh + nr) * (size_t)order)))
        return rc;
    table_count(&s->table, s->seq[1], nr, order, 0);
    table_count(&s->table, s->seq[0], nh, order, 1);
    memset(st, 0, sizeof *st);
    table_matches(&s->table, st->hyp, st->match);
    for (int k = 0; k < order; k++) {
        size_t n = (size_t)k + 1;
        st->ref[k] = nr >= n ? (int64_t)(nr - n + 1) : 0;
        if (!st->ref[k])
            st->hyp[k] = 0; /* sacreBLEU counts no hypothesis n-grams against an empty order */
    }
    return HG_OK;
}

int hg_chrf_segment(hg_chrf *c, const char *hyp, const char *ref, hg_chrf_stats *st)
{
    if (!c || !st)
        return HG_ERRORF(HG_EINVAL, "chrF: NULL argument");
    return chrf_segment(c, hyp, ref, -1, st);
}

double hg_chrf_compute(const hg_chrf_opts *o, const hg_chrf_stats *st)
{
    const double eps = 1e-16;
    double factor = (double)o->beta * o->beta, score = 0.0, avg_prec = 0.0, avg_rec = 0.0;
    int eff = 0;
    for (int k = 0; k < o->char_order; k++) {
        double prec = st->hyp[k] > 0 ? (double)st->match[k] / (double)st->hyp[k] : eps;
        double rec = st->ref[k] > 0 ? (double)st->match[k] / (double)st->ref[k] : eps;
        double denom = factor * prec + rec;
        score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
        if (st->hyp[k] > 0 && st->ref[k] > 0) {
            avg_prec += prec;
            avg_rec += rec;
            eff++;
        }
    }
    if (o->eps_smoothing)
        return 100 * score / o->char_order;
    if (eff == 0)
        return 0.0;
    avg_prec /= eff;
    avg_rec /= eff;
    if (avg_prec + avg_rec == 0)
        return 0.0;
    score = (1 + factor) * avg_prec * avg_rec;
    score /= factor * avg_prec + avg_rec;
    return 100 * score;
}

int hg_chrf_corpus(hg_chrf *c, const char *const *hyps, const char *const *refs, int64_t n,
                   double *score, hg_chrf_stats *st_out)
{
    if (!c || !score || n < 0 || (n > 0 && (!hyps || !refs)))
        return HG_ERRORF(HG_EINVAL, "chrF: bad corpus arguments");
    hg_chrf_stats sum = {0}, st;
    for (int64_t i = 0; i < n; i++) {
        int rc = chrf_segment(c, hyps[i], refs[i], i, &st);
        if (rc)
            return rc;
        for (int k = 0; k < HG_CHRF_MAX_ORDER; k++) {
            sum.hyp[k] += st.hyp[k];
            sum.ref[k] += st.ref[k];
            sum.match[k] += st.match[k];
        }
    }
    *score = hg_chrf_compute(&c->o, &sum);
    if (st_out)
        *st_out = sum;
    return HG_OK;
}

int hg_chrf_signature(const hg_chrf_opts *o, char *buf, size_t cap)
{
    int rc = chrf_opts_check(o);
    if (rc)
        return rc;
    int len = snprintf(buf, cap, "nrefs:1|case:%s|eff:%s|nc:%d|nw:0|space:%s|version:2.6.0",
                       o->lowercase ? "lc" : "mixed", o->eps_smoothing ? "no" : "yes",
                       o->char_order, o->whitespace ? "yes" : "no");
    return signature_done(len, cap);
}
