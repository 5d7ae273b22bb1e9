/* test_cuda_model.c - sst/linear.c and the whole HyboNet training step on a CUDA context
 * against the same code on the CPU.
 * Suite: cuda (real backend, skipped without a device) and cuda_emu (the CUDA sources compiled
 * for the CPU emulation, tests/cuda_emu.h). Oracle: the CPU run of the same map (same W_init,
 * seed, options and gradient sequence), itself checked by tests/test_sst.c.
 *
 * What it covers: hg_linear keeps every float array in its context's memory and touches it only
 * through kernels.h (in emulation device memory is host memory, so a stray host access would not
 * crash there: the parity is what shows the device paths compute the right thing), the four
 * methods through their schedules (SST iteration boundaries and round ends with their SVD,
 * ReLoRA* merges, LoRA's A redrawn on the host and uploaded), the host/device contracts of
 * create (host W_init), accumulate_grad (G in k's memory), load_weight and pruned_weight (host),
 * the checkpoint tensors (hg_linear_tensor_read/_write, across devices too), and that a step
 * allocates no device memory. In emulation the SVD runs on the CPU's LAPACK path, so SST parity
 * there checks the logic around it, not cuSOLVER. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/backend.h"
#include "../kernels/kernels.h"
#include "../src/hg.h"
#include "../sst/linear.h"
#include "../hyperbolic/hybonet.h"

static hg_kctx cpu = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
static hg_kctx gpu;
static int have_gpu;

static int group_setup(void **state)
{
    (void)state;
    have_gpu = hg_kctx_init(&gpu, HG_DEVICE_CUDA, 1) == HG_OK;
    if (have_gpu)
        print_message("device: %s\n", hg_k_device_name(&gpu));
    else
        print_message("no CUDA context (%s): the tests skip\n", hg_last_error());
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (have_gpu)
        hg_kctx_destroy(&gpu);
    return 0;
}

#define NEED_GPU()      \
    do {                \
        if (!have_gpu)  \
            skip();     \
    } while (0)

/* ---------------------------------------------------------------- helpers */

/* Parity bound, normwise: max |W_cuda - W_cpu| <= PARITY_RTOL * max |W_cpu|.
 * The two runs differ only by float rounding: GEMM summation order (cuBLAS; ~K eps relative per
 * product, K <= 24 here), the order of the double reductions (row dots, norms, squared norms:
 * ~1 ulp after rounding to float), Adam's arithmetic (a few ulps per update) and the SVD at a round
 * end (cuSOLVER against LAPACK: both within (k + 3) eps sigma_max of W, test_sst.c's rebuild
 * bound, ~2e-6 relative for k = 12). Adam does not amplify them: its update m / (sqrt(v) + eps)
 * is invariant to the scale of the gradient, so a relative gradient perturbation d moves an
 * update by ~d lr (the gradients here are O(1), never near the eps floor). Summed over the
 * N = 24 steps of lr = 0.01 on |W| ~ 0.3 that stays below ~1e-5 relative; 1e-4 leaves a 10x
 * margin. The sampling of SST draws from a host copy of sigma: the same indices unless a draw
 * lands within rounding of a boundary (probability ~1e-6 per draw), checked exactly through the
 * schedule tensor. In emulation the differences are rounding of the C++ kernels against the C
 * ones (both sides use the same BLAS and LAPACK), far below the bound. */
#define PARITY_RTOL 1e-4

static hg_linear_opts opts_for(hg_linear_method meth)
{
    hg_linear_opts o;
    hg_linear_opts_default(&o);
    o.method = meth;
    o.rank = 3;
    o.steps_per_iter = 4;  /* SST iteration / ReLoRA* merge every 4 steps */
    o.warmup = 2;
    o.iters_per_round = 2; /* SST round end (SVD) every 8 steps */
    o.weight_decay = 0.01f;
    return o;
}

/* Most rows a forward/backward of the tests below gets. */
#define ACT_ROWS 48

static hg_linear *make(const hg_kctx *k, const hg_linear_opts *o, int64_t m, int64_t n,
                       const float *W, uint64_t seed)
{
    return hg_test_linear_create(k, m, n, W, o, seed, ACT_ROWS);
}

static float *host_floats(int64_t n)
{
    float *x = calloc((size_t)(n > 0 ? n : 1), sizeof *x);
    assert_non_null(x);
    return x;
}

static float *dev_floats(int64_t n)
{
    float *x = hg_k_alloc(&gpu, (size_t)n * sizeof *x, "test buffer");
    assert_non_null(x);
    return x;
}

/* Largest normwise difference seen by assert_normwise since the last report. */
static double worst_seen;

/* Fails unless max |got - want| <= rtol * max |want| (NaN fails). */
static void assert_normwise(const float *got, const float *want, int64_t n, double rtol,
                            const char *what, int step)
{
    const double d = hg_test_max_abs_diff(got, want, n), scale = hg_test_max_abs(want, n);
    if (scale > 0.0)
        worst_seen = fmax(worst_seen, d / scale);
    if (!(d <= rtol * scale))
        fail_msg("%s (step %d): max |cuda - cpu| = %.3g > %.1g * %.3g", what, step, d, rtol, scale);
}

/* The device map's weight, downloaded into host (m x n). */
static void weight_host(const hg_linear *L, float *host)
{
    hg_k_download(&gpu, host, hg_linear_weight(L),
                  (size_t)(hg_linear_rows(L) * hg_linear_cols(L)) * sizeof(float));
}

static int tensor_index(hg_linear *L, const char *name, int64_t *count)
{
    for (int i = 0; i < hg_linear_num_tensors(L); i++) {
        const char *nm;
        int64_t c;
        hg_test_linear_tensor(L, i, &nm, NULL, &c);
        if (strcmp(nm, name) == 0) {
            if (count)
                *count = c;
            return i;
        }
    }
    fail_msg("no tensor %s", name);
    return -1;
}

/* One training step of both maps with the same gradient G (host; uploaded to dG for the device
 * one), clipped to norm 1 through grad_sqnorm / scale_grad as the model does. */
static void step_both(hg_linear *Lc, hg_linear *Lg, const float *G, float *dG, int64_t mn,
                      float lr, int step)
{
    hg_k_upload(&gpu, dG, G, (size_t)mn * sizeof(float));
    hg_test_linear_zero_grad(Lc);
    hg_test_linear_zero_grad(Lg);
    hg_linear_accumulate_grad(Lc, G);
    hg_linear_accumulate_grad(Lg, dG);
    const double sc = hg_test_linear_grad_sqnorm(Lc), sg = hg_test_linear_grad_sqnorm(Lg);
    if (!(fabs(sg - sc) <= 1e-5 * sc))
        fail_msg("step %d: gradient squared norm cuda %.9g, cpu %.9g", step, sg, sc);
    if (sc > 1.0) {
        hg_test_linear_scale_grad(Lc, (float)(1.0 / sqrt(sc)));
        hg_test_linear_scale_grad(Lg, (float)(1.0 / sqrt(sc)));
    }
    const int rc = hg_test_linear_step(Lc, lr), rg = hg_test_linear_step(Lg, lr);
    if (rc != HG_OK || rg != HG_OK)
        fail_msg("step %d: hg_linear_step cpu %d, cuda %d: %s", step, rc, rg, hg_last_error());
}

/* ---------------------------------------------------------------- step parity */

enum { NSTEPS = 24 }; /* 6 SST iterations, 3 round ends; 6 ReLoRA* merges */

static void parity(hg_linear_method meth, hg_sst_sampling rule, int64_t m, int64_t n)
{
    const int64_t mn = m * n;
    const float lr = 0.01f;
    hg_linear_opts o = opts_for(meth);
    o.sampling = rule;
    worst_seen = 0.0;
    float *W = host_floats(mn), *G = host_floats(mn), *Wg = host_floats(mn);
    float *ta = NULL, *tb = NULL;
    float *dG = dev_floats(mn);
    const float b = (float)(1.0 / sqrt((double)n));
    hg_test_fill_uniform(W, (size_t)mn, -b, b, 1000 + (uint64_t)m);
    hg_linear *Lc = make(&cpu, &o, m, n, W, 42), *Lg = make(&gpu, &o, m, n, W, 42);

    /* create: W_init in host memory, the same starting function */
    weight_host(Lg, Wg);
    assert_normwise(Wg, hg_linear_weight(Lc), mn, PARITY_RTOL, "initial W", 0);
    if (meth != HG_LINEAR_SST) /* copies and B = 0: exact */
        assert_memory_equal(Wg, hg_linear_weight(Lc), (size_t)mn * sizeof(float));

    int64_t allocs1 = 0;
    for (int s = 0; s < NSTEPS; s++) {
        hg_test_fill_uniform(G, (size_t)mn, -1.0f, 1.0f, 5000 + (uint64_t)s);
        step_both(Lc, Lg, G, dG, mn, lr, s);
        weight_host(Lg, Wg);
        assert_normwise(Wg, hg_linear_weight(Lc), mn, PARITY_RTOL, "W", s);
        if (s == 0) /* the first step may size the backend's own scratch */
            allocs1 = hg_k_device_allocs(&gpu);
    }
    /* no device allocation in a later step, round ends (SVD) and merges included */
    assert_int_equal(hg_k_device_allocs(&gpu), allocs1);
    assert_int_equal(hg_k_sync(&gpu), HG_OK);

    hg_linear_stats sc, sg;
    hg_linear_get_stats(Lc, &sc);
    hg_linear_get_stats(Lg, &sg);
    assert_int_equal(sg.reorths, sc.reorths);
    assert_int_equal(sg.merges, sc.merges);
    if (meth == HG_LINEAR_SST)
        assert_int_equal(sc.reorths, NSTEPS / 8);
    if (meth == HG_LINEAR_RELORA)
        assert_int_equal(sc.merges, NSTEPS / 4);

    /* the whole state, read through the host interface. The schedule (counters, generator,
     * sampled indices) must match exactly. SST's singular vectors are defined up to a joint sign
     * of (U_i, V_i), which cuSOLVER and LAPACK may choose differently, and so are their moments:
     * only the sign-free tensors are compared there. */
    assert_int_equal(hg_linear_num_tensors(Lg), hg_linear_num_tensors(Lc));
    for (int i = 0; i < hg_linear_num_tensors(Lc); i++) {
        const char *nc, *ng;
        int64_t cc, cg;
        hg_test_linear_tensor(Lc, i, &nc, NULL, &cc);
        hg_test_linear_tensor(Lg, i, &ng, NULL, &cg);
        assert_string_equal(ng, nc);
        assert_int_equal(cg, cc);
        free(ta);
        free(tb);
        ta = host_floats(cc);
        tb = host_floats(cc);
        hg_linear_tensor_read(Lc, i, ta);
        hg_linear_tensor_read(Lg, i, tb);
        if (strcmp(nc, "sched") == 0)
            assert_memory_equal(tb, ta, (size_t)cc * sizeof(float));
        else if (meth != HG_LINEAR_SST || strncmp(nc, "sigma", 5) == 0)
            assert_normwise(tb, ta, cc, PARITY_RTOL, nc, NSTEPS);
    }

    /* pruning: W_out in host memory, on both devices the same rebuild */
    const int64_t kk = m < n ? m : n;
    float *Pc = host_floats(mn), *Pg = host_floats(mn);
    for (int64_t keep = 0; keep <= kk; keep += 2) {
        assert_int_equal(hg_linear_pruned_weight(Lc, keep, Pc), HG_OK);
        assert_int_equal(hg_linear_pruned_weight(Lg, keep, Pg), HG_OK);
        if (keep == 0) {
            assert_true(hg_test_max_abs(Pg, mn) == 0.0);
            continue;
        }
        assert_normwise(Pg, Pc, mn, PARITY_RTOL, "pruned weight", (int)keep);
    }
    assert_int_equal(hg_linear_pruned_weight(Lg, kk, Pg), HG_OK); /* keep = k: W itself */
    weight_host(Lg, Wg);
    assert_memory_equal(Pg, Wg, (size_t)mn * sizeof(float));

    /* load_weight: host memory in, the device weight out bit for bit; rematerialise restores */
    assert_int_equal(hg_linear_pruned_weight(Lg, 1, Pg), HG_OK);
    assert_int_equal(hg_linear_load_weight(Lg, Pg), HG_OK);
    weight_host(Lg, Wg);
    assert_memory_equal(Wg, Pg, (size_t)mn * sizeof(float));
    if (meth != HG_LINEAR_FULL) {
        hg_linear_rematerialise(Lg);
        weight_host(Lg, Wg);
        assert_normwise(Wg, hg_linear_weight(Lc), mn, PARITY_RTOL, "W rematerialised", NSTEPS);
    }

    print_message("%s%s%s %lld x %lld: largest normwise difference %.2g (bound %.0e)\n",
                  hg_linear_method_name(meth), meth == HG_LINEAR_SST ? " " : "",
                  meth == HG_LINEAR_SST ? hg_sst_sampling_name(rule) : "", (long long)m,
                  (long long)n, worst_seen, PARITY_RTOL);
    hg_test_linear_free(Lc);
    hg_test_linear_free(Lg);
    hg_k_free(&gpu, dG);
    free(Pc);
    free(Pg);
    free(ta);
    free(tb);
    free(Wg);
    free(G);
    free(W);
}

/* Two shapes: wide (m < n, like every HyboNet layer) and tall (the SVD of the transpose). */
static void test_parity_full(void **state)
{
    (void)state;
    NEED_GPU();
    parity(HG_LINEAR_FULL, HG_SST_SAMPLE_SIGMA, 12, 20);
    parity(HG_LINEAR_FULL, HG_SST_SAMPLE_SIGMA, 20, 9);
}

static void test_parity_lora(void **state)
{
    (void)state;
    NEED_GPU();
    parity(HG_LINEAR_LORA, HG_SST_SAMPLE_SIGMA, 12, 20);
    parity(HG_LINEAR_LORA, HG_SST_SAMPLE_SIGMA, 20, 9);
}

static void test_parity_relora(void **state)
{
    (void)state;
    NEED_GPU();
    parity(HG_LINEAR_RELORA, HG_SST_SAMPLE_SIGMA, 12, 20);
    parity(HG_LINEAR_RELORA, HG_SST_SAMPLE_SIGMA, 20, 9);
}

static void test_parity_sst(void **state)
{
    (void)state;
    NEED_GPU();
    parity(HG_LINEAR_SST, HG_SST_SAMPLE_SIGMA, 12, 20);
    parity(HG_LINEAR_SST, HG_SST_SAMPLE_SIGMA, 20, 9);
    parity(HG_LINEAR_SST, HG_SST_SAMPLE_MIXED, 12, 20);
    parity(HG_LINEAR_SST, HG_SST_SAMPLE_TOP, 20, 9);
}

/* ---------------------------------------------------------------- checkpoint tensors */

/* On the device: every tensor read, overwritten from the host, read back exactly; the original
 * written back restores the map bit for bit. */
static void test_tensor_roundtrip(void **state)
{
    (void)state;
    NEED_GPU();
    const int64_t m = 10, n = 14, mn = m * n;
    float *W = host_floats(mn), *G = host_floats(mn);
    float *W1 = host_floats(mn), *W2 = host_floats(mn);
    float *dG = dev_floats(mn);
    hg_test_fill_uniform(W, (size_t)mn, -0.3f, 0.3f, 7);
    for (int meth = HG_LINEAR_FULL; meth <= HG_LINEAR_SST; meth++) {
        hg_linear_opts o = opts_for((hg_linear_method)meth);
        hg_linear *L = make(&gpu, &o, m, n, W, 3);
        for (int s = 0; s < 5; s++) { /* moments and schedule away from their initial values */
            hg_test_fill_uniform(G, (size_t)mn, -1.0f, 1.0f, 70 + (uint64_t)s);
            hg_k_upload(&gpu, dG, G, (size_t)mn * sizeof(float));
            hg_test_linear_zero_grad(L);
            hg_linear_accumulate_grad(L, dG);
            assert_int_equal(hg_test_linear_step(L, 0.01f), HG_OK);
        }
        weight_host(L, W1);
        const int nt = hg_linear_num_tensors(L);
        float *saved[16];
        assert_true(nt <= 16);
        for (int i = 0; i < nt; i++) {
            const char *nm;
            float *data;
            int64_t c;
            hg_test_linear_tensor(L, i, &nm, &data, &c);
            assert_non_null(data);
            saved[i] = host_floats(c);
            float *pat = host_floats(c), *back = host_floats(c);
            hg_linear_tensor_read(L, i, saved[i]);
            hg_test_fill_uniform(pat, (size_t)c, -2.0f, 2.0f, 900 + (uint64_t)i);
            hg_linear_tensor_write(L, i, pat);
            hg_linear_tensor_read(L, i, back);
            if (memcmp(back, pat, (size_t)c * sizeof(float)) != 0)
                fail_msg("%s: tensor %s does not read back what was written",
                         hg_linear_method_name((hg_linear_method)meth), nm);
            free(pat);
            free(back);
        }
        /* everything written back (parameters, moments, schedule) restores the map */
        for (int i = 0; i < nt; i++)
            hg_linear_tensor_write(L, i, saved[i]);
        hg_linear_rematerialise(L);
        weight_host(L, W2);
        assert_memory_equal(W2, W1, (size_t)mn * sizeof(float));
        for (int i = 0; i < nt; i++)
            free(saved[i]);
        /* out of range: nothing happens */
        hg_linear_tensor_read(L, nt, W2);
        hg_linear_tensor_write(L, -1, W2);
        hg_test_linear_free(L);
    }
    hg_k_free(&gpu, dG);
    free(W2);
    free(W1);
    free(G);
    free(W);
}

/* A checkpoint moved across devices: trained on the CPU, loaded into a device map (different
 * seed and start), both continued with the same gradients across iteration, round and merge
 * boundaries: the device one follows the CPU run (the schedule exactly, W within the bound). */
static void test_checkpoint_cpu_to_device(void **state)
{
    (void)state;
    NEED_GPU();
    const int64_t m = 9, n = 13, mn = m * n;
    float *W = host_floats(mn), *W2 = host_floats(mn), *G = host_floats(mn), *Wg = host_floats(mn);
    float *dG = dev_floats(mn);
    hg_test_fill_uniform(W, (size_t)mn, -0.3f, 0.3f, 11);
    hg_test_fill_uniform(W2, (size_t)mn, -0.3f, 0.3f, 12);
    for (int meth = HG_LINEAR_FULL; meth <= HG_LINEAR_SST; meth++) {
        hg_linear_opts o = opts_for((hg_linear_method)meth);
        hg_linear *Lc = make(&cpu, &o, m, n, W, 1), *Lg = make(&gpu, &o, m, n, W2, 99);
        for (int s = 0; s < 7; s++) {
            hg_test_fill_uniform(G, (size_t)mn, -1.0f, 1.0f, 300 + (uint64_t)s);
            hg_test_linear_zero_grad(Lc);
            hg_linear_accumulate_grad(Lc, G);
            assert_int_equal(hg_test_linear_step(Lc, 0.02f), HG_OK);
        }
        for (int i = 0; i < hg_linear_num_tensors(Lc); i++) {
            int64_t c;
            const char *nm;
            hg_test_linear_tensor(Lc, i, &nm, NULL, &c);
            float *t = host_floats(c);
            hg_linear_tensor_read(Lc, i, t);
            hg_linear_tensor_write(Lg, tensor_index(Lg, nm, NULL), t);
            free(t);
        }
        hg_linear_rematerialise(Lg);
        weight_host(Lg, Wg);
        assert_normwise(Wg, hg_linear_weight(Lc), mn, PARITY_RTOL, "W after loading", 0);
        for (int s = 0; s < 10; s++) {
            hg_test_fill_uniform(G, (size_t)mn, -1.0f, 1.0f, 400 + (uint64_t)s);
            step_both(Lc, Lg, G, dG, mn, 0.02f, s);
            weight_host(Lg, Wg);
            assert_normwise(Wg, hg_linear_weight(Lc), mn, PARITY_RTOL, "W after loading", s);
        }
        int64_t cs = 0;
        const int is = tensor_index(Lc, "sched", &cs);
        float *a = host_floats(cs), *bb = host_floats(cs);
        hg_linear_tensor_read(Lc, is, a);
        hg_linear_tensor_read(Lg, tensor_index(Lg, "sched", NULL), bb);
        assert_memory_equal(bb, a, (size_t)cs * sizeof(float));
        free(a);
        free(bb);
        hg_test_linear_free(Lc);
        hg_test_linear_free(Lg);
    }
    hg_k_free(&gpu, dG);
    free(Wg);
    free(G);
    free(W2);
    free(W);
}

/* ---------------------------------------------------------------- the whole model step */

/* k's copy of n host bytes (the host array itself on the CPU). */
static void *to_ctx(const hg_kctx *k, const void *host, size_t bytes)
{
    if (k->device == HG_DEVICE_CPU)
        return (void *)host;
    void *p = hg_k_alloc(k, bytes, "test array");
    assert_non_null(p);
    hg_k_upload(k, p, host, bytes);
    return p;
}

static void free_ctx(const hg_kctx *k, void *p)
{
    if (k->device != HG_DEVICE_CPU)
        hg_k_free(k, p);
}

/* HyboNet on both devices, same seeds: 6 training steps (dropout, ReLU, biases, gradient
 * clipping's scale, Riemannian Adam with stabilisation, the method's schedule), comparing the
 * loss and gradient norm of every step, then the embeddings and every checkpoint tensor; steps
 * after the first make no device allocation. Bound: as PARITY_RTOL above, for an O(1) loss and
 * parameters after few steps; the layers add O(n d) float sums (n = 24, d = 16), 1e-4 still
 * leaves a wide margin over the ~1e-6 seen. */
static void hybonet_parity(int lp, hg_linear_method meth)
{
    NEED_GPU();
    enum { N = 24, F = 9, C = 3, STEPS = 6, NPAIR = 10 };
    static const int chords[][2] = {{0, 6}, {1, 4}, {2, 9}, {0, 3}, {5, 10}, {0, 9}, {4, 8},
                                    {12, 20}, {7, 15}};
    const hg_test_graph_spec spec = {N, F, C, chords, (int)(sizeof chords / sizeof chords[0]),
                                     2, 17, 4242, 0.45, 0.5f, 1};
    hg_test_graph g;
    hg_test_graph_build(&g, &spec);
    hg_hybonet_config c = {0};
    c.n = N;
    c.nfeat = F;
    c.dim = 16;
    c.nlayers = 2;
    c.nclasses = lp ? 0 : C;
    c.dropout = 0.3f;
    c.act_relu = 1;
    c.bias = 1;
    c.margin = lp ? 2.0f : 1.0f;
    c.scale_init = 10.0f;
    c.linear = opts_for(meth);
    c.seed = 99;
    hg_hybonet mc, mg;
    assert_int_equal(hg_hybonet_init(&mc, &cpu, &c, &g.feat, &g.adj, 2 * NPAIR), HG_OK);
    assert_int_equal(hg_hybonet_init(&mg, &gpu, &c, &g.feat, &g.adj, 2 * NPAIR), HG_OK);
    int32_t pos[2 * NPAIR], neg[2 * NPAIR];
    for (int e = 0; e < NPAIR; e++) {
        pos[2 * e] = e;
        pos[2 * e + 1] = (e + 1) % N;
        neg[2 * e] = (3 * e) % N;
        neg[2 * e + 1] = (7 * e + 5) % N;
    }
    int64_t *idx_g = to_ctx(&gpu, g.train, (size_t)g.ntrain * sizeof(int64_t));
    int32_t *lab_g = to_ctx(&gpu, g.labels, N * sizeof(int32_t));
    int32_t *pos_g = to_ctx(&gpu, pos, sizeof pos), *neg_g = to_ctx(&gpu, neg, sizeof neg);
    int64_t allocs = -1;
    for (int t = 1; t <= STEPS; t++) {
        double loss[2], gn[2];
        hg_hybonet *ms[2] = {&mc, &mg};
        for (int dv = 0; dv < 2; dv++) {
            hg_hybonet *m = ms[dv];
            const uint64_t seed = 1000 + (uint64_t)t;
            hg_hybonet_zero_grad(m);
            hg_hybonet_forward(m, 1, seed);
            loss[dv] = lp ? hg_hybonet_lp_loss(m, dv ? pos_g : pos, dv ? neg_g : neg, NPAIR, 1)
                          : hg_hybonet_nc_loss(m, dv ? idx_g : g.train, g.ntrain,
                                               dv ? lab_g : g.labels, 1);
            hg_hybonet_backward(m, 1, seed);
            gn[dv] = hg_hybonet_grad_norm(m);
            hg_hybonet_scale_grad(m, 0.5f);
            assert_int_equal(hg_hybonet_step(m, 0.01f, 2), HG_OK);
        }
        assert_int_equal(hg_k_sync(&gpu), HG_OK);
        if (fabs(loss[1] - loss[0]) > PARITY_RTOL * fabs(loss[0]) ||
            fabs(gn[1] - gn[0]) > PARITY_RTOL * gn[0])
            fail_msg("step %d: loss %.9g (device) vs %.9g (cpu), grad norm %.9g vs %.9g", t,
                     loss[1], loss[0], gn[1], gn[0]);
        if (t == 1)
            allocs = hg_k_device_allocs(&gpu);
        else if (hg_k_device_allocs(&gpu) != allocs)
            fail_msg("step %d made %lld device allocations", t,
                     (long long)(hg_k_device_allocs(&gpu) - allocs));
    }
    /* evaluation forward, embeddings and every persistent tensor */
    hg_hybonet_forward(&mc, 0, 0);
    hg_hybonet_forward(&mg, 0, 0);
    float *e = host_floats(N * 16);
    hg_k_download(&gpu, e, mg.emb, N * 16 * sizeof(float));
    hg_assert_allclose_f(e, mc.emb, N * 16, 1e-4, 1e-4, "embeddings");
    free(e);
    for (int i = 0; i < hg_hybonet_num_tensors(&mc); i++) {
        char name[128];
        int64_t cnt;
        hg_hybonet_tensor_info(&mc, i, name, sizeof name, &cnt);
        float *a = host_floats(cnt), *b = host_floats(cnt);
        hg_hybonet_tensor_read(&mc, i, a);
        hg_hybonet_tensor_read(&mg, i, b);
        if (strcmp(name + strlen(name) - 5, "sched") == 0)
            assert_memory_equal(a, b, (size_t)cnt * sizeof(float));
        else
            hg_assert_allclose_f(b, a, (size_t)cnt, 1e-4, 1e-4, name);
        free(a);
        free(b);
    }
    free_ctx(&gpu, idx_g);
    free_ctx(&gpu, lab_g);
    free_ctx(&gpu, pos_g);
    free_ctx(&gpu, neg_g);
    hg_hybonet_destroy(&mc);
    hg_hybonet_destroy(&mg);
    hg_test_graph_destroy(&g);
}

static void test_hybonet_nc_full(void **state)
{
    (void)state;
    hybonet_parity(0, HG_LINEAR_FULL);
}

static void test_hybonet_nc_sst(void **state)
{
    (void)state;
    hybonet_parity(0, HG_LINEAR_SST);
}

static void test_hybonet_lp_full(void **state)
{
    (void)state;
    hybonet_parity(1, HG_LINEAR_FULL);
}

static void test_hybonet_lp_relora(void **state)
{
    (void)state;
    hybonet_parity(1, HG_LINEAR_RELORA);
}

/* ---------------------------------------------------------------- through the activations */

/* forward and backward (dX, bias gradient, the method's gradients) on both devices, then the
 * fused step: SST with 3 rows takes the product through the activations, with ACT_ROWS rows the
 * one through G. */
static void parity_activations(hg_linear_method meth)
{
    const int64_t m = 12, n = 20, mn = m * n;
    hg_linear_opts o = opts_for(meth);
    float *W = host_floats(mn), *Wg = host_floats(mn);
    float *X = host_floats(ACT_ROWS * n), *Yc = host_floats(ACT_ROWS * m);
    float *Yg = host_floats(ACT_ROWS * m), *dXc = host_floats(ACT_ROWS * n);
    float *dXg = host_floats(ACT_ROWS * n), *bias = host_floats(m), *gbc = host_floats(m);
    float *gbg = host_floats(m);
    float *dX_ = dev_floats(ACT_ROWS * n), *dY_ = dev_floats(ACT_ROWS * m);
    float *dXd = dev_floats(ACT_ROWS * n), *dYd = dev_floats(ACT_ROWS * m);
    float *db = dev_floats(m), *dgb = dev_floats(m);
    hg_test_fill_uniform(W, (size_t)mn, -0.3f, 0.3f, 77);
    hg_test_fill_uniform(bias, (size_t)m, -0.1f, 0.1f, 78);
    hg_k_upload(&gpu, db, bias, (size_t)m * sizeof(float));
    hg_linear *Lc = make(&cpu, &o, m, n, W, 9), *Lg = make(&gpu, &o, m, n, W, 9);
    for (int s = 0; s < 12; s++) {
        const int64_t rows = s % 2 ? ACT_ROWS : 3;
        hg_test_fill_uniform(X, (size_t)(rows * n), -1.0f, 1.0f, 300 + (uint64_t)s);
        hg_k_upload(&gpu, dX_, X, (size_t)(rows * n) * sizeof(float));
        hg_linear_forward(Lc, Yc, X, bias, rows);
        hg_linear_forward(Lg, dY_, dX_, db, rows);
        hg_k_download(&gpu, Yg, dY_, (size_t)(rows * m) * sizeof(float));
        assert_normwise(Yg, Yc, rows * m, PARITY_RTOL, "Y", s);
        /* dY = Y (the loss |Y|^2 / 2), the same on both devices */
        hg_test_linear_zero_grad(Lc);
        hg_test_linear_zero_grad(Lg);
        memset(gbc, 0, (size_t)m * sizeof(float));
        hg_k_zero(&gpu, dgb, (size_t)m * sizeof(float));
        assert_int_equal(hg_linear_backward(Lc, dXc, gbc, Yc, X, rows), HG_OK);
        assert_int_equal(hg_linear_backward(Lg, dXd, dgb, dY_, dX_, rows), HG_OK);
        hg_k_download(&gpu, dXg, dXd, (size_t)(rows * n) * sizeof(float));
        hg_k_download(&gpu, gbg, dgb, (size_t)m * sizeof(float));
        assert_normwise(dXg, dXc, rows * n, PARITY_RTOL, "dX", s);
        assert_normwise(gbg, gbc, m, PARITY_RTOL, "bias gradient", s);
        const double sc = hg_test_linear_grad_sqnorm(Lc), sg = hg_test_linear_grad_sqnorm(Lg);
        if (!(fabs(sg - sc) <= 1e-5 * sc))
            fail_msg("step %d: gradient squared norm cuda %.9g, cpu %.9g", s, sg, sc);
        assert_int_equal(hg_test_linear_step(Lc, 0.01f), HG_OK);
        assert_int_equal(hg_test_linear_step(Lg, 0.01f), HG_OK);
        weight_host(Lg, Wg);
        assert_normwise(Wg, hg_linear_weight(Lc), mn, PARITY_RTOL, "W", s);
    }
    assert_int_equal(hg_k_sync(&gpu), HG_OK);
    hg_test_linear_free(Lc);
    hg_test_linear_free(Lg);
    void *dv[] = {dX_, dY_, dXd, dYd, db, dgb};
    for (size_t i = 0; i < sizeof dv / sizeof *dv; i++)
        hg_k_free(&gpu, dv[i]);
    free(W), free(Wg), free(X), free(Yc), free(Yg), free(dXc), free(dXg), free(bias);
    free(gbc), free(gbg);
}

static void test_activations_full(void **state)
{
    (void)state;
    NEED_GPU();
    parity_activations(HG_LINEAR_FULL);
}
static void test_activations_lora(void **state)
{
    (void)state;
    NEED_GPU();
    parity_activations(HG_LINEAR_LORA);
}
static void test_activations_sst(void **state)
{
    (void)state;
    NEED_GPU();
    parity_activations(HG_LINEAR_SST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_full),
        cmocka_unit_test(test_parity_lora),
        cmocka_unit_test(test_parity_relora),
        cmocka_unit_test(test_parity_sst),
        cmocka_unit_test(test_activations_full),
        cmocka_unit_test(test_activations_lora),
        cmocka_unit_test(test_activations_sst),
        cmocka_unit_test(test_tensor_roundtrip),
        cmocka_unit_test(test_checkpoint_cpu_to_device),
        cmocka_unit_test(test_hybonet_nc_full),
        cmocka_unit_test(test_hybonet_nc_sst),
        cmocka_unit_test(test_hybonet_lp_full),
        cmocka_unit_test(test_hybonet_lp_relora),
    };
    int failed = cmocka_run_group_tests_name("cuda_model", tests, group_setup, group_teardown);
    return failed == 0 && !have_gpu ? 77 : failed; /* meson: skipped without a device */
}
