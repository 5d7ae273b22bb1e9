/* transformer.h - the Transformer of hgnn-mt (ARCHITECTURE.md section 9), encoder-decoder, or
 * decoder-only (no encoder layers: a causal language model, hgnn-lm):
 *
 *   source ids -> sqrt(d) E[id] + sinusoid -> dropout -> [self-attention, FFN] x Le -> LN -> memory
 *   target ids -> sqrt(d) E[id] + sinusoid -> dropout -> [causal self-attention,
 *                 cross-attention on memory, FFN] x Ld -> LN -> logits = h E^T
 *
 * Every sublayer is x + dropout(F(LN(x))) (pre-LN, the default) or LN(x + dropout(F(x)))
 * (post-LN: then no final LN). Every linear map of attention (Q, K, V, output) and of the FFN
 * (two maps) is an sst/ map trained full rank, LoRA, ReLoRA* or SST; the embedding table (one for
 * both languages, tied with the output projection), the layer norms and the biases are ordinary
 * parameters. Attention masks: padding of the keys (source lengths) and causality (decoder).
 *
 * The model owns every buffer it needs, sized at hg_tf_init for the largest batch it will see;
 * the loss, its gradient and the optimiser step allocate nothing. Every array handed to the
 * model (ids, lengths) lives in the kernel context's memory. */
#ifndef HG_MODELS_TRANSFORMER_H
#define HG_MODELS_TRANSFORMER_H

#include <stdint.h>

#include "../../kernels/kernels.h"
#include "../../sst/linear.h"
#include "../params.h"
#include "../registry.h"

#define HG_TF_MAX_LAYERS 32
/* Targets that carry no loss (padding) in hg_tf_batch.tgt_out. */
#define HG_TF_IGNORE (-100)

typedef struct hg_tf_config {
    int64_t vocab;        /* shared source/target vocabulary */
    int dim, heads, ffn;  /* d, attention heads (d a multiple), FFN width */
    int enc_layers, dec_layers; /* enc_layers 0: decoder-only (no source, no cross-attention) */
    float dropout;        /* embeddings, attention probabilities, FFN hidden, residual branches */
    int post_ln;          /* 0: pre-LN (default); 1: post-LN */
    int gelu;             /* FFN activation: 0 ReLU (default), 1 GELU */
    int attn_fused;       /* causal self-attention by hg_k_attn_causal_forward/backward (no
                             score matrix stored); 0: batched products and a row softmax */
    float ln_eps;         /* 1e-5 */
    int learned_pos;      /* positions: 0 sinusoidal (fixed), 1 a trained table (max_len x d) */
    float emb_scale;      /* embeddings are multiplied by it (<= 0: sqrt(d)) */
    float init_std;       /* > 0: embeddings, positions and map weights N(0, init_std^2), biases
                             0 (OPT); 0: the default initialisation below */
    int64_t max_len;      /* longest sequence (positions table), source or target, EOS/BOS
                             included */
    /* capacity: the largest training/evaluation batch (rows = sentences x padded length) */
    int64_t max_batch, max_src_len, max_tgt_len;
    int64_t max_src_rows, max_tgt_rows;
    hg_linear_opts linear; /* how every map is trained; its betas/eps/weight decay are the
                              ordinary parameters' too */
    uint64_t seed;        /* initialisation; the maps' own randomness */
} hg_tf_config;

/* One batch, in k's memory: src (B x Ts) ids padded after src_len[b] tokens (any valid id),
 * src_len (B), tgt_in (B x Tt) ids (BOS first), tgt_out (B x Tt) the next ids or HG_TF_IGNORE;
 * ntok: the targets that are not ignored. Decoder-only: src and src_len NULL, Ts ignored. */
typedef struct hg_tf_batch {
    int64_t B, Ts, Tt, ntok;
    const int32_t *src, *src_len, *tgt_in, *tgt_out;
} hg_tf_batch;

typedef struct hg_tf hg_tf; /* opaque (src/models/tf_internal.h) */

/* Build the model in k's memory: embeddings N(0, 1/d), maps and biases U(+-1/sqrt(fan_in)) (as
 * torch's nn.Linear), layer norms (1, 0); every map handed to sst/ in cfg.linear's mode.
 * Errors: HG_EINVAL (sizes, naming the option), HG_ENOMEM, those of hg_linear_create and
 * hg_params_commit. *out is NULL on failure. */
int hg_tf_init(hg_tf **out, const hg_kctx *k, const hg_tf_config *cfg);
void hg_tf_free(hg_tf *m); /* NULL is fine */
const hg_tf_config *hg_tf_cfg(const hg_tf *m);
hg_params *hg_tf_params(hg_tf *m);
/* The hyperparameter groups of hg_tf_params: ordinary parameters (embeddings, positions, norms,
 * biases), the maps' weights (full W, LoRA A and B, SST sigma) and SST's sampled vectors; e.g. for
 * hg_params_set_lr_scale. Returns the group id of `which` (an HG_TF_GROUP_*). */
enum { HG_TF_GROUP_PLAIN = 0, HG_TF_GROUP_WEIGHTS, HG_TF_GROUP_VECTORS };
int hg_tf_group(const hg_tf *m, int which);

/* Label-smoothed cross-entropy summed over the batch's targets (with smoothing 0: the negative
 * log-likelihood). train: dropout on, with masks drawn from dropout_seed. want_grad: the gradient
 * of (sum / b->ntok) is accumulated (+=) into the parameters' gradients. Returns HG_OK, or
 * HG_EINVAL (recorded) when the batch exceeds the capacity given at init; *loss = the sum. */
int hg_tf_loss(hg_tf *m, const hg_tf_batch *b, float smoothing, int train, uint64_t dropout_seed,
               int want_grad, double *loss);

/* The optimiser step with learning rate lr after a gradient of global norm grad_norm: the
 * gradients are first scaled by clip / (grad_norm + 1e-6) when clip > 0 and grad_norm > clip
 * (torch's clip_grad_norm_), then hg_params_step. Errors: those of hg_params_step. */
int hg_tf_step(hg_tf *m, double lr, double grad_norm, float clip);

/* Trainable parameters and optimiser-state floats (everything included), and the count of
 * sst/ maps. */
int64_t hg_tf_num_trainable(const hg_tf *m);
int64_t hg_tf_state_floats(const hg_tf *m);
int hg_tf_num_maps(const hg_tf *m);
hg_linear *hg_tf_map(const hg_tf *m, int i);

/* Register every persistent tensor (maps through sst/, ordinary parameters and their Adam
 * moments and clock) in reg, for checkpoints. Errors: those of hg_registry_add. */
int hg_tf_register(hg_tf *m, hg_registry *reg);
/* After tensors were written: rebuild the maps' weights. */
void hg_tf_rematerialise(hg_tf *m);

/* ---- incremental decoding (src/models/tf_decode.c) ----
 * For beam search: encode a batch of sources once, then feed one token per live hypothesis row
 * per step; each row's self-attention keys and values are cached and reordered by the rows'
 * parents. Buffers are sized at hg_tf_decode_init for `max_rows` rows (sources x beam) and
 * sequences of up to max_src_len source and max_steps target tokens. */
int hg_tf_decode_init(hg_tf *m, int64_t max_sources, int64_t max_rows, int64_t max_src_len,
                      int64_t max_steps);
/* Encode n sources: src (n x Ts, host memory; padded), src_len (n, host). Decoder-only: src and
 * src_len NULL (n sequences, Ts ignored). Errors: HG_EINVAL (beyond the decoding capacity, or
 * hg_tf_decode_init not called). */
int hg_tf_decode_start(hg_tf *m, const int32_t *src, const int32_t *src_len, int64_t n,
                       int64_t Ts);
/* Step t (0: the cache is empty): rows live hypotheses, row i continuing row parent[i] of step
 * t - 1 (ignored at t = 0) and attending to source src_row[i]; tokens (rows) fed at position t.
 * logits (rows x vocab, k's memory) (=) the next-token logits. tokens, parent and src_row are
 * host arrays. Errors: HG_EINVAL (beyond capacity, a parent or source out of range). */
int hg_tf_decode_step(hg_tf *m, int64_t t, const int32_t *tokens, const int64_t *parent,
                      const int64_t *src_row, int64_t rows, float *logits);

#endif
