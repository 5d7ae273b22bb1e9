/* test_nn.c - the neural-network ops (kernels/ops_nn.def) on the CPU: each forward against naive
 * double code, each backward against central differences of that double forward (the loss
 * L = sum dy * forward, dy random), the invariants (softmax rows sum to 1 over their unmasked
 * keys and are 0 on the masked ones; layer-norm rows have mean 0 and variance 1 before the
 * affine map; ignored cross-entropy rows add nothing), in-place calls, and results independent
 * of the thread count (bitwise). */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "../kernels/kernels.h"

static hg_kctx K = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

#define tf hg_test_floats
#define td hg_test_doubles

static int teardown(void **state)
{
    (void)state;
    hg_test_free_all();
    return 0;
}

/* ------------------------------------------------------------------- double references */

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* Unmasked keys of row r (the contract of hg_k_softmax_forward). */
static int64_t keys_d(int64_t r, int64_t cols, int64_t causal, const int32_t *key_len, int64_t rpl)
{
    int64_t nk = cols;
    if (causal > 0 && r % causal + 1 < nk)
        nk = r % causal + 1;
    if (key_len && key_len[r / rpl] < nk)
        nk = key_len[r / rpl] < 0 ? 0 : key_len[r / rpl];
    return nk;
}

static void softmax_d(double *y, const float *x, int64_t rows, int64_t cols, double scale,
                      int64_t causal, const int32_t *key_len, int64_t rpl)
{
    for (int64_t r = 0; r < rows; r++) {
        const int64_t nk = keys_d(r, cols, causal, key_len, rpl);
        double m = -INFINITY, s = 0.0;
        for (int64_t j = 0; j < nk; j++)
            m = fmax(m, scale * x[r * cols + j]);
        for (int64_t j = 0; j < nk; j++)
            s += exp(scale * x[r * cols + j] - m);
        for (int64_t j = 0; j < cols; j++)
            y[r * cols + j] = j < nk ? exp(scale * x[r * cols + j] - m) / s : 0.0;
    }
}

static void layernorm_d(double *y, double *mean, double *rstd, const float *x, const float *gamma,
                        const float *beta, int64_t rows, int64_t cols, double eps)
{
    for (int64_t r = 0; r < rows; r++) {
        double mu = 0.0, v = 0.0;
        for (int64_t j = 0; j < cols; j++)
            mu += x[r * cols + j];
        mu /= (double)cols;
        for (int64_t j = 0; j < cols; j++)
            v += (x[r * cols + j] - mu) * (x[r * cols + j] - mu);
        const double rs = 1.0 / sqrt(v / (double)cols + eps);
        if (mean)
            mean[r] = mu, rstd[r] = rs;
        for (int64_t j = 0; j < cols; j++)
            y[r * cols + j] = (x[r * cols + j] - mu) * rs * (gamma ? gamma[j] : 1.0) +
                              (beta ? beta[j] : 0.0);
    }
}

static double ce_d(const float *l, const int32_t *t, int64_t rows, int64_t C, double eps,
                   int32_t ignore)
{
    double loss = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        if (t[r] == ignore)
            continue;
        double m = -INFINITY, s = 0.0;
        for (int64_t c = 0; c < C; c++)
            m = fmax(m, l[r * C + c]);
        for (int64_t c = 0; c < C; c++)
            s += exp(l[r * C + c] - m);
        const double lse = m + log(s);
        for (int64_t c = 0; c < C; c++) {
            const double q = (c == t[r] ? 1.0 - eps : 0.0) + eps / (double)C;
            loss -= q * (l[r * C + c] - lse);
        }
    }
    return loss;
}

static double dot_d(const double *a, const float *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double *to_d(const float *x, int64_t n)
{
    double *d = td(n);
    for (int64_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* ------------------------------------------------------------------- GELU */

typedef struct {
    float *x, *dy, *gamma, *beta, *b;
    const int32_t *t, *key_len;
    int64_t rows, cols, causal, rpl;
    double scale, eps;
    int32_t ignore;
    double *buf;
} fctx;

static double gelu_loss(void *c_)
{
    fctx *c = c_;
    double s = 0.0;
    for (int64_t i = 0; i < c->rows; i++)
        s += gelu_d(c->x[i]) * c->dy[i];
    return s;
}

static void test_gelu(void **state)
{
    (void)state;
    const int64_t n = 301;
    float *x = hg_test_uniform(n, -4.0f, 4.0f, 11), *dy = hg_test_uniform(n, -1.0f, 1.0f, 12);
    x[0] = 0.0f;
    float *y = tf(n), *dx = tf(n);
    double *want = td(n);
    hg_k_gelu_forward(&K, y, x, n);
    for (int64_t i = 0; i < n; i++)
        want[i] = gelu_d(x[i]);
    hg_assert_allclose(to_d(y, n), want, (size_t)n, 1e-6, 1e-5, "gelu forward");
    hg_k_gelu_backward(&K, dx, dy, x, n);
    fctx c = {.x = x, .dy = dy, .rows = n};
    hg_check_grad(gelu_loss, &c, x, to_d(dx, n), (size_t)n, (size_t)n, 1e-3, 1e-5, 1e-3,
                  "gelu backward");
    /* in place */
    float *buf = tf(n);
    memcpy(buf, x, (size_t)n * sizeof *buf);
    hg_k_gelu_forward(&K, buf, buf, n);
    assert_memory_equal(buf, y, (size_t)n * sizeof *y);
    memcpy(buf, dy, (size_t)n * sizeof *buf);
    hg_k_gelu_backward(&K, buf, buf, x, n);
    assert_memory_equal(buf, dx, (size_t)n * sizeof *dx);
}

/* ------------------------------------------------------------------- bias and column sums */

static double bias_loss(void *c_)
{
    fctx *c = c_;
    double s = 0.0;
    for (int64_t r = 0; r < c->rows; r++)
        for (int64_t j = 0; j < c->cols; j++)
            s += c->dy[r * c->cols + j] * ((double)c->x[r * c->cols + j] + c->b[j]);
    return s;
}

static void test_bias(void **state)
{
    (void)state;
    const int64_t rows = 150, cols = 70; /* two column tiles, the second partial */
    float *x = hg_test_uniform(rows * cols, -1.0f, 1.0f, 21), *b = hg_test_uniform(cols, -1, 1, 22);
    float *dy = hg_test_uniform(rows * cols, -1.0f, 1.0f, 23), *y = tf(rows * cols);
    memcpy(y, x, (size_t)(rows * cols) * sizeof *y);
    hg_k_add_bias_rows(&K, y, b, rows, cols);
    for (int64_t i = 0; i < rows * cols; i++)
        assert_true(y[i] == x[i] + b[i % cols]);
    /* the column sums are (+=) and the bias gradient */
    float *g = hg_test_uniform(cols, -1.0f, 1.0f, 24), *g0 = tf(cols);
    memcpy(g0, g, (size_t)cols * sizeof *g);
    hg_k_col_sums(&K, g, dy, rows, cols);
    double *want = td(cols), *grad = td(cols);
    for (int64_t j = 0; j < cols; j++) {
        double s = 0.0;
        for (int64_t r = 0; r < rows; r++)
            s += dy[r * cols + j];
        want[j] = s + g0[j];
        grad[j] = (double)g[j] - g0[j];
    }
    hg_assert_allclose(to_d(g, cols), want, (size_t)cols, 1e-6, 1e-6, "col_sums");
    fctx c = {.x = x, .dy = dy, .b = b, .rows = rows, .cols = cols};
    hg_check_grad(bias_loss, &c, b, grad, (size_t)cols, (size_t)cols, 1e-2, 1e-4, 1e-4,
                  "bias gradient");
}

/* ------------------------------------------------------------------- softmax */

static double softmax_loss(void *c_)
{
    fctx *c = c_;
    softmax_d(c->buf, c->x, c->rows, c->cols, c->scale, c->causal, c->key_len, c->rpl);
    return dot_d(c->buf, c->dy, c->rows * c->cols);
}

static void softmax_case(int64_t rows, int64_t cols, float scale, int64_t causal,
                         const int32_t *key_len, int64_t rpl, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t n = rows * cols;
    float *x = hg_test_uniform(n, -3.0f, 3.0f, seed), *dy = hg_test_uniform(n, -1, 1, seed + 1);
    float *y = tf(n), *dx = tf(n);
    hg_test_fill_nan(y, n);
    hg_test_fill_nan(dx, n);
    double *want = td(n);
    hg_k_softmax_forward(&K, y, x, rows, cols, scale, causal, key_len, rpl);
    softmax_d(want, x, rows, cols, scale, causal, key_len, rpl);
    hg_assert_allclose(to_d(y, n), want, (size_t)n, 1e-7, 1e-5, "softmax forward");
    for (int64_t r = 0; r < rows; r++) {
        const int64_t nk = keys_d(r, cols, causal, key_len, rpl);
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            if (j >= nk)
                assert_true(y[r * cols + j] == 0.0f); /* masked: exactly 0 */
            s += y[r * cols + j];
        }
        assert_true(fabs(s - (nk > 0 ? 1.0 : 0.0)) <= 1e-5);
    }
    hg_k_softmax_backward(&K, dx, dy, y, rows, cols, scale);
    fctx c = {.x = x, .dy = dy, .rows = rows, .cols = cols, .scale = scale, .causal = causal,
              .key_len = key_len, .rpl = rpl, .buf = td(n)};
    hg_check_grad(softmax_loss, &c, x, to_d(dx, n), (size_t)n, 400, 1e-3, 1e-5, 2e-3,
                  "softmax backward");
    /* in place: y over x, dx over dy */
    float *buf = tf(n);
    memcpy(buf, x, (size_t)n * sizeof *buf);
    hg_k_softmax_forward(&K, buf, buf, rows, cols, scale, causal, key_len, rpl);
    assert_memory_equal(buf, y, (size_t)n * sizeof *y);
    memcpy(buf, dy, (size_t)n * sizeof *buf);
    hg_k_softmax_backward(&K, buf, buf, y, rows, cols, scale);
    assert_memory_equal(buf, dx, (size_t)n * sizeof *dx);
    hg_test_release(mark);
}

static void test_softmax(void **state)
{
    (void)state;
    softmax_case(13, 37, 1.0f, 0, NULL, 1, 31);
    softmax_case(12, 6, 0.5f, 6, NULL, 1, 32); /* causal: two sequences of 6 queries */
    /* padding: 3 groups of 4 rows, key lengths 5, 0 (every key masked), 9 */
    static const int32_t len[3] = {5, 0, 9};
    softmax_case(12, 9, 0.35f, 0, len, 4, 33);
    softmax_case(12, 9, 2.0f, 4, len, 4, 34); /* both */
}

/* ------------------------------------------------------------------- layer norm */

enum { LN_X, LN_GAMMA, LN_BETA };
typedef struct {
    fctx f;
    int wrt;
} lnctx;

static double layernorm_loss(void *c_)
{
    fctx *c = c_;
    layernorm_d(c->buf, NULL, NULL, c->x, c->gamma, c->beta, c->rows, c->cols, c->eps);
    return dot_d(c->buf, c->dy, c->rows * c->cols);
}

static void layernorm_case(int64_t rows, int64_t cols, int affine, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t n = rows * cols;
    const float eps = 1e-5f;
    float *x = hg_test_uniform(n, -2.0f, 3.0f, seed), *dy = hg_test_uniform(n, -1, 1, seed + 1);
    float *gamma = affine ? hg_test_uniform(cols, 0.5f, 1.5f, seed + 2) : NULL;
    float *beta = affine ? hg_test_uniform(cols, -1.0f, 1.0f, seed + 3) : NULL;
    float *y = tf(n), *mean = tf(rows), *rstd = tf(rows), *dx = tf(n);
    hg_test_fill_nan(y, n);
    hg_test_fill_nan(dx, n);
    double *want = td(n), *wm = td(rows), *wr = td(rows);
    hg_k_layernorm_forward(&K, y, mean, rstd, x, gamma, beta, rows, cols, eps);
    layernorm_d(want, wm, wr, x, gamma, beta, rows, cols, eps);
    hg_assert_allclose(to_d(y, n), want, (size_t)n, 1e-5, 1e-5, "layernorm forward");
    hg_assert_allclose(to_d(mean, rows), wm, (size_t)rows, 1e-6, 1e-6, "layernorm mean");
    hg_assert_allclose(to_d(rstd, rows), wr, (size_t)rows, 0.0, 1e-6, "layernorm rstd");
    if (!affine) /* the normalised rows: mean 0, variance 1 (up to eps) */
        for (int64_t r = 0; r < rows; r++) {
            double s = 0.0, v = 0.0;
            for (int64_t j = 0; j < cols; j++)
                s += y[r * cols + j], v += (double)y[r * cols + j] * y[r * cols + j];
            assert_true(fabs(s / cols) < 1e-5 && fabs(v / cols - 1.0) < 1e-3);
        }
    float *dg = affine ? hg_test_uniform(cols, -1.0f, 1.0f, seed + 4) : NULL;
    float *db = affine ? hg_test_uniform(cols, -1.0f, 1.0f, seed + 5) : NULL;
    float *dg0 = tf(cols), *db0 = tf(cols);
    if (affine) {
        memcpy(dg0, dg, (size_t)cols * sizeof *dg);
        memcpy(db0, db, (size_t)cols * sizeof *db);
    }
    hg_k_layernorm_backward(&K, dx, dg, db, dy, x, mean, rstd, gamma, rows, cols);
    fctx c = {.x = x, .dy = dy, .gamma = gamma, .beta = beta, .rows = rows, .cols = cols,
              .eps = eps, .buf = td(n)};
    hg_check_grad(layernorm_loss, &c, x, to_d(dx, n), (size_t)n, 400, 1e-3, 1e-4, 2e-3,
                  "layernorm dx");
    if (affine) {
        double *gg = td(cols), *gb = td(cols);
        for (int64_t j = 0; j < cols; j++)
            gg[j] = (double)dg[j] - dg0[j], gb[j] = (double)db[j] - db0[j];
        hg_check_grad(layernorm_loss, &c, gamma, gg, (size_t)cols, (size_t)cols, 1e-3, 1e-4,
                      2e-3, "layernorm dgamma");
        hg_check_grad(layernorm_loss, &c, beta, gb, (size_t)cols, (size_t)cols, 1e-3, 1e-4, 2e-3,
                      "layernorm dbeta");
    }
    hg_test_release(mark);
}

static void test_layernorm(void **state)
{
    (void)state;
    layernorm_case(9, 70, 1, 41);
    layernorm_case(7, 33, 0, 42);
    layernorm_case(5, 1, 1, 43); /* one column: x - mean = 0 */
}

/* ------------------------------------------------------------------- cross-entropy */

static double ce_loss(void *c_)
{
    fctx *c = c_;
    return ce_d(c->x, c->t, c->rows, c->cols, c->eps, c->ignore);
}

static void ce_case(int64_t rows, int64_t C, float smoothing, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int32_t ignore = -100;
    float *l = hg_test_uniform(rows * C, -4.0f, 4.0f, seed), *dl = tf(rows * C);
    int32_t *t = hg_test_alloc(rows, sizeof *t);
    for (int64_t r = 0; r < rows; r++)
        t[r] = r % 5 == 3 ? ignore : (int32_t)((r * 7 + 3) % C);
    hg_test_fill_nan(dl, rows * C);
    const double loss = hg_k_cross_entropy(&K, dl, l, t, rows, C, smoothing, ignore, 1.0f);
    const double want = ce_d(l, t, rows, C, smoothing, ignore);
    assert_true(fabs(loss - want) <= 1e-6 * fabs(want) + 1e-9);
    for (int64_t r = 0; r < rows; r++)
        if (t[r] == ignore)
            for (int64_t c = 0; c < C; c++)
                assert_true(dl[r * C + c] == 0.0f);
    fctx c = {.x = l, .t = t, .rows = rows, .cols = C, .eps = smoothing, .ignore = ignore};
    hg_check_grad(ce_loss, &c, l, to_d(dl, rows * C), (size_t)(rows * C), 400, 1e-3, 1e-5, 2e-3,
                  "cross_entropy gradient");
    /* w scales the gradient; without dlogits the loss is the same */
    float *dl2 = tf(rows * C);
    const double loss2 = hg_k_cross_entropy(&K, dl2, l, t, rows, C, smoothing, ignore, 0.25f);
    assert_true(loss2 == loss);
    for (int64_t i = 0; i < rows * C; i++)
        assert_true(fabs(dl2[i] - 0.25 * dl[i]) <= 1e-7);
    assert_true(hg_k_cross_entropy(&K, NULL, l, t, rows, C, smoothing, ignore, 1.0f) == loss);
    hg_test_release(mark);
}

static void test_cross_entropy(void **state)
{
    (void)state;
    ce_case(17, 11, 0.0f, 51);
    ce_case(17, 11, 0.1f, 52);
    ce_case(3, 1, 0.2f, 53); /* one class: zero loss, zero gradient */
}

/* ------------------------------------------------------------------- thread count */

/* Every op at sizes that take the parallel paths gives the same bits on 1 and 3 threads. */
static void test_threads(void **state)
{
    (void)state;
    const int64_t rows = 1100, cols = 130, n = rows * cols;
    float *x = hg_test_uniform(n, -3.0f, 3.0f, 61), *dy = hg_test_uniform(n, -1, 1, 62);
    float *g = hg_test_uniform(cols, 0.5f, 1.5f, 63), *b = hg_test_uniform(cols, -1, 1, 64);
    int32_t *t = hg_test_alloc(rows, sizeof *t);
    for (int64_t r = 0; r < rows; r++)
        t[r] = r % 7 == 0 ? -1 : (int32_t)(r % cols);
    float *out[2][8];
    double loss[2];
    for (int run = 0; run < 2; run++) {
        hg_kctx k;
        assert_int_equal(hg_kctx_init(&k, HG_DEVICE_CPU, run ? 3 : 1), 0);
        float **o = out[run];
        for (int i = 0; i < 8; i++)
            o[i] = tf(i == 3 || i == 4 ? rows : n);
        hg_k_gelu_forward(&k, o[0], x, n);
        hg_k_gelu_backward(&k, o[1], dy, x, n);
        hg_k_softmax_forward(&k, o[2], x, rows, cols, 0.7f, 100, NULL, 1);
        hg_k_softmax_backward(&k, o[7], dy, o[2], rows, cols, 0.7f);
        hg_k_layernorm_forward(&k, o[5], o[3], o[4], x, g, b, rows, cols, 1e-5f);
        hg_k_layernorm_backward(&k, o[6], o[0] + 0, o[0] + cols, dy, x, o[3], o[4], g, rows, cols);
        hg_k_col_sums(&k, o[1], dy, rows, cols);
        loss[run] = hg_k_cross_entropy(&k, o[2], x, t, rows, cols, 0.1f, -1, 1.0f / rows);
        hg_kctx_destroy(&k);
    }
    for (int i = 0; i < 8; i++)
        assert_memory_equal(out[0][i], out[1][i],
                            (size_t)(i == 3 || i == 4 ? rows : n) * sizeof(float));
    assert_true(loss[0] == loss[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_gelu, teardown),
        cmocka_unit_test_teardown(test_bias, teardown),
        cmocka_unit_test_teardown(test_softmax, teardown),
        cmocka_unit_test_teardown(test_layernorm, teardown),
        cmocka_unit_test_teardown(test_cross_entropy, teardown),
        cmocka_unit_test_teardown(test_threads, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
