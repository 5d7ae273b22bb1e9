/* test_cuda_nn.c - the CUDA twins of the neural-network ops (kernels/ops_nn.def, cuda_nn.cu),
 * of the batched product and of dropout with an offset (ops_core.def) against the CPU bodies (whose correctness tests/test_nn.c checks). Built twice, as
 * test_cuda.c: against the real backend module (skips without a GPU) and against the emulated
 * backend, whose block mode runs the row kernels' shared-memory reductions and barriers.
 *
 * Each op runs on the same seeded inputs on both contexts. On the GPU it runs twice on the
 * re-uploaded inputs: the outputs and the returned loss must be bitwise identical (fixed
 * reduction trees, no atomics), the second call must make no device allocation, and the inputs
 * must come back unchanged. Outputs (=) start as NaN (a slot left unwritten fails), (+=) ones
 * at random values.
 *
 * Tolerances: both sides sum in double in other orders and round once to float, and call expf
 * and erff of a few ulp each; an element may differ by a few dozen float ulps (u = 2^-24) of the
 * magnitudes it is computed from. Every check allows 64 u times the largest magnitude of its row
 * (softmax, layer norm, cross-entropy) or of its element and inputs (element-wise), far below
 * what a wrong index, mask or missing term produces. The embeddings (one fmaf per step, the same
 * order), the head copies and dropout must give the CPU's bits. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/backend.h"
#include "../kernels/kernels.h"
#include "../src/hg.h"

#define U32 (0.5 * (double)FLT_EPSILON)
#define TOL (64 * U32)

static hg_kctx CPU, GPU;
static int have_gpu;

static int teardown(void **state)
{
    (void)state;
    hg_test_free_all();
    GPU.precision = HG_PREC_FP32; /* a failed bf16 check leaves before resetting it */
    return 0;
}

/* ---- running an op on a context ---- */

enum { IN, OUT, ACC }; /* input; output (=), NaN-filled; output (+=), starting from host */
typedef struct {
    const void *init; /* host contents (IN, ACC) */
    size_t bytes;
    int role;
    void *dev;
} buf;

#define MAXB 12
typedef double (*op_fn)(const hg_kctx *k, void **d, const void *par);

static double call(const hg_kctx *k, buf *b, int nb, op_fn fn, const void *par)
{
    void *d[MAXB];
    for (int i = 0; i < nb; i++) {
        if (b[i].role == OUT) {
            void *nan = hg_test_alloc((int64_t)b[i].bytes, 1);
            memset(nan, 0xff, b[i].bytes);
            hg_k_upload(k, b[i].dev, nan, b[i].bytes);
        } else {
            hg_k_upload(k, b[i].dev, b[i].init, b[i].bytes);
        }
        d[i] = b[i].dev;
    }
    const double r = fn(k, d, par);
    if (hg_k_sync(k) != HG_OK)
        fail_msg("hg_k_sync failed on %s: %s", hg_k_device_name(k), hg_last_error());
    return r;
}

/* Runs fn on k; host copies of every buffer after the call in out[i]; returns fn's value. */
static double run(const hg_kctx *k, buf *b, int nb, op_fn fn, const void *par, void **out,
                  const char *label)
{
    for (int i = 0; i < nb; i++) {
        b[i].dev = hg_k_alloc(k, b[i].bytes ? b[i].bytes : 1, "test_cuda_nn");
        assert_non_null(b[i].dev);
    }
    const double r = call(k, b, nb, fn, par);
    for (int i = 0; i < nb; i++) {
        out[i] = hg_test_alloc((int64_t)b[i].bytes, 1);
        hg_k_download(k, out[i], b[i].dev, b[i].bytes);
    }
    if (k->backend) {
        const int64_t a0 = hg_k_device_allocs(k);
        const double r2 = call(k, b, nb, fn, par);
        if (hg_k_device_allocs(k) != a0)
            fail_msg("%s: the second GPU call allocated device memory", label);
        if (memcmp(&r, &r2, sizeof r))
            fail_msg("%s: GPU result not deterministic: %.17g then %.17g", label, r, r2);
        for (int i = 0; i < nb; i++) {
            void *h2 = hg_test_alloc((int64_t)b[i].bytes, 1);
            hg_k_download(k, h2, b[i].dev, b[i].bytes);
            if (memcmp(h2, out[i], b[i].bytes))
                fail_msg("%s: GPU buffer %d not deterministic", label, i);
            if (b[i].role == IN && memcmp(h2, b[i].init, b[i].bytes))
                fail_msg("%s: the GPU call changed input %d", label, i);
        }
    }
    for (int i = 0; i < nb; i++)
        hg_k_free(k, b[i].dev);
    return r;
}

/* |g - c| <= TOL * scale[row] for the n floats of buffer i (rows of width w). */
static void expect_close(const char *label, const float *g, const float *c, int64_t n, int64_t w,
                         const double *scale)
{
    int64_t bad = 0, worst = -1;
    double wr = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double tol = TOL * scale[i / w] + DBL_MIN;
        const double e = fabs((double)g[i] - c[i]);
        const double r = isnan(g[i]) || isnan(c[i]) ? INFINITY : e / tol;
        if (r > 1.0)
            bad++;
        if (r > wr || worst < 0)
            wr = r, worst = i;
    }
    if (bad)
        fail_msg("%s: %lld of %lld elements off; worst [%lld] (row %lld): gpu %.9g cpu %.9g, "
                 "%.3g x tol", label, (long long)bad, (long long)n, (long long)worst,
                 (long long)(worst / w), g[worst], c[worst], wr);
}

/* Largest |x| of each row of width w (at least 1e-30). */
static double *row_scale(const float *x, int64_t rows, int64_t w)
{
    double *s = hg_test_doubles(rows);
    for (int64_t r = 0; r < rows; r++) {
        s[r] = 1e-30;
        for (int64_t j = 0; j < w; j++)
            s[r] = fmax(s[r], fabs(x[r * w + j]));
    }
    return s;
}

/* Runs the op on both contexts: out_c, out_g the host copies. */
static double run_both(buf *b, int nb, op_fn fn, const void *par, void **oc, void **og,
                       const char *label, double *ret_g)
{
    const double rc = run(&CPU, b, nb, fn, par, oc, label);
    *ret_g = run(&GPU, b, nb, fn, par, og, label);
    return rc;
}

#define F(i) ((float *)d[i])

/* ---- element-wise and bias ---- */

typedef struct {
    int64_t n, rows, cols;
} ew_par;

static double gelu_fn(const hg_kctx *k, void **d, const void *p_)
{
    const ew_par *p = p_;
    hg_k_gelu_forward(k, F(1), F(0), p->n);
    hg_k_gelu_backward(k, F(3), F(2), F(0), p->n);
    hg_k_relu_forward(k, F(4), F(0), p->n);
    hg_k_relu_backward(k, F(5), F(2), F(0), p->n);
    return 0.0;
}

static void test_activations(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    const int64_t n = 3001;
    const float *x = hg_test_uniform(n, -6.0f, 6.0f, 1), *dy = hg_test_uniform(n, -1, 1, 2);
    const size_t b4 = (size_t)n * 4;
    buf b[6] = {{x, b4, IN, 0}, {0, b4, OUT, 0}, {dy, b4, IN, 0},
                {0, b4, OUT, 0}, {0, b4, OUT, 0}, {0, b4, OUT, 0}};
    void *oc[6], *og[6];
    const ew_par p = {n, 0, 0};
    double rg;
    run_both(b, 6, gelu_fn, &p, oc, og, "gelu/relu", &rg);
    double *sc = hg_test_doubles(n);
    for (int64_t i = 0; i < n; i++)
        sc[i] = fabs(x[i]) * (1.0 + fabs(dy[i])) + fabs(dy[i]);
    expect_close("gelu_forward", og[1], oc[1], n, 1, sc);
    expect_close("gelu_backward", og[3], oc[3], n, 1, sc);
    assert_memory_equal(og[4], oc[4], b4); /* relu: exact */
    assert_memory_equal(og[5], oc[5], b4);
}

static double bias_fn(const hg_kctx *k, void **d, const void *p_)
{
    const ew_par *p = p_;
    hg_k_add_bias_rows(k, F(0), F(1), p->rows, p->cols);
    hg_k_col_sums(k, F(2), F(3), p->rows, p->cols);
    return 0.0;
}

static void test_bias(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    const int64_t rows = 301, cols = 67;
    const float *y = hg_test_uniform(rows * cols, -1, 1, 3), *bb = hg_test_uniform(cols, -1, 1, 4);
    const float *acc = hg_test_uniform(cols, -1, 1, 5), *x = hg_test_uniform(rows * cols, -1, 1, 6);
    buf b[4] = {{y, (size_t)(rows * cols) * 4, ACC, 0}, {bb, (size_t)cols * 4, IN, 0},
                {acc, (size_t)cols * 4, ACC, 0}, {x, (size_t)(rows * cols) * 4, IN, 0}};
    void *oc[4], *og[4];
    const ew_par p = {0, rows, cols};
    double rg;
    run_both(b, 4, bias_fn, &p, oc, og, "bias", &rg);
    assert_memory_equal(og[0], oc[0], (size_t)(rows * cols) * 4); /* one add per element */
    double *sc = hg_test_doubles(cols);
    for (int64_t j = 0; j < cols; j++) { /* sum of |terms| */
        sc[j] = fabs(acc[j]);
        for (int64_t r = 0; r < rows; r++)
            sc[j] += fabs(x[r * cols + j]);
    }
    expect_close("col_sums", og[2], oc[2], cols, 1, sc);
}

/* ---- softmax ---- */

typedef struct {
    int64_t rows, cols, causal, rpl;
    float scale;
    int with_len;
} sm_par;

static double softmax_fn(const hg_kctx *k, void **d, const void *p_)
{
    const sm_par *p = p_;
    const int32_t *len = p->with_len ? (const int32_t *)d[4] : NULL;
    hg_k_softmax_forward(k, F(1), F(0), p->rows, p->cols, p->scale, p->causal, len, p->rpl);
    hg_k_softmax_backward(k, F(3), F(2), F(1), p->rows, p->cols, p->scale);
    return 0.0;
}

static void softmax_case(int64_t rows, int64_t cols, float scale, int64_t causal, int with_len,
                         uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t n = rows * cols, rpl = 3, ng = (rows + rpl - 1) / rpl;
    const float *x = hg_test_uniform(n, -5, 5, seed), *dy = hg_test_uniform(n, -1, 1, seed + 1);
    int32_t *len = hg_test_alloc(ng, sizeof *len);
    for (int64_t g = 0; g < ng; g++)
        len[g] = (int32_t)((g * 5) % (cols + 2)); /* 0 (every key masked), ..., > cols */
    buf b[5] = {{x, (size_t)n * 4, IN, 0}, {0, (size_t)n * 4, OUT, 0}, {dy, (size_t)n * 4, IN, 0},
                {0, (size_t)n * 4, OUT, 0}, {len, (size_t)ng * 4, IN, 0}};
    void *oc[5], *og[5];
    const sm_par p = {rows, cols, causal, rpl, scale, with_len};
    double rg;
    run_both(b, 5, softmax_fn, &p, oc, og, "softmax", &rg);
    double *one = hg_test_doubles(rows);
    for (int64_t r = 0; r < rows; r++)
        one[r] = 1.0; /* probabilities: at most 1 */
    expect_close("softmax_forward", og[1], oc[1], n, cols, one);
    double *sc = row_scale(dy, rows, cols);
    for (int64_t r = 0; r < rows; r++)
        sc[r] *= 2.0 * fabs(scale); /* |dx| <= scale y (|dy| + |dot|) */
    expect_close("softmax_backward", og[3], oc[3], n, cols, sc);
    hg_test_release(mark);
}

static void test_softmax(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    softmax_case(7, 700, 1.0f, 0, 0, 10); /* rows longer than a block */
    softmax_case(24, 8, 0.3f, 8, 0, 11);  /* causal */
    softmax_case(10, 13, 1.7f, 0, 1, 12); /* padding */
    softmax_case(12, 5, 1.0f, 4, 1, 13);  /* both */
}

/* ---- layer norm ---- */

typedef struct {
    int64_t rows, cols;
    int affine;
} ln_par;

/* args: x, gamma, beta, y, mean, rstd, dy, dx, dgamma (+=), dbeta (+=) */
static double layernorm_fn(const hg_kctx *k, void **d, const void *p_)
{
    const ln_par *p = p_;
    const float *g = p->affine ? F(1) : NULL, *be = p->affine ? F(2) : NULL;
    hg_k_layernorm_forward(k, F(3), F(4), F(5), F(0), g, be, p->rows, p->cols, 1e-5f);
    hg_k_layernorm_backward(k, F(7), p->affine ? F(8) : NULL, p->affine ? F(9) : NULL, F(6),
                            F(0), F(4), F(5), g, p->rows, p->cols);
    return 0.0;
}

static void layernorm_case(int64_t rows, int64_t cols, int affine, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t n = rows * cols;
    const size_t bn = (size_t)n * 4, bc = (size_t)cols * 4, br = (size_t)rows * 4;
    const float *x = hg_test_uniform(n, -2, 3, seed), *dy = hg_test_uniform(n, -1, 1, seed + 1);
    const float *g = hg_test_uniform(cols, 0.5f, 1.5f, seed + 2);
    const float *be = hg_test_uniform(cols, -1, 1, seed + 3);
    const float *dg = hg_test_uniform(cols, -1, 1, seed + 4), *db = hg_test_uniform(cols, -1, 1, 5);
    buf b[10] = {{x, bn, IN, 0},  {g, bc, IN, 0},   {be, bc, IN, 0},  {0, bn, OUT, 0},
                 {0, br, OUT, 0}, {0, br, OUT, 0},  {dy, bn, IN, 0},  {0, bn, OUT, 0},
                 {dg, bc, ACC, 0}, {db, bc, ACC, 0}};
    void *oc[10], *og[10];
    const ln_par p = {rows, cols, affine};
    double rg;
    run_both(b, 10, layernorm_fn, &p, oc, og, "layernorm", &rg);
    double *sy = row_scale(oc[3], rows, cols), *sm = row_scale(x, rows, 1);
    double *sr = row_scale(oc[5], rows, 1), *sdx = row_scale(oc[7], rows, cols);
    double *sdy = row_scale(dy, rows, cols), *srs = row_scale(oc[5], rows, 1);
    for (int64_t r = 0; r < rows; r++) { /* dx is made of terms up to rstd |dy| (|gamma| <= 1.5) */
        sy[r] *= 4.0;
        sdx[r] = fmax(sdx[r], 4.0 * srs[r] * sdy[r]);
    }
    expect_close("layernorm y", og[3], oc[3], n, cols, sy);
    expect_close("layernorm mean", og[4], oc[4], rows, 1, sm);
    expect_close("layernorm rstd", og[5], oc[5], rows, 1, sr);
    expect_close("layernorm dx", og[7], oc[7], n, cols, sdx);
    if (affine) {
        double *sg = hg_test_doubles(cols), *sb = hg_test_doubles(cols);
        for (int64_t j = 0; j < cols; j++) { /* sums of |terms| */
            sg[j] = fabs(dg[j]);
            sb[j] = fabs(db[j]);
            for (int64_t r = 0; r < rows; r++) {
                const double xhat = fabs((x[r * cols + j] - ((float *)oc[4])[r]) *
                                         ((float *)oc[5])[r]);
                sg[j] += fabs(dy[r * cols + j]) * xhat;
                sb[j] += fabs(dy[r * cols + j]);
            }
        }
        expect_close("layernorm dgamma", og[8], oc[8], cols, 1, sg);
        expect_close("layernorm dbeta", og[9], oc[9], cols, 1, sb);
    }
    hg_test_release(mark);
}

static void test_layernorm(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    layernorm_case(9, 600, 1, 20); /* rows longer than a block */
    layernorm_case(70, 33, 1, 21);
    layernorm_case(5, 17, 0, 22);
}

/* ---- cross-entropy ---- */

typedef struct {
    int64_t rows, C;
    float smoothing, w;
    int grad;
} ce_par;

static double ce_fn(const hg_kctx *k, void **d, const void *p_)
{
    const ce_par *p = p_;
    return hg_k_cross_entropy(k, p->grad ? F(2) : NULL, F(0), (const int32_t *)d[1], p->rows,
                              p->C, p->smoothing, -100, p->w);
}

static void ce_case(int64_t rows, int64_t C, float smoothing, int grad, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t n = rows * C;
    const float *l = hg_test_uniform(n, -8, 8, seed);
    int32_t *t = hg_test_alloc(rows, sizeof *t);
    for (int64_t r = 0; r < rows; r++)
        t[r] = r % 4 == 1 ? -100 : (int32_t)((r * 13 + 1) % C);
    buf b[3] = {{l, (size_t)n * 4, IN, 0}, {t, (size_t)rows * 4, IN, 0},
                {0, (size_t)n * 4, OUT, 0}};
    void *oc[3], *og[3];
    const ce_par p = {rows, C, smoothing, 0.5f, grad};
    double rg;
    const double rc = run_both(b, 3, ce_fn, &p, oc, og, "cross_entropy", &rg);
    /* the loss: a sum over rows of logsumexp minus a weighted sum of logits */
    double sl = 0.0;
    for (int64_t i = 0; i < n; i++)
        sl += fabs(l[i]);
    if (!(fabs(rg - rc) <= TOL * (sl + rows * 10.0)))
        fail_msg("cross_entropy loss: gpu %.17g cpu %.17g", rg, rc);
    if (grad) {
        double *half = hg_test_doubles(rows);
        for (int64_t r = 0; r < rows; r++)
            half[r] = 0.5; /* w (p - q): at most w */
        expect_close("cross_entropy dlogits", og[2], oc[2], n, C, half);
    }
    hg_test_release(mark);
}

static void test_cross_entropy(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    ce_case(9, 1000, 0.1f, 1, 30); /* vocabulary wider than a block */
    ce_case(40, 7, 0.0f, 1, 31);
    ce_case(6, 5, 0.2f, 0, 32); /* loss only */
}

/* ---- embeddings, heads, dropout with an offset: the same bits (fmaf, copies, the same mask) ---- */

typedef struct {
    int64_t rows, T, d, V, B, H, dh;
    float scale, p;
} seq_par;

/* args: E, ids, pos, Y (pos), Y (no pos), dY, dE (+=), heads split, heads merged, dropout out,
 * dropout in place */
static double seq_fn(const hg_kctx *k, void **d, const void *p_)
{
    const seq_par *p = p_;
    const int32_t *ids = (const int32_t *)d[1];
    hg_k_embed_forward(k, F(3), F(0), ids, F(2), p->rows, p->T, p->d, p->scale);
    hg_k_embed_forward(k, F(4), F(0), ids, NULL, p->rows, p->T, p->d, p->scale);
    hg_k_embed_backward(k, F(6), F(5), ids, p->rows, p->d, p->scale);
    hg_k_heads_split(k, F(7), F(5), p->B, p->T, p->H, p->dh);
    hg_k_heads_merge(k, F(8), F(7), p->B, p->T, p->H, p->dh);
    hg_k_dropout(k, F(9), F(5), p->rows * p->d, p->p, 99, 1000);
    hg_k_dropout(k, F(10), F(10), p->rows * p->d, p->p, 99, 1000);
    return 0.0;
}

static void seq_case(int64_t B, int64_t T, int64_t H, int64_t dh, int64_t V, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t rows = B * T, d = H * dh, n = rows * d;
    const float *E = hg_test_uniform(V * d, -1, 1, seed), *pos = hg_test_uniform(T * d, -1, 1, 2);
    const float *dY = hg_test_uniform(n, -1, 1, seed + 1);
    const float *dE = hg_test_uniform(V * d, -1, 1, seed + 2);
    int32_t *ids = hg_test_alloc(rows, sizeof *ids);
    for (int64_t r = 0; r < rows; r++) /* padding (-1) and ids repeated */
        ids[r] = r % 6 == 5 ? -1 : (int32_t)((r * r + 3) % V);
    const size_t bn = (size_t)n * 4;
    buf b[11] = {{E, (size_t)(V * d) * 4, IN, 0}, {ids, (size_t)rows * 4, IN, 0},
                 {pos, (size_t)(T * d) * 4, IN, 0}, {0, bn, OUT, 0}, {0, bn, OUT, 0},
                 {dY, bn, IN, 0}, {dE, (size_t)(V * d) * 4, ACC, 0}, {0, bn, OUT, 0},
                 {0, bn, OUT, 0}, {0, bn, OUT, 0}, {dY, bn, ACC, 0}};
    void *oc[11], *og[11];
    const seq_par p = {rows, T, d, V, B, H, dh, 2.83f, 0.3f};
    double rg;
    run_both(b, 11, seq_fn, &p, oc, og, "embed/heads/dropout", &rg);
    static const char *what[11] = {0, 0, 0, "embed_forward", "embed_forward (no pos)", 0,
                                   "embed_backward", "heads_split", "heads_merge", "dropout",
                                   "dropout (in place)"};
    for (int i = 3; i < 11; i++)
        if (what[i] && memcmp(og[i], oc[i], b[i].bytes))
            fail_msg("%s: the GPU's bits differ from the CPU's", what[i]);
    hg_test_release(mark);
}

static void test_embed_heads_dropout(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    seq_case(3, 7, 4, 10, 9, 40);  /* d 40: the largest number of id classes */
    seq_case(2, 5, 3, 300, 4, 41); /* d 900: wider than a block */
}

/* ---- batched products ---- */

typedef struct {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc, sA, sB, sC, batch;
    float alpha, beta;
} gb_par;

static double gemm_batched_fn(const hg_kctx *k, void **d, const void *p_)
{
    const gb_par *p = p_;
    return hg_k_gemm_batched(k, p->ta, p->tb, p->M, p->N, p->K, p->alpha, F(0), p->lda, p->sA,
                             F(1), p->ldb, p->sB, p->beta, F(2), p->ldc, p->sC, p->batch);
}

/* With bf16 (kernels.h, HG_PREC_BF16) each product term may be off by 2^-7 + 2^-16 of itself
 * more: the scale grows by that over TOL (TOL's own share keeps the sums' errors). */
static void gemm_batched_case(int ta, int tb, int64_t M, int64_t N, int64_t KK, int64_t batch,
                              float beta, uint64_t seed, hg_precision prec)
{
    GPU.precision = prec;
    const int mark = hg_test_mark();
    const int64_t ac = ta ? M : KK, bc = tb ? KK : N, ar = ta ? KK : M, br = tb ? N : KK;
    gb_par p = {ta, tb, M, N, KK, ac + 1, bc + 2, N + 3, 0, 0, 0, batch, 0.75f, beta};
    p.sA = ar * p.lda + 5, p.sB = br * p.ldb + 1, p.sC = M * p.ldc + 7;
    const float *A = hg_test_uniform(p.sA * batch, -1, 1, seed);
    const float *Bm = hg_test_uniform(p.sB * batch, -1, 1, seed + 1);
    const float *C = hg_test_uniform(p.sC * batch, -1, 1, seed + 2);
    buf b[3] = {{A, (size_t)(p.sA * batch) * 4, IN, 0}, {Bm, (size_t)(p.sB * batch) * 4, IN, 0},
                {C, (size_t)(p.sC * batch) * 4, ACC, 0}};
    void *oc[3], *og[3];
    double rg;
    const double rc = run_both(b, 3, gemm_batched_fn, &p, oc, og, "gemm_batched", &rg);
    assert_true(rc == 0.0 && rg == 0.0);
    /* each element: K products and the beta term, summed in other orders */
    double *sc = hg_test_doubles(p.sC * batch);
    for (int64_t i = 0; i < p.sC * batch; i++)
        sc[i] = fabs(C[i]); /* padding between rows and items: beta C at most, or untouched */
    for (int64_t q = 0; q < batch; q++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0.0;
                for (int64_t l = 0; l < KK; l++) {
                    const float a = A[q * p.sA + (ta ? l * p.lda + i : i * p.lda + l)];
                    const float bv = Bm[q * p.sB + (tb ? j * p.ldb + l : l * p.ldb + j)];
                    s += fabs((double)a * bv);
                }
                const double grow = prec == HG_PREC_BF16 ? 1.0 + (0x1p-7 + 0x1p-16) / TOL : 1.0;
                sc[q * p.sC + i * p.ldc + j] =
                    0.75 * s * grow + fabs(beta * C[q * p.sC + i * p.ldc + j]);
            }
    GPU.precision = HG_PREC_FP32;
    expect_close(prec == HG_PREC_BF16 ? "gemm_batched (bf16)" : "gemm_batched", og[2], oc[2],
                 p.sC * batch, 1, sc);
    if (prec == HG_PREC_BF16 && !strncmp(hg_k_device_name(&GPU), "emulated", 8) &&
        !memcmp(og[2], oc[2], (size_t)(p.sC * batch) * 4))
        fail_msg("gemm_batched (bf16): the CPU's fp32 bits: not rounded");
    hg_test_release(mark);
}

static void test_gemm_batched(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    for (int prec = HG_PREC_FP32; prec <= HG_PREC_BF16; prec++) {
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                gemm_batched_case(ta, tb, 9, 7, 16, 5, ta ? 0.5f : 0.0f, 50 + 2 * ta + tb,
                                  (hg_precision)prec);
        gemm_batched_case(0, 1, 30, 30, 16, 40, 0.0f, 60, (hg_precision)prec); /* attention */
    }
}

/* ---- fused causal attention ---- */

typedef struct {
    int64_t items, T, dh;
    float scale, p;
    uint64_t seed;
} at_par;

static double attn_fwd_fn(const hg_kctx *k, void **d, const void *p_)
{
    const at_par *p = p_;
    hg_k_attn_causal_forward(k, F(3), F(4), F(0), F(1), F(2), p->items, p->T, p->dh, p->scale,
                             p->p, p->seed);
    return 0.0;
}

static double attn_bwd_fn(const hg_kctx *k, void **d, const void *p_)
{
    const at_par *p = p_;
    hg_k_attn_causal_backward(k, F(6), F(7), F(8), F(0), F(1), F(2), F(3), F(4), F(5), p->items,
                              p->T, p->dh, p->scale, p->p, p->seed);
    return 0.0;
}

/* Bounds (u = 2^-24; the CPU sums in double, so nearly all of each bound is the GPU's float
 * path; doubled to cover both). With A_ij = scale sum_c |q_ic k_jc|, a float score is off by
 * (dh + 1) u A_ij, so a weight exp(s - m) by about twice that (s and m) plus the exp's rounding;
 * the online softmax rescales at most T times (3u each) and sums T terms:
 *   O_ic:  (4 (dh + 1) A_i + 8 T + 16) u sum_j P_ij M_ij |v_jc| (+ its own rounding), and lse
 *          by the same factor (absolute) plus u |lse|;
 *   dV_jc: ((dh + 1) A_ij + T + 4) u per term P_ij M_ij |dO_ic|;
 *   dS_ij = P (M dPd - D): u ((dh + 1) A_ij + 4) P |M dPd - D| from P, and (dh + 2) u P (M
 *          sum |dO_i v_j| + sum |dO_i O_i|) from the two dots; dK, dQ sum T of them times q or
 *          k, adding (T + 2) u |dS| each. */
static void attn_case(int64_t items, int64_t T, int64_t dh, float p, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t n = items * T * dh;
    const size_t bn = (size_t)n * 4, bl = (size_t)(items * T) * 4;
    const at_par par = {items, T, dh, (float)(1.0 / sqrt((double)dh)), p, seed + 9};
    const float *Q = hg_test_uniform(n, -1.5f, 1.5f, seed), *Kx = hg_test_uniform(n, -1.5f, 1.5f,
                                                                                  seed + 1);
    const float *V = hg_test_uniform(n, -1, 1, seed + 2), *dO = hg_test_uniform(n, -1, 1, seed + 3);
    buf bf[5] = {{Q, bn, IN, 0}, {Kx, bn, IN, 0}, {V, bn, IN, 0}, {0, bn, OUT, 0}, {0, bl, OUT, 0}};
    void *oc[9], *og[9];
    double rg;
    run_both(bf, 5, attn_fwd_fn, &par, oc, og, "attn_causal_forward", &rg);
    const float *O = oc[3], *L = oc[4];
    buf bb[9] = {{dO, bn, IN, 0}, {Q, bn, IN, 0}, {Kx, bn, IN, 0}, {V, bn, IN, 0},
                 {O, bn, IN, 0}, {L, bl, IN, 0}, {0, bn, OUT, 0}, {0, bn, OUT, 0},
                 {0, bn, OUT, 0}};
    void *bc[9], *bg[9];
    run_both(bb, 9, attn_bwd_fn, &par, bc, bg, "attn_causal_backward", &rg);
    const double u = U32, sc = par.scale;
    double *tO = hg_test_doubles(n), *tL = hg_test_doubles(items * T), *tQ = hg_test_doubles(n);
    double *tK = hg_test_doubles(n), *tV = hg_test_doubles(n);
    for (int64_t b = 0; b < items; b++)
        for (int64_t i = 0; i < T; i++) {
            const int64_t r = b * T + i;
            const float *q = Q + r * dh, *g = dO + r * dh;
            double m = -INFINITY, l = 0.0, Ai = 0.0, D = 0.0, DA = 0.0;
            for (int64_t c = 0; c < dh; c++)
                D += (double)g[c] * O[r * dh + c], DA += fabs((double)g[c] * O[r * dh + c]);
            for (int64_t j = 0; j <= i; j++) {
                double s = 0.0, a = 0.0;
                for (int64_t c = 0; c < dh; c++)
                    s += (double)q[c] * Kx[(b * T + j) * dh + c],
                        a += fabs((double)q[c] * Kx[(b * T + j) * dh + c]);
                m = fmax(m, sc * s);
                Ai = fmax(Ai, sc * a);
            }
            for (int64_t j = 0; j <= i; j++) {
                double s = 0.0;
                for (int64_t c = 0; c < dh; c++)
                    s += (double)q[c] * Kx[(b * T + j) * dh + c];
                l += exp(sc * s - m);
            }
            const double lse = m + log(l), fo = (4.0 * (double)(dh + 1) * Ai + 8.0 * T + 16.0) * u;
            tL[r] = 2.0 * (fo + u * fabs(lse));
            for (int64_t c = 0; c < dh; c++)
                tO[r * dh + c] = 2.0 * u * fabs(O[r * dh + c]), tQ[r * dh + c] = 0.0;
            for (int64_t j = 0; j <= i; j++) {
                const float *kj = Kx + (b * T + j) * dh, *vj = V + (b * T + j) * dh;
                double s = 0.0, a = 0.0, dp = 0.0, dpa = 0.0;
                for (int64_t c = 0; c < dh; c++) {
                    s += (double)q[c] * kj[c], a += fabs((double)q[c] * kj[c]);
                    dp += (double)g[c] * vj[c], dpa += fabs((double)g[c] * vj[c]);
                }
                const double P = exp(sc * s - lse), M = hg_k_dropout_scale(r * T + j, p, par.seed);
                const double A = sc * a, dS = P * (M * dp - D);
                const double e = u * (((double)(dh + 1) * A + 4.0) * P * fabs(M * dp - D) +
                                      (double)(dh + 2) * P * (M * dpa + DA)) +
                                 (double)(T + 2) * u * fabs(dS);
                for (int64_t c = 0; c < dh; c++) {
                    tO[r * dh + c] += 2.0 * fo * P * M * fabs(vj[c]);
                    tV[(b * T + j) * dh + c] +=
                        2.0 * ((double)(dh + 1) * A + T + 4.0) * u * P * M * fabs(g[c]);
                    tK[(b * T + j) * dh + c] += 2.0 * sc * e * fabs(q[c]);
                    tQ[r * dh + c] += 2.0 * sc * e * fabs(kj[c]);
                }
            }
        }
    for (int64_t e = 0; e < n; e++) /* expect_close: |g - c| <= TOL scale */
        tO[e] /= TOL, tQ[e] /= TOL, tK[e] /= TOL, tV[e] /= TOL;
    for (int64_t r = 0; r < items * T; r++)
        tL[r] /= TOL;
    expect_close("attn_causal_forward O", og[3], oc[3], n, 1, tO);
    expect_close("attn_causal_forward lse", og[4], oc[4], items * T, 1, tL);
    expect_close("attn_causal_backward dQ", bg[6], bc[6], n, 1, tQ);
    expect_close("attn_causal_backward dK", bg[7], bc[7], n, 1, tK);
    expect_close("attn_causal_backward dV", bg[8], bc[8], n, 1, tV);
    hg_test_release(mark);
}

static void test_attn_causal(void **state)
{
    (void)state;
    if (!have_gpu)
        skip();
    /* the widths compiled as constants (16, 32, 64) and others (8, 128: the widest) */
    attn_case(3, 37, 16, 0.0f, 700); /* two tiles and a partial one */
    attn_case(2, 33, 8, 0.2f, 710);  /* attention dropout */
    attn_case(2, 40, 64, 0.1f, 730);
    attn_case(1, 9, 32, 0.0f, 740);
    attn_case(1, 5, 128, 0.0f, 720);
    attn_case(2, 150, 64, 0.1f, 750); /* several tiles on both sides (CPU 64, GPU 32 rows) */
}

static int group_setup(void **state)
{
    (void)state;
    if (hg_kctx_init(&CPU, HG_DEVICE_CPU, 1) != HG_OK)
        return -1;
    int rc = hg_kctx_init(&GPU, HG_DEVICE_CUDA, 1);
    have_gpu = rc == HG_OK;
    if (!have_gpu)
        printf("test_cuda_nn: no CUDA context (%s: %s); every test is skipped\n",
               hg_strerror(rc), hg_last_error());
    else
        printf("test_cuda_nn: CUDA device %s\n", hg_k_device_name(&GPU));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_activations, teardown),
        cmocka_unit_test_teardown(test_bias, teardown),
        cmocka_unit_test_teardown(test_softmax, teardown),
        cmocka_unit_test_teardown(test_layernorm, teardown),
        cmocka_unit_test_teardown(test_cross_entropy, teardown),
        cmocka_unit_test_teardown(test_embed_heads_dropout, teardown),
        cmocka_unit_test_teardown(test_gemm_batched, teardown),
        cmocka_unit_test_teardown(test_attn_causal, teardown),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return failed == 0 && !have_gpu ? 77 : failed;
}
