/* tokens.c - token files (contract in tokens.h). */
#include "tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadir.h"
#include "gpt2bpe.h"
#include "hg_config.h"
#include "text.h"
#include "../src/hg.h"
#include "../src/io.h"

#define TOKENS_MAGIC "HGTOK1\0\0"
#define TOKENS_VERSION 1u
#define TOKENS_HEADER 24

static uint64_t get_le(const unsigned char *b, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

void hg_tokens_free(hg_tokens *t)
{
    hg_free(t->ids);
    memset(t, 0, sizeof *t);
}

int hg_tokens_read(hg_tokens *t, const char *path)
{
    memset(t, 0, sizeof *t);
    hg_quoted q;
    const char *name = hg_quote(&q, path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EIO, "%s: cannot open: %s", name, strerror(errno));
    int rc = HG_OK;
    unsigned char h[TOKENS_HEADER];
    const size_t got = fread(h, 1, sizeof h, f);
    if (got < 8 || memcmp(h, TOKENS_MAGIC, 8) != 0) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: not a token file (bad magic)", name);
        goto done;
    }
    if (got < TOKENS_HEADER) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: truncated: %zu bytes, shorter than the %d-byte header",
                       name, got, TOKENS_HEADER);
        goto done;
    }
    const uint64_t version = get_le(h + 8, 4), vocab = get_le(h + 12, 4), n = get_le(h + 16, 8);
    if (version != TOKENS_VERSION) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: format version %llu is not supported", name,
                       (unsigned long long)version);
        goto done;
    }
    if (vocab < 1 || vocab > 65536) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: vocabulary size %llu is out of range [1, 65536]", name,
                       (unsigned long long)vocab);
        goto done;
    }
    /* the size of the rest of the file */
    long here = ftell(f);
    if (here < 0 || fseek(f, 0, SEEK_END) != 0) {
        rc = HG_ERRORF(HG_EIO, "%s: cannot seek: %s", name, strerror(errno));
        goto done;
    }
    const long end = ftell(f);
    if (end < 0 || fseek(f, here, SEEK_SET) != 0) {
        rc = HG_ERRORF(HG_EIO, "%s: cannot seek: %s", name, strerror(errno));
        goto done;
    }
    const uint64_t body = (uint64_t)(end - here);
    if (n > body / 2) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: truncated: the header says %llu tokens, the file holds "
                       "%llu", name, (unsigned long long)n, (unsigned long long)(body / 2));
        goto done;
    }
    if (body > 2 * n) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: %llu bytes after the last token", name,
                       (unsigned long long)(body - 2 * n));
        goto done;
    }
    unsigned char *raw = hg_calloc((size_t)(n > 0 ? 2 * n : 1), 1, "token file");
    t->ids = hg_calloc((size_t)(n > 0 ? n : 1), sizeof *t->ids, "tokens");
    if (!raw || !t->ids) {
        hg_free(raw);
        rc = HG_ENOMEM;
        goto done;
    }
    if (fread(raw, 1, (size_t)(2 * n), f) != (size_t)(2 * n)) {
        hg_free(raw);
        rc = HG_ERRORF(HG_EIO, "%s: read failed", name);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        const uint64_t id = get_le(raw + 2 * i, 2);
        if (id >= vocab) {
            hg_free(raw);
            rc = HG_ERRORF(HG_EFORMAT, "%s: token %llu is %llu, outside the vocabulary of %llu",
                           name, (unsigned long long)(i + 1), (unsigned long long)id,
                           (unsigned long long)vocab);
            goto done;
        }
        t->ids[i] = (uint16_t)id;
    }
    hg_free(raw);
    t->n = (int64_t)n;
    t->vocab = (int32_t)vocab;
done:
    fclose(f);
    if (rc)
        hg_tokens_free(t);
    return rc;
}

int hg_tokens_load(hg_tokens *t, const char *path, hg_gpt2bpe *tok)
{
    memset(t, 0, sizeof *t);
    hg_quoted q;
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EIO, "%s: cannot open: %s", hg_quote(&q, path), strerror(errno));
    char head[5];
    const size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got == sizeof head && !memcmp(head, TOKENS_MAGIC, sizeof head))
        return hg_tokens_read(t, path);
    char *text = NULL;
    size_t len = 0;
    hg_gpt2bpe *bpe = NULL;
    hg_gpt2_ids ids = {0};
    int rc = hg_file_read(path, &text, &len);
    if (!rc && len == 0)
        rc = HG_ERRORF(HG_EINVAL, "%s: empty text", hg_quote(&q, path));
    if (!rc && (rc = hg_text_check_utf8(hg_quote(&q, path), text, len))) {
        char detail[256]; /* "FILE:LINE: what" -> "line LINE: what" */
        snprintf(detail, sizeof detail, "%s", hg_last_error() + strlen(hg_quote(&q, path)) + 1);
        rc = HG_ERRORF(HG_EFORMAT, "%s: not a token file (bad magic) nor UTF-8 text (line %s)",
                       hg_quote(&q, path), detail);
    }
    if (!rc && !tok)
        rc = hg_gpt2bpe_load_dir(&bpe, NULL);
    if (!rc)
        rc = hg_gpt2bpe_encode(tok ? tok : bpe, text, len, &ids);
    free(text);
    if (!rc && !(t->ids = hg_calloc(ids.n ? ids.n : 1, sizeof *t->ids, "tokens")))
        rc = HG_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < ids.n; i++)
            t->ids[i] = (uint16_t)ids.id[i];
        t->n = (int64_t)ids.n;
        t->vocab = hg_gpt2bpe_vocab_size(tok ? tok : bpe);
    }
    hg_gpt2_ids_free(&ids);
    hg_gpt2bpe_free(bpe);
    return rc;
}

int hg_tokens_bundled(char *buf, size_t len, const char *name)
{
    char rel[256];
    if (snprintf(rel, sizeof rel, "lm/%s", name) >= (int)sizeof rel)
        return HG_ERRORF(HG_EINVAL, "lm/%s: name too long", name);
    const int rc = hg_data_find(buf, len, HG_BUILD_DATA_DIR, rel, 0);
    if (rc != HG_EIO)
        return rc;
    return HG_ERRORF(HG_EIO, "the bundled corpus file lm/%s was not found (looked in "
                     HG_DATA_SEARCH_TEXT(HG_BUILD_DATA_DIR) "); build the project first (ninja -C "
                     "build) or give --train and --valid", name);
}
