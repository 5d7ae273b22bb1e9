/* mt_session.h - what hgnn-mt's train and translate share: the kernel context, the
 * SentencePiece model, the Transformer built from the options, and batched translation
 * (beam search over the model's incremental decoder). */
#ifndef HG_CLI_MT_SESSION_H
#define HG_CLI_MT_SESSION_H

#include <stdint.h>

#include "mt_options.h"
#include "../../datasets/spm.h"
#include "../../datasets/text.h"
#include "../models/transformer.h"

typedef struct hg_mt_session {
    const hg_mt_options *o;
    hg_kctx k;
    int have_k;
    hg_spm *spm;
    hg_tf *model;
    int32_t bos, eos;
    /* decoding (hg_mt_decode_setup) */
    const hg_token_corpus *dec_src; /* the sources being translated */
    int64_t dec_max_len;            /* longest source the buffers hold (tokens + EOS) */
    int32_t *dec_ids, *dec_len;     /* host staging of a batch of sources */
    float *dec_logits;              /* (rows x vocab) k's memory */
    float *dec_host;                /* the same on the host (== dec_logits on the CPU) */
} hg_mt_session;

/* The kernel context of o->device with o->threads. Errors: those of hg_kctx_init. */
int hg_mt_session_open(hg_mt_session *s, const hg_mt_options *o);
void hg_mt_session_close(hg_mt_session *s); /* safe on a zeroed struct */

/* The model's configuration from the options, for a vocabulary and a capacity (largest batch:
 * sentences, padded lengths, rows). */
void hg_mt_model_config(const hg_mt_options *o, int64_t vocab, int64_t max_batch,
                        int64_t max_src_len, int64_t max_tgt_len, int64_t max_src_rows,
                        int64_t max_tgt_rows, hg_tf_config *c);

/* Size the decoding buffers for sources of up to max_src_len tokens (EOS included), in batches
 * of o->decode_batch, with beams up to max_beam, after the model is built (its capacity must hold
 * decode_batch x max_src_len source rows). Errors: HG_EINVAL, HG_ENOMEM. */
int hg_mt_decode_setup(hg_mt_session *s, int64_t max_src_len, int max_beam);
/* The source rows a decoding batch needs (for the model's capacity). */
int64_t hg_mt_decode_rows(const hg_mt_options *o, int64_t max_src_len);

/* Translate every sentence of src (token ids without EOS) with beam K (1: greedy): *out (n
 * malloc'd strings in a malloc'd array; free with hg_mt_free_lines) the detokenised outputs.
 * Errors: those of hg_beam_search, the model and SentencePiece. */
int hg_mt_translate(hg_mt_session *s, const hg_token_corpus *src, int beam, char ***out);
void hg_mt_free_lines(char **lines, int64_t n);

#endif
