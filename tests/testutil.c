/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

double hg_test_max_abs(const float *x, int64_t n)
{
    double w = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)x[i]);
        w = a > w || isnan(a) ? a : w; /* a NaN stays (fmax would drop it) */
    }
    return w;
}

double hg_test_max_abs_diff(const float *x, const float *y, int64_t n)
{
    double w = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)x[i] - y[i]);
        w = a > w || isnan(a) ? a : w; /* a NaN stays (fmax would drop it) */
    }
    return w;
}

#define U32 (0.5 * (double)FLT_EPSILON) /* 2^-24, the unit roundoff of float */

/* ---- scratch ---- */

static void **scratch;
static int scratch_n, scratch_cap;

void *hg_test_alloc(int64_t count, size_t size)
{
    if (scratch_n == scratch_cap) {
        scratch_cap = scratch_cap ? 2 * scratch_cap : 256;
        scratch = realloc(scratch, (size_t)scratch_cap * sizeof *scratch);
        assert_non_null(scratch);
    }
    void *p = calloc((size_t)(count > 0 ? count : 1), size);
    assert_non_null(p);
    scratch[scratch_n++] = p;
    return p;
}

float *hg_test_floats(int64_t n) { return hg_test_alloc(n, sizeof(float)); }
double *hg_test_doubles(int64_t n) { return hg_test_alloc(n, sizeof(double)); }

int hg_test_mark(void) { return scratch_n; }

void hg_test_release(int mark)
{
    while (scratch_n > mark)
        free(scratch[--scratch_n]);
}

void hg_test_free_all(void)
{
    hg_test_release(0);
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}

void hg_test_fill_nan(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = NAN;
}

float *hg_test_uniform(int64_t n, float lo, float hi, uint64_t seed)
{
    float *x = hg_test_floats(n);
    hg_test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}

double *hg_test_f2d(const float *x, int64_t n)
{
    double *r = hg_test_doubles(n);
    for (int64_t i = 0; i < n; i++)
        r[i] = x[i];
    return r;
}

double *hg_test_twice(const double *E, int64_t n)
{
    double *t = hg_test_doubles(n);
    for (int64_t i = 0; i < n; i++)
        t[i] = 2.0 * E[i];
    return t;
}

double *hg_test_linear_tol(const float *h, const float *Wt, const float *b, int64_t n,
                           int64_t din, int64_t d)
{
    double *tol = hg_test_doubles(n * d);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < d; o++) {
            double mag = b ? fabs((double)b[o]) : 0.0;
            for (int64_t j = 0; j < din; j++)
                mag += fabs((double)h[i * din + j] * Wt[j * d + o]);
            tol[i * d + o] = 2.0 * (double)(din + 2) * U32 * mag;
        }
    return tol;
}

/* ---- CSR ---- */

static int in_list(int64_t v, const int64_t *l, int nl)
{
    for (int k = 0; k < nl; k++)
        if (l[k] == v)
            return 1;
    return 0;
}

void hg_test_csr_random(hg_test_csr *a, int64_t nrows, int64_t ncols, double dens,
                        const int64_t *hubs, int nhubs, int64_t emod, float lo, float hi,
                        uint64_t seed)
{
    hg_rng g;
    hg_rng_seed(&g, seed);
    a->nrows = nrows;
    a->ncols = ncols;
    a->rowptr = hg_test_alloc(nrows + 1, sizeof *a->rowptr);
    a->col = hg_test_alloc(nrows * ncols, sizeof *a->col);
    a->val = hg_test_floats(nrows * ncols);
    int64_t p = 0;
    for (int64_t i = 0; i < nrows; i++) {
        a->rowptr[i] = p;
        for (int64_t j = 0; j < ncols; j++) {
            double u = hg_rng_uniform(&g);
            float v = lo + (hi - lo) * (float)hg_rng_uniform(&g);
            if (i % emod == emod - 1 || j % emod == emod - 2)
                continue;
            if (in_list(i, hubs, nhubs) || in_list(j, hubs, nhubs) || u < dens) {
                a->col[p] = (int32_t)j;
                a->val[p++] = v;
            }
        }
    }
    a->rowptr[nrows] = p;
    a->nnz = p;
}

void hg_test_csr_transpose(hg_test_csr *t, const hg_test_csr *a)
{
    t->nrows = a->ncols;
    t->ncols = a->nrows;
    t->nnz = a->nnz;
    t->rowptr = hg_test_alloc(a->ncols + 1, sizeof *t->rowptr);
    t->col = hg_test_alloc(a->nnz, sizeof *t->col);
    t->val = hg_test_floats(a->nnz);
    int64_t *next = hg_test_alloc(a->ncols, sizeof *next);
    for (int64_t p = 0; p < a->nnz; p++)
        t->rowptr[a->col[p] + 1]++;
    for (int64_t j = 0; j < a->ncols; j++) {
        t->rowptr[j + 1] += t->rowptr[j];
        next[j] = t->rowptr[j];
    }
    for (int64_t i = 0; i < a->nrows; i++)
        for (int64_t p = a->rowptr[i]; p < a->rowptr[i + 1]; p++) {
            int64_t q = next[a->col[p]]++;
            t->col[q] = (int32_t)i;
            t->val[q] = a->val[p];
        }
}

float *hg_test_csr_dense(const hg_test_csr *a)
{
    float *D = hg_test_floats(a->nrows * a->ncols);
    for (int64_t i = 0; i < a->nrows; i++)
        for (int64_t p = a->rowptr[i]; p < a->rowptr[i + 1]; p++)
            D[i * a->ncols + a->col[p]] = a->val[p];
    return D;
}

int64_t hg_test_csr_maxrow(const hg_test_csr *a)
{
    int64_t m = 0;
    for (int64_t i = 0; i < a->nrows; i++)
        m = a->rowptr[i + 1] - a->rowptr[i] > m ? a->rowptr[i + 1] - a->rowptr[i] : m;
    return m;
}

double *hg_test_csr_spmm_tol(const hg_test_csr *A, const float *Y, int64_t d)
{
    double *tol = hg_test_doubles(A->nrows * d);
    for (int64_t i = 0; i < A->nrows; i++)
        for (int64_t c = 0; c < d; c++) {
            double mag = 0.0;
            for (int64_t q = A->rowptr[i]; q < A->rowptr[i + 1]; q++)
                mag += fabs((double)A->val[q] * Y[(int64_t)A->col[q] * d + c]);
            tol[i * d + c] = 2.0 * (double)(A->rowptr[i + 1] - A->rowptr[i] + 1) * U32 * mag;
        }
    return tol;
}

void hg_test_csr_input(hg_test_csr *X, hg_test_csr *Xt, int64_t nrows, int64_t ncols,
                       uint64_t seed)
{
    static const int64_t hubs[] = {0, 40}; /* column 0: the time coordinate, in every row */
    hg_test_csr_random(X, nrows, ncols, 0.15, hubs, 2, 9, -1.0f, 1.0f, seed);
    hg_test_csr_transpose(Xt, X);
    assert_true(hg_test_csr_maxrow(X) > HG_K_FLOAT_RUN && hg_test_csr_maxrow(Xt) > HG_K_FLOAT_RUN);
}

/* ---- the hyperboloid ---- */

void hg_test_random_point(double *x, int64_t d, double r, hg_rng *g)
{
    double nrm = 0.0;
    for (int64_t j = 1; j < d; j++) {
        x[j] = hg_rng_normal(g);
        nrm += x[j] * x[j];
    }
    nrm = sqrt(nrm);
    for (int64_t j = 1; j < d; j++)
        x[j] = x[j] / nrm * sinh(r);
    x[0] = cosh(r);
}

void hg_test_random_points(float *X, int64_t n, int64_t d, double rmax, uint64_t seed)
{
    double x[HG_LORENTZ_MAX_D];
    assert_true(d <= HG_LORENTZ_MAX_D);
    hg_rng g;
    hg_rng_seed(&g, seed);
    for (int64_t i = 0; i < n; i++) {
        hg_test_random_point(x, d, rmax * hg_rng_uniform(&g), &g);
        for (int64_t j = 0; j < d; j++)
            X[i * d + j] = (float)x[j];
    }
}

void hg_test_random_aggregates(float *S, int64_t n, int64_t d, uint64_t seed)
{
    double x[HG_LORENTZ_MAX_D], acc[HG_LORENTZ_MAX_D];
    assert_true(d <= HG_LORENTZ_MAX_D);
    hg_rng g;
    hg_rng_seed(&g, seed);
    for (int64_t i = 0; i < n; i++) {
        memset(acc, 0, (size_t)d * sizeof *acc);
        for (int k = 0; k < 3 && i % 9 != 8; k++) {
            hg_test_random_point(x, d, 1.5 * hg_rng_uniform(&g), &g);
            double w = 0.2 + 1.3 * hg_rng_uniform(&g);
            for (int64_t j = 0; j < d; j++)
                acc[j] += w * x[j];
        }
        for (int64_t j = 0; j < d; j++)
            S[i * d + j] = (float)acc[j];
    }
}

/* ---- the layer ---- */

void hg_test_layer_setup(hg_test_layer *L, const hg_kctx *k, int64_t n, int64_t din, int64_t d,
                         uint64_t seed)
{
    static const int64_t hubs[] = {5, 60}; /* rows/columns of 74 entries > HG_K_FLOAT_RUN */
    L->n = n;
    L->din = din;
    L->d = d;
    hg_test_csr_random(&L->A, n, n, 0.08, hubs, 2, 9, 0.05f, 1.0f, seed);
    hg_test_csr_transpose(&L->At, &L->A);
    assert_true(hg_test_csr_maxrow(&L->A) > HG_K_FLOAT_RUN &&
                hg_test_csr_maxrow(&L->At) > HG_K_FLOAT_RUN);
    L->S_prev = hg_test_floats(n * din);
    hg_test_random_aggregates(L->S_prev, n, din, seed + 1);
    L->x = hg_test_floats(n * din);
    hg_k_lorentz_centroid_forward(k, L->x, L->S_prev, n, din);
    L->W = hg_test_floats(d * din);
    L->Wt = hg_test_floats(din * d);
    const float bound = 1.0f / sqrtf((float)din);
    hg_test_fill_uniform(L->W, (size_t)(d * din), -bound, bound, seed + 2);
    for (int64_t o = 0; o < d; o++)
        for (int64_t j = 0; j < din; j++)
            L->Wt[j * d + o] = L->W[o * din + j];
    L->b = hg_test_uniform(d, -0.5f, 0.5f, seed + 3);
    L->gS = hg_test_uniform(n * d, -1.0f, 1.0f, seed + 4);
    L->s = 0.7f;
}

/* ---- the backward bound ---- */

hg_test_head_jac hg_test_head_jac_of(const float *z, float s, int64_t d)
{
    hg_test_head_jac h;
    const double es = exp((double)s), sg = 1.0 / (1.0 + exp(-(double)z[0]));
    const double t = sg * es + HG_LORENTZ_LINEAR_TIME_OFFSET;
    double q = 0.0;
    for (int64_t j = 1; j < d; j++)
        q += (double)z[j] * z[j];
    const int clamped = q < HG_LORENTZ_LINEAR_MIN_SQNORM;
    if (clamped)
        q = HG_LORENTZ_LINEAR_MIN_SQNORM;
    h.f = sqrt((t * t - 1.0) / q);
    h.dfdt = t / (q * h.f);
    h.dfdq = clamped ? 0.0 : -0.5 * h.f / q;
    h.ses = sg * es;
    h.K = h.ses * (1.0 - sg);
    return h;
}

void hg_test_bwd_bounds(hg_test_bwd_bound *E, const hg_test_bwd_in *in,
                        const hg_test_bwd_kappa *kap)
{
    const int64_t n = in->n, din = in->din, d = in->d;
    assert_true(d <= HG_LORENTZ_MAX_D && din <= HG_LORENTZ_MAX_D);
    const hg_test_csr *At = in->At;
    const float *z = in->z;
    E->dz = hg_test_doubles(n * d);
    E->gWt = hg_test_doubles(din * d);
    E->gb = hg_test_doubles(d);
    E->gx = NULL;
    double *Mdz = hg_test_doubles(n * d), *Mdy = hg_test_doubles(d), *Edy = hg_test_doubles(d);
    E->gs = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t k_i = At->rowptr[i + 1] - At->rowptr[i];
        for (int64_t c = 0; c < d; c++) {
            double m = 0.0;
            for (int64_t q = At->rowptr[i]; q < At->rowptr[i + 1]; q++)
                m += fabs((double)At->val[q] * in->gS[(int64_t)At->col[q] * d + c]);
            Mdy[c] = m;
            Edy[c] = (double)(k_i + 1) * U32 * m;
        }
        const float *zi = z + i * d;
        const hg_test_head_jac h = hg_test_head_jac_of(zi, in->s, d);
        const double k0 = kap->head_time(d, zi[0]), k_sp = kap->head_space(d);
        double AM = 0.0, AE = 0.0;
        for (int64_t j = 1; j < d; j++) {
            AM += fabs((double)zi[j]) * Mdy[j];
            AE += fabs((double)zi[j]) * Edy[j];
        }
        const double m0 = Mdy[0] + AM * h.dfdt, e0 = Edy[0] + AE * h.dfdt;
        Mdz[i * d] = m0 * h.K;
        E->dz[i * d] = e0 * h.K + k0 * U32 * Mdz[i * d];
        for (int64_t j = 1; j < d; j++) {
            const double cz = 2.0 * fabs(h.dfdq) * fabs((double)zi[j]);
            Mdz[i * d + j] = Mdy[j] * h.f + AM * cz;
            E->dz[i * d + j] = Edy[j] * h.f + AE * cz + k_sp * U32 * Mdz[i * d + j];
        }
        E->gs += e0 * h.ses + (k0 + kap->ds_sums) * U32 * m0 * h.ses;
    }
    for (int64_t j = 0; j < din; j++)
        for (int64_t c = 0; c < d; c++) {
            double m = 0.0, e = 0.0;
            for (int64_t i = 0; i < n; i++) {
                const double a = fabs((double)in->hd[i * din + j]);
                m += a * Mdz[i * d + c];
                e += a * E->dz[i * d + c];
            }
            E->gWt[j * d + c] = e + (double)(n + 1) * U32 * m;
        }
    for (int64_t c = 0; c < d; c++) {
        double m = 0.0, e = 0.0;
        for (int64_t i = 0; i < n; i++) {
            m += Mdz[i * d + c];
            e += E->dz[i * d + c];
        }
        E->gb[c] = e + (double)(n + 1) * U32 * m;
    }
    if (!in->W)
        return;
    E->gx = hg_test_doubles(n * din);
    double *Mdx = hg_test_doubles(din), *Edx = hg_test_doubles(din);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < din; j++) {
            const double rm = in->relu && !(in->x[i * din + j] > 0.0f)
                                  ? 0.0
                                  : (double)hg_k_dropout_scale(i * din + j, in->p, in->seed);
            double m = 0.0, e = 0.0;
            for (int64_t c = 0; c < d; c++) {
                const double a = fabs((double)in->W[c * din + j]);
                m += Mdz[i * d + c] * a;
                e += E->dz[i * d + c] * a;
            }
            Mdx[j] = rm * m;
            Edx[j] = rm * e + (double)(d + 2) * U32 * rm * m;
        }
        if (!in->S_prev) {
            memcpy(E->gx + i * din, Edx, (size_t)din * sizeof *Edx);
            continue;
        }
        /* dS_j = r dout_j + 2 dr/dm (dout . S) eta_j S_j, r = c^-1/2 */
        const float *Si = in->S_prev + i * din;
        const double mnk = fabs(hg_k_lorentz_inner(Si, Si, din));
        const int clamped = mnk < HG_LORENTZ_CENTROID_MIN;
        const double cc = clamped ? HG_LORENTZ_CENTROID_MIN : mnk, r = 1.0 / sqrt(cc);
        const double drdm = clamped ? 0.0 : 0.5 * r / cc;
        const double k_c = kap->centroid(Si, din, cc);
        double SM = 0.0, SE = 0.0;
        for (int64_t j = 0; j < din; j++) {
            SM += fabs((double)Si[j]) * Mdx[j];
            SE += fabs((double)Si[j]) * Edx[j];
        }
        for (int64_t j = 0; j < din; j++) {
            const double cs = 2.0 * drdm * fabs((double)Si[j]);
            const double m = r * Mdx[j] + cs * SM;
            E->gx[i * din + j] = r * Edx[j] + cs * SE + k_c * U32 * m;
        }
    }
}

/* ---- decoders ---- */

int64_t *hg_test_shuffled_rows(int64_t n, uint64_t seed)
{
    int64_t *idx = hg_test_alloc(n, sizeof *idx);
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    hg_rng g;
    hg_rng_seed(&g, seed);
    hg_rng_shuffle_i64(&g, idx, n);
    return idx;
}

double hg_test_score(const float *x, const float *y, int64_t d, double *mag)
{
    double s = -(double)x[0] * y[0], m = fabs((double)x[0] * y[0]);
    for (int64_t j = 1; j < d; j++) {
        s += (double)x[j] * y[j];
        m += fabs((double)x[j] * y[j]);
    }
    *mag = 2.0 + 2.0 * m;
    return 2.0 + 2.0 * s;
}

void hg_test_random_pairs(int32_t *pairs, int64_t count, int32_t npts, uint64_t seed,
                          int nan_every)
{
    hg_rng g;
    hg_rng_seed(&g, seed);
    for (int64_t e = 0; e < count; e++) {
        pairs[2 * e] = (int32_t)hg_rng_below(&g, (uint64_t)(npts - 1));
        pairs[2 * e + 1] = (int32_t)hg_rng_below(&g, (uint64_t)(npts - 1));
        if (nan_every && e % nan_every == nan_every - 1)
            pairs[2 * e + (e & 1)] = npts - 1;
    }
    pairs[2] = pairs[3];
}

/* ---------------------------------------------------------------- linear maps on their own */

#include "../sst/linear_internal.h"

/* A group of its own (weights, vectors), the map, the commit; on failure nothing is left. */
static int linear_make(const hg_kctx *k, int64_t m, int64_t n, const float *W,
                       const hg_linear_opts *o, uint64_t seed, int64_t max_rows, hg_linear **out)
{
    hg_params *P = NULL;
    hg_param_hp wh, vh;
    int gw, gv, rc;
    *out = NULL;
    if ((rc = hg_params_create(&P, k)) != HG_OK)
        return rc;
    hg_linear_group_hp(o, &wh, &vh);
    if ((rc = hg_params_add_group(P, "weights", &wh, &gw)) != HG_OK ||
        (rc = hg_params_add_group(P, "vectors", &vh, &gv)) != HG_OK ||
        (rc = hg_linear_create(out, P, gw, gv, "lin", m, n, W, o, seed, max_rows)) != HG_OK ||
        (rc = hg_params_commit(P)) != HG_OK) {
        hg_linear_free(*out);
        *out = NULL;
        hg_params_free(P);
    }
    return rc;
}

int hg_test_linear_try(const hg_kctx *k, int64_t m, int64_t n, const float *W,
                       const hg_linear_opts *o, uint64_t seed, hg_linear **out)
{
    return linear_make(k, m, n, W, o, seed, 0, out);
}

hg_linear *hg_test_linear_create(const hg_kctx *k, int64_t m, int64_t n, const float *W,
                                 const hg_linear_opts *o, uint64_t seed, int64_t max_rows)
{
    hg_linear *L = NULL;
    int rc = linear_make(k, m, n, W, o, seed, max_rows, &L);
    if (rc != HG_OK)
        fail_msg("hg_linear_create(%s, %lld x %lld, %s): %s: %s",
                 hg_linear_method_name(o->method), (long long)m, (long long)n,
                 k->device == HG_DEVICE_CUDA ? "cuda" : "cpu", hg_strerror(rc), hg_last_error());
    return L;
}

hg_params *hg_test_linear_group(const hg_linear *L) { return L->P; }

void hg_test_linear_free(hg_linear *L)
{
    if (!L)
        return;
    hg_params *P = L->P;
    hg_linear_free(L);
    hg_params_free(P);
}

void hg_test_linear_zero_grad(hg_linear *L) { hg_params_zero_grad(L->P); }
double hg_test_linear_grad_sqnorm(const hg_linear *L) { return hg_params_grad_sqnorm(L->P); }
void hg_test_linear_scale_grad(hg_linear *L, float a) { hg_params_scale_grad(L->P, a); }
int hg_test_linear_step(hg_linear *L, float lr) { return hg_params_step(L->P, lr); }

void hg_test_linear_tensor(const hg_linear *L, int i, const char **name, float **data,
                           int64_t *count)
{
    hg_linear_tensor(L, i, name, count);
    if (data)
        *data = i >= 0 && i < L->ntens ? hg__linear_tensor_data(L, i) : NULL;
}
