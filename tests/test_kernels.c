/* test_kernels.c - the CPU reference kernels (kernels/core.c, sparse.c, lorentz_*.c) against naive
 * double-precision oracles, central differences and the identities of the Lorentz model
 * (ARCHITECTURE.md section 3). Suite: numerics.
 *
 * Tolerances. Storage is float32, unit roundoff u = FLT_EPSILON / 2 = 2^-24. Each kernel output
 * carries a relative error of at most kappa u, kappa derived per kernel and per code path below:
 * the LorentzLinear head and the centroid have a generic path (per-row arithmetic in double,
 * rounded on store: kappa ~ 2) and a 16-wide path for the model's width 16, computed in float
 * (kappa of a few tens: float sums of 16 terms, expf/sqrtf, cancellation in t^2 - 1 and in
 * <S,S>_L). Every such kernel is tested at d = 5 (generic) and d = 16 (vector path).
 *
 * Gradient checks use the scalar f = sum(R .* out) in double for a fixed random R, so the analytic
 * gradient is the kernel's backward applied to dout = R. The central difference
 * (f(x+h) - f(x-h)) / 2h has two errors:
 *   - rounding: only the outputs that depend on the perturbed input change between f+ and f-
 *     (the others round identically and cancel exactly), each by at most kappa u |out_j|, so
 *     |err| <= 2 kappa u F / 2h = kappa u F / h with F = sum over those outputs of |R_j out_j|.
 *     We allow atol = 2 kappa u F / h = kappa eps F / h (a factor 2 of margin).
 *   - truncation: h^2/6 |f'''|. With L the length scale over which the map bends (given per kernel
 *     below), |f'''| ~ |f'| / L^2, so the relative error is ~ (h/L)^2 / 6. We take h = 1e-2 L (or
 *     smaller where a clamp must not be crossed), i.e. (h/L)^2 = 1e-4, and allow rtol = 2e-3 (a
 *     factor 120 over the estimate, for the constants hidden in "~"). The analytic gradient is
 *     itself computed in float on the 16-wide paths (relative error tens of u of the larger terms
 *     it sums), which rtol covers unless the terms cancel by more than ~300x.
 *
 * Manifold checks: a point x rounded coordinate-wise with relative error kappa u has
 * |<x,x>_L + 1| <= 2 kappa u |x|_E^2 (|x|_E^2 = x0^2 + |x_sp|^2, the size of the terms that cancel);
 * the checks allow c u |x|_E^2 with c derived per kernel. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "../src/rng.h"

#define EPS32 ((double)FLT_EPSILON) /* 2^-23 */
#define U32 (0.5 * EPS32)           /* unit roundoff of float32 */
#define GRAD_RTOL 2e-3              /* see the header: (h/L)^2 = 1e-4 times a margin of 20 */

/* The widths every row-wise Lorentz kernel is tested at: the generic (double) path and the
 * 16-wide float path the model uses at dim 16. */
static const int64_t test_widths[] = {5, 16};
#define NWIDTHS 2
#define MAXD 16

static hg_kctx K = {HG_DEVICE_CPU, 1, NULL, NULL};

/* shorthands for the test scratch (testutil.h) */
#define tf hg_test_floats
#define td hg_test_doubles
#define f2d hg_test_f2d

static float *fbuf(size_t n) { float *p = calloc(n ? n : 1, sizeof(float)); assert_non_null(p); return p; }

static void to_double(double *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static double dot_rf(const float *R, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)R[i] * y[i];
    return s;
}

/* F of the header: sum |R_j y_j| over the j in [a, b). */
static double abs_dot(const float *R, const float *y, size_t a, size_t b)
{
    double s = 0.0;
    for (size_t j = a; j < b; j++)
        s += fabs((double)R[j] * y[j]);
    return s;
}

static double sqnorm_e(const float *x, int64_t d) { return hg_k_sqnorm(&K, x, d); }

/* |<x,x>_L + 1| <= c u |x|_E^2 and x0 > 0 for n rows (see the header). */
static void assert_on_manifold(const float *x, int64_t n, int64_t d, double c, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double r = hg_k_lorentz_inner(xi, xi, d) + 1.0;
        double tol = c * U32 * sqnorm_e(xi, d);
        if (!(fabs(r) <= tol) || !(xi[0] > 0.0f))
            fail_msg("%s (d=%lld): row %lld: <x,x>_L + 1 = %.3g (tol %.3g), x0 = %.9g", what,
                     (long long)d, (long long)i, r, tol, (double)xi[0]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* LorentzLinear head
 *
 * kappa (relative error of an output):
 *   generic: t and f = sqrt((t^2-1)/q) in double, f rounded to float, y_j = z_j * f in float:
 *            y0 u, y_j 2u -> kappa 2. Manifold: 2u t^2 + 4u |y_sp|^2 <= 4u |y|_E^2; allow c = 8.
 *   16-wide: q = float sum of 16 products (<= 17u); t = e^s / (1 + expf(-z0)) + 1.1 (<= 5u);
 *            t*t - 1 loses t^2/(t^2-1) <= 5.8 (t >= 1.1) -> <= 11u * 5.8 + u = 65u; /q, sqrtf
 *            halve it: f <= (65 + 18)/2 + 1 = 43u; y_j = z_j f: 44u -> kappa 45.
 *            Manifold: f is computed from the float t itself, so only the rounding of t*t
 *            (u t^2), of -1, /q, q, sqrtf and the products enter: <= 24u |y|_E^2; allow c = 48. */

#define HEAD_N 5
#define HEAD_CLAMP_ROW 4

typedef struct {
    float z[HEAD_N * MAXD], y[HEAD_N * MAXD], R[HEAD_N * MAXD];
    float s;
    int64_t d;
} head_ctx;

static double head_f(void *p)
{
    head_ctx *c = p;
    hg_k_lorentz_linear_head_forward(&K, c->y, c->z, c->s, HEAD_N, c->d);
    return dot_rf(c->R, c->y, (size_t)(HEAD_N * c->d));
}

static void test_linear_head(void **state)
{
    (void)state;
    for (int w = 0; w < NWIDTHS; w++) {
        head_ctx c;
        const int64_t n = HEAD_N, d = test_widths[w];
        const double kappa = d == 16 ? 45.0 : 2.0, cman = d == 16 ? 48.0 : 8.0;
        c.d = d;
        hg_test_fill_uniform(c.z, (size_t)(n * d), -1.5f, 1.5f, 11 + (uint64_t)d);
        hg_test_fill_uniform(c.R, (size_t)(n * d), -1.0f, 1.0f, 12 + (uint64_t)d);
        c.s = logf(10.0f);
        /* the clamp row: |z_sp|^2 = 2.5e-9 < 1e-8 (exact zeros included); large enough that
         * dropping the clamp from the backward (df/dq != 0) changes dz_sp by ~25% */
        float *zc = c.z + HEAD_CLAMP_ROW * d;
        for (int64_t j = 1; j < d; j++)
            zc[j] = 0.0f;
        zc[1] = 3e-5f;
        zc[3] = -4e-5f;
        for (int64_t i = 0; i < n; i++)
            if (i != HEAD_CLAMP_ROW)
                assert_true(sqnorm_e(c.z + i * d, d) - (double)c.z[i * d] * c.z[i * d] > 1e-2);

        float dz[HEAD_N * MAXD];
        double gz[HEAD_N * MAXD];
        float ds = 0.5f; /* ds accumulates (+=) */
        hg_k_lorentz_linear_head_backward(&K, dz, &ds, c.R, c.z, c.s, n, d);
        to_double(gz, dz, (size_t)(n * d));
        double gs = (double)ds - 0.5;
        head_f(&c);

        /* Length scales: t = sigmoid(z0) e^s bends over |dz0| ~ 1; the spatial factor
         * sqrt((t^2-1)/|z_sp|^2) over |dz_sp| ~ |z_sp| (>= 0.1 here): L = min(1, |z_sp|). */
        for (int64_t i = 0; i < n; i++) {
            const float *zi = c.z + i * d;
            double q = sqnorm_e(zi, d) - (double)zi[0] * zi[0];
            double F = abs_dot(c.R, c.y, (size_t)(i * d), (size_t)((i + 1) * d));
            if (i != HEAD_CLAMP_ROW) {
                double h = 1e-2 * fmin(1.0, sqrt(q));
                hg_check_grad(head_f, &c, c.z + i * d, gz + i * d, (size_t)d, (size_t)d, h,
                              kappa * EPS32 * F / h, GRAD_RTOL, "head dz");
            } else {
                /* z0 of the clamp row: t moves, the spatial factor uses the clamped q: smooth,
                 * L = 1 */
                double h = 1e-2;
                hg_check_grad(head_f, &c, c.z + i * d, gz + i * d, 1, 1, h, kappa * EPS32 * F / h,
                              GRAD_RTOL, "head dz0 (clamp row)");
                /* spatial entries: inside the clamp y_sp = z_sp sqrt((t^2-1)/1e-8) is linear in
                 * z_sp (no truncation error); h = 1e-6 keeps |z_sp|^2 <= 3e-5^2 + 4.1e-5^2
                 * = 2.6e-9 < 1e-8, so the differences never leave the clamp region. Only y_sp
                 * changes: F over j >= 1. */
                h = 1e-6;
                double Fs = abs_dot(c.R, c.y, (size_t)(i * d + 1), (size_t)((i + 1) * d));
                hg_check_grad(head_f, &c, c.z + i * d + 1, gz + i * d + 1, (size_t)(d - 1),
                              (size_t)(d - 1), h, kappa * EPS32 * Fs / h, GRAD_RTOL,
                              "head dz_sp (clamp row)");
            }
        }
        /* s: every row's t depends on it; e^s bends over 1 */
        double Fall = abs_dot(c.R, c.y, 0, (size_t)(n * d));
        hg_check_grad(head_f, &c, &c.s, &gs, 1, 1, 1e-2, kappa * EPS32 * Fall / 1e-2, GRAD_RTOL,
                      "head ds");

        /* On the manifold (c above), except the clamp row: there |y_sp|^2 =
         * |z_sp|^2 (t^2-1) / 1e-8 < t^2 - 1, the clamp leaves the hyperboloid by design (as in
         * the reference). */
        head_f(&c);
        assert_on_manifold(c.y, HEAD_CLAMP_ROW, d, cman, "head output");
        assert_on_manifold(c.y + (HEAD_CLAMP_ROW + 1) * d, n - HEAD_CLAMP_ROW - 1, d, cman,
                           "head output");
        /* the time coordinate is sigmoid(z0) e^s + 1.1 (relative error <= 5u on either path) */
        for (int64_t i = 0; i < n; i++) {
            double t = 1.0 / (1.0 + exp(-(double)c.z[i * d])) * exp((double)c.s) +
                       (double)HG_LORENTZ_LINEAR_TIME_OFFSET;
            if (!(fabs(c.y[i * d] - t) <= 6.0 * U32 * t))
                fail_msg("head (d=%lld) row %lld: t = %.9g, want %.9g", (long long)d, (long long)i,
                         (double)c.y[i * d], t);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* centroid
 *
 * With rho = |S|_E^2 / |<S,S>_L| (>= 1; the condition number of <S,S>_L):
 *   generic: <S,S>_L in double, r = 1/sqrt rounded to float, out_j = S_j r in float: kappa 2.
 *            Manifold: <out,out>_L = <S,S>_L r^2 (1 + 2u)... -> <= 2u + 2u |out|_E^2; c = 8.
 *   16-wide: <S,S>_L as a float sum of 16 products: absolute error <= 17u |S|_E^2, i.e. relative
 *            17u rho; sqrtf and the reciprocal halve it and add 2u, the product u:
 *            kappa = 8.5 rho + 3. Manifold: the relative error of <S,S>_L (17u rho) plus the
 *            rounding of out (2u rho); |out|_E^2 = rho, so <= 19u |out|_E^2 + 2u; c = 48. */

#define CEN_N 4

typedef struct {
    float S[CEN_N * MAXD], out[CEN_N * MAXD], R[CEN_N * MAXD];
    int64_t d;
} cen_ctx;

static double cen_f(void *p)
{
    cen_ctx *c = p;
    hg_k_lorentz_centroid_forward(&K, c->out, c->S, CEN_N, c->d);
    return dot_rf(c->R, c->out, (size_t)(CEN_N * c->d));
}

static void test_centroid(void **state)
{
    (void)state;
    for (int w = 0; w < NWIDTHS; w++) {
        cen_ctx c;
        const int64_t n = CEN_N, d = test_widths[w];
        c.d = d;
        hg_rng g;
        hg_rng_seed(&g, 21 + (uint64_t)d);
        /* S_i = sum_k w_k x_k, w_k in [0.2, 1.5), x_k on the manifold at distance <= 1.5: a
         * positive combination of future-pointing timelike vectors is timelike: <S,S>_L < 0. */
        for (int64_t i = 0; i < n; i++) {
            double acc[MAXD] = {0}, x[MAXD];
            for (int k = 0; k < 3; k++) {
                hg_test_random_point(x, d, 1.5 * hg_rng_uniform(&g), &g);
                double wk = 0.2 + 1.3 * hg_rng_uniform(&g);
                for (int64_t j = 0; j < d; j++)
                    acc[j] += wk * x[j];
            }
            for (int64_t j = 0; j < d; j++)
                c.S[i * d + j] = (float)acc[j];
            assert_true(hg_k_lorentz_inner(c.S + i * d, c.S + i * d, d) < -0.1);
        }
        hg_test_fill_uniform(c.R, (size_t)(n * d), -1.0f, 1.0f, 22 + (uint64_t)d);

        float dS[CEN_N * MAXD];
        double gS[CEN_N * MAXD];
        hg_k_lorentz_centroid_backward(&K, dS, c.R, c.S, n, d);
        to_double(gS, dS, (size_t)(n * d));
        cen_f(&c);
        /* Length scale: out = S / sqrt(-<S,S>) is homogeneous of degree 0; it bends where
         * <S,S>_L changes by a fraction of itself: d<S,S> = 2 <S,dS> -> L = |<S,S>_L| / (2|S|_E). */
        for (int64_t i = 0; i < n; i++) {
            const float *si = c.S + i * d;
            double mnk = fabs(hg_k_lorentz_inner(si, si, d));
            double se2 = sqnorm_e(si, d);
            double kappa = d == 16 ? 8.5 * se2 / mnk + 3.0 : 2.0;
            double h = 1e-2 * mnk / (2.0 * sqrt(se2));
            double F = abs_dot(c.R, c.out, (size_t)(i * d), (size_t)((i + 1) * d));
            hg_check_grad(cen_f, &c, c.S + i * d, gS + i * d, (size_t)d, (size_t)d, h,
                          kappa * EPS32 * F / h, GRAD_RTOL, "centroid dS");
        }
        cen_f(&c);
        assert_on_manifold(c.out, n, d, d == 16 ? 48.0 : 8.0, "centroid output");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* expmap0 / logmap0 */

#define EXP_D 5
#define EXP_DS (EXP_D - 1)
#define EXP_N 9
/* row norms: below the lower clamp, inside (1e-2 .. 5), above the upper clamp (> 10) */
static const double exp_norms[EXP_N] = {2e-5, 1e-2, 0.1, 0.7, 1.0, 3.0, 5.0, 10.5, 15.0};

typedef struct {
    float v[EXP_N * EXP_DS], x[EXP_N * EXP_D], R[EXP_N * EXP_D];
} exp_ctx;

static double exp_f(void *p)
{
    exp_ctx *c = p;
    hg_k_lorentz_expmap0_forward(&K, c->x, c->v, EXP_N, EXP_D);
    return dot_rf(c->R, c->x, EXP_N * EXP_D);
}

static void fill_with_norms(float *v, const double *norms, int64_t n, int64_t ds, uint64_t seed)
{
    hg_rng g;
    hg_rng_seed(&g, seed);
    for (int64_t i = 0; i < n; i++) {
        double tmp[16], nrm = 0.0;
        for (int64_t j = 0; j < ds; j++) {
            tmp[j] = hg_rng_normal(&g);
            nrm += tmp[j] * tmp[j];
        }
        nrm = sqrt(nrm);
        for (int64_t j = 0; j < ds; j++)
            v[i * ds + j] = (float)(tmp[j] / nrm * norms[i]);
    }
}

static void test_expmap0(void **state)
{
    (void)state;
    exp_ctx c;
    const int64_t n = EXP_N, d = EXP_D, ds = EXP_DS;
    fill_with_norms(c.v, exp_norms, n, ds, 31);
    hg_test_fill_uniform(c.R, (size_t)(n * d), -1.0f, 1.0f, 32);
    float dv[EXP_N * EXP_DS];
    double gv[EXP_N * EXP_DS];
    hg_k_lorentz_expmap0_backward(&K, dv, c.R, c.v, n, d);
    to_double(gv, dv, (size_t)(n * ds));
    exp_f(&c);
    for (int64_t i = 0; i < n; i++) {
        double nrm = exp_norms[i], h, F;
        if (nrm < HG_LORENTZ_EXPMAP0_MIN_NORM) {
            /* below the clamp x_sp = v sinh(MIN)/MIN is linear (no truncation error); h = 1e-6
             * keeps |v +- h e_j| <= 2.1e-5 < MIN. x0 = cosh(MIN) is constant: F over x_sp only. */
            h = 1e-6;
            F = abs_dot(c.R, c.x, (size_t)(i * d + 1), (size_t)((i + 1) * d));
        } else if (nrm <= HG_LORENTZ_EXPMAP0_MAX_NORM) {
            /* cosh/sinh bend over 1, the direction v/|v| over |v|: L = min(1, |v|) */
            h = 1e-2 * fmin(1.0, nrm);
            F = abs_dot(c.R, c.x, (size_t)(i * d), (size_t)((i + 1) * d));
        } else {
            /* above the clamp: x0 = cosh(10) constant, x_sp = sinh(10) v/|v| bends over |v|;
             * h = 1e-2 |v| stays above 10 for |v| >= 10.5. F over x_sp only. */
            h = 1e-2 * nrm;
            F = abs_dot(c.R, c.x, (size_t)(i * d + 1), (size_t)((i + 1) * d));
        }
        hg_check_grad(exp_f, &c, c.v + i * ds, gv + i * ds, (size_t)ds, (size_t)ds, h,
                      EPS32 * F / h, GRAD_RTOL, "expmap0 dv");
    }
    /* On the manifold: everything in double, each coordinate rounded once (kappa 1):
     * |<x,x>_L + 1| <= 2u |x|_E^2; allow c = 8. (Below MIN the spatial part is v sinh(MIN)/MIN
     * with x0 = cosh(MIN): off by ~MIN^2 |v|^2 / 3, far inside that.) */
    exp_f(&c);
    assert_on_manifold(c.x, n, d, 8.0, "expmap0 output");
    /* above the clamp the distance from the origin is 10 */
    for (int64_t i = 0; i < n; i++)
        if (exp_norms[i] > HG_LORENTZ_EXPMAP0_MAX_NORM)
            assert_true(fabs(c.x[i * d] - cosh(10.0)) <= U32 * cosh(10.0));
}

static void test_logmap0_inverts_expmap0(void **state)
{
    (void)state;
    enum { N = 7, D = 6, DS = 5 };
    static const double norms[N] = {1e-2, 0.05, 0.3, 1.0, 2.5, 4.0, 5.0};
    float v[N * DS], x[N * D], w[N * DS];
    fill_with_norms(v, norms, N, DS, 41);
    hg_k_lorentz_expmap0_forward(&K, x, v, N, D);
    hg_k_lorentz_logmap0(&K, w, x, N, D);
    /* logmap0 recovers dist = acosh(x0) and rescales x_sp by dist/|x_sp|. Rounding x0 (relative u)
     * moves acosh by u x0 / sinh|v| = u coth|v|; x_sp and |x_sp| and the final store add ~3u
     * relative. So |w_j - v_j| <= |v_j| (3u + u coth|v| / |v|) + u |v_j|; allow twice that.
     * (acosh of a float x0 near 1 is ill-conditioned: for |v| = 1e-2 this is ~6e-4 relative.) */
    for (int i = 0; i < N; i++) {
        double nv = norms[i];
        double rtol = 2.0 * (4.0 * U32 + U32 / tanh(nv) / nv);
        double got[DS], want[DS];
        to_double(got, w + i * DS, DS);
        to_double(want, v + i * DS, DS);
        hg_assert_allclose(got, want, DS, 0.0, rtol, "logmap0(expmap0(v))");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* CSR products */

typedef struct {
    int64_t nrows, ncols, nnz;
    int64_t rowptr[64];
    int32_t col[512];
    float val[512];
} small_csr;

/* Random sparse matrix, density ~0.4, rows listed in `empty` left empty. */
static void random_csr(small_csr *a, int64_t nrows, int64_t ncols, const int *empty, int nempty,
                       uint64_t seed)
{
    hg_rng g;
    hg_rng_seed(&g, seed);
    a->nrows = nrows;
    a->ncols = ncols;
    int64_t p = 0;
    for (int64_t i = 0; i < nrows; i++) {
        a->rowptr[i] = p;
        int skip = 0;
        for (int e = 0; e < nempty; e++)
            skip |= empty[e] == i;
        for (int64_t j = 0; j < ncols && !skip; j++)
            if (hg_rng_uniform(&g) < 0.4) {
                a->col[p] = (int32_t)j;
                a->val[p++] = (float)(2.0 * hg_rng_uniform(&g) - 1.0);
            }
    }
    a->rowptr[nrows] = p;
    a->nnz = p;
}

static void csr_to_dense(double *A, const small_csr *a)
{
    memset(A, 0, (size_t)(a->nrows * a->ncols) * sizeof *A);
    for (int64_t i = 0; i < a->nrows; i++)
        for (int64_t p = a->rowptr[i]; p < a->rowptr[i + 1]; p++)
            A[i * a->ncols + a->col[p]] = a->val[p];
}

static void test_csr_spmm(void **state)
{
    (void)state;
    enum { NR = 9, NC = 7 };
    static const int empty[] = {2, 6};
    small_csr a;
    random_csr(&a, NR, NC, empty, 2, 51);
    double A[NR * NC];
    csr_to_dense(A, &a);
    for (int w = 0; w < NWIDTHS; w++) { /* the generic loop and the 16-wide vector path */
        const int D = (int)test_widths[w];
        float X[NC * MAXD], Y[NR * MAXD], Y0[NR * MAXD];
        hg_test_fill_uniform(X, (size_t)(NC * D), -1.0f, 1.0f, 52);
        hg_test_fill_uniform(Y0, (size_t)(NR * D), -1.0f, 1.0f, 53);

        static const float betas[] = {0.0f, 1.0f, 0.5f, -2.0f};
        for (size_t b = 0; b < sizeof betas / sizeof betas[0]; b++) {
            const float beta = betas[b];
            double want[NR * MAXD], got[NR * MAXD], bound = 0.0;
            for (int i = 0; i < NR * D; i++)
                Y[i] = beta == 0.0f ? NAN : Y0[i]; /* beta = 0 must overwrite, not scale, garbage */
            hg_k_csr_spmm(&K, NR, a.rowptr, a.col, a.val, X, D, beta, Y);
            for (int i = 0; i < NR; i++)
                for (int c = 0; c < D; c++) {
                    double s = beta == 0.0f ? 0.0 : (double)beta * Y0[i * D + c], sa = fabs(s);
                    for (int j = 0; j < NC; j++) {
                        s += A[i * NC + j] * X[j * D + c];
                        sa += fabs(A[i * NC + j] * X[j * D + c]);
                    }
                    want[i * D + c] = s;
                    /* float accumulation of k = nnz_row + 1 rounded products and sums, in any
                     * order: |err| <= gamma_{2k} sum|terms| ~ 2k u sum|terms|, k <= NC + 1 */
                    bound = fmax(bound, 2.0 * (NC + 1) * U32 * sa);
                }
            to_double(got, Y, (size_t)(NR * D));
            hg_assert_allclose(got, want, (size_t)(NR * D), bound, 0.0, "csr_spmm");
            /* the empty rows are beta * Y0 (0 for beta = 0, even over NaN) */
            for (int e = 0; e < 2; e++)
                for (int c = 0; c < D; c++)
                    assert_true(Y[empty[e] * D + c] ==
                                (beta == 0.0f ? 0.0f : beta * Y0[empty[e] * D + c]));
        }

        /* spmm_t: Y (NC x D) += A^T X2, X2 (NR x D) */
        float X2[NR * MAXD], Yt[NC * MAXD], Yt0[NC * MAXD];
        hg_test_fill_uniform(X2, (size_t)(NR * D), -1.0f, 1.0f, 54);
        hg_test_fill_uniform(Yt0, (size_t)(NC * D), -1.0f, 1.0f, 55);
        memcpy(Yt, Yt0, sizeof Yt);
        hg_k_csr_spmm_t(&K, NR, a.rowptr, a.col, a.val, X2, D, Yt);
        double want[NC * MAXD], got[NC * MAXD], bound = 0.0;
        for (int j = 0; j < NC; j++)
            for (int c = 0; c < D; c++) {
                double s = Yt0[j * D + c], sa = fabs(s);
                for (int i = 0; i < NR; i++) {
                    s += A[i * NC + j] * X2[i * D + c];
                    sa += fabs(A[i * NC + j] * X2[i * D + c]);
                }
                want[j * D + c] = s;
                bound = fmax(bound, 2.0 * (NR + 1) * U32 * sa); /* k <= NR + 1 terms */
            }
        to_double(got, Yt, (size_t)(NC * D));
        hg_assert_allclose(got, want, (size_t)(NC * D), bound, 0.0, "csr_spmm_t");
        /* the scatter is sequential: the same call twice gives the same bits */
        float Yt2[NC * MAXD];
        memcpy(Yt2, Yt0, sizeof Yt2);
        hg_k_csr_spmm_t(&K, NR, a.rowptr, a.col, a.val, X2, D, Yt2);
        assert_memory_equal(Yt, Yt2, (size_t)(NC * D) * sizeof(float));
    }
}

static void test_gemm(void **state)
{
    (void)state;
    enum { M = 6, N = 5, KK = 7 };
    float A[M * KK], B[KK * N], C[M * N], C0[M * N];
    hg_test_fill_uniform(A, M * KK, -1.0f, 1.0f, 61);
    hg_test_fill_uniform(B, KK * N, -1.0f, 1.0f, 62);
    hg_test_fill_uniform(C0, M * N, -1.0f, 1.0f, 63);
    const float alpha = 1.5f, beta = 0.25f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* op(A) is M x KK: stored KK x M when transposed; same for B */
            float As[M * KK], Bs[KK * N];
            for (int i = 0; i < M; i++)
                for (int k = 0; k < KK; k++)
                    As[ta ? k * M + i : i * KK + k] = A[i * KK + k];
            for (int k = 0; k < KK; k++)
                for (int j = 0; j < N; j++)
                    Bs[tb ? j * KK + k : k * N + j] = B[k * N + j];
            memcpy(C, C0, sizeof C);
            assert_int_equal(hg_k_gemm(&K, ta, tb, M, N, KK, alpha, As, ta ? M : KK, Bs,
                                       tb ? KK : N, beta, C, N), 0);
            double got[M * N], want[M * N], bound = 0.0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0.0, sa = 0.0;
                    for (int k = 0; k < KK; k++) {
                        s += (double)A[i * KK + k] * B[k * N + j];
                        sa += fabs((double)A[i * KK + k] * B[k * N + j]);
                    }
                    want[i * N + j] = alpha * s + beta * C0[i * N + j];
                    /* float dot of KK terms, then scaling and the beta term: (KK + 4) u */
                    bound = fmax(bound, (KK + 4) * U32 * (fabs(alpha) * sa + fabs(beta * C0[i * N + j])));
                }
            to_double(got, C, M * N);
            hg_assert_allclose(got, want, M * N, bound, 0.0, "gemm");
        }
    /* sizes beyond the BLAS int are refused */
    assert_int_equal(hg_k_gemm(&K, 0, 0, (int64_t)1 << 40, 1, 1, 1.0f, A, 1, B, 1, 0.0f, C, 1), -1);
}

/* ------------------------------------------------------------------------------------------ */
/* dropout */

static void test_dropout(void **state)
{
    (void)state;
    enum { N = 100000 };
    float *in = fbuf(N), *out = fbuf(N), *out2 = fbuf(N);
    hg_test_fill_uniform(in, N, 0.5f, 1.5f, 71); /* never 0: a zero in out means dropped */

    /* p = 0: identity, also in place, whatever the seed */
    hg_k_dropout(&K, out, in, N, 0.0f, 123);
    assert_memory_equal(out, in, N * sizeof(float));
    memcpy(out2, in, N * sizeof(float));
    hg_k_dropout(&K, out2, out2, N, 0.0f, 5);
    assert_memory_equal(out2, in, N * sizeof(float));
    assert_true(hg_k_dropout_scale(17, 0.0f, 9) == 1.0f);

    static const float ps[] = {0.1f, 0.3f, 0.9f};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        const float p = ps[k];
        const float keep = 1.0f / (1.0f - p);
        hg_k_dropout(&K, out, in, N, p, 1234);
        /* deterministic for a seed (also in place) */
        memcpy(out2, in, N * sizeof(float));
        hg_k_dropout(&K, out2, out2, N, p, 1234);
        assert_memory_equal(out, out2, N * sizeof(float));
        int64_t zeros = 0, differ = 0;
        for (int64_t i = 0; i < N; i++) {
            float sc = hg_k_dropout_scale(i, p, 1234);
            assert_true(sc == 0.0f || sc == keep); /* 0 or 1/(1-p) */
            assert_true(out[i] == in[i] * sc);     /* the mask dropout used, exactly */
            zeros += out[i] == 0.0f;
        }
        /* kept values are scaled by 1/(1-p): the float scale within 2u of the exact one */
        assert_true(fabs((double)keep - 1.0 / (1.0 - (double)p)) <= 2.0 * U32 / (1.0 - (double)p));
        /* #zeros ~ Binomial(N, p): |zeros - Np| <= 6 sigma fails with probability < 2e-9 for a
         * fair hash (the mask is fixed by the seed, so this is deterministic in practice). */
        double sigma = sqrt((double)N * p * (1.0 - p));
        if (!(fabs((double)zeros - (double)N * p) <= 6.0 * sigma))
            fail_msg("dropout p=%g: %lld zeros of %d (expected %.0f +- %.0f)", (double)p,
                     (long long)zeros, N, (double)N * p, 6.0 * sigma);
        /* another seed gives another mask (the masks of two seeds agree on a fraction
         * p^2 + (1-p)^2 of the entries; they differ on ~2p(1-p)N >> 1 of them) */
        hg_k_dropout(&K, out2, in, N, p, 1235);
        for (int64_t i = 0; i < N; i++)
            differ += (out[i] == 0.0f) != (out2[i] == 0.0f);
        double expect = 2.0 * p * (1.0 - p) * N, sd = sqrt(expect);
        assert_true(fabs((double)differ - expect) <= 6.0 * sd + 1.0);
    }
    free(in);
    free(out);
    free(out2);
}

/* ------------------------------------------------------------------------------------------ */
/* relu, flip_time, inner, sqnorm, scale */

static void test_relu(void **state)
{
    (void)state;
    const float x[] = {-2.0f, -0.0f, 0.0f, 1e-30f, -1e-30f, 3.5f, FLT_MAX, -FLT_MAX};
    const float dy[] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f};
    const float y_want[] = {0.0f, 0.0f, 0.0f, 1e-30f, 0.0f, 3.5f, FLT_MAX, 0.0f};
    const float dx_want[] = {0.0f, 0.0f, 0.0f, 4.0f, 0.0f, 6.0f, 7.0f, 0.0f};
    enum { N = 8 };
    float y[N], dx[N], buf[N];
    hg_k_relu_forward(&K, y, x, N);
    hg_k_relu_backward(&K, dx, dy, x, N);
    for (int i = 0; i < N; i++) {
        assert_true(y[i] == y_want[i]);
        assert_true(dx[i] == dx_want[i]);
    }
    memcpy(buf, x, sizeof buf); /* in place */
    hg_k_relu_forward(&K, buf, buf, N);
    assert_memory_equal(buf, y, sizeof buf);
    memcpy(buf, dy, sizeof buf);
    hg_k_relu_backward(&K, buf, buf, x, N);
    assert_memory_equal(buf, dx, sizeof buf);
}

static void test_flip_inner_sqnorm_scale(void **state)
{
    (void)state;
    enum { N = 3, D = 4 };
    float x[N * D], y[N * D], f[N * D], g[N * D];
    hg_test_fill_uniform(x, N * D, -2.0f, 2.0f, 81);
    hg_test_fill_uniform(y, N * D, -2.0f, 2.0f, 82);
    hg_k_lorentz_flip_time(&K, f, x, N, D);
    memcpy(g, x, sizeof g);
    hg_k_lorentz_flip_time(&K, g, g, N, D); /* in place */
    assert_memory_equal(f, g, sizeof f);
    for (int i = 0; i < N; i++) {
        assert_true(f[i * D] == -x[i * D]);
        assert_memory_equal(f + i * D + 1, x + i * D + 1, (D - 1) * sizeof(float));
        /* products of floats are exact in double; 4 double additions: <x,y>_L = (eta x) . y
         * within a few double ulps of the magnitudes */
        double want = -(double)x[i * D] * y[i * D], dot = 0.0, mag = 0.0;
        for (int j = 1; j < D; j++)
            want += (double)x[i * D + j] * y[i * D + j];
        for (int j = 0; j < D; j++) {
            dot += (double)f[i * D + j] * y[i * D + j];
            mag += fabs((double)x[i * D + j] * y[i * D + j]);
        }
        double got = hg_k_lorentz_inner(x + i * D, y + i * D, D);
        assert_true(fabs(got - want) <= 8 * DBL_EPSILON * mag);
        assert_true(fabs(dot - want) <= 8 * DBL_EPSILON * mag);
    }
    /* sqnorm accumulates in double: exact squares, N*D additions */
    double s = 0.0;
    for (int i = 0; i < N * D; i++)
        s += (double)x[i] * x[i];
    assert_true(fabs(hg_k_sqnorm(&K, x, N * D) - s) <= N * D * DBL_EPSILON * s);
    assert_true(hg_k_sqnorm(&K, x, 0) == 0.0);
    /* scale: one float multiply per element, exactly x * a rounded */
    memcpy(g, x, sizeof g);
    hg_k_scale(&K, g, 0.37f, N * D);
    for (int i = 0; i < N * D; i++)
        assert_true(g[i] == x[i] * 0.37f);
}

/* ------------------------------------------------------------------------------------------ */
/* Adam (torch.optim.Adam / AdamW) */

static void test_adam(void **state)
{
    (void)state;
    enum { N = 64, T = 6 };
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    /* (decoupled_wd, l2_wd): Adam, AdamW (weight_decay 0.1), Adam with L2 weight decay 0.1 */
    static const float wds[3][2] = {{0.0f, 0.0f}, {0.1f, 0.0f}, {0.0f, 0.1f}};
    for (int variant = 0; variant < 3; variant++) {
        const float dwd = wds[variant][0], l2 = wds[variant][1];
        float p[N], m[N] = {0}, v[N] = {0}, g[N];
        double P[N], M[N] = {0}, V[N] = {0};
        hg_test_fill_uniform(p, N, -2.0f, 2.0f, 91);
        const float p0 = p[0];
        to_double(P, p, N);
        double umax = 0.0, pmax = 0.0;
        for (int t = 1; t <= T; t++) {
            hg_test_fill_uniform(g, N, -1.0f, 1.0f, 100 + (uint64_t)t);
            g[0] = 0.0f; /* a parameter that never gets a gradient: update 0/(0+eps) = 0 */
            g[1] = 1e-6f * (float)t; /* tiny gradients: eps matters */
            hg_k_adam_step(&K, p, g, m, v, N, lr, b1, b2, eps, dwd, l2, t);
            /* torch semantics, in double, with the float hyperparameters */
            const double bc1 = 1.0 - pow((double)b1, t), bc2 = 1.0 - pow((double)b2, t);
            for (int i = 0; i < N; i++) {
                double gi = (double)g[i] + (double)l2 * P[i];
                P[i] *= 1.0 - (double)lr * dwd;
                M[i] = b1 * M[i] + (1.0 - b1) * gi;
                V[i] = b2 * V[i] + (1.0 - b2) * gi * gi;
                double u = (M[i] / bc1) / (sqrt(V[i]) / sqrt(bc2) + eps);
                P[i] -= lr * u;
                umax = fmax(umax, fabs(u));
                pmax = fmax(pmax, fabs(P[i]));
            }
            /* Each step rounds ~10 float operations: m and v relative ~4u each, the update
             * lr*u relative ~8u, p itself u|p|. Errors of earlier steps carry over with weight
             * <= 1 (decay, beta1, beta2 <= 1), so after t steps |dp| <= t (u pmax + 8u lr umax)
             * and m, v within ~4u t of their magnitude. Allow twice that. */
            double got[N], mg[N], vg[N], mm = 0.0, vm = 0.0;
            to_double(got, p, N);
            to_double(mg, m, N);
            to_double(vg, v, N);
            for (int i = 0; i < N; i++) {
                mm = fmax(mm, fabs(M[i]));
                vm = fmax(vm, V[i]);
            }
            hg_assert_allclose(got, P, N, 2.0 * t * U32 * (pmax + 8.0 * lr * umax), 0.0, "adam p");
            hg_assert_allclose(mg, M, N, 8.0 * t * U32 * mm, 0.0, "adam m");
            hg_assert_allclose(vg, V, N, 8.0 * t * U32 * vm, 0.0, "adam v");
        }
        if (variant == 0) /* no gradient and no decay: the parameter never moves */
            assert_true(p[0] == (float)P[0] && P[0] == (double)p0);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Riemannian Adam on the Lorentz model */

static double manifold_rel(const float *x, int64_t d)
{
    return fabs(hg_k_lorentz_inner(x, x, d) + 1.0) / ((double)x[0] * x[0]);
}

/* |<x,m>_L| relative to sum_j |x_j m_j| (the size of the terms that cancel) */
static double tangent_rel(const float *x, const float *m, int64_t d)
{
    double mag = 0.0;
    for (int64_t j = 0; j < d; j++)
        mag += fabs((double)x[j] * m[j]);
    return mag > 0.0 ? fabs(hg_k_lorentz_inner(x, m, d)) / mag : 0.0;
}

static void test_radam_random_grads(void **state)
{
    (void)state;
    enum { N = 4, D = 16, T = 1000 }; /* D = 16: the class points of every reference run */
    const float lr = 1e-2f;
    float x[N * D], m[N * D] = {0}, v[N] = {0}, g[N * D];
    double xd[D];
    hg_rng r;
    hg_rng_seed(&r, 201);
    for (int i = 0; i < N; i++) {
        hg_test_random_point(xd, D, 0.5 + i, &r);
        for (int j = 0; j < D; j++)
            x[i * D + j] = (float)xd[j];
    }
    double worst_x = 0.0, worst_m = 0.0;
    for (int t = 1; t <= T; t++) {
        for (int j = 0; j < N * D; j++)
            g[j] = (float)hg_rng_normal(&r);
        hg_k_lorentz_radam_step(&K, x, g, m, v, N, D, lr, 0.9f, 0.999f, 1e-8f, t);
        for (int i = 0; i < N; i++) {
            worst_x = fmax(worst_x, manifold_rel(x + i * D, D));
            worst_m = fmax(worst_m, tangent_rel(x + i * D, m + i * D, D));
        }
    }
    /* Each step computes y = expmap_x(u) in double from the float x and rounds y (relative u per
     * coordinate): <y,y>_L moves by <= 4u y0^2. The residual of x is carried into y scaled by
     * cosh^2|u| (<= 1 + ~lr^2 for Adam steps of length ~lr: a gain (1 + lr^2)^T ~ 1.1), so after T
     * steps the residual is a sum of T roundings of <= 4u x0^2 each: T aligned ones would give
     * 4u T, independent ones a random walk of ~4u sqrt(T) (~130u here). Allow 8 standard
     * deviations: 4u * 8 sqrt(T) ~ 1000u. (Measured: 72u.) */
    const double drift = 4.0 * U32 * 8.0 * sqrt((double)T);
    if (!(worst_x <= drift))
        fail_msg("radam: worst |<x,x>_L + 1| / x0^2 = %.3g over %d steps", worst_x, T);
    /* The transport formula makes m tangent at y up to <y,y>_L + 1 (above) and the float rounding
     * of m and y: |<y,m>_L| <= 4u sum |y_j m_j| + |<y,y>_L + 1| |<y,M>| / 2; the second term is
     * bounded by the manifold residual. Allow 8u + the manifold bound. (Measured: 1.2u.) */
    if (!(worst_m <= 8.0 * U32 + drift))
        fail_msg("radam: worst |<x,m>_L| relative = %.3g", worst_m);
    for (int i = 0; i < N; i++) {
        assert_true(v[i] >= 0.0f);
        assert_true(isfinite(x[i * D]) && x[i * D] >= 1.0f);
    }
}

static void test_radam_minimises_distance(void **state)
{
    (void)state;
    enum { N = 3, D = 5, T = 1000 };
    const float lr = 1e-2f;
    float x[N * D], m[N * D] = {0}, v[N] = {0}, g[N * D], tgt[N * D];
    double xd[D];
    hg_rng r;
    hg_rng_seed(&r, 301);
    for (int i = 0; i < N; i++) {
        hg_test_random_point(xd, D, 1.0 + 0.5 * i, &r);
        for (int j = 0; j < D; j++)
            x[i * D + j] = (float)xd[j];
        hg_test_random_point(xd, D, 0.5 * i, &r);
        for (int j = 0; j < D; j++)
            tgt[i * D + j] = (float)xd[j];
    }
    /* f(x) = -<x, target>_L = cosh d(x, target) >= 1, minimised at target; Euclidean gradient
     * -eta target = (t0, -t_sp). */
    double f0[N], fprev[N];
    for (int i = 0; i < N; i++)
        f0[i] = fprev[i] = -hg_k_lorentz_inner(x + i * D, tgt + i * D, D);
    for (int t = 1; t <= T; t++) {
        for (int i = 0; i < N; i++) {
            g[i * D] = tgt[i * D];
            for (int j = 1; j < D; j++)
                g[i * D + j] = -tgt[i * D + j];
        }
        hg_k_lorentz_radam_step(&K, x, g, m, v, N, D, lr, 0.9f, 0.999f, 1e-8f, t);
        if (t <= 50)
            /* early on (far from the target, the normalised step has length ~lr toward it) the
             * loss decreases monotonically */
            for (int i = 0; i < N; i++) {
                double f = -hg_k_lorentz_inner(x + i * D, tgt + i * D, D);
                assert_true(f < fprev[i]);
                fprev[i] = f;
            }
    }
    for (int i = 0; i < N; i++) {
        double f = -hg_k_lorentz_inner(x + i * D, tgt + i * D, D);
        /* distance from f = cosh d; near d = 0, f - 1 = d^2/2 and f carries a rounding of
         * ~4u x0^2 ~ 1e-6, so the distance is resolved to ~2e-3: the target radius 0.05 (5 lr:
         * Adam with a constant lr circles the minimum at a radius ~lr) is well above that. */
        double dist = sqrt(2.0 * fmax(f - 1.0, 0.0));
        if (!(f < f0[i]) || !(dist < 5.0 * lr))
            fail_msg("radam: point %d: f %.6g -> %.6g, final distance %.3g", i, f0[i], f, dist);
        assert_true(manifold_rel(x + i * D, D) <= 4.0 * U32 * 8.0 * sqrt((double)T)); /* as above */
    }
}

static void test_stabilize(void **state)
{
    (void)state;
    enum { N = 3, D = 5 };
    float x[N * D], m[N * D], x0[N * D];
    double xd[D];
    hg_rng r;
    hg_rng_seed(&r, 401);
    for (int i = 0; i < N; i++) {
        hg_test_random_point(xd, D, 0.5 + 1.5 * i, &r);
        for (int j = 0; j < D; j++) {
            /* off the manifold by a relative 1e-2, m an arbitrary (non-tangent) vector */
            x[i * D + j] = (float)(xd[j] * (1.0 + 1e-2 * (2.0 * hg_rng_uniform(&r) - 1.0)));
            m[i * D + j] = (float)hg_rng_normal(&r);
        }
        assert_true(manifold_rel(x + i * D, D) > 1e-4);
        assert_true(tangent_rel(x + i * D, m + i * D, D) > 1e-3);
    }
    memcpy(x0, x, sizeof x);
    hg_k_lorentz_stabilize(&K, x, m, N, D);
    for (int i = 0; i < N; i++) {
        /* the spatial part is kept, x0 = sqrt(1 + |x_sp|^2) rounded once: <x,x>_L + 1 within
         * 2u x0^2 (x0 rounding) + 0 (x_sp unchanged) -> allow 4 eps relative */
        assert_memory_equal(x + i * D + 1, x0 + i * D + 1, (D - 1) * sizeof(float));
        assert_true(manifold_rel(x + i * D, D) <= 4.0 * EPS32);
        /* m projected in double onto the tangent space of the (float) new x, then rounded:
         * |<x,m>_L| <= ~2u sum |x_j m_j| + |<x,x>+1| |<x,m_before>|; allow 8 eps */
        assert_true(tangent_rel(x + i * D, m + i * D, D) <= 8.0 * EPS32);
    }
    /* m = NULL: points only */
    memcpy(x, x0, sizeof x);
    hg_k_lorentz_stabilize(&K, x, NULL, N, D);
    for (int i = 0; i < N; i++)
        assert_true(manifold_rel(x + i * D, D) <= 4.0 * EPS32);
}

/* ========================================================================================== */
/* Fused HyboNet layer kernels (kernels/lorentz_layer.c, what hyperbolic/hybonet.c calls) against the
 * composition of the reference kernels (hg_k_dropout, hg_k_relu_*, hg_k_gemm, hg_k_csr_spmm,
 * hg_k_lorentz_linear_head_*, hg_k_lorentz_centroid_*) tested above, and the decoders against
 * naive double formulas. Every kernel runs at d = 16 (the vector paths of every reference run)
 * and at other widths (5, 24, 72: the generic paths; 72 > HG_K_FLOAT_RUN and 72 x 72 > the stack
 * partials of the generic backward), on random CSR matrices with empty rows, empty columns and
 * hub rows/columns longer than HG_K_FLOAT_RUN (the float-runs-into-double path), 83 rows (a
 * partial last block of 16), dropout p in {0, 0.3} with a fixed seed, ReLU on/off, bias or NULL;
 * and the dense first layer hybonet.c runs when din <= 16 (zero-padded to 16 x 16), against the
 * reference and against the sparse-input kernels on the same input. Outputs documented (=) are pre-filled with NaN (a slot not overwritten fails); (+=) ones start
 * at random values.
 *
 * Tolerances (u = 2^-24):
 *   - A float sum of k products is within gamma_k ~ k u sum|terms| of the exact value in any
 *     order (float runs added into double only do better). Fused and reference sums of the same
 *     k terms therefore differ by <= 2 (k + 1) u sum|terms| (+1: a bias add or a final rounding).
 *   - Forward kernels return every intermediate (hd, z, y; S, out), so each stage is compared on
 *     the fused kernel's own input of that stage: they then differ only by that stage's rounding
 *     and no conditioning of later maps enters. hd is one multiply by the same mask (exact). The
 *     head / centroid outputs carry a relative error kappa u per element: head 2 (generic,
 *     double) or 64 on the 16-wide float path (t <= 8u; t^2 - 1 loses up to x5.8 for t >= 1.1:
 *     100u; /q, sqrt: f <= 60u; * z_j: 64u); centroid 2 or 8.5 rho + 3 (test_centroid). Two
 *     paths differ by the sum of their kappas.
 *   - The backward kernels do not return dy (nor dz, in the dense one), so they are compared with
 *     the reference chain through a running first-order error bound (bwd_reference): the backward
 *     is linear in gS; each stage is out = J in with coefficients whose float evaluation errs by
 *     kappa_s u |J|, so an input error E_in and the stage's rounding give
 *     E_out = |J| E_in + kappa_s u |J| M_in along the magnitude chain M_out = |J| M_in, M_0 = |gS|.
 *     Fused kernel and reference are both within E of the exact result: allow 2 E. */


/* |got - want| <= tol elementwise (NaN fails); prints the first mismatches with row/column. */
static void assert_within_(const double *got, const double *want, const double *tol, int64_t n,
                           int64_t width, const char *what, int64_t cfg, const char *file, int line)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        if (!(err <= tol[i])) {
            if (bad < 5)
                print_error("%s:%d: %s (case %lld) [%lld, %lld]: got %.9g want %.9g (|diff| %.3g > "
                            "tol %.3g)\n",
                            file, line, what, (long long)cfg, (long long)(i / width),
                            (long long)(i % width), got[i], want[i], err, tol[i]);
            bad++;
        }
    }
    if (bad)
        fail_msg("%s (case %lld): %lld of %lld elements out of tolerance", what, (long long)cfg,
                 (long long)bad, (long long)n);
}
#define assert_within(got, want, tol, n, width, what, cfg) \
    assert_within_((got), (want), (tol), (n), (width), (what), (cfg), __FILE__, __LINE__)

/* Relative error (units of u) of a head output element on one path (header above). */
static double head_fwd_kappa(int vector_path) { return vector_path ? 64.0 : 2.0; }

/* ---- hg_k_dropout_mask ---- */

static void test_fused_dropout_mask(void **state)
{
    (void)state;
    enum { N = 53 };
    static const int64_t offsets[] = {0, 1, 5, 15, 16, 17, 1000, 123456789, ((int64_t)1 << 40) + 3};
    static const float ps[] = {0.0f, 0.3f, 0.5f, 0.9f};
    static const uint64_t seeds[] = {7, 0xdeadbeefULL};
    float mask[N + 1];
    for (size_t a = 0; a < sizeof offsets / sizeof offsets[0]; a++)
        for (size_t b = 0; b < sizeof ps / sizeof ps[0]; b++)
            for (size_t c = 0; c < 2; c++) {
                mask[N] = 42.0f; /* past the run: not written */
                hg_k_dropout_mask(mask, offsets[a], N, ps[b], seeds[c]);
                int64_t zeros = 0;
                for (int64_t j = 0; j < N; j++) {
                    float want = hg_k_dropout_scale(offsets[a] + j, ps[b], seeds[c]);
                    if (!(mask[j] == want)) /* the same value, bit for bit */
                        fail_msg("dropout_mask(i0=%lld, p=%g, seed=%llu)[%lld] = %.9g, "
                                 "dropout_scale = %.9g",
                                 (long long)offsets[a], (double)ps[b],
                                 (unsigned long long)seeds[c], (long long)j, (double)mask[j],
                                 (double)want);
                    zeros += mask[j] == 0.0f;
                }
                assert_true(mask[N] == 42.0f);
                if (ps[b] >= 0.3f) /* the run does drop something (P(no drop) <= 0.7^53 ~ 6e-9) */
                    assert_true(zeros > 0);
            }
}

/* ---- LorentzLinear (dense input) and the layer data of the backward ---- */

#define LIN_N 83 /* 5 blocks of 16 and a partial one */

/* A layer of LIN_N rows (testutil.h) on the CPU context. */
static void layer_setup(hg_test_layer *L, int64_t din, int64_t d, uint64_t seed)
{
    hg_test_layer_setup(L, &K, LIN_N, din, d, seed);
}

static const struct {
    int64_t din, d;
} lin_cfgs[] = {{16, 16}, {5, 5}, {24, 24}, {7, 16}, {72, 72}, {64, 64}, {128, 128}, {12, 16},
                {40, 24}};
#define NLIN_CFGS ((int)(sizeof lin_cfgs / sizeof lin_cfgs[0]))

/* z = h Wt + b (=) and y = head(z), checked stage-wise: z against hg_k_gemm on the same h plus
 * the bias (float dots of din + 1 terms: 2 (din + 2) u sum|terms|), y against the reference head
 * on the fused z. fused_vec: whether the fused kernel took its 16-wide path. */
static void check_z_y(const float *z, const float *y, const float *h, const float *Wt,
                      const float *b, float s, int64_t n, int64_t din, int64_t d, int fused_vec,
                      int64_t cfg)
{
    float *zr = tf(n * d), *yr = tf(n * d);
    assert_int_equal(hg_k_gemm(&K, 0, 0, n, d, din, 1.0f, h, din, Wt, d, 0.0f, zr, d), 0);
    for (int64_t i = 0; b && i < n; i++)
        for (int64_t o = 0; o < d; o++)
            zr[i * d + o] += b[o];
    double *tol = hg_test_linear_tol(h, Wt, b, n, din, d);
    assert_within(f2d(z, n * d), f2d(zr, n * d), tol, n * d, d, "fused z vs gemm + b", cfg);
    hg_k_lorentz_linear_head_forward(&K, yr, z, s, n, d);
    const double kap = head_fwd_kappa(fused_vec) + head_fwd_kappa(d == 16);
    for (int64_t i = 0; i < n * d; i++)
        tol[i] = kap * U32 * fabs((double)yr[i]);
    assert_within(f2d(y, n * d), f2d(yr, n * d), tol, n * d, d, "fused y vs head(z)", cfg);
}

/* Runs the fused forward as hybonet.c does for a layer l > 0; returns hd (NULL when the kernel
 * reads x itself). */
static float *run_linear_forward(const hg_test_layer *L, float *z, float *y, int relu, float p,
                                 uint64_t seed, const float *b)
{
    const int64_t n = L->n, din = L->din, d = L->d;
    float *hd = relu || p > 0.0f ? tf(n * din) : NULL;
    if (hd)
        hg_test_fill_nan(hd, n * din);
    hg_test_fill_nan(z, n * d);
    hg_test_fill_nan(y, n * d);
    hg_k_lorentz_linear_forward(&K, hd, z, y, L->x, L->W, b, &L->s, relu, p, seed, n, din, d);
    return hd;
}

static void test_fused_linear_forward(void **state)
{
    (void)state;
    for (int c = 0; c < NLIN_CFGS; c++)
        for (int v = 0; v < 4; v++) { /* relu x dropout */
            const int relu = v & 1;
            const float p = v & 2 ? 0.3f : 0.0f;
            const uint64_t seed = 500 + (uint64_t)(10 * c + v);
            const int64_t cfg = 10 * c + v, din = lin_cfgs[c].din, d = lin_cfgs[c].d, n = LIN_N;
            hg_test_layer L;
            layer_setup(&L, din, d, 1000 + 10 * (uint64_t)c);
            const float *b = v == 1 ? NULL : L.b;
            float *z = tf(n * d), *y = tf(n * d);
            float *hd = run_linear_forward(&L, z, y, relu, p, seed, b);
            const float *h = L.x;
            if (hd) {
                /* hd = dropout(act(x)): the same multiply by the same mask value, exactly */
                float *hr = tf(n * din);
                if (relu)
                    hg_k_relu_forward(&K, hr, L.x, n * din);
                else
                    memcpy(hr, L.x, (size_t)(n * din) * sizeof *hr);
                hg_k_dropout(&K, hr, hr, n * din, p, seed);
                for (int64_t i = 0; i < n * din; i++)
                    if (!(hd[i] == hr[i]))
                        fail_msg("fused hd (case %lld) [%lld]: %.9g, dropout(act(x)) %.9g",
                                 (long long)cfg, (long long)i, (double)hd[i], (double)hr[i]);
                h = hd;
            }
            check_z_y(z, y, h, L.Wt, b, L.s, n, din, d,
                      d == 16 && (din == 16 || (din < 16 && !hd)), cfg);
            hg_test_free_all();
        }
}

/* ---- LorentzAgg ---- */

static void test_fused_agg_forward(void **state)
{
    (void)state;
    static const int64_t widths[] = {16, 5, 24, 72};
    static const int64_t hubs[] = {5, 60};
    for (int w = 0; w < 4; w++) {
        const int64_t n = LIN_N, d = widths[w];
        hg_test_csr A;
        hg_test_csr_random(&A, n, n, 0.08, hubs, 2, 9, 0.05f, 1.0f, 300 + (uint64_t)w);
        float *y = tf(n * d), *S = tf(n * d), *out = tf(n * d), *Sr = tf(n * d),
              *outr = tf(n * d);
        double *tol = td(n * d);
        /* head outputs lie on the hyperboloid */
        hg_test_random_points(y, n, d, 2.0, 310 + (uint64_t)w);
        hg_test_fill_nan(S, n * d);
        hg_test_fill_nan(out, n * d);
        hg_k_lorentz_agg_forward(&K, S, out, A.rowptr, A.col, A.val, y, n, d);
        /* S against hg_k_csr_spmm: float sums of k_i terms, 2 (k_i + 1) u sum|terms| */
        hg_k_csr_spmm(&K, n, A.rowptr, A.col, A.val, y, d, 0.0f, Sr);
        assert_within(f2d(S, n * d), f2d(Sr, n * d), hg_test_csr_spmm_tol(&A, y, d), n * d, d,
                      "fused agg S vs csr_spmm", d);
        /* out against the reference centroid of the fused S: kappa 2 (generic) or 8.5 rho + 3
         * (16-wide) per path, rho = |S|_E^2 / max(|<S,S>_L|, 1e-8) */
        hg_k_lorentz_centroid_forward(&K, outr, S, n, d);
        for (int64_t i = 0; i < n; i++) {
            double rho = sqnorm_e(S + i * d, d) /
                         fmax(fabs(hg_k_lorentz_inner(S + i * d, S + i * d, d)),
                              (double)HG_LORENTZ_CENTROID_MIN);
            double kap = d == 16 ? 8.5 * rho + 3.0 : 2.0;
            for (int64_t o = 0; o < d; o++)
                tol[i * d + o] = 2.0 * kap * U32 * fabs((double)outr[i * d + o]);
        }
        assert_within(f2d(out, n * d), f2d(outr, n * d), tol, n * d, d,
                      "fused agg out vs centroid(S)", d);
        /* the empty rows aggregate to 0 */
        for (int64_t i = 8; i < n; i += 9)
            for (int64_t o = 0; o < d; o++)
                assert_true(S[i * d + o] == 0.0f && out[i * d + o] == 0.0f);
        hg_test_free_all();
    }
}

/* ---- backward: the reference chain and its error bound ---- */

typedef struct {
    float *dz, *gWt, *gx; /* reference results: n x d, din x d, n x din */
    double *gb, gs;
    hg_test_bwd_bound E; /* first-order bounds of |result - exact| */
} bwd_out;

/* The CPU's stage roundings kappa_s (units of u) along the chain of
 * hg_k_lorentz_linear_backward's doc, for the running error bound E of every result
 * (hg_test_bwd_bounds; header above):
 *   dy = At gS: float sums of k_i terms: k_i + 1.
 *   head backward: generic (double, rounded at the end): 5. 16-wide (float): a = 16 products
 *     (16); t (8) -> t^2 - 1 (100, see the header) -> f (60), dfdt = t f / (t^2 - 1) (170),
 *     dfdq (79); K = ses (1 - sg): 1 - sg loses sg / (1 - sg) = e^z0 of sg's 5u: 5 e^max(z0,0).
 *     dz0 (dfdt, K): kappa = 220 + 5 e^max(z0,0); dz_j (f, a dfdq): 100; ds (dfdt, ses) as dz0
 *     plus two float sums of 16 rows: + 32.
 *   gWt = hd^T dz: float dots of n rows (reference gemm; the fused runs of <= 64 are shorter):
 *     n + 1. gb: the same n + 1.
 *   dx = (dz W) * mask * act': a dot of d terms and one multiply: d + 2.
 *   centroid backward through S_prev: generic 6; 16-wide: <S,S>_L and dout.S as float sums of
 *     16 (16 rho, 16), r = c^-1/2 (8 rho + 2), dr/dm = r / 2c (24 rho + 4), products:
 *     kappa = 30 rho + 30. */
static double cpu_head_time(int64_t d, float z0)
{
    return d == 16 ? 220.0 + 5.0 * exp(fmax((double)z0, 0.0)) : 5.0;
}
static double cpu_head_space(int64_t d) { return d == 16 ? 100.0 : 5.0; }
static double cpu_centroid(const float *S, int64_t din, double c)
{
    const double rho = sqnorm_e(S, din) / c;
    return din == 16 ? 30.0 * rho + 30.0 : 6.0;
}
static const hg_test_bwd_kappa cpu_kappa = {cpu_head_time, cpu_head_space, 32.0, cpu_centroid};

/* The reference chain (float kernels) of hg_k_lorentz_linear_backward's doc, and its bound. */
static void bwd_reference(bwd_out *o, const hg_test_bwd_in *in)
{
    const int64_t n = in->n, din = in->din, d = in->d;
    const hg_test_csr *At = in->At;
    const float *z = in->z;
    float *dy = tf(n * d);
    o->dz = tf(n * d);
    o->gWt = tf(din * d);
    o->gb = td(d);
    o->gx = NULL;

    /* the reference chain */
    hg_k_csr_spmm(&K, n, At->rowptr, At->col, At->val, in->gS, d, 0.0f, dy);
    float ds = 0.0f;
    hg_k_lorentz_linear_head_backward(&K, o->dz, &ds, dy, z, in->s, n, d);
    o->gs = ds;
    assert_int_equal(hg_k_gemm(&K, 1, 0, din, d, n, 1.0f, in->hd, din, o->dz, d, 0.0f, o->gWt, d),
                     0);
    for (int64_t c = 0; c < d; c++) {
        o->gb[c] = 0.0;
        for (int64_t i = 0; i < n; i++)
            o->gb[c] += o->dz[i * d + c];
    }
    float *dx = NULL;
    if (in->W) {
        dx = tf(n * din);
        o->gx = tf(n * din);
        assert_int_equal(hg_k_gemm(&K, 0, 0, n, din, d, 1.0f, o->dz, d, in->W, din, 0.0f, dx, din),
                         0);
        hg_k_dropout(&K, dx, dx, n * din, in->p, in->seed);
        if (in->relu)
            hg_k_relu_backward(&K, dx, dx, in->x, n * din);
        if (in->S_prev)
            hg_k_lorentz_centroid_backward(&K, o->gx, dx, in->S_prev, n, din);
        else
            memcpy(o->gx, dx, (size_t)(n * din) * sizeof *dx);
    }

    hg_test_bwd_bounds(&o->E, in, &cpu_kappa);
}

/* gW (d x din, W's layout) transposed to din x d, in double: the reference's layout. */
static double *gw_t(const float *gW, int64_t din, int64_t d)
{
    double *t = td(din * d);
    for (int64_t c = 0; c < din; c++)
        for (int64_t o = 0; o < d; o++)
            t[c * d + o] = gW[o * din + c];
    return t;
}

/* gW (=, d x din, W's layout), gb (+= from gb0; NULL: not computed), gs (+= from gs0) against the
 * reference (whose gWt is transposed). */
static void check_param_grads(const float *gW, const float *gb, const float *gb0, float gs,
                              float gs0, const bwd_out *R, int64_t din, int64_t d, int64_t cfg)
{
    double *want = f2d(R->gWt, din * d), *gWt = gw_t(gW, din, d);
    assert_within(gWt, want, hg_test_twice(R->E.gWt, din * d), din * d, d,
                  "fused gWt vs gemm(hd^T dz)", cfg);
    if (gb) {
        /* + the rounding of the float accumulation (+=): 2u of the result */
        double *got = f2d(gb, d), *wb = td(d), *tol = td(d);
        for (int64_t c = 0; c < d; c++) {
            wb[c] = (double)gb0[c] + R->gb[c];
            tol[c] = 2.0 * R->E.gb[c] + 2.0 * U32 * (fabs((double)gb0[c]) + fabs(R->gb[c]));
        }
        assert_within(got, wb, tol, d, d, "fused gb vs column sums of dz", cfg);
    }
    double gwant = (double)gs0 + R->gs, got = gs;
    double gtol = 2.0 * R->E.gs + 2.0 * U32 * (fabs((double)gs0) + fabs(R->gs));
    assert_within(&got, &gwant, &gtol, 1, 1, "fused gs vs head backward ds", cfg);
}

static void test_fused_linear_backward(void **state)
{
    (void)state;
    for (int c = 0; c < NLIN_CFGS; c++)
        for (int v = 0; v < 8; v++) { /* relu x dropout x S_prev */
            const int relu = v & 1, sprev = (v >> 2) & 1;
            const float p = v & 2 ? 0.3f : 0.0f;
            const uint64_t seed = 700 + (uint64_t)(10 * c + v);
            const int64_t cfg = 10 * c + v, din = lin_cfgs[c].din, d = lin_cfgs[c].d, n = LIN_N;
            hg_test_layer L;
            layer_setup(&L, din, d, 2000 + 10 * (uint64_t)c);
            const int bias = v != 1 && v != 6;
            float *z = tf(n * d), *y = tf(n * d);
            float *hd = run_linear_forward(&L, z, y, relu, p, seed, bias ? L.b : NULL);
            const float *h = hd ? hd : L.x; /* as hybonet.c passes it */

            hg_test_bwd_in in = {n, din, d, relu, p, L.s, seed, &L.At, L.gS, z, h, L.x, L.W,
                                 sprev ? L.S_prev : NULL};
            bwd_out R;
            bwd_reference(&R, &in);

            float *gW = tf(din * d), *dzs = tf(n * d);
            float *gx = tf(n * din), *gb0 = tf(d), *gb = tf(d);
            hg_test_fill_uniform(gb0, (size_t)d, -1.0f, 1.0f, seed + 1);
            memcpy(gb, gb0, (size_t)d * sizeof *gb);
            const float gs0 = 0.375f;
            float gs = gs0;
            hg_test_fill_nan(gW, din * d);
            hg_test_fill_nan(dzs, n * d);
            hg_test_fill_nan(gx, n * din);
            hg_k_lorentz_linear_backward(&K, gx, dzs, gW, bias ? gb : NULL, &gs, L.At.rowptr,
                                         L.At.col, L.At.val, L.gS, z, h, L.x, L.W, in.S_prev, &L.s,
                                         relu, p, seed, n, din, d, NULL);
            check_param_grads(gW, bias ? gb : NULL, gb0, gs, gs0, &R, din, d, cfg);
            assert_within(f2d(gx, n * din), f2d(R.gx, n * din), hg_test_twice(R.E.gx, n * din),
                          n * din, din, sprev ? "fused gx vs centroid_backward(act'(x) mask (dz W))"
                                     : "fused gx vs act'(x) mask (dz W)",
                          cfg);

            if (v == 3) { /* without the input gradient: the parameter gradients alone */
                memcpy(gb, gb0, (size_t)d * sizeof *gb);
                gs = gs0;
                hg_test_fill_nan(gW, din * d);
                hg_k_lorentz_linear_backward(&K, NULL, dzs, gW, gb, &gs, L.At.rowptr, L.At.col,
                                             L.At.val, L.gS, z, h, L.x, L.W, NULL, &L.s, relu, p,
                                             seed, n, din, d, NULL);
                check_param_grads(gW, gb, gb0, gs, gs0, &R, din, d, cfg + 1000);
            }
            hg_test_free_all();
        }
}

/* ---- the sparse-input first layer ---- */

/* input width of the sparse layer: hub rows of X (71 entries > HG_K_FLOAT_RUN) take the
 * float-runs-into-double path */
#define CSR_DIN 80

static void csr_layer_setup(hg_test_layer *L, hg_test_csr *X, hg_test_csr *Xt, int64_t d,
                            uint64_t seed)
{
    layer_setup(L, CSR_DIN, d, seed);
    hg_test_csr_input(X, Xt, LIN_N, CSR_DIN, seed + 5);
}

static void test_fused_linear_forward_csr(void **state)
{
    (void)state;
    static const int64_t widths[] = {16, 5, 24, 128};
    for (int w = 0; w < 4; w++) {
        const int64_t n = LIN_N, d = widths[w], din = CSR_DIN;
        hg_test_layer L;
        hg_test_csr X, Xt;
        csr_layer_setup(&L, &X, &Xt, d, 3000 + 10 * (uint64_t)w);
        const float *b = w == 1 ? NULL : L.b;
        float *z = tf(n * d), *y = tf(n * d), *wt = tf(din * d);
        hg_test_fill_nan(z, n * d);
        hg_test_fill_nan(y, n * d);
        hg_test_fill_nan(wt, din * d);
        hg_k_lorentz_linear_forward_csr(&K, z, y, X.rowptr, X.col, X.val, L.W, wt, b, &L.s, n,
                                        din, d);
        /* the scratch holds W^T exactly */
        assert_memory_equal(wt, L.Wt, (size_t)(din * d) * sizeof *wt);
        /* z = X Wt + b against the dense product (the same sums: the zeros of X add exactly, so
         * the bound over din + 1 terms holds), y against head(z) */
        check_z_y(z, y, hg_test_csr_dense(&X), L.Wt, b, L.s, n, din, d, d == 16, d);
        hg_test_free_all();
    }
}

static void test_fused_linear_backward_csr(void **state)
{
    (void)state;
    static const int64_t widths[] = {16, 5, 24, 128};
    for (int w = 0; w < 4; w++) {
        const int64_t n = LIN_N, d = widths[w], din = CSR_DIN;
        hg_test_layer L;
        hg_test_csr X, Xt;
        csr_layer_setup(&L, &X, &Xt, d, 4000 + 10 * (uint64_t)w);
        const int bias = w != 1;
        float *z = tf(n * d), *y = tf(n * d), *wt = tf(din * d);
        hg_k_lorentz_linear_forward_csr(&K, z, y, X.rowptr, X.col, X.val, L.W, wt,
                                        bias ? L.b : NULL, &L.s, n, din, d);
        /* the reference chain with hd = X (dense) and no input gradient */
        hg_test_bwd_in in = {n, din, d, 0, 0.0f, L.s, 0, &L.At, L.gS, z, hg_test_csr_dense(&X),
                             NULL, NULL, NULL};
        bwd_out R;
        bwd_reference(&R, &in);

        float *dz = tf(n * d), *gb0 = tf(d), *gb = tf(d), *gW = tf(din * d);
        hg_test_fill_uniform(gb0, (size_t)d, -1.0f, 1.0f, 4100 + (uint64_t)w);
        memcpy(gb, gb0, (size_t)d * sizeof *gb);
        const float gs0 = -0.625f;
        float gs = gs0;
        hg_test_fill_nan(dz, n * d);
        hg_test_fill_nan(gW, din * d);
        hg_k_lorentz_linear_backward_csr(&K, dz, gW, bias ? gb : NULL, &gs, L.At.rowptr, L.At.col,
                                         L.At.val, L.gS, z, Xt.rowptr, Xt.col, Xt.val, &L.s, n, din,
                                         d, NULL);
        assert_within(f2d(dz, n * d), f2d(R.dz, n * d), hg_test_twice(R.E.dz, n * d), n * d, d,
                      "fused csr dz vs head_backward(At gS)", d);
        check_param_grads(gW, bias ? gb : NULL, gb0, gs, gs0, &R, din, d, d);
        hg_test_free_all();
    }
}

/* ---- the dense first layer: din < 16 on the 16-wide path (hybonet.c, no dropout) ---- */

static void test_fused_dense_first_layer(void **state)
{
    (void)state;
    enum { DIN0 = 12 }; /* Disease / Airport: 11 features + the time coordinate */
    const int64_t n = LIN_N, d = 16;
    static const int64_t hubs[] = {0}; /* the time coordinate, in every row */
    hg_test_layer L;
    layer_setup(&L, DIN0, d, 5000);
    hg_test_csr X, Xt;
    hg_test_csr_random(&X, n, DIN0, 0.5, hubs, 1, 9, -1.0f, 1.0f, 5005);
    hg_test_csr_transpose(&Xt, &X);
    /* x0_dense (n x DIN0), as hybonet.c builds it */
    const float *Xd = hg_test_csr_dense(&X);

    float *z = tf(n * d), *y = tf(n * d), *zc = tf(n * d), *yc = tf(n * d), *wt = tf(DIN0 * d);
    hg_test_fill_nan(z, n * d);
    hg_test_fill_nan(y, n * d);
    hg_k_lorentz_linear_forward(&K, NULL, z, y, Xd, L.W, L.b, &L.s, 0, 0.0f, 99, n, DIN0, d);
    check_z_y(z, y, Xd, L.Wt, L.b, L.s, n, DIN0, d, 1, 0);
    /* the sparse path on the same input: both z within (DIN0 + 1) u sum|terms| of the exact one */
    hg_k_lorentz_linear_forward_csr(&K, zc, yc, X.rowptr, X.col, X.val, L.W, wt, L.b, &L.s, n,
                                    DIN0, d);
    {
        double *tol = td(n * d);
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < d; o++) {
                double mag = fabs((double)L.b[o]);
                for (int64_t j = 0; j < DIN0; j++)
                    mag += fabs((double)Xd[i * DIN0 + j] * L.Wt[j * d + o]);
                tol[i * d + o] = 2.0 * (DIN0 + 2) * U32 * mag;
            }
        assert_within(f2d(z, n * d), f2d(zc, n * d), tol, n * d, d, "dense z vs csr z", 0);
    }

    /* backward as hybonet.c calls it: no input gradient, hd = x = x0_dense */
    hg_test_bwd_in in = {n, DIN0, d, 0, 0.0f, L.s, 0, &L.At, L.gS, z, Xd, Xd, NULL, NULL};
    bwd_out R;
    bwd_reference(&R, &in);
    float *gW = tf(DIN0 * 16), *gWc = tf(DIN0 * 16), *dzs = tf(n * d);
    float gb0[16], gb[16], gbc[16], dzc[LIN_N * 16];
    hg_test_fill_uniform(gb0, 16, -1.0f, 1.0f, 5010);
    memcpy(gb, gb0, sizeof gb);
    memcpy(gbc, gb0, sizeof gbc);
    const float gs0 = 0.125f;
    float gs = gs0, gsc = gs0;
    hg_test_fill_nan(gW, DIN0 * 16);
    hg_k_lorentz_linear_backward(&K, NULL, dzs, gW, gb, &gs, L.At.rowptr, L.At.col, L.At.val,
                                 L.gS, z, Xd, Xd, L.W, NULL, &L.s, 0, 0.0f, 0, n, DIN0, 16, NULL);
    check_param_grads(gW, gb, gb0, gs, gs0, &R, DIN0, d, 0);
    /* the sparse backward on the same z: the same gradients */
    hg_test_fill_nan(gWc, DIN0 * 16);
    hg_k_lorentz_linear_backward_csr(&K, dzc, gWc, gbc, &gsc, L.At.rowptr, L.At.col, L.At.val,
                                     L.gS, z, Xt.rowptr, Xt.col, Xt.val, &L.s, n, DIN0, d, NULL);
    assert_within(gw_t(gWc, DIN0, d), gw_t(gW, DIN0, d), hg_test_twice(R.E.gWt, DIN0 * 16),
                  DIN0 * 16, 16, "csr gW vs dense gW", 0);
    {
        double got[16], want[16], tol[16];
        for (int o = 0; o < 16; o++) {
            got[o] = gbc[o];
            want[o] = gb[o];
            tol[o] = 2.0 * R.E.gb[o] + 2.0 * U32 * (fabs((double)gb0[o]) + fabs(R.gb[o]));
        }
        assert_within(got, want, tol, 16, 16, "csr gb vs dense gb", 0);
        double g1 = gsc, g2 = gs, t = 2.0 * R.E.gs + 2.0 * U32 * (fabs((double)gs0) + fabs(R.gs));
        assert_within(&g1, &g2, &t, 1, 1, "csr gs vs dense gs", 0);
    }
    hg_test_free_all();
}

/* ---- decoders: pair scores, margin loss, class logits against naive double formulas ----
 * A score 2 + 2 <x, y>_L of width d: d float products summed (d u sum|x_j y_j|), times 2, plus 2
 * and the store: within (d + 3) u (2 + 2 sum |x_j y_j|). A gradient element accumulated (+=) in
 * float from m terms onto its start value: within (m + 2) u (|start| + sum |terms|). */

/* dX rows u, v (double, with magnitudes and term counts) += c d<x_u, x_v>_L / dX. */
static void pair_grad_d(double *G, double *M, int64_t *cnt, const float *X, int32_t u, int32_t v,
                        double c, int64_t d)
{
    for (int64_t j = 0; j < d; j++) {
        const double e = j == 0 ? -c : c;
        G[u * d + j] += e * X[v * d + j];
        M[u * d + j] += fabs(e * X[v * d + j]);
        G[v * d + j] += e * X[u * d + j];
        M[v * d + j] += fabs(e * X[u * d + j]);
    }
    cnt[u]++;
    cnt[v]++;
}

#define PAIR_NPTS 40
#define PAIR_COUNT 37 /* 2 blocks of 16 and a partial one */
#define NAN_ROW (PAIR_NPTS - 1)

static void test_fused_pair_score(void **state)
{
    (void)state;
    static const int64_t widths[] = {16, 5, 24};
    for (int w = 0; w < 3; w++) {
        const int64_t d = widths[w], np = PAIR_NPTS, count = PAIR_COUNT;
        float *X = tf(np * d), *out = tf(count), *g = tf(count);
        int32_t pairs[2 * PAIR_COUNT];
        hg_test_random_points(X, np, d, 2.0, 600 + (uint64_t)w);
        hg_test_random_pairs(pairs, count, PAIR_NPTS, 610 + (uint64_t)w, 5);
        hg_test_fill_nan(out, count);
        hg_k_lorentz_pair_score(&K, out, X, pairs, count, d);
        double want[PAIR_COUNT], tol[PAIR_COUNT];
        for (int64_t e = 0; e < count; e++) {
            double mag;
            want[e] = hg_test_score(X + pairs[2 * e] * d, X + pairs[2 * e + 1] * d, d, &mag);
            tol[e] = (double)(d + 3) * U32 * mag;
        }
        assert_within(f2d(out, count), want, tol, count, 1, "fused pair score", d);

        /* backward: pairs with g = 0 are skipped: the row NAN_ROW (only in such pairs) is NaN */
        hg_test_fill_uniform(g, (size_t)count, -1.0f, 1.0f, 620 + (uint64_t)w);
        for (int64_t e = 0; e < count; e++)
            if (e % 5 == 4 || e % 7 == 0)
                g[e] = 0.0f;
        for (int64_t j = 0; j < d; j++)
            X[NAN_ROW * d + j] = NAN;
        float *dX = tf(np * d), *dX0 = tf(np * d);
        hg_test_fill_uniform(dX0, (size_t)(np * d), -1.0f, 1.0f, 630 + (uint64_t)w);
        memcpy(dX, dX0, (size_t)(np * d) * sizeof *dX);
        hg_k_lorentz_pair_score_backward(&K, dX, X, pairs, g, count, d);
        double *G = f2d(dX0, np * d), *M = td(np * d), *T = td(np * d);
        int64_t *cnt = hg_test_alloc(np, sizeof *cnt);
        for (int64_t i = 0; i < np * d; i++)
            M[i] = fabs(G[i]);
        for (int64_t e = 0; e < count; e++)
            if (g[e] != 0.0f)
                pair_grad_d(G, M, cnt, X, pairs[2 * e], pairs[2 * e + 1], 2.0 * g[e], d);
        for (int64_t i = 0; i < np * d; i++)
            T[i] = (double)(cnt[i / d] + 2) * U32 * M[i];
        assert_within(f2d(dX, np * d), G, T, np * d, d, "fused pair score backward dX", d);
        hg_test_free_all();
    }
}

static void test_fused_pair_margin_loss(void **state)
{
    (void)state;
    static const int64_t widths[] = {16, 5, 24};
    for (int w = 0; w < 3; w++) {
        const int64_t d = widths[w], np = PAIR_NPTS, count = PAIR_COUNT;
        const float margin = 2.0f, wt = 1.0f / (2.0f * (float)count);
        float *X = tf(np * d), *sp = tf(count), *sn = tf(count), *dX = tf(np * d),
              *dX0 = tf(np * d);
        int32_t pos[2 * PAIR_COUNT], neg[2 * PAIR_COUNT];
        hg_test_random_points(X, np, d, 1.5, 700 + (uint64_t)w);
        hg_test_random_pairs(pos, count, PAIR_NPTS, 710 + (uint64_t)w, 0);
        hg_test_random_pairs(neg, count, PAIR_NPTS, 720 + (uint64_t)w, 0);
        hg_test_fill_uniform(dX0, (size_t)(np * d), -1.0f, 1.0f, 730 + (uint64_t)w);
        memcpy(dX, dX0, (size_t)(np * d) * sizeof *dX);
        hg_test_fill_nan(sp, count);
        hg_test_fill_nan(sn, count);
        const double loss =
            hg_k_lorentz_pair_margin_loss(&K, sp, sn, dX, X, pos, neg, count, margin, wt, np, d,
                                          NULL);
        /* scores as pair scores */
        double want[2 * PAIR_COUNT], tol[2 * PAIR_COUNT], got[2 * PAIR_COUNT];
        for (int64_t e = 0; e < count; e++) {
            double mp, mn;
            want[e] = hg_test_score(X + pos[2 * e] * d, X + pos[2 * e + 1] * d, d, &mp);
            want[count + e] = hg_test_score(X + neg[2 * e] * d, X + neg[2 * e + 1] * d, d, &mn);
            tol[e] = (double)(d + 3) * U32 * mp;
            tol[count + e] = (double)(d + 3) * U32 * mn;
            got[e] = sp[e];
            got[count + e] = sn[e];
        }
        assert_within(got, want, tol, 2 * count, count, "fused margin loss scores", d);
        /* the loss from the kernel's own scores, in double (count additions: count eps of the
         * sum of |terms|), and the gradient of the active couples */
        double *G = f2d(dX0, np * d), *M = td(np * d), *T = td(np * d), lw = 0.0, lmag = 0.0;
        int64_t *cnt = hg_test_alloc(np, sizeof *cnt), active = 0;
        for (int64_t i = 0; i < np * d; i++)
            M[i] = fabs(G[i]);
        for (int64_t e = 0; e < count; e++) {
            double t = (double)margin - sp[e] + sn[e];
            lmag += fabs((double)margin) + fabs((double)sp[e]) + fabs((double)sn[e]);
            if (!(t > 0.0))
                continue;
            active++;
            lw += t;
            pair_grad_d(G, M, cnt, X, pos[2 * e], pos[2 * e + 1], -2.0 * wt, d);
            pair_grad_d(G, M, cnt, X, neg[2 * e], neg[2 * e + 1], 2.0 * wt, d);
        }
        assert_true(active > 0 && active < count); /* both branches of the hinge are exercised */
        double ltol = (double)(count + 2) * DBL_EPSILON * lmag;
        assert_within(&loss, &lw, &ltol, 1, 1, "fused margin loss value", d);
        for (int64_t i = 0; i < np * d; i++)
            T[i] = (double)(cnt[i / d] + 2) * U32 * M[i];
        assert_within(f2d(dX, np * d), G, T, np * d, d, "fused margin loss dX", d);
        /* without the gradient: the same loss and scores */
        hg_test_fill_nan(sp, count);
        hg_test_fill_nan(sn, count);
        const double loss2 =
            hg_k_lorentz_pair_margin_loss(&K, sp, sn, NULL, X, pos, neg, count, margin, wt, np, d,
                                          NULL);
        assert_within(&loss2, &lw, &ltol, 1, 1, "fused margin loss value (no gradient)", d);
        for (int64_t e = 0; e < count; e++) {
            got[e] = sp[e];
            got[count + e] = sn[e];
        }
        assert_within(got, want, tol, 2 * count, count, "fused margin loss scores (no gradient)",
                      d);
        hg_test_free_all();
    }
}

static void test_fused_class_logits(void **state)
{
    (void)state;
    /* (d, C): the 16-wide path needs C <= 16 */
    static const int64_t cfgs[][2] = {{16, 7}, {16, 16}, {16, 20}, {5, 7}, {24, 3}};
    for (int c = 0; c < 5; c++) {
        const int64_t d = cfgs[c][0], C = cfgs[c][1], n = LIN_N, nidx = 70;
        const int with_b = c != 1, with_db = c != 2;
        float *X = tf(n * d), *P = tf(C * d), *b = tf(C), *lg = tf(n * C);
        hg_test_random_points(X, n, d, 2.0, 800 + (uint64_t)c);
        hg_test_random_points(P, C, d, 1.0, 810 + (uint64_t)c);
        hg_test_fill_uniform(b, (size_t)C, -0.5f, 0.5f, 820 + (uint64_t)c);
        hg_test_fill_nan(lg, n * C);
        hg_k_lorentz_class_logits(&K, lg, X, P, with_b ? b : NULL, n, C, d);
        double *want = td(n * C), *tol = td(n * C);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < C; k++) {
                double mag;
                want[i * C + k] =
                    hg_test_score(X + i * d, P + k * d, d, &mag) + (with_b ? b[k] : 0.0);
                tol[i * C + k] = (double)(d + 4) * U32 * (mag + fabs((double)b[k]));
            }
        assert_within(f2d(lg, n * C), want, tol, n * C, C, "fused class logits", c);

        /* backward over nidx distinct rows in shuffled order (nidx > HG_K_FLOAT_RUN) */
        int64_t *idx = hg_test_shuffled_rows(n, 830 + (uint64_t)c);
        float *dl = tf(nidx * C), *dX = tf(n * d), *dP = tf(C * d), *db = tf(C);
        hg_test_fill_uniform(dl, (size_t)(nidx * C), -1.0f, 1.0f, 840 + (uint64_t)c);
        for (int64_t q = 0; q < nidx * C; q += 3)
            dl[q] = 0.0f;
        hg_test_fill_uniform(dX, (size_t)(n * d), -1.0f, 1.0f, 850 + (uint64_t)c);
        hg_test_fill_uniform(dP, (size_t)(C * d), -1.0f, 1.0f, 860 + (uint64_t)c);
        hg_test_fill_uniform(db, (size_t)C, -1.0f, 1.0f, 870 + (uint64_t)c);
        double *GX = f2d(dX, n * d), *GP = f2d(dP, C * d), *GB = f2d(db, C);
        double *MX = td(n * d), *MP = td(C * d), *MB = td(C);
        for (int64_t i = 0; i < n * d; i++)
            MX[i] = fabs(GX[i]);
        for (int64_t i = 0; i < C * d; i++)
            MP[i] = fabs(GP[i]);
        for (int64_t k = 0; k < C; k++)
            MB[k] = fabs(GB[k]);
        hg_k_lorentz_class_logits_backward(&K, dX, dP, with_db ? db : NULL, dl, X, P, idx, nidx,
                                           C, d, NULL);
        for (int64_t a = 0; a < nidx; a++)
            for (int64_t k = 0; k < C; k++) {
                const double gk = dl[a * C + k];
                GB[k] += gk;
                MB[k] += fabs(gk);
                for (int64_t j = 0; j < d; j++) {
                    const double e = (j == 0 ? -2.0 : 2.0) * gk;
                    GX[idx[a] * d + j] += e * P[k * d + j];
                    MX[idx[a] * d + j] += fabs(e * P[k * d + j]);
                    GP[k * d + j] += e * X[idx[a] * d + j];
                    MP[k * d + j] += fabs(e * X[idx[a] * d + j]);
                }
            }
        for (int64_t i = 0; i < n * d; i++)
            MX[i] *= (double)(C + 2) * U32;
        for (int64_t i = 0; i < C * d; i++)
            MP[i] *= (double)(nidx + 2) * U32;
        for (int64_t k = 0; k < C; k++)
            MB[k] *= (double)(nidx + 2) * U32;
        assert_within(f2d(dX, n * d), GX, MX, n * d, d, "fused class logits backward dX", c);
        assert_within(f2d(dP, C * d), GP, MP, C * d, d, "fused class logits backward dP", c);
        if (with_db)
            assert_within(f2d(db, C), GB, MB, C, C, "fused class logits backward db", c);
        hg_test_free_all();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_head),
        cmocka_unit_test(test_centroid),
        cmocka_unit_test(test_expmap0),
        cmocka_unit_test(test_logmap0_inverts_expmap0),
        cmocka_unit_test(test_csr_spmm),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_flip_inner_sqnorm_scale),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_radam_random_grads),
        cmocka_unit_test(test_radam_minimises_distance),
        cmocka_unit_test(test_stabilize),
        cmocka_unit_test(test_fused_dropout_mask),
        cmocka_unit_test(test_fused_linear_forward),
        cmocka_unit_test(test_fused_agg_forward),
        cmocka_unit_test(test_fused_linear_backward),
        cmocka_unit_test(test_fused_linear_forward_csr),
        cmocka_unit_test(test_fused_linear_backward_csr),
        cmocka_unit_test(test_fused_dense_first_layer),
        cmocka_unit_test(test_fused_pair_score),
        cmocka_unit_test(test_fused_pair_margin_loss),
        cmocka_unit_test(test_fused_class_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
