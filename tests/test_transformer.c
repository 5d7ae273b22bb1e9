/* test_transformer.c - the encoder-decoder Transformer (src/models/): gradients of the whole
 * model against central differences, zero distortion of the four training methods, incremental
 * decoding against the full forward, thread-count independence, overfitting a fixed batch.
 * Suite: numerics.
 *
 * Gradient oracle. The loss L = sum of label-smoothed token losses / ntok is evaluated by the
 * float code; for each trainable tensor T a random unit direction v supported on T gives
 *   fd = (L(theta + h v) - L(theta - h v)) / (2 h),  compared with  g . v.
 * With h = 1e-2 the truncation error is ~h^2 |L'''| ~ 1e-5 and the rounding error of two float
 * evaluations of L (|L| ~ 3, relative ~1e-6) is ~1e-6 / h = 1e-4; tolerance 2e-3 + 2e-2 |g.v|.
 * A wrong term (a missing path, a transposed product, a wrong mask) moves g.v by O(|g.v|) and
 * fails. GELU keeps the loss smooth (ReLU kinks would break the differences); dropout is on with
 * a fixed mask (same seed in every evaluation). SST's sampled singular vectors receive the
 * method's "enhanced" gradient (G V_i instead of sigma_i G V_i), not the true one: for SST only
 * sigma and the ordinary parameters are differenced (the sst/ suite checks the vectors). */
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "../src/hg.h"
#include "../src/models/tf_internal.h"
#include "../src/models/transformer.h"

enum { B = 3, TS = 5, TT = 4, V = 13 };

static const int32_t src_ids[B * TS] = {3, 5, 7, 2, 9, /**/ 4, 4, 2, 0, 0, /**/ 8, 6, 5, 11, 2};
static const int32_t src_len[B] = {4, 3, 5};
static const int32_t tgt_in[B * TT] = {1, 6, 6, 9, /**/ 1, 12, 2, 2, /**/ 1, 3, 10, 7};
static const int32_t tgt_out[B * TT] = {6, 6, 9, 2, /**/ 12, 2, HG_TF_IGNORE, HG_TF_IGNORE,
                                        /**/ 3, 10, 7, 2};
enum { NTOK = 10 };

/* decoder_only: no encoder, trained positions, embeddings unscaled, N(0, 0.02) weights (OPT). */
static int decoder_only;

static hg_tf *build(const hg_kctx *k, hg_linear_method method, int gelu, float dropout,
                    int post_ln)
{
    hg_tf_config c;
    memset(&c, 0, sizeof c);
    c.vocab = V;
    c.dim = 8;
    c.heads = 2;
    c.ffn = 12;
    c.enc_layers = 2;
    c.dec_layers = 2;
    c.dropout = dropout;
    c.post_ln = post_ln;
    c.gelu = gelu;
    c.ln_eps = 1e-5f;
    c.max_len = 16;
    c.max_batch = 4;
    c.max_src_len = 8;
    c.max_tgt_len = 8;
    c.max_src_rows = 32;
    c.max_tgt_rows = 32;
    hg_linear_opts_default(&c.linear);
    c.linear.method = method;
    c.linear.rank = 3;
    c.linear.beta2 = 0.98f;
    c.seed = 7;
    if (decoder_only) {
        c.enc_layers = 0;
        c.learned_pos = 1;
        c.emb_scale = 1.0f;
        c.init_std = 0.2f;
    }
    hg_tf *m = NULL;
    assert_int_equal(hg_tf_init(&m, k, &c), HG_OK);
    return m;
}

static const hg_tf_batch batch = {B, TS, TT, NTOK, src_ids, src_len, tgt_in, tgt_out};
static const hg_tf_batch lm_batch = {B, 0, TT, NTOK, NULL, NULL, tgt_in, tgt_out};

static double mean_loss(hg_tf *m, int train, int grad)
{
    double l;
    assert_int_equal(hg_tf_loss(m, decoder_only ? &lm_batch : &batch, 0.1f, train, 99, grad, &l),
                     HG_OK);
    return l / NTOK;
}

static void gradcheck(hg_linear_method method, int post_ln)
{
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL};
    hg_tf *m = build(&k, method, 1, 0.1f, post_ln);
    hg_params *P = hg_tf_params(m);
    hg_params_zero_grad(P);
    mean_loss(m, 1, 1);
    hg_rng r;
    hg_rng_seed(&r, 5);
    int checked = 0;
    for (int id = 0; id < hg_params_num_tensors(P); id++) {
        float *g = hg_params_grad(P, id), *x = hg_params_data(P, id);
        const char *name = hg_params_name(P, id);
        if (!g)
            continue;
        if (method == HG_LINEAR_SST && (strstr(name, ".U_S") || strstr(name, ".V_S")))
            continue;
        const int64_t n = hg_params_count(P, id);
        double *v = hg_calloc((size_t)n, sizeof *v, "direction"), nv = 0.0, gv = 0.0;
        float *x0 = hg_calloc((size_t)n, sizeof *x0, "copy");
        for (int64_t i = 0; i < n; i++) {
            v[i] = hg_rng_normal(&r);
            nv += v[i] * v[i];
        }
        memcpy(x0, x, (size_t)n * sizeof *x0);
        for (int64_t i = 0; i < n; i++) {
            v[i] /= sqrt(nv);
            gv += v[i] * g[i];
        }
        const double h = 1e-2;
        double L[2];
        for (int s = 0; s < 2; s++) {
            for (int64_t i = 0; i < n; i++)
                x[i] = (float)(x0[i] + (s ? -h : h) * v[i]);
            hg_tf_rematerialise(m);
            L[s] = mean_loss(m, 1, 0);
        }
        memcpy(x, x0, (size_t)n * sizeof *x0);
        hg_tf_rematerialise(m);
        const double fd = (L[0] - L[1]) / (2 * h), tol = 2e-3 + 2e-2 * fabs(gv);
        if (fabs(fd - gv) > tol)
            fail_msg("%s (%s): g.v = %.6g, central difference %.6g (tolerance %.3g)", name,
                     hg_linear_method_name(method), gv, fd, tol);
        checked++;
        hg_free(v);
        hg_free(x0);
    }
    assert_true(checked >= 20);
    hg_tf_free(m);
}

static void test_grad_full(void **state) { (void)state; gradcheck(HG_LINEAR_FULL, 0); }
static void test_grad_full_post_ln(void **state) { (void)state; gradcheck(HG_LINEAR_FULL, 1); }
static void test_grad_lora(void **state) { (void)state; gradcheck(HG_LINEAR_LORA, 0); }
static void test_grad_sst(void **state) { (void)state; gradcheck(HG_LINEAR_SST, 0); }

/* The decoder-only model (a causal language model): gradients, and decoding step by step. */
static void test_decoder_only(void **state)
{
    (void)state;
    decoder_only = 1;
    gradcheck(HG_LINEAR_FULL, 0);
    gradcheck(HG_LINEAR_SST, 0);
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL};
    hg_tf *m = build(&k, HG_LINEAR_FULL, 0, 0.1f, 0);
    mean_loss(m, 0, 0);
    float *full = hg_calloc(B * TT * V, sizeof *full, "logits");
    memcpy(full, m->logits, B * TT * V * sizeof *full);
    float *lg = hg_calloc(B * V, sizeof *lg, "logits");
    assert_int_equal(hg_tf_decode_init(m, B, B, 1, TT), HG_OK);
    assert_int_equal(hg_tf_decode_start(m, NULL, NULL, B, 0), HG_OK);
    int64_t parent[B], row[B];
    int32_t tok[B];
    for (int64_t t = 0; t < TT; t++) {
        for (int64_t i = 0; i < B; i++) {
            row[i] = parent[i] = i;
            tok[i] = tgt_in[i * TT + t];
        }
        assert_int_equal(hg_tf_decode_step(m, t, tok, parent, row, B, lg), HG_OK);
        for (int64_t i = 0; i < B; i++)
            hg_assert_allclose_f(lg + i * V, full + (i * TT + t) * V, V, 1e-5, 1e-4,
                                 "decoded logits");
    }
    hg_free(lg);
    hg_free(full);
    hg_tf_free(m);
    decoder_only = 0;
}

/* Zero distortion: at initialisation every method computes the same function. */
static void test_zero_distortion(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL};
    const hg_linear_method ms[4] = {HG_LINEAR_FULL, HG_LINEAR_LORA, HG_LINEAR_RELORA,
                                    HG_LINEAR_SST};
    double L[4];
    for (int i = 0; i < 4; i++) {
        hg_tf *m = build(&k, ms[i], 0, 0.1f, 0);
        L[i] = mean_loss(m, 0, 0);
        hg_tf_free(m);
    }
    for (int i = 1; i < 4; i++)
        assert_true(fabs(L[i] - L[0]) <= 1e-5 * fabs(L[0]));
}

/* Decoding step by step (with a reordered cache) gives the logits of the full forward. */
static void test_decode_matches_forward(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL};
    for (int post = 0; post < 2; post++) {
        hg_tf *m = build(&k, HG_LINEAR_FULL, 0, 0.1f, post);
        mean_loss(m, 0, 0); /* m->logits: (B TT x V) */
        float *full = hg_calloc(B * TT * V, sizeof *full, "logits");
        memcpy(full, m->logits, B * TT * V * sizeof *full);
        /* rows: every source twice, the two copies swapped at every step */
        enum { R = 2 * B };
        assert_int_equal(hg_tf_decode_init(m, B, R, TS, TT), HG_OK);
        assert_int_equal(hg_tf_decode_start(m, src_ids, src_len, B, TS), HG_OK);
        float *lg = hg_calloc(R * V, sizeof *lg, "logits");
        int64_t parent[R], src_row[R];
        int32_t tok[R];
        for (int64_t t = 0; t < TT; t++) {
            for (int64_t i = 0; i < R; i++) {
                src_row[i] = i / 2;
                parent[i] = t == 0 ? -1 : (i ^ 1);
                tok[i] = tgt_in[src_row[i] * TT + t];
            }
            assert_int_equal(hg_tf_decode_step(m, t, tok, parent, src_row, R, lg), HG_OK);
            for (int64_t i = 0; i < R; i++)
                hg_assert_allclose_f(lg + i * V, full + (src_row[i] * TT + t) * V, V, 1e-5, 1e-4,
                                     "decoded logits");
        }
        hg_free(lg);
        hg_free(full);
        hg_tf_free(m);
    }
}

/* One thread or two: the same loss and gradients, bit for bit. */
static void test_threads(void **state)
{
    (void)state;
    float *g[2];
    int64_t n = 0;
    for (int t = 0; t < 2; t++) {
        const hg_kctx k = {HG_DEVICE_CPU, t + 1, NULL, NULL};
        hg_tf *m = build(&k, HG_LINEAR_SST, 0, 0.1f, 0);
        hg_params *P = hg_tf_params(m);
        hg_params_zero_grad(P);
        mean_loss(m, 1, 1);
        n = hg_params_num_trainable(P);
        g[t] = hg_calloc((size_t)n, sizeof *g[t], "gradients");
        memcpy(g[t], hg_params_grad(P, 0), (size_t)n * sizeof *g[t]);
        hg_tf_free(m);
    }
    assert_memory_equal(g[0], g[1], (size_t)n * sizeof *g[0]);
    hg_free(g[0]);
    hg_free(g[1]);
}

/* A tiny model learns a fixed batch: the loss falls near zero. */
static void test_overfit(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL};
    hg_tf *m = build(&k, HG_LINEAR_FULL, 0, 0.0f, 0);
    hg_params *P = hg_tf_params(m);
    double first = 0.0, last = 0.0;
    for (int step = 1; step <= 300; step++) {
        double l;
        hg_params_zero_grad(P);
        assert_int_equal(hg_tf_loss(m, &batch, 0.0f, 1, (uint64_t)step, 1, &l), HG_OK);
        assert_int_equal(hg_params_step(P, 1e-2f), HG_OK);
        if (step == 1)
            first = l / NTOK;
        last = l / NTOK;
    }
    assert_true(first > 1.5);
    if (!(last < 0.05))
        fail_msg("loss %.4f -> %.4f after 300 steps", first, last);
    hg_tf_free(m);
}

/* A batch beyond the capacity is refused with a message. */
static void test_capacity(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL};
    hg_tf *m = build(&k, HG_LINEAR_FULL, 0, 0.0f, 0);
    hg_tf_batch b = batch;
    b.Ts = 9;
    double l;
    assert_int_equal(hg_tf_loss(m, &b, 0.0f, 0, 0, 0, &l), HG_EINVAL);
    assert_non_null(strstr(hg_last_error(), "capacity"));
    hg_tf_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_full),
        cmocka_unit_test(test_grad_full_post_ln),
        cmocka_unit_test(test_grad_lora),
        cmocka_unit_test(test_grad_sst),
        cmocka_unit_test(test_decoder_only),
        cmocka_unit_test(test_zero_distortion),
        cmocka_unit_test(test_decode_matches_forward),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_overfit),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
