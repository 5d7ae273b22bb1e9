/* lm_session.h - what hgnn-lm's train, eval and generate share: the kernel context, the
 * decoder-only Transformer built from the options, and batches of token windows (a window is
 * ctx + 1 consecutive tokens: the model reads the first ctx and predicts the last ctx). */
#ifndef HG_CLI_LM_SESSION_H
#define HG_CLI_LM_SESSION_H

#include <stdint.h>

#include "lm_options.h"
#include "../../datasets/tokens.h"
#include "../io.h"
#include "../models/transformer.h"

typedef struct hg_lm_session {
    const hg_lm_options *o;
    hg_kctx k;
    int have_k;
    hg_tf *model;
    int64_t max_windows;      /* windows per batch the buffers hold */
    int32_t *h_in, *h_out;    /* host staging of one batch (max_windows x ctx) */
    int32_t *k_in, *k_out;    /* the same in k's memory */
} hg_lm_session;

/* The kernel context, the model (vocabulary hg_lm_model_vocab(vocab), o->positions trained
 * positions, capacity max_windows windows of o->ctx tokens; OPT's settings: pre-LN, ReLU, trained positions, unscaled
 * embeddings, N(0, 0.02) initialisation) and the batch buffers.
 * Errors: those of hg_kctx_init and hg_tf_init, HG_ENOMEM. */
int hg_lm_session_open(hg_lm_session *s, const hg_lm_options *o, int vocab, int64_t max_windows);
void hg_lm_session_close(hg_lm_session *s); /* safe on a zeroed struct */

/* Windows starting at start[0..nw) of the tokens t[0..limit) into the model's memory (a window
 * that runs past limit is cut short; its missing targets are ignored); *b describes the batch
 * (nw <= max_windows, every start < limit - 1). Allocates nothing. */
void hg_lm_load(hg_lm_session *s, const hg_tokens *t, int64_t limit, const int64_t *start,
                int64_t nw, hg_tf_batch *b);

/* Mean negative log-likelihood per predicted token of t[0..limit) (limit 0 or beyond t->n: all
 * of t), read in consecutive windows that overlap by one token (every token but the first is
 * predicted once), dropout off. Errors: HG_EINVAL (fewer than 2 tokens), those of hg_tf_loss. */
int hg_lm_nll(hg_lm_session *s, const hg_tokens *t, int64_t limit, double *nll);

/* Singular-value pruning (for evaluation): for each fraction keep[i], every sst/ map's weight is
 * rebuilt from its ceil(keep[i] x min(m, n)) largest singular values (hg_linear_pruned_weight)
 * and nll[i] = hg_lm_nll(s, t, limit); the weights are restored afterwards. Allocates host
 * copies of the weights. Errors: those of hg_linear_pruned_weight and hg_lm_nll, HG_ENOMEM. */
int hg_lm_prune_nll(hg_lm_session *s, const hg_tokens *t, int64_t limit, const double *keep,
                    int n, double *nll);

/* Add "key": [[keep[0], exp(nll[0])], ...] (fraction kept, perplexity) to j; nothing when
 * n is 0. */
void hg_lm_json_pruned(hg_json *j, const char *key, const double *keep, const double *nll, int n);

#endif
