/* linear.h - the shared linear-map backend: W (m x n, out x in) trained in one of four modes
 * (DESIGN.md section 4): full rank, LoRA, ReLoRA*, SST. Knows nothing of graphs or geometry.
 *
 * The caller owns the product with the data: it reads the materialised weight hg_linear_weight()
 * (m x n, row-major, always current) for Y = X W^T, and hands back G = dL/dW (m x n) through
 * hg_linear_accumulate_grad(), which converts it into the gradients of the method's own
 * parameters (full: W; LoRA: A, B; SST: sigma and the sampled U/V columns). Parameter gradients
 * accumulate (+=) until hg_linear_zero_grad(). hg_linear_step() applies one optimiser step and the
 * method's schedule (ReLoRA merges, SST iterations and rounds) and re-materialises W.
 * All buffers are allocated in hg_linear_create(); the training calls (zero_grad,
 * accumulate_grad, grad_sqnorm, scale_grad, step) allocate nothing.
 *
 * Memory: the map keeps its arrays (weight, parameters, gradients, moments, scratch) in the memory
 * of its kernel context k (host memory on the CPU, device memory with a CUDA context) and touches
 * them only through kernels/kernels.h. Which side each pointer argument is on is stated per
 * function below: the training calls take and return k's memory; setup, checkpoint and pruning
 * calls take host memory and copy. */
#ifndef HG_SST_LINEAR_H
#define HG_SST_LINEAR_H

#include <stdint.h>

#include "../kernels/kernels.h"

typedef enum { HG_LINEAR_FULL = 0, HG_LINEAR_LORA, HG_LINEAR_RELORA, HG_LINEAR_SST } hg_linear_method;
typedef enum {
    HG_SST_SAMPLE_SIGMA = 0, /* p_i proportional to sigma_i (paper) */
    HG_SST_SAMPLE_MIXED,     /* p_i = (1/k + sigma_i / sum sigma) / 2 (ours) */
    HG_SST_SAMPLE_UNIFORM,
    HG_SST_SAMPLE_TOP        /* the r largest sigma, deterministic */
} hg_sst_sampling;

typedef struct hg_linear_opts {
    hg_linear_method method;
    int rank;             /* r: LoRA rank, or SST vectors sampled per iteration */
    float lora_alpha;     /* LoRA scale alpha (scale = alpha / r); <= 0 means alpha = r */
    int steps_per_iter;   /* T3: steps per SST iteration / per ReLoRA merge */
    int warmup;           /* linear lr warm-up steps at the start of each iteration / merge */
    int iters_per_round;  /* T2: SST iterations per round; 0 = ceil(k / r) */
    hg_sst_sampling sampling;
    int renorm;           /* SST: renormalise updated U_i, V_i to unit length after each step */
    /* optimiser (Adam, torch semantics) */
    float beta1, beta2, eps;
    float weight_decay;   /* applied to the method's weight parameters (full: W; LoRA: A, B;
                             SST: sigma), decoupled (AdamW) or as L2 per decoupled_wd */
    int decoupled_wd;
} hg_linear_opts;

/* Fills the paper's defaults for the graph networks (Adam betas 0.9/0.999, eps 1e-8,
 * T3 = 100, warm-up 100, sampling sigma, renorm 1, alpha = r, decoupled weight decay). */
void hg_linear_opts_default(hg_linear_opts *o);
/* Parse/print method and sampling names ("full", "lora", "relora", "sst"; "sigma", ...).
 * Return -1 for an unknown name. */
int hg_linear_method_parse(const char *s);
const char *hg_linear_method_name(hg_linear_method m);
int hg_sst_sampling_parse(const char *s);
const char *hg_sst_sampling_name(hg_sst_sampling s);

typedef struct hg_linear hg_linear; /* opaque; fields in sst/linear_internal.h (tests only) */

/* Create a linear map of shape m x n starting from W_init (m x n, HOST memory, the standard
 * initialisation of the model; copied into k's memory). SST takes its thin SVD (hg_k_svd), LoRA
 * freezes it as W0. seed drives the method's own randomness (LoRA's A, SST's sampling). k is
 * borrowed and must outlive the map. *out is NULL on failure.
 * Errors: HG_EINVAL (bad sizes/options), HG_ENOMEM, HG_ELAPACK. */
int hg_linear_create(hg_linear **out, const hg_kctx *k, int64_t m, int64_t n, const float *W_init,
                     const hg_linear_opts *o, uint64_t seed);
void hg_linear_free(hg_linear *L); /* NULL is fine */

int64_t hg_linear_rows(const hg_linear *L); /* m */
int64_t hg_linear_cols(const hg_linear *L); /* n */
/* (m x n) current effective weight, in k's memory (valid while L lives). */
const float *hg_linear_weight(const hg_linear *L);

void hg_linear_zero_grad(hg_linear *L);
/* G (m x n, k's memory) = dL/dW; converts and accumulates (+=) into the method's parameter
 * gradients. */
void hg_linear_accumulate_grad(hg_linear *L, const float *G);
/* Squared L2 norm of the trainable parameters' gradients (for global-norm clipping). */
double hg_linear_grad_sqnorm(const hg_linear *L);
void hg_linear_scale_grad(hg_linear *L, float a);
/* One optimiser step with base learning rate lr (the method multiplies its own warm-up factor),
 * then the schedule hooks, then W is re-materialised. Errors: HG_ELAPACK (SST round SVD),
 * HG_ENUMERIC (non-finite W at an SST round end); in both cases the triplets are left as they
 * were (the moments restart all the same); HG_ECUDA (a failed device operation, reported at a
 * merge or round end; otherwise by the context's next hg_k_sync). With a CUDA context the step
 * is asynchronous except at the schedule's boundaries: an SST iteration start downloads sigma
 * (for the sampling), merges and round ends wait for the device (to time them). */
int hg_linear_step(hg_linear *L, float lr);

/* Trainable parameter count at the current step, and optimiser-state floats (Adam moments). */
int64_t hg_linear_num_trainable(const hg_linear *L);
int64_t hg_linear_state_floats(const hg_linear *L);

/* Work done by the schedule hooks so far, for reporting their amortised cost. */
typedef struct hg_linear_stats {
    int64_t reorths;         /* SST round ends (re-orthogonalising SVDs) */
    int64_t merges;          /* ReLoRA* merges */
    double schedule_seconds; /* wall time spent in both */
} hg_linear_stats;
void hg_linear_get_stats(const hg_linear *L, hg_linear_stats *out);

/* Persistent tensors (for checkpoints): i in [0, hg_linear_num_tensors). hg_linear_tensor gives
 * name, data and count (floats); data is in k's memory, except for "sched", which is host memory.
 * hg_linear_tensor_read / _write copy tensor i (count floats) to / from host memory wherever it
 * lives (an i out of range does nothing): host code uses them, not data. Loading a checkpoint
 * writes the tensors and then calls hg_linear_rematerialise(). Names: full "W"; LoRA/ReLoRA "W0",
 * "A" (r x n), "B" (m x r); SST "Ut" (k x m, row i = U_i), "sigma" (k), "Vt" (k x n, row i = V_i);
 * then the Adam moments ("<name>.adam_m", ".adam_v"; SST: "sigma", "U_S", "V_S" for the r sampled
 * vectors) and "sched" (step counters, generator state, sampled indices as 16-bit integers in
 * floats), so that save, load and continue reproduce an uninterrupted run bit for bit. */
int hg_linear_num_tensors(const hg_linear *L);
void hg_linear_tensor(hg_linear *L, int i, const char **name, float **data, int64_t *count);
void hg_linear_tensor_read(const hg_linear *L, int i, float *host_dst);
void hg_linear_tensor_write(hg_linear *L, int i, const float *host_src);
void hg_linear_rematerialise(hg_linear *L);

/* Singular-value pruning for inference: write into W_out (m x n, HOST memory) the weight rebuilt
 * from the `keep` largest singular values (SST: its own triplets; other methods: the float
 * triplets of an SVD of the current W, on the host, summed in double). keep >= min(m, n) copies
 * W. Allocates host temporaries (not for a training step). Errors: HG_EINVAL, HG_ELAPACK,
 * HG_ENOMEM. */
int hg_linear_pruned_weight(const hg_linear *L, int64_t keep, float *W_out);
/* Overwrite the materialised weight with W (m x n, HOST memory; uploaded), e.g. a pruned one,
 * for inference. Full mode's W is its parameter, so this changes it; the other methods'
 * parameters are untouched and hg_linear_rematerialise() restores their weight. */
void hg_linear_load_weight(hg_linear *L, const float *W);

#endif
