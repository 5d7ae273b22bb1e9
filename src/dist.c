/* dist.c - data-parallel training across processes (contract in dist.h). The MPI calls are the
 * few primitives at the top; without MPI they are never reached (a world of one rank). */
#include "dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hg.h"
#include "hg_config.h"
#include "io.h"

#if HG_HAVE_MPI
#include <mpi.h>
#endif

/* Largest element count handed to one MPI call (its counts are ints). */
#define CHUNK ((int64_t)1 << 30)

/* ---- the MPI primitives (world size > 1 only) ---- */

#if HG_HAVE_MPI
static void sum_f32(float *x, int64_t n)
{
    for (int64_t a = 0; a < n; a += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, x + a, (int)HG_MIN(CHUNK, n - a), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
}

static void sum_f64(double *x, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static int min_int(int x)
{
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return x;
}

static void gather_u64(uint64_t x, uint64_t *all)
{
    MPI_Allgather(&x, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
}

static void bcast_bytes(void *p, size_t bytes)
{
    for (size_t a = 0; a < bytes; a += (size_t)CHUNK)
        MPI_Bcast((char *)p + a, (int)HG_MIN((size_t)CHUNK, bytes - a), MPI_BYTE, 0,
                  MPI_COMM_WORLD);
}
#else
static void sum_f32(float *x, int64_t n) { (void)x, (void)n; }
static void sum_f64(double *x, int n) { (void)x, (void)n; }
static int min_int(int x) { return x; }
static void gather_u64(uint64_t x, uint64_t *all) { all[0] = x; }
static void bcast_bytes(void *p, size_t bytes) { (void)p, (void)bytes; }
#endif

/* ---- setup ---- */

/* The world size an MPI launcher announces in the environment (Open MPI, MPICH/Hydra, PMIx), or
 * 0 when the program was not started by one. */
static int launched_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0)
            return atoi(v);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

int hg_dist_init(hg_dist *d)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    d->reporter = -1;
    const int launched = launched_size();
#if HG_HAVE_MPI
    if (launched > 0) {
        int provided;
        MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        d->mpi = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    }
#else
    if (launched > 1)
        return HG_ERRORF(HG_EUNSUPPORTED, "started by an MPI launcher as one of %d processes, but "
                         "built without MPI (install libopenmpi-dev and rebuild; meson option "
                         "-Dmpi=enabled)", launched);
#endif
    return HG_OK;
}

int hg_dist_attach(hg_dist *d, const hg_kctx *k, int64_t floats)
{
    d->k = k;
    if (d->size == 1)
        return HG_OK;
    d->hashes = hg_calloc((size_t)d->size, sizeof *d->hashes, "replica checksums");
    if (!d->hashes)
        return HG_ENOMEM;
    if (k->device == HG_DEVICE_CPU)
        return HG_OK;
    d->stage_floats = HG_MAX(floats, 1);
    d->stage = hg_calloc((size_t)d->stage_floats, sizeof(float), "all-reduce staging");
    return d->stage ? HG_OK : HG_ENOMEM;
}

/* ---- the step's collectives ---- */

int hg_dist_sum_grad(hg_dist *d, float *x, int64_t n)
{
    if (d->size == 1)
        return HG_OK;
    const double t0 = hg_now();
    if (!d->stage) {
        sum_f32(x, n);
    } else {
        if (n > d->stage_floats)
            return HG_ERRORF(HG_EINVAL, "hg_dist_sum_grad: %lld floats, staging holds %lld",
                             (long long)n, (long long)d->stage_floats);
        hg_k_download(d->k, d->stage, x, (size_t)n * sizeof(float));
        sum_f32(d->stage, n);
        hg_k_upload(d->k, x, d->stage, (size_t)n * sizeof(float));
    }
    d->comm_seconds += hg_now() - t0;
    return HG_OK;
}

/* The lowest rank whose flag is set, or -1. */
static int first_flagged(const hg_dist *d, int flag)
{
    const int first = min_int(flag ? d->rank : d->size);
    return first < d->size ? first : -1;
}

int hg_dist_step_scalars(hg_dist *d, double *x, int n, int bad, int64_t step)
{
    if (d->size == 1)
        return HG_OK;
    if (n < 0 || n > 7)
        return HG_ERRORF(HG_EINVAL, "hg_dist_step_scalars: %d scalars (at most 7)", n);
    const double t0 = hg_now();
    double v[8];
    memcpy(v, x, (size_t)n * sizeof *x);
    v[n] = bad ? 1.0 : 0.0;
    sum_f64(v, n + 1);
    memcpy(x, v, (size_t)n * sizeof *x);
    int rc = HG_OK;
    if (v[n] != 0.0) { /* rare: which rank saw it first (the lowest of those that did) */
        d->reporter = 0;
        rc = HG_ERRORF(HG_ENUMERIC, "step %lld: rank %d of %d saw a non-finite training loss or "
                       "gradient (diverged; try a smaller --lr or --clip)", (long long)step,
                       first_flagged(d, bad), d->size);
    }
    d->comm_seconds += hg_now() - t0;
    return rc;
}

int hg_dist_check_replicas(hg_dist *d, const float *x, int64_t n, int64_t step)
{
    if (d->size == 1)
        return HG_OK;
    const double t0 = hg_now();
    uint64_t h = HG_FNV64_OFFSET;
    if (!d->stage) {
        h = hg_fnv1a64(h, x, (size_t)n * sizeof(float));
    } else {
        for (int64_t a = 0; a < n; a += d->stage_floats) {
            const int64_t m = HG_MIN(d->stage_floats, n - a);
            hg_k_download(d->k, d->stage, x + a, (size_t)m * sizeof(float));
            h = hg_fnv1a64(h, d->stage, (size_t)m * sizeof(float));
        }
    }
    uint64_t *all = d->hashes;
    gather_u64(h, all);
    char ranks[256] = "";
    size_t at = 0;
    int bad = 0, other = 0, rc = HG_OK;
    for (int r = 1; r < d->size; r++)
        if (all[r] != all[0]) {
            other = other ? other : r;
            if (bad++ < 16)
                at += (size_t)snprintf(ranks + at, sizeof ranks - at, "%s%d", bad > 1 ? ", " : "",
                                       r);
        }
    if (bad) {
        d->reporter = 0;
        rc = HG_ERRORF(HG_ENUMERIC, "step %lld: the replicas differ: the parameters of rank%s %s%s "
                       "are not those of rank 0 (checksums %016llx vs %016llx)", (long long)step,
                       bad > 1 ? "s" : "", ranks, bad > 16 ? ", ..." : "",
                       (unsigned long long)all[0], (unsigned long long)all[other]);
    }
    d->comm_seconds += hg_now() - t0;
    return rc;
}

/* ---- outside the steps ---- */

int hg_dist_bcast(hg_dist *d, void *p, size_t bytes)
{
    if (d->size > 1)
        bcast_bytes(p, bytes);
    return HG_OK;
}

int hg_dist_agree(hg_dist *d, int rc)
{
    if (d->size == 1)
        return rc;
    const int first = first_flagged(d, rc != HG_OK);
    if (first < 0)
        return HG_OK;
    d->reporter = first;
    return rc != HG_OK ? rc : HG_ERRORF(HG_EINVAL, "rank %d failed", first);
}

void hg_dist_print_error(const hg_dist *d, const char *program, int rc)
{
    const char *msg = hg_last_error()[0] ? hg_last_error() : hg_strerror(rc);
    if (d->size == 1)
        fprintf(stderr, "%s: %s\n", program, msg);
    else if (d->reporter < 0)
        fprintf(stderr, "%s: rank %d: %s\n", program, d->rank, msg);
    else if (d->reporter == d->rank)
        fprintf(stderr, "%s: %s\n", program, msg);
    fflush(stderr);
}

int hg_dist_exit(hg_dist *d, int exit_code)
{
    hg_free(d->stage);
    hg_free(d->hashes);
    d->stage = NULL;
    d->hashes = NULL;
#if HG_HAVE_MPI
    if (d->mpi && d->size > 1 && exit_code != 0 && d->reporter < 0)
        MPI_Abort(MPI_COMM_WORLD, exit_code);
    if (d->mpi)
        MPI_Finalize();
#endif
    d->mpi = 0;
    return exit_code;
}
