/* bench_linear.c - hgnn-bench-linear: the cost of one training step of one linear map through
 * sst/ (forward Y = X W^T, backward to dX and the method's gradients, the group's fused
 * optimiser step and the map's schedule hooks), for scripts/bench_linear.py.
 *
 *   hgnn-bench-linear --method sst --m 512 --n 2048 --rows 4096 --rank 64 [--reps 5]
 *   hgnn-bench-linear --sgemm      (the machine's measured single-thread SGEMM rate)
 *
 * Prints one JSON object: the median step time in steady state (no schedule boundary), the
 * median extra time of a step that runs the schedule's boundary work (SST: an iteration start and
 * a round end; ReLoRA*: a merge), and the bytes the map holds (sst/linear.h hg_linear_bytes).
 * BLAS runs on one thread (as in training). Exit 2 on bad options. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "../src/cli/args.h"
#include "../src/hg.h"
#include "../src/params.h"
#include "../src/rng.h"
#include "../sst/linear.h"

typedef struct bench_opts {
    int method, rank, reps, sgemm;
    int64_t m, n, rows;
} bench_opts;

static void usage(void)
{
    printf("usage: hgnn-bench-linear [--method full|lora|relora|sst] [--m OUT] [--n IN]\n"
           "                         [--rows T] [--rank R] [--reps N] | --sgemm 1\n"
           "One training step of one linear map through sst/: median times and bytes held, as\n"
           "JSON. --sgemm 1 prints the single-thread SGEMM rate instead.\n");
}

static int option(void *ctx, const char *key, const char *val)
{
    static const char *const methods[] = {"full", "lora", "relora", "sst", NULL};
    bench_opts *o = ctx;
    if (!strcmp(key, "--method"))
        return hg_arg_choice(key, val, "a method", methods, &o->method);
    if (!strcmp(key, "--m"))
        return hg_arg_i64(key, val, 1, 65536, &o->m);
    if (!strcmp(key, "--n"))
        return hg_arg_i64(key, val, 1, 65536, &o->n);
    if (!strcmp(key, "--rows"))
        return hg_arg_i64(key, val, 1, 1 << 20, &o->rows);
    if (!strcmp(key, "--rank"))
        return hg_arg_int(key, val, 1, 65536, &o->rank);
    if (!strcmp(key, "--reps"))
        return hg_arg_int(key, val, 1, 1000, &o->reps);
    if (!strcmp(key, "--sgemm"))
        return hg_arg_bool(key, val, &o->sgemm);
    return hg_arg_unknown(key);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Best of 5 single-thread 1024^3 SGEMMs, in GFLOP/s. */
static double sgemm_rate(const hg_kctx *k)
{
    const int64_t N = 1024;
    float *A = calloc((size_t)(N * N), sizeof *A), *B = calloc((size_t)(N * N), sizeof *B);
    float *C = calloc((size_t)(N * N), sizeof *C);
    double best = 0.0;
    if (A && B && C)
        for (int r = 0; r < 5; r++) {
            double t0 = hg_now();
            hg_k_gemm(k, 0, 0, N, N, N, 1.0f, A, N, B, N, 0.0f, C, N);
            double g = 2.0 * N * N * N / (hg_now() - t0) / 1e9;
            best = g > best ? g : best;
        }
    free(A), free(B), free(C);
    return best;
}

/* Median seconds of one step over reps steps (after one warm-up step). */
static int time_steps(hg_linear *L, hg_params *P, const float *X, float *Y, float *dX,
                      int64_t rows, int reps, double *out)
{
    double *t = calloc((size_t)reps, sizeof *t);
    if (!t)
        return HG_ENOMEM;
    int rc = HG_OK;
    for (int s = -1; s < reps && rc == HG_OK; s++) {
        double t0 = hg_now();
        hg_params_zero_grad(P);
        hg_linear_forward(L, Y, X, NULL, rows);
        /* dY = Y: the loss 0.5 |Y|^2; its value does not matter for the cost */
        rc = hg_linear_backward(L, dX, NULL, Y, X, rows);
        if (rc == HG_OK)
            rc = hg_params_step(P, 1e-6f);
        if (s >= 0)
            t[s] = hg_now() - t0;
    }
    *out = median(t, reps);
    free(t);
    return rc;
}

/* A map of the options' shape in a group of its own. */
static int make(const hg_kctx *k, const bench_opts *o, const float *W, int steps_per_iter,
                int iters_per_round, hg_params **P, hg_linear **L)
{
    hg_linear_opts lo;
    hg_linear_opts_default(&lo);
    lo.method = (hg_linear_method)o->method;
    lo.rank = o->rank;
    lo.steps_per_iter = steps_per_iter;
    lo.iters_per_round = iters_per_round;
    lo.warmup = 20;
    hg_param_hp wh, vh;
    hg_linear_group_hp(&lo, &wh, &vh);
    int gw, gv, rc;
    if ((rc = hg_params_create(P, k)) || (rc = hg_params_add_group(*P, "weights", &wh, &gw)) ||
        (rc = hg_params_add_group(*P, "vectors", &vh, &gv)) ||
        (rc = hg_linear_create(L, *P, gw, gv, "map", o->m, o->n, W, &lo, 1, o->rows)))
        return rc;
    return hg_params_commit(*P);
}

int main(int argc, char **argv)
{
    bench_opts o = {HG_LINEAR_FULL, 0, 5, 0, 512, 512, 4096};
    hg_arg_program prog = {usage, NULL, NULL, NULL, option, &o};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc == HG_ARG_DONE)
        return 0;
    if (rc) {
        fprintf(stderr, "hgnn-bench-linear: %s\n", hg_last_error());
        return 2;
    }
    hg_kctx k;
    hg_kctx_init(&k, HG_DEVICE_CPU, 1);
    if (o.sgemm) {
        printf("{\"sgemm_gflops\": %.2f}\n", sgemm_rate(&k));
        return 0;
    }
    if (o.rank == 0)
        o.rank = (int)((o.m < o.n ? o.m : o.n) / 8);
    const int64_t m = o.m, n = o.n, rows = o.rows;
    float *W = calloc((size_t)(m * n), sizeof *W), *X = calloc((size_t)(rows * n), sizeof *X);
    float *Y = calloc((size_t)(rows * m), sizeof *Y), *dX = calloc((size_t)(rows * n), sizeof *dX);
    if (!W || !X || !Y || !dX) {
        fprintf(stderr, "hgnn-bench-linear: out of memory\n");
        return 3;
    }
    hg_rng g;
    hg_rng_seed(&g, 7);
    const double b = 1.0 / sqrt((double)n);
    for (int64_t i = 0; i < m * n; i++)
        W[i] = (float)((2.0 * hg_rng_uniform(&g) - 1.0) * b);
    for (int64_t i = 0; i < rows * n; i++)
        X[i] = (float)(2.0 * hg_rng_uniform(&g) - 1.0);

    hg_params *P = NULL, *Ph = NULL;
    hg_linear *L = NULL, *Lh = NULL;
    double steady = 0.0, hooked = 0.0;
    /* steady state: no boundary within the timed steps */
    rc = make(&k, &o, W, 1 << 20, 1000, &P, &L);
    if (rc == HG_OK)
        rc = time_steps(L, P, X, Y, dX, rows, o.reps, &steady);
    /* every step a boundary (SST: iteration start and round end; ReLoRA*: merge) */
    if (rc == HG_OK && (o.method == HG_LINEAR_SST || o.method == HG_LINEAR_RELORA)) {
        rc = make(&k, &o, W, 1, 1, &Ph, &Lh);
        if (rc == HG_OK)
            rc = time_steps(Lh, Ph, X, Y, dX, rows, o.reps, &hooked);
    }
    if (rc) {
        fprintf(stderr, "hgnn-bench-linear: %s\n", hg_last_error());
        return 3;
    }
    hg_linear_bytes by;
    hg_linear_get_bytes(L, &by);
    printf("{\"method\": \"%s\", \"m\": %lld, \"n\": %lld, \"rows\": %lld, \"rank\": %d, "
           "\"step_ms\": %.4f, \"boundary_extra_ms\": %.4f, \"params_bytes\": %lld, "
           "\"grads_bytes\": %lld, \"moments_bytes\": %lld, \"scratch_bytes\": %lld, "
           "\"shared_workspace_bytes\": %lld}\n",
           hg_linear_method_name((hg_linear_method)o.method), (long long)m, (long long)n,
           (long long)rows, o.method == HG_LINEAR_FULL ? 0 : o.rank, 1e3 * steady,
           hooked > 0.0 ? 1e3 * (hooked - steady) : 0.0, (long long)by.params,
           (long long)by.grads, (long long)by.moments, (long long)by.scratch,
           (long long)by.shared_workspace);
    hg_linear_free(L);
    hg_linear_free(Lh);
    hg_params_free(P);
    hg_params_free(Ph);
    hg_kctx_destroy(&k);
    free(W), free(X), free(Y), free(dX);
    return 0;
}
