/* test_beam.c - beam search and greedy decoding (src/models/beam.c) on a toy model.
 *
 * The toy's log-probabilities for a row are a pure function of its source and its whole prefix
 * (toy_logp: hashed logits on a coarse grid, so that equal scores, and with them the tie rule,
 * come up often). Its step callback keeps the prefixes as a cache that it reorders by parent, and
 * checks every argument it is given, so a wrong parent, source row or token shows up as a wrong
 * distribution or a recorded violation. The results are checked against a second implementation
 * of the rule (ref_beam: one source at a time, every hypothesis with its own copy of its prefix,
 * a full sort of all candidates, calling toy_logp directly), against a plain greedy loop over the
 * callbacks (beam 1), against themselves across batch sizes and repeats, and by hand on a uniform
 * model.
 *
 * The executable is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (tests/meson.build)
 * to count allocations: their number must not grow with the steps or the batches. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"
#include "../src/models/beam.h"
#include "../src/rng.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
static long allocations;

void *__wrap_malloc(size_t n)
{
    allocations++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s)
{
    allocations++;
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n)
{
    allocations++;
    return __real_realloc(p, n);
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define TOY_V_MAX 16
#define TOY_ROWS_MAX 256
#define TOY_LEN_MAX 48
#define TOY_SRC_MAX 64
#define TRACE_MAX 256

/* ---- the toy model ------------------------------------------------------------------------- */

/* TOY_HASHED: logits hashed from the source and the prefix, on the grid {0, 0.5, 1, 1.5};
 * TOY_UNIFORM: all logits 0; TOY_TABLE: logits table[last token][v], row V after BOS. */
typedef enum { TOY_HASHED, TOY_UNIFORM, TOY_TABLE } toy_kind;

typedef struct toy {
    /* the distribution */
    toy_kind kind;
    int32_t V, bos, eos;
    uint64_t seed;
    double eos_bias; /* added to EOS's logit */
    const double (*table)[TOY_V_MAX];
    /* failure injection: step fail_step returns fail_status (fail_step < 0: never); start returns
     * start_status; nan_step writes a NaN at step nan_step (< 0: never) */
    int64_t fail_step, nan_step;
    int fail_status, start_status;
    /* the cache and what the callbacks saw */
    int64_t src[TOY_SRC_MAX], n, beam, t_next, rows_prev;
    int64_t row_src[TOY_ROWS_MAX];
    int32_t hist[TOY_ROWS_MAX][TOY_LEN_MAX], tmp[TOY_ROWS_MAX][TOY_LEN_MAX];
    int64_t started[TOY_SRC_MAX * 4], nstarted, nbatches, max_batch;
    /* per source (caller's index): the prefixes of its rows, step after step, hashed */
    uint64_t trace[TOY_SRC_MAX][TRACE_MAX];
    int64_t ntrace[TOY_SRC_MAX];
    int violations;
    char why[160];
} toy;

static void toy_init(toy *m, toy_kind kind, int32_t V, int32_t eos, uint64_t seed, double bias)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->V = V;
    m->bos = V - 1; /* an input-only token in practice; here it is simply one more id */
    m->eos = eos;
    m->seed = seed;
    m->eos_bias = bias;
    m->fail_step = m->nan_step = -1;
}

/* A hash of source src and the prefix prefix[0..len) (tokens after BOS). */
static uint64_t prefix_hash(uint64_t seed, int64_t src, const int32_t *prefix, int64_t len)
{
    uint64_t h = hg_rng_derive(seed, (uint64_t)src);
    for (int64_t k = 0; k < len; k++)
        h = hg_rng_derive(h, (uint64_t)prefix[k] + 1);
    return h;
}

/* Log-probabilities of the token after prefix[0..len) for source src. */
static void toy_logp(const toy *m, int64_t src, const int32_t *prefix, int64_t len, float *out)
{
    double z[TOY_V_MAX], mx = -INFINITY, sum = 0.0;
    const uint64_t h = prefix_hash(m->seed, src, prefix, len);
    for (int32_t v = 0; v < m->V; v++) {
        if (m->kind == TOY_TABLE)
            z[v] = m->table[len ? prefix[len - 1] : m->V][v];
        else
            z[v] = m->kind == TOY_UNIFORM ? 0.0 : 0.5 * (double)(hg_rng_derive(h, 100 + v) % 4);
        if (v == m->eos)
            z[v] += m->eos_bias;
        mx = fmax(mx, z[v]);
    }
    for (int32_t v = 0; v < m->V; v++)
        sum += exp(z[v] - mx);
    for (int32_t v = 0; v < m->V; v++)
        out[v] = (float)(z[v] - mx - log(sum));
}

static int toy_violation(toy *m, const char *what, int64_t t, int64_t i)
{
    if (!m->violations++)
        snprintf(m->why, sizeof m->why, "step %lld row %lld: %s", (long long)t, (long long)i,
                 what);
    return HG_OK; /* recorded, checked by the test; decoding goes on */
}

static int toy_start(void *ctx, const int64_t *src, int64_t n, int beam)
{
    toy *m = ctx;
    if (m->start_status != HG_OK)
        return HG_ERRORF(m->start_status, "toy start refuses");
    if (n < 1 || n > TOY_SRC_MAX || n * beam > TOY_ROWS_MAX ||
        m->nstarted + n > (int64_t)NELEM(m->started))
        return HG_ERRORF(HG_EINVAL, "toy start: %lld sources x beam %d do not fit", (long long)n,
                         beam);
    memcpy(m->src, src, (size_t)n * sizeof *src);
    memcpy(m->started + m->nstarted, src, (size_t)n * sizeof *src);
    m->nstarted += n;
    m->nbatches++;
    m->max_batch = HG_MAX(m->max_batch, n);
    m->n = n;
    m->beam = beam;
    m->t_next = 0;
    return HG_OK;
}

static int toy_step(void *ctx, int64_t t, const int32_t *tokens, const int64_t *parent,
                    const int64_t *src_row, int64_t rows, float *logp)
{
    toy *m = ctx;
    if (t == m->fail_step)
        return HG_ERRORF(m->fail_status, "toy failure");
    if (t != m->t_next)
        toy_violation(m, "steps out of order", t, 0);
    if (rows < 1 || rows > m->n * m->beam || t + 1 >= TOY_LEN_MAX)
        return HG_ERRORF(HG_EINVAL, "toy step %lld: %lld rows, %lld sources x beam %lld",
                         (long long)t, (long long)rows, (long long)m->n, (long long)m->beam);
    for (int64_t i = 0; i < rows; i++) {
        const int64_t s = src_row[i];
        if (s < 0 || s >= m->n || (i > 0 && s < src_row[i - 1]))
            return HG_ERRORF(HG_EINVAL, "toy step %lld row %lld: source row %lld", (long long)t,
                             (long long)i, (long long)s);
        if (t == 0) {
            if (tokens[i] != m->bos)
                toy_violation(m, "first token is not BOS", t, i);
            if (rows != m->n)
                toy_violation(m, "step 0 has not one row per source", t, i);
        } else {
            const int64_t p = parent[i];
            if (p < 0 || p >= m->rows_prev)
                return HG_ERRORF(HG_EINVAL, "toy step %lld row %lld: parent %lld of %lld rows",
                                 (long long)t, (long long)i, (long long)p,
                                 (long long)m->rows_prev);
            if (m->row_src[p] != s)
                toy_violation(m, "parent belongs to another source", t, i);
            if (tokens[i] < 0 || tokens[i] >= m->V || tokens[i] == m->eos)
                toy_violation(m, "fed token out of range or EOS", t, i);
            memcpy(m->tmp[i], m->hist[p], (size_t)(t - 1) * sizeof m->hist[p][0]);
            m->tmp[i][t - 1] = tokens[i];
        }
    }
    for (int64_t i = 0; i < rows; i++) {
        const int64_t src = m->src[src_row[i]];
        memcpy(m->hist[i], m->tmp[i], (size_t)t * sizeof m->hist[i][0]);
        m->row_src[i] = src_row[i];
        toy_logp(m, src, m->hist[i], t, logp + i * m->V);
        if (src >= TOY_SRC_MAX || m->ntrace[src] == TRACE_MAX)
            return HG_ERRORF(HG_EINVAL, "toy step %lld: the trace of source %lld is full",
                             (long long)t, (long long)src);
        m->trace[src][m->ntrace[src]++] = prefix_hash(0, src, m->hist[i], t);
    }
    if (t == m->nan_step)
        logp[m->V / 2] = NAN;
    m->rows_prev = rows;
    m->t_next = t + 1;
    return HG_OK;
}

static hg_beam_model toy_model(toy *m)
{
    return (hg_beam_model){m, m->V, m->bos, m->eos, toy_start, toy_step};
}

/* ---- the rule again, one source at a time ---------------------------------------------------- */

typedef struct ref_hyp {
    float score;
    int64_t len;
    int32_t tok[TOY_LEN_MAX];
} ref_hyp;

typedef struct ref_cand {
    float score;
    int32_t hyp, token;
} ref_cand;

static int32_t ref_V;

static int ref_cmp(const void *pa, const void *pb)
{
    const ref_cand *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    const int64_t ka = (int64_t)a->hyp * ref_V + a->token, kb = (int64_t)b->hyp * ref_V + b->token;
    return ka < kb ? -1 : ka > kb;
}

/* What ref_beam saw: the prefixes of its live hypotheses (hashed as the toy does, step after
 * step), how many equal scores it met among the kept candidates, and how many times the last
 * kept candidate joined the live set while tied with the first one left out. */
typedef struct ref_log {
    uint64_t trace[TRACE_MAX];
    int64_t ntrace;
    long ties, cut_ties;
} ref_log;

/* Best finished hypothesis of source src (max length lmax) into *best (len 0 if none); the trace
 * into *log (reset), the tie counts added to it. */
static void ref_beam(const toy *m, int64_t src, int64_t lmax, int K, double alpha, ref_hyp *best,
                     ref_log *log)
{
    ref_hyp live[2][TOY_ROWS_MAX];
    ref_cand cand[TOY_ROWS_MAX * TOY_V_MAX];
    float lp[TOY_V_MAX];
    int nlive = 1, cur = 0, nfin = 0;
    double best_norm = 0.0;
    ref_V = m->V;
    live[0][0].score = 0.0f;
    live[0][0].len = 0;
    best->len = 0;
    log->ntrace = 0;
    assert_true(K <= TOY_ROWS_MAX && lmax < TOY_LEN_MAX);
    for (int64_t t = 0; nlive > 0; t++) {
        int nc = 0;
        for (int h = 0; h < nlive; h++) {
            assert_true(log->ntrace < TRACE_MAX);
            log->trace[log->ntrace++] = prefix_hash(0, src, live[cur][h].tok, live[cur][h].len);
            toy_logp(m, src, live[cur][h].tok, live[cur][h].len, lp);
            for (int32_t v = 0; v < m->V; v++)
                cand[nc++] = (ref_cand){live[cur][h].score + lp[v], h, v};
        }
        qsort(cand, (size_t)nc, sizeof cand[0], ref_cmp);
        const int keep = HG_MIN(nc, 2 * K);
        for (int j = 1; j < keep; j++)
            log->ties += cand[j].score == cand[j - 1].score;
        const int at_end = t + 1 >= lmax;
        int nnext = 0;
        for (int j = 0; j < keep; j++) {
            const ref_hyp *parent = &live[cur][cand[j].hyp];
            const int is_eos = cand[j].token == m->eos;
            if (is_eos || at_end) {
                if (j >= K || nfin >= K)
                    continue;
                const double norm = cand[j].score / pow((double)(t + 1), alpha);
                if (nfin++ == 0 || norm > best_norm) {
                    best_norm = norm;
                    *best = *parent;
                    if (!is_eos)
                        best->tok[best->len++] = cand[j].token;
                }
            } else if (nnext < K) {
                log->cut_ties += j == 2 * K - 1 && j + 1 < nc && cand[j + 1].score == cand[j].score;
                ref_hyp *c = &live[1 - cur][nnext++];
                *c = *parent;
                c->tok[c->len++] = cand[j].token;
                c->score = cand[j].score;
            }
        }
        if (nfin == K || at_end)
            break;
        nlive = nnext;
        cur = 1 - cur;
    }
}

/* ---- helpers --------------------------------------------------------------------------------- */

static void run_ok(toy *m, const int64_t *src_len, int64_t n, hg_beam_opts o, hg_beam_result *r)
{
    hg_beam_model bm = toy_model(m);
    int rc = hg_beam_search(&bm, src_len, n, &o, r);
    if (rc != HG_OK)
        fail_msg("hg_beam_search: %s: %s", hg_strerror(rc), hg_last_error());
    if (m->violations)
        fail_msg("the toy model saw a wrong call: %s", m->why);
    assert_int_equal(r->n, n);
    assert_int_equal(r->off[0], 0);
    for (int64_t i = 0; i < n; i++) {
        const int64_t len = r->off[i + 1] - r->off[i];
        assert_true(len >= 0 && len <= src_len[i] + o.extra_len); /* the max length holds */
        for (int64_t k = r->off[i]; k < r->off[i + 1]; k++)
            assert_true(r->tok[k] >= 0 && r->tok[k] < m->V && r->tok[k] != m->eos);
    }
}

static void assert_same_result(const hg_beam_result *a, const hg_beam_result *b, const char *what)
{
    assert_int_equal(a->n, b->n);
    for (int64_t i = 0; i <= a->n; i++)
        if (a->off[i] != b->off[i])
            fail_msg("%s: offsets differ at hypothesis %lld", what, (long long)i);
    if (a->off[a->n] && memcmp(a->tok, b->tok, (size_t)a->off[a->n] * sizeof *a->tok))
        fail_msg("%s: tokens differ", what);
}

static void assert_error_mentions(const char *needle)
{
    if (!strstr(hg_last_error(), needle))
        fail_msg("error message \"%s\" does not mention \"%s\"", hg_last_error(), needle);
}

/* Source lengths 1..6 in no order, repeated lengths included. */
static const int64_t SRC_LEN[] = {4, 1, 6, 3, 3, 5, 2, 6, 1, 4, 2};
#define NSRC ((int64_t)NELEM(SRC_LEN))

/* ---- tests ----------------------------------------------------------------------------------- */

/* Every combination of beam, length penalty, extra length and batch against ref_beam; over all of
 * them the results must include hypotheses ended by EOS, ones ended by the max length, and empty
 * ones, and the candidate lists must have met ties (else the test proves little). */
static void test_matches_reference(void **state)
{
    (void)state;
    const int beams[] = {1, 2, 3, 5};
    const double alphas[] = {0.0, 0.6, 1.0, 2.0};
    const int64_t extras[] = {3, 5};
    const int64_t batches[] = {1, 4, NSRC};
    const double biases[] = {0.0, 1.0, 2.5};
    ref_log log = {0};
    long by_eos = 0, by_len = 0, empty = 0, cases = 0;
    for (size_t bi = 0; bi < NELEM(beams); bi++)
        for (size_t ai = 0; ai < NELEM(alphas); ai++)
            for (size_t ei = 0; ei < NELEM(extras); ei++)
                for (size_t si = 0; si < NELEM(batches); si++)
                    for (size_t ki = 0; ki < NELEM(biases); ki++) {
                        toy m;
                        toy_init(&m, TOY_HASHED, 12, 3, 1000 + 7 * ki + bi, biases[ki]);
                        const hg_beam_opts o = {beams[bi], (float)alphas[ai], extras[ei],
                                                batches[si]};
                        hg_beam_result r;
                        run_ok(&m, SRC_LEN, NSRC, o, &r);
                        for (int64_t i = 0; i < NSRC; i++) {
                            ref_hyp want;
                            const int64_t lmax = SRC_LEN[i] + o.extra_len;
                            ref_beam(&m, i, lmax, o.beam, (double)o.len_penalty, &want, &log);
                            if (log.ntrace != m.ntrace[i] ||
                                memcmp(log.trace, m.trace[i],
                                       (size_t)log.ntrace * sizeof log.trace[0]))
                                fail_msg("beam %d alpha %g extra %lld batch %lld bias %g: "
                                         "source %lld: the live hypotheses differ from the "
                                         "reference's",
                                         o.beam, alphas[ai], (long long)o.extra_len,
                                         (long long)o.batch, biases[ki], (long long)i);
                            const int64_t len = r.off[i + 1] - r.off[i];
                            if (len != want.len ||
                                memcmp(r.tok + r.off[i], want.tok, (size_t)len * sizeof(int32_t)))
                                fail_msg("beam %d alpha %g extra %lld batch %lld bias %g: "
                                         "source %lld differs from the reference (length %lld, "
                                         "want %lld)",
                                         o.beam, alphas[ai], (long long)o.extra_len,
                                         (long long)o.batch, biases[ki], (long long)i,
                                         (long long)len, (long long)want.len);
                            by_len += len == lmax;
                            by_eos += len < lmax;
                            empty += len == 0;
                        }
                        hg_beam_result_free(&r);
                        cases++;
                    }
    print_message("%ld cases: %ld hypotheses ended by EOS, %ld by the max length, %ld empty; "
                  "%ld ties among kept candidates, %ld decided the last one kept\n",
                  cases, by_eos, by_len, empty, log.ties, log.cut_ties);
    assert_true(by_eos > 0 && by_len > 0 && empty > 0 && log.ties > 0 && log.cut_ties > 0);
}

/* Beam 1 against a plain greedy loop over the same callbacks, one source per start. */
static void test_beam1_is_greedy(void **state)
{
    (void)state;
    long by_eos = 0, by_len = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        toy m;
        toy_init(&m, TOY_HASHED, 12, 5, seed, 0.5 * (double)(seed % 3));
        const hg_beam_opts o = {1, 1.0f, 4, 3};
        hg_beam_result r;
        run_ok(&m, SRC_LEN, NSRC, o, &r);
        for (int64_t i = 0; i < NSRC; i++) {
            int32_t want[TOY_LEN_MAX], tok;
            int64_t len = 0, parent = 0, row = 0;
            const int64_t lmax = SRC_LEN[i] + o.extra_len;
            float lp[TOY_V_MAX];
            assert_int_equal(toy_start(&m, &i, 1, 1), HG_OK);
            for (int64_t t = 0;; t++) {
                tok = t == 0 ? m.bos : want[t - 1];
                assert_int_equal(toy_step(&m, t, &tok, &parent, &row, 1, lp), HG_OK);
                int32_t arg = 0;
                for (int32_t v = 1; v < m.V; v++)
                    if (lp[v] > lp[arg])
                        arg = v;
                if (arg == m.eos)
                    break;
                want[len++] = arg;
                if (t + 1 >= lmax)
                    break;
            }
            assert_int_equal(r.off[i + 1] - r.off[i], len);
            assert_memory_equal(r.tok + r.off[i], want, (size_t)len * sizeof(int32_t));
            by_len += len == lmax;
            by_eos += len < lmax;
        }
        hg_beam_result_free(&r);
    }
    assert_true(by_eos > 0 && by_len > 0);
}

/* Batched results equal one-by-one results and repeat exactly; the sources reach start sorted by
 * length (stable) in batches of the given size. */
static void test_batched_equals_single(void **state)
{
    (void)state;
    const int64_t batches[] = {2, 3, 5, NSRC, 1000};
    for (int beam = 1; beam <= 4; beam += 3) {
        toy m;
        toy_init(&m, TOY_HASHED, 12, 3, 77, 1.0);
        hg_beam_result one, again, many;
        run_ok(&m, SRC_LEN, NSRC, (hg_beam_opts){beam, 1.0f, 4, 1}, &one);
        assert_int_equal(m.nbatches, NSRC);
        for (size_t bi = 0; bi < NELEM(batches); bi++) {
            toy_init(&m, TOY_HASHED, 12, 3, 77, 1.0);
            run_ok(&m, SRC_LEN, NSRC, (hg_beam_opts){beam, 1.0f, 4, batches[bi]}, &many);
            assert_same_result(&many, &one, "batched vs one by one");
            const int64_t b = HG_MIN(batches[bi], NSRC);
            assert_int_equal(m.nbatches, (NSRC + b - 1) / b);
            assert_int_equal(m.max_batch, b);
            assert_int_equal(m.nstarted, NSRC);
            for (int64_t k = 1; k < NSRC; k++) {
                const int64_t a = m.started[k - 1], c = m.started[k];
                assert_true(SRC_LEN[a] < SRC_LEN[c] || (SRC_LEN[a] == SRC_LEN[c] && a < c));
            }
            toy_init(&m, TOY_HASHED, 12, 3, 77, 1.0);
            run_ok(&m, SRC_LEN, NSRC, (hg_beam_opts){beam, 1.0f, 4, batches[bi]}, &again);
            assert_same_result(&again, &many, "repeat");
            hg_beam_result_free(&many);
            hg_beam_result_free(&again);
        }
        hg_beam_result_free(&one);
    }
}

/* A model that always prefers EOS decodes every source to the empty sequence; one that never
 * does runs every source to its max length. */
static void test_eos_first_and_never(void **state)
{
    (void)state;
    for (int beam = 1; beam <= 4; beam++) {
        toy m;
        hg_beam_result r;
        toy_init(&m, TOY_HASHED, 12, 0, 5, 30.0);
        run_ok(&m, SRC_LEN, NSRC, (hg_beam_opts){beam, 1.0f, 3, 4}, &r);
        for (int64_t i = 0; i <= NSRC; i++)
            assert_int_equal(r.off[i], 0);
        hg_beam_result_free(&r);

        toy_init(&m, TOY_HASHED, 12, 0, 5, -30.0);
        run_ok(&m, SRC_LEN, NSRC, (hg_beam_opts){beam, 1.0f, 3, 4}, &r);
        for (int64_t i = 0; i < NSRC; i++)
            assert_int_equal(r.off[i + 1] - r.off[i], SRC_LEN[i] + 3);
        hg_beam_result_free(&r);
    }
}

/* A uniform model, worked by hand (V = 5, beam 2, every candidate ties, so keys decide). */
static void test_ties_by_hand(void **state)
{
    (void)state;
    const int64_t len[] = {2};
    toy m;
    hg_beam_result r;
    /* EOS = 0. Step 0: candidates (hyp 0) tokens 0, 1, 2, 3: EOS finishes (rank 0, score
     * log 1/5, L = 1), 1 and 2 go on. Step 1: the best candidate is (hyp 0 = [1], EOS): rank 0,
     * score 2 log 1/5, L = 2, and the second finished hypothesis ends the source. alpha 1: both
     * normalise to log 1/5, the first (empty) wins the tie; alpha 2: [1] (log 1/5 / 2) wins;
     * alpha 0: the empty one (log 1/5 > 2 log 1/5). */
    const struct {
        float alpha;
        int64_t n;
    } cases[] = {{1.0f, 0}, {2.0f, 1}, {0.0f, 0}};
    for (size_t c = 0; c < NELEM(cases); c++) {
        toy_init(&m, TOY_UNIFORM, 5, 0, 1, 0.0);
        run_ok(&m, len, 1, (hg_beam_opts){2, cases[c].alpha, 3, 1}, &r);
        assert_int_equal(r.off[1], cases[c].n);
        if (cases[c].n)
            assert_int_equal(r.tok[0], 1);
        hg_beam_result_free(&r);
    }
    /* EOS = 2: it only ever ranks third (after tokens 0 and 1 of hypothesis 0), outside the
     * first two, so nothing finishes before the max length 2 + 3 = 5, where the first two
     * candidates [0 0 0 0] + 0 and + 1 finish with equal scores: the first wins. */
    toy_init(&m, TOY_UNIFORM, 5, 2, 1, 0.0);
    run_ok(&m, len, 1, (hg_beam_opts){2, 1.0f, 3, 1}, &r);
    const int32_t zeros[5] = {0};
    assert_int_equal(r.off[1], 5);
    assert_memory_equal(r.tok, zeros, sizeof zeros);
    hg_beam_result_free(&r);
}

/* The toy's trace of source 0 is that of the given prefixes (each ended by -1), in order. */
static void assert_trace(const toy *m, const int32_t prefixes[][4], int count)
{
    assert_int_equal(m->ntrace[0], count);
    for (int k = 0; k < count; k++) {
        int64_t len = 0;
        while (prefixes[k][len] >= 0)
            len++;
        if (m->trace[0][k] != prefix_hash(0, 0, prefixes[k], len))
            fail_msg("row %d of the trace is not the expected prefix", k);
    }
}

/* Beam 2 on a table model, worked by hand, where the last candidate kept (rank 3 of 4) ties with
 * the first one left out: the lower key must win. V = 4, EOS = 0, BOS row: tokens 1 and 2 tie on
 * top, EOS and 3 tie far below: step 0 keeps [1] and [2] (EOS ranks third: dropped). Step 1
 * ([1]: token 1 first, EOS second; [2]: EOS first, 1, 2, 3 tied): [1]+1 (-0.31 - s0 where s0 is
 * step 0's score), [2]+EOS (-0.74), [1]+EOS (-1.31, rank 2: dropped), then [2]+1, [2]+2, [2]+3
 * tied (-1.74): [2]+1 is kept, not [2]+2 (which a scan that let a later tie displace the last
 * one kept would keep). Step 2 is the forced end (length 1 + 2): [1 1]+1 (-1.33, L = 3: -0.44)
 * finishes and beats [2] (-1.44, L = 2: -0.72). */
static void test_cutoff_tie_by_hand(void **state)
{
    (void)state;
    static const double table[TOY_V_MAX + 1][TOY_V_MAX] = {
        [1] = {1, 2, -5, -5}, [2] = {1, 0, 0, 0}, [3] = {1, 0, 0, 0}, [4] = {-5, 0, 0, -5}};
    const int64_t len[] = {1};
    toy m;
    hg_beam_result r;
    toy_init(&m, TOY_TABLE, 4, 0, 0, 0.0);
    m.table = table;
    run_ok(&m, len, 1, (hg_beam_opts){2, 1.0f, 2, 1}, &r);
    const int32_t trace[][4] = {{-1}, {1, -1}, {2, -1}, {1, 1, -1}, {2, 1, -1}};
    assert_trace(&m, trace, (int)NELEM(trace));
    const int32_t want[] = {1, 1, 1};
    assert_int_equal(r.off[1], 3);
    assert_memory_equal(r.tok, want, sizeof want);
    hg_beam_result_free(&r);
}

/* Tokens the model rules out (log-probability -inf) are no candidates, even when fewer than 2K
 * candidates remain: beam 3, V = 4, EOS = 0; after BOS only token 1 is possible, after 1 only EOS
 * and 3 (tied: EOS first), after 3 only EOS (log-probability 0). So [1] lives alone, then [1]
 * finishes (log 1/2, L = 2) and [1 3] lives alone, then [1 3] finishes (log 1/2, L = 3) and
 * nothing is left: alpha 0 ties and picks the first, [1]; alpha 1 picks [1 3]. */
static void test_masked_tokens(void **state)
{
    (void)state;
    static const double table[TOY_V_MAX + 1][TOY_V_MAX] = {
        [1] = {0, -INFINITY, -INFINITY, 0},
        [2] = {0, -INFINITY, -INFINITY, -INFINITY},
        [3] = {0, -INFINITY, -INFINITY, -INFINITY},
        [4] = {-INFINITY, 0, -INFINITY, -INFINITY}};
    const int64_t len[] = {3};
    const int32_t trace[][4] = {{-1}, {1, -1}, {1, 3, -1}};
    for (int a = 0; a <= 1; a++) {
        toy m;
        hg_beam_result r;
        toy_init(&m, TOY_TABLE, 4, 0, 0, 0.0);
        m.table = table;
        run_ok(&m, len, 1, (hg_beam_opts){3, (float)a, 5, 1}, &r);
        assert_trace(&m, trace, (int)NELEM(trace));
        const int32_t want[] = {1, 3};
        assert_int_equal(r.off[1], a + 1);
        assert_memory_equal(r.tok, want, (size_t)(a + 1) * sizeof want[0]);
        hg_beam_result_free(&r);
    }
}

static void test_no_sources(void **state)
{
    (void)state;
    toy m;
    hg_beam_result r;
    toy_init(&m, TOY_HASHED, 12, 3, 1, 0.0);
    run_ok(&m, NULL, 0, (hg_beam_opts){3, 1.0f, 3, 2}, &r);
    assert_int_equal(m.nbatches, 0);
    hg_beam_result_free(&r);
}

/* Invalid arguments: HG_EINVAL with a message naming the culprit, and an empty result. */
static void test_invalid(void **state)
{
    (void)state;
    toy m;
    toy_init(&m, TOY_HASHED, 12, 3, 1, 0.0);
    const hg_beam_model good = toy_model(&m);
    const hg_beam_opts ok = {2, 1.0f, 3, 2};
    const int64_t len[] = {3, 2}, bad_len[] = {3, 0};
    const struct {
        hg_beam_model m;
        hg_beam_opts o;
        const int64_t *len;
        const char *needle;
    } cases[] = {
        {good, {0, 1.0f, 3, 2}, len, "beam"},
        {good, {2, 1.0f, 3, 0}, len, "batch"},
        {good, {2, 1.0f, -1, 2}, len, "extra_len"},
        {good, {2, NAN, 3, 2}, len, "len_penalty"},
        {good, ok, bad_len, "source 1"},
        {good, ok, NULL, "src_len"},
        {{&m, 12, 11, 12, toy_start, toy_step}, ok, len, "eos"},
        {{&m, 0, 0, 0, toy_start, toy_step}, ok, len, "vocab"},
        {{&m, 12, 11, 3, NULL, toy_step}, ok, len, "callbacks"},
        {good, {INT32_MAX, 1.0f, INT64_MAX / 4, 2}, len, "overflow"},
    };
    for (size_t c = 0; c < NELEM(cases); c++) {
        hg_beam_result r = {7, NULL, NULL};
        assert_int_equal(hg_beam_search(&cases[c].m, cases[c].len, 2, &cases[c].o, &r), HG_EINVAL);
        assert_error_mentions(cases[c].needle);
        assert_true(r.n == 0 && !r.off && !r.tok);
    }
    assert_int_equal(hg_beam_search(&good, len, 2, &ok, NULL), HG_EINVAL);
}

/* A failing callback's status comes back with its message; so does a NaN from the model. */
static void test_model_failure(void **state)
{
    (void)state;
    toy m;
    hg_beam_result r;
    hg_beam_model bm;
    const hg_beam_opts o = {3, 1.0f, 4, 4};

    toy_init(&m, TOY_HASHED, 12, 3, 1, -30.0); /* no EOS: every batch lasts past step 2 */
    m.fail_step = 2;
    m.fail_status = HG_EIO;
    bm = toy_model(&m);
    assert_int_equal(hg_beam_search(&bm, SRC_LEN, NSRC, &o, &r), HG_EIO);
    assert_error_mentions("toy failure");
    assert_error_mentions("step 2");
    assert_true(r.n == 0 && !r.off && !r.tok);

    toy_init(&m, TOY_HASHED, 12, 3, 1, 0.0);
    m.start_status = HG_ENOMEM;
    bm = toy_model(&m);
    assert_int_equal(hg_beam_search(&bm, SRC_LEN, NSRC, &o, &r), HG_ENOMEM);
    assert_error_mentions("toy start refuses");
    assert_true(r.n == 0 && !r.off && !r.tok);

    toy_init(&m, TOY_HASHED, 12, 3, 1, -30.0);
    m.nan_step = 1;
    bm = toy_model(&m);
    assert_int_equal(hg_beam_search(&bm, SRC_LEN, NSRC, &o, &r), HG_ENUMERIC);
    assert_error_mentions("step 1");
    assert_true(r.n == 0 && !r.off && !r.tok);
}

/* The working memory is allocated once per call: as many allocations for 1 or many batches and
 * for short or long decodes. */
static void test_allocations_per_call(void **state)
{
    (void)state;
    long counts[4];
    const hg_beam_opts opts[] = {{3, 1.0f, 2, NSRC}, {3, 1.0f, 2, 1}, {3, 1.0f, 20, NSRC},
                                 {3, 1.0f, 20, 1}};
    for (size_t c = 0; c < NELEM(opts); c++) {
        toy m;
        hg_beam_result r;
        hg_beam_model bm;
        toy_init(&m, TOY_HASHED, 12, 3, 9, -30.0); /* no EOS: the long decodes run 20+ steps */
        bm = toy_model(&m);
        const long before = allocations;
        assert_int_equal(hg_beam_search(&bm, SRC_LEN, NSRC, &opts[c], &r), HG_OK);
        counts[c] = allocations - before;
        assert_true(r.off[1] - r.off[0] == SRC_LEN[0] + opts[c].extra_len);
        hg_beam_result_free(&r);
    }
    print_message("allocations per call: %ld %ld %ld %ld\n", counts[0], counts[1], counts[2],
                  counts[3]);
    assert_true(counts[0] > 0); /* the counter works */
    for (size_t c = 1; c < NELEM(opts); c++)
        assert_int_equal(counts[c], counts[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_beam1_is_greedy),
        cmocka_unit_test(test_batched_equals_single),
        cmocka_unit_test(test_eos_first_and_never),
        cmocka_unit_test(test_ties_by_hand),
        cmocka_unit_test(test_cutoff_tie_by_hand),
        cmocka_unit_test(test_masked_tokens),
        cmocka_unit_test(test_no_sources),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_model_failure),
        cmocka_unit_test(test_allocations_per_call),
    };
    return cmocka_run_group_tests_name("beam", tests, NULL, NULL);
}
