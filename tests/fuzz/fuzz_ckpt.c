/* fuzz_ckpt.c - libFuzzer harness of the checkpoint reader (src/io.c) on arbitrary bytes, through
 * both entry points: hg_ckpt_read (float32 tensors in host arrays, all required) and hg_ckpt_load
 * (dtypes, an optional tensor, values delivered through a callback). The memory the reader takes
 * follows the tensors requested, never the sizes the file declares (run_fuzz.sh caps single
 * allocations). On success: every required tensor delivered once, the meta text NUL-terminated
 * and its length reported; on failure: nothing delivered, the arrays untouched. */
#include <math.h>
#include <string.h>

#include "../../src/hg.h"
#include "../../src/io.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What hg_ckpt_load delivered. */
typedef struct delivered {
    int calls[2];
    float w[6];
    uint64_t step;
} delivered;

static int put(void *ctx, int64_t i, const void *src)
{
    delivered *d = ctx;
    FUZZ_REQUIRE(i >= 0 && i < 2);
    d->calls[i]++;
    if (i == 0)
        memcpy(d->w, src, sizeof d->w);
    else
        memcpy(&d->step, src, sizeof d->step);
    return HG_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);

    /* hg_ckpt_read: "w" (6 floats) and "b" (3 floats) */
    static const char *const names[2] = {"w", "b"};
    const int64_t counts[2] = {6, 3};
    float w[6], b[3];
    const uint32_t sentinel = 0x7fc01234u; /* a NaN no file is asked to hold */
    for (int i = 0; i < 6; i++)
        memcpy(&w[i], &sentinel, 4);
    for (int i = 0; i < 3; i++)
        memcpy(&b[i], &sentinel, 4);
    float *const dst[2] = {w, b};
    char meta[32];
    size_t meta_len = (size_t)-1;
    memset(meta, 'x', sizeof meta);
    int rc = hg_ckpt_read(path, 2, names, dst, counts, meta, sizeof meta, &meta_len);
    fuzz_check_status(rc, path, NULL);
    if (rc == HG_OK) {
        FUZZ_REQUIRE(memchr(meta, '\0', sizeof meta) != NULL);
        FUZZ_REQUIRE(strlen(meta) == (meta_len < sizeof meta ? meta_len : sizeof meta - 1));
        FUZZ_REQUIRE(meta_len <= size);
    } else {
        for (int i = 0; i < 6; i++)
            FUZZ_REQUIRE(memcmp(&w[i], &sentinel, 4) == 0);
        for (int i = 0; i < 3; i++)
            FUZZ_REQUIRE(memcmp(&b[i], &sentinel, 4) == 0);
    }

    /* hg_ckpt_load: "w" required, "step" (one uint64) optional */
    const hg_ckpt_entry e[2] = {{"w", HG_DTYPE_F32, 6, 0}, {"step", HG_DTYPE_U64, 1, 1}};
    delivered d;
    memset(&d, 0, sizeof d);
    rc = hg_ckpt_load(path, 2, e, put, &d, NULL, 0, NULL);
    fuzz_check_status(rc, path, NULL);
    if (rc == HG_OK) {
        FUZZ_REQUIRE(d.calls[0] == 1 && d.calls[1] <= 1);
    } else {
        FUZZ_REQUIRE(d.calls[0] == 0 && d.calls[1] == 0);
    }
    return 0;
}
