/* linear.h - the shared linear-map backend: W (m x n, out x in) applied to rows, Y = X W^T,
 * trained in one of four modes: full rank, LoRA, ReLoRA*, SST (Sparse Spectral Training).
 * Knows nothing of graphs, geometry or attention.
 *
 * A map lives in a parameter group (src/params.h) that owns its parameters, gradients and Adam
 * moments in the model's flat buffers: hg_linear_create declares them, hg_params_commit allocates
 * them and initialises the map, hg_params_step updates every map of the model in one fused step
 * and then runs each map's schedule (SST clamping, renormalisation and iterations, ReLoRA* merges)
 * and re-materialises W. Zeroing, clipping and norms of the gradients are the group's.
 *
 * Two ways in for the gradients, both accumulating (+=) into the method's own parameters:
 *  - hg_linear_backward(X, dY): from the activations. Full rank writes dY^T X; LoRA works through
 *    X A^T and dY B; SST takes dsigma and its sampled vectors' gradients from X V and dY U, or
 *    forms G = dY^T X in the shared workspace when that is fewer operations for the shape; chosen
 *    per call. No dense m x n gradient is ever held by LoRA, ReLoRA* or SST.
 *  - hg_linear_accumulate_grad(G): a caller that already has G = dL/dW (m x n), e.g. from a fused
 *    kernel, hands it over.
 *
 * Memory: every array the training calls take or return lives in the memory of the group's kernel
 * context (host memory on the CPU, device memory with CUDA); setup, checkpoint and pruning calls
 * take host memory and copy. The training calls allocate nothing. */
#ifndef HG_SST_LINEAR_H
#define HG_SST_LINEAR_H

#include <stdint.h>

#include "../kernels/kernels.h"
#include "../src/params.h"

typedef enum { HG_LINEAR_FULL = 0, HG_LINEAR_LORA, HG_LINEAR_RELORA, HG_LINEAR_SST } hg_linear_method;
typedef enum {
    HG_SST_SAMPLE_SIGMA = 0, /* p_i proportional to sigma_i (paper) */
    HG_SST_SAMPLE_MIXED,     /* p_i = (1/k + sigma_i / sum sigma) / 2 (ours) */
    HG_SST_SAMPLE_UNIFORM,
    HG_SST_SAMPLE_TOP        /* the r largest sigma, deterministic */
} hg_sst_sampling;
/* How SST applies its weight in hg_linear_forward / hg_linear_backward: through W rebuilt from
 * the k triplets after each step (dense), or through the factors, Y = ((X V) diag(sigma)) U^T,
 * without W (factored); auto takes whichever costs fewer operations for the call's row count
 * (factored for few rows, e.g. B T = 512 at d = 768). The same numbers up to float rounding. */
typedef enum { HG_SST_PRODUCT_AUTO = 0, HG_SST_PRODUCT_DENSE, HG_SST_PRODUCT_FACTORED } hg_sst_product;

typedef struct hg_linear_opts {
    hg_linear_method method;
    int rank;             /* r: LoRA rank, or SST vectors sampled per iteration */
    float lora_alpha;     /* LoRA scale alpha (scale = alpha / r); <= 0 means alpha = r */
    int steps_per_iter;   /* T3: steps per SST iteration / per ReLoRA merge */
    int warmup;           /* linear lr warm-up steps at the start of each iteration / merge */
    int iters_per_round;  /* T2: SST iterations per round; 0 = ceil(k / r) */
    hg_sst_sampling sampling;
    int renorm;           /* SST: renormalise updated U_i, V_i to unit length after each step */
    hg_sst_product product;
    /* optimiser (Adam, torch semantics): hg_linear_group_hp turns these into the groups' settings */
    float beta1, beta2, eps;
    float weight_decay;   /* on the method's weight parameters (full: W; LoRA: A, B; SST: sigma),
                             decoupled (AdamW) or as L2 per decoupled_wd */
    int decoupled_wd;
} hg_linear_opts;

/* Fills the paper's defaults for the graph networks (Adam betas 0.9/0.999, eps 1e-8,
 * T3 = 100, warm-up 100, sampling sigma, renorm 1, alpha = r, decoupled weight decay). */
void hg_linear_opts_default(hg_linear_opts *o);
/* The settings of the two parameter groups a model's maps go into: `weights` (full W, LoRA A and
 * B, SST sigma: o's betas, eps and weight decay) and `vectors` (SST's sampled singular vectors:
 * the same without weight decay: they are unit directions). */
void hg_linear_group_hp(const hg_linear_opts *o, hg_param_hp *weights, hg_param_hp *vectors);
/* Parse/print method and sampling names ("full", "lora", "relora", "sst"; "sigma", ...).
 * Return -1 for an unknown name. */
int hg_linear_method_parse(const char *s);
const char *hg_linear_method_name(hg_linear_method m);
int hg_sst_sampling_parse(const char *s);
const char *hg_sst_sampling_name(hg_sst_sampling s);
int hg_sst_product_parse(const char *s); /* "auto", "dense", "factored" */

typedef struct hg_linear hg_linear; /* opaque; fields in sst/linear_internal.h (tests only) */

/* Declare a linear map of shape m x n in parameter group P (before hg_params_commit): its
 * tensors are named "<name>.<tensor>" and go into hyperparameter group `group` (vec_group for
 * SST's sampled vectors). W_init (m x n, HOST memory, the model's standard initialisation) is
 * copied; at commit SST takes its thin SVD, LoRA freezes it as W0. seed drives the method's own
 * randomness (LoRA's A, SST's sampling). max_rows: the most rows a forward/backward call will get
 * (sizes the shared workspace; 0 when only hg_linear_accumulate_grad is used). The map is usable
 * after the commit; *out is NULL on failure.
 * Errors: HG_EINVAL (bad sizes/options/groups), HG_ENOMEM; at commit: HG_ELAPACK. */
int hg_linear_create(hg_linear **out, hg_params *P, int group, int vec_group, const char *name,
                     int64_t m, int64_t n, const float *W_init, const hg_linear_opts *o,
                     uint64_t seed, int64_t max_rows);
/* Frees the map's own buffers (the group keeps its tensors). NULL is fine. Free the maps before
 * their group. */
void hg_linear_free(hg_linear *L);

int64_t hg_linear_rows(const hg_linear *L); /* m */
int64_t hg_linear_cols(const hg_linear *L); /* n */
/* (m x n) current effective weight, in k's memory (valid while L lives). An SST map that takes
 * the factored path at its max_rows keeps no W and allocates it at the first call (not a
 * training step's business): NULL when that fails (HG_ENOMEM recorded). */
const float *hg_linear_weight(const hg_linear *L);

/* Y (rows x m) (=) X (rows x n) W^T, plus bias (m; NULL: none) on every row. */
void hg_linear_forward(const hg_linear *L, float *Y, const float *X, const float *bias,
                       int64_t rows);
/* Given dY = dL/dY (rows x m) and the forward's X (SST may reuse products of that forward: call
 * it after the forward of the same X with the parameters unchanged, as a training step does):
 * dX (rows x n) (=) dY W (NULL: not computed),
 * gbias (m; NULL: none) (+=) the column sums of dY, the method's parameter gradients (+=).
 * Returns HG_OK, or HG_EINVAL (recorded) when rows exceeds the max_rows given at create. */
int hg_linear_backward(hg_linear *L, float *dX, float *gbias, const float *dY, const float *X,
                       int64_t rows);
/* G (m x n, k's memory) = dL/dW; converts and accumulates (+=) into the method's parameter
 * gradients. */
void hg_linear_accumulate_grad(hg_linear *L, const float *G);

/* Trainable parameter count and optimiser-state floats (Adam moments) of this map. */
int64_t hg_linear_num_trainable(const hg_linear *L);
int64_t hg_linear_state_floats(const hg_linear *L);
/* Bytes this map holds in k's memory: its parameters (frozen ones and the materialised weight
 * included), gradients and moments, and its own scratch; the group's shared workspace request
 * (for max_rows rows, the round-end SVD and the like) is given apart. */
typedef struct hg_linear_bytes {
    int64_t params, grads, moments, scratch, shared_workspace;
} hg_linear_bytes;
void hg_linear_get_bytes(const hg_linear *L, hg_linear_bytes *out);

/* Work done by the schedule hooks so far, for reporting their amortised cost. */
typedef struct hg_linear_stats {
    int64_t reorths;         /* SST round ends (re-orthogonalising SVDs) */
    int64_t merges;          /* ReLoRA* merges */
    double schedule_seconds; /* wall time spent in both */
} hg_linear_stats;
void hg_linear_get_stats(const hg_linear *L, hg_linear_stats *out);
/* Status of the last schedule hook (HG_ELAPACK: SST round SVD failed; HG_ENUMERIC: non-finite W
 * at a round end, the triplets then kept as they were; HG_ECUDA) also returned by
 * hg_params_step. */

/* Persistent tensors (for checkpoints): i in [0, hg_linear_num_tensors). hg_linear_tensor gives
 * the short name and float count; read / write copy tensor i to / from host memory wherever it
 * lives (an i out of range does nothing). Loading a checkpoint writes the tensors and then calls
 * hg_linear_rematerialise(). Names: full "W"; LoRA/ReLoRA "W0", "A" (r x n), "B" (m x r); SST
 * "sigma" (k), "U_S" (r x m) and "V_S" (r x n): the sampled singular vectors, one per row in draw
 * order, "U_R" ((k - r) x m) and "V_R" ((k - r) x n): the others in ascending index order; then
 * the Adam moments of the trainable ones ("<name>.adam_m", ".adam_v") and "sched" (step counters,
 * generator state, sampled indices as 16-bit integers in floats), so that save, load and continue
 * reproduce an uninterrupted run bit for bit. */
int hg_linear_num_tensors(const hg_linear *L);
void hg_linear_tensor(const hg_linear *L, int i, const char **name, int64_t *count);
void hg_linear_tensor_read(const hg_linear *L, int i, float *host_dst);
void hg_linear_tensor_write(hg_linear *L, int i, const float *host_src);
void hg_linear_rematerialise(hg_linear *L);

/* Singular-value pruning for inference: write into W_out (m x n, HOST memory) the weight rebuilt
 * from the `keep` largest singular values (SST: its own triplets, largest |sigma| first; other
 * methods: the float triplets of an SVD of the current W, on the host, summed in double).
 * keep >= min(m, n) copies
 * W. Allocates host temporaries (not for a training step). Errors: HG_EINVAL, HG_ELAPACK,
 * HG_ENOMEM. */
int hg_linear_pruned_weight(const hg_linear *L, int64_t keep, float *W_out);
/* Overwrite the materialised weight with W (m x n, HOST memory; uploaded), e.g. a pruned one,
 * for inference. Full mode's W is its parameter, so this changes it; the other methods'
 * parameters are untouched and hg_linear_rematerialise() restores their weight. */
int hg_linear_load_weight(hg_linear *L, const float *W); /* HG_OK, HG_ENOMEM */

#endif
