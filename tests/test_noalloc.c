/* test_noalloc.c - no allocation inside a training step (the project's performance rule).
 *
 * The executable is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (tests/meson.build),
 * so every heap allocation of the library code goes through the counters below. A model is built
 * on the bundled Cora (node classification) and Disease (link prediction), then whole training
 * steps (negative sampling, forward, loss, backward, clipping, optimiser step) and evaluations
 * run with the counter armed: it must stay at zero, for every linear-map method, across SST
 * iteration and round boundaries and ReLoRA merges. The same for the Transformer's steps (loss
 * with its gradient, clipping, optimiser step, evaluation loss) and its incremental decoding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../datasets/dataset.h"
#include "../hyperbolic/hybonet.h"
#include "../src/hg.h"
#include "../src/models/transformer.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
static int armed;
static long allocations;

void *__wrap_malloc(size_t n)
{
    allocations += armed;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s)
{
    allocations += armed;
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n)
{
    allocations += armed;
    return __real_realloc(p, n);
}

/* A map trained through the activations (forward, backward, fused step), across SST iteration
 * and round ends (T3 = 2, T2 = 2) and ReLoRA merges, with both of SST's gradient products. */
static void linear_steps(hg_linear_method method)
{
    hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    hg_linear_opts o;
    hg_linear_opts_default(&o);
    o.method = method;
    o.rank = 4;
    o.steps_per_iter = 2;
    o.iters_per_round = 2;
    const int64_t m = 24, n = 40, rows = 64;
    float *W = calloc((size_t)(m * n), sizeof *W), *X = calloc((size_t)(rows * n), sizeof *X);
    float *Y = calloc((size_t)(rows * m), sizeof *Y), *dX = calloc((size_t)(rows * n), sizeof *dX);
    assert_true(W && X && Y && dX);
    hg_test_fill_uniform(W, (size_t)(m * n), -0.2f, 0.2f, 1);
    hg_test_fill_uniform(X, (size_t)(rows * n), -1.0f, 1.0f, 2);
    hg_linear *L = hg_test_linear_create(&k, m, n, W, &o, 3, rows);
    armed = 1;
    for (int s = 0; s < 12; s++) {
        const int64_t r = s % 2 ? rows : 3; /* SST: through G, then through the activations */
        hg_test_linear_zero_grad(L);
        hg_linear_forward(L, Y, X, NULL, r);
        assert_int_equal(hg_linear_backward(L, dX, NULL, Y, X, r), HG_OK);
        assert_int_equal(hg_test_linear_step(L, 1e-3f), HG_OK);
    }
    armed = 0;
    assert_int_equal(allocations, 0);
    hg_test_linear_free(L);
    free(W), free(X), free(Y), free(dX);
}

static void linear_full(void **s) { (void)s; linear_steps(HG_LINEAR_FULL); }
static void linear_lora(void **s) { (void)s; linear_steps(HG_LINEAR_LORA); }
static void linear_relora(void **s) { (void)s; linear_steps(HG_LINEAR_RELORA); }
static void linear_sst(void **s) { (void)s; linear_steps(HG_LINEAR_SST); }

static void run_steps(hg_task task, hg_linear_method method, const char *name, int threads,
                      int dim)
{
    char dir[4096];
    hg_dataset d = {0};
    hg_dataset_opts o = {0};
    snprintf(dir, sizeof dir, "%s/%s", hg_test_data_dir(), name);
    o.dir = dir;
    o.name = name;
    o.task = task;
    o.use_feats = 1;
    o.normalize_feats = 1;
    o.split_file = task == HG_TASK_NC ? "split_hybonet.txt" : NULL;
    o.val_prop = task == HG_TASK_NC ? 0.15 : 0.05;
    o.test_prop = task == HG_TASK_NC ? 0.15 : 0.10;
    o.split_seed = 1;
    assert_int_equal(hg_dataset_load(&d, &o), HG_OK);

    hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    hg_k_set_threads(&k, threads);
    hg_hybonet_config c = {0};
    c.n = d.n;
    c.nfeat = d.nfeat;
    c.dim = dim;
    c.nlayers = 2;
    c.nclasses = task == HG_TASK_NC ? d.nclasses : 0;
    c.dropout = 0.5f;
    c.act_relu = 1;
    c.bias = 1;
    c.margin = 1.0f;
    c.scale_init = 10.0f;
    hg_linear_opts_default(&c.linear);
    c.linear.method = method;
    c.linear.rank = 2;
    c.linear.steps_per_iter = 3; /* iteration, merge and round boundaries within the steps below */
    c.linear.warmup = 2;
    c.linear.iters_per_round = 2;
    c.seed = 5;
    hg_hybonet m;
    int64_t pairs = 2 * HG_MAX(HG_MAX(d.n_train_pos, d.n_val_pos), 1);
    assert_int_equal(hg_hybonet_init(&m, &k, &c, &d.feat, &d.adj, pairs), HG_OK);
    int32_t *neg = calloc((size_t)(2 * HG_MAX(d.n_train_pos, 1)), sizeof *neg);
    hg_rng rng;
    hg_rng_seed(&rng, 3);

    armed = 1;
    allocations = 0;
    for (int step = 1; step <= 20; step++) {
        hg_hybonet_zero_grad(&m);
        hg_hybonet_forward(&m, 1, (uint64_t)step);
        if (task == HG_TASK_NC) {
            hg_hybonet_nc_loss(&m, d.idx_train, d.n_train, d.labels, 1);
        } else {
            hg_dataset_sample_negatives(&d, &rng, neg, d.n_train_pos);
            hg_hybonet_lp_loss(&m, d.train_pos, neg, d.n_train_pos, 1);
        }
        hg_hybonet_backward(&m, 1, (uint64_t)step);
        double g = hg_hybonet_grad_norm(&m);
        if (g > 0.5)
            hg_hybonet_scale_grad(&m, (float)(0.5 / g));
        assert_int_equal(hg_hybonet_step(&m, 0.01f, 10), HG_OK);
        /* evaluation forward and scores */
        hg_hybonet_forward(&m, 0, 0);
        if (task == HG_TASK_NC)
            hg_hybonet_nc_loss(&m, d.idx_val, d.n_val, d.labels, 0);
        else
            hg_hybonet_lp_loss(&m, d.val_pos, d.val_neg, d.n_val_pos, 0);
    }
    armed = 0;
    if (allocations)
        fail_msg("%s %s, dim %d, %d threads: %ld heap allocations inside 20 training steps", name,
                 hg_linear_method_name(method), dim, threads, allocations);
    free(neg);
    hg_hybonet_destroy(&m);
    hg_dataset_destroy(&d);
}

static void nc_full(void **s) { (void)s; run_steps(HG_TASK_NC, HG_LINEAR_FULL, "cora", 1, 16); }
static void nc_lora(void **s) { (void)s; run_steps(HG_TASK_NC, HG_LINEAR_LORA, "cora", 1, 16); }
static void nc_relora(void **s) { (void)s; run_steps(HG_TASK_NC, HG_LINEAR_RELORA, "cora", 1, 16); }
static void nc_sst(void **s) { (void)s; run_steps(HG_TASK_NC, HG_LINEAR_SST, "cora", 1, 16); }
static void lp_full(void **s) { (void)s; run_steps(HG_TASK_LP, HG_LINEAR_FULL, "disease_lp", 1, 16); }
static void lp_sst(void **s) { (void)s; run_steps(HG_TASK_LP, HG_LINEAR_SST, "disease_lp", 1, 16); }
/* Multi-threaded kernels keep their partial sums in the model's workspace. (The OpenMP runtime's
   own bookkeeping, inside its shared library, is not counted here.) */
static void nc_full_threads(void **s) { (void)s; run_steps(HG_TASK_NC, HG_LINEAR_FULL, "cora", 2, 16); }
static void lp_full_threads(void **s) { (void)s; run_steps(HG_TASK_LP, HG_LINEAR_FULL, "disease_lp", 2, 16); }

/* Widths other than 16: the BLAS products and the row loops of the generic paths. */
static void nc_full_wide(void **s) { (void)s; run_steps(HG_TASK_NC, HG_LINEAR_FULL, "cora", 1, 64); }
static void nc_sst_wide(void **s) { (void)s; run_steps(HG_TASK_NC, HG_LINEAR_SST, "cora", 1, 24); }
static void lp_full_wide(void **s) { (void)s; run_steps(HG_TASK_LP, HG_LINEAR_FULL, "disease_lp", 2, 128); }

/* ---- the Transformer ---- */

enum { TF_B = 3, TF_TS = 5, TF_TT = 4, TF_V = 13, TF_NTOK = 10 };
static const int32_t tf_src[TF_B * TF_TS] = {3, 5, 7, 2, 9, 4, 4, 2, 0, 0, 8, 6, 5, 11, 2};
static const int32_t tf_src_len[TF_B] = {4, 3, 5};
static const int32_t tf_tgt_in[TF_B * TF_TT] = {1, 6, 6, 9, 1, 12, 2, 2, 1, 3, 10, 7};
static const int32_t tf_tgt_out[TF_B * TF_TT] = {6, 6, 9, 2, 12, 2, HG_TF_IGNORE, HG_TF_IGNORE,
                                                 3, 10, 7, 2};

enum { TF_PRE_LN, TF_POST_LN, TF_DECODER_ONLY };
static const char *const variants[] = {"pre-LN", "post-LN", "decoder-only"};

/* 20 training steps (dropout on; SST iterations of 3 steps, rounds of 2 iterations, ReLoRA
 * merges every 3 steps), each followed by an evaluation loss, after one step unarmed; then
 * decoding of the batch's sources (none for the decoder-only model), 2 rows per source, parents
 * swapped each step, after one decoding unarmed. */
static void tf_steps(hg_linear_method method, int threads, int variant)
{
    hg_kctx k = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    hg_k_set_threads(&k, threads);
    hg_tf_config c;
    memset(&c, 0, sizeof c);
    c.vocab = TF_V;
    c.dim = 8;
    c.heads = 2;
    c.ffn = 12;
    c.enc_layers = 2;
    c.dec_layers = 2;
    c.dropout = 0.1f;
    c.post_ln = variant == TF_POST_LN;
    c.ln_eps = 1e-5f;
    c.max_len = 16;
    c.max_batch = 4;
    c.max_src_len = 8;
    c.max_tgt_len = 8;
    c.max_src_rows = 32;
    c.max_tgt_rows = 32;
    hg_linear_opts_default(&c.linear);
    c.linear.method = method;
    c.linear.rank = 2;
    c.linear.steps_per_iter = 3;
    c.linear.warmup = 2;
    c.linear.iters_per_round = 2;
    c.seed = 7;
    const int lm = variant == TF_DECODER_ONLY;
    if (lm) { /* a causal language model: no encoder, trained positions */
        c.enc_layers = 0;
        c.learned_pos = 1;
        c.emb_scale = 1.0f;
        c.init_std = 0.2f;
    }
    hg_tf *m = NULL;
    assert_int_equal(hg_tf_init(&m, &k, &c), HG_OK);
    hg_params *P = hg_tf_params(m);
    const hg_tf_batch b = {TF_B, lm ? 0 : TF_TS, TF_TT, TF_NTOK, lm ? NULL : tf_src,
                           lm ? NULL : tf_src_len, tf_tgt_in, tf_tgt_out};
    double first = 0.0, last = 0.0;
    for (int step = 1; step <= 21; step++) {
        double l, g, ev;
        armed = step > 1;
        if (step == 2)
            allocations = 0;
        hg_params_zero_grad(P);
        assert_int_equal(hg_tf_loss(m, &b, 0.1f, 1, (uint64_t)step, 1, &l), HG_OK);
        g = sqrt(hg_params_grad_sqnorm(P));
        if (g > 1.0)
            hg_params_scale_grad(P, (float)(1.0 / g));
        assert_int_equal(hg_params_step(P, 1e-2f), HG_OK);
        assert_int_equal(hg_tf_loss(m, &b, 0.0f, 0, 0, 0, &ev), HG_OK);
        if (step == 1)
            first = ev;
        last = ev;
    }
    armed = 0;
    if (allocations)
        fail_msg("Transformer (%s) %s, %d threads: %ld heap allocations inside 20 training steps",
                 variants[variant], hg_linear_method_name(method), threads, allocations);
    assert_true(last < first); /* the steps did train */

    /* decoding: every buffer sized by hg_tf_decode_init */
    enum { R = 2 * TF_B };
    float *logits = calloc((size_t)(R * TF_V), sizeof *logits);
    assert_non_null(logits);
    assert_int_equal(hg_tf_decode_init(m, TF_B, R, lm ? 1 : TF_TS, TF_TT), HG_OK);
    int64_t parent[R], src_row[R];
    int32_t tok[R];
    for (int round = 0; round < 2; round++) {
        armed = round > 0;
        allocations = 0;
        assert_int_equal(hg_tf_decode_start(m, lm ? NULL : tf_src, lm ? NULL : tf_src_len, TF_B,
                                            lm ? 0 : TF_TS),
                         HG_OK);
        for (int64_t t = 0; t < TF_TT; t++) {
            for (int64_t i = 0; i < R; i++) {
                src_row[i] = i / 2;
                parent[i] = t == 0 ? -1 : (i ^ 1);
                tok[i] = tf_tgt_in[src_row[i] * TF_TT + t];
            }
            assert_int_equal(hg_tf_decode_step(m, t, tok, parent, src_row, R, logits), HG_OK);
        }
        armed = 0;
    }
    if (allocations)
        fail_msg("Transformer (%s) %s, %d threads: %ld heap allocations in decoding",
                 variants[variant], hg_linear_method_name(method), threads, allocations);
    free(logits);
    hg_tf_free(m);
}

static void tf_full(void **s) { (void)s; tf_steps(HG_LINEAR_FULL, 1, TF_PRE_LN); }
static void tf_full_post_ln(void **s) { (void)s; tf_steps(HG_LINEAR_FULL, 1, TF_POST_LN); }
static void tf_full_threads(void **s) { (void)s; tf_steps(HG_LINEAR_FULL, 2, TF_PRE_LN); }
static void tf_lora(void **s) { (void)s; tf_steps(HG_LINEAR_LORA, 1, TF_PRE_LN); }
static void tf_relora(void **s) { (void)s; tf_steps(HG_LINEAR_RELORA, 1, TF_PRE_LN); }
static void tf_sst(void **s) { (void)s; tf_steps(HG_LINEAR_SST, 1, TF_PRE_LN); }
static void tf_sst_threads(void **s) { (void)s; tf_steps(HG_LINEAR_SST, 2, TF_PRE_LN); }
static void tf_lm_full(void **s) { (void)s; tf_steps(HG_LINEAR_FULL, 1, TF_DECODER_ONLY); }
static void tf_lm_sst(void **s) { (void)s; tf_steps(HG_LINEAR_SST, 1, TF_DECODER_ONLY); }

/* The counter itself works (a test that cannot fail is no test). */
static void counter_counts(void **s)
{
    (void)s;
    armed = 1;
    allocations = 0;
    void *p = hg_calloc(4, 4, "probe");
    armed = 0;
    hg_free(p);
    assert_int_equal(allocations, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_counts), cmocka_unit_test(nc_full), cmocka_unit_test(nc_lora),
        cmocka_unit_test(nc_relora),      cmocka_unit_test(nc_sst),  cmocka_unit_test(lp_full),
        cmocka_unit_test(lp_sst),         cmocka_unit_test(nc_full_threads),
        cmocka_unit_test(lp_full_threads), cmocka_unit_test(nc_full_wide),
        cmocka_unit_test(nc_sst_wide),     cmocka_unit_test(lp_full_wide),
        cmocka_unit_test(linear_full),     cmocka_unit_test(linear_lora),
        cmocka_unit_test(linear_relora),   cmocka_unit_test(linear_sst),
        cmocka_unit_test(tf_full),         cmocka_unit_test(tf_full_post_ln),
        cmocka_unit_test(tf_full_threads), cmocka_unit_test(tf_lora),
        cmocka_unit_test(tf_relora),       cmocka_unit_test(tf_sst),
        cmocka_unit_test(tf_sst_threads),  cmocka_unit_test(tf_lm_full),
        cmocka_unit_test(tf_lm_sst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
