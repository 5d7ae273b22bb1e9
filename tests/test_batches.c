/* test_batches.c - token-budget batches (datasets/batches.h) on synthetic corpora of random
 * lengths: every pair in exactly one batch, the batches in the stated order and cut exactly where
 * the rule says (checked against a direct restatement of it), the budget kept, the recorded
 * maxima right, the collated layouts right cell by cell, the epoch order a seeded permutation. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "../datasets/batches.h"
#include "../src/hg.h"
#include "../src/rng.h"

/* A corpus of n sentences with lengths in [lo, hi], token ids encoding (sentence, position) so
 * that the layout check can tell every token apart. */
static void make_corpus(hg_token_corpus *c, int64_t n, int lo, int hi, int side, hg_rng *r)
{
    c->n = n;
    c->off = calloc((size_t)n + 1, sizeof *c->off);
    assert_non_null(c->off);
    for (int64_t i = 0; i < n; i++)
        c->off[i + 1] = c->off[i] + lo + (int64_t)hg_rng_below(r, (uint64_t)(hi - lo + 1));
    c->ids = calloc((size_t)c->off[n] + 1, sizeof *c->ids);
    assert_non_null(c->ids);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = c->off[i]; j < c->off[i + 1]; j++)
            c->ids[j] = (int32_t)(1000000 * side + 1000 * i + (j - c->off[i]) + 10);
}

static int64_t len(const hg_token_corpus *c, int64_t i) { return c->off[i + 1] - c->off[i]; }

/* The key order of the rule: (tgt + 1, src + 1, index). */
static int before(const hg_token_corpus *s, const hg_token_corpus *t, int64_t a, int64_t b)
{
    if (len(t, a) != len(t, b))
        return len(t, a) < len(t, b);
    if (len(s, a) != len(s, b))
        return len(s, a) < len(s, b);
    return a < b;
}

static void check_batches(const hg_token_corpus *s, const hg_token_corpus *t, int64_t budget)
{
    hg_mt_batches b;
    assert_int_equal(hg_mt_batches_make(&b, s, t, budget), HG_OK);
    int64_t n = s->n;
    assert_true(b.nbatches >= 1);
    assert_int_equal(b.start[0], 0);
    assert_int_equal(b.start[b.nbatches], n);
    /* a permutation, in key order */
    char *seen = calloc((size_t)n, 1);
    assert_non_null(seen);
    for (int64_t k = 0; k < n; k++) {
        assert_true(b.pair[k] >= 0 && b.pair[k] < n);
        assert_false(seen[b.pair[k]]);
        seen[b.pair[k]] = 1;
        if (k > 0)
            assert_true(before(s, t, b.pair[k - 1], b.pair[k]));
    }
    free(seen);
    /* the cuts: a batch grows while the rule allows, and each cut is forced */
    int64_t mp = 0, ms = 0, mt = 0, msr = 0, mtr = 0;
    for (int64_t q = 0; q < b.nbatches; q++) {
        int64_t lo = b.start[q], hi = b.start[q + 1], B = hi - lo, ts = 0, tt = 0;
        assert_true(B >= 1);
        for (int64_t k = lo; k < hi; k++) {
            ts = HG_MAX(ts, len(s, b.pair[k]) + 1);
            tt = HG_MAX(tt, len(t, b.pair[k]) + 1);
            if (k > lo) /* joining was allowed */
                assert_true((len(t, b.pair[k]) + 1) * (k - lo + 1) <= budget);
        }
        assert_true(B * tt <= budget || B == 1);
        if (hi < n) /* the next pair could not join */
            assert_true((len(t, b.pair[hi]) + 1) * (B + 1) > budget);
        mp = HG_MAX(mp, B), ms = HG_MAX(ms, ts), mt = HG_MAX(mt, tt);
        msr = HG_MAX(msr, B * ts), mtr = HG_MAX(mtr, B * tt);
    }
    assert_int_equal(b.max_pairs, mp);
    assert_int_equal(b.max_src_len, ms);
    assert_int_equal(b.max_tgt_len, mt);
    assert_int_equal(b.max_src_rows, msr);
    assert_int_equal(b.max_tgt_rows, mtr);

    /* collate every batch into buffers of the recorded sizes (guard cells after them) */
    const int32_t BOS = 1, EOS = 2, PAD = 3, IGN = -100, GUARD = 0x7777777;
    int32_t *sid = malloc((size_t)(msr + 1) * 4), *tin = malloc((size_t)(mtr + 1) * 4),
            *tout = malloc((size_t)(mtr + 1) * 4), *sl = malloc((size_t)(mp + 1) * 4),
            *tl = malloc((size_t)(mp + 1) * 4);
    assert_true(sid && tin && tout && sl && tl);
    sid[msr] = tin[mtr] = tout[mtr] = sl[mp] = tl[mp] = GUARD;
    for (int64_t q = 0; q < b.nbatches; q++) {
        int64_t B, Ts, Tt;
        hg_mt_collate(&b, q, s, t, BOS, EOS, PAD, IGN, sid, sl, tin, tout, tl, &B, &Ts, &Tt);
        assert_int_equal(B, b.start[q + 1] - b.start[q]);
        int64_t ts = 0, tt = 0;
        for (int64_t i = 0; i < B; i++) {
            int64_t p = b.pair[b.start[q] + i], ls = len(s, p), lt = len(t, p);
            ts = HG_MAX(ts, ls + 1), tt = HG_MAX(tt, lt + 1);
            assert_int_equal(sl[i], ls + 1);
            assert_int_equal(tl[i], lt + 1);
            for (int64_t j = 0; j < Ts; j++)
                assert_int_equal(sid[i * Ts + j], j < ls ? s->ids[s->off[p] + j] : j == ls ? EOS : PAD);
            for (int64_t j = 0; j < Tt; j++) {
                assert_int_equal(tin[i * Tt + j], j == 0 ? BOS : j <= lt ? t->ids[t->off[p] + j - 1] : PAD);
                assert_int_equal(tout[i * Tt + j], j < lt ? t->ids[t->off[p] + j] : j == lt ? EOS : IGN);
            }
        }
        assert_int_equal(Ts, ts);
        assert_int_equal(Tt, tt);
        assert_int_equal(sid[msr], GUARD);
        assert_int_equal(tin[mtr], GUARD);
        assert_int_equal(tout[mtr], GUARD);
        assert_int_equal(sl[mp], GUARD);
        assert_int_equal(tl[mp], GUARD);
    }
    free(sid), free(tin), free(tout), free(sl), free(tl);
    hg_mt_batches_free(&b);
    assert_null(b.pair);
}

static void test_rule(void **state)
{
    (void)state;
    hg_rng r;
    hg_rng_seed(&r, 7);
    static const int64_t budgets[] = {1, 10, 57, 200, 4096};
    for (int shape = 0; shape < 3; shape++) {
        hg_token_corpus s, t;
        int64_t n = shape == 0 ? 1 : shape == 1 ? 37 : 1500;
        make_corpus(&s, n, shape == 2 ? 0 : 1, 40, 1, &r);
        make_corpus(&t, n, shape == 2 ? 0 : 3, shape == 2 ? 60 : 9, 2, &r);
        for (size_t k = 0; k < sizeof budgets / sizeof budgets[0]; k++)
            check_batches(&s, &t, budgets[k]);
        hg_token_corpus_free(&s);
        hg_token_corpus_free(&t);
    }
}

/* A hand-made case: target lengths 1, 1, 2, 4 (+1: 2, 2, 3, 5), budget 6: {a, b} (2 * 2 = 4; a
 * third at 3 * 3 = 9 > 6), {c} (then 5 * 2 = 10 > 6), {d}. */
static void test_small_case(void **state)
{
    (void)state;
    int64_t soff[] = {0, 2, 3, 5, 6}, toff[] = {0, 4, 5, 6, 8};
    int32_t ids[8] = {0};
    hg_token_corpus s = {4, soff, ids}, t = {4, toff, ids};
    /* pairs 0..3: tgt lengths 4, 1, 1, 2; src lengths 2, 1, 2, 1 */
    hg_mt_batches b;
    assert_int_equal(hg_mt_batches_make(&b, &s, &t, 6), HG_OK);
    assert_int_equal(b.nbatches, 3);
    int64_t want_pair[] = {1, 2, 3, 0}, want_start[] = {0, 2, 3, 4};
    assert_memory_equal(b.pair, want_pair, sizeof want_pair);
    assert_memory_equal(b.start, want_start, sizeof want_start);
    assert_int_equal(b.max_tgt_rows, 5); /* the lone long pair: 1 x 5 */
    assert_int_equal(b.max_src_rows, 6); /* {1, 2}: 2 x 3 */
    hg_mt_batches_free(&b);
}

static void test_bad_input(void **state)
{
    (void)state;
    int64_t off[] = {0, 1, 2};
    int32_t ids[2] = {5, 6};
    hg_token_corpus two = {2, off, ids}, one = {1, off, ids}, none = {0, off, ids};
    hg_mt_batches b;
    assert_int_equal(hg_mt_batches_make(&b, &two, &one, 100), HG_EINVAL);
    assert_non_null(strstr(hg_last_error(), "2 source sentences but 1 target"));
    assert_null(b.pair);
    assert_int_equal(hg_mt_batches_make(&b, &none, &none, 100), HG_EINVAL);
    assert_int_equal(hg_mt_batches_make(&b, &two, &two, 0), HG_EINVAL);
    hg_mt_batches_free(&b); /* zeroed: fine */
}

static void test_shuffle(void **state)
{
    (void)state;
    enum { N = 200 };
    int64_t a[N], c[N];
    hg_rng r1, r2;
    hg_rng_seed(&r1, 42);
    hg_rng_seed(&r2, 42);
    hg_mt_batches_shuffle(a, N, &r1);
    memset(c, 0xff, sizeof c); /* what the array held before does not matter */
    hg_mt_batches_shuffle(c, N, &r2);
    assert_memory_equal(a, c, sizeof a);
    int seen[N] = {0}, moved = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < N && !seen[a[i]]);
        seen[a[i]] = 1;
        moved += a[i] != i;
    }
    assert_true(moved > N / 2);
    hg_mt_batches_shuffle(c, N, &r2); /* the next epoch: another order */
    assert_memory_not_equal(a, c, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule), cmocka_unit_test(test_small_case),
        cmocka_unit_test(test_bad_input), cmocka_unit_test(test_shuffle),
    };
    return cmocka_run_group_tests_name("batches", tests, NULL, NULL) ? 1 : 0;
}
