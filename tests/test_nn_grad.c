/* test_nn_grad.c - the Transformer's blocks composed of the kernel ops, forward and backward, as
 * the model composes them, against central differences of plain double forwards: masked
 * multi-head attention (heads split, Q K^T by gemm_batched, softmax with padding and causal
 * masks, times V, heads merged), the output projection into label-smoothed cross-entropy with
 * ignored (padding) rows, and the position-wise feed-forward block (linear, bias, ReLU, linear,
 * bias), and the fused causal attention op (with attention dropout) against the same. Each
 * float forward is also checked against its double twin, and the exact zeros the
 * masks promise (padded keys, ignored rows) are checked bit for bit. (The embedding's gradient
 * is checked in test_nn_seq.c, layer norm's in test_nn.c.)
 *
 * Losses are L = sum dY * Y with dY random (or the cross-entropy itself); the float gradients
 * carry a few float roundings of their terms, hence tolerances of 1e-5 absolute and 1e-4
 * relative against differences of the double loss with steps of 1e-3. */
#include "testutil.h"

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

/* ------------------------------------------------------------------- attention */

/* Queries (B, Tq, H dh), keys and values (B, Tk, H dh), as the model's projections give them;
 * key_len (B; NULL: none) the unpadded keys of each sequence; causal: query t sees keys <= t
 * (self-attention, Tq = Tk). */
typedef struct {
    int64_t B, H, Tq, Tk, dh;
    int causal;
    const int32_t *key_len;
    float *Xq, *Xk, *Xv, *dY;
    float p;       /* attention dropout (the fused op's cases), seed */
    uint64_t seed;
} att;

/* Keys query t of sequence b sees (a prefix). */
static int64_t att_keys(const att *a, int64_t b, int64_t t)
{
    int64_t nk = a->Tk;
    if (a->causal && t + 1 < nk)
        nk = t + 1;
    if (a->key_len && a->key_len[b] < nk)
        nk = a->key_len[b];
    return nk;
}

/* Y (B, Tq, H dh) in double; returns sum dY * Y. */
static double att_loss(void *c_)
{
    const att *a = c_;
    const int64_t D = a->H * a->dh;
    const double scale = 1.0 / sqrt((double)a->dh);
    double loss = 0.0, w[160];
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->H; h++)
            for (int64_t t = 0; t < a->Tq; t++) {
                const float *q = a->Xq + (b * a->Tq + t) * D + h * a->dh;
                const int64_t nk = att_keys(a, b, t);
                double m = -INFINITY, s = 0.0;
                for (int64_t j = 0; j < nk; j++) {
                    const float *k = a->Xk + (b * a->Tk + j) * D + h * a->dh;
                    double d = 0.0;
                    for (int64_t e = 0; e < a->dh; e++)
                        d += (double)q[e] * k[e];
                    w[j] = scale * d;
                    m = fmax(m, w[j]);
                }
                for (int64_t j = 0; j < nk; j++)
                    s += (w[j] = exp(w[j] - m));
                const int64_t row = (b * a->H + h) * a->Tq + t; /* of the (B, H, Tq, Tk) mask */
                for (int64_t j = 0; j < nk; j++)
                    w[j] *= hg_k_dropout_scale(row * a->Tk + j, a->p, a->seed);
                for (int64_t e = 0; e < a->dh; e++) {
                    double y = 0.0;
                    for (int64_t j = 0; j < nk; j++)
                        y += w[j] / s * a->Xv[(b * a->Tk + j) * D + h * a->dh + e];
                    loss += y * a->dY[(b * a->Tq + t) * D + h * a->dh + e];
                }
            }
    return loss;
}

/* The model's forward and backward of attention from the ops; Y, dXq, dXk, dXv (=). */
static void att_ops(const att *a, float *Y, float *dXq, float *dXk, float *dXv)
{
    const int64_t B = a->B, H = a->H, Tq = a->Tq, Tk = a->Tk, dh = a->dh, BH = B * H;
    const float scale = (float)(1.0 / sqrt((double)dh));
    float *Q = tf(BH * Tq * dh), *Kh = tf(BH * Tk * dh), *V = tf(BH * Tk * dh);
    float *S = tf(BH * Tq * Tk), *P = tf(BH * Tq * Tk), *O = tf(BH * Tq * dh);
    float *dO = tf(BH * Tq * dh), *dP = tf(BH * Tq * Tk), *dV = tf(BH * Tk * dh);
    float *dQ = tf(BH * Tq * dh), *dK = tf(BH * Tk * dh);
    hg_k_heads_split(&K, Q, a->Xq, B, Tq, H, dh);
    hg_k_heads_split(&K, Kh, a->Xk, B, Tk, H, dh);
    hg_k_heads_split(&K, V, a->Xv, B, Tk, H, dh);
    /* S = Q K^T; P = softmax(scale S) masked; O = P V */
    assert_int_equal(hg_k_gemm_batched(&K, 0, 1, Tq, Tk, dh, 1.0f, Q, dh, Tq * dh, Kh, dh, Tk * dh,
                                       0.0f, S, Tk, Tq * Tk, BH), 0);
    hg_k_softmax_forward(&K, P, S, BH * Tq, Tk, scale, a->causal ? Tq : 0, a->key_len, H * Tq);
    assert_int_equal(hg_k_gemm_batched(&K, 0, 0, Tq, dh, Tk, 1.0f, P, Tk, Tq * Tk, V, dh, Tk * dh,
                                       0.0f, O, dh, Tq * dh, BH), 0);
    hg_k_heads_merge(&K, Y, O, B, Tq, H, dh);
    /* backward: dP = dO V^T, dV = P^T dO, dS = softmax_backward (over dP), dQ = dS K,
     * dK = dS^T Q */
    hg_k_heads_split(&K, dO, a->dY, B, Tq, H, dh);
    assert_int_equal(hg_k_gemm_batched(&K, 0, 1, Tq, Tk, dh, 1.0f, dO, dh, Tq * dh, V, dh, Tk * dh,
                                       0.0f, dP, Tk, Tq * Tk, BH), 0);
    assert_int_equal(hg_k_gemm_batched(&K, 1, 0, Tk, dh, Tq, 1.0f, P, Tk, Tq * Tk, dO, dh, Tq * dh,
                                       0.0f, dV, dh, Tk * dh, BH), 0);
    hg_k_softmax_backward(&K, dP, dP, P, BH * Tq, Tk, scale);
    assert_int_equal(hg_k_gemm_batched(&K, 0, 0, Tq, dh, Tk, 1.0f, dP, Tk, Tq * Tk, Kh, dh,
                                       Tk * dh, 0.0f, dQ, dh, Tq * dh, BH), 0);
    assert_int_equal(hg_k_gemm_batched(&K, 1, 0, Tk, dh, Tq, 1.0f, dP, Tk, Tq * Tk, Q, dh,
                                       Tq * dh, 0.0f, dK, dh, Tk * dh, BH), 0);
    hg_k_heads_merge(&K, dXq, dQ, B, Tq, H, dh);
    hg_k_heads_merge(&K, dXk, dK, B, Tk, H, dh);
    hg_k_heads_merge(&K, dXv, dV, B, Tk, H, dh);
}

/* The same through the fused causal op (self-attention: Tq = Tk). */
static void att_fused_ops(const att *a, float *Y, float *dXq, float *dXk, float *dXv)
{
    const int64_t B = a->B, H = a->H, T = a->Tq, dh = a->dh, BH = B * H;
    const float scale = (float)(1.0 / sqrt((double)dh));
    float *Q = tf(BH * T * dh), *Kh = tf(BH * T * dh), *V = tf(BH * T * dh), *O = tf(BH * T * dh);
    float *lse = tf(BH * T), *dO = tf(BH * T * dh), *dQ = tf(BH * T * dh), *dK = tf(BH * T * dh);
    float *dV = tf(BH * T * dh);
    hg_k_heads_split(&K, Q, a->Xq, B, T, H, dh);
    hg_k_heads_split(&K, Kh, a->Xk, B, T, H, dh);
    hg_k_heads_split(&K, V, a->Xv, B, T, H, dh);
    hg_k_attn_causal_forward(&K, O, lse, Q, Kh, V, BH, T, dh, scale, a->p, a->seed);
    hg_k_heads_merge(&K, Y, O, B, T, H, dh);
    hg_k_heads_split(&K, dO, a->dY, B, T, H, dh);
    hg_k_attn_causal_backward(&K, dQ, dK, dV, dO, Q, Kh, V, O, lse, BH, T, dh, scale, a->p,
                              a->seed);
    hg_k_heads_merge(&K, dXq, dQ, B, T, H, dh);
    hg_k_heads_merge(&K, dXk, dK, B, T, H, dh);
    hg_k_heads_merge(&K, dXv, dV, B, T, H, dh);
}

static void att_case(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t dh, int causal,
                     const int32_t *key_len, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t D = H * dh, nq = B * Tq * D, nk = B * Tk * D;
    att a = {B, H, Tq, Tk, dh, causal, key_len, hg_test_uniform(nq, -1.5f, 1.5f, seed),
             hg_test_uniform(nk, -1.5f, 1.5f, seed + 1), hg_test_uniform(nk, -1, 1, seed + 2),
             hg_test_uniform(nq, -1, 1, seed + 3), 0.0f, 0};
    float *Y = tf(nq), *dXq = tf(nq), *dXk = tf(nk), *dXv = tf(nk);
    att_ops(&a, Y, dXq, dXk, dXv);
    /* the float forward is the double one: L from it agrees */
    double lf = 0.0;
    for (int64_t i = 0; i < nq; i++)
        lf += (double)Y[i] * a.dY[i];
    const double ld = att_loss(&a);
    assert_true(fabs(lf - ld) <= 1e-5 * (1.0 + fabs(ld)));
    /* padded keys get exactly no gradient */
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = key_len ? key_len[b] : Tk; j < Tk; j++)
            for (int64_t c = 0; c < D; c++)
                assert_true(dXk[(b * Tk + j) * D + c] == 0.0f &&
                            dXv[(b * Tk + j) * D + c] == 0.0f);
    hg_check_grad(att_loss, &a, a.Xq, hg_test_f2d(dXq, nq), (size_t)nq, 300, 1e-3, 1e-5, 1e-4,
                  "attention dXq");
    hg_check_grad(att_loss, &a, a.Xk, hg_test_f2d(dXk, nk), (size_t)nk, 300, 1e-3, 1e-5, 1e-4,
                  "attention dXk");
    hg_check_grad(att_loss, &a, a.Xv, hg_test_f2d(dXv, nk), (size_t)nk, 300, 1e-3, 1e-5, 1e-4,
                  "attention dXv");
    hg_test_release(mark);
}

/* The fused op: its forward is the double one (with the dropout mask), its gradients the
 * central differences, and without dropout it is the composed path of att_ops. */
static void att_fused_case(int64_t B, int64_t H, int64_t T, int64_t dh, float p, uint64_t seed)
{
    const int mark = hg_test_mark();
    const int64_t n = B * T * H * dh;
    att a = {B, H, T, T, dh, 1, NULL, hg_test_uniform(n, -1.5f, 1.5f, seed),
             hg_test_uniform(n, -1.5f, 1.5f, seed + 1), hg_test_uniform(n, -1, 1, seed + 2),
             hg_test_uniform(n, -1, 1, seed + 3), p, seed + 4};
    float *Y = tf(n), *dXq = tf(n), *dXk = tf(n), *dXv = tf(n);
    att_fused_ops(&a, Y, dXq, dXk, dXv);
    double lf = 0.0;
    for (int64_t i = 0; i < n; i++)
        lf += (double)Y[i] * a.dY[i];
    const double ld = att_loss(&a);
    assert_true(fabs(lf - ld) <= 1e-5 * (1.0 + fabs(ld)));
    hg_check_grad(att_loss, &a, a.Xq, hg_test_f2d(dXq, n), (size_t)n, 300, 1e-3, 1e-5, 1e-4,
                  "fused attention dXq");
    hg_check_grad(att_loss, &a, a.Xk, hg_test_f2d(dXk, n), (size_t)n, 300, 1e-3, 1e-5, 1e-4,
                  "fused attention dXk");
    hg_check_grad(att_loss, &a, a.Xv, hg_test_f2d(dXv, n), (size_t)n, 300, 1e-3, 1e-5, 1e-4,
                  "fused attention dXv");
    if (p == 0.0f) { /* the composed path: the same numbers to float rounding */
        float *Y2 = tf(n), *gq = tf(n), *gk = tf(n), *gv = tf(n);
        att_ops(&a, Y2, gq, gk, gv);
        const float *x[4] = {Y, dXq, dXk, dXv}, *y[4] = {Y2, gq, gk, gv};
        for (int v = 0; v < 4; v++)
            for (int64_t i = 0; i < n; i++)
                assert_true(fabs((double)x[v][i] - y[v][i]) <= 1e-5 * (1.0 + fabs(y[v][i])));
    }
    hg_test_release(mark);
}

static void test_attention_fused(void **state)
{
    (void)state;
    att_fused_case(2, 2, 5, 4, 0.0f, 41);  /* the composed path's numbers */
    att_fused_case(2, 3, 7, 3, 0.3f, 51);  /* attention dropout */
    att_fused_case(1, 1, 40, 8, 0.1f, 61);   /* longer rows */
    att_fused_case(1, 2, 150, 8, 0.1f, 81);  /* three query and key tiles of the CPU body */
}

static void test_attention(void **state)
{
    (void)state;
    static const int32_t enc_len[2] = {5, 3}, dec_len[2] = {6, 4}, mem_len[3] = {7, 2, 5};
    att_case(2, 2, 5, 5, 4, 0, enc_len, 1);  /* encoder self-attention, padded keys */
    att_case(2, 2, 6, 6, 3, 1, dec_len, 11); /* decoder self-attention: causal and padded */
    att_case(2, 3, 4, 4, 2, 1, NULL, 21);    /* causal alone */
    att_case(3, 2, 4, 7, 4, 0, mem_len, 31); /* cross-attention over a padded memory */
}

/* ------------------------------------------------------------------- output projection + loss */

/* logits = X W^T + b (rows x C), L = w CE(logits, targets; smoothing, ignored rows). */
typedef struct {
    int64_t rows, din, C;
    float *X, *W, *b;
    const int32_t *t;
    double smoothing, w;
    int32_t ignore;
} cectx;

static double ce_loss(void *c_)
{
    const cectx *c = c_;
    double loss = 0.0, l[64];
    for (int64_t r = 0; r < c->rows; r++) {
        if (c->t[r] == c->ignore)
            continue;
        double m = -INFINITY, s = 0.0;
        for (int64_t k = 0; k < c->C; k++) {
            double z = c->b[k];
            for (int64_t e = 0; e < c->din; e++)
                z += (double)c->X[r * c->din + e] * c->W[k * c->din + e];
            l[k] = z;
            m = fmax(m, z);
        }
        for (int64_t k = 0; k < c->C; k++)
            s += exp(l[k] - m);
        for (int64_t k = 0; k < c->C; k++) {
            const double q = (k == c->t[r] ? 1.0 - c->smoothing : 0.0) + c->smoothing / c->C;
            loss -= q * (l[k] - m - log(s));
        }
    }
    return c->w * loss;
}

static void test_projection_cross_entropy(void **state)
{
    (void)state;
    const int64_t rows = 12, din = 6, C = 9;
    const int32_t ignore = 0; /* the padding id */
    int32_t *t = hg_test_alloc(rows, sizeof *t);
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) {
        t[r] = r % 4 == 3 ? ignore : (int32_t)(1 + (r * 5) % (C - 1));
        valid += t[r] != ignore;
    }
    cectx c = {rows, din, C, hg_test_uniform(rows * din, -1, 1, 41),
               hg_test_uniform(C * din, -1, 1, 42), hg_test_uniform(C, -0.5f, 0.5f, 43), t, 0.1,
               1.0 / (double)valid, ignore};
    float *Z = tf(rows * C), *dZ = tf(rows * C), *dX = tf(rows * din), *dW = tf(C * din);
    float *db = tf(C);
    assert_int_equal(hg_k_gemm(&K, 0, 1, rows, C, din, 1.0f, c.X, din, c.W, din, 0.0f, Z, C), 0);
    hg_k_add_bias_rows(&K, Z, c.b, rows, C);
    const double loss = hg_k_cross_entropy(&K, dZ, Z, t, rows, C, (float)c.smoothing, ignore,
                                           (float)c.w);
    assert_true(fabs(c.w * loss - ce_loss(&c)) <= 1e-5 * fabs(ce_loss(&c)));
    assert_int_equal(hg_k_gemm(&K, 0, 0, rows, din, C, 1.0f, dZ, C, c.W, din, 0.0f, dX, din), 0);
    assert_int_equal(hg_k_gemm(&K, 1, 0, C, din, rows, 1.0f, dZ, C, c.X, din, 0.0f, dW, din), 0);
    hg_k_col_sums(&K, db, dZ, rows, C);
    for (int64_t r = 0; r < rows; r++) /* ignored rows: exactly no gradient */
        if (t[r] == ignore)
            for (int64_t e = 0; e < din; e++)
                assert_true(dX[r * din + e] == 0.0f);
    hg_check_grad(ce_loss, &c, c.X, hg_test_f2d(dX, rows * din), (size_t)(rows * din), 300, 1e-3,
                  1e-6, 1e-4, "projection + cross-entropy dX");
    hg_check_grad(ce_loss, &c, c.W, hg_test_f2d(dW, C * din), (size_t)(C * din), 300, 1e-3, 1e-6,
                  1e-4, "projection + cross-entropy dW");
    hg_check_grad(ce_loss, &c, c.b, hg_test_f2d(db, C), (size_t)C, 300, 1e-3, 1e-6, 1e-4,
                  "projection + cross-entropy db");
}

/* ------------------------------------------------------------------- feed-forward block */

/* Y = relu(X W1^T + b1) W2^T + b2 (X rows x d, W1 f x d, W2 d x f); L = sum dY * Y. */
typedef struct {
    int64_t rows, d, f;
    float *X, *W1, *b1, *W2, *b2, *dY;
} ffn;

/* Pre-activation (r, j) in double. */
static double ffn_z(const ffn *c, int64_t r, int64_t j)
{
    double z = c->b1[j];
    for (int64_t e = 0; e < c->d; e++)
        z += (double)c->X[r * c->d + e] * c->W1[j * c->d + e];
    return z;
}

static double ffn_loss(void *c_)
{
    const ffn *c = c_;
    double loss = 0.0, h[64];
    for (int64_t r = 0; r < c->rows; r++) {
        for (int64_t j = 0; j < c->f; j++)
            h[j] = fmax(ffn_z(c, r, j), 0.0);
        for (int64_t i = 0; i < c->d; i++) {
            double y = c->b2[i];
            for (int64_t j = 0; j < c->f; j++)
                y += h[j] * c->W2[i * c->f + j];
            loss += y * c->dY[r * c->d + i];
        }
    }
    return loss;
}

static void test_ffn(void **state)
{
    (void)state;
    const int64_t rows = 7, d = 5, f = 12;
    ffn c = {rows, d, f, hg_test_uniform(rows * d, -1, 1, 51), hg_test_uniform(f * d, -1, 1, 52),
             hg_test_uniform(f, -0.5f, 0.5f, 53), hg_test_uniform(d * f, -1, 1, 54),
             hg_test_uniform(d, -0.5f, 0.5f, 55), hg_test_uniform(rows * d, -1, 1, 56)};
    /* a step of h = 1e-3 in one entry of X, W1 or b1 moves a pre-activation by at most h
       (|X|, |W1| <= 1): none may cross ReLU's kink, or the differences are not derivatives */
    int64_t active = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < f; j++) {
            assert_true(fabs(ffn_z(&c, r, j)) > 2e-3);
            active += ffn_z(&c, r, j) > 0.0;
        }
    assert_true(active > 0 && active < rows * f); /* both sides of the kink are exercised */
    float *Z = tf(rows * f), *Hh = tf(rows * f), *Y = tf(rows * d), *dH = tf(rows * f);
    float *dX = tf(rows * d), *dW1 = tf(f * d), *db1 = tf(f), *dW2 = tf(d * f), *db2 = tf(d);
    assert_int_equal(hg_k_gemm(&K, 0, 1, rows, f, d, 1.0f, c.X, d, c.W1, d, 0.0f, Z, f), 0);
    hg_k_add_bias_rows(&K, Z, c.b1, rows, f);
    hg_k_relu_forward(&K, Hh, Z, rows * f);
    assert_int_equal(hg_k_gemm(&K, 0, 1, rows, d, f, 1.0f, Hh, f, c.W2, f, 0.0f, Y, d), 0);
    hg_k_add_bias_rows(&K, Y, c.b2, rows, d);
    double lf = 0.0;
    for (int64_t i = 0; i < rows * d; i++)
        lf += (double)Y[i] * c.dY[i];
    assert_true(fabs(lf - ffn_loss(&c)) <= 1e-5 * (1.0 + fabs(lf)));
    /* backward: dW2 = dY^T H, db2 = sums of dY, dH = dY W2, through ReLU, dW1 = dZ^T X,
     * db1 = sums of dZ, dX = dZ W1 */
    assert_int_equal(hg_k_gemm(&K, 1, 0, d, f, rows, 1.0f, c.dY, d, Hh, f, 0.0f, dW2, f), 0);
    hg_k_col_sums(&K, db2, c.dY, rows, d);
    assert_int_equal(hg_k_gemm(&K, 0, 0, rows, f, d, 1.0f, c.dY, d, c.W2, f, 0.0f, dH, f), 0);
    hg_k_relu_backward(&K, dH, dH, Z, rows * f);
    assert_int_equal(hg_k_gemm(&K, 1, 0, f, d, rows, 1.0f, dH, f, c.X, d, 0.0f, dW1, d), 0);
    hg_k_col_sums(&K, db1, dH, rows, f);
    assert_int_equal(hg_k_gemm(&K, 0, 0, rows, d, f, 1.0f, dH, f, c.W1, d, 0.0f, dX, d), 0);
    hg_check_grad(ffn_loss, &c, c.X, hg_test_f2d(dX, rows * d), (size_t)(rows * d), 300, 1e-3,
                  1e-5, 1e-4, "ffn dX");
    hg_check_grad(ffn_loss, &c, c.W1, hg_test_f2d(dW1, f * d), (size_t)(f * d), 300, 1e-3, 1e-5,
                  1e-4, "ffn dW1");
    hg_check_grad(ffn_loss, &c, c.b1, hg_test_f2d(db1, f), (size_t)f, 300, 1e-3, 1e-5, 1e-4,
                  "ffn db1");
    hg_check_grad(ffn_loss, &c, c.W2, hg_test_f2d(dW2, d * f), (size_t)(d * f), 300, 1e-3, 1e-5,
                  1e-4, "ffn dW2");
    hg_check_grad(ffn_loss, &c, c.b2, hg_test_f2d(db2, d), (size_t)d, 300, 1e-3, 1e-5, 1e-4,
                  "ffn db2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_attention, teardown),
        cmocka_unit_test_teardown(test_attention_fused, teardown),
        cmocka_unit_test_teardown(test_projection_cross_entropy, teardown),
        cmocka_unit_test_teardown(test_ffn, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
