/* test_nn_seq.c - the sequence-model ops on the CPU: embeddings (kernels/ops_nn.def) against
 * double references and central differences, with repeated and skipped ids; dropout with an
 * offset (kernels/ops_core.def): the mask's keep fraction, forward and backward drawing the same
 * mask, slices agreeing with the whole; attention heads split and merged; batched products
 * equal to one hg_k_gemm per item, bit for bit; and every op's results independent of the
 * thread count (bitwise). */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "../kernels/kernels.h"

static hg_kctx K = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

#define tf hg_test_floats
#define td hg_test_doubles

/* Unit roundoff of float. */
#define U32 0x1.0p-24

static int teardown(void **state)
{
    (void)state;
    hg_test_free_all();
    return 0;
}

static int32_t *ints(int64_t n) { return hg_test_alloc(n, sizeof(int32_t)); }

/* ------------------------------------------------------------------- embeddings */

/* Ids of rows: r mod 5 == 2 is padding (-1); the rest cycle over a few ids (repeats), V - 1 and
 * 0 among them. */
static void fill_ids(int32_t *ids, int64_t rows, int32_t V)
{
    for (int64_t r = 0; r < rows; r++)
        ids[r] = r % 5 == 2 ? -1 : r % 7 == 0 ? V - 1 : (int32_t)((r * 3) % 4);
}

typedef struct {
    const float *E, *pos, *dY;
    const int32_t *ids;
    int64_t rows, T, d;
    double scale;
} embctx;

/* sum_r,c dY[r][c] Y[r][c] with Y the embedding in double: the loss of the gradient check. */
static double embed_loss(void *c_)
{
    const embctx *c = c_;
    double s = 0.0;
    for (int64_t r = 0; r < c->rows; r++)
        for (int64_t j = 0; j < c->d; j++) {
            const double e = c->ids[r] >= 0 ? c->E[c->ids[r] * c->d + j] : 0.0;
            const double p = c->pos ? c->pos[(r % c->T) * c->d + j] : 0.0;
            s += c->dY[r * c->d + j] * (c->scale * e + p);
        }
    return s;
}

static void test_embed_forward(void **state)
{
    (void)state;
    const int32_t V = 9;
    const int64_t rows = 23, T = 7, d = 37;
    const float scale = 4.8989794f; /* sqrt(24): not a power of two */
    float *E = hg_test_uniform(V * d, -1.0f, 1.0f, 1), *pos = hg_test_uniform(T * d, -1, 1, 2);
    int32_t *ids = ints(rows);
    fill_ids(ids, rows, V);
    float *Y = tf(rows * d);
    double *want = td(rows * d);
    for (int with_pos = 0; with_pos < 2; with_pos++) {
        const float *P = with_pos ? pos : NULL;
        hg_test_fill_nan(Y, rows * d);
        hg_k_embed_forward(&K, Y, E, ids, P, rows, T, d, scale);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < d; j++)
                want[r * d + j] = (ids[r] >= 0 ? (double)scale * E[ids[r] * d + j] : 0.0) +
                                  (P ? P[(r % T) * d + j] : 0.0);
        /* one rounding (fmaf) of the exact value; the double reference is within 2^-53 of it */
        hg_assert_allclose(hg_test_f2d(Y, rows * d), want, (size_t)(rows * d), 1e-30, 1.01 * U32,
                           "embed_forward");
        for (int64_t r = 0; r < rows; r++) /* padding rows: exactly the position row, or 0 */
            if (ids[r] < 0)
                for (int64_t j = 0; j < d; j++)
                    assert_true(Y[r * d + j] == (P ? P[(r % T) * d + j] : 0.0f));
    }
}

static void test_embed_backward(void **state)
{
    (void)state;
    const int32_t V = 9;
    const int64_t rows = 23, T = 7, d = 70; /* two column tiles, the second partial */
    const float scale = 1.7f;
    float *E = hg_test_uniform(V * d, -1.0f, 1.0f, 11), *pos = hg_test_uniform(T * d, -1, 1, 12);
    float *dY = hg_test_uniform(rows * d, -1.0f, 1.0f, 13);
    float *dE0 = hg_test_uniform(V * d, -1.0f, 1.0f, 14), *dE = tf(V * d), *seq = tf(V * d);
    int32_t *ids = ints(rows);
    fill_ids(ids, rows, V);
    memcpy(dE, dE0, (size_t)(V * d) * sizeof *dE);
    hg_k_embed_backward(&K, dE, dY, ids, rows, d, scale);
    /* the contract's sequence, bit for bit: rows in order, one fmaf each */
    memcpy(seq, dE0, (size_t)(V * d) * sizeof *seq);
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] >= 0)
            for (int64_t j = 0; j < d; j++)
                seq[ids[r] * d + j] = fmaf(scale, dY[r * d + j], seq[ids[r] * d + j]);
    assert_memory_equal(dE, seq, (size_t)(V * d) * sizeof *dE);
    /* against double sums: (+=), repeated ids summed, padding rows skipped, absent ids untouched */
    double *want = td(V * d), *mag = td(V * d);
    int64_t count[16] = {0};
    for (int64_t i = 0; i < V * d; i++)
        want[i] = dE0[i], mag[i] = fabs(dE0[i]);
    for (int64_t r = 0; r < rows; r++)
        if (ids[r] >= 0) {
            count[ids[r]]++;
            for (int64_t j = 0; j < d; j++) {
                want[ids[r] * d + j] += (double)scale * dY[r * d + j];
                mag[ids[r] * d + j] += fabs((double)scale * dY[r * d + j]);
            }
        }
    assert_true(count[3] > 1 && count[V - 1] > 1 && count[4] == 0); /* the cases are there */
    for (int64_t i = 0; i < V * d; i++) {
        const int64_t m = count[i / d];
        if (m == 0)
            assert_true(dE[i] == dE0[i]);
        /* m fmaf steps, each one rounding of a partial sum bounded by mag */
        assert_true(fabs(dE[i] - want[i]) <= (double)m * U32 * mag[i] * 1.01);
    }
    /* the gradient of sum dY * Y(E), from dE = 0, against central differences */
    memset(dE, 0, (size_t)(V * d) * sizeof *dE);
    hg_k_embed_backward(&K, dE, dY, ids, rows, d, scale);
    embctx c = {E, pos, dY, ids, rows, T, d, scale};
    hg_check_grad(embed_loss, &c, E, hg_test_f2d(dE, V * d), (size_t)(V * d), (size_t)(V * d),
                  1e-2, 1e-5, 1e-4, "embed_backward");
}

/* ------------------------------------------------------------------- dropout */

static void test_dropout_offset(void **state)
{
    (void)state;
    enum { N = 1000000 };
    float *x = hg_test_uniform(N, 0.5f, 1.5f, 21), *dy = hg_test_uniform(N, -1.5f, -0.5f, 22);
    float *y = tf(N), *dx = tf(N), *part = tf(N);
    const uint64_t seed = 0x5eed, off = 123456789;
    /* p = 0: the identity, also in place */
    hg_k_dropout(&K, y, x, N, 0.0f, seed, off);
    assert_memory_equal(y, x, (size_t)N * sizeof *y);
    memcpy(part, x, (size_t)N * sizeof *part);
    hg_k_dropout(&K, part, part, N, 0.0f, seed, off);
    assert_memory_equal(part, x, (size_t)N * sizeof *part);
    static const float ps[] = {0.1f, 0.5f};
    for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
        const float p = ps[q], keep = 1.0f / (1.0f - p);
        hg_k_dropout(&K, y, x, N, p, seed, off);
        /* backward: the same call on the gradient (in place) draws the same mask */
        memcpy(dx, dy, (size_t)N * sizeof *dx);
        hg_k_dropout(&K, dx, dx, N, p, seed, off);
        int64_t kept = 0;
        for (int64_t i = 0; i < N; i++) {
            const int k = y[i] != 0.0f; /* x is never 0 */
            kept += k;
            assert_true(y[i] == (k ? x[i] * keep : 0.0f));
            assert_true(dx[i] == (k ? dy[i] * keep : 0.0f));
            assert_true(hg_k_dropout_scale((int64_t)(off + (uint64_t)i), p, seed) ==
                        (k ? keep : 0.0f));
        }
        /* kept ~ Binomial(N, 1 - p): within 5 sigma */
        const double sigma = sqrt((double)N * p * (1.0 - p));
        if (!(fabs((double)kept - (double)N * (1.0 - p)) <= 5.0 * sigma))
            fail_msg("dropout p=%g: kept %lld of %d (expected %.0f +- %.0f)", (double)p,
                     (long long)kept, N, (double)N * (1.0 - p), 5.0 * sigma);
        /* a slice with its offset is the slice of the whole */
        const int64_t a = 777, m = 5000;
        hg_k_dropout(&K, part, x + a, m, p, seed, off + (uint64_t)a);
        assert_memory_equal(part, y + a, (size_t)m * sizeof *part);
        /* another offset, another mask: the masks of two offsets differ on ~2p(1-p) of them */
        hg_k_dropout(&K, part, x, m, p, seed, off + 1000003);
        int64_t differ = 0;
        for (int64_t i = 0; i < m; i++)
            differ += (part[i] == 0.0f) != (y[i] == 0.0f);
        const double expect = 2.0 * p * (1.0 - p) * m;
        assert_true(fabs((double)differ - expect) <= 5.0 * sqrt(expect));
    }
}

/* ------------------------------------------------------------------- attention heads */

static void test_heads(void **state)
{
    (void)state;
    const int64_t B = 3, T = 5, H = 4, dh = 6, n = B * T * H * dh;
    float *x = hg_test_uniform(n, -1.0f, 1.0f, 31), *s = tf(n), *m = tf(n);
    hg_test_fill_nan(s, n);
    hg_test_fill_nan(m, n);
    hg_k_heads_split(&K, s, x, B, T, H, dh);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t e = 0; e < dh; e++)
                    assert_true(s[((b * H + h) * T + t) * dh + e] ==
                                x[((b * T + t) * H + h) * dh + e]);
    hg_k_heads_merge(&K, m, s, B, T, H, dh);
    assert_memory_equal(m, x, (size_t)n * sizeof *m);
    /* and the other way round: merge then split */
    hg_k_heads_merge(&K, m, x, B, T, H, dh);
    hg_k_heads_split(&K, s, m, B, T, H, dh);
    assert_memory_equal(s, x, (size_t)n * sizeof *s);
}

/* ------------------------------------------------------------------- batched products */

/* C (batch items of stride sC) from hg_k_gemm_batched on k, and one hg_k_gemm per item on K:
 * the same bits. Leading dimensions and strides padded beyond the minimum. */
static void batched_case(const hg_kctx *k, int ta, int tb, int64_t M, int64_t N, int64_t KK,
                         int64_t batch, float beta, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t ar = ta ? KK : M, ac = ta ? M : KK, br = tb ? N : KK, bc = tb ? KK : N;
    const int64_t lda = ac + 1, ldb = bc + 2, ldc = N + 3;
    const int64_t sA = ar * lda + 5, sB = br * ldb + 1, sC = M * ldc + 7;
    float *A = hg_test_uniform(sA * batch, -1.0f, 1.0f, seed);
    float *B = hg_test_uniform(sB * batch, -1.0f, 1.0f, seed + 1);
    float *C = hg_test_uniform(sC * batch, -1.0f, 1.0f, seed + 2), *C1 = tf(sC * batch);
    memcpy(C1, C, (size_t)(sC * batch) * sizeof *C);
    assert_int_equal(hg_k_gemm_batched(k, ta, tb, M, N, KK, 0.75f, A, lda, sA, B, ldb, sB, beta, C,
                                       ldc, sC, batch), 0);
    for (int64_t i = 0; i < batch; i++)
        assert_int_equal(hg_k_gemm(&K, ta, tb, M, N, KK, 0.75f, A + i * sA, lda, B + i * sB, ldb,
                                   beta, C1 + i * sC, ldc), 0);
    assert_memory_equal(C, C1, (size_t)(sC * batch) * sizeof *C);
    hg_test_release(mark);
}

static void test_gemm_batched(void **state)
{
    (void)state;
    hg_kctx k2;
    assert_int_equal(hg_kctx_init(&k2, HG_DEVICE_CPU, 2), 0);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            batched_case(&K, ta, tb, 7, 5, 9, 4, 0.0f, 41);
            batched_case(&K, ta, tb, 3, 8, 1, 3, 0.5f, 42);
            /* many small items (attention's shapes): the parallel path on 2 threads */
            batched_case(&k2, ta, tb, 30, 30, 16, 64, 0.0f, 43);
            batched_case(&k2, ta, tb, 30, 16, 30, 64, 1.0f, 44);
        }
    batched_case(&k2, 0, 1, 30, 30, 16, 512, 0.0f, 45);
    /* K = 0: C = beta C; batch 0 and M = 0: nothing */
    batched_case(&k2, 0, 0, 4, 4, 0, 5, 0.5f, 46);
    float one = 1.0f;
    assert_int_equal(hg_k_gemm_batched(&K, 0, 0, 3, 3, 3, 1.0f, NULL, 3, 9, NULL, 3, 9, 0.0f, NULL,
                                       3, 9, 0), 0);
    assert_int_equal(hg_k_gemm_batched(&K, 0, 0, 0, 3, 3, 1.0f, NULL, 3, 9, NULL, 3, 9, 0.0f, NULL,
                                       3, 9, 4), 0);
    /* sizes beyond the BLAS int are refused */
    assert_int_equal(hg_k_gemm_batched(&K, 0, 0, (int64_t)1 << 40, 1, 1, 1.0f, &one, 1, 1, &one, 1,
                                       1, 0.0f, &one, 1, 1, 1), -1);
    assert_int_equal(hg_k_gemm_batched(&K, 0, 0, 1, 1, 1, 1.0f, &one, 1, 1, &one, 1, 1, 0.0f, &one,
                                       1, 1, -1), -1);
    hg_kctx_destroy(&k2);
}

/* ------------------------------------------------------------------- thread count */

/* The ops at sizes that take their parallel paths give the same bits on 1 and 2 threads. */
static void test_threads(void **state)
{
    (void)state;
    const int32_t V = 50;
    const int64_t rows = 700, T = 35, d = 96, B = 20, H = 8, dh = 12;
    float *E = hg_test_uniform(V * d, -1.0f, 1.0f, 51), *pos = hg_test_uniform(T * d, -1, 1, 52);
    float *dY = hg_test_uniform(rows * d, -1.0f, 1.0f, 53);
    int32_t *ids = ints(rows);
    for (int64_t r = 0; r < rows; r++)
        ids[r] = r % 11 == 0 ? -1 : (int32_t)((r * r) % V);
    float *out[2][4];
    for (int run = 0; run < 2; run++) {
        hg_kctx k;
        assert_int_equal(hg_kctx_init(&k, HG_DEVICE_CPU, run ? 2 : 1), 0);
        float **o = out[run];
        o[0] = tf(rows * d), o[1] = tf(V * d), o[2] = tf(rows * d), o[3] = tf(rows * d);
        hg_k_embed_forward(&k, o[0], E, ids, pos, rows, T, d, 3.0f);
        hg_k_embed_backward(&k, o[1], dY, ids, rows, d, 3.0f);
        hg_k_heads_split(&k, o[2], dY, B, T, H, dh);
        hg_k_heads_merge(&k, o[3], o[2], B, T, H, dh);
        hg_kctx_destroy(&k);
    }
    assert_memory_equal(out[0][0], out[1][0], (size_t)(rows * d) * sizeof(float));
    assert_memory_equal(out[0][1], out[1][1], (size_t)(V * d) * sizeof(float));
    assert_memory_equal(out[0][2], out[1][2], (size_t)(rows * d) * sizeof(float));
    assert_memory_equal(out[0][3], dY, (size_t)(rows * d) * sizeof(float));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_embed_forward, teardown),
        cmocka_unit_test_teardown(test_embed_backward, teardown),
        cmocka_unit_test_teardown(test_dropout_offset, teardown),
        cmocka_unit_test_teardown(test_heads, teardown),
        cmocka_unit_test_teardown(test_gemm_batched, teardown),
        cmocka_unit_test_teardown(test_threads, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
