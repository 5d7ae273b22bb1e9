/* beam.h - batched beam search (and greedy decoding, beam 1) over a sequence model reached
 * through callbacks, for the translation program's encoder-decoder.
 *
 * The rule, per source (K = beam, V = vocab, max length Lmax = src_len + extra_len):
 *   - step 0 expands the single hypothesis BOS (score 0); step t feeds every live hypothesis'
 *     last token and gets the log-probabilities of the next one;
 *   - candidates: live hypothesis score + log p(token), for every live hypothesis and token
 *     (a candidate whose score is -inf is no candidate); the best 2K are kept, ordered by score,
 *     ties to the lower (hypothesis index * V + token), the hypothesis index being the live
 *     hypothesis' rank in the live set;
 *   - walking them in that order: a candidate whose token is EOS, or any candidate when
 *     t + 1 >= Lmax (forced end), finishes a hypothesis if it is among the first K and fewer
 *     than K have finished; its normalised score is (total log-probability) / L^alpha with
 *     L = t + 1, and its tokens are those after BOS, without EOS (a forced-end token other than
 *     EOS is kept). Any other candidate joins the next live set while it holds fewer than K;
 *   - the source is done when K hypotheses have finished, at the forced end, or when the next
 *     live set is empty. Its result is the finished hypothesis with the highest normalised score
 *     (the first finished on ties), or the empty sequence when none finished.
 * With beam 1 this is greedy decoding: the argmax (lowest token on ties) until EOS or Lmax.
 * Candidate scores are float sums (score + log p) in the order above; the normalised score is
 * computed in double from them. */
#ifndef HG_BEAM_H
#define HG_BEAM_H

#include <stdint.h>

/* The model, as callbacks on ctx. Both return HG_OK or a status of their own (recording its
 * message with hg_error_set); hg_beam_search stops and returns that status. */
typedef struct hg_beam_model {
    void *ctx;
    int32_t vocab, bos, eos; /* vocab >= 1; bos and eos in [0, vocab) */
    /* Encode the sources src[0..n) (indices into the caller's list given to hg_beam_search) and
     * get ready to decode up to n * beam rows. */
    int (*start)(void *ctx, const int64_t *src, int64_t n, int beam);
    /* Step t (0, 1, ... after each start): `rows` live hypothesis rows; row i continues the
     * decoder state of row parent[i] of the previous step (t == 0: parent[i] is -1 and the state
     * is empty), belongs to source number src_row[i] (0..n-1 of start) and feeds token
     * tokens[i] (BOS at t == 0). Rows come grouped by source, in increasing src_row. Write the
     * log-probabilities of the next token (rows x vocab, row-major, log-softmax) into logp.
     * The model reorders its cache by parent before appending. */
    int (*step)(void *ctx, int64_t t, const int32_t *tokens, const int64_t *parent,
                const int64_t *src_row, int64_t rows, float *logp);
} hg_beam_model;

typedef struct hg_beam_opts {
    int beam;          /* K >= 1 (1: greedy) */
    float len_penalty; /* alpha (finite): score / L^alpha; 1 is plain length normalisation */
    int64_t extra_len; /* >= 0: max target length (with EOS) = source length + extra_len */
    int64_t batch;     /* >= 1: sources per start call */
} hg_beam_opts;

/* Decoded hypotheses: hypothesis i is tok[off[i] .. off[i+1]) (off has n + 1 entries), without
 * BOS and EOS. */
typedef struct hg_beam_result {
    int64_t n;
    int64_t *off;
    int32_t *tok;
} hg_beam_result;

/* Decode every source i < n; src_len[i] >= 1 is its length as the model sees it (tokens + EOS).
 * The sources go to the model in batches of opts->batch, in order of increasing length (stable);
 * the results come back in input order, and do not depend on the batch size when the model's
 * log-probabilities for a row depend only on its source and its tokens. Working memory is
 * allocated once per call: about batch * beam * (vocab floats + Lmax_max * 12 bytes), plus the
 * sum of the sources' Lmax for the result.
 * Returns HG_OK and fills *out (free it with hg_beam_result_free), or, with *out left empty:
 *   HG_EINVAL   a NULL argument, a model without callbacks, vocab < 1, bos/eos outside
 *               [0, vocab), beam < 1, batch < 1, extra_len < 0, a non-finite len_penalty,
 *               a src_len[i] < 1, or sizes that overflow;
 *   HG_ENOMEM   out of memory;
 *   HG_ENUMERIC the model wrote NaN or +inf into logp;
 *   any status a callback returned (its message prefixed with the step). */
int hg_beam_search(const hg_beam_model *m, const int64_t *src_len, int64_t n,
                   const hg_beam_opts *o, hg_beam_result *out);

/* Free the arrays of r and empty it (r may be NULL or already empty). */
void hg_beam_result_free(hg_beam_result *r);

#endif
