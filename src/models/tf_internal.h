/* tf_internal.h - the Transformer's parts, shared by transformer.c (the model, training),
 * tf_block.c (attention, FFN, layer norm sublayers) and tf_decode.c (incremental decoding).
 * Not a public interface. */
#ifndef HG_MODELS_TF_INTERNAL_H
#define HG_MODELS_TF_INTERNAL_H

#include "transformer.h"

/* A linear map through sst/ with its bias (an ordinary parameter). */
typedef struct tf_lin {
    hg_linear *L;
    int bias_id;
    float *b, *gb;
} tf_lin;

/* A layer norm's gamma and beta (one tensor of 2d floats: gamma, then beta). */
typedef struct tf_ln {
    int id;
    float *g, *gg; /* gamma and its gradient; beta = g + d, gbeta = gg + d */
} tf_ln;

typedef struct tf_mha {
    tf_lin q, k, v, o;
} tf_mha;

/* What an attention forward keeps for its backward. Rows: Tq per sentence for q and c, Tk for
 * k and v; heads split as (B, H, T, dh). */
typedef struct tf_mha_act {
    float *q, *k, *v;    /* projections (rows x d) */
    float *qh, *kh, *vh; /* split by head */
    float *p, *pd;       /* (B, H, Tq, Tk) probabilities, and after dropout; when fused, p is
                            the (B, H, Tq) row log-sum-exps and pd is unused */
    float *c;            /* (B Tq x d) merged context: the output map's input */
    int fused;           /* the last forward ran hg_k_attn_causal_forward */
} tf_mha_act;

/* Sublayer kinds. */
enum { TF_SELF = 0, TF_CROSS = 1, TF_FFN = 2 };

/* An encoder (self, FFN) or decoder (self, cross, FFN) layer. s[j] is the residual stream before
 * sublayer j (s[0]: the previous layer's output, not owned) and s[nsub] the layer's output; y[j]
 * the layer norm's output (pre-LN: the sublayer's input) or, post-LN, its input
 * s[j] + dropout(F(s[j])). */
typedef struct tf_layer {
    int nsub;
    int kind[3];
    tf_ln ln[3];
    tf_mha att[2];       /* self; cross (decoder) */
    tf_lin w1, w2;       /* FFN */
    float *s[4];
    float *y[3], *mean[3], *rstd[3];
    tf_mha_act act[2];
    float *h1, *hd;      /* FFN pre-activation, activation after dropout (rows x ffn) */
} tf_layer;

/* Scratch of the backward, sized for the largest rows. */
typedef struct tf_scratch {
    float *f;                  /* (rows x d) sublayer output before dropout */
    float *g, *dy, *t1, *t2;   /* (rows x d) */
    float *dq, *dk, *dv;       /* (rows x d) */
    float *dqh, *dkh, *dvh, *dch;
    float *dp;                 /* scores */
    float *dln, *dkv;          /* (rows x d) layer norm and cross-attention key/value gradients */
    float *dh1;                /* (rows x ffn) */
    float *dmem;               /* (source rows x d) gradient of the encoder output */
} tf_scratch;

/* Incremental decoding state (tf_decode.c). */
typedef struct tf_dec_state {
    int64_t max_sources, max_rows, max_src_len, max_steps;
    int64_t n, Ts;              /* sources encoded, their padded length */
    int64_t rows;               /* live rows of the last step */
    int32_t *src, *src_len;     /* the sources (k's memory) */
    int32_t *src_len_host;
    int32_t *row_len, *row_len_host; /* (max_rows) source length of each row */
    int64_t *prev_src_row;      /* (max_rows) each row's source at the last step */
    int32_t *tok;               /* (max_rows) k's memory */
    int64_t *gather_idx, *gather_host; /* (max_rows x d) reorder index, k's memory and host */
    float *ck[HG_TF_MAX_LAYERS], *cv[HG_TF_MAX_LAYERS];     /* cross K, V per source (n, H, Ts,
                                                                dh) */
    float *rowk[HG_TF_MAX_LAYERS], *rowv[HG_TF_MAX_LAYERS]; /* the same per row */
    float *sk[HG_TF_MAX_LAYERS], *sv[HG_TF_MAX_LAYERS];     /* self K, V cache (max_steps,
                                                                max_rows, d) */
    float *spare;               /* a cache-sized buffer for reordering */
    float *x, *y, *f, *q, *c, *p, *hf, *mean, *rstd; /* per-step rows */
} tf_dec_state;

struct hg_tf {
    hg_tf_config cfg;
    const hg_kctx *k;
    hg_params *P;
    int group_plain, group_weights, group_vectors;
    int emb_id;
    float *E, *gE;            /* (vocab x d) views */
    float *pe;                /* (max_len x d) positions: sinusoidal (owned) or the trained table
                                 (a view into P) */
    float *gpe;               /* the table's gradient (learned positions), else NULL */
    int pos_id;
    int32_t *pos_ids;         /* (max_tgt_rows) r mod T of the last batch shape, k's memory */
    int32_t *pos_host;
    int64_t pos_T, pos_rows;  /* the shape pos_ids holds */
    float emb_scale;
    tf_layer enc[HG_TF_MAX_LAYERS], dec[HG_TF_MAX_LAYERS];
    tf_ln enc_ln, dec_ln;     /* final norms (pre-LN only) */
    int nmaps;
    hg_linear *maps[HG_TF_MAX_LAYERS * 10];
    char map_name[HG_TF_MAX_LAYERS * 10][32];
    int nplain;               /* the ordinary tensors' ids in P */
    int plain_ids[HG_TF_MAX_LAYERS * 40 + 4];
    /* activations of the last forward */
    float *src_x, *tgt_x;     /* embedding outputs (stream start) */
    float *mem, *mem_mean, *mem_rstd; /* encoder output after the final norm */
    float *h, *h_mean, *h_rstd;       /* decoder output after the final norm */
    float *logits;            /* (max_tgt_rows x vocab); the gradient in place */
    tf_scratch sc;
    tf_dec_state ds;
};

/* ---- tf_block.c ---- */

/* Attention forward: Xq (B Tq x d), Xkv (B Tk x d); key_len (B, k's memory; NULL: none), causal
 * (1: decoder self-attention); out (B Tq x d) (=). dropout on the probabilities with seed. */
void tf_mha_forward(const hg_tf *m, const tf_mha *a, tf_mha_act *act, float *out, const float *Xq,
                    const float *Xkv, int64_t B, int64_t Tq, int64_t Tk, const int32_t *key_len,
                    int causal, float p, uint64_t seed);
/* Backward from dout (B Tq x d): dXq (=); dXkv (=), or, when dXkv == NULL (self-attention,
 * Xkv == Xq), added into dXq; parameter gradients (+=). Uses m->sc. Returns HG_OK or the
 * status of sst/. */
int tf_mha_backward(hg_tf *m, tf_mha *a, const tf_mha_act *act, float *dXq, float *dXkv,
                    const float *dout, const float *Xq, const float *Xkv, int64_t B, int64_t Tq,
                    int64_t Tk, float p, uint64_t seed);
/* FFN forward out (=) W2 drop(act(W1 x + b1)) + b2 (stores h1, hd); backward dx (=). */
void tf_ffn_forward(const hg_tf *m, tf_layer *l, float *out, const float *x, int64_t rows,
                    float p, uint64_t seed);
int tf_ffn_backward(hg_tf *m, tf_layer *l, float *dx, const float *dout, const float *x,
                    int64_t rows, float p, uint64_t seed);
/* Layer norm forward/backward with the model's eps; backward dx (=), dgamma/dbeta (+=). */
void tf_ln_forward(const hg_tf *m, const tf_ln *n, float *y, float *mean, float *rstd,
                   const float *x, int64_t rows);
void tf_ln_backward(const hg_tf *m, tf_ln *n, float *dx, const float *dy, const float *x,
                    const float *mean, const float *rstd, int64_t rows);
/* ---- transformer.c ---- */
/* Encoder forward (dropout p with seed): mem (B Ts x d) (=), with the final norm's statistics. */
void tf_encode(hg_tf *m, const int32_t *src, const int32_t *src_len, int64_t B, int64_t Ts,
               float p, uint64_t seed, float *mem, float *mean, float *rstd);

/* ---- tf_decode.c ---- */
void tf_decode_free(hg_tf *m);

/* The seed of dropout site `site` in a step with dropout_seed. */
uint64_t tf_site_seed(uint64_t dropout_seed, uint64_t site);

#endif
