/* spm.h - SentencePiece subword models behind a C interface (the library is C++; spm.cc).
 *
 * One joint BPE model is learnt from both sides of a parallel corpus, in memory; it is kept as
 * its serialized bytes (what a standard .model file holds, what a checkpoint can store) and a
 * processor built from them. Ids: unk 0, bos 1, eos 2, no padding piece (SentencePiece's
 * defaults); the callers choose their own padding id.
 *
 * Text is normalised by the model's rule (nmt_nfkc, SentencePiece's default: NFKC, control
 * characters removed, runs of spaces folded, leading and trailing spaces dropped), so
 * decode(encode(s)) gives s back exactly when s is already in that normal form. Characters
 * outside the vocabulary encode as unk and decode as " \xe2\x81\x87 " (U+2047).
 *
 * Status codes: HG_EINVAL (bad argument, a model SentencePiece refuses, training that fails),
 * HG_EIO (a file that cannot be read or written), HG_ENOMEM. Messages are one line naming the
 * file where there is one. A model is read-only after creation: encoding and decoding may run
 * from several threads at once. */
#ifndef HG_DATASETS_SPM_H
#define HG_DATASETS_SPM_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hg_spm hg_spm;

/* Learn a BPE model of vocab_size pieces (character coverage 1.0, SentencePiece's defaults
 * otherwise) from the lines of corp[0 .. ncorp), in that order, with `threads` threads (>= 1;
 * they share the normalisation of the text, the merges run on one). The model, bytes included,
 * depends on the lines alone, not on the thread count (SentencePiece's record of that count is
 * left out of the bytes), and has the pieces of
 * `spm_train --input=F1,F2,... --model_type=bpe --vocab_size=V --character_coverage=1.0` on the
 * files of those lines. Errors: HG_EINVAL (no lines, vocab_size or threads out of range,
 * SentencePiece's refusal, e.g. a vocabulary larger than the text supports), HG_ENOMEM. */
int hg_spm_train(hg_spm **out, const hg_text_lines *const *corp, int ncorp, int vocab_size,
                 int threads);

/* A model from a .model file (HG_EIO: cannot read it; HG_EINVAL: not a model; both name the
 * file) or from its serialized bytes (HG_EINVAL: not a model). */
int hg_spm_load(hg_spm **out, const char *path);
int hg_spm_load_bytes(hg_spm **out, const void *data, size_t n);
/* Write the model as a .model file that spm_encode reads (HG_EIO naming the file). */
int hg_spm_save(const hg_spm *s, const char *path);
/* The serialized model (*n bytes), valid while s lives. */
const void *hg_spm_bytes(const hg_spm *s, size_t *n);

int hg_spm_vocab_size(const hg_spm *s);
int hg_spm_bos(const hg_spm *s);
int hg_spm_eos(const hg_spm *s);
int hg_spm_unk(const hg_spm *s);
void hg_spm_free(hg_spm *s); /* NULL is fine */

/* Encoded sentences: sentence i is ids[off[i] .. off[i + 1]) (no BOS, no EOS); off has n + 1
 * entries. */
typedef struct hg_token_corpus {
    int64_t n;
    int64_t *off;
    int32_t *ids;
} hg_token_corpus;

/* Encode every line of t into *out (zeroed on failure). HG_EINVAL ("line N: ..."), HG_ENOMEM.
 * The _mt form splits the lines over up to `threads` threads (>= 1; this one included): the
 * result is the same for every thread count. */
int hg_spm_encode_lines(const hg_spm *s, const hg_text_lines *t, hg_token_corpus *out);
int hg_spm_encode_lines_mt(const hg_spm *s, const hg_text_lines *t, int threads,
                           hg_token_corpus *out);
/* Encode one NUL-terminated text; *ids is malloc'd (free()), *n ids. HG_EINVAL, HG_ENOMEM. */
int hg_spm_encode(const hg_spm *s, const char *text, int32_t **ids, int64_t *n);
/* Decode n ids (no BOS/EOS; each in [0, vocab size)) into a malloc'd NUL-terminated *text
 * (free()). HG_EINVAL (an id out of range), HG_ENOMEM. */
int hg_spm_decode(const hg_spm *s, const int32_t *ids, int64_t n, char **text);
/* Release c and zero it (safe on a zeroed struct). */
void hg_token_corpus_free(hg_token_corpus *c);

#ifdef __cplusplus
}
#endif

#endif
