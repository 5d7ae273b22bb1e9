/* test_transformer.c - the Transformer (src/models/), encoder-decoder and decoder-only: gradients
 * of the whole model against central differences (also at language-model shapes: causal
 * attention over 16 positions with 4 heads and a learned position table, the tied output
 * projection over a 50304-token vocabulary), causality, zero distortion of the four training
 * methods, incremental decoding against the full forward, thread-count independence,
 * overfitting a fixed batch. Suite: numerics.
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

static double loss_of(hg_tf *m, const hg_tf_batch *b, int train, int grad)
{
    double l;
    assert_int_equal(hg_tf_loss(m, b, 0.1f, train, 99, grad, &l), HG_OK);
    return l / (double)b->ntok;
}

static double mean_loss(hg_tf *m, int train, int grad)
{
    return loss_of(m, decoder_only ? &lm_batch : &batch, train, grad);
}

/* g . v and the central difference (L(x + h v) - L(x - h v)) / (2 h) of b's mean training loss
 * along v (hg_params_count values over tensor id, every other parameter fixed), g the gradient
 * of that loss at x (the current values, restored afterwards). */
static void directional(hg_tf *m, const hg_tf_batch *b, int id, const float *g, const double *v,
                        double h, double *gv, double *fd)
{
    hg_params *P = hg_tf_params(m);
    float *x = hg_params_data(P, id);
    const int64_t n = hg_params_count(P, id);
    float *x0 = hg_calloc((size_t)n, sizeof *x0, "copy");
    memcpy(x0, x, (size_t)n * sizeof *x0);
    *gv = 0.0;
    for (int64_t i = 0; i < n; i++)
        *gv += v[i] * g[i];
    double L[2];
    for (int s = 0; s < 2; s++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(x0[i] + (s ? -h : h) * v[i]);
        hg_tf_rematerialise(m);
        L[s] = loss_of(m, b, 1, 0);
    }
    memcpy(x, x0, (size_t)n * sizeof *x0);
    hg_tf_rematerialise(m);
    *fd = (L[0] - L[1]) / (2 * h);
    hg_free(x0);
}

/* v (n values): a random unit vector on [from, from + len), zero elsewhere. */
static void unit_direction(double *v, int64_t n, int64_t from, int64_t len, hg_rng *r)
{
    double nv = 0.0;
    memset(v, 0, (size_t)n * sizeof *v);
    for (int64_t i = from; i < from + len; i++) {
        v[i] = hg_rng_normal(r);
        nv += v[i] * v[i];
    }
    for (int64_t i = from; i < from + len; i++)
        v[i] /= sqrt(nv);
}

/* The tolerance of the header's oracle, failing with the tensor and what was checked. */
static void expect_close(double gv, double fd, const char *name, const char *what)
{
    const double tol = 2e-3 + 2e-2 * fabs(gv);
    if (fabs(fd - gv) > tol)
        fail_msg("%s (%s): g.v = %.6g, central difference %.6g (tolerance %.3g)", name, what, gv,
                 fd, tol);
}

/* Every trainable tensor of m (SST: sigma and the ordinary parameters) along a random unit
 * direction, at the gradient of b's mean loss; returns the tensors checked. */
static int check_tensors(hg_tf *m, const hg_tf_batch *b, hg_linear_method method)
{
    hg_params *P = hg_tf_params(m);
    hg_params_zero_grad(P);
    loss_of(m, b, 1, 1);
    hg_rng r;
    hg_rng_seed(&r, 5);
    int checked = 0;
    for (int id = 0; id < hg_params_num_tensors(P); id++) {
        const float *g = hg_params_grad(P, id);
        const char *name = hg_params_name(P, id);
        if (!g)
            continue;
        if (method == HG_LINEAR_SST && (strstr(name, ".U_S") || strstr(name, ".V_S")))
            continue;
        const int64_t n = hg_params_count(P, id);
        double *v = hg_calloc((size_t)n, sizeof *v, "direction"), gv, fd;
        unit_direction(v, n, 0, n, &r);
        directional(m, b, id, g, v, 1e-2, &gv, &fd);
        expect_close(gv, fd, name, hg_linear_method_name(method));
        checked++;
        hg_free(v);
    }
    return checked;
}

static void gradcheck(hg_linear_method method, int post_ln)
{
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    hg_tf *m = build(&k, method, 1, 0.1f, post_ln);
    assert_true(check_tensors(m, decoder_only ? &lm_batch : &batch, method) >= 20);
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
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
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

/* A decoder-only model as hgnn-lm builds it (learned positions, unscaled embeddings, N(0, std^2)
 * weights, one layer norm per sublayer before it), but GELU (smooth for the differences). */
static hg_tf *build_lm(const hg_kctx *k, hg_linear_method method, int64_t vocab, int dim,
                       int heads, int layers, int64_t positions, int64_t B, int64_t T,
                       float dropout)
{
    hg_tf_config c;
    memset(&c, 0, sizeof c);
    c.vocab = vocab;
    c.dim = dim;
    c.heads = heads;
    c.ffn = 2 * dim;
    c.dec_layers = layers;
    c.dropout = dropout;
    c.gelu = 1;
    c.ln_eps = 1e-5f;
    c.learned_pos = 1;
    c.emb_scale = 1.0f;
    c.init_std = 0.2f;
    c.max_len = positions;
    c.max_batch = B;
    c.max_src_len = 1;
    c.max_tgt_len = T;
    c.max_src_rows = 1;
    c.max_tgt_rows = B * T;
    hg_linear_opts_default(&c.linear);
    c.linear.method = method;
    c.linear.rank = 3;
    c.seed = 11;
    hg_tf *m = NULL;
    assert_int_equal(hg_tf_init(&m, k, &c), HG_OK);
    return m;
}

/* The id of the tensor named `name`. */
static int tensor_id(hg_tf *m, const char *name)
{
    hg_params *P = hg_tf_params(m);
    for (int id = 0; id < hg_params_num_tensors(P); id++)
        if (!strcmp(hg_params_name(P, id), name))
            return id;
    fail_msg("no tensor %s", name);
    return -1;
}

/* Causal self-attention at an OPT-like shape: 4 heads, windows of T = 16 tokens (the second cut
 * short: its last 3 targets ignored, as hgnn-lm's last window), a table of 24 learned
 * positions. Every tensor along a random direction (full rank and SST); the position table row
 * by row: rows 0, 7 and 15 against central differences, the rows no window reaches (16..23)
 * exactly zero; causality: with targets only before position 8, the rows from 8 on are
 * exactly zero too (a later position reaching an earlier one through attention would move
 * them). */
static void test_grad_causal_attention(void **state)
{
    (void)state;
    enum { LB = 2, LT = 16, NPOS = 24, LV = 64, D = 16 };
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    int32_t in[LB * LT], out[LB * LT];
    hg_rng r;
    hg_rng_seed(&r, 21);
    int32_t seq[LB][LT + 1];
    for (int b = 0; b < LB; b++)
        for (int t = 0; t <= LT; t++)
            seq[b][t] = (int32_t)hg_rng_below(&r, LV);
    for (int b = 0; b < LB; b++)
        for (int t = 0; t < LT; t++) {
            in[b * LT + t] = seq[b][t];
            out[b * LT + t] = b == 1 && t >= LT - 3 ? HG_TF_IGNORE : seq[b][t + 1];
        }
    const hg_tf_batch lb = {LB, 0, LT, LB * LT - 3, NULL, NULL, in, out};
    const hg_linear_method methods[2] = {HG_LINEAR_FULL, HG_LINEAR_SST};
    for (int mi = 0; mi < 2; mi++) {
        hg_tf *m = build_lm(&k, methods[mi], LV, D, 4, 2, NPOS, LB, LT, 0.1f);
        assert_true(check_tensors(m, &lb, methods[mi]) >= 20);
        hg_tf_free(m);
    }
    hg_tf *m = build_lm(&k, HG_LINEAR_FULL, LV, D, 4, 2, NPOS, LB, LT, 0.1f);
    hg_params *P = hg_tf_params(m);
    const int pos = tensor_id(m, "pos");
    const float *g = hg_params_grad(P, pos);
    double v[NPOS * D], gv, fd;
    hg_params_zero_grad(P);
    loss_of(m, &lb, 1, 1);
    const int rows[3] = {0, 7, 15};
    for (int i = 0; i < 3; i++) {
        unit_direction(v, NPOS * D, rows[i] * D, D, &r);
        directional(m, &lb, pos, g, v, 1e-2, &gv, &fd);
        char what[32];
        snprintf(what, sizeof what, "row %d", rows[i]);
        expect_close(gv, fd, "pos", what);
        assert_true(fabs(gv) > 1e-3); /* a row that matters */
    }
    for (int e = LT * D; e < NPOS * D; e++)
        assert_true(g[e] == 0.0f);
    /* causality: targets before position 8 only */
    int32_t early[LB * LT];
    for (int e = 0; e < LB * LT; e++)
        early[e] = e % LT < 8 ? out[e] : HG_TF_IGNORE;
    const hg_tf_batch eb = {LB, 0, LT, LB * 8, NULL, NULL, in, early};
    hg_params_zero_grad(P);
    loss_of(m, &eb, 1, 1);
    for (int p = 0; p < NPOS; p++) {
        double sq = 0.0;
        for (int c = 0; c < D; c++)
            sq += (double)g[p * D + c] * g[p * D + c];
        if ((p < 8) != (sq > 0.0))
            fail_msg("position %d: gradient norm %g with targets before position 8 only", p,
                     sqrt(sq));
    }
    hg_tf_free(m);
}

/* The tied output projection with cross-entropy over GPT-2's padded vocabulary (50304 classes)
 * at d = 8, 12 rows. The embedding rows, each along its own random direction: rows read only
 * as inputs (9, 7), only as targets (50000, 50255), as both (17, 21, 40000). Every other row
 * receives only the softmax's share sum_r p_rv h_r / ntok, far below the differences'
 * resolution one by one; together they are checked along "every row + u" with u the direction
 * of sum_r h_r: the logits all move by h_r . u, which the softmax cancels, so the output
 * projection's part of g . v must sum to zero over the rows (without the softmax's share it
 * would be about -|sum_r h_r| / ntok). */
static void test_grad_tied_output(void **state)
{
    (void)state;
    enum { LB = 2, LT = 6, LV = 50304, D = 8 };
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    static const int32_t in[LB * LT] = {9, 17, 21, 17, 40000, 21, /**/ 7, 21, 33, 33, 17, 5};
    static const int32_t out[LB * LT] = {17, 21, 17, 40000, 21, 50000, /**/ 21, 33, 33, 17, 5,
                                         50255};
    const hg_tf_batch lb = {LB, 0, LT, LB * LT, NULL, NULL, in, out};
    hg_tf *m = build_lm(&k, HG_LINEAR_FULL, LV, D, 2, 1, LT, LB, LT, 0.0f);
    assert_true(check_tensors(m, &lb, HG_LINEAR_FULL) >= 10);
    hg_params *P = hg_tf_params(m);
    const int emb = tensor_id(m, "emb");
    const float *g = hg_params_grad(P, emb);
    double *v = hg_calloc((size_t)LV * D, sizeof *v, "direction"), gv, fd;
    hg_params_zero_grad(P);
    loss_of(m, &lb, 1, 1);
    double u[D] = {0}, nu = 0.0;
    for (int rr = 0; rr < LB * LT; rr++)
        for (int c = 0; c < D; c++)
            u[c] += m->h[rr * D + c];
    for (int c = 0; c < D; c++)
        nu += u[c] * u[c];
    assert_true(nu > 1e-6);
    hg_rng r;
    hg_rng_seed(&r, 8);
    const int rows[7] = {9, 7, 50000, 50255, 17, 21, 40000};
    for (int i = 0; i < 7; i++) {
        unit_direction(v, (int64_t)LV * D, (int64_t)rows[i] * D, D, &r);
        directional(m, &lb, emb, g, v, 1e-2, &gv, &fd);
        char what[32];
        snprintf(what, sizeof what, "row %d", rows[i]);
        expect_close(gv, fd, "emb", what);
        assert_true(fabs(gv) > 1e-3);
    }
    for (int64_t e = 0; e < (int64_t)LV * D; e++)
        v[e] = u[e % D] / sqrt(nu);
    directional(m, &lb, emb, g, v, 1e-2, &gv, &fd);
    expect_close(gv, fd, "emb", "every row + u");
    hg_free(v);
    hg_tf_free(m);
}

/* Zero distortion: at initialisation every method computes the same function. LoRA and ReLoRA*
 * start from W0 + s B A with B = 0: the product is exactly 0 and W0 + 0 = W0, the same bits, so
 * the same loss. SST's weight is rebuilt in float from W0's SVD: each entry is off by at most
 * (k + 2) u |W|-relative (u = 2^-24, k = min(m, n) = 8 products summed, plus the stored factors'
 * rounding), so to first order the loss moves by at most sum over the maps of
 * (k + 2) u sum_ij |W_ij dL/dW_ij|, computed here from the full model's gradient. */
static void test_zero_distortion(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    const hg_linear_method ms[4] = {HG_LINEAR_FULL, HG_LINEAR_LORA, HG_LINEAR_RELORA,
                                    HG_LINEAR_SST};
    double L[4], bound = 0.0;
    for (int i = 0; i < 4; i++) {
        hg_tf *m = build(&k, ms[i], 0, 0.1f, 0);
        L[i] = mean_loss(m, 0, 0);
        if (ms[i] == HG_LINEAR_FULL) {
            hg_params *P = hg_tf_params(m);
            hg_params_zero_grad(P);
            mean_loss(m, 0, 1);
            int maps = 0;
            for (int id = 0; id < hg_params_num_tensors(P); id++) {
                const char *name = hg_params_name(P, id);
                const size_t len = strlen(name);
                if (len < 2 || strcmp(name + len - 2, ".W") != 0)
                    continue;
                const float *w = hg_params_data(P, id), *g = hg_params_grad(P, id);
                double s = 0.0;
                for (int64_t e = 0; e < hg_params_count(P, id); e++)
                    s += fabs((double)w[e] * g[e]);
                bound += (8 + 2) * 0x1p-24 * s;
                maps++;
            }
            assert_int_equal(maps, hg_tf_num_maps(m));
        }
        hg_tf_free(m);
    }
    assert_true(L[1] == L[0] && L[2] == L[0]);
    if (!(fabs(L[3] - L[0]) <= bound))
        fail_msg("SST's initial loss %.17g, the full model's %.17g: beyond the rounding bound %.3g",
                 L[3], L[0], bound);
}

/* Decoding step by step (with a reordered cache) gives the logits of the full forward. */
static void test_decode_matches_forward(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
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
        const hg_kctx k = {HG_DEVICE_CPU, t + 1, NULL, NULL, HG_PREC_FP32};
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

/* A tiny model learns a fixed batch: the loss falls to its floor (random guessing: ln 13 = 2.56).
 * Encoder-decoder: every target follows from its source and prefix, floor 0. Decoder-only (the
 * language model): the three windows read the same first token and continue with 6, 12 and 3,
 * so those three targets cost at least ln 3 each, floor 3 ln 3 / NTOK = 0.33; every later
 * target has its own prefix. */
static void test_overfit(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    for (decoder_only = 0; decoder_only < 2; decoder_only++) {
        hg_tf *m = build(&k, HG_LINEAR_FULL, 0, 0.0f, 0);
        hg_params *P = hg_tf_params(m);
        const hg_tf_batch *b = decoder_only ? &lm_batch : &batch;
        const double floor = decoder_only ? 3.0 * log(3.0) / NTOK : 0.0;
        double first = 0.0, last = 0.0;
        for (int step = 1; step <= 300; step++) {
            double l;
            hg_params_zero_grad(P);
            assert_int_equal(hg_tf_loss(m, b, 0.0f, 1, (uint64_t)step, 1, &l), HG_OK);
            assert_int_equal(hg_params_step(P, 1e-2f), HG_OK);
            if (step == 1)
                first = l / NTOK;
            last = l / NTOK;
        }
        assert_true(first > 1.5);
        if (!(last < floor + 0.05))
            fail_msg("%s: loss %.4f -> %.4f after 300 steps (floor %.4f)",
                     decoder_only ? "decoder-only" : "encoder-decoder", first, last, floor);
        hg_tf_free(m);
    }
    decoder_only = 0;
}

/* A batch beyond the capacity is refused with a message. */
static void test_capacity(void **state)
{
    (void)state;
    const hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
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
        cmocka_unit_test(test_grad_causal_attention),
        cmocka_unit_test(test_grad_tied_output),
        cmocka_unit_test(test_zero_distortion),
        cmocka_unit_test(test_decode_matches_forward),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_overfit),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
