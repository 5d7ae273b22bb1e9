/* dist.h - data-parallel training across processes: every process (rank) holds a whole replica of
 * the model, computes the gradient of its own share of the step's batch, and the gradients are
 * summed over the ranks by one all-reduce of the parameter group's flat gradient buffer, so that
 * every rank takes the same optimiser step and the replicas stay identical bit for bit.
 *
 * Built on MPI when the build found it (meson option `mpi`) and the program was started by an MPI
 * launcher (mpirun sets the variables hg_dist_init looks for); otherwise a world of one rank in
 * which every call below returns at once, so that a program runs exactly as without this module.
 *
 * Failures. A failure every rank detects from the same (all-reduced or gathered) values is
 * agreed: every rank returns the same status and message, one rank prints it (hg_dist_print_error)
 * and all of them exit normally (hg_dist_exit). Any other failure is local to the rank that meets
 * it: that rank prints its message naming itself and hg_dist_exit ends the whole job
 * (MPI_Abort), so that no rank waits for it forever. A rank that dies is noticed by the launcher,
 * which ends the others. MPI's own errors are fatal to the job (MPI's default handler).
 *
 * Nothing here allocates after hg_dist_attach (the host staging buffer of a device context). */
#ifndef HG_DIST_H
#define HG_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/kernels.h"

typedef struct hg_dist {
    int rank, size;       /* this process, and the world (1 without MPI) */
    int mpi;              /* MPI was initialised by hg_dist_init */
    int reporter;         /* after an agreed failure: the rank that prints it (-1: none) */
    double comm_seconds;  /* spent in the step calls (sum_grad, step_scalars, check_replicas) */
    const hg_kctx *k;     /* the context whose memory the gradients live in (hg_dist_attach) */
    float *stage;         /* host staging for a device context (stage_floats floats) */
    int64_t stage_floats;
    uint64_t *hashes;     /* one checksum per rank (hg_dist_check_replicas) */
} hg_dist;

/* Join the job: MPI_Init_thread when launched by an MPI launcher (only the calling thread talks
 * to MPI), a world of one otherwise. Errors: HG_EUNSUPPORTED (launched by mpirun but built
 * without MPI: every rank would train alone). */
int hg_dist_init(hg_dist *d);

/* The gradients of at most `floats` floats live in k's memory: with several ranks, room for the
 * ranks' checksums and, on a device context, a host staging buffer of that size are allocated (the all-reduce goes through host memory; an
 * MPI built with device support could take device buffers directly). Errors: HG_ENOMEM. */
int hg_dist_attach(hg_dist *d, const hg_kctx *k, int64_t floats);

/* ---- the step's collectives (allocate nothing) ---- */

/* x[0..n) in k's memory (the attached context) summed over the ranks, in place: one all-reduce
 * (staged through the host on a device context; n <= the attached size). Errors: HG_EINVAL
 * (n beyond the staging buffer). */
int hg_dist_sum_grad(hg_dist *d, float *x, int64_t n);

/* The step's scalars x[0..n) (host, n <= 7) summed over the ranks, and the non-finite guard in
 * the same all-reduce: bad is this rank's "my loss or gradient is not finite". When any rank
 * set it, every rank returns HG_ENUMERIC (agreed) naming the lowest such rank and `step`, and
 * x is undefined. With one rank: nothing (bad is ignored; the caller's own guard applies). */
int hg_dist_step_scalars(hg_dist *d, double *x, int n, int bad, int64_t step);

/* Whether the replicas are still identical: FNV-1a 64 of x[0..n) (k's memory; the parameters)
 * gathered from every rank and compared with rank 0's. Errors: HG_ENUMERIC (agreed) naming the
 * ranks that differ from rank 0 and `step`. */
int hg_dist_check_replicas(hg_dist *d, const float *x, int64_t n, int64_t step);

/* ---- outside the steps ---- */

/* bytes of host memory at p sent from rank 0 to every rank. */
int hg_dist_bcast(hg_dist *d, void *p, size_t bytes);

/* Every rank's status rc after a phase that has no collective (setup): returns HG_OK when all of
 * them succeeded; otherwise the failure is agreed, the lowest failing rank reports its own
 * message and the others return HG_EINVAL. */
int hg_dist_agree(hg_dist *d, int rc);

/* Print "PROGRAM: message" (the last recorded error, or rc's text) on stderr: with one rank
 * always; after an agreed failure only on the reporting rank; otherwise (a local failure)
 * "PROGRAM: rank R: message". */
void hg_dist_print_error(const hg_dist *d, const char *program, int rc);

/* Leave the job with exit_code: a local failure (exit_code != 0 and no agreed failure) with
 * several ranks ends every rank (MPI_Abort, no return); otherwise MPI_Finalize and exit_code. */
int hg_dist_exit(hg_dist *d, int exit_code);

#endif
