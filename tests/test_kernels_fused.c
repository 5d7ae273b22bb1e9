/* test_kernels_fused.c - the fused HyboNet layer kernels (kernels/lorentz_layer.c, what
 * hyperbolic/hybonet.c calls) against the composition of the reference kernels (hg_k_dropout,
 * hg_k_relu_*, hg_k_gemm, hg_k_csr_spmm, hg_k_lorentz_linear_head_*, hg_k_lorentz_centroid_*)
 * tested in test_kernels.c, and the decoders (kernels/lorentz_decoder.c) against naive double
 * formulas. Every kernel runs at d = 16 (the vector paths of every reference run)
 * and at other widths (5, 24, 72: the generic paths; 72 > HG_K_FLOAT_RUN and 72 x 72 > the stack
 * partials of the generic backward), on random CSR matrices with empty rows, empty columns and
 * hub rows/columns longer than HG_K_FLOAT_RUN (the float-runs-into-double path), 83 rows (a
 * partial last block of 16), dropout p in {0, 0.3} with a fixed seed, ReLU on/off, bias or NULL;
 * and the dense first layer hybonet.c runs when din <= 16 (zero-padded to 16 x 16), against the
 * reference and against the sparse-input kernels on the same input. Outputs documented (=) are
 * pre-filled with NaN (a slot not overwritten fails); (+=) ones start at random values. Suite:
 * numerics.
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
 *     100u; /q, sqrt: f <= 60u; * z_j: 64u); centroid 2 or 8.5 rho + 3 (test_centroid in
 *     test_kernels.c). Two paths differ by the sum of their kappas.
 *   - The backward kernels do not return dy (nor dz, in the dense one), so they are compared with
 *     the reference chain through a running first-order error bound (bwd_reference): the backward
 *     is linear in gS; each stage is out = J in with coefficients whose float evaluation errs by
 *     kappa_s u |J|, so an input error E_in and the stage's rounding give
 *     E_out = |J| E_in + kappa_s u |J| M_in along the magnitude chain M_out = |J| M_in, M_0 = |gS|.
 *     Fused kernel and reference are both within E of the exact result: allow 2 E. */

#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "../src/rng.h"

#define U32 (0.5 * (double)FLT_EPSILON) /* unit roundoff of float32 */

static hg_kctx K = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

/* shorthands for the test scratch (testutil.h) */
#define tf hg_test_floats
#define td hg_test_doubles
#define f2d hg_test_f2d

static double sqnorm_e(const float *x, int64_t d) { return hg_k_sqnorm(&K, x, d); }

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
                hg_k_dropout(&K, hr, hr, n * din, p, seed, 0);
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
        hg_k_dropout(&K, dx, dx, n * din, in->p, in->seed, 0);
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
