/* fuzz_labels.c - libFuzzer harness of the labels.txt parser. On success: one label per line,
 * each -1 or a class below nclasses <= HG_DATASET_MAX_CLASSES. */
#include <stdlib.h>

#include "../../datasets/internal.h"
#include "../../src/hg.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    int32_t *labels = NULL, nclasses = 0;
    int64_t n = 0;
    int rc = hg_ds_read_labels(path, &labels, &n, &nclasses);
    fuzz_check_status(rc, path, NULL);
    if (rc != HG_OK)
        return 0;
    FUZZ_REQUIRE(n >= 1 && 2 * n <= (int64_t)size + 1); /* "0\n" per node at least */
    FUZZ_REQUIRE(nclasses >= 0 && nclasses <= HG_DATASET_MAX_CLASSES);
    for (int64_t i = 0; i < n; i++)
        FUZZ_REQUIRE(labels[i] >= -1 && labels[i] < nclasses);
    free(labels);
    return 0;
}
