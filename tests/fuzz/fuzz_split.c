/* fuzz_split.c - libFuzzer harness of the split-file parser, for a graph of FUZZ_N nodes. On
 * success: one of train/val/test/none per node, counted. */
#include <string.h>

#include "../../datasets/internal.h"
#include "../../src/hg.h"
#include "fuzz_common.h"

#define FUZZ_N 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    uint8_t which[FUZZ_N];
    int64_t cnt[4], seen[4] = {0, 0, 0, 0};
    memset(which, 0xff, sizeof which);
    int rc = hg_ds_read_split(which, cnt, path, FUZZ_N);
    fuzz_check_status(rc, path, NULL);
    if (rc != HG_OK)
        return 0;
    for (int i = 0; i < FUZZ_N; i++) {
        FUZZ_REQUIRE(which[i] < 4);
        seen[which[i]]++;
    }
    for (int k = 0; k < 4; k++)
        FUZZ_REQUIRE(seen[k] == cnt[k]);
    return 0;
}
