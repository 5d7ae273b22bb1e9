/* batches.h - token-budget batches of sentence pairs for sequence-to-sequence training.
 *
 * Pairs of similar lengths go together so that little of a padded batch is padding. Every
 * sequence gains one token: the source its EOS, the decoder's input a leading BOS, the decoder's
 * output a trailing EOS; lengths below count it. The batches are fixed once (deterministic: they
 * depend on the lengths alone); an epoch visits them in an order that hg_mt_batches_shuffle draws. */
#ifndef HG_DATASETS_BATCHES_H
#define HG_DATASETS_BATCHES_H

#include <stdint.h>

#include "../src/rng.h"
#include "spm.h"

/* Batch b holds the pairs pair[start[b] .. start[b + 1]) (start has nbatches + 1 entries; pair
 * is a permutation of 0 .. n - 1). The maxima are over all batches, for sizing the collate
 * buffers: B <= max_pairs, Ts <= max_src_len, Tt <= max_tgt_len, B * Ts <= max_src_rows,
 * B * Tt <= max_tgt_rows. */
typedef struct hg_mt_batches {
    int64_t nbatches;
    int64_t *start;
    int64_t *pair;
    int64_t max_pairs, max_src_len, max_tgt_len;
    int64_t max_src_rows, max_tgt_rows;
} hg_mt_batches;

/* Group the pairs (src sentence i, tgt sentence i) by this rule: order them by
 * (len(tgt) + 1, len(src) + 1, i); walk that order, starting a new batch when the pair would
 * make (the batch's largest len(tgt) + 1) * (its number of pairs) exceed max_tokens. A batch's
 * padded decoder rows B * Tt are thus at most max_tokens, except for a lone pair longer than
 * that. Errors: HG_EINVAL (different pair counts, no pairs, max_tokens < 1), HG_ENOMEM; *out is
 * zeroed on failure. */
int hg_mt_batches_make(hg_mt_batches *out, const hg_token_corpus *src, const hg_token_corpus *tgt,
                       int64_t max_tokens);
/* Release b and zero it (safe on a zeroed struct). */
void hg_mt_batches_free(hg_mt_batches *b);

/* An epoch's order of the n batches: order[0 .. n) becomes a permutation of 0 .. n - 1 drawn
 * from rng (Fisher-Yates over the identity, whatever order held before), so the same generator
 * state gives the same order. */
void hg_mt_batches_shuffle(int64_t *order, int64_t n, hg_rng *rng);

/* Lay batch `batch` out in the caller's buffers (no allocation), rows in the batch's pair
 * order; *B pairs, *Ts = the batch's largest len(src) + 1, *Tt = its largest len(tgt) + 1.
 *   src_ids (B x Ts, row-major): the source sentence, eos, then pad_id;  src_len[i] = len + 1
 *   tgt_in  (B x Tt): bos, the target sentence, then pad_id
 *   tgt_out (B x Tt): the target sentence, eos, then ignore_id;         tgt_len[i] = len + 1
 * Buffers hold at least max_src_rows, max_tgt_rows (twice) and max_pairs (twice) entries. */
void hg_mt_collate(const hg_mt_batches *b, int64_t batch, const hg_token_corpus *src,
                   const hg_token_corpus *tgt, int32_t bos, int32_t eos, int32_t pad_id,
                   int32_t ignore_id, int32_t *src_ids, int32_t *src_len, int32_t *tgt_in,
                   int32_t *tgt_out, int32_t *tgt_len, int64_t *B, int64_t *Ts, int64_t *Tt);

#endif
