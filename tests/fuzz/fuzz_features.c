/* fuzz_features.c - libFuzzer harness of the features.mtx parser, for a graph of FUZZ_N nodes
 * (the seed corpus declares 12 rows). On success: a well-formed CSR of FUZZ_N rows. */
#include <math.h>
#include <stdlib.h>

#include "../../datasets/internal.h"
#include "../../src/hg.h"
#include "fuzz_common.h"

#define FUZZ_N 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    hg_csr a;
    int rc = hg_ds_read_mtx(&a, path, FUZZ_N, "labels.txt");
    fuzz_check_status(rc, path, "labels.txt");
    if (rc != HG_OK)
        return 0;
    FUZZ_REQUIRE(a.nrows == FUZZ_N && a.ncols >= 0 && a.ncols <= HG_DATASET_MAX_FEATURES);
    FUZZ_REQUIRE(a.rowptr[0] == 0 && a.rowptr[a.nrows] == a.nnz);
    FUZZ_REQUIRE(a.nnz <= (int64_t)size); /* every entry took bytes of the file */
    for (int64_t i = 0; i < a.nrows; i++)
        for (int64_t p = a.rowptr[i]; p < a.rowptr[i + 1]; p++) {
            FUZZ_REQUIRE(a.col[p] >= 0 && a.col[p] < a.ncols);
            FUZZ_REQUIRE(p == a.rowptr[i] || a.col[p - 1] < a.col[p]);
            FUZZ_REQUIRE(isfinite(a.val[p]));
        }
    hg_csr_destroy(&a);
    return 0;
}
