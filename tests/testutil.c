/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hg_config.h"
#include "../src/csr.h"
#include "../src/hg.h"
#include "../src/rng.h"

static void report_mismatch(double worst, size_t worst_i, double g, double w, size_t bad,
                            const char *what, const char *file, int line)
{
    print_error("%s:%d: %s: %zu mismatches; worst at [%zu]: got %.9g want %.9g (excess %.3g)\n",
                file, line, what, bad, worst_i, g, w, worst);
}

static void check_pair(double g, double w, size_t i, double atol, double rtol, size_t *bad,
                       double *worst, size_t *worst_i, const char *what, const char *file, int line)
{
    double tol = atol + rtol * fabs(w);
    double err = fabs(g - w);
    if (!(err <= tol)) { /* also catches NaN */
        if (*bad < 5)
            print_error("%s:%d: %s[%zu]: got %.9g want %.9g (|diff| %.3g > tol %.3g)\n", file, line,
                        what, i, g, w, err, tol);
        (*bad)++;
        double excess = isnan(err) ? INFINITY : err - tol;
        if (excess >= *worst) {
            *worst = excess;
            *worst_i = i;
        }
    }
}

void hg_assert_allclose_(const double *got, const double *want, size_t n, double atol, double rtol,
                         const char *what, const char *file, int line)
{
    size_t bad = 0, worst_i = 0;
    double worst = -1;
    for (size_t i = 0; i < n; i++)
        check_pair(got[i], want[i], i, atol, rtol, &bad, &worst, &worst_i, what, file, line);
    if (bad) {
        report_mismatch(worst, worst_i, got[worst_i], want[worst_i], bad, what, file, line);
        fail_msg("%s: not allclose", what);
    }
}

void hg_assert_allclose_f_(const float *got, const float *want, size_t n, double atol, double rtol,
                           const char *what, const char *file, int line)
{
    size_t bad = 0, worst_i = 0;
    double worst = -1;
    for (size_t i = 0; i < n; i++)
        check_pair(got[i], want[i], i, atol, rtol, &bad, &worst, &worst_i, what, file, line);
    if (bad) {
        report_mismatch(worst, worst_i, got[worst_i], want[worst_i], bad, what, file, line);
        fail_msg("%s: not allclose", what);
    }
}

void hg_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    hg_rng r;
    hg_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)hg_rng_uniform(&r);
}

void hg_check_grad_(hg_test_scalar_fn f, void *ctx, float *theta, const double *grad, size_t n,
                    size_t max_checks, double h, double atol, double rtol, const char *what,
                    const char *file, int line)
{
    size_t stride = n > max_checks ? n / max_checks : 1;
    size_t bad = 0, checked = 0;
    for (size_t i = 0; i < n; i += stride, checked++) {
        float saved = theta[i];
        theta[i] = (float)(saved + h);
        double hp = (double)theta[i] - saved; /* the step actually taken in float */
        double fp = f(ctx);
        theta[i] = (float)(saved - h);
        double hm = saved - (double)theta[i];
        double fm = f(ctx);
        theta[i] = saved;
        double num = (fp - fm) / (hp + hm);
        double ana = grad[i];
        double tol = atol + rtol * fmax(fabs(num), fabs(ana));
        if (!(fabs(num - ana) <= tol)) {
            if (bad < 5)
                print_error("%s:%d: %s grad[%zu]: analytic %.9g numeric %.9g (tol %.3g)\n", file,
                            line, what, i, ana, num, tol);
            bad++;
        }
    }
    if (bad)
        fail_msg("%s: %zu of %zu gradient entries disagree with central differences", what, bad,
                 checked);
}

const char *hg_test_data_dir(void) { return HG_SOURCE_DATA_DIR; }

void hg_test_graph_build(hg_test_graph *g, const hg_test_graph_spec *s)
{
    const int n = s->n;
    assert_true(n <= HG_TEST_GRAPH_MAX);
    memset(g, 0, sizeof *g);
    hg_csr *adj = &g->adj, *feat = &g->feat;
    int32_t *labels = g->labels;
    int64_t *train = g->train, *ntrain = &g->ntrain;
    for (int i = 0; i < n; i++)
        g->A[i][(i + 1) % n] = g->A[((i + 1) % n)][i] = 1;
    for (int c = 0; c < s->nchords; c++)
        g->A[s->chords[c][0]][s->chords[c][1]] = g->A[s->chords[c][1]][s->chords[c][0]] = 1;
    int64_t nnz = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            nnz += g->A[i][j] || i == j;
    assert_int_equal(hg_csr_alloc(adj, n, n, nnz), HG_OK);
    int64_t p = 0;
    for (int i = 0; i < n; i++) {
        int deg = 0;
        for (int j = 0; j < n; j++)
            deg += g->A[i][j] || i == j;
        adj->rowptr[i] = p;
        for (int j = 0; j < n; j++)
            if (g->A[i][j] || i == j) {
                adj->col[p] = j;
                adj->val[p++] = 1.0f / (float)deg;
            }
    }
    adj->rowptr[n] = p;

    hg_rng r;
    hg_rng_seed(&r, s->seed);
    assert_int_equal(hg_csr_alloc(feat, n, s->nfeat, (int64_t)n * s->nfeat), HG_OK);
    p = 0;
    for (int i = 0; i < n; i++) {
        feat->rowptr[i] = p;
        if (i == s->empty_a || i == s->empty_b)
            continue;
        int64_t start = p;
        for (int j = 0; j < s->nfeat; j++)
            if (hg_rng_uniform(&r) < s->density) {
                feat->col[p] = j;
                feat->val[p++] = (float)(0.1 + 0.9 * hg_rng_uniform(&r));
            }
        if (p == start) { /* at least one feature on the other rows */
            feat->col[p] = (int32_t)(i % s->nfeat);
            feat->val[p++] = s->fill;
        }
    }
    feat->rowptr[n] = p;
    feat->nnz = p; /* the arrays keep their n x nfeat capacity */

    *ntrain = 0;
    for (int i = 0; i < n; i++) {
        labels[i] = (int32_t)hg_rng_below(&r, (uint64_t)s->nclasses);
        if (i % 4 != s->skip_mod)
            train[(*ntrain)++] = i;
    }
}

void hg_test_graph_destroy(hg_test_graph *g)
{
    hg_csr_destroy(&g->adj);
    hg_csr_destroy(&g->feat);
}
