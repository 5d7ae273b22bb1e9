/* tokens.h - a token file loaded into memory: the training and validation data of hgnn-lm.
 *
 * The format (written by `hgnn-lm tokenize`): a 24-byte header, little-endian: the magic
 * "HGTOK1\0\0", the format version (uint32, 1), the vocabulary size (uint32, 1..65536), the
 * token count (uint64); then the ids as uint16, nothing after them. */
#ifndef HG_DATASETS_TOKENS_H
#define HG_DATASETS_TOKENS_H

#include <stdint.h>

typedef struct hg_tokens {
    uint16_t *ids; /* n ids, each < vocab (host memory, owned) */
    int64_t n;
    int32_t vocab;
} hg_tokens;

/* Read the token file at path into t (t zeroed first). Every error message names the file.
 * Errors: HG_EIO ("FILE: cannot open: ..." or a read failure), HG_EFORMAT ("FILE: not a token
 * file (bad magic)", "FILE: format version V is not supported", "FILE: vocabulary size V is out
 * of range [1, 65536]", "FILE: truncated: the header says N tokens, the file holds M", "FILE: B
 * bytes after the last token", "FILE: token K is X, outside the vocabulary of V"), HG_ENOMEM. On
 * failure t holds nothing. */
int hg_tokens_read(hg_tokens *t, const char *path);
void hg_tokens_free(hg_tokens *t); /* safe on a zeroed struct */

#endif
