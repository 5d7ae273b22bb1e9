/* test_cuda.c - the CUDA backend against the CPU kernels. Every hg_cu_* twin of an hg_k_* kernel
 * (kernels/cuda.h) runs on the same seeded random inputs on a CPU context and on a CUDA context
 * (arrays made with hg_k_alloc/hg_k_upload, results brought back with hg_k_download), and the
 * results are compared. Built twice (tests/meson.build): against the real backend, where every
 * test skips without a GPU, and against the emulated one (tests/cuda_emu.h: kernel launches run
 * on the CPU, the library calls are replaced by the CPU kernels), which runs everywhere.
 *
 * Every GPU op runs twice on identical inputs: the outputs (and scalar results) must be bitwise
 * identical (determinism: fixed reduction orders, no atomics), the second call must make no
 * device allocation (hg_k_device_allocs unchanged: scratch grows on a first call only), and the
 * inputs must come back unchanged. Outputs documented (=) start as NaN (a slot left unwritten
 * fails); (+=) ones start at random values.
 *
 * Inputs are built as in tests/test_kernels.c, by the same builders (testutil.h): points on the
 * hyperboloid (expmap0 of random directions), aggregates as positive combinations of points
 * (timelike; every 9th row empty), CSR matrices with empty rows, empty columns and hub
 * rows/columns longer than HG_K_FLOAT_RUN, 83 rows (5 blocks of 16 and a partial one), widths 16
 * (the CPU's vector paths) and others.
 *
 * Tolerances. u = 2^-24 (unit roundoff of float32), ud = 2^-53 (double). tol_i is per element.
 *  - Exact ops (copies, gathers, transposes, dropout, relu, clamp, one multiply per element, the
 *    conversion double -> float, integer results): bitwise equal.
 *  - A sum of k float terms, in any order, is within gamma_k ~ k u sum|terms| of the exact value
 *    (float runs added into double only do better), so two implementations differ by at most
 *    2 (k + c) u sum|terms|, c counting the roundings around the sum (scaling, bias, store).
 *    sum|terms| is computed per element on the host in double. Sums in double: 2 k ud sum|terms|
 *    (plus 2u |result| when the result is stored as float).
 *  - Lorentz maps: the CPU's per-element relative errors kappa u per path are derived in
 *    test_kernels.c (head: 2 generic, 64 on the 16-wide float path; centroid: 2 generic,
 *    8.5 rho + 3 16-wide). The GPU may take a float path at any width; it is allowed the float
 *    path's kappa with the 16-term sums generalised to d terms. Forward kernels return their
 *    stages (hd, z, y; S, out): each stage is compared on the GPU's own input of that stage
 *    through the CPU reference map, so no conditioning of a later map enters.
 *  - The fused backward kernels return no intermediate: their bound is the first-order error
 *    chain E of test_kernels.c (bwd_reference), each stage with the float path's kappa at width
 *    d (>= the CPU's on either path). CPU and GPU are each within E of the exact result:
 *    tol = 2E.
 *  - The steps that run in double (Adam's bias corrections, the Riemannian step, stabilisation,
 *    SVD) differ by their final float roundings; their tolerances allow a float evaluation of
 *    their d-term inner products as well (see each test).
 * Every bound is derived for its kernel next to its check. On failure: the count, the worst
 * element (index, row, column, both values, |diff|, tol). TEST_CUDA_VERBOSE=1 prints every
 * comparison's worst |diff| / tol (how close to its bound each comes). */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/backend.h"
#include "../kernels/kernels.h"
#include "../src/hg.h"
#include "../src/rng.h"


#define U32 (0.5 * (double)FLT_EPSILON) /* 2^-24 */
#define UD (0.5 * DBL_EPSILON)          /* 2^-53 */

static hg_kctx CPU, GPU;
static int have_gpu;
static int verbose; /* TEST_CUDA_VERBOSE set: print each comparison's worst |diff| / tol */

#define REQUIRE_GPU()      \
    do {                   \
        if (!have_gpu)     \
            skip();        \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* host scratch of the running test (testutil.h), freed by the teardown (also after a failure);
 * the iterations of a test's loops free theirs with hg_test_mark / hg_test_release */

#define tf hg_test_floats
#define td hg_test_doubles
#define f2d hg_test_f2d
#define uniform hg_test_uniform

/* device (or CPU-context) blocks of the running op, freed by run_op or the teardown */
#define DEV_MAX 64
static struct {
    const hg_kctx *k;
    void *p;
} dev_live[DEV_MAX];
static int dev_n;

static void dev_free_all(void)
{
    for (int i = 0; i < dev_n; i++)
        hg_k_free(dev_live[i].k, dev_live[i].p);
    dev_n = 0;
}

static int teardown(void **state)
{
    (void)state;
    dev_free_all();
    hg_test_free_all();
    return 0;
}

static float *fcopy(const float *x, int64_t n)
{
    float *c = tf(n);
    memcpy(c, x, (size_t)n * sizeof *c);
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* One op: its arguments (host contents before the call, element type, role) and a function
 * calling the kernel on a context with the arguments' blocks in that context's memory. */

enum { T_F32, T_F64, T_I32, T_I64 };
enum { ARG_IN, ARG_OUT, ARG_SCRATCH };

static size_t type_size(int t) { return t == T_F64 || t == T_I64 ? 8 : 4; }

#define MAXARGS 20

typedef struct op op;
typedef struct {
    int type, role;
    int64_t n;                                       /* elements */
    const void *init;                                /* NULL: all bits set (NaN for floats) */
    int64_t (*nbytes)(const hg_kctx *k, const op *o); /* scratch sized per context, or NULL */
    void *dev;                                       /* the block during a run */
} arg;

struct op {
    char label[160];
    const void *par; /* the case's parameters, read by fn */
    void (*fn)(const hg_kctx *k, op *o);
    int na;
    arg a[MAXARGS];
    double ret; /* the kernel's scalar result, if any */
};

typedef struct {
    void *h[MAXARGS]; /* host copies of every argument after the call */
    double ret;
} res;

static void op_init(op *o, void (*fn)(const hg_kctx *, op *), const void *par, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void op_init(op *o, void (*fn)(const hg_kctx *, op *), const void *par, const char *fmt, ...)
{
    memset(o, 0, sizeof *o);
    o->fn = fn;
    o->par = par;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->label, sizeof o->label, fmt, ap);
    va_end(ap);
}

static int op_arg(op *o, int type, int role, int64_t n, const void *init)
{
    assert_true(o->na < MAXARGS);
    arg *a = &o->a[o->na];
    a->type = type;
    a->role = role;
    a->n = n;
    a->init = init;
    return o->na++;
}

#define F(o, i) ((float *)(o)->a[i].dev)
#define D(o, i) ((double *)(o)->a[i].dev)
#define I32(o, i) ((int32_t *)(o)->a[i].dev)
#define I64(o, i) ((int64_t *)(o)->a[i].dev)

static size_t arg_bytes(const hg_kctx *k, const op *o, const arg *a)
{
    if (a->nbytes) {
        int64_t b = a->nbytes(k, o);
        assert_true(b >= 0);
        return (size_t)b;
    }
    return (size_t)a->n * type_size(a->type);
}

static void upload_args(const hg_kctx *k, op *o)
{
    for (int i = 0; i < o->na; i++) {
        arg *a = &o->a[i];
        if (a->role == ARG_SCRATCH)
            continue;
        const size_t b = arg_bytes(k, o, a);
        if (!b)
            continue;
        if (a->init) {
            hg_k_upload(k, a->dev, a->init, b);
        } else {
            void *nan = hg_test_alloc((int64_t)b, 1);
            memset(nan, 0xff, b);
            hg_k_upload(k, a->dev, nan, b);
        }
    }
}

static void call_synced(const hg_kctx *k, op *o)
{
    o->ret = 0.0;
    o->fn(k, o);
    if (hg_k_sync(k) != HG_OK)
        fail_msg("%s on %s: hg_k_sync failed: %s", o->label, hg_k_device_name(k),
                 hg_last_error());
}

/* First element where two copies of argument a differ (-1: none), and how many differ. */
static int64_t first_diff(const arg *a, const void *x, const void *y, int64_t *count)
{
    const size_t s = type_size(a->type);
    int64_t first = -1;
    *count = 0;
    for (int64_t i = 0; i < a->n; i++)
        if (memcmp((const char *)x + i * s, (const char *)y + i * s, s)) {
            if (first < 0)
                first = i;
            (*count)++;
        }
    return first;
}

static double elem(const arg *a, const void *h, int64_t i)
{
    switch (a->type) {
    case T_F32: return ((const float *)h)[i];
    case T_F64: return ((const double *)h)[i];
    case T_I32: return ((const int32_t *)h)[i];
    default: return (double)((const int64_t *)h)[i];
    }
}

static int64_t nallocs(const hg_kctx *k)
{
    return hg_k_device_allocs(k);
}

/* Runs o on k: allocate, upload, call, download into r. On the GPU the call is repeated on the
 * re-uploaded inputs: same bits, no new device allocation, inputs unchanged. */
static void run_op(const hg_kctx *k, op *o, res *r)
{
    const int gpu = k->device == HG_DEVICE_CUDA;
    const char *dev = gpu ? "gpu" : "cpu";
    assert_int_equal(dev_n, 0);
    for (int i = 0; i < o->na; i++) {
        const size_t b = arg_bytes(k, o, &o->a[i]);
        o->a[i].dev = hg_k_alloc(k, b ? b : 1, "test_cuda argument");
        if (!o->a[i].dev)
            fail_msg("%s: hg_k_alloc(%zu) on %s failed: %s", o->label, b, dev, hg_last_error());
        dev_live[dev_n].k = k;
        dev_live[dev_n++].p = o->a[i].dev;
    }
    upload_args(k, o);
    call_synced(k, o);
    r->ret = o->ret;
    for (int i = 0; i < o->na; i++) {
        const size_t b = arg_bytes(k, o, &o->a[i]);
        r->h[i] = hg_test_alloc((int64_t)(b ? b : 1), 1);
        if (o->a[i].role != ARG_SCRATCH)
            hg_k_download(k, r->h[i], o->a[i].dev, b);
    }
    if (gpu) {
        const int64_t a0 = nallocs(k);
        upload_args(k, o);
        call_synced(k, o);
        const int64_t a1 = nallocs(k);
        if (a1 != a0)
            fail_msg("%s: the second identical GPU call made %lld new device allocation(s)",
                     o->label, (long long)(a1 - a0));
        if (memcmp(&o->ret, &r->ret, sizeof r->ret))
            fail_msg("%s: GPU scalar result not deterministic: %.17g then %.17g", o->label,
                     r->ret, o->ret);
        for (int i = 0; i < o->na; i++) {
            const arg *a = &o->a[i];
            if (a->role == ARG_SCRATCH)
                continue;
            void *h2 = hg_test_alloc(a->n, type_size(a->type));
            hg_k_download(k, h2, a->dev, arg_bytes(k, o, a));
            int64_t cnt;
            int64_t j = first_diff(a, r->h[i], h2, &cnt);
            if (j >= 0)
                fail_msg("%s: GPU argument %d not deterministic: %lld elements differ, first "
                         "[%lld]: %.9g then %.9g",
                         o->label, i, (long long)cnt, (long long)j, elem(a, r->h[i], j),
                         elem(a, h2, j));
            if (a->role == ARG_IN && a->init) {
                j = first_diff(a, a->init, h2, &cnt);
                if (j >= 0)
                    fail_msg("%s: the GPU call changed input argument %d: %lld elements, first "
                             "[%lld]: %.9g -> %.9g",
                             o->label, i, (long long)cnt, (long long)j, elem(a, a->init, j),
                             elem(a, h2, j));
            }
        }
    }
    dev_free_all();
}

/* The op on both contexts. */
static void run_both(op *o, res *rc, res *rg)
{
    run_op(&CPU, o, rc);
    run_op(&GPU, o, rg);
}

/* ---- comparisons ---- */

/* |got - want| <= tol[i] for every i (both NaN counts as equal; one NaN fails). On failure:
 * how many elements, and the worst one (largest |diff| / tol) with its index (row, column of a
 * row of `width`) and both values. */
static void expect_within_(const char *label, const char *what, const double *got,
                           const double *want, const double *tol, int64_t n, int64_t width,
                           const char *file, int line)
{
    int64_t bad = 0, worst = -1;
    double worst_r = -1.0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i]))
            continue;
        const double err = fabs(got[i] - want[i]);
        const double r = isnan(err)    ? INFINITY
                         : err == 0.0  ? 0.0
                         : tol[i] > 0.0 ? err / tol[i]
                                        : INFINITY;
        if (r > worst_r) {
            worst_r = r;
            worst = i;
        }
        if (!(err <= tol[i]))
            bad++;
    }
    if (verbose && worst >= 0) /* how close to its tolerance each comparison comes */
        printf("test_cuda: %s: %s: worst |diff| / tol = %.3g at [%lld] (gpu %.9g cpu %.9g)\n",
               label, what, worst_r, (long long)worst, got[worst], want[worst]);
    if (bad) {
        const int64_t w = width > 0 ? width : 1;
        fail_msg("%s:%d: %s: %s: %lld of %lld elements out of tolerance; worst [%lld] (row "
                 "%lld, col %lld): gpu %.9g cpu %.9g |diff| %.3g tol %.3g",
                 file, line, label, what, (long long)bad, (long long)n, (long long)worst,
                 (long long)(worst / w), (long long)(worst % w), got[worst], want[worst],
                 fabs(got[worst] - want[worst]), tol[worst]);
    }
}
#define expect_within(label, what, got, want, tol, n, width) \
    expect_within_((label), (what), (got), (want), (tol), (n), (width), __FILE__, __LINE__)

/* Argument i of both results as doubles. */
static double *as_d(const op *o, const res *r, int i)
{
    const arg *a = &o->a[i];
    double *x = td(a->n);
    for (int64_t j = 0; j < a->n; j++)
        x[j] = elem(a, r->h[i], j);
    return x;
}

/* Output i of the GPU within tol of the CPU's. */
static void expect_arg_within_(const op *o, int i, const res *rg, const res *rc, const double *tol,
                               int64_t width, const char *what, const char *file, int line)
{
    expect_within_(o->label, what, as_d(o, rg, i), as_d(o, rc, i), tol, o->a[i].n, width, file,
                   line);
}
#define expect_arg_within(o, i, rg, rc, tol, width, what) \
    expect_arg_within_((o), (i), (rg), (rc), (tol), (width), (what), __FILE__, __LINE__)

/* Output i of the GPU bitwise equal to the CPU's. */
static void expect_arg_bits_(const op *o, int i, const res *rg, const res *rc, const char *what,
                             const char *file, int line)
{
    const arg *a = &o->a[i];
    int64_t cnt, j = first_diff(a, rg->h[i], rc->h[i], &cnt);
    if (j >= 0)
        fail_msg("%s:%d: %s: %s: %lld of %lld elements not bitwise equal, first [%lld]: gpu %.9g "
                 "cpu %.9g",
                 file, line, o->label, what, (long long)cnt, (long long)a->n, (long long)j,
                 elem(a, rg->h[i], j), elem(a, rc->h[i], j));
}
#define expect_arg_bits(o, i, rg, rc, what) \
    expect_arg_bits_((o), (i), (rg), (rc), (what), __FILE__, __LINE__)

static void expect_scalar_(const op *o, double g, double c, double tol, const char *what,
                           const char *file, int line)
{
    expect_within_(o->label, what, &g, &c, &tol, 1, 1, file, line);
}
#define expect_scalar(o, g, c, tol, what) \
    expect_scalar_((o), (g), (c), (tol), (what), __FILE__, __LINE__)

/* tol_i = kappa u |want_i|: a relative error of kappa u. */
static double *tol_rel(const double *want, int64_t n, double kappa)
{
    double *t = td(n);
    for (int64_t i = 0; i < n; i++)
        t[i] = kappa * U32 * fabs(want[i]);
    return t;
}

/* ------------------------------------------------------------------------------------------ */
/* input builders: testutil.h's (shared with test_kernels.c) */

/* The CSR's three arrays as op arguments; returns the index of rowptr (col, val follow). */
static int arg_csr(op *o, const hg_test_csr *a)
{
    int i = op_arg(o, T_I64, ARG_IN, a->nrows + 1, a->rowptr);
    op_arg(o, T_I32, ARG_IN, a->nnz, a->col);
    op_arg(o, T_F32, ARG_IN, a->nnz, a->val);
    return i;
}

#define FMAXD HG_LORENTZ_MAX_D /* widest row in these tests */

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

static void test_gemm(void **state)
{
    (void)state;
    REQUIRE_GPU();
    /* K > HG_K_FLOAT_RUN; leading dimensions padded by 3: the padding must stay untouched */
    const int64_t M = 37, N = 23, K = 70, pad = 3;
    static const float betas[] = {0.0f, 0.25f};
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
                double *tol = td(M * p.ldc);
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double mag =
                            p.beta == 0.0f ? 0.0 : fabs((double)p.beta * C0[i * p.ldc + j]);
                        for (int64_t q = 0; q < K; q++) {
                            const double a = ta ? A[q * p.lda + i] : A[i * p.lda + q];
                            const double b = tb ? B[j * p.ldb + q] : B[q * p.ldb + j];
                            mag += fabs((double)p.alpha * a * b);
                        }
                        tol[i * p.ldc + j] = 2.0 * (double)(K + 3) * U32 * mag;
                    }
                expect_arg_within(&o, iC, &rg, &rc, tol, p.ldc, "C");
            }
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
        hg_k_dropout(k, F(o, 0), F(o, 0), p->n, p->p, p->seed);
    else
        hg_k_dropout(k, F(o, 1), F(o, 0), p->n, p->p, p->seed);
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

/* ---- class margin loss, argmax ---- */

typedef struct {
    int64_t nidx, C;
    float margin, w;
    int with_dl;
} cml_par;

static void cml_fn(const hg_kctx *k, op *o) /* args: logits, idx, labels, dl */
{
    const cml_par *p = o->par;
    o->ret = hg_k_class_margin_loss(k, p->with_dl ? F(o, 3) : NULL, F(o, 0), I64(o, 1), p->nidx,
                                    I32(o, 2), p->C, p->margin, p->w);
}
static void argmax_fn(const hg_kctx *k, op *o) /* args: logits, idx, pred */
{
    const cml_par *p = o->par;
    hg_k_argmax_rows(k, I32(o, 2), F(o, 0), I64(o, 1), p->nidx, p->C);
}

static void test_class_margin_loss_argmax(void **state)
{
    (void)state;
    REQUIRE_GPU();
    const int64_t n = 300, C = 7, nidx = 250; /* nidx > HG_K_FLOAT_RUN: several chunks */
    float *logits = uniform(n * C, -3.0f, 3.0f, 600);
    int32_t *labels = hg_test_alloc(n, sizeof *labels);
    int64_t *idx = hg_test_alloc(n, sizeof *idx);
    hg_rng g;
    hg_rng_seed(&g, 601);
    for (int64_t i = 0; i < n; i++) {
        labels[i] = (int32_t)hg_rng_below(&g, (uint64_t)C);
        idx[i] = i;
    }
    hg_rng_shuffle_i64(&g, idx, n); /* the first nidx: distinct rows in shuffled order */
    for (int64_t i = 0; i < n; i += 5) { /* ties for the maximum: the first one wins */
        float mx = -INFINITY;
        for (int64_t c = 0; c < C; c++)
            mx = fmaxf(mx, logits[i * C + c]);
        logits[i * C + 3] = logits[i * C + 5] = mx + 1.0f;
    }
    for (int with_dl = 0; with_dl < 2; with_dl++) {
        const cml_par p = {nidx, C, 2.0f, 1.0f / (float)nidx, with_dl};
        op o;
        res rc, rg;
        op_init(&o, cml_fn, &p, "class_margin_loss(%s)", with_dl ? "dl" : "dl NULL");
        op_arg(&o, T_F32, ARG_IN, n * C, logits);
        op_arg(&o, T_I64, ARG_IN, nidx, idx);
        op_arg(&o, T_I32, ARG_IN, n, labels);
        const int idl = op_arg(&o, T_F32, ARG_OUT, nidx * C, NULL);
        run_both(&o, &rc, &rg);
        /* the hinges margin - l_y + l_c are exact in double (three floats), so both sides take
         * the same branches; the loss is their double sum in any order: 2 nidx C ud sum|terms| */
        double lmag = 0.0;
        for (int64_t a = 0; a < nidx; a++)
            for (int64_t c = 0; c < C; c++) {
                const float *li = logits + idx[a] * C;
                lmag += fmax((double)p.margin - li[labels[idx[a]]] + li[c], 0.0);
            }
        expect_scalar(&o, rg.ret, rc.ret, 2.0 * (double)(nidx * C) * UD * lmag, "loss");
        if (with_dl) {
            /* w or 0, and w - nactive w for the label (two roundings of <= C |w|) */
            double *tol = td(nidx * C);
            for (int64_t i = 0; i < nidx * C; i++)
                tol[i] = 2.0 * U32 * (double)(C + 1) * p.w;
            expect_arg_within(&o, idl, &rg, &rc, tol, C, "dl");
        } else { /* dl NULL: nothing written (still NaN) */
            expect_arg_bits(&o, idl, &rg, &rc, "dl (untouched)");
        }

        const cml_par pa = {n, C, 0.0f, 0.0f, 0};
        int64_t *all = hg_test_alloc(n, sizeof *all);
        for (int64_t i = 0; i < n; i++)
            all[i] = with_dl ? idx[i] : i;
        op_init(&o, argmax_fn, &pa, "argmax_rows(%s)", with_dl ? "shuffled" : "in order");
        op_arg(&o, T_F32, ARG_IN, n * C, logits);
        op_arg(&o, T_I64, ARG_IN, n, all);
        const int ip = op_arg(&o, T_I32, ARG_OUT, n, NULL);
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, ip, &rg, &rc, "pred");
        for (int64_t a = 0; a < n; a++)
            if (all[a] % 5 == 0)
                assert_int_equal(((int32_t *)rg.h[ip])[a], 3);
    }
}

/* ========================================================================================== */
/* Lorentz kernels */

#define LIN_N 83

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
         * magnitude r |dout_j| + 2 |dr/dm| sum_k |dout_k S_k| |S_j|; kappa (test_kernels.c's
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

/* ---- backward: the first-order error bound of the chain (test_kernels.c's bwd_reference) ---- */

/* The running error bound E of every result of the backward chain (hg_test_bwd_bounds; see
 * test_kernels.c for the derivation). Stage roundings kappa_s (units of u), the float path's at
 * width d (which bounds the CPU's generic double path too):
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

/* ---- decoders: pair scores, margin loss, class logits ----
 * A score 2 + 2 <x, y>_L of width d: d float products summed, times 2, plus 2 and the store:
 * within (d + 3) u (2 + 2 sum |x_j y_j|) on each side. A gradient element accumulated (+=) from
 * m terms onto its start value: within (m + 2) u (|start| + sum |terms|) on each side. */

/* Magnitudes M and term counts cnt of dX rows u, v += c d<x_u, x_v>_L / dX. */
static void pair_mag(double *M, int64_t *cnt, const float *X, int32_t u, int32_t v, double c,
                     int64_t d)
{
    for (int64_t j = 0; j < d; j++) {
        M[u * d + j] += fabs(c * X[v * d + j]);
        M[v * d + j] += fabs(c * X[u * d + j]);
    }
    cnt[u]++;
    cnt[v]++;
}

#define PAIR_NPTS 40
#define PAIR_COUNT 200 /* every point in ~10 pairs: repeated ids, rows written by many pairs */
#define NAN_ROW (PAIR_NPTS - 1)

typedef struct {
    int64_t count, d, n;
    float margin, w;
    int with_dx;
} pair_par;

static void pair_score_fn(const hg_kctx *k, op *o) /* args: X, pairs, out */
{
    const pair_par *p = o->par;
    hg_k_lorentz_pair_score(k, F(o, 2), F(o, 0), I32(o, 1), p->count, p->d);
}
static void pair_score_bwd_fn(const hg_kctx *k, op *o) /* args: X, pairs, g, dX */
{
    const pair_par *p = o->par;
    hg_k_lorentz_pair_score_backward(k, F(o, 3), F(o, 0), I32(o, 1), F(o, 2), p->count, p->d);
}

static void test_pair_score(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24};
    for (int w = 0; w < 3; w++) {
        const int mark = hg_test_mark();
        const int64_t d = widths[w], np = PAIR_NPTS, count = PAIR_COUNT;
        const pair_par p = {count, d, np, 0.0f, 0.0f, 0};
        float *X = tf(np * d);
        int32_t *pairs = hg_test_alloc(2 * count, sizeof *pairs);
        hg_test_random_points(X, np, d, 2.0, 1200 + (uint64_t)w);
        hg_test_random_pairs(pairs, count, PAIR_NPTS, 1210 + (uint64_t)w, 5);
        op o;
        res rc, rg;
        op_init(&o, pair_score_fn, &p, "lorentz_pair_score(d=%lld)", (long long)d);
        op_arg(&o, T_F32, ARG_IN, np * d, X);
        op_arg(&o, T_I32, ARG_IN, 2 * count, pairs);
        const int iout = op_arg(&o, T_F32, ARG_OUT, count, NULL);
        run_both(&o, &rc, &rg);
        double *tol = td(count);
        for (int64_t e = 0; e < count; e++) {
            double mag;
            hg_test_score(X + pairs[2 * e] * d, X + pairs[2 * e + 1] * d, d, &mag);
            tol[e] = 2.0 * (double)(d + 3) * U32 * mag;
        }
        expect_arg_within(&o, iout, &rg, &rc, tol, 1, "scores");

        /* backward: pairs with g = 0 are skipped, so the row NAN_ROW (only in such pairs) may be
         * NaN without reaching dX */
        float *g = uniform(count, -1.0f, 1.0f, 1220 + (uint64_t)w);
        for (int64_t e = 0; e < count; e++)
            if (e % 5 == 4 || e % 7 == 0)
                g[e] = 0.0f;
        float *Xn = fcopy(X, np * d);
        hg_test_fill_nan(Xn + NAN_ROW * d, d);
        float *dX0 = uniform(np * d, -1.0f, 1.0f, 1230 + (uint64_t)w);
        op_init(&o, pair_score_bwd_fn, &p, "lorentz_pair_score_backward(d=%lld)", (long long)d);
        op_arg(&o, T_F32, ARG_IN, np * d, Xn);
        op_arg(&o, T_I32, ARG_IN, 2 * count, pairs);
        op_arg(&o, T_F32, ARG_IN, count, g);
        const int idX = op_arg(&o, T_F32, ARG_OUT, np * d, dX0);
        run_both(&o, &rc, &rg);
        double *M = td(np * d), *T = td(np * d);
        int64_t *cnt = hg_test_alloc(np, sizeof *cnt);
        for (int64_t i = 0; i < np * d; i++)
            M[i] = fabs((double)dX0[i]);
        for (int64_t e = 0; e < count; e++)
            if (g[e] != 0.0f)
                pair_mag(M, cnt, Xn, pairs[2 * e], pairs[2 * e + 1], 2.0 * g[e], d);
        for (int64_t i = 0; i < np * d; i++)
            T[i] = 2.0 * (double)(cnt[i / d] + 2) * U32 * M[i];
        expect_arg_within(&o, idX, &rg, &rc, T, d, "dX");
        for (int64_t j = 0; j < d; j++) /* the NaN row's start values, untouched */
            assert_true(((float *)rg.h[idX])[NAN_ROW * d + j] == dX0[NAN_ROW * d + j]);
        hg_test_release(mark);
    }
}

/* args: X, pos, neg, s_pos, s_neg, dX */
static void pair_margin_fn(const hg_kctx *k, op *o)
{
    const pair_par *p = o->par;
    o->ret = hg_k_lorentz_pair_margin_loss(k, F(o, 3), F(o, 4), p->with_dx ? F(o, 5) : NULL,
                                           F(o, 0), I32(o, 1), I32(o, 2), p->count, p->margin,
                                           p->w, p->n, p->d, NULL);
}

static void test_pair_margin_loss(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5, 24};
    /* PAIR_COUNT couples, and 37: few enough for a single segment of the GPU's row scan */
    for (int w = 0; w < 3; w++)
        for (int v = 0; v < 4; v++) {
            const int mark = hg_test_mark(), with_dx = v & 1;
            const int64_t d = widths[w], np = PAIR_NPTS, count = v & 2 ? 37 : PAIR_COUNT;
            const pair_par p = {count, d, np, 2.0f, 1.0f / (2.0f * (float)count), with_dx};
            float *X = tf(np * d);
            int32_t *pos = hg_test_alloc(2 * count, sizeof *pos);
            int32_t *neg = hg_test_alloc(2 * count, sizeof *neg);
            hg_test_random_points(X, np, d, 1.5, 1300 + (uint64_t)w);
            hg_test_random_pairs(pos, count, PAIR_NPTS, 1310 + (uint64_t)w, 0);
            hg_test_random_pairs(neg, count, PAIR_NPTS, 1320 + (uint64_t)w, 0);
            /* keep every hinge margin - s_pos + s_neg away from 0 (1e-3 >> the scores' rounding
             * differences), so that both sides take the same branches: redraw such negatives */
            hg_rng g;
            hg_rng_seed(&g, 1330 + (uint64_t)w);
            int64_t active = 0;
            for (int64_t e = 0; e < count; e++) {
                double m1, m2, t;
                for (;;) {
                    t = p.margin -
                        hg_test_score(X + pos[2 * e] * d, X + pos[2 * e + 1] * d, d, &m1) +
                        hg_test_score(X + neg[2 * e] * d, X + neg[2 * e + 1] * d, d, &m2);
                    if (fabs(t) > 1e-3)
                        break;
                    neg[2 * e] = (int32_t)hg_rng_below(&g, PAIR_NPTS);
                }
                active += t > 0.0;
            }
            assert_true(active > 0 && active < count); /* both branches of the hinge */
            float *dX0 = uniform(np * d, -1.0f, 1.0f, 1340 + (uint64_t)w);
            op o;
            op_init(&o, pair_margin_fn, &p, "lorentz_pair_margin_loss(d=%lld, count=%lld, dX %s)",
                    (long long)d, (long long)count, with_dx ? "given" : "NULL");
            op_arg(&o, T_F32, ARG_IN, np * d, X);
            op_arg(&o, T_I32, ARG_IN, 2 * count, pos);
            op_arg(&o, T_I32, ARG_IN, 2 * count, neg);
            const int isp = op_arg(&o, T_F32, ARG_OUT, count, NULL);
            const int isn = op_arg(&o, T_F32, ARG_OUT, count, NULL);
            const int idX = op_arg(&o, T_F32, ARG_OUT, np * d, dX0);
            res rc, rg;
            run_both(&o, &rc, &rg);
            double *tp = td(count), *tn = td(count), *M = td(np * d), *T = td(np * d);
            int64_t *cnt = hg_test_alloc(np, sizeof *cnt);
            double ltol = 0.0, lmag = 0.0;
            const float *sp = rc.h[isp], *sn = rc.h[isn];
            for (int64_t i = 0; i < np * d; i++)
                M[i] = fabs((double)dX0[i]);
            for (int64_t e = 0; e < count; e++) {
                double mp, mn;
                hg_test_score(X + pos[2 * e] * d, X + pos[2 * e + 1] * d, d, &mp);
                hg_test_score(X + neg[2 * e] * d, X + neg[2 * e + 1] * d, d, &mn);
                tp[e] = 2.0 * (double)(d + 3) * U32 * mp;
                tn[e] = 2.0 * (double)(d + 3) * U32 * mn;
                if (!((double)p.margin - sp[e] + sn[e] > 0.0))
                    continue;
                /* the loss sums the active hinges of each side's own scores, in double */
                ltol += tp[e] + tn[e];
                lmag += fabs((double)p.margin) + fabs((double)sp[e]) + fabs((double)sn[e]);
                pair_mag(M, cnt, X, pos[2 * e], pos[2 * e + 1], -2.0 * p.w, d);
                pair_mag(M, cnt, X, neg[2 * e], neg[2 * e + 1], 2.0 * p.w, d);
            }
            ltol += 2.0 * (double)(count + 2) * UD * lmag;
            expect_arg_within(&o, isp, &rg, &rc, tp, 1, "s_pos");
            expect_arg_within(&o, isn, &rg, &rc, tn, 1, "s_neg");
            expect_scalar(&o, rg.ret, rc.ret, ltol, "loss");
            if (with_dx) {
                for (int64_t i = 0; i < np * d; i++)
                    T[i] = 2.0 * (double)(cnt[i / d] + 2) * U32 * M[i];
                expect_arg_within(&o, idX, &rg, &rc, T, d, "dX");
            } else {
                expect_arg_bits(&o, idX, &rg, &rc, "dX buffer (dX NULL: untouched)");
            }
            hg_test_release(mark);
        }
}

typedef struct {
    int64_t n, C, d, nidx;
    int with_b, with_db;
} cls_par;

static void class_logits_fn(const hg_kctx *k, op *o) /* args: X, P, b, logits */
{
    const cls_par *p = o->par;
    hg_k_lorentz_class_logits(k, F(o, 3), F(o, 0), F(o, 1), p->with_b ? F(o, 2) : NULL, p->n,
                              p->C, p->d);
}
/* args: dl, X, P, idx, dX, dP, db */
static void class_logits_bwd_fn(const hg_kctx *k, op *o)
{
    const cls_par *p = o->par;
    hg_k_lorentz_class_logits_backward(k, F(o, 4), F(o, 5), p->with_db ? F(o, 6) : NULL, F(o, 0),
                                       F(o, 1), F(o, 2), I64(o, 3), p->nidx, p->C, p->d, NULL);
}

static void test_class_logits(void **state)
{
    (void)state;
    REQUIRE_GPU();
    /* (d, C): the CPU's 16-wide path needs C <= 16 */
    static const int64_t cfgs[][2] = {{16, 7}, {16, 16}, {16, 20}, {5, 7}, {24, 3}};
    for (int c = 0; c < 5; c++) {
        const int mark = hg_test_mark();
        const int64_t d = cfgs[c][0], C = cfgs[c][1], n = LIN_N, nidx = 70;
        const cls_par p = {n, C, d, nidx, c != 1, c != 2};
        float *X = tf(n * d), *P = tf(C * d), *b = uniform(C, -0.5f, 0.5f, 1420 + (uint64_t)c);
        hg_test_random_points(X, n, d, 2.0, 1400 + (uint64_t)c);
        hg_test_random_points(P, C, d, 1.0, 1410 + (uint64_t)c);
        op o;
        res rc, rg;
        op_init(&o, class_logits_fn, &p, "lorentz_class_logits(d=%lld, C=%lld, b %s)",
                (long long)d, (long long)C, p.with_b ? "given" : "NULL");
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_F32, ARG_IN, C * d, P);
        op_arg(&o, T_F32, ARG_IN, C, b);
        const int il = op_arg(&o, T_F32, ARG_OUT, n * C, NULL);
        run_both(&o, &rc, &rg);
        double *tol = td(n * C);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < C; k++) {
                double mag;
                hg_test_score(X + i * d, P + k * d, d, &mag);
                tol[i * C + k] = 2.0 * (double)(d + 4) * U32 * (mag + fabs((double)b[k]));
            }
        expect_arg_within(&o, il, &rg, &rc, tol, C, "logits");

        /* backward over nidx distinct rows in shuffled order (nidx > HG_K_FLOAT_RUN) */
        int64_t *idx = hg_test_shuffled_rows(n, 1430 + (uint64_t)c);
        float *dl = uniform(nidx * C, -1.0f, 1.0f, 1440 + (uint64_t)c);
        for (int64_t q = 0; q < nidx * C; q += 3)
            dl[q] = 0.0f;
        float *dX0 = uniform(n * d, -1.0f, 1.0f, 1450 + (uint64_t)c);
        float *dP0 = uniform(C * d, -1.0f, 1.0f, 1460 + (uint64_t)c);
        float *db0 = uniform(C, -1.0f, 1.0f, 1470 + (uint64_t)c);
        op_init(&o, class_logits_bwd_fn, &p, "lorentz_class_logits_backward(d=%lld, C=%lld, db %s)",
                (long long)d, (long long)C, p.with_db ? "given" : "NULL");
        op_arg(&o, T_F32, ARG_IN, nidx * C, dl);
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_F32, ARG_IN, C * d, P);
        op_arg(&o, T_I64, ARG_IN, nidx, idx);
        const int idX = op_arg(&o, T_F32, ARG_OUT, n * d, dX0);
        const int idP = op_arg(&o, T_F32, ARG_OUT, C * d, dP0);
        const int idb = op_arg(&o, T_F32, ARG_OUT, C, db0);
        run_both(&o, &rc, &rg);
        double *MX = td(n * d), *MP = td(C * d), *MB = td(C);
        for (int64_t i = 0; i < n * d; i++)
            MX[i] = fabs((double)dX0[i]);
        for (int64_t i = 0; i < C * d; i++)
            MP[i] = fabs((double)dP0[i]);
        for (int64_t k = 0; k < C; k++)
            MB[k] = fabs((double)db0[k]);
        for (int64_t a = 0; a < nidx; a++)
            for (int64_t k = 0; k < C; k++) {
                const double gk = dl[a * C + k];
                MB[k] += fabs(gk);
                for (int64_t j = 0; j < d; j++) {
                    MX[idx[a] * d + j] += fabs(2.0 * gk * P[k * d + j]);
                    MP[k * d + j] += fabs(2.0 * gk * X[idx[a] * d + j]);
                }
            }
        for (int64_t i = 0; i < n * d; i++)
            MX[i] *= 2.0 * (double)(C + 2) * U32;
        for (int64_t i = 0; i < C * d; i++)
            MP[i] *= 2.0 * (double)(nidx + 2) * U32;
        for (int64_t k = 0; k < C; k++)
            MB[k] *= 2.0 * (double)(nidx + 2) * U32;
        expect_arg_within(&o, idX, &rg, &rc, MX, d, "dX");
        expect_arg_within(&o, idP, &rg, &rc, MP, d, "dP");
        if (p.with_db)
            expect_arg_within(&o, idb, &rg, &rc, MB, C, "db");
        else
            expect_arg_bits(&o, idb, &rg, &rc, "db buffer (db NULL: untouched)");
        hg_test_release(mark);
    }
}

/* ---- Riemannian Adam and stabilisation ---- */

typedef struct {
    int64_t n, d, t;
    float lr, b1, b2, eps;
    int with_m;
} radam_par;

static void radam_fn(const hg_kctx *k, op *o) /* args: x, grad, m, v */
{
    const radam_par *p = o->par;
    hg_k_lorentz_radam_step(k, F(o, 0), F(o, 1), F(o, 2), F(o, 3), p->n, p->d, p->lr, p->b1,
                            p->b2, p->eps, p->t);
}

/* Magnitudes of one step of point x (mirror of the CPU kernel, in double): the terms of
 * y_j = ch x_j + sh u_j (mx), of m'_j = M_j + coef (x_j + y_j) (mm) and of
 * v' = b2 v + (1 - b2) <U,U>_L with its Euclidean square (mv). */
static void radam_mags(double *mx, double *mm, double *mv, const float *x, const float *grad,
                       const float *m, float v, const radam_par *p)
{
    const int64_t d = p->d;
    double X[FMAXD] = {0}, U[FMAXD] = {0}, M[FMAXD] = {0}, Y[FMAXD] = {0};
    const double bc1 = 1.0 - pow((double)p->b1, (double)p->t);
    const double bc2 = 1.0 - pow((double)p->b2, (double)p->t);
    for (int64_t j = 0; j < d; j++) {
        X[j] = x[j];
        U[j] = grad[j];
    }
    U[0] = -U[0];
    double xu = -X[0] * U[0];
    for (int64_t j = 1; j < d; j++)
        xu += X[j] * U[j];
    for (int64_t j = 0; j < d; j++)
        U[j] += xu * X[j];
    double uu = -U[0] * U[0], ue = U[0] * U[0];
    for (int64_t j = 1; j < d; j++) {
        uu += U[j] * U[j];
        ue += U[j] * U[j];
    }
    const double vn = p->b2 * (double)v + (1.0 - p->b2) * uu;
    *mv = p->b2 * (double)v + (1.0 - p->b2) * ue;
    const double denom = sqrt(fmax(vn, 0.0) / bc2) + p->eps;
    for (int64_t j = 0; j < d; j++) {
        M[j] = p->b1 * m[j] + (1.0 - p->b1) * U[j];
        U[j] = -(double)p->lr * (M[j] / bc1) / denom;
    }
    double nu = -U[0] * U[0];
    for (int64_t j = 1; j < d; j++)
        nu += U[j] * U[j];
    nu = sqrt(fmax(nu, 0.0));
    const double ch = nu < HG_LORENTZ_EXPMAP_MIN_NORM ? 1.0 : cosh(nu);
    const double sh = nu < HG_LORENTZ_EXPMAP_MIN_NORM ? 1.0 : sinh(nu) / nu;
    double ym = -0.0, xy = 0.0;
    for (int64_t j = 0; j < d; j++) {
        Y[j] = ch * X[j] + sh * U[j];
        mx[j] = ch * fabs(X[j]) + sh * fabs(U[j]);
        const double e = j == 0 ? -1.0 : 1.0;
        ym += e * Y[j] * M[j];
        xy += e * X[j] * Y[j];
    }
    const double coef = ym / (1.0 - xy);
    for (int64_t j = 0; j < d; j++)
        mm[j] = fabs(M[j]) + fabs(coef) * (fabs(X[j]) + fabs(Y[j]));
}

static void test_radam_step(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5};
    for (int w = 0; w < 2; w++)
        for (int warm = 0; warm < 2; warm++) {
            const int mark = hg_test_mark();
            const int64_t n = 37, d = widths[w], T0 = warm ? 6 : 0;
            const radam_par p = {n, d, T0 + 1, 1e-2f, 0.9f, 0.999f, 1e-8f, 1};
            float *x = tf(n * d), *m = tf(n * d), *v = tf(n), *grad = tf(n * d);
            hg_rng g;
            hg_rng_seed(&g, 1500 + (uint64_t)(2 * w + warm));
            double xd[FMAXD];
            for (int64_t i = 0; i < n; i++) {
                hg_test_random_point(xd, d, 0.2 + 2.5 * hg_rng_uniform(&g), &g);
                for (int64_t j = 0; j < d; j++)
                    x[i * d + j] = (float)xd[j];
            }
            /* warm: T0 steps on the CPU first, so that m and v are a realistic state */
            for (int64_t t = 0; t <= T0; t++) {
                for (int64_t i = 0; i < n * d; i++)
                    grad[i] = (float)hg_rng_normal(&g);
                if (t < T0)
                    hg_k_lorentz_radam_step(&CPU, x, grad, m, v, n, d, p.lr, p.b1, p.b2, p.eps,
                                            t + 1);
            }
            op o;
            op_init(&o, radam_fn, &p, "lorentz_radam_step(d=%lld, t=%lld)", (long long)d,
                    (long long)p.t);
            const int ix = op_arg(&o, T_F32, ARG_OUT, n * d, x);
            op_arg(&o, T_F32, ARG_IN, n * d, grad);
            const int im = op_arg(&o, T_F32, ARG_OUT, n * d, m);
            const int iv = op_arg(&o, T_F32, ARG_OUT, n, v);
            res rc, rg;
            run_both(&o, &rc, &rg);
            /* The step runs in double from the float state (on the CPU; the contract: the GPU
             * within float rounding): the outputs differ by their final roundings and by the
             * rounding of v (a float) feeding the step. Allow 4 (d + 8) u of each output's
             * magnitude: that also covers a float evaluation of the step's d-term inner
             * products. */
            double *tx = td(n * d), *tm = td(n * d), *tv = td(n);
            const double kap = 4.0 * (double)(d + 8) * U32;
            for (int64_t i = 0; i < n; i++) {
                radam_mags(tx + i * d, tm + i * d, tv + i, x + i * d, grad + i * d, m + i * d,
                           v[i], &p);
                for (int64_t j = 0; j < d; j++) {
                    tx[i * d + j] *= kap;
                    tm[i * d + j] *= kap;
                }
                tv[i] *= kap;
            }
            expect_arg_within(&o, ix, &rg, &rc, tx, d, "x");
            expect_arg_within(&o, im, &rg, &rc, tm, d, "m");
            expect_arg_within(&o, iv, &rg, &rc, tv, 1, "v");
            hg_test_release(mark);
        }
}

static void stabilize_fn(const hg_kctx *k, op *o) /* args: x, m */
{
    const radam_par *p = o->par;
    hg_k_lorentz_stabilize(k, F(o, 0), p->with_m ? F(o, 1) : NULL, p->n, p->d);
}

static void test_stabilize(void **state)
{
    (void)state;
    REQUIRE_GPU();
    static const int64_t widths[] = {16, 5};
    for (int w = 0; w < 2; w++)
        for (int with_m = 0; with_m < 2; with_m++) {
            const int mark = hg_test_mark();
            const int64_t n = 37, d = widths[w];
            const radam_par p = {n, d, 0, 0.0f, 0.0f, 0.0f, 0.0f, with_m};
            float *x = tf(n * d), *m = tf(n * d);
            hg_rng g;
            hg_rng_seed(&g, 1600 + (uint64_t)w);
            double xd[FMAXD];
            for (int64_t i = 0; i < n; i++) {
                hg_test_random_point(xd, d, 0.5 + 2.0 * hg_rng_uniform(&g), &g);
                for (int64_t j = 0; j < d; j++) { /* off the manifold by 1e-2, m not tangent */
                    x[i * d + j] = (float)(xd[j] * (1.0 + 1e-2 * (2.0 * hg_rng_uniform(&g) - 1.0)));
                    m[i * d + j] = (float)hg_rng_normal(&g);
                }
            }
            op o;
            op_init(&o, stabilize_fn, &p, "lorentz_stabilize(d=%lld, m %s)", (long long)d,
                    with_m ? "given" : "NULL");
            const int ix = op_arg(&o, T_F32, ARG_OUT, n * d, x);
            const int im = op_arg(&o, T_F32, ARG_OUT, n * d, m);
            res rc, rg;
            run_both(&o, &rc, &rg);
            /* x_sp untouched; x0 = sqrt(1 + sum of d - 1 positive squares): (d + 2) u relative
             * on a float path, u in double: allow 2 (d + 4) u. m = M + <x,M>_L x: magnitude
             * |M_j| + sum_k |x_k M_k| |x_j|, d-term sum: 2 (d + 4) u of it. */
            const float *xc = rc.h[ix];
            double *tx = td(n * d), *tm = td(n * d);
            for (int64_t i = 0; i < n; i++) {
                tx[i * d] = 2.0 * (double)(d + 4) * U32 * fabs((double)xc[i * d]);
                double sxm = 0.0;
                for (int64_t j = 0; j < d; j++)
                    sxm += fabs((double)xc[i * d + j] * m[i * d + j]);
                for (int64_t j = 0; j < d; j++)
                    tm[i * d + j] = 2.0 * (double)(d + 4) * U32 *
                                    (fabs((double)m[i * d + j]) +
                                     sxm * fabs((double)xc[i * d + j]));
            }
            expect_arg_within(&o, ix, &rg, &rc, tx, d, "x");
            if (with_m)
                expect_arg_within(&o, im, &rg, &rc, tm, d, "m");
            else
                expect_arg_bits(&o, im, &rg, &rc, "m buffer (m NULL: untouched)");
            hg_test_release(mark);
        }
}

/* ---- empty sizes: no rows, pairs or loss rows ---- */

static void test_empty(void **state)
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

        /* class logits backward over 0 rows: dX, dP, db unchanged */
        const int64_t n = 9, C = 3;
        const cls_par pc = {n, C, d, 0, 1, 1};
        float *X = tf(n * d), *P = tf(C * d);
        hg_test_random_points(X, n, d, 1.0, 1702);
        hg_test_random_points(P, C, d, 1.0, 1703);
        op_init(&o, class_logits_bwd_fn, &pc, "lorentz_class_logits_backward(nidx=0, d=%lld)",
                (long long)d);
        op_arg(&o, T_F32, ARG_IN, 0, NULL);
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_F32, ARG_IN, C * d, P);
        op_arg(&o, T_I64, ARG_IN, 0, NULL);
        const int idX = op_arg(&o, T_F32, ARG_OUT, n * d, uniform(n * d, -1.0f, 1.0f, 1704));
        const int idP = op_arg(&o, T_F32, ARG_OUT, C * d, uniform(C * d, -1.0f, 1.0f, 1705));
        const int idb = op_arg(&o, T_F32, ARG_OUT, C, uniform(C, -1.0f, 1.0f, 1706));
        run_both(&o, &rc, &rg);
        expect_arg_bits(&o, idX, &rg, &rc, "dX");
        expect_arg_bits(&o, idP, &rg, &rc, "dP");
        expect_arg_bits(&o, idb, &rg, &rc, "db");

        /* margin losses over 0 couples / 0 rows: 0, dX unchanged */
        const pair_par pp = {0, d, n, 2.0f, 1.0f, 1};
        op_init(&o, pair_margin_fn, &pp, "lorentz_pair_margin_loss(count=0, d=%lld)",
                (long long)d);
        op_arg(&o, T_F32, ARG_IN, n * d, X);
        op_arg(&o, T_I32, ARG_IN, 0, NULL);
        op_arg(&o, T_I32, ARG_IN, 0, NULL);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL);
        const int idX2 = op_arg(&o, T_F32, ARG_OUT, n * d, uniform(n * d, -1.0f, 1.0f, 1707));
        run_both(&o, &rc, &rg);
        assert_true(rc.ret == 0.0 && rg.ret == 0.0);
        expect_arg_bits(&o, idX2, &rg, &rc, "dX");

        const cml_par pm = {0, C, 1.0f, 1.0f, 1};
        int32_t labels[9] = {0};
        op_init(&o, cml_fn, &pm, "class_margin_loss(nidx=0)");
        op_arg(&o, T_F32, ARG_IN, n * C, uniform(n * C, -1.0f, 1.0f, 1708));
        op_arg(&o, T_I64, ARG_IN, 0, NULL);
        op_arg(&o, T_I32, ARG_IN, n, labels);
        op_arg(&o, T_F32, ARG_OUT, 0, NULL);
        run_both(&o, &rc, &rg);
        assert_true(rc.ret == 0.0 && rg.ret == 0.0);
        hg_test_release(mark);
    }
}

/* ------------------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    verbose = getenv("TEST_CUDA_VERBOSE") != NULL;
    if (hg_kctx_init(&CPU, HG_DEVICE_CPU, 1) != HG_OK)
        return -1;
    int rc = hg_kctx_init(&GPU, HG_DEVICE_CUDA, 1);
    have_gpu = rc == HG_OK;
    if (!have_gpu)
        printf("test_cuda: no CUDA context (%s: %s); every test is skipped\n", hg_strerror(rc),
               hg_last_error());
    else
        printf("test_cuda: CUDA device %s\n", hg_k_device_name(&GPU));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (have_gpu)
        hg_kctx_destroy(&GPU);
    hg_kctx_destroy(&CPU);
    return 0;
}

#define CUDA_TEST(f) cmocka_unit_test_teardown(f, teardown)

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
        CUDA_TEST(test_class_margin_loss_argmax),
        CUDA_TEST(test_centroid_backward),
        CUDA_TEST(test_linear_forward),
        CUDA_TEST(test_linear_forward_csr),
        CUDA_TEST(test_agg_forward),
        CUDA_TEST(test_linear_backward),
        CUDA_TEST(test_linear_backward_wide),
        CUDA_TEST(test_linear_backward_csr),
        CUDA_TEST(test_pair_score),
        CUDA_TEST(test_pair_margin_loss),
        CUDA_TEST(test_class_logits),
        CUDA_TEST(test_radam_step),
        CUDA_TEST(test_stabilize),
        CUDA_TEST(test_empty),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    /* every test skipped (no GPU): meson's SKIP */
    return failed == 0 && !have_gpu ? 77 : failed;
}
