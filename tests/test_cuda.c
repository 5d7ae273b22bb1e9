/* test_cuda.c - the CUDA backend against the CPU kernels: the core ops (dense and sparse
 * products, SVD, dropout, ReLU, Adam, vector and row maps). The harness and the tolerances are
 * in test_cuda.h. */
#include "test_cuda.h"

/* ========================================================================================== */
/* library-backed kernels: gemm, csr_spmm, svd */

typedef struct {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
} gemm_par;

static void gemm_fn(const hg_kctx *k, op *o)
{
    const gemm_par *p = o->par;
    o->ret = hg_k_gemm(k, p->ta, p->tb, p->M, p->N, p->K, p->alpha, F(o, 0), p->lda, F(o, 1),
                       p->ldb, p->beta, F(o, 2), p->ldc);
}

/* The bound of a bf16 product (kernels.h, HG_PREC_BF16) beyond the fp32 one: each input rounded
 * to bfloat16 (unit roundoff 2^-8) makes each product term off by at most 2^-7 + 2^-16 of it. */
#define BF16_TERM (0x1p-7 + 0x1p-16)

/* One of the two precisions of the device's products (the CPU's are fp32): every entry within
 * its bound, and, on the emulated device (which rounds exactly as described), bf16 must be seen
 * to round: some entry beyond the fp32 bound. */
static void gemm_case(hg_precision prec)
{
    /* K > HG_K_FLOAT_RUN; leading dimensions padded by 3: the padding must stay untouched */
    const int64_t M = 37, N = 23, K = 70, pad = 3;
    static const float betas[] = {0.0f, 0.25f};
    GPU.precision = prec;
    const int emulated = strncmp(hg_k_device_name(&GPU), "emulated", 8) == 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 2; bi++) {
                const gemm_par p = {ta, tb, M, N, K, (ta ? M : K) + pad, (tb ? K : N) + pad,
                                    N + pad, 1.5f, betas[bi]};
                const int64_t arows = ta ? K : M, brows = tb ? N : K;
                const uint64_t sd = 100 + 10 * (uint64_t)(4 * ta + 2 * tb + bi);
                float *A = uniform(arows * p.lda, -1.0f, 1.0f, sd);
                float *B = uniform(brows * p.ldb, -1.0f, 1.0f, sd + 1);
                float *C0 = uniform(M * p.ldc, -1.0f, 1.0f, sd + 2);
                if (p.beta == 0.0f) /* beta = 0 overwrites (NaN must not propagate) */
                    for (int64_t i = 0; i < M; i++)
                        hg_test_fill_nan(C0 + i * p.ldc, N);
                op o;
                op_init(&o, gemm_fn, &p, "gemm(transA=%d, transB=%d, beta=%g)", ta, tb,
                        (double)p.beta);
                op_arg(&o, T_F32, ARG_IN, arows * p.lda, A);
                op_arg(&o, T_F32, ARG_IN, brows * p.ldb, B);
                const int iC = op_arg(&o, T_F32, ARG_OUT, M * p.ldc, C0);
                res rc, rg;
                run_both(&o, &rc, &rg);
                assert_true(rc.ret == 0.0 && rg.ret == 0.0);
                /* float dot of K terms, the alpha and beta products and the sum: (K + 3) u of
                 * sum|terms| on each side; the padding exactly as it was */
                double *tol = td(M * p.ldc), *tol32 = td(M * p.ldc);
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double mag =
                            p.beta == 0.0f ? 0.0 : fabs((double)p.beta * C0[i * p.ldc + j]);
                        for (int64_t q = 0; q < K; q++) {
                            const double a = ta ? A[q * p.lda + i] : A[i * p.lda + q];
                            const double b = tb ? B[j * p.ldb + q] : B[q * p.ldb + j];
                            mag += fabs((double)p.alpha * a * b);
                        }
                        const int64_t e = i * p.ldc + j;
                        tol32[e] = 2.0 * (double)(K + 3) * U32 * mag;
                        tol[e] = tol32[e];
                        if (prec == HG_PREC_BF16) /* the rounding, with its own sum's errors */
                            tol[e] += BF16_TERM * (1.0 + (double)(K + 3) * U32) * mag;
                    }
                expect_arg_within(&o, iC, &rg, &rc, tol, p.ldc, "C");
                if (prec == HG_PREC_BF16 && emulated) {
                    int64_t beyond = 0;
                    const float *g = rg.h[iC], *c = rc.h[iC];
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < N; j++) {
                            const int64_t e = i * p.ldc + j;
                            beyond += fabs((double)g[e] - c[e]) > tol32[e];
                        }
                    if (!beyond)
                        fail_msg("gemm (bf16): every entry within the fp32 bound: not rounded");
                }
            }
    GPU.precision = HG_PREC_FP32;
}

static void test_gemm(void **state)
{
    (void)state;
    REQUIRE_GPU();
    gemm_case(HG_PREC_FP32);
    gemm_case(HG_PREC_BF16);
    /* sizes beyond the BLAS int are refused */
    float *a = hg_k_alloc(&GPU, 64, "gemm refusal"), *b = hg_k_alloc(&GPU, 64, "gemm refusal"),
          *c = hg_k_alloc(&GPU, 64, "gemm refusal");
    assert_true(a && b && c);
    int rc = hg_k_gemm(&GPU, 0, 0, (int64_t)1 << 40, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1);
    hg_k_free(&GPU, a);
    hg_k_free(&GPU, b);
    hg_k_free(&GPU, c);
    assert_int_equal(rc, -1);
}

typedef struct {
    int64_t nrows, d;
    float beta;
} spmm_par;

static void spmm_fn(const hg_kctx *k, op *o)
{
    const spmm_par *p = o->par;
    hg_k_csr_spmm(k, p->nrows, I64(o, 0), I32(o, 1), F(o, 2), F(o, 3), p->d, p->beta, F(o, 4));
}

static void test_csr_spmm(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 7, 40};
    static const int64_t hubs[] = {5, 60};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    const int64_t nr = 83, nc = 70;
    for (int w = 0; w < 3; w++)
        for (int bi = 0; bi < 3; bi++) {
            const int mark = hg_test_mark();
            const int64_t d = widths[w];
            const spmm_par p = {nr, d, betas[bi]};
            hg_test_csr A;
            hg_test_csr_random(&A, nr, nc, 0.08, hubs, 2, 9, -1.0f, 1.0f, 200 + (uint64_t)w);
            float *X = uniform(nc * d, -1.0f, 1.0f, 210 + (uint64_t)w);
            float *Y0 = uniform(nr * d, -1.0f, 1.0f, 220 + (uint64_t)w);
            if (p.beta == 0.0f)
                hg_test_fill_nan(Y0, nr * d); /* beta = 0 overwrites */
            op o;
            op_init(&o, spmm_fn, &p, "csr_spmm(d=%lld, beta=%g)", (long long)d, (double)p.beta);
            arg_csr(&o, &A);
            op_arg(&o, T_F32, ARG_IN, nc * d, X);
            const int iY = op_arg(&o, T_F32, ARG_OUT, nr * d, Y0);
            res rc, rg;
            run_both(&o, &rc, &rg);
            /* float sums of k_i products plus beta Y: 2 (k_i + 2) u sum|terms| */
            double *tol = td(nr * d);
            for (int64_t i = 0; i < nr; i++) {
                const int64_t ki = A.rowptr[i + 1] - A.rowptr[i];
                for (int64_t c = 0; c < d; c++) {
                    double mag = p.beta == 0.0f ? 0.0 : fabs((double)p.beta * Y0[i * d + c]);
                    for (int64_t q = A.rowptr[i]; q < A.rowptr[i + 1]; q++)
                        mag += fabs((double)A.val[q] * X[(int64_t)A.col[q] * d + c]);
                    tol[i * d + c] = 2.0 * (double)(ki + 2) * U32 * mag;
                }
            }
            expect_arg_within(&o, iY, &rg, &rc, tol, d, "Y");
            hg_test_release(mark);
        }
}

typedef struct {
    int64_t m, n;
} svd_par;

static void svd_fn(const hg_kctx *k, op *o)
{
    const svd_par *p = o->par;
    o->ret = hg_k_svd(k, F(o, 0), F(o, 1), F(o, 2), F(o, 3), p->m, p->n, o->a[4].dev);
}

static int64_t svd_ws(const hg_kctx *k, const op *o)
{
    const svd_par *p = o->par;
    return hg_k_svd_workspace_bytes(k, p->m, p->n);
}

static void test_svd(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t shapes[][2] = {{12, 7}, {7, 12}, {16, 16}, {64, 16}};
    for (int s = 0; s < 4; s++) {
        const int mark = hg_test_mark();
        const svd_par p = {shapes[s][0], shapes[s][1]};
        const int64_t m = p.m, n = p.n, kk = m < n ? m : n, mn = m > n ? m : n;
        float *W = uniform(m * n, -1.0f, 1.0f, 300 + (uint64_t)s);
        op o;
        op_init(&o, svd_fn, &p, "svd(%lld x %lld)", (long long)m, (long long)n);
        op_arg(&o, T_F32, ARG_IN, m * n, W);
        const int iU = op_arg(&o, T_F32, ARG_OUT, kk * m, NULL);
        const int iS = op_arg(&o, T_F32, ARG_OUT, kk, NULL);
        const int iV = op_arg(&o, T_F32, ARG_OUT, kk * n, NULL);
        const int iW = op_arg(&o, T_F32, ARG_SCRATCH, 0, NULL);
        o.a[iW].nbytes = svd_ws;
        assert_true(hg_k_svd_workspace_bytes(&GPU, m, n) >= 0);
        res rc, rg;
        run_both(&o, &rc, &rg);
        assert_int_equal((int)rc.ret, HG_OK);
        assert_int_equal((int)rg.ret, HG_OK);
        const float *Ug = rg.h[iU], *Sg = rg.h[iS], *Vg = rg.h[iV];
        const float *Uc = rc.h[iU], *Sc = rc.h[iS], *Vc = rc.h[iV];
        /* Both SVDs run in double on the same float W: their backward errors (~ max(m, n) ud
         * sigma_1, Weyl) are negligible; what remains is the rounding of each output to float.
         * sigma: 2u sigma_i (+ 32 max(m, n) ud sigma_1 for the double part). */
        const double s1 = Sc[0], dbl = 32.0 * (double)mn * UD * s1;
        double *tol = td(kk);
        for (int64_t i = 0; i < kk; i++) {
            tol[i] = 2.0 * U32 * Sc[i] + dbl;
            if (i > 0 && !(Sg[i] <= Sg[i - 1]))
                fail_msg("%s: gpu sigma not descending at %lld: %.9g > %.9g", o.label,
                         (long long)i, (double)Sg[i], (double)Sg[i - 1]);
        }
        expect_arg_within(&o, iS, &rg, &rc, tol, kk, "sigma");
        /* The GPU's reconstruction Ut^T diag(sigma) Vt (in double) against W: each of the k terms
         * carries the roundings of its three factors (3u relative): within
         * 3u sum_i |U_ai| sigma_i |V_ib| + the double part; allow twice that. */
        double *R = td(m * n), *Wd = f2d(W, m * n), *tr = td(m * n);
        for (int64_t a = 0; a < m; a++)
            for (int64_t b = 0; b < n; b++) {
                double r = 0.0, mag = 0.0;
                for (int64_t i = 0; i < kk; i++) {
                    const double t = (double)Ug[i * m + a] * Sg[i] * Vg[i * n + b];
                    r += t;
                    mag += fabs(t);
                }
                R[a * n + b] = r;
                tr[a * n + b] = 6.0 * U32 * mag + 2.0 * dbl;
            }
        expect_within(o.label, "gpu Ut^T diag(sigma) Vt vs W", R, Wd, tr, m * n, n);
        /* Singular vectors up to sign (one sign per triplet, the same for U_i and V_i): the double
         * vectors differ by ~ backward error / gap_i (gap to the neighbouring singular values, and
         * to 0 when m != n), then each side rounds (u |x| each). */
        double *ug = td(kk * m), *uc = td(kk * m), *tu = td(kk * m);
        double *vg = td(kk * n), *vc = td(kk * n), *tv = td(kk * n);
        for (int64_t i = 0; i < kk; i++) {
            double gap = INFINITY;
            if (i > 0)
                gap = fmin(gap, (double)Sc[i - 1] - Sc[i]);
            if (i + 1 < kk)
                gap = fmin(gap, (double)Sc[i] - Sc[i + 1]);
            if (m != n)
                gap = fmin(gap, (double)Sc[i]);
            assert_true(gap > 1e-3 * s1); /* random W: well separated */
            double dot = 0.0;
            for (int64_t a = 0; a < m; a++)
                dot += (double)Ug[i * m + a] * Uc[i * m + a];
            const double sg = dot < 0.0 ? -1.0 : 1.0, vt = 2.0 * dbl / gap;
            for (int64_t a = 0; a < m; a++) {
                ug[i * m + a] = Ug[i * m + a];
                uc[i * m + a] = sg * Uc[i * m + a];
                tu[i * m + a] = 3.0 * U32 * fabs((double)Uc[i * m + a]) + vt;
            }
            for (int64_t b = 0; b < n; b++) {
                vg[i * n + b] = Vg[i * n + b];
                vc[i * n + b] = sg * Vc[i * n + b];
                tv[i * n + b] = 3.0 * U32 * fabs((double)Vc[i * n + b]) + vt;
            }
        }
        expect_within(o.label, "Ut rows (up to sign)", ug, uc, tu, kk * m, m);
        expect_within(o.label, "Vt rows (same sign as Ut's)", vg, vc, tv, kk * n, n);
        hg_test_release(mark);
    }
}

/* ========================================================================================== */
/* element-wise and reduction kernels */

typedef struct {
    int64_t n;
    float p;
    uint64_t seed;
    int inplace;
} dropout_par;

static void dropout_fn(const hg_kctx *k, op *o)
{
    const dropout_par *p = o->par;
    if (p->inplace)
        hg_k_dropout(k, F(o, 0), F(o, 0), p->n, p->p, p->seed, 0);
    else
        hg_k_dropout(k, F(o, 1), F(o, 0), p->n, p->p, p->seed, 0);
}

static void test_dropout(void **state)
{
    (void)state;
    REQUIRE_GPU();
    const int64_t n = 100003; /* not a multiple of any block */
    float *in = uniform(n, 0.5f, 1.5f, 400);
    static const float ps[] = {0.0f, 0.5f, 0.3f};
    static const uint64_t seeds[] = {1234, 0xdeadbeefULL};
    for (int pi = 0; pi < 3; pi++)
        for (int si = 0; si < 2; si++)
            for (int inplace = 0; inplace < 2; inplace++) {
                const int mark = hg_test_mark();
                const dropout_par p = {n, ps[pi], seeds[si], inplace};
                op o;
                op_init(&o, dropout_fn, &p, "dropout(p=%g, seed=%llu%s)", (double)p.p,
                        (unsigned long long)p.seed, inplace ? ", in place" : "");
                int iout;
                if (inplace) {
                    iout = op_arg(&o, T_F32, ARG_OUT, n, in);
                } else {
                    op_arg(&o, T_F32, ARG_IN, n, in);
                    iout = op_arg(&o, T_F32, ARG_OUT, n, NULL);
                }
                res rc, rg;
                run_both(&o, &rc, &rg);
                /* the same hash of (seed, i), the same multiply: the same bits */
                expect_arg_bits(&o, iout, &rg, &rc, "out");
                hg_test_release(mark);
            }
}

typedef struct {
    int64_t n;
    int bwd, inplace;
} relu_par;

static void relu_fn(const hg_kctx *k, op *o)
{
    const relu_par *p = o->par;
    if (!p->bwd)
        hg_k_relu_forward(k, p->inplace ? F(o, 0) : F(o, 1), F(o, 0), p->n);
    else /* args: x, dy, dx (in place: x, dx = dy) */
        hg_k_relu_backward(k, p->inplace ? F(o, 1) : F(o, 2), F(o, 1), F(o, 0), p->n);
}

static void test_relu(void **state)
{
    (void)state;
    REQUIRE_GPU();
    const int64_t n = 5003;
    float *x = uniform(n, -1.0f, 1.0f, 410), *dy = uniform(n, -1.0f, 1.0f, 411);
    static const float special[] = {-0.0f, 0.0f, 1e-30f, -1e-30f, FLT_MAX, -FLT_MAX, 1e-45f};
    for (int i = 0; i < 7; i++)
        x[100 * i + 7] = special[i];
    for (int bwd = 0; bwd < 2; bwd++)
        for (int inplace = 0; inplace < 2; inplace++) {
            const int mark = hg_test_mark();
            const relu_par p = {n, bwd, inplace};
            op o;
            op_init(&o, relu_fn, &p, "relu_%s(%s)", bwd ? "backward" : "forward",
                    inplace ? "in place" : "out of place");
            int iout;
            if (!bwd) {
                iout = op_arg(&o, T_F32, inplace ? ARG_OUT : ARG_IN, n, x);
                if (!inplace)
                    iout = op_arg(&o, T_F32, ARG_OUT, n, NULL);
            } else {
                op_arg(&o, T_F32, ARG_IN, n, x);
                iout = op_arg(&o, T_F32, inplace ? ARG_OUT : ARG_IN, n, dy);
                if (!inplace)
                    iout = op_arg(&o, T_F32, ARG_OUT, n, NULL);
            }
            res rc, rg;
            run_both(&o, &rc, &rg);
            expect_arg_bits(&o, iout, &rg, &rc, bwd ? "dx" : "y");
            hg_test_release(mark);
        }
}

typedef struct {
    int64_t n, T;
    float lr, b1, b2, eps, dwd, l2;
} adam_par;

/* T steps, step t with the gradient rows G[t-1]. args: p, G, m, v. */
static void adam_fn(const hg_kctx *k, op *o)
{
    const adam_par *p = o->par;
    for (int64_t t = 1; t <= p->T; t++)
        hg_k_adam_step(k, F(o, 0), F(o, 1) + (t - 1) * p->n, F(o, 2), F(o, 3), p->n, p->lr, p->b1,
                       p->b2, p->eps, p->dwd, p->l2, t);
}

static void test_adam(void **state)
{
    (void)state;
    REQUIRE_GPU();
    const int64_t n = 1000, T = 5;
    /* (decoupled_wd, l2_wd): Adam, AdamW, Adam with L2 weight decay */
    static const float wds[3][2] = {{0.0f, 0.0f}, {0.1f, 0.0f}, {0.0f, 0.1f}};
    for (int variant = 0; variant < 3; variant++) {
        const int mark = hg_test_mark();
        const adam_par p = {n, T, 1e-2f, 0.9f, 0.999f, 1e-8f, wds[variant][0], wds[variant][1]};
        float *p0 = uniform(n, -2.0f, 2.0f, 420), *G = tf(T * n);
        for (int64_t t = 0; t < T; t++) {
            hg_test_fill_uniform(G + t * n, (size_t)n, -1.0f, 1.0f, 430 + (uint64_t)t);
            G[t * n] = 0.0f;                       /* never a gradient: p0 stays (variant 0) */
            G[t * n + 1] = 1e-6f * (float)(t + 1); /* tiny gradients: eps matters */
        }
        op o;
        op_init(&o, adam_fn, &p, "adam_step(decoupled_wd=%g, l2_wd=%g, %lld steps)",
                (double)p.dwd, (double)p.l2, (long long)T);
        const int ip = op_arg(&o, T_F32, ARG_OUT, n, p0);
        op_arg(&o, T_F32, ARG_IN, T * n, G);
        const int im = op_arg(&o, T_F32, ARG_OUT, n, tf(n));
        const int iv = op_arg(&o, T_F32, ARG_OUT, n, tf(n));
        res rc, rg;
        run_both(&o, &rc, &rg);
        /* magnitudes from torch's semantics in double (test_kernels.c's test_adam): each step
         * rounds ~10 float operations; after T steps each side is within T (u pmax + 8u lr umax)
         * of exact in p and within 4u T of the magnitudes of m and v: tol twice that. */
        double pmax = 0.0, umax = 0.0, mm = 0.0, vm = 0.0;
        double *P = f2d(p0, n), *M = td(n), *V = td(n);
        for (int64_t t = 1; t <= T; t++) {
            const double bc1 = 1.0 - pow((double)p.b1, (double)t);
            const double bc2 = 1.0 - pow((double)p.b2, (double)t);
            for (int64_t i = 0; i < n; i++) {
                double gi = (double)G[(t - 1) * n + i] + (double)p.l2 * P[i];
                P[i] *= 1.0 - (double)p.lr * p.dwd;
                M[i] = p.b1 * M[i] + (1.0 - p.b1) * gi;
                V[i] = p.b2 * V[i] + (1.0 - p.b2) * gi * gi;
                double u = (M[i] / bc1) / (sqrt(V[i]) / sqrt(bc2) + p.eps);
                P[i] -= p.lr * u;
                umax = fmax(umax, fabs(u));
                pmax = fmax(pmax, fabs(P[i]));
                mm = fmax(mm, fabs(M[i]));
                vm = fmax(vm, V[i]);
            }
        }
        double *tp = td(n), *tm = td(n), *tv = td(n);
        for (int64_t i = 0; i < n; i++) {
            tp[i] = 4.0 * (double)T * U32 * (pmax + 8.0 * p.lr * umax);
            tm[i] = 16.0 * (double)T * U32 * mm;
            tv[i] = 16.0 * (double)T * U32 * vm;
        }
        expect_arg_within(&o, ip, &rg, &rc, tp, n, "p");
        expect_arg_within(&o, im, &rg, &rc, tm, n, "m");
        expect_arg_within(&o, iv, &rg, &rc, tv, n, "v");
        if (variant == 0)
            assert_true(((float *)rg.h[ip])[0] == p0[0]);
        hg_test_release(mark);
    }
}

/* ---- sqnorm, scale, axpy, normalize, all_finite (one float array x and maybe y) ---- */

typedef struct {
    int64_t n;
    float a;
    double min_norm;
} vec_par;

static void sqnorm_fn(const hg_kctx *k, op *o)
{
    o->ret = hg_k_sqnorm(k, F(o, 0), ((const vec_par *)o->par)->n);
}
static void scale_fn(const hg_kctx *k, op *o)
{
    const vec_par *p = o->par;
    hg_k_scale(k, F(o, 0), p->a, p->n);
}
static void axpy_fn(const hg_kctx *k, op *o) /* args: y, x */
{
    const vec_par *p = o->par;
    hg_k_axpy(k, F(o, 0), p->a, F(o, 1), p->n);
}
static void normalize_fn(const hg_kctx *k, op *o)
{
    const vec_par *p = o->par;
    hg_k_normalize(k, F(o, 0), p->n, p->min_norm);
}
static void all_finite_fn(const hg_kctx *k, op *o)
{
    o->ret = hg_k_all_finite(k, F(o, 0), ((const vec_par *)o->par)->n);
}

static const int64_t vec_sizes[] = {1, 15, 1000, 100003};
#define NVEC 4

static void test_sqnorm_scale(void **state)
{
    (void)state;
    REQUIRE_GPU();
    for (int s = 0; s < NVEC; s++) {
        const int mark = hg_test_mark();
        const vec_par p = {vec_sizes[s], 0.37f, 0.0};
        float *x = uniform(p.n, -2.0f, 2.0f, 440 + (uint64_t)s);
        op o;
        op_init(&o, sqnorm_fn, &p, "sqnorm(n=%lld)", (long long)p.n);
        op_arg(&o, T_F32, ARG_IN, p.n, x);
        res rc, rg;
        run_both(&o, &rc, &rg);
        /* exact squares summed in double in any order: 2 n ud of the (positive) sum */
        expect_scalar(&o, rg.ret, rc.ret, 2.0 * (double)p.n * UD * rc.ret, "sum of squares");

        op_init(&o, scale_fn, &p, "scale(n=%lld)", (long long)p.n);
        const int ix = op_arg(&o, T_F32, ARG_OUT, p.n, x);
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, ix, &rg, &rc, "x * a"); /* one multiply */
        hg_test_release(mark);
    }
    /* n = 0: 0, nothing read */
    float *x = hg_k_alloc(&GPU, 64, "sqnorm n = 0");
    assert_non_null(x);
    double s0 = hg_k_sqnorm(&GPU, x, 0);
    hg_k_free(&GPU, x);
    assert_true(s0 == 0.0);
}

static void test_axpy(void **state)
{
    (void)state;
    REQUIRE_GPU();
    for (int s = 0; s < NVEC; s++) {
        const int mark = hg_test_mark();
        const vec_par p = {vec_sizes[s], -0.75f, 0.0};
        float *y = uniform(p.n, -1.0f, 1.0f, 450 + (uint64_t)s);
        float *x = uniform(p.n, -1.0f, 1.0f, 460 + (uint64_t)s);
        op o;
        op_init(&o, axpy_fn, &p, "axpy(n=%lld)", (long long)p.n);
        const int iy = op_arg(&o, T_F32, ARG_OUT, p.n, y);
        op_arg(&o, T_F32, ARG_IN, p.n, x);
        res rc, rg;
        run_both(&o, &rc, &rg);
        /* y + a x: a multiply and an add (or one fma): within 2u (|y| + |a x|) on each side */
        double *tol = td(p.n);
        for (int64_t i = 0; i < p.n; i++)
            tol[i] = 4.0 * U32 * (fabs((double)y[i]) + fabs((double)p.a * x[i]));
        expect_arg_within(&o, iy, &rg, &rc, tol, p.n, "y");
        hg_test_release(mark);
    }
}

static void test_normalize(void **state)
{
    (void)state;
    REQUIRE_GPU();
    for (int s = 0; s < NVEC + 2; s++) {
        const int mark = hg_test_mark();
        /* s < NVEC: normalised (the norm in double in any order, inv = 1/|x| rounded to float: at
         * most one float ulp apart, then one multiply: within 2u |x_i| on each side);
         * NVEC: |x| ~ 3e-8 <= min_norm: untouched; NVEC + 1: min_norm 0 */
        const int64_t n = s < NVEC ? vec_sizes[s] : 10;
        const vec_par p = {n, 0.0f, s == NVEC + 1 ? 0.0 : 1e-6};
        float *x = uniform(n, -1.0f, 1.0f, 470 + (uint64_t)s);
        if (s >= NVEC)
            for (int64_t i = 0; i < n; i++)
                x[i] *= 1e-8f;
        op o;
        op_init(&o, normalize_fn, &p, "normalize(n=%lld, min_norm=%g)", (long long)n, p.min_norm);
        const int ix = op_arg(&o, T_F32, ARG_OUT, n, x);
        res rc, rg;
        run_both(&o, &rc, &rg);
        if (s == NVEC) {
            expect_arg_bits(&o, ix, &rg, &rc, "x (untouched)");
            assert_memory_equal(rg.h[ix], x, (size_t)n * sizeof *x);
        } else {
            expect_arg_within(&o, ix, &rg, &rc, tol_rel(as_d(&o, &rc, ix), n, 4.0), n, "x / |x|");
        }
        hg_test_release(mark);
    }
}

static void test_all_finite(void **state)
{
    (void)state;
    REQUIRE_GPU();
    const int64_t n = 100003;
    /* where a non-finite value sits (-1: nowhere) and which one */
    static const struct {
        int64_t at;
        float v;
    } cases[] = {{-1, 0.0f}, {0, NAN}, {100002, INFINITY}, {50001, -INFINITY}, {70000, NAN}};
    for (int c = 0; c < 5; c++)
        for (int small = 0; small < 2; small++) {
            const int mark = hg_test_mark();
            const int64_t len = small ? 1 : n;
            const int64_t at = small ? (cases[c].at >= 0 ? 0 : -1) : cases[c].at;
            const vec_par p = {len, 0.0f, 0.0};
            float *x = uniform(len, -1e30f, 1e30f, 480 + (uint64_t)c);
            if (at >= 0)
                x[at] = cases[c].v;
            op o;
            op_init(&o, all_finite_fn, &p, "all_finite(n=%lld, non-finite at %lld)",
                    (long long)len, (long long)at);
            op_arg(&o, T_F32, ARG_IN, len, x);
            res rc, rg;
            run_both(&o, &rc, &rg);
            assert_true(rc.ret == (at < 0 ? 1.0 : 0.0));
            expect_scalar(&o, rg.ret, rc.ret, 0.0, "all finite");
            hg_test_release(mark);
        }
}

/* ---- transpose, transpose_d2f, gather, scale_rows, row_dots, clamp_min ---- */

typedef struct {
    int64_t rows, cols;
    float lo;
    int inplace;
} mat_par;

static void transpose_fn(const hg_kctx *k, op *o)
{
    const mat_par *p = o->par;
    hg_k_transpose(k, F(o, 1), F(o, 0), p->rows, p->cols);
}
static void transpose_d2f_fn(const hg_kctx *k, op *o)
{
    const mat_par *p = o->par;
    hg_k_transpose_d2f(k, F(o, 1), D(o, 0), p->rows, p->cols);
}
static void gather_fn(const hg_kctx *k, op *o) /* args: src, idx, dst; rows = n */
{
    const mat_par *p = o->par;
    hg_k_gather(k, F(o, 2), F(o, 0), I64(o, 1), p->rows);
}
static void scale_rows_fn(const hg_kctx *k, op *o) /* args: s, src, dst (in place: s, src) */
{
    const mat_par *p = o->par;
    hg_k_scale_rows(k, p->inplace ? F(o, 1) : F(o, 2), F(o, 0), F(o, 1), p->rows, p->cols);
}
static void row_dots_fn(const hg_kctx *k, op *o) /* args: A, B, out */
{
    const mat_par *p = o->par;
    hg_k_row_dots(k, F(o, 2), F(o, 0), F(o, 1), p->rows, p->cols);
}
static void clamp_min_fn(const hg_kctx *k, op *o)
{
    const mat_par *p = o->par;
    hg_k_clamp_min(k, F(o, 0), p->lo, p->rows);
}

static const int64_t mat_shapes[][2] = {{37, 53}, {1, 300}, {300, 1}, {16, 16}};

static void test_transpose_gather(void **state)
{
    (void)state;
    REQUIRE_GPU();
    for (int s = 0; s < 4; s++) {
        const int mark = hg_test_mark();
        const mat_par p = {mat_shapes[s][0], mat_shapes[s][1], 0.0f, 0};
        const int64_t rc_ = p.rows * p.cols;
        float *src = uniform(rc_, -1.0f, 1.0f, 500 + (uint64_t)s);
        double *srcd = td(rc_);
        hg_rng g;
        hg_rng_seed(&g, 510 + (uint64_t)s);
        for (int64_t i = 0; i < rc_; i++) /* doubles that need rounding, some beyond float range */
            srcd[i] = i % 97 == 3 ? 1e300 : 1e3 * hg_rng_normal(&g);
        op o;
        res rc, rg;
        op_init(&o, transpose_fn, &p, "transpose(%lld x %lld)", (long long)p.rows,
                (long long)p.cols);
        op_arg(&o, T_F32, ARG_IN, rc_, src);
        int iout = op_arg(&o, T_F32, ARG_OUT, rc_, NULL);
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, iout, &rg, &rc, "dst");

        op_init(&o, transpose_d2f_fn, &p, "transpose_d2f(%lld x %lld)", (long long)p.rows,
                (long long)p.cols);
        op_arg(&o, T_F64, ARG_IN, rc_, srcd);
        iout = op_arg(&o, T_F32, ARG_OUT, rc_, NULL);
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, iout, &rg, &rc, "dst"); /* one correctly rounded conversion */
        hg_test_release(mark);
    }
    /* gather with repeated and out-of-order indices */
    const int64_t nsrc = 1000, n = 777;
    const mat_par p = {n, 1, 0.0f, 0};
    float *src = uniform(nsrc, -1.0f, 1.0f, 520);
    int64_t *idx = hg_test_alloc(n, sizeof *idx);
    hg_rng g;
    hg_rng_seed(&g, 521);
    for (int64_t i = 0; i < n; i++)
        idx[i] = (int64_t)hg_rng_below(&g, (uint64_t)nsrc);
    idx[0] = nsrc - 1;
    op o;
    res rc, rg;
    op_init(&o, gather_fn, &p, "gather(n=%lld)", (long long)n);
    op_arg(&o, T_F32, ARG_IN, nsrc, src);
    op_arg(&o, T_I64, ARG_IN, n, idx);
    const int iout = op_arg(&o, T_F32, ARG_OUT, n, NULL);
    run_both(&o, &rc, &rg);
    expect_arg_bits(&o, iout, &rg, &rc, "dst");
}

static void test_scale_rows_row_dots(void **state)
{
    (void)state;
    REQUIRE_GPU();
    for (int s = 0; s < 4; s++)
        for (int inplace = 0; inplace < 2; inplace++) {
            const int mark = hg_test_mark();
            const mat_par p = {mat_shapes[s][0], mat_shapes[s][1], 0.0f, inplace};
            const int64_t n = p.rows * p.cols;
            float *sv = uniform(p.rows, -2.0f, 2.0f, 530 + (uint64_t)s);
            float *src = uniform(n, -1.0f, 1.0f, 540 + (uint64_t)s);
            op o;
            res rc, rg;
            op_init(&o, scale_rows_fn, &p, "scale_rows(%lld x %lld%s)", (long long)p.rows,
                    (long long)p.cols, inplace ? ", in place" : "");
            op_arg(&o, T_F32, ARG_IN, p.rows, sv);
            int iout = op_arg(&o, T_F32, inplace ? ARG_OUT : ARG_IN, n, src);
            if (!inplace)
                iout = op_arg(&o, T_F32, ARG_OUT, n, NULL);
            run_both(&o, &rc, &rg);
            expect_arg_bits(&o, iout, &rg, &rc, "dst"); /* one multiply */
            if (inplace) {
                hg_test_release(mark);
                continue;
            }

            float *B = uniform(n, -1.0f, 1.0f, 550 + (uint64_t)s);
            float *out0 = uniform(p.rows, -1.0f, 1.0f, 560 + (uint64_t)s);
            op_init(&o, row_dots_fn, &p, "row_dots(%lld x %lld)", (long long)p.rows,
                    (long long)p.cols);
            op_arg(&o, T_F32, ARG_IN, n, src);
            op_arg(&o, T_F32, ARG_IN, n, B);
            iout = op_arg(&o, T_F32, ARG_OUT, p.rows, out0);
            run_both(&o, &rc, &rg);
            /* a double dot (cols ud, negligible), rounded to float (u |dot|) and added (u of the
             * sum): within 2u (|out0| + sum|terms|) on each side */
            double *tol = td(p.rows);
            for (int64_t i = 0; i < p.rows; i++) {
                double mag = fabs((double)out0[i]);
                for (int64_t j = 0; j < p.cols; j++)
                    mag += fabs((double)src[i * p.cols + j] * B[i * p.cols + j]);
                tol[i] = 4.0 * U32 * mag;
            }
            expect_arg_within(&o, iout, &rg, &rc, tol, 1, "out");
            hg_test_release(mark);
        }
}

static void test_clamp_min(void **state)
{
    (void)state;
    REQUIRE_GPU();
    const int64_t n = 10007;
    const mat_par p = {n, 1, 0.1f, 0};
    float *x = uniform(n, -1.0f, 1.0f, 570);
    x[3] = NAN; /* stays NaN */
    x[4] = 0.1f;
    x[5] = -INFINITY;
    x[6] = INFINITY;
    x[n - 1] = -NAN;
    op o;
    res rc, rg;
    op_init(&o, clamp_min_fn, &p, "clamp_min(n=%lld)", (long long)n);
    const int ix = op_arg(&o, T_F32, ARG_OUT, n, x);
    run_both(&o, &rc, &rg);
    expect_arg_bits(&o, ix, &rg, &rc, "x");
    assert_true(isnan(((float *)rg.h[ix])[3]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CUDA_TEST(test_gemm),
        CUDA_TEST(test_csr_spmm),
        CUDA_TEST(test_svd),
        CUDA_TEST(test_dropout),
        CUDA_TEST(test_relu),
        CUDA_TEST(test_adam),
        CUDA_TEST(test_sqnorm_scale),
        CUDA_TEST(test_axpy),
        CUDA_TEST(test_normalize),
        CUDA_TEST(test_all_finite),
        CUDA_TEST(test_transpose_gather),
        CUDA_TEST(test_scale_rows_row_dots),
        CUDA_TEST(test_clamp_min),
    };
    return cuda_tests_status(cmocka_run_group_tests(tests, group_setup, group_teardown));
}
