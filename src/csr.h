/* csr.h - compressed sparse row matrices (row-major, 0-based, float32 values). */
#ifndef HG_CSR_H
#define HG_CSR_H

#include <stdint.h>

typedef struct hg_csr {
    int64_t nrows, ncols, nnz;
    int64_t *rowptr; /* (nrows + 1) */
    int32_t *col;    /* (nnz) column of each entry, sorted within a row */
    float *val;      /* (nnz) */
} hg_csr;

/* Allocate an nrows x ncols matrix with room for nnz entries (rowptr zeroed). HG_ENOMEM. */
int hg_csr_alloc(hg_csr *a, int64_t nrows, int64_t ncols, int64_t nnz);
void hg_csr_destroy(hg_csr *a); /* safe on a zeroed struct */

#endif
