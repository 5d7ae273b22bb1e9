/* test_cuda.h - the harness of the CUDA backend tests (test_cuda.c: core ops; test_cuda_layer.c:
 * the fused Lorentz layer kernels; test_cuda_lorentz.c: decoders, losses, Riemannian Adam,
 * stabilisation, empty sizes): the CUDA backend against the CPU kernels. Every hg_cu_* twin of
 * an hg_k_* kernel (kernels/cuda.h) runs on the same seeded random inputs on a CPU context and
 * on a CUDA context (arrays made with hg_k_alloc/hg_k_upload, results brought back with
 * hg_k_download), and the results are compared. Each test file is built twice
 * (tests/meson.build): against the real backend, where every test skips without a GPU, and
 * against the emulated one (tests/cuda_emu.h: kernel launches run on the CPU, the library calls
 * are replaced by the CPU kernels), which runs everywhere.
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
 *    chain E of test_kernels_fused.c (bwd_reference), each stage with the float path's kappa at
 *    width d (>= the CPU's on either path). CPU and GPU are each within E of the exact result:
 *    tol = 2E.
 *  - The steps that run in double (Adam's bias corrections, the Riemannian step, stabilisation,
 *    SVD) differ by their final float roundings; their tolerances allow a float evaluation of
 *    their d-term inner products as well (see each test).
 * Every bound is derived for its kernel next to its check. On failure: the count, the worst
 * element (index, row, column, both values, |diff|, tol). TEST_CUDA_VERBOSE=1 prints every
 * comparison's worst |diff| / tol (how close to its bound each comes). */
#ifndef HG_TESTS_TEST_CUDA_H
#define HG_TESTS_TEST_CUDA_H

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

static inline void dev_free_all(void)
{
    for (int i = 0; i < dev_n; i++)
        hg_k_free(dev_live[i].k, dev_live[i].p);
    dev_n = 0;
}

static inline int teardown(void **state)
{
    (void)state;
    dev_free_all();
    hg_test_free_all();
    GPU.precision = HG_PREC_FP32; /* a failed bf16 check leaves before resetting it */
    return 0;
}

static inline float *fcopy(const float *x, int64_t n)
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

static inline size_t type_size(int t) { return t == T_F64 || t == T_I64 ? 8 : 4; }

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

static inline void op_init(op *o, void (*fn)(const hg_kctx *, op *), const void *par,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline void op_init(op *o, void (*fn)(const hg_kctx *, op *), const void *par,
                           const char *fmt, ...)
{
    memset(o, 0, sizeof *o);
    o->fn = fn;
    o->par = par;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->label, sizeof o->label, fmt, ap);
    va_end(ap);
}

static inline int op_arg(op *o, int type, int role, int64_t n, const void *init)
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

static inline size_t arg_bytes(const hg_kctx *k, const op *o, const arg *a)
{
    if (a->nbytes) {
        int64_t b = a->nbytes(k, o);
        assert_true(b >= 0);
        return (size_t)b;
    }
    return (size_t)a->n * type_size(a->type);
}

static inline void upload_args(const hg_kctx *k, op *o)
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

static inline void call_synced(const hg_kctx *k, op *o)
{
    o->ret = 0.0;
    o->fn(k, o);
    if (hg_k_sync(k) != HG_OK)
        fail_msg("%s on %s: hg_k_sync failed: %s", o->label, hg_k_device_name(k),
                 hg_last_error());
}

/* First element where two copies of argument a differ (-1: none), and how many differ. */
static inline int64_t first_diff(const arg *a, const void *x, const void *y, int64_t *count)
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

static inline double elem(const arg *a, const void *h, int64_t i)
{
    switch (a->type) {
    case T_F32: return ((const float *)h)[i];
    case T_F64: return ((const double *)h)[i];
    case T_I32: return ((const int32_t *)h)[i];
    default: return (double)((const int64_t *)h)[i];
    }
}

static inline int64_t nallocs(const hg_kctx *k)
{
    return hg_k_device_allocs(k);
}

/* Runs o on k: allocate, upload, call, download into r. On the GPU the call is repeated on the
 * re-uploaded inputs: same bits, no new device allocation, inputs unchanged. */
static inline void run_op(const hg_kctx *k, op *o, res *r)
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
static inline void run_both(op *o, res *rc, res *rg)
{
    run_op(&CPU, o, rc);
    run_op(&GPU, o, rg);
}

/* ---- comparisons ---- */

/* |got - want| <= tol[i] for every i (both NaN counts as equal; one NaN fails). On failure:
 * how many elements, and the worst one (largest |diff| / tol) with its index (row, column of a
 * row of `width`) and both values. */
static inline void expect_within_(const char *label, const char *what, const double *got,
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
static inline double *as_d(const op *o, const res *r, int i)
{
    const arg *a = &o->a[i];
    double *x = td(a->n);
    for (int64_t j = 0; j < a->n; j++)
        x[j] = elem(a, r->h[i], j);
    return x;
}

/* Output i of the GPU within tol of the CPU's. */
static inline void expect_arg_within_(const op *o, int i, const res *rg, const res *rc,
                                      const double *tol, int64_t width, const char *what,
                                      const char *file, int line)
{
    expect_within_(o->label, what, as_d(o, rg, i), as_d(o, rc, i), tol, o->a[i].n, width, file,
                   line);
}
#define expect_arg_within(o, i, rg, rc, tol, width, what) \
    expect_arg_within_((o), (i), (rg), (rc), (tol), (width), (what), __FILE__, __LINE__)

/* Output i of the GPU bitwise equal to the CPU's. */
static inline void expect_arg_bits_(const op *o, int i, const res *rg, const res *rc,
                                    const char *what, const char *file, int line)
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

static inline void expect_scalar_(const op *o, double g, double c, double tol, const char *what,
                                  const char *file, int line)
{
    expect_within_(o->label, what, &g, &c, &tol, 1, 1, file, line);
}
#define expect_scalar(o, g, c, tol, what) \
    expect_scalar_((o), (g), (c), (tol), (what), __FILE__, __LINE__)

/* tol_i = kappa u |want_i|: a relative error of kappa u. */
static inline double *tol_rel(const double *want, int64_t n, double kappa)
{
    double *t = td(n);
    for (int64_t i = 0; i < n; i++)
        t[i] = kappa * U32 * fabs(want[i]);
    return t;
}

/* ------------------------------------------------------------------------------------------ */
/* input builders: testutil.h's (shared with test_kernels.c) */

/* The CSR's three arrays as op arguments; returns the index of rowptr (col, val follow). */
static inline int arg_csr(op *o, const hg_test_csr *a)
{
    int i = op_arg(o, T_I64, ARG_IN, a->nrows + 1, a->rowptr);
    op_arg(o, T_I32, ARG_IN, a->nnz, a->col);
    op_arg(o, T_F32, ARG_IN, a->nnz, a->val);
    return i;
}

#define FMAXD HG_LORENTZ_MAX_D /* widest row in these tests */

/* Rows of the layer and decoder tests: 5 blocks of 16 and a partial one. */
#define LIN_N 83

/* ------------------------------------------------------------------------------------------ */

static inline int group_setup(void **state)
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

static inline int group_teardown(void **state)
{
    (void)state;
    if (have_gpu)
        hg_kctx_destroy(&GPU);
    hg_kctx_destroy(&CPU);
    return 0;
}

#define CUDA_TEST(f) cmocka_unit_test_teardown(f, teardown)

/* main's exit status from cmocka's: every test skipped (no GPU) is meson's SKIP. */
static inline int cuda_tests_status(int failed)
{
    return failed == 0 && !have_gpu ? 77 : failed;
}

#endif
