/* gpt2bpe_internal.h - what gpt2bpe.c (the tokeniser) takes from gpt2bpe_files.c (the readers of
 * the vocabulary files); not part of the public API (gpt2bpe.h). */
#ifndef HG_DATASETS_GPT2BPE_INTERNAL_H
#define HG_DATASETS_GPT2BPE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* encoder.json read: *n tokens, token id's bytes are bytes[off[id] .. off[id + 1]) (both
 * arrays malloc'ed, owned by the caller). Ids are 0..n-1, each once, n <= 65536. Errors:
 * HG_EIO, HG_EFORMAT ("FILE: byte B: ..."), HG_ENOMEM; nothing is allocated on failure. */
int hg_gpt2_read_vocab(const char *path, int32_t *n, uint32_t **off, char **bytes);

/* vocab.bpe read: merge r (its rank) joins the bytes [off[2r], off[2r+1]) and
 * [off[2r+1], off[2r+2]) of `bytes`; line[r] is its line in the file. */
typedef struct hg_gpt2_merges {
    int32_t n;
    uint32_t *off;
    char *bytes;
    int32_t *line;
    size_t max_len; /* the longest part, in bytes */
} hg_gpt2_merges;

/* Errors: HG_EIO, HG_EFORMAT ("FILE:LINE: ..."), HG_ENOMEM; *m is zeroed on failure. */
int hg_gpt2_read_merges(const char *path, hg_gpt2_merges *m);
void hg_gpt2_merges_free(hg_gpt2_merges *m); /* safe on a zeroed struct */

#endif
