/* fuzz_edges.c - libFuzzer harness of the graph.edges parser, for a graph of FUZZ_N nodes. On
 * success: sorted unique keys of pairs u < v inside the graph, no more than the file's lines. */
#include <stdlib.h>
#include <string.h>

#include "../../datasets/internal.h"
#include "../../src/hg.h"
#include "fuzz_common.h"

#define FUZZ_N 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    uint8_t loops[FUZZ_N];
    int64_t *keys = NULL, m = 0;
    memset(loops, 0, sizeof loops);
    int rc = hg_ds_read_edges(&keys, &m, loops, path, FUZZ_N, "labels.txt");
    fuzz_check_status(rc, path, NULL);
    if (rc != HG_OK)
        return 0;
    FUZZ_REQUIRE(m >= 1 && 4 * m <= (int64_t)size + 1); /* "u v\n" per edge at least */
    for (int64_t k = 0; k < m; k++) {
        FUZZ_REQUIRE(keys[k] / FUZZ_N < keys[k] % FUZZ_N && keys[k] < FUZZ_N * FUZZ_N);
        FUZZ_REQUIRE(k == 0 || keys[k - 1] < keys[k]);
    }
    free(keys);
    return 0;
}
