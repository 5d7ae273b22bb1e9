/* test_linear.c - sst/ through the activations (hg_linear_forward / hg_linear_backward) and the
 * parameter group (src/params.c). Suite: numerics.
 * Oracles: central differences of a squared-error loss through the forward, for every method, for
 * shapes with out < in, out = in and out > in, and for row counts on both sides of SST's choice
 * between the product through the activations and the one through G (rows < k and rows > k);
 * the gradients handed over as G = dY^T X (hg_linear_accumulate_grad); Adam applied tensor by
 * tensor against the group's fused step (bitwise); the group's zeroing, norm and clipping. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "../src/hg.h"
#include "../src/params.h"
#include "../sst/linear.h"
#include "../sst/linear_internal.h"

static hg_kctx kctx = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

#define GRAD_H 1e-2
#define GRAD_ATOL 5e-5
#define GRAD_RTOL 5e-4

typedef struct ctx {
    hg_linear *L;
    float *X, *T, *Y, *bias; /* X (rows x n), target T and output Y (rows x m), bias (m) */
    int64_t rows, m, n;
} ctx;

/* 0.5 |X W^T + b - T|^2 with W rebuilt from the (possibly perturbed) parameters. */
static double loss_eval(void *p)
{
    ctx *c = p;
    hg_linear_rematerialise(c->L);
    hg_linear_forward(c->L, c->Y, c->X, c->bias, c->rows);
    double s = 0.0;
    for (int64_t i = 0; i < c->rows * c->m; i++)
        s += 0.5 * ((double)c->Y[i] - c->T[i]) * ((double)c->Y[i] - c->T[i]);
    return s;
}

static float *rnd(int64_t n, float a, uint64_t seed)
{
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    assert_non_null(x);
    hg_test_fill_uniform(x, (size_t)n, -a, a, seed);
    return x;
}

static double *to_double(const float *x, int64_t n, double scale)
{
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    assert_non_null(d);
    for (int64_t i = 0; i < n; i++)
        d[i] = scale * x[i];
    return d;
}

static void check(ctx *c, float *theta, const float *grad, int64_t n, double scale, const char *what)
{
    double *g = to_double(grad, n, scale);
    hg_check_grad(loss_eval, c, theta, g, (size_t)n, 64, GRAD_H, GRAD_ATOL, GRAD_RTOL, what);
    free(g);
}

/* Every gradient of one method, shape and row count. */
static void grads_case(hg_linear_method meth, int64_t m, int64_t n, int64_t rows, int rank,
                       hg_sst_product product)
{
    hg_linear_opts o;
    hg_linear_opts_default(&o);
    o.method = meth;
    o.rank = rank;
    o.product = product;
    float *W = rnd(m * n, 0.5f, 11);
    ctx c = {0};
    c.rows = rows, c.m = m, c.n = n;
    c.L = hg_test_linear_create(&kctx, m, n, W, &o, 5, rows);
    hg_linear *L = c.L;
    c.X = rnd(rows * n, 1.0f, 12);
    c.T = rnd(rows * m, 1.0f, 13);
    c.Y = rnd(rows * m, 1.0f, 14);
    c.bias = rnd(m, 0.3f, 15);
    if (meth == HG_LINEAR_LORA || meth == HG_LINEAR_RELORA) { /* B = 0 at the start: move it */
        hg_test_fill_uniform(L->B, (size_t)(m * rank), -0.3f, 0.3f, 16);
        hg_linear_rematerialise(L);
    }
    float *dY = malloc((size_t)(rows * m) * sizeof *dY), *dX = rnd(rows * n, 1.0f, 17);
    float *gb = calloc((size_t)m, sizeof *gb);
    assert_non_null(dY);
    assert_non_null(gb);

    loss_eval(&c);
    for (int64_t i = 0; i < rows * m; i++)
        dY[i] = c.Y[i] - c.T[i];
    hg_test_linear_zero_grad(L);
    assert_int_equal(hg_linear_backward(L, dX, gb, dY, c.X, rows), HG_OK);

    char what[128];
    snprintf(what, sizeof what, "%s %lldx%lld rows %lld product %d", hg_linear_method_name(meth),
             (long long)m, (long long)n, (long long)rows, (int)product);
    check(&c, c.X, dX, rows * n, 1.0, "dX");
    check(&c, c.bias, gb, m, 1.0, "gbias");
    switch (meth) {
    case HG_LINEAR_FULL:
        check(&c, L->W, L->gW, m * n, 1.0, what);
        break;
    case HG_LINEAR_LORA:
    case HG_LINEAR_RELORA:
        check(&c, L->A, L->gA, rank * n, 1.0, what);
        check(&c, L->B, L->gB, m * rank, 1.0, what);
        break;
    default:
        check(&c, L->sigma, L->gsigma, L->kk, 1.0, what);
        /* the enhanced gradients times sigma_j are the true ones */
        for (int64_t j = 0; j < rank; j++) {
            check(&c, L->US + j * m, L->gU + j * m, m, L->sigma[j], what);
            check(&c, L->VS + j * n, L->gV + j * n, n, L->sigma[j], what);
        }
        break;
    }

    /* the same gradients through G = dY^T X; a second backward accumulates */
    float *G = malloc((size_t)(m * n) * sizeof *G);
    float *g1 = malloc((size_t)L->ntrain * sizeof *g1);
    assert_non_null(G);
    assert_non_null(g1);
    hg_params *P = hg_test_linear_group(L);
    const float *grad0 = NULL; /* the start of the group's gradient buffer */
    for (int id = 0; id < hg_params_num_tensors(P); id++) {
        const float *g = hg_params_grad(P, id);
        if (g && (!grad0 || g < grad0))
            grad0 = g;
    }
    memcpy(g1, grad0, (size_t)L->ntrain * sizeof *g1);
    for (int64_t a = 0; a < m; a++)
        for (int64_t b = 0; b < n; b++) {
            double s = 0.0;
            for (int64_t t = 0; t < rows; t++)
                s += (double)dY[t * m + a] * c.X[t * n + b];
            G[a * n + b] = (float)s;
        }
    hg_test_linear_zero_grad(L);
    hg_linear_accumulate_grad(L, G);
    const double gmax = hg_test_max_abs(g1, L->ntrain);
    hg_assert_allclose_f(grad0, g1, (size_t)L->ntrain, 1e-5 * gmax, 1e-5, "backward vs G");
    hg_test_linear_zero_grad(L);
    loss_eval(&c); /* the differences left a perturbed forward behind: a backward follows its forward */
    assert_int_equal(hg_linear_backward(L, NULL, NULL, dY, c.X, rows), HG_OK);
    assert_int_equal(hg_linear_backward(L, NULL, NULL, dY, c.X, rows), HG_OK);
    for (int64_t i = 0; i < L->ntrain; i++)
        g1[i] *= 2.0f;
    hg_assert_allclose_f(grad0, g1, (size_t)L->ntrain, 2e-5 * gmax, 1e-5, "two backwards");

    /* more rows than the map was sized for: refused, nothing written */
    assert_int_equal(hg_linear_backward(L, NULL, NULL, dY, c.X, rows + 1), HG_EINVAL);

    free(G), free(g1), free(dY), free(dX), free(gb);
    free(c.X), free(c.T), free(c.Y), free(c.bias), free(W);
    hg_test_linear_free(L);
}

static void test_backward_grads(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{8, 8}, {6, 10}, {10, 6}};
    static const hg_linear_method meths[] = {HG_LINEAR_FULL, HG_LINEAR_LORA, HG_LINEAR_RELORA,
                                             HG_LINEAR_SST};
    for (size_t s = 0; s < 3; s++)
        for (size_t q = 0; q < 4; q++) {
            /* for SST with r = 2: 3 rows take the product through the activations, 40 the one
               through G (rows < k and rows > k); auto chooses the factored forward for 3 rows
               and the dense one for 40; each row count also on the other path */
            grads_case(meths[q], shapes[s][0], shapes[s][1], 3, 2, HG_SST_PRODUCT_AUTO);
            grads_case(meths[q], shapes[s][0], shapes[s][1], 40, 2, HG_SST_PRODUCT_AUTO);
            if (meths[q] == HG_LINEAR_SST) {
                grads_case(meths[q], shapes[s][0], shapes[s][1], 3, 2, HG_SST_PRODUCT_DENSE);
                grads_case(meths[q], shapes[s][0], shapes[s][1], 40, 2, HG_SST_PRODUCT_FACTORED);
            }
        }
}

/* SST's two products (through W and through the factors) give the same forward and dX to
 * float rounding, and auto picks the factored one exactly when it costs fewer operations:
 * few rows at a wide map, not many rows at a narrow one. */
static hg_linear_opts sst_opts(int rank, hg_sst_product product)
{
    hg_linear_opts o;
    hg_linear_opts_default(&o);
    o.method = HG_LINEAR_SST;
    o.rank = rank;
    o.product = product;
    return o;
}

static void test_sst_products(void **state)
{
    (void)state;
    const int64_t m = 24, n = 16, rows = 5;
    float *W = rnd(m * n, 0.5f, 31), *X = rnd(rows * n, 1.0f, 32), *dY = rnd(rows * m, 1.0f, 33);
    float *Y[2], *dX[2];
    hg_linear *L[2];
    for (int p = 0; p < 2; p++) {
        hg_linear_opts o = sst_opts(3, p ? HG_SST_PRODUCT_FACTORED : HG_SST_PRODUCT_DENSE);
        L[p] = hg_test_linear_create(&kctx, m, n, W, &o, 5, rows);
        assert_int_equal(hg__sst_factored(L[p], rows), p);
        Y[p] = rnd(rows * m, 1.0f, 34);
        dX[p] = rnd(rows * n, 1.0f, 35);
        hg_linear_forward(L[p], Y[p], X, NULL, rows);
        assert_int_equal(hg_linear_backward(L[p], dX[p], NULL, dY, X, rows), HG_OK);
    }
    /* |Y| <= |X| |W|: k products of magnitude below 1 each, summed two ways */
    hg_assert_allclose_f(Y[1], Y[0], (size_t)(rows * m), 64 * FLT_EPSILON * n, 0.0, "Y factored");
    hg_assert_allclose_f(dX[1], dX[0], (size_t)(rows * n), 64 * FLT_EPSILON * m, 0.0, "dX factored");
    /* the factored path never rebuilt W; the dense one did, from the same triplets */
    assert_true(L[1]->W_stale);
    assert_false(L[0]->W_stale);
    /* the factored backward reuses its forward's X V: the same bits as computing it again (for
       an X the forward did not see, here a copy) */
    float *Xc = malloc((size_t)(rows * n) * sizeof *Xc), *dXc = rnd(rows * n, 1.0f, 36);
    float *g0 = malloc((size_t)L[1]->ntrain * sizeof *g0);
    assert_non_null(Xc);
    assert_non_null(g0);
    memcpy(Xc, X, (size_t)(rows * n) * sizeof *Xc);
    assert_true(L[1]->xv_X == X);
    memcpy(g0, L[1]->gsigma, (size_t)L[1]->kk * sizeof *g0);
    hg_test_linear_zero_grad(L[1]);
    assert_int_equal(hg_linear_backward(L[1], dXc, NULL, dY, Xc, rows), HG_OK);
    assert_memory_equal(dXc, dX[1], (size_t)(rows * n) * sizeof *dXc);
    assert_memory_equal(L[1]->gsigma, g0, (size_t)L[1]->kk * sizeof *g0);
    free(Xc), free(dXc), free(g0);
    for (int p = 0; p < 2; p++) {
        hg_test_linear_free(L[p]);
        free(Y[p]), free(dX[p]);
    }

    /* auto, square maps (factored when rows < about k): OPT-125M's 768 x 768 at B T = 512 rows
       through the factors, at 8192 through W; its FFN's 3072 x 768 through the factors at both */
    hg_linear_opts o = sst_opts(2, HG_SST_PRODUCT_AUTO);
    hg_linear *A = hg_test_linear_create(&kctx, m, n, W, &o, 5, 64);
    A->m = 768, A->n = 768, A->kk = 768; /* the rule reads the shape only */
    assert_true(hg__sst_factored(A, 512));
    assert_false(hg__sst_factored(A, 8192));
    A->m = 3072;
    assert_true(hg__sst_factored(A, 512));
    assert_true(hg__sst_factored(A, 8192));
    A->m = 256, A->n = 256, A->kk = 256; /* hgnn-lm small at 8 x 256 rows: through W */
    assert_false(hg__sst_factored(A, 2048));
    A->m = m, A->n = n, A->kk = n;
    hg_test_linear_free(A);
    free(W), free(X), free(dY);
}

/* A map on the factored path at its sized row count keeps no W (no bytes for it) and trains
 * through iteration starts and round ends (whose SVD then takes a W built in the workspace) like
 * the same map through W, to float rounding; asking for its weight (pruning, inspection) gives it
 * one, equal to the dense map's. */
static void test_sst_without_w(void **state)
{
    (void)state;
    const int64_t m = 12, n = 8, rows = 3, steps = 9;
    float *W = rnd(m * n, 0.5f, 41), *X = rnd(rows * n, 1.0f, 42), *T = rnd(rows * m, 1.0f, 43);
    float *Y = malloc((size_t)(rows * m) * sizeof *Y), *dY = malloc((size_t)(rows * m) * sizeof *dY);
    assert_non_null(Y);
    assert_non_null(dY);
    hg_linear *L[2];
    for (int p = 0; p < 2; p++) {
        hg_linear_opts o = sst_opts(2, p ? HG_SST_PRODUCT_FACTORED : HG_SST_PRODUCT_DENSE);
        o.steps_per_iter = 2; /* iterations of 2 steps, rounds of 2 iterations: 2 round ends */
        o.iters_per_round = 2;
        o.warmup = 1;
        L[p] = hg_test_linear_create(&kctx, m, n, W, &o, 5, rows);
        hg_linear_bytes b;
        hg_linear_get_bytes(L[p], &b);
        assert_true(p ? (L[p]->W == NULL && b.scratch == (int64_t)sizeof(float) * n * rows)
                      : (L[p]->W != NULL && b.scratch == (int64_t)sizeof(float) * m * n));
        for (int64_t s = 0; s < steps; s++) {
            hg_test_linear_zero_grad(L[p]);
            hg_linear_forward(L[p], Y, X, NULL, rows);
            for (int64_t i = 0; i < rows * m; i++)
                dY[i] = Y[i] - T[i];
            assert_int_equal(hg_linear_backward(L[p], NULL, NULL, dY, X, rows), HG_OK);
            /* a learning rate that keeps every sigma off 0: a zero singular value's vectors are
               any in the complement, and the round-end SVD would pick others on each path */
            assert_int_equal(hg_test_linear_step(L[p], 0.01f), HG_OK);
        }
    }
    hg_linear_stats st;
    hg_linear_get_stats(L[1], &st);
    assert_int_equal(st.reorths, 2);
    assert_null(L[1]->W);
    float Yf[36], Yd[36];
    hg_linear_forward(L[0], Yd, X, NULL, rows);
    hg_linear_forward(L[1], Yf, X, NULL, rows);
    hg_assert_allclose_f(Yf, Yd, (size_t)(rows * m), 1e-5, 1e-5, "trained without W vs with");
    /* more rows than the map is sized for: the forward goes in chunks of max_rows */
    float *X7 = rnd(7 * n, 1.0f, 44), Y7[2][7 * 12];
    for (int p = 0; p < 2; p++)
        hg_linear_forward(L[p], Y7[p], X7, NULL, 7);
    hg_assert_allclose_f(Y7[1], Y7[0], (size_t)(7 * m), 1e-5, 1e-5, "7 rows in chunks of 3");
    free(X7);
    const float *Wf = hg_linear_weight(L[1]);
    assert_non_null(Wf);
    hg_assert_allclose_f(Wf, hg_linear_weight(L[0]), (size_t)(m * n), 1e-5, 1e-5, "W on demand");
    for (int p = 0; p < 2; p++)
        hg_test_linear_free(L[p]);
    free(W), free(X), free(T), free(Y), free(dY);
}

/* The fused step equals Adam applied tensor by tensor, bitwise, with each tensor's own clock
 * (SST's vectors restart theirs each iteration) and group settings; plus zero, norm and clip. */
static void test_fused_step(void **state)
{
    (void)state;
    hg_params *P = NULL;
    assert_int_equal(hg_params_create(&P, &kctx), HG_OK);
    hg_linear_opts o;
    hg_linear_opts_default(&o);
    o.weight_decay = 0.01f;
    o.steps_per_iter = 3;
    o.warmup = 2;
    hg_param_hp wh, vh, ph;
    hg_linear_group_hp(&o, &wh, &vh);
    hg_param_hp_default(&ph);
    ph.lr_scale = 0.5f;
    int gp, gw, gv, idp;
    assert_int_equal(hg_params_add_group(P, "plain", &ph, &gp), HG_OK);
    assert_int_equal(hg_params_add_group(P, "weights", &wh, &gw), HG_OK);
    assert_int_equal(hg_params_add_group(P, "vectors", &vh, &gv), HG_OK);
    assert_int_equal(hg_params_add(P, gp, "bias", 7, HG_PARAM_ADAM, 0, NULL, &idp), HG_OK);
    int dup;
    assert_int_equal(hg_params_add(P, gp, "bias", 3, HG_PARAM_ADAM, 0, NULL, &dup), HG_EINVAL);
    enum { NM = 4 };
    static const hg_linear_method meths[NM] = {HG_LINEAR_FULL, HG_LINEAR_SST, HG_LINEAR_LORA,
                                               HG_LINEAR_SST};
    hg_linear *L[NM];
    float *W = rnd(12 * 9, 0.5f, 21);
    for (int i = 0; i < NM; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "map%d", i);
        o.method = meths[i];
        o.rank = 2;
        assert_int_equal(hg_linear_create(&L[i], P, gw, gv, nm, 12, 9, W, &o, 30 + i, 0), HG_OK);
    }
    assert_int_equal(hg_params_commit(P), HG_OK);
    assert_int_equal(hg_params_add(P, gp, "late", 3, HG_PARAM_ADAM, 0, NULL, &dup), HG_EINVAL);

    const int n = hg_params_num_tensors(P);
    const int64_t ntr = hg_params_num_trainable(P);
    float *grad = hg_params_grad(P, idp); /* the first trainable: the start of the buffer */
    float *ref_p[64], *ref_m[64], *ref_v[64];
    assert_true(n <= 64);
    for (int step = 0; step < 7; step++) {
        /* gradients: random, then clipped by the group */
        hg_test_fill_uniform(grad, (size_t)ntr, -1.0f, 1.0f, 100 + step);
        double sq = 0.0;
        for (int64_t i = 0; i < ntr; i++)
            sq += (double)grad[i] * grad[i];
        const double norm = hg_params_clip_grad_norm(P, 1.0);
        assert_true(fabs(norm - sqrt(sq)) <= 1e-9 * sqrt(sq));
        assert_true(fabs(sqrt(hg_params_grad_sqnorm(P)) - 1.0) < 1e-5);
        /* the reference: every trainable tensor on its own, with its map's clock */
        for (int id = 0; id < n; id++) {
            ref_p[id] = ref_m[id] = ref_v[id] = NULL;
            if (hg_params_rule(P, id) == HG_PARAM_FROZEN)
                continue;
            const int64_t cnt = hg_params_count(P, id);
            ref_p[id] = malloc((size_t)(cnt + 1) * sizeof(float));
            ref_m[id] = malloc((size_t)(cnt + 1) * sizeof(float));
            ref_v[id] = malloc((size_t)(cnt + 1) * sizeof(float));
            memcpy(ref_p[id], hg_params_data(P, id), (size_t)cnt * sizeof(float));
            memcpy(ref_m[id], hg_params_moment1(P, id), (size_t)cnt * sizeof(float));
            memcpy(ref_v[id], hg_params_moment2(P, id), (size_t)cnt * sizeof(float));
            const char *nm = hg_params_name(P, id);
            const hg_param_clock *clk = NULL;
            const hg_param_hp *hp = &wh;
            float lr_scale = 1.0f;
            if (id == idp) {
                clk = hg_params_group_clock(P, gp), hp = &ph, lr_scale = 0.5f;
            } else {
                const hg_linear *Li = L[nm[3] - '0'];
                const int vec = strstr(nm, "U_S") || strstr(nm, "V_S");
                clk = vec ? &Li->clk_vec : &Li->clk_main;
                hp = vec ? &vh : &wh;
            }
            hg_k_adam_step(&kctx, ref_p[id], hg_params_grad(P, id), ref_m[id], ref_v[id], cnt,
                           0.01f * lr_scale * clk->lr_factor, hp->beta1, hp->beta2, hp->eps,
                           hp->weight_decay, 0.0f, clk->t + 1);
        }
        /* the group's step; the maps' hooks then clamp SST's sigma at 0 (applied to the reference
           too) and, at an iteration start, move sigma and reset the sampled vectors (those are
           checked by tests/test_sst.c), so the comparison covers everything else bitwise */
        assert_int_equal(hg_params_step(P, 0.01f), HG_OK);
        for (int id = 0; id < n; id++) {
            if (!ref_p[id])
                continue;
            const char *nm = hg_params_name(P, id);
            const int64_t cnt = hg_params_count(P, id);
            const int sst_vec = strstr(nm, "U_S") || strstr(nm, "V_S");
            const int sst_sigma = strstr(nm, "sigma") != NULL;
            const int iter_start = (step + 1) % 3 == 0; /* moments moved or reset */
            if (sst_sigma)
                for (int64_t i = 0; i < cnt; i++)
                    ref_p[id][i] = fmaxf(ref_p[id][i], 0.0f);
            if (!sst_vec && !(iter_start && (sst_sigma))) {
                if (memcmp(ref_p[id], hg_params_data(P, id), (size_t)cnt * sizeof(float)) != 0 ||
                    memcmp(ref_m[id], hg_params_moment1(P, id), (size_t)cnt * sizeof(float)) != 0 ||
                    memcmp(ref_v[id], hg_params_moment2(P, id), (size_t)cnt * sizeof(float)) != 0)
                    fail_msg("step %d: %s: fused step differs from the per-tensor one", step, nm);
            }
            free(ref_p[id]), free(ref_m[id]), free(ref_v[id]);
        }
    }
    hg_params_zero_grad(P);
    assert_true(hg_params_grad_sqnorm(P) == 0.0);
    for (int i = 0; i < NM; i++)
        hg_linear_free(L[i]);
    hg_params_free(P);
    free(W);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backward_grads),
        cmocka_unit_test(test_sst_products),
        cmocka_unit_test(test_sst_without_w),
        cmocka_unit_test(test_fused_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
