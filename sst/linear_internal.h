/* linear_internal.h - the fields of hg_linear and the internal hooks shared by sst/linear.c and
 * sst/spectral.c, also used by the tests (tests/test_sst.c); model code uses sst/linear.h only.
 *
 * Storage (row-major everywhere). SST keeps its singular vectors as rows, so that one vector is
 * one contiguous run, and keeps the r sampled triplets of the current iteration first: storage
 * position p < r is row p of U_S / V_S (trainable), position p >= r is row p - r of U_R / V_R
 * (frozen), and sigma[p] is the singular value at position p. Which triplet (in the index order
 * of the round's SVD, "canonical") sits where follows from the sampled indices: positions 0..r-1
 * hold sel[0..r-1] in draw order, the others hold the remaining indices in ascending order. So
 * W = U_S^T diag(sigma[:r]) V_S + U_R^T diag(sigma[r:]) V_R, the sampled vectors and their
 * gradients and moments are contiguous (one optimiser call for all maps), and the sampling sees
 * sigma in canonical order, as if nothing had moved.
 *
 * Memory: tensors live in the parameter group's buffers (k's memory); the map owns the
 * materialised W (LoRA, SST) and host bookkeeping: sel, order, wsamp, sigma_host, A_host, the
 * generator and counters, and the "sched" checkpoint tensor. */
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
#define HG__LINEAR_MAX_TENSORS 16

struct hg_linear {
    hg_params *P;      /* borrowed: the group owning the tensors */
    const hg_kctx *k;  /* the group's context */
    hg_linear_opts o;
    char *name;
    int64_t m, n;      /* out x in */
    int64_t kk;        /* min(m, n): SST triplets */
    int64_t r;         /* LoRA rank / SST vectors per iteration (0 for full) */
    int64_t ntrain;    /* trainable parameter floats */
    int64_t T2;        /* SST iterations per round */
    int64_t max_rows;  /* rows a forward/backward may get (workspace sized for it) */
    float scale;       /* LoRA alpha / r */
    float *W_init;     /* host copy of the initial weight until commit */

    /* tensor ids in the group (-1: none) */
    int id_W, id_W0, id_A, id_B, id_sigma, id_US, id_VS, id_UR, id_VR;
    hg_param_clock clk_main; /* W / (A, B) / sigma */
    hg_param_clock clk_vec;  /* SST's sampled vectors */

    /* pointers into the group (after commit) and the map's own W */
    float *W;                 /* (m x n) materialised weight (full: the parameter itself) */
    float *gW;                /* full */
    float *W0, *A, *gA, *B, *gB; /* LoRA / ReLoRA: (m x n), (r x n), (m x r) */
    float *sigma, *gsigma, *msigma, *vsigma; /* SST (k), storage order */
    float *US, *gU, *mU, *vU; /* (r x m) sampled left vectors, draw order */
    float *VS, *gV, *mV, *vV; /* (r x n) */
    float *UR, *VR;           /* ((k - r) x m), ((k - r) x n) */
    float *W_own;             /* the map's allocation of W (LoRA, SST) */
    int W_stale;              /* SST: W is a cache, rebuilt at its next use (hg__sst_weight) */
    int w_less;               /* SST: the map takes the factored path at max_rows (so at every
                                 row count up to it) and keeps no W: W is NULL until something
                                 outside a training step asks for it (hg__sst_weight) */
    float *XV;                /* SST: (k x xv_cap) X V of the last factored forward, kept for its
                                 backward (k's memory), valid for xv_X / xv_rows until the step */
    const float *xv_X;        /* the X it was computed from (NULL: none valid) */
    int64_t xv_rows, xv_cap;
    int W_pinned;             /* SST: W was loaded from outside (hg_linear_load_weight): the dense
                                 path uses it as it is until hg_linear_rematerialise */
    int64_t *sel;             /* (r) host: sampled canonical indices, draw order */
    int64_t *order;           /* (4k) host: canonical index at each storage position (first k),
                                 then scratch for the next layout: draw, order, positions */
    int64_t *pos;             /* (k) host: storage position of each canonical index */
    double *wsamp;            /* (k) host: sampling weights scratch */
    float *sigma_host;        /* (k) host: sigma in canonical order, at each iteration begin */
    float *A_host;            /* (r x n) host: staging of A's (re-)initialisation draw */

    /* schedule */
    int64_t step, in_iter, in_round;
    hg_rng rng;                   /* LoRA A (re-)initialisation, SST sampling */
    int64_t n_reorth, n_merge;    /* SST round ends / ReLoRA merges so far */
    double reorth_seconds;        /* wall time spent in them */

    /* checkpoint tensors: group tensor id (or -1 for sched) and moment (0 data, 1 m, 2 v) */
    float *sched;                 /* host: (HG__SCHED_FLOATS_PER_WORD * (HG__SCHED_NFIXED + r)) */
    int ntens;
    char tname[HG__LINEAR_MAX_TENSORS][16];
    int tid[HG__LINEAR_MAX_TENSORS], tmom[HG__LINEAR_MAX_TENSORS];
    int64_t tcount[HG__LINEAR_MAX_TENSORS];
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
/* Rows of U and V (k's memory) of the triplet with canonical index i, and its sigma's position. */
float *hg__sst_u(const hg_linear *L, int64_t i);
float *hg__sst_v(const hg_linear *L, int64_t i);
int64_t hg__sst_pos(const hg_linear *L, int64_t i);

/* Where checkpoint tensor i lives (k's memory; host memory for "sched"). */
float *hg__linear_tensor_data(const hg_linear *L, int i);

/* sst/spectral.c, for sst/linear.c */
int64_t hg__sst_workspace_floats(const hg_linear *L, int64_t rows);
void hg__sst_layout_identity(hg_linear *L);
int hg__sst_decompose(hg_linear *L, const float *Wsrc);
void hg__sst_begin_iteration(hg_linear *L);
/* W, rebuilt first when stale (W is a cache: const-callers may refresh it); a map without W
 * allocates it here (not in a training step: only pruning and inspection ask): NULL when that
 * fails (recorded). */
float *hg__sst_weight(const hg_linear *L);
/* Where an SVD's input weight goes: W, or for a map without W the workspace after the part the
 * SVD itself uses. */
float *hg__sst_svd_input(const hg_linear *L);
/* Whether a forward / backward of `rows` rows goes through the factors (a function of the shape
 * and the row count only, so that runs and resumed runs take the same path). */
int hg__sst_factored(const hg_linear *L, int64_t rows);
void hg__sst_forward(const hg_linear *L, float *Y, const float *X, int64_t rows);
void hg__sst_grad_from_G(hg_linear *L, const float *G);
/* The parameter gradients (+=) and, when dX is given and the call is factored, dX (=). */
void hg__sst_backward(hg_linear *L, float *dX, const float *dY, const float *X, int64_t rows);
void hg__sst_after_update(hg_linear *L);
void hg__sst_sched_indices_loaded(hg_linear *L);
/* Sizes were range-checked in create, so a refused GEMM is a broken invariant: abort. */
void hg__gemm(const hg_kctx *k, int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);
/* The same in fp32 whatever k's precision: products that write a map's weights (W from its
 * factors, the ReLoRA* merge), which bf16 rounding would degrade for good. */
void hg__gemm_fp32(const hg_kctx *k, int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc);

#endif
