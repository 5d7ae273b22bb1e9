/* linear_internal.h - the fields of hg_linear and the internal hooks of sst/linear.c, for the tests
 * (tests/test_sst.c) and nothing else: model code uses sst/linear.h only.
 *
 * Layout (row-major everywhere). SST keeps its singular vectors as rows so that one vector is one
 * contiguous run: Ut (k x m) has row i = U_i (the i-th column of U), Vt (k x n) row i = V_i, and
 * W = Ut^T diag(sigma) Vt. Per role one buffer (params, grads, moments, work), carved below; the
 * grads buffer holds exactly the trainable parameters' gradients in the order of the moments, so
 * zeroing, clipping and the state count are one loop over one run.
 *
 * Memory: every float array the kernels touch (the four role buffers and what points into them,
 * and the SVD workspace) lives in the kernel context's memory (device memory with a CUDA context;
 * only the kernels of kernels/kernels.h touch it). Host memory holds the bookkeeping: sel, wsamp,
 * sigma_host, A_host, the generator and counters, and the "sched" checkpoint tensor. */
#ifndef HG_SST_LINEAR_INTERNAL_H
#define HG_SST_LINEAR_INTERNAL_H

#include <stdint.h>

#include "../src/rng.h"
#include "linear.h"

/* Integers of the schedule packed into the "sched" checkpoint tensor, 16 bits per float (exact). */
enum {
    HG__SCHED_STEP = 0,  /* steps taken */
    HG__SCHED_T_MAIN,    /* Adam step counter of W / (A, B) / sigma */
    HG__SCHED_T_VEC,     /* SST: Adam step counter of the sampled vectors */
    HG__SCHED_IN_ITER,   /* steps since the iteration (SST) / merge (ReLoRA) began */
    HG__SCHED_IN_ROUND,  /* SST: iterations completed in the current round */
    HG__SCHED_RNG0,      /* 4 words of the generator state */
    HG__SCHED_NFIXED = HG__SCHED_RNG0 + 4 /* then r sampled indices (SST) */
};
#define HG__SCHED_FLOATS_PER_WORD 4

struct hg_linear {
    const hg_kctx *k;  /* borrowed; outlives the map */
    hg_linear_opts o;
    int64_t m, n;      /* out x in */
    int64_t kk;        /* min(m, n): SST triplets */
    int64_t r;         /* LoRA rank / SST vectors per iteration (0 for full) */
    int64_t ntrain;    /* trainable parameters = floats in grad; moments hold 2 * ntrain */
    int64_t T2;        /* SST iterations per round */
    float scale;       /* LoRA alpha / r */

    float *W;          /* (m x n) the materialised weight (full: the parameter itself) */
    /* full */
    float *gW, *mW, *vW;          /* (m x n) */
    /* LoRA / ReLoRA: A and B contiguous in params, grads and moments (one Adam call) */
    float *W0;                    /* (m x n) frozen base */
    float *A, *gA, *mA, *vA;      /* (r x n) */
    float *B, *gB, *mB, *vB;      /* (m x r) */
    /* SST */
    float *Ut;                    /* (k x m) row i = U_i */
    float *sigma;                 /* (k) */
    float *Vt;                    /* (k x n) row i = V_i */
    float *gsigma, *msigma, *vsigma; /* (k) */
    float *gU, *mU, *vU;          /* (r x m) row j belongs to sel[j] */
    float *gV, *mV, *vV;          /* (r x n) row j belongs to sel[j] */
    float *P;                     /* (k x n) scratch: Ut G, then diag(sigma) Vt; SVD's Vt out */
    float *svd_Ut, *svd_sigma;    /* (k x m), (k) scratch: the round-end SVD's other outputs,
                                     copied over the triplets only when it succeeded */
    void *svd_ws;                 /* hg_k_svd workspace (k's memory) */
    int64_t *sel;                 /* (r) host: sampled indices of the iteration, in draw order */
    double *wsamp;                /* (k) host: sampling weights scratch */
    float *sigma_host;            /* (k) host: sigma, downloaded at each iteration begin */
    /* LoRA / ReLoRA */
    float *A_host;                /* (r x n) host: staging of A's (re-)initialisation draw */

    /* schedule */
    int64_t step, t_main, t_vec, in_iter, in_round;
    hg_rng rng;                   /* LoRA A (re-)initialisation, SST sampling */
    int64_t n_reorth, n_merge;    /* SST round ends / ReLoRA merges so far */
    double reorth_seconds;        /* wall time spent in them */

    /* checkpoint tensors (data in k's memory, except sched) */
    float *sched;                 /* host: (HG__SCHED_FLOATS_PER_WORD * (HG__SCHED_NFIXED + r)) */
    int ntens;
    const char *tname[12];
    float *tdata[12];
    int64_t tcount[12];

    /* the role buffers (k's memory) the float arrays above point into */
    float *buf_param, *buf_grad, *buf_mom, *buf_work;
};

/* Draw r distinct indices of k by `rule` from sigma (k, >= 0, host memory) into out (r, draw
 * order); w (k) is scratch. SIGMA and MIXED draw sequentially without replacement, each draw
 * proportional to the remaining weights (torch.multinomial, replacement=False). */
void hg__sst_sample(hg_rng *rng, const float *sigma, int64_t k, int64_t r, hg_sst_sampling rule,
                    int64_t *out, double *w);
/* End the SST round now: re-orthogonalise by SVD of W and reset the moments. HG_ENUMERIC (W not
 * finite), HG_ELAPACK (SVD failed); the triplets are then left as they were. */
int hg__linear_sst_round_end(hg_linear *L);
/* Learning-rate factor the sampled vectors (SST) / A and B (ReLoRA) get at the next step. */
float hg__linear_lr_factor(const hg_linear *L);

#endif
