/* csr.c - CSR allocation. */
#include "csr.h"

#include <string.h>

#include "hg.h"

int hg_csr_alloc(hg_csr *a, int64_t nrows, int64_t ncols, int64_t nnz)
{
    memset(a, 0, sizeof *a);
    if (nrows < 0 || ncols < 0 || nnz < 0 || ncols > INT32_MAX)
        return HG_ERRORF(HG_EINVAL, "csr: bad shape %lld x %lld, nnz %lld", (long long)nrows,
                         (long long)ncols, (long long)nnz);
    a->nrows = nrows;
    a->ncols = ncols;
    a->nnz = nnz;
    a->rowptr = hg_calloc((size_t)nrows + 1, sizeof *a->rowptr, "csr rowptr");
    a->col = hg_calloc((size_t)nnz, sizeof *a->col, "csr col");
    a->val = hg_calloc((size_t)nnz, sizeof *a->val, "csr val");
    if (!a->rowptr || !a->col || !a->val) {
        hg_csr_destroy(a);
        return HG_ENOMEM;
    }
    return HG_OK;
}

void hg_csr_destroy(hg_csr *a)
{
    hg_free(a->rowptr);
    hg_free(a->col);
    hg_free(a->val);
    memset(a, 0, sizeof *a);
}
