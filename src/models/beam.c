/* beam.c - batched beam search over callbacks (see beam.h for the rule it implements).
 *
 * Rows: at step t the live hypotheses of the unfinished sources of a batch, grouped by source
 * (increasing position in the batch), each source's in the order of its live set. Every row's
 * fed token and parent are kept for every step (tok and par, one slice of rows_cap per step),
 * so a finished hypothesis is read back by following parents; nothing is copied per step. */
#include "beam.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hg.h"

/* One candidate: score, and key = hypothesis index * vocab + token. */
typedef struct beam_cand {
    float score;
    int64_t key;
} beam_cand;

/* A source of the batch being decoded. */
typedef struct beam_src {
    int64_t idx;  /* in the caller's list */
    int64_t lmax; /* src_len + extra_len */
    int64_t base; /* its first row at the current step */
    int64_t live; /* its rows at the current step */
    int64_t nfin; /* finished hypotheses */
    double best;  /* normalised score of the best finished one (nfin > 0) */
    int done;
} beam_src;

/* Working memory of one hg_beam_search call. */
typedef struct beam_work {
    int64_t K, V, rows_cap, len_cap;
    float *logp;                /* rows_cap x V */
    int32_t *tok;               /* len_cap x rows_cap: token fed by each row at each step */
    int64_t *par;               /* len_cap x rows_cap: its parent row at the previous step */
    int64_t *srow[2];           /* rows_cap: source (batch position) of each row, now / next */
    float *score[2];            /* rows_cap: total log-probability of each row, now / next */
    beam_cand *cand;            /* 2K: the best candidates of one source */
    beam_src *src;              /* batch */
    int64_t *start_idx;         /* batch: the indices given to start */
    int64_t *cap_off, *res_len; /* n: each source's result slot in out->tok and its length */
} beam_work;

/* a before b in the candidate order: higher score, then lower key. */
static int cand_before(const beam_cand *a, const beam_cand *b)
{
    return a->score > b->score || (a->score == b->score && a->key < b->key);
}

/* Heap with the last candidate (in candidate order) at the root. */
static void heap_sift_down(beam_cand *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_before(&h[w], &h[l]))
            w = l;
        if (r < n && cand_before(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        beam_cand tmp = h[i];
        h[i] = h[w];
        h[w] = tmp;
        i = w;
    }
}

static void heap_sift_up(beam_cand *h, int64_t i)
{
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!cand_before(&h[p], &h[i]))
            return;
        beam_cand tmp = h[i];
        h[i] = h[p];
        h[p] = tmp;
        i = p;
    }
}

/* The best min(2K, finite candidates) candidates of source s at step t, in candidate order, into
 * w->cand; their count into *m. Partial selection: a bounded heap, then a sort of what it holds
 * (in place: no allocation per step). */
static int select_candidates(beam_work *w, const beam_src *s, int64_t t, int cur, int64_t *m)
{
    const int64_t V = w->V, cap = 2 * w->K;
    int64_t n = 0;
    for (int64_t h = 0; h < s->live; h++) {
        const int64_t row = s->base + h;
        const float base = w->score[cur][row];
        const float *lp = w->logp + row * V;
        for (int64_t v = 0; v < V; v++) {
            if (isnan(lp[v]) || lp[v] == INFINITY)
                return HG_ERRORF(HG_ENUMERIC,
                                 "hg_beam_search: the model's log-probability at step %lld, row "
                                 "%lld, token %lld is %g",
                                 (long long)t, (long long)row, (long long)v, (double)lp[v]);
            const beam_cand c = {base + lp[v], h * V + v};
            if (c.score == -INFINITY)
                continue;
            if (n < cap) {
                w->cand[n] = c;
                heap_sift_up(w->cand, n++);
            } else if (c.score > w->cand[0].score) {
                /* keys only grow along the scan, so a tie with the root never displaces it */
                w->cand[0] = c;
                heap_sift_down(w->cand, n, 0);
            }
        }
    }
    /* heapsort: the root (last in order) goes to the end, leaving the array in order */
    for (int64_t k = n - 1; k > 0; k--) {
        beam_cand tmp = w->cand[0];
        w->cand[0] = w->cand[k];
        w->cand[k] = tmp;
        heap_sift_down(w->cand, k, 0);
    }
    *m = n;
    return HG_OK;
}

/* Candidate (row `row` at step t, token v, total score) finishes a hypothesis of s: keep it when it
 * is the first or beats the best so far, writing its tokens into the source's result slot. */
static void finish(beam_work *w, const hg_beam_model *m, const hg_beam_opts *o, beam_src *s,
                   int64_t t, int64_t row, int32_t v, float score, int32_t *res_tok)
{
    const double norm = (double)score / pow((double)(t + 1), (double)o->len_penalty);
    if (s->nfin++ > 0 && !(norm > s->best))
        return;
    s->best = norm;
    int32_t *dst = res_tok + w->cap_off[s->idx];
    int64_t len = t;
    if (v != m->eos)
        dst[len++] = v;
    for (int64_t k = t; k >= 1; k--) {
        dst[k - 1] = w->tok[k * w->rows_cap + row];
        row = w->par[k * w->rows_cap + row];
    }
    w->res_len[s->idx] = len;
}

/* The status rc of a model callback, its message prefixed with where it failed: the callback
 * (`what`) and, for a step, the step t (t < 0: none). */
static int model_failed(int rc, const char *what, int64_t t)
{
    char msg[768], where[48] = "";
    snprintf(msg, sizeof msg, "%s", hg_last_error());
    if (t >= 0)
        snprintf(where, sizeof where, " at step %lld", (long long)t);
    return HG_ERRORF(rc, "hg_beam_search: model %s failed%s (%s): %s", what, where,
                     hg_strerror(rc), msg);
}

/* Decode the nb sources w->src[0..nb) (idx and lmax set) after start. */
static int decode_batch(beam_work *w, const hg_beam_model *m, const hg_beam_opts *o, int64_t nb,
                        int32_t *res_tok)
{
    const int64_t K = w->K, RC = w->rows_cap;
    int cur = 0;
    for (int64_t s = 0; s < nb; s++) {
        w->tok[s] = m->bos;
        w->par[s] = -1;
        w->srow[cur][s] = s;
        w->score[cur][s] = 0.0f;
        w->src[s].base = s;
        w->src[s].live = 1;
        w->src[s].nfin = 0;
        w->src[s].done = 0;
        w->res_len[w->src[s].idx] = 0;
    }
    int64_t rows = nb;
    for (int64_t t = 0; rows > 0; t++) {
        int rc = m->step(m->ctx, t, w->tok + t * RC, w->par + t * RC, w->srow[cur], rows, w->logp);
        if (rc != HG_OK)
            return model_failed(rc, "step", t);
        const int nx = 1 - cur;
        int64_t next = 0;
        for (int64_t si = 0; si < nb; si++) {
            beam_src *s = &w->src[si];
            if (s->done)
                continue;
            int64_t mc;
            rc = select_candidates(w, s, t, cur, &mc);
            if (rc != HG_OK)
                return rc;
            const int forced = t + 1 >= s->lmax;
            const int64_t first = next;
            for (int64_t j = 0; j < mc; j++) {
                const beam_cand *c = &w->cand[j];
                const int64_t h = c->key / w->V;
                const int32_t v = (int32_t)(c->key % w->V);
                if (v == m->eos || forced) {
                    if (j < K && s->nfin < K)
                        finish(w, m, o, s, t, s->base + h, v, c->score, res_tok);
                } else if (next - first < K) {
                    /* t + 1 < lmax <= len_cap here: the slice of step t + 1 exists */
                    w->tok[(t + 1) * RC + next] = v;
                    w->par[(t + 1) * RC + next] = s->base + h;
                    w->srow[nx][next] = si;
                    w->score[nx][next] = c->score;
                    next++;
                }
            }
            if (s->nfin == K || forced || next == first) {
                s->done = 1;
                next = first;
            } else {
                s->base = first;
                s->live = next - first;
            }
        }
        rows = next;
        cur = nx;
    }
    return HG_OK;
}

static int cmp_len_idx(const void *pa, const void *pb)
{
    const int64_t *a = pa, *b = pb; /* (length, index) pairs */
    if (a[0] != b[0])
        return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

static int check_args(const hg_beam_model *m, const int64_t *src_len, int64_t n,
                      const hg_beam_opts *o)
{
    if (!m || !o || (n > 0 && !src_len) || n < 0)
        return HG_ERRORF(HG_EINVAL, "hg_beam_search: need a model, options, and src_len for "
                                    "n >= 0 sources (n=%lld)", (long long)n);
    if (!m->start || !m->step)
        return HG_ERRORF(HG_EINVAL, "hg_beam_search: the model needs start and step callbacks");
    if (m->vocab < 1 || m->bos < 0 || m->bos >= m->vocab || m->eos < 0 || m->eos >= m->vocab)
        return HG_ERRORF(HG_EINVAL,
                         "hg_beam_search: need vocab >= 1 and bos, eos in [0, vocab) "
                         "(vocab=%d, bos=%d, eos=%d)",
                         (int)m->vocab, (int)m->bos, (int)m->eos);
    if (o->beam < 1)
        return HG_ERRORF(HG_EINVAL, "hg_beam_search: beam must be >= 1 (got %d)", o->beam);
    if (o->batch < 1)
        return HG_ERRORF(HG_EINVAL, "hg_beam_search: batch must be >= 1 (got %lld)",
                         (long long)o->batch);
    if (o->extra_len < 0)
        return HG_ERRORF(HG_EINVAL, "hg_beam_search: extra_len must be >= 0 (got %lld)",
                         (long long)o->extra_len);
    if (!isfinite(o->len_penalty))
        return HG_ERRORF(HG_EINVAL, "hg_beam_search: len_penalty must be finite (got %g)",
                         (double)o->len_penalty);
    for (int64_t i = 0; i < n; i++)
        if (src_len[i] < 1 || src_len[i] > INT64_MAX - o->extra_len)
            return HG_ERRORF(HG_EINVAL,
                             "hg_beam_search: source %lld: length %lld must be >= 1 and "
                             "length + extra_len must fit in 64 bits",
                             (long long)i, (long long)src_len[i]);
    return HG_OK;
}

static void work_free(beam_work *w)
{
    hg_free(w->logp);
    hg_free(w->tok);
    hg_free(w->par);
    for (int i = 0; i < 2; i++) {
        hg_free(w->srow[i]);
        hg_free(w->score[i]);
    }
    hg_free(w->cand);
    hg_free(w->src);
    hg_free(w->start_idx);
    hg_free(w->cap_off);
    hg_free(w->res_len);
}

/* Allocate w for n sources in batches of `batch`, longest max length len_cap. */
static int work_alloc(beam_work *w, int64_t n, int64_t batch, int64_t K, int64_t V,
                      int64_t len_cap)
{
    int64_t logp_n, hist_n;
    w->K = K;
    w->V = V;
    w->len_cap = len_cap;
    if (__builtin_mul_overflow(batch, K, &w->rows_cap) ||
        __builtin_mul_overflow(w->rows_cap, V, &logp_n) ||
        __builtin_mul_overflow(w->rows_cap, len_cap, &hist_n) || (uint64_t)logp_n > SIZE_MAX ||
        (uint64_t)hist_n > SIZE_MAX)
        return HG_ERRORF(HG_EINVAL,
                         "hg_beam_search: batch %lld x beam %lld x (vocab %lld, max length %lld) "
                         "overflows",
                         (long long)batch, (long long)K, (long long)V, (long long)len_cap);
    const size_t rc = (size_t)w->rows_cap;
    w->logp = hg_calloc((size_t)logp_n, sizeof *w->logp, "beam log-probabilities");
    w->tok = hg_calloc((size_t)hist_n, sizeof *w->tok, "beam tokens");
    w->par = hg_calloc((size_t)hist_n, sizeof *w->par, "beam parents");
    for (int i = 0; i < 2; i++) {
        w->srow[i] = hg_calloc(rc, sizeof *w->srow[i], "beam source rows");
        w->score[i] = hg_calloc(rc, sizeof *w->score[i], "beam scores");
    }
    w->cand = hg_calloc((size_t)(2 * K), sizeof *w->cand, "beam candidates");
    w->src = hg_calloc((size_t)batch, sizeof *w->src, "beam sources");
    w->start_idx = hg_calloc((size_t)batch, sizeof *w->start_idx, "beam source indices");
    w->cap_off = hg_calloc((size_t)n, sizeof *w->cap_off, "beam result offsets");
    w->res_len = hg_calloc((size_t)n, sizeof *w->res_len, "beam result lengths");
    if (!w->logp || !w->tok || !w->par || !w->srow[0] || !w->srow[1] || !w->score[0] ||
        !w->score[1] || !w->cand || !w->src || !w->start_idx || !w->cap_off || !w->res_len)
        return HG_ENOMEM;
    return HG_OK;
}

int hg_beam_search(const hg_beam_model *m, const int64_t *src_len, int64_t n,
                   const hg_beam_opts *o, hg_beam_result *out)
{
    if (!out)
        return HG_ERRORF(HG_EINVAL, "hg_beam_search: need a result to fill");
    memset(out, 0, sizeof *out);
    int rc = check_args(m, src_len, n, o);
    if (rc != HG_OK)
        return rc;

    beam_work w = {0};
    int64_t *order = NULL; /* (src_len, index) pairs, sorted */
    int64_t len_cap = 1, total = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t lmax = src_len[i] + o->extra_len;
        len_cap = HG_MAX(len_cap, lmax);
        if (__builtin_add_overflow(total, lmax, &total) || (uint64_t)total > SIZE_MAX)
            return HG_ERRORF(HG_EINVAL, "hg_beam_search: the sources' max lengths overflow");
    }
    const int64_t batch = HG_MAX(HG_MIN(o->batch, n), 1);
    HG_CHECK(work_alloc(&w, n, batch, o->beam, m->vocab, len_cap));
    order = hg_calloc((size_t)n * 2, sizeof *order, "beam source order");
    out->off = hg_calloc((size_t)n + 1, sizeof *out->off, "beam result offsets");
    out->tok = hg_calloc((size_t)total, sizeof *out->tok, "beam result tokens");
    if (!order || !out->off || !out->tok)
        HG_CHECK(HG_ENOMEM);
    for (int64_t i = 0, off = 0; i < n; i++) {
        w.cap_off[i] = off;
        off += src_len[i] + o->extra_len;
        order[2 * i] = src_len[i];
        order[2 * i + 1] = i;
    }
    qsort(order, (size_t)n, 2 * sizeof *order, cmp_len_idx);

    for (int64_t b0 = 0; b0 < n; b0 += batch) {
        const int64_t nb = HG_MIN(batch, n - b0);
        for (int64_t s = 0; s < nb; s++) {
            const int64_t idx = order[2 * (b0 + s) + 1];
            w.start_idx[s] = idx;
            w.src[s].idx = idx;
            w.src[s].lmax = src_len[idx] + o->extra_len;
        }
        rc = m->start(m->ctx, w.start_idx, nb, o->beam);
        if (rc != HG_OK) {
            rc = model_failed(rc, "start", -1);
            goto done;
        }
        HG_CHECK(decode_batch(&w, m, o, nb, out->tok));
    }

    /* Pack the results: slot i (at cap_off[i]) moves down to the end of hypothesis i - 1. */
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        memmove(out->tok + at, out->tok + w.cap_off[i], (size_t)w.res_len[i] * sizeof *out->tok);
        out->off[i] = at;
        at += w.res_len[i];
    }
    out->off[n] = at;
    out->n = n;

done:
    hg_free(order);
    work_free(&w);
    if (rc != HG_OK)
        hg_beam_result_free(out);
    return rc;
}

void hg_beam_result_free(hg_beam_result *r)
{
    if (!r)
        return;
    hg_free(r->off);
    hg_free(r->tok);
    memset(r, 0, sizeof *r);
}
