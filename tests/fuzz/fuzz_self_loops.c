/* fuzz_self_loops.c - libFuzzer harness of the self_loops.txt parser, for a graph of FUZZ_N
 * nodes. On success: flags set only for nodes of the graph (the array is guarded on both sides,
 * so a write out of range is caught even where ASan would not see it). */
#include <string.h>

#include "../../datasets/internal.h"
#include "../../src/hg.h"
#include "fuzz_common.h"

#define FUZZ_N 64
#define GUARD 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    uint8_t flags[GUARD + FUZZ_N + GUARD];
    memset(flags, 0, sizeof flags);
    int rc = hg_ds_read_self_loops(flags + GUARD, path, FUZZ_N);
    fuzz_check_status(rc, path, NULL);
    for (int i = 0; i < GUARD; i++)
        FUZZ_REQUIRE(flags[i] == 0 && flags[GUARD + FUZZ_N + i] == 0);
    for (int i = 0; i < FUZZ_N; i++)
        FUZZ_REQUIRE(flags[GUARD + i] <= 1);
    return 0;
}
