/* gpt2bpe.h - GPT-2's byte-level BPE tokeniser (the vocabulary of OpenAI's GPT-2 and of OPT),
 * exact, and the token files of hgnn-lm.
 *
 * Encoding: the text is split into pre-tokens by GPT-2's expression
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (PCRE2, Unicode properties), then each pre-token, as bytes, starts as one token per byte and
 * the pair of adjacent tokens with the lowest merge rank is merged everywhere in it (left to
 * right, non-overlapping) until no pair has a rank. No special token is recognised in text:
 * "<|endoftext|>" is ordinary text; the id HG_GPT2_EOT is only ever placed by the caller.
 *
 * Any bytes are accepted. Invalid UTF-8 cannot be part of a pre-token match; each maximal run
 * of bytes that the expression leaves between two matches (only invalid UTF-8 does) is a
 * pre-token of its own. Decoding concatenates the bytes of the ids, so
 * decode(encode(b)) == b for every byte string b.
 *
 * Thread safety: encoding updates the tokeniser's cache of pre-tokens, so one tokeniser must
 * not encode on two threads at once; decoding and the accessors only read. */
#ifndef HG_DATASETS_GPT2BPE_H
#define HG_DATASETS_GPT2BPE_H

#include <stddef.h>
#include <stdint.h>

/* GPT-2's vocabulary: 256 byte tokens, 50000 merges, "<|endoftext|>". */
#define HG_GPT2_VOCAB 50257
#define HG_GPT2_EOT 50256

typedef struct hg_gpt2bpe hg_gpt2bpe;

/* Load the vocabulary: encoder.json (a JSON object, token string -> id, the strings written
 * with GPT-2's map of bytes to printable characters) and vocab.bpe (the line "#version: ...",
 * then one merge "LEFT RIGHT" a line, in rank order). Ids must be 0..n-1 without gaps, every
 * byte must have its own token, every merge's parts and result must be tokens, and ids must fit
 * 16 bits. Errors: HG_EIO ("FILE: cannot open/read: ..."), HG_EFORMAT ("FILE: ..." or
 * "FILE:LINE: ..." naming what is wrong), HG_EUNSUPPORTED (PCRE2 without Unicode support),
 * HG_ENOMEM. *out is NULL on failure. */
int hg_gpt2bpe_load(hg_gpt2bpe **out, const char *encoder_json, const char *vocab_bpe);

/* hg_gpt2bpe_load of DIR/encoder.json and DIR/vocab.bpe; dir NULL: the first folder holding
 * encoder.json among $HGNN_DATA_DIR/gpt2 and the source and installed data folders' gpt2/.
 * Errors: those of hg_gpt2bpe_load; HG_EIO when no folder holds the files. */
int hg_gpt2bpe_load_dir(hg_gpt2bpe **out, const char *dir);

/* Release t (NULL is fine). */
void hg_gpt2bpe_free(hg_gpt2bpe *t);

/* Number of ids (HG_GPT2_VOCAB for GPT-2's files). */
int32_t hg_gpt2bpe_vocab_size(const hg_gpt2bpe *t);

/* The bytes of token id (not NUL-terminated) and their number in *len; NULL for an id out of
 * range. */
const char *hg_gpt2bpe_token(const hg_gpt2bpe *t, int32_t id, size_t *len);

/* The merge of the pair (left, right): its rank (0 first), and the id it makes in *result;
 * -1 when the pair has no merge. */
int32_t hg_gpt2bpe_merge_rank(const hg_gpt2bpe *t, int32_t left, int32_t right, int32_t *result);

/* A growable array of ids. */
typedef struct hg_gpt2_ids {
    int32_t *id;
    size_t n, cap;
} hg_gpt2_ids;
void hg_gpt2_ids_free(hg_gpt2_ids *ids); /* safe on a zeroed struct */

/* Append the ids of text[0..len) (any bytes, NUL included) to *ids. Errors: HG_ENOMEM,
 * HG_EUNSUPPORTED (PCRE2 failed to match, such as at a resource limit: not seen with this
 * expression, whose matches need no deep backtracking); ids keeps what it held before the
 * call. */
int hg_gpt2bpe_encode(hg_gpt2bpe *t, const char *text, size_t len, hg_gpt2_ids *ids);

/* The pre-tokens of text[0..len) as GPT-2's expression splits it (see above), for tests and
 * tools: ends[k] is the end offset of pre-token k; at most max_ends are stored and the total
 * count is returned in *count. Errors: HG_ENOMEM, HG_EUNSUPPORTED (as hg_gpt2bpe_encode). */
int hg_gpt2bpe_split(const hg_gpt2bpe *t, const char *text, size_t len, size_t *ends,
                     size_t max_ends, size_t *count);

/* The bytes of ids[0..n) into a new buffer: *out (NUL-terminated for convenience, owned by the
 * caller, free()) and its length *len. Errors: HG_EINVAL ("token id X at position K is out of
 * range [0, V)"), HG_ENOMEM. */
int hg_gpt2bpe_decode(const hg_gpt2bpe *t, const int32_t *ids, size_t n, char **out, size_t *len);

/* ---- token files ---------------------------------------------------------------------------
 * The token file of hgnn-lm (read back by hg_tokens_read, datasets/tokens.h): a 24-byte header,
 * little-endian: the magic "HGTOK1\0\0", the format version (uint32, 1), the vocabulary size
 * (uint32), the token count (uint64); then the ids as uint16 (so the vocabulary size is at most
 * 65536). */
#define HG_TOKFILE_MAGIC "HGTOK1\0\0"
#define HG_TOKFILE_VERSION 1u
#define HG_TOKFILE_HEADER 24

/* Write ids[0..n) to path (replaced atomically). Errors: HG_EINVAL (vocab outside [1, 65536],
 * or an id outside [0, vocab)), HG_EIO ("FILE: ..."), HG_ENOMEM. */
int hg_tokfile_write(const char *path, const int32_t *ids, size_t n, int32_t vocab);

#endif
