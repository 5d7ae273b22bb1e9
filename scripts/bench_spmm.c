/* bench_spmm.c - the hgnn-bench-spmm program: times the aggregation product Y = A X of one
 * dataset (A = D^-1 (A + I), the adjacency the model sees in node classification; X n x d
 * random, d = 16 as in every reference run) with hg_k_csr_spmm on the CPU or CUDA context, and
 * reports the effective memory bandwidth (scripts/bench_gpu.py).
 *
 * Contract:
 * - all arrays live in the context's memory (hg_k_alloc + hg_k_upload); the context is synced
 *   before and after every timed repetition. A repetition runs the product `inner` times, with
 *   inner chosen so that one repetition lasts at least about 2 ms (launch and sync overheads are
 *   then amortised); after --warmup untimed repetitions, the reported time of one product is the
 *   median over --reps repetitions.
 * - bytes = rowptr (n + 1) * 8 + col nnz * 4 + val nnz * 4 + X n * d * 4 (each row read once) +
 *   Y n * d * 4 (written once); GB/s = bytes / time. X rows are gathered once per non-zero, so
 *   counting each once is a lower bound on the traffic (what caches must absorb); gbs_gather
 *   counts X as nnz * d * 4 instead (every gather from memory: the upper bound).
 * - fraction of peak: on the CPU the peak is a STREAM-like copy (memcpy of a 256 MiB buffer with
 *   the same thread count, read + write bytes, best of 5); on CUDA the peak is --peak-gbs when
 *   given (this program does not query the device: only the backend talks to CUDA), else none.
 * - the result is compared with a CPU product (max absolute difference printed): a check of the
 *   device kernel on a large graph.
 * - the last line of stdout is one JSON object with every figure.
 *
 * Exit codes: 0 success, 2 bad options, unknown device or unreadable dataset (one line on
 * stderr), 3 failure during the measurement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hg_config.h"
#include "../src/hg.h"
#include "../src/io.h"
#include "../src/rng.h"
#include "../kernels/kernels.h"
#include "../datasets/dataset.h"
#include "../src/cli/args.h"

#if HG_HAVE_OPENMP
#include <omp.h>
#endif

enum { EXIT_INPUT = 2, EXIT_RUN = 3 };

#define COPY_BYTES ((size_t)256 << 20)
#define MIN_REP_SECONDS 2e-3
#define MAX_INNER 1000

typedef struct bench_opts {
    const char *dataset, *data_dir;
    hg_device device;
    int threads, dim, reps, warmup;
    double peak_gbs; /* 0: none (CUDA) or measured (CPU) */
    int quiet;
} bench_opts;

static void usage(void)
{
    printf(
        "usage: hgnn-bench-spmm (--dataset NAME | --data-dir DIR) [options]\n"
        "\n"
        "Times Y = A X (A: the normalised adjacency D^-1 (A + I), X: n x dim) with hg_k_csr_spmm\n"
        "and prints ms, effective GB/s and the fraction of a peak bandwidth.\n"
        "\n"
        "  --dataset NAME | --data-dir DIR   a bundled dataset or a dataset directory\n"
        "  --device cpu|cuda      context of the product (cpu)\n"
        "  --threads N            CPU threads (1)\n"
        "  --dim D                columns of X (16)\n"
        "  --reps R (21)  --warmup W (3)\n"
        "  --peak-gbs G           peak bandwidth for the fraction (cpu default: measured copy;\n"
        "                         cuda default: none, e.g. 3350 for an H100 SXM)\n"
        "  --quiet                only the JSON line\n"
        "  --help\n");
}

/* An integer in [lo, hi]; this program's message reads "is not an integer in [LO, HI]". */
static int parse_int(const char *opt, const char *s, long lo, long hi, int *out)
{
    int64_t v;
    if (!hg_arg_scan_i64(s, &v) || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "is not an integer in [%ld, %ld]", lo, hi);
        return hg_arg_bad(opt, s, why);
    }
    *out = (int)v;
    return HG_OK;
}

/* One option of hgnn-bench-spmm (hg_arg_program.option). */
static int bench_option(void *ctx, const char *key, const char *val)
{
    bench_opts *o = ctx;
    int rc = HG_OK, dev = 0;
#define IS(name) (!strcmp(key, name))
    if (IS("--dataset"))
        o->dataset = val;
    else if (IS("--data-dir"))
        o->data_dir = val;
    else if (IS("--device")) {
        rc = hg_arg_choice(key, val, "a device", (const char *const[]){"cpu", "cuda", NULL},
                           &dev);
        o->device = (hg_device)dev;
    } else if (IS("--threads"))
        rc = parse_int(key, val, 1, 1024, &o->threads);
    else if (IS("--dim"))
        rc = parse_int(key, val, 1, 4096, &o->dim);
    else if (IS("--reps"))
        rc = parse_int(key, val, 1, 100000, &o->reps);
    else if (IS("--warmup"))
        rc = parse_int(key, val, 0, 100000, &o->warmup);
    else if (IS("--peak-gbs")) {
        if (!hg_arg_scan_double(val, &o->peak_gbs) || !(o->peak_gbs > 0))
            return hg_arg_bad(key, val, "is not a positive number");
    } else
        return hg_arg_unknown(key);
#undef IS
    return rc;
}

/* HG_OK, HG_EINVAL (recorded) or HG_ARG_DONE for --help (printed). */
static int parse_options(bench_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->device = HG_DEVICE_CPU;
    o->threads = 1;
    o->dim = 16;
    o->reps = 21;
    o->warmup = 3;
    /* this program's unexpected-argument message has no "options start with --" */
    const hg_arg_program prog = {usage, NULL, &o->quiet, "see --help", bench_option, o};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc != HG_OK)
        return rc;
    if (!o->dataset && !o->data_dir)
        return HG_ERRORF(HG_EINVAL, "no data: give --dataset NAME or --data-dir DIR (see --help)");
    return HG_OK;
}

/* STREAM-like copy bandwidth of host memory with `threads` threads: read + write bytes of the
 * best of 5 copies of COPY_BYTES. 0 when the buffers cannot be allocated. */
static double copy_gbs(int threads)
{
    char *src = malloc(COPY_BYTES), *dst = malloc(COPY_BYTES);
    double best = 0;
    if (src && dst) {
        memset(src, 1, COPY_BYTES);
        memset(dst, 0, COPY_BYTES); /* fault the pages in before timing */
        for (int r = 0; r < 6; r++) {
            double t0 = hg_now();
#if HG_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
            {
                size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
                size_t b0 = COPY_BYTES / T * t, b1 = t + 1 == T ? COPY_BYTES : COPY_BYTES / T * (t + 1);
                memcpy(dst + b0, src + b0, b1 - b0);
            }
#else
            (void)threads;
            memcpy(dst, src, COPY_BYTES);
#endif
            double dt = hg_now() - t0;
            double gbs = 2.0 * (double)COPY_BYTES / dt / 1e9;
            if (r > 0 && gbs > best) /* the first copy is a warm-up */
                best = gbs;
        }
    }
    free(src);
    free(dst);
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds of `inner` products, synced before and after. */
static int timed(const hg_kctx *k, const hg_csr *A, const float *X, int d, float *Y, int inner,
                 double *sec)
{
    int rc = hg_k_sync(k);
    if (rc)
        return rc;
    double t0 = hg_now();
    for (int i = 0; i < inner; i++)
        hg_k_csr_spmm(k, A->nrows, A->rowptr, A->col, A->val, X, d, 0.0f, Y);
    rc = hg_k_sync(k);
    *sec = hg_now() - t0;
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts o;
    int rc = parse_options(&o, argc, argv);
    if (rc == HG_ARG_DONE) /* --help */
        return 0;
    if (rc) {
        fprintf(stderr, "hgnn-bench-spmm: %s\n", hg_last_error());
        return EXIT_INPUT;
    }

    int exit_code = EXIT_INPUT;
    hg_dataset data;
    memset(&data, 0, sizeof data);
    hg_kctx k, kc;
    memset(&k, 0, sizeof k);
    memset(&kc, 0, sizeof kc);
    float *hX = NULL, *hY = NULL, *hR = NULL, *X = NULL, *Y = NULL, *val = NULL;
    int64_t *rowptr = NULL;
    int32_t *col = NULL;
    double *times = NULL;
    char dir[4096];

    if (o.data_dir) {
        snprintf(dir, sizeof dir, "%s", o.data_dir);
    } else if ((rc = hg_dataset_bundled_dir(dir, sizeof dir, o.dataset))) {
        goto fail;
    }
    hg_dataset_opts dopts = {0};
    dopts.dir = dir;
    dopts.name = o.dataset;
    dopts.task = HG_TASK_NC;
    dopts.use_feats = 0; /* the product does not need the features: identity is cheapest */
    dopts.val_prop = 0.15;
    dopts.test_prop = 0.15;
    dopts.split_seed = 1234;
    if ((rc = hg_dataset_load(&data, &dopts)))
        goto fail;
    if ((rc = hg_kctx_init(&k, o.device, o.threads)))
        goto fail;
    exit_code = EXIT_RUN;

    const hg_csr *A = &data.adj;
    const int64_t n = A->nrows, nnz = A->nnz, d = o.dim;
    size_t xbytes = (size_t)n * (size_t)d * sizeof(float);
    hX = hg_calloc((size_t)n * (size_t)d, sizeof *hX, "X (host)");
    hY = hg_calloc((size_t)n * (size_t)d, sizeof *hY, "Y (host)");
    hR = hg_calloc((size_t)n * (size_t)d, sizeof *hR, "Y reference");
    times = hg_calloc((size_t)o.reps, sizeof *times, "times");
    if (!hX || !hY || !hR || !times) {
        rc = HG_ENOMEM;
        goto fail;
    }
    hg_rng rng;
    hg_rng_seed(&rng, 1);
    for (int64_t i = 0; i < n * d; i++)
        hX[i] = (float)(2.0 * hg_rng_uniform(&rng) - 1.0);

    rowptr = hg_k_alloc(&k, (size_t)(n + 1) * sizeof *rowptr, "rowptr");
    col = hg_k_alloc(&k, (size_t)nnz * sizeof *col, "col");
    val = hg_k_alloc(&k, (size_t)nnz * sizeof *val, "val");
    X = hg_k_alloc(&k, xbytes, "X");
    Y = hg_k_alloc(&k, xbytes, "Y");
    if (!rowptr || !col || !val || !X || !Y) {
        rc = HG_ENOMEM;
        goto fail;
    }
    hg_k_upload(&k, rowptr, A->rowptr, (size_t)(n + 1) * sizeof *rowptr);
    hg_k_upload(&k, col, A->col, (size_t)nnz * sizeof *col);
    hg_k_upload(&k, val, A->val, (size_t)nnz * sizeof *val);
    hg_k_upload(&k, X, hX, xbytes);
    hg_csr dA = {n, A->ncols, nnz, rowptr, col, val};

    /* calibrate: products per repetition so that one lasts >= MIN_REP_SECONDS */
    double sec; /* the first product also faults Y in: calibrate on the second */
    if ((rc = timed(&k, &dA, X, o.dim, Y, 1, &sec)) || (rc = timed(&k, &dA, X, o.dim, Y, 1, &sec)))
        goto fail;
    int inner = 1;
    if (sec < MIN_REP_SECONDS)
        inner = (int)HG_MIN((double)MAX_INNER, ceil(MIN_REP_SECONDS / HG_MAX(sec, 1e-7)));
    for (int r = 0; r < o.warmup; r++)
        if ((rc = timed(&k, &dA, X, o.dim, Y, inner, &sec)))
            goto fail;
    for (int r = 0; r < o.reps; r++) {
        if ((rc = timed(&k, &dA, X, o.dim, Y, inner, &sec)))
            goto fail;
        times[r] = sec / inner;
    }
    qsort(times, (size_t)o.reps, sizeof *times, cmp_double);
    double t_med = o.reps % 2 ? times[o.reps / 2] : 0.5 * (times[o.reps / 2 - 1] + times[o.reps / 2]);
    double t_min = times[0];

    /* check against a CPU product */
    hg_k_download(&k, hY, Y, xbytes);
    if ((rc = hg_k_sync(&k)))
        goto fail;
    if ((rc = hg_kctx_init(&kc, HG_DEVICE_CPU, o.threads)))
        goto fail;
    hg_k_csr_spmm(&kc, n, A->rowptr, A->col, A->val, hX, d, 0.0f, hR);
    double max_err = 0;
    for (int64_t i = 0; i < n * d; i++) {
        double e = fabs((double)hY[i] - (double)hR[i]);
        if (!(e <= max_err))
            max_err = isnan(e) ? INFINITY : e;
    }

    double bytes = (double)(n + 1) * 8 + (double)nnz * 8 + 2.0 * (double)xbytes;
    double gbs = bytes / t_med / 1e9;
    double bytes_gather = bytes + ((double)nnz - (double)n) * (double)d * 4.0;
    double gbs_gather = bytes_gather / t_med / 1e9;
    double peak = o.peak_gbs, copy = 0;
    const char *peak_src = o.peak_gbs > 0 ? "option" : "none";
    if (o.device == HG_DEVICE_CPU) {
        copy = copy_gbs(o.threads);
        if (!(o.peak_gbs > 0)) {
            peak = copy;
            peak_src = "copy";
        }
    }
    double frac = peak > 0 ? gbs / peak : NAN;
    const char *devname = hg_k_device_name(&k);

    if (!o.quiet) {
        printf("hgnn-bench-spmm: %s | %s (%s), %d thread(s) | %lld nodes, %lld edges, nnz(A) %lld "
               "| Y = A X, X %lld x %d\n",
               dir, o.device == HG_DEVICE_CPU ? "cpu" : "cuda", devname, o.threads, (long long)n,
               (long long)data.nedges, (long long)nnz, (long long)n, o.dim);
        printf("  median %.4f ms (min %.4f) over %d reps of %d products | %.1f MB -> %.2f GB/s "
               "effective (X rows counted once: a lower bound on traffic)",
               t_med * 1e3, t_min * 1e3, o.reps, inner, bytes / 1e6, gbs);
        if (peak > 0)
            printf(" | %.1f%% of %.1f GB/s (%s)", 100.0 * frac, peak,
                   !strcmp(peak_src, "copy") ? "measured memcpy copy bandwidth" : "--peak-gbs");
        printf(" | %.2f GB/s counting X once per non-zero | max |Y - Y_cpu| %.3g\n", gbs_gather,
               max_err);
    }
    static char json[4096 + 8192];
    hg_json j;
    hg_json_begin_buf(&j, json, sizeof json);
    hg_json_add_str(&j, "data_dir", dir);
    hg_json_add_str(&j, "device", o.device == HG_DEVICE_CPU ? "cpu" : "cuda");
    hg_json_add_str(&j, "device_name", devname);
    hg_json_add_int(&j, "threads", o.threads);
    hg_json_add_int(&j, "nodes", n);
    hg_json_add_int(&j, "edges", data.nedges);
    hg_json_add_int(&j, "nnz", nnz);
    hg_json_add_int(&j, "dim", o.dim);
    hg_json_add_int(&j, "reps", o.reps);
    hg_json_add_int(&j, "inner", inner);
    hg_json_add_double(&j, "ms", t_med * 1e3);
    hg_json_add_double(&j, "ms_min", t_min * 1e3);
    hg_json_add_double(&j, "bytes", bytes);
    hg_json_add_double(&j, "gbs", gbs);
    hg_json_add_double(&j, "bytes_gather", bytes_gather);
    hg_json_add_double(&j, "gbs_gather", gbs_gather);
    hg_json_add_double(&j, "copy_gbs", copy);
    hg_json_add_double(&j, "peak_gbs", peak);
    hg_json_add_str(&j, "peak_source", peak_src);
    hg_json_add_double(&j, "fraction", frac);
    hg_json_add_double(&j, "max_abs_err", max_err);
    if ((rc = hg_json_end(&j)))
        goto fail;
    printf("%s\n", json);
    exit_code = 0;
    goto done;

fail:
    fflush(stdout);
    fprintf(stderr, "hgnn-bench-spmm: %s\n", hg_last_error()[0] ? hg_last_error() : hg_strerror(rc));
done:
    hg_k_free(&k, rowptr); /* NULL when not allocated (also after a failed init) */
    hg_k_free(&k, col);
    hg_k_free(&k, val);
    hg_k_free(&k, X);
    hg_k_free(&k, Y);
    hg_kctx_destroy(&k);
    hg_kctx_destroy(&kc);
    free(hX);
    free(hY);
    free(hR);
    free(times);
    hg_dataset_destroy(&data);
    return exit_code;
}
