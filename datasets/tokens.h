/* tokens.h - a token file loaded into memory: the training and validation data of hgnn-lm.
 *
 * The format (written by `hgnn-lm tokenize`): a 24-byte header, little-endian: the magic
 * "HGTOK1\0\0", the format version (uint32, 1), the vocabulary size (uint32, 1..65536), the
 * token count (uint64); then the ids as uint16, nothing after them. */
#ifndef HG_DATASETS_TOKENS_H
#define HG_DATASETS_TOKENS_H

#include <stddef.h>
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

/* The tokens of path, whichever it holds: a token file (told by its first bytes, "HGTOK"; then
 * as hg_tokens_read), or else UTF-8 text, encoded whole (every byte, newlines included) with
 * the tokeniser bpe (NULL: GPT-2's, loaded from the shipped files; gpt2bpe.h), t->vocab its
 * vocabulary size. Errors:
 * those of hg_tokens_read; HG_EIO ("FILE: cannot open: ..."); HG_EINVAL ("FILE: empty text");
 * HG_EFORMAT ("FILE: not a token file (bad magic) nor UTF-8 text (line L: invalid UTF-8 ... at
 * byte B)", or "... NUL byte at byte B)"); those of hg_gpt2bpe_load_dir and hg_gpt2bpe_encode;
 * HG_ENOMEM. */
typedef struct hg_gpt2bpe hg_gpt2bpe;
int hg_tokens_load(hg_tokens *t, const char *path, hg_gpt2bpe *bpe);

/* The bundled language-model corpus: the path of its file `name` ("train.txt", "valid.txt"),
 * unpacked by the build, into buf: the first that exists of $HGNN_DATA_DIR/lm/NAME, the build's
 * and the installed data folders' lm/NAME. Errors: HG_EIO naming the folders looked in,
 * HG_EINVAL (buf too small). */
int hg_tokens_bundled(char *buf, size_t len, const char *name);

#endif
