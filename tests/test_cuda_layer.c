/* test_cuda_layer.c - the CUDA backend against the CPU kernels: the fused Lorentz layer kernels
 * (centroid backward, LorentzLinear forward and backward on dense and sparse input, the
 * aggregation). The harness and the tolerances are in test_cuda.h. */
#include "test_cuda.h"

/* ========================================================================================== */
/* Lorentz kernels */

/* Relative error (units of u) of a LorentzLinear head output: the CPU's path (test_kernels.c:
 * 2 generic, 64 on the 16-wide float path) plus the GPU's, allowed the float path at any width
 * (its one d-term sum |z_sp|^2 replaces the 16-term one: 48 + d). */
static double head_kappa(int64_t d, int cpu_vec)
{
    return (cpu_vec ? 64.0 : 2.0) + 48.0 + (double)d;
}

/* The same for the centroid, rho = |S|_E^2 / max(|<S,S>_L|, 1e-8): CPU 2 or 8.5 rho + 3; GPU
 * float at width d: (d + 1) / 2 rho + 3. */
static double centroid_kappa(int64_t d, double rho)
{
    return (d == 16 ? 8.5 * rho + 3.0 : 2.0) + 0.5 * (double)(d + 1) * rho + 3.0;
}

static double sqnorm_e(const float *x, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++)
        s += (double)x[j] * x[j];
    return s;
}

static double lorentz_inner_d(const float *x, const float *y, int64_t d)
{
    double s = -(double)x[0] * y[0];
    for (int64_t j = 1; j < d; j++)
        s += (double)x[j] * y[j];
    return s;
}

/* y_gpu against the CPU's reference head of z_gpu (both n x d). */
static void check_head_stage(const op *o, const float *y, const float *z, float s, int64_t n,
                             int64_t d, int cpu_vec, const char *what)
{
    float *yr = tf(n * d);
    hg_k_lorentz_linear_head_forward(&CPU, yr, z, s, n, d);
    double *want = f2d(yr, n * d);
    expect_within(o->label, what, f2d(y, n * d), want, tol_rel(want, n * d, head_kappa(d, cpu_vec)),
                  n * d, d);
}

/* out_gpu against the CPU's reference centroid of S_gpu. */
static void check_centroid_stage(const op *o, const float *out, const float *S, int64_t n,
                                 int64_t d, const char *what)
{
    float *outr = tf(n * d);
    hg_k_lorentz_centroid_forward(&CPU, outr, S, n, d);
    double *want = f2d(outr, n * d), *tol = td(n * d);
    for (int64_t i = 0; i < n; i++) {
        const double rho = sqnorm_e(S + i * d, d) /
                           fmax(fabs(lorentz_inner_d(S + i * d, S + i * d, d)),
                                (double)HG_LORENTZ_CENTROID_MIN);
        for (int64_t j = 0; j < d; j++)
            tol[i * d + j] = centroid_kappa(d, rho) * U32 * fabs(want[i * d + j]);
    }
    expect_within(o->label, what, f2d(out, n * d), want, tol, n * d, d);
}

/* ---- centroid backward ---- */

typedef struct {
    int64_t n, d;
} nd_par;

static void centroid_bwd_fn(const hg_kctx *k, op *o) /* args: dout, S, dS */
{
    const nd_par *p = o->par;
    hg_k_lorentz_centroid_backward(k, F(o, 2), F(o, 0), F(o, 1), p->n, p->d);
}

static void test_centroid_backward(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24};
    for (int w = 0; w < 3; w++) {
        const int mark = hg_test_mark();
        const nd_par p = {LIN_N, widths[w]};
        const int64_t n = p.n, d = p.d;
        float *S = tf(n * d), *dout = uniform(n * d, -1.0f, 1.0f, 700 + (uint64_t)w);
        hg_test_random_aggregates(S, n, d, 710 + (uint64_t)w); /* every 9th row 0: the clamp */
        for (int64_t i = 4; i < n; i += 9) /* |<S,S>_L| ~ 1e-10: the clamp with S != 0 */
            for (int64_t j = 0; j < d; j++)
                S[i * d + j] *= 1e-5f;
        op o;
        op_init(&o, centroid_bwd_fn, &p, "centroid_backward(d=%lld)", (long long)d);
        op_arg(&o, T_F32, ARG_IN, n * d, dout);
        op_arg(&o, T_F32, ARG_IN, n * d, S);
        const int idS = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
        res rc, rg;
        run_both(&o, &rc, &rg);
        /* dS_j = r dout_j + 2 dr/dm (dout . S) eta_j S_j, r = c^-1/2, c = max(|<S,S>_L|, 1e-8):
         * magnitude r |dout_j| + 2 |dr/dm| sum_k |dout_k S_k| |S_j|; kappa (test_kernels_fused.c's
         * bwd_reference): CPU 6 generic or 30 rho + 30 16-wide; GPU float at width d:
         * (2d - 2) rho + d + 14 (= 30 rho + 30 at d = 16). */
        double *tol = td(n * d);
        for (int64_t i = 0; i < n; i++) {
            const float *Si = S + i * d, *gi = dout + i * d;
            const double mnk = fabs(lorentz_inner_d(Si, Si, d));
            const int clamped = mnk < HG_LORENTZ_CENTROID_MIN;
            const double c = clamped ? HG_LORENTZ_CENTROID_MIN : mnk, r = 1.0 / sqrt(c);
            const double drdm = clamped ? 0.0 : 0.5 * r / c, rho = sqnorm_e(Si, d) / c;
            const double kap = (d == 16 ? 30.0 * rho + 30.0 : 6.0) +
                               (2.0 * (double)d - 2.0) * rho + (double)d + 14.0;
            double SM = 0.0;
            for (int64_t j = 0; j < d; j++)
                SM += fabs((double)gi[j] * Si[j]);
            for (int64_t j = 0; j < d; j++)
                tol[i * d + j] = kap * U32 * (r * fabs((double)gi[j]) +
                                              2.0 * drdm * SM * fabs((double)Si[j]));
        }
        expect_arg_within(&o, idS, &rg, &rc, tol, d, "dS");
        hg_test_release(mark);
    }
}

/* ---- LorentzLinear (dense input) ---- */

/* A layer of LIN_N rows (testutil.h). */
static void layer_setup(hg_test_layer *L, int64_t din, int64_t d, uint64_t seed)
{
    hg_test_layer_setup(L, &CPU, LIN_N, din, d, seed);
}

/* A bias whose spatial part has |b_sp|^2 = 2.5e-9 < 1e-8: the rows of z equal to it (zero rows
 * of the input: empty aggregates, empty rows of a sparse X) take the head's clamp with a nonzero
 * z_sp, where the clamp's value matters. */
static float *clamp_bias(int64_t d)
{
    float *b = tf(d);
    b[0] = 0.3f;
    b[1] = 3e-5f;
    b[d > 3 ? 3 : 2] = -4e-5f;
    return b;
}

/* (din, d): the CPU's 16 x 16 path, din != 16 at d = 16, d != 16 at din = 16, both other */
static const struct {
    int64_t din, d;
} lin_cfgs[] = {{16, 16}, {7, 16}, {16, 24}, {40, 5}, {72, 72}};
#define NLIN_CFGS ((int)(sizeof lin_cfgs / sizeof lin_cfgs[0]))

/* forward variants: relu, p, bias (0 NULL, 1 random, 2 clamp_bias), whether hd is given */
static const struct {
    int relu;
    float p;
    int bias, hd;
} fwd_vars[] = {{0, 0.0f, 1, 0}, {1, 0.0f, 0, 1}, {0, 0.5f, 1, 1}, {1, 0.5f, 1, 1}, {0, 0.0f, 1, 1},
                {1, 0.0f, 2, 1}};
#define NFWD_VARS 6

typedef struct {
    int64_t n, din, d;
    int relu, has_hd, has_b;
    float p;
    uint64_t seed;
} lin_par;

/* args: x, W, b, s, hd, z, y */
static void linear_fwd_fn(const hg_kctx *k, op *o)
{
    const lin_par *p = o->par;
    hg_k_lorentz_linear_forward(k, p->has_hd ? F(o, 4) : NULL, F(o, 5), F(o, 6), F(o, 0), F(o, 1),
                                p->has_b ? F(o, 2) : NULL, F(o, 3), p->relu, p->p, p->seed, p->n,
                                p->din, p->d);
}

static void test_linear_forward(void **state)
{
    (void)state;
    REQUIRE_GPU();
    for (int c = 0; c < NLIN_CFGS; c++)
        for (int v = 0; v < NFWD_VARS; v++) {
            const int mark = hg_test_mark();
            const int64_t din = lin_cfgs[c].din, d = lin_cfgs[c].d, n = LIN_N;
            const lin_par p = {n, din, d, fwd_vars[v].relu, fwd_vars[v].hd, fwd_vars[v].bias,
                               fwd_vars[v].p, 800 + (uint64_t)(10 * c + v)};
            hg_test_layer L;
            layer_setup(&L, din, d, 1000 + 10 * (uint64_t)c);
            if (fwd_vars[v].bias == 2)
                L.b = clamp_bias(d);
            op o;
            op_init(&o, linear_fwd_fn, &p,
                    "lorentz_linear_forward(din=%lld, d=%lld, relu=%d, p=%g, bias=%d, hd=%s)",
                    (long long)din, (long long)d, p.relu, (double)p.p, p.has_b,
                    p.has_hd ? "given" : "NULL");
            op_arg(&o, T_F32, ARG_IN, n * din, L.x);
            op_arg(&o, T_F32, ARG_IN, d * din, L.W);
            op_arg(&o, T_F32, ARG_IN, d, L.b);
            op_arg(&o, T_F32, ARG_IN, 1, &L.s);
            const int ihd = op_arg(&o, T_F32, ARG_OUT, n * din, NULL);
            const int iz = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
            const int iy = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
            res rc, rg;
            run_both(&o, &rc, &rg);
            /* hd: the same mask value times the same activation: bitwise */
            expect_arg_bits(&o, ihd, &rg, &rc, p.has_hd ? "hd" : "hd (NULL: untouched)");
            const float *h = p.has_hd ? rc.h[ihd] : L.x;
            /* z = h Wt + b on the stage input h: float dots of din + 1 terms */
            expect_arg_within(&o, iz, &rg, &rc,
                              hg_test_linear_tol(h, L.Wt, p.has_b ? L.b : NULL, n, din, d), d,
                              "z");
            check_head_stage(&o, rg.h[iy], rg.h[iz], L.s, n, d, d == 16 && din == 16,
                             "y vs head(gpu z)");
            hg_test_release(mark);
        }
}

/* ---- the sparse-input LorentzLinear and the aggregation ---- */

#define CSR_DIN 80 /* hub rows of X (> HG_K_FLOAT_RUN entries) */

typedef struct {
    int64_t n, din, d;
    int has_b;
} csr_par;

/* args: rowptr, col, val, W, b, s, z, y, Wt (scratch: W^T) */
static void linear_fwd_csr_fn(const hg_kctx *k, op *o)
{
    const csr_par *p = o->par;
    hg_k_lorentz_linear_forward_csr(k, F(o, 6), F(o, 7), I64(o, 0), I32(o, 1), F(o, 2), F(o, 3),
                                    F(o, 8), p->has_b ? F(o, 4) : NULL, F(o, 5), p->n, p->din,
                                    p->d);
}

static void test_linear_forward_csr(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24};
    for (int w = 0; w < 3; w++)
        for (int bias = 0; bias < 3; bias++) { /* NULL, random, clamp_bias */
            const int mark = hg_test_mark();
            const int64_t n = LIN_N, d = widths[w], din = CSR_DIN;
            const csr_par p = {n, din, d, bias > 0};
            hg_test_layer L;
            hg_test_csr X, Xt;
            layer_setup(&L, din, d, 3000 + 10 * (uint64_t)w);
            hg_test_csr_input(&X, &Xt, LIN_N, CSR_DIN, 3005 + 10 * (uint64_t)w);
            if (bias == 2)
                L.b = clamp_bias(d);
            op o;
            op_init(&o, linear_fwd_csr_fn, &p, "lorentz_linear_forward_csr(d=%lld, bias=%d)",
                    (long long)d, bias);
            arg_csr(&o, &X);
            op_arg(&o, T_F32, ARG_IN, d * din, L.W);
            op_arg(&o, T_F32, ARG_IN, d, L.b);
            op_arg(&o, T_F32, ARG_IN, 1, &L.s);
            const int iz = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
            const int iy = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
            const int iwt = op_arg(&o, T_F32, ARG_OUT, din * d, NULL);
            res rc, rg;
            run_both(&o, &rc, &rg);
            expect_arg_bits(&o, iwt, &rg, &rc, "Wt (the transposed weight)");
            /* the dense bound over din + 1 terms holds (the zeros of X add exactly) */
            const float *Xd = hg_test_csr_dense(&X);
            expect_arg_within(&o, iz, &rg, &rc,
                              hg_test_linear_tol(Xd, L.Wt, bias ? L.b : NULL, n, din, d), d, "z");
            check_head_stage(&o, rg.h[iy], rg.h[iz], L.s, n, d, d == 16, "y vs head(gpu z)");
            hg_test_release(mark);
        }
}

/* args: rowptr, col, val, y, S, out */
static void agg_fwd_fn(const hg_kctx *k, op *o)
{
    const nd_par *p = o->par;
    hg_k_lorentz_agg_forward(k, F(o, 4), F(o, 5), I64(o, 0), I32(o, 1), F(o, 2), F(o, 3), p->n,
                             p->d);
}

static void test_agg_forward(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24, 72};
    static const int64_t hubs[] = {5, 60};
    for (int w = 0; w < 4; w++) {
        const int mark = hg_test_mark();
        const nd_par p = {LIN_N, widths[w]};
        const int64_t n = p.n, d = p.d;
        hg_test_csr A;
        hg_test_csr_random(&A, n, n, 0.08, hubs, 2, 9, 0.05f, 1.0f, 900 + (uint64_t)w);
        for (int64_t q = A.rowptr[13]; q < A.rowptr[14]; q++) /* S_13 tiny: the centroid's clamp */
            A.val[q] *= 1e-5f;
        float *y = tf(n * d);
        /* head outputs lie on the hyperboloid */
        hg_test_random_points(y, n, d, 2.0, 910 + (uint64_t)w);
        op o;
        op_init(&o, agg_fwd_fn, &p, "lorentz_agg_forward(d=%lld)", (long long)d);
        arg_csr(&o, &A);
        op_arg(&o, T_F32, ARG_IN, n * d, y);
        const int iS = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
        const int iout = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
        res rc, rg;
        run_both(&o, &rc, &rg);
        /* S = A y: float sums of k_i terms: 2 (k_i + 1) u sum|terms| */
        expect_arg_within(&o, iS, &rg, &rc, hg_test_csr_spmm_tol(&A, y, d), d, "S");
        check_centroid_stage(&o, rg.h[iout], rg.h[iS], n, d, "out vs centroid(gpu S)");
        hg_test_release(mark);
    }
}

/* ---- backward: the first-order error bound of the chain (test_kernels_fused.c, bwd_reference) */

/* The running error bound E of every result of the backward chain (hg_test_bwd_bounds; see
 * test_kernels_fused.c for the derivation). Stage roundings kappa_s (units of u), the float
 * path's at width d (which bounds the CPU's generic double path too):
 *   dy = At gS: float sums of k_i terms: k_i + 1.
 *   head backward: a = sum of d products (d); t, t^2 - 1, f, dfdt, dfdq as the 16-wide path
 *     (test_kernels.c): dz0: 204 + d + 5 e^max(z0,0); dz_j: 84 + d; ds: dz0's plus two float sums
 *     over runs of rows (2 HG_K_FLOAT_RUN).
 *   gWt = hd^T dz, gb: float sums of n rows: n + 1.
 *   dx = (dz W) * mask * act': a dot of d terms and one multiply: d + 2.
 *   centroid backward through S_prev at width din: (2 din - 2) rho + din + 14. */
static double gpu_head_time(int64_t d, float z0)
{
    return 204.0 + (double)d + 5.0 * exp(fmax((double)z0, 0.0));
}
static double gpu_head_space(int64_t d) { return 84.0 + (double)d; }
static double gpu_centroid(const float *S, int64_t din, double c)
{
    const double rho = sqnorm_e(S, din) / c;
    return (2.0 * (double)din - 2.0) * rho + (double)din + 14.0;
}
static const hg_test_bwd_kappa gpu_kappa = {gpu_head_time, gpu_head_space,
                                            2.0 * HG_K_FLOAT_RUN, gpu_centroid};

/* gb (+=, from gb0) and gs (+=, from gs0): 2E plus the rounding of the accumulation on each
 * side (u of the result). igb < 0: gb NULL (must stay untouched). */
static void check_gb_gs(const op *o, int igb, int igs, const res *rg, const res *rc,
                        const float *gb0, float gs0, const hg_test_bwd_bound *B, int64_t d)
{
    if (igb >= 0) {
        double *tol = td(d);
        const float *gbc = rc->h[igb];
        for (int64_t c = 0; c < d; c++)
            tol[c] = 2.0 * B->gb[c] + 2.0 * U32 * (fabs((double)gb0[c]) + fabs((double)gbc[c]));
        expect_arg_within(o, igb, rg, rc, tol, d, "gb");
    }
    const double gsc = *(const float *)rc->h[igs], gsg = *(const float *)rg->h[igs];
    expect_scalar(o, gsg, gsc, 2.0 * B->gs + 2.0 * U32 * (fabs((double)gs0) + fabs(gsc)), "gs");
}

/* Rows 4, 13, 22, ... of z (an input of the backward kernels) set to clamp_bias: the head's
 * clamp with a nonzero z_sp (the rows i % 9 == 8 are zero without a bias: the clamp with
 * z_sp = 0). */
static void set_clamp_rows(float *z, int64_t n, int64_t d)
{
    const float *cb = clamp_bias(d);
    for (int64_t i = 4; i < n; i += 9)
        memcpy(z + i * d, cb, (size_t)d * sizeof *z);
}

/* ---- LorentzLinear backward (dense input) ---- */

/* variants: relu, p, input gradient (0 none, 1 plain, 2 through S_prev), bias gradient */
static const struct {
    int relu;
    float p;
    int gx, gb;
} bwd_vars[] = {{0, 0.0f, 1, 1}, {1, 0.0f, 0, 0}, {0, 0.5f, 2, 1}, {1, 0.5f, 1, 1},
                {1, 0.5f, 2, 0}, {0, 0.0f, 2, 1}};
#define NBWD_VARS 6

typedef struct {
    int64_t n, din, d;
    int relu, gx, gb;
    float p;
    uint64_t seed;
} lbwd_par;

/* A tolerance of the transposed weight gradient (din x d) in W's layout (d x din). */
static double *tol_t(const double *t, int64_t din, int64_t d)
{
    double *r = td(din * d);
    for (int64_t c = 0; c < din; c++)
        for (int64_t o = 0; o < d; o++)
            r[o * din + c] = t[c * d + o];
    return r;
}

/* args: t_rowptr, t_col, t_val, gS, z, hd, x, W, S_prev, s, gx, gW, gb, gs, dz (scratch) */
static void linear_bwd_fn(const hg_kctx *k, op *o)
{
    const lbwd_par *p = o->par;
    hg_k_lorentz_linear_backward(k, p->gx ? F(o, 10) : NULL, F(o, 14), F(o, 11),
                                 p->gb ? F(o, 12) : NULL,
                                 F(o, 13), I64(o, 0), I32(o, 1), F(o, 2), F(o, 3), F(o, 4),
                                 F(o, 5), F(o, 6), F(o, 7), p->gx == 2 ? F(o, 8) : NULL, F(o, 9),
                                 p->relu, p->p, p->seed, p->n, p->din, p->d, NULL);
}

/* One case of the dense backward: n rows, variant v of bwd_vars. */
static void linear_backward_case(int64_t n, int64_t din, int64_t d, int v, uint64_t seed,
                                 uint64_t setup_seed)
{
    const lbwd_par p = {n, din, d, bwd_vars[v].relu, bwd_vars[v].gx, bwd_vars[v].gb,
                        bwd_vars[v].p, seed};
    hg_test_layer L;
    hg_test_layer_setup(&L, &CPU, n, din, d, setup_seed);
    /* the forward's z and hd on the CPU (hd = x when the forward takes x itself); without a
     * bias the zero rows of x (empty aggregates) give z = 0: the head's clamp with z_sp = 0 */
    const int with_hd = p.relu || p.p > 0.0f;
    float *z = tf(n * d), *y = tf(n * d), *hd = with_hd ? tf(n * din) : NULL;
    hg_k_lorentz_linear_forward(&CPU, hd, z, y, L.x, L.W, p.gb ? L.b : NULL, &L.s, p.relu, p.p,
                                p.seed, n, din, d);
    set_clamp_rows(z, n, d);
    const float *h = hd ? hd : L.x;
    float *gb0 = uniform(d, -1.0f, 1.0f, p.seed + 1), gs0 = 0.375f;
    op o;
    op_init(&o, linear_bwd_fn, &p,
            "lorentz_linear_backward(n=%lld, din=%lld, d=%lld, relu=%d, p=%g, gx=%s, gb=%s)",
            (long long)n, (long long)din, (long long)d, p.relu, (double)p.p,
            p.gx == 0 ? "NULL" : p.gx == 1 ? "plain" : "through S_prev", p.gb ? "given" : "NULL");
    arg_csr(&o, &L.At);
    op_arg(&o, T_F32, ARG_IN, n * d, L.gS);
    op_arg(&o, T_F32, ARG_IN, n * d, z);
    op_arg(&o, T_F32, ARG_IN, n * din, h);
    op_arg(&o, T_F32, ARG_IN, n * din, L.x);
    op_arg(&o, T_F32, ARG_IN, d * din, L.W);
    op_arg(&o, T_F32, ARG_IN, n * din, L.S_prev);
    op_arg(&o, T_F32, ARG_IN, 1, &L.s);
    const int igx = op_arg(&o, T_F32, ARG_OUT, n * din, NULL);
    const int igW = op_arg(&o, T_F32, ARG_OUT, din * d, NULL);
    const int igb = op_arg(&o, T_F32, ARG_OUT, d, gb0);
    const int igs = op_arg(&o, T_F32, ARG_OUT, 1, &gs0);
    op_arg(&o, T_F32, ARG_OUT, n * d, NULL); /* dz: scratch, not compared */
    res rc, rg;
    run_both(&o, &rc, &rg);

    const hg_test_bwd_in in = {n, din, d, p.relu, p.p, L.s, p.seed, &L.At, L.gS, z, h, L.x,
                               p.gx ? L.W : NULL, p.gx == 2 ? L.S_prev : NULL};
    hg_test_bwd_bound B;
    hg_test_bwd_bounds(&B, &in, &gpu_kappa);
    expect_arg_within(&o, igW, &rg, &rc, tol_t(hg_test_twice(B.gWt, din * d), din, d), din,
                      "gW");
    check_gb_gs(&o, p.gb ? igb : -1, igs, &rg, &rc, gb0, gs0, &B, d);
    if (!p.gb)
        expect_arg_bits(&o, igb, &rg, &rc, "gb buffer (gb NULL: untouched)");
    if (p.gx)
        expect_arg_within(&o, igx, &rg, &rc, hg_test_twice(B.gx, n * din), din,
                          p.gx == 2 ? "gx (through S_prev)" : "gx");
    else
        expect_arg_bits(&o, igx, &rg, &rc, "gx buffer (gx NULL: untouched)");
}

static void test_linear_backward(void **state)
{
    (void)state;
    REQUIRE_GPU();
    for (int c = 0; c < NLIN_CFGS; c++)
        for (int v = 0; v < NBWD_VARS; v++) {
            const int mark = hg_test_mark();
            linear_backward_case(LIN_N, lin_cfgs[c].din, lin_cfgs[c].d, v,
                                 1100 + (uint64_t)(10 * c + v), 2000 + 10 * (uint64_t)c);
            hg_test_release(mark);
        }
}

/* A wide layer (1024 x 1024, the widest dim) over 520 rows: the GPU's weight-gradient partial
 * table is capped, so its row chunks hold several float runs (the other cases: one run). */
static void test_linear_backward_wide(void **state)
{
    (void)state;
    REQUIRE_GPU();
    linear_backward_case(520, HG_LORENTZ_MAX_D, HG_LORENTZ_MAX_D, 3, 1190, 2090);
}

/* ---- LorentzLinear backward (sparse input) ---- */

typedef struct {
    int64_t n, din, d;
    int gb;
} lbwd_csr_par;

/* args: t_rowptr, t_col, t_val, gS, z, xt_rowptr, xt_col, xt_val, s, dz, gW, gb, gs */
static void linear_bwd_csr_fn(const hg_kctx *k, op *o)
{
    const lbwd_csr_par *p = o->par;
    hg_k_lorentz_linear_backward_csr(k, F(o, 9), F(o, 10), p->gb ? F(o, 11) : NULL, F(o, 12),
                                     I64(o, 0), I32(o, 1), F(o, 2), F(o, 3), F(o, 4), I64(o, 5),
                                     I32(o, 6), F(o, 7), F(o, 8), p->n, p->din, p->d, NULL);
}

static void test_linear_backward_csr(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24};
    for (int w = 0; w < 3; w++)
        for (int gb = 0; gb < 2; gb++) {
            const int mark = hg_test_mark();
            const int64_t n = LIN_N, d = widths[w], din = CSR_DIN;
            const lbwd_csr_par p = {n, din, d, gb};
            hg_test_layer L;
            hg_test_csr X, Xt;
            layer_setup(&L, din, d, 4000 + 10 * (uint64_t)w);
            hg_test_csr_input(&X, &Xt, LIN_N, CSR_DIN, 4005 + 10 * (uint64_t)w);
            float *z = tf(n * d), *y = tf(n * d), *wt = tf(din * d); /* no bias: the empty rows
                                                                        of X clamp */
            hg_k_lorentz_linear_forward_csr(&CPU, z, y, X.rowptr, X.col, X.val, L.W, wt,
                                            gb ? L.b : NULL, &L.s, n, din, d);
            set_clamp_rows(z, n, d);
            float *gb0 = uniform(d, -1.0f, 1.0f, 4100 + (uint64_t)w), gs0 = -0.625f;
            op o;
            op_init(&o, linear_bwd_csr_fn, &p, "lorentz_linear_backward_csr(d=%lld, gb=%s)",
                    (long long)d, gb ? "given" : "NULL");
            arg_csr(&o, &L.At);
            op_arg(&o, T_F32, ARG_IN, n * d, L.gS);
            op_arg(&o, T_F32, ARG_IN, n * d, z);
            arg_csr(&o, &Xt);
            op_arg(&o, T_F32, ARG_IN, 1, &L.s);
            const int idz = op_arg(&o, T_F32, ARG_OUT, n * d, NULL);
            const int igW = op_arg(&o, T_F32, ARG_OUT, din * d, NULL);
            const int igb = op_arg(&o, T_F32, ARG_OUT, d, gb0);
            const int igs = op_arg(&o, T_F32, ARG_OUT, 1, &gs0);
            res rc, rg;
            run_both(&o, &rc, &rg);
            const hg_test_bwd_in in = {n, din, d, 0, 0.0f, L.s, 0, &L.At, L.gS, z,
                                       hg_test_csr_dense(&X), NULL, NULL, NULL};
            hg_test_bwd_bound B;
            hg_test_bwd_bounds(&B, &in, &gpu_kappa);
            expect_arg_within(&o, idz, &rg, &rc, hg_test_twice(B.dz, n * d), d, "dz");
            expect_arg_within(&o, igW, &rg, &rc, tol_t(hg_test_twice(B.gWt, din * d), din, d),
                              din, "gW");
            check_gb_gs(&o, gb ? igb : -1, igs, &rg, &rc, gb0, gs0, &B, d);
            if (!gb)
                expect_arg_bits(&o, igb, &rg, &rc, "gb buffer (gb NULL: untouched)");
            hg_test_release(mark);
        }
}

/* The dense backward over 0 rows (with test_empty in test_cuda_lorentz.c). */
static void test_linear_backward_empty(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5};
    for (int w = 0; w < 2; w++) {
        const int mark = hg_test_mark();
        const int64_t d = widths[w], din = d;
        op o;
        res rc, rg;
        /* dense backward over 0 rows: gWt (=) 0 (an empty sum), gb and gs unchanged */
        const lbwd_par pb = {0, din, d, 1, 1, 1, 0.5f, 7};
        hg_test_csr At = {0, 0, 0, hg_test_alloc(1, sizeof(int64_t)),
                          hg_test_alloc(1, sizeof(int32_t)), tf(1)};
        float *gb0 = uniform(d, -1.0f, 1.0f, 1700), gs0 = 0.25f, s = 0.7f;
        float *W = uniform(d * din, -0.5f, 0.5f, 1701);
        op_init(&o, linear_bwd_fn, &pb, "lorentz_linear_backward(n=0, d=%lld)", (long long)d);
        arg_csr(&o, &At);
        for (int i = 0; i < 4; i++) /* gS, z, hd, x */
            op_arg(&o, T_F32, ARG_IN, 0, NULL);
        op_arg(&o, T_F32, ARG_IN, d * din, W);
        op_arg(&o, T_F32, ARG_IN, 0, NULL); /* S_prev */
        op_arg(&o, T_F32, ARG_IN, 1, &s);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL); /* gx */
        const int igW = op_arg(&o, T_F32, ARG_OUT, din * d, NULL);
        const int igb = op_arg(&o, T_F32, ARG_OUT, d, gb0);
        const int igs = op_arg(&o, T_F32, ARG_OUT, 1, &gs0);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL); /* dz */
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, igW, &rg, &rc, "gW");
        expect_arg_bits(&o, igb, &rg, &rc, "gb");
        expect_arg_bits(&o, igs, &rg, &rc, "gs");
        hg_test_release(mark);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CUDA_TEST(test_centroid_backward),
        CUDA_TEST(test_linear_forward),
        CUDA_TEST(test_linear_forward_csr),
        CUDA_TEST(test_agg_forward),
        CUDA_TEST(test_linear_backward),
        CUDA_TEST(test_linear_backward_wide),
        CUDA_TEST(test_linear_backward_csr),
        CUDA_TEST(test_linear_backward_empty),
    };
    return cuda_tests_status(cmocka_run_group_tests(tests, group_setup, group_teardown));
}
