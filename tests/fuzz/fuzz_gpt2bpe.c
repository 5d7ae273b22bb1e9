/* fuzz_gpt2bpe.c - libFuzzer harness of GPT-2's byte-level BPE (datasets/gpt2bpe.h) on arbitrary
 * bytes, two ways: as text, whose ids must decode to the very same bytes (at most one id a
 * byte); and as a token file, which is read (hg_tokens_read: a documented error otherwise) and,
 * when valid, written back by hg_tokfile_write byte for byte the same (the format has one way to
 * write each id list); and through hg_tokens_load, which must read a file starting with "HGTOK" as
 * hg_tokens_read does and anything else, when it accepts it, as text with the ids above. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../datasets/gpt2bpe.h"
#include "../../datasets/tokens.h"
#include "../../src/hg.h"
#include "../../src/io.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hg_gpt2bpe *tok;
    if (!tok && hg_gpt2bpe_load_dir(&tok, NULL) != HG_OK) {
        fprintf(stderr, "fuzz_gpt2bpe: %s\n", hg_last_error());
        abort();
    }
    hg_gpt2_ids ids = {0};
    FUZZ_REQUIRE(hg_gpt2bpe_encode(tok, (const char *)data, size, &ids) == HG_OK);
    FUZZ_REQUIRE(ids.n <= size);
    char *back;
    size_t len;
    FUZZ_REQUIRE(hg_gpt2bpe_decode(tok, ids.id, ids.n, &back, &len) == HG_OK);
    FUZZ_REQUIRE(len == size && (size == 0 || memcmp(back, data, size) == 0));
    free(back);

    const char *path = fuzz_write(data, size);
    hg_tokens tf;
    int rc = hg_tokens_read(&tf, path);
    fuzz_check_status(rc, path, NULL);
    if (rc == HG_OK) {
        char again[4096];
        snprintf(again, sizeof again, "%s.again", path);
        FUZZ_REQUIRE(tf.vocab >= 1 && tf.vocab <= 65536 && tf.n >= 0);
        int32_t *wide = malloc(((size_t)tf.n + 1) * sizeof *wide);
        FUZZ_REQUIRE(wide != NULL);
        for (int64_t k = 0; k < tf.n; k++) {
            FUZZ_REQUIRE(tf.ids[k] < tf.vocab);
            wide[k] = tf.ids[k];
        }
        FUZZ_REQUIRE(hg_tokfile_write(again, wide, (size_t)tf.n, tf.vocab) == HG_OK);
        free(wide);
        char *raw;
        FUZZ_REQUIRE(hg_file_read(again, &raw, &len) == HG_OK);
        FUZZ_REQUIRE(len == size && memcmp(raw, data, size) == 0);
        free(raw);
        remove(again);
        hg_tokens_free(&tf);
    }
    hg_tokens any;
    const int is_tokfile = size >= 5 && memcmp(data, HG_TOKFILE_MAGIC, 5) == 0;
    const int rc_any = hg_tokens_load(&any, path, tok);
    fuzz_check_status(rc_any, path, NULL);
    if (is_tokfile)
        FUZZ_REQUIRE(rc_any == rc);
    else if (rc_any == HG_OK) {
        FUZZ_REQUIRE(size > 0 && (size_t)any.n == ids.n && any.vocab == HG_GPT2_VOCAB);
        for (size_t k = 0; k < ids.n; k++)
            FUZZ_REQUIRE(any.ids[k] == ids.id[k]);
    }
    hg_tokens_free(&any);
    hg_gpt2_ids_free(&ids);
    return 0;
}
