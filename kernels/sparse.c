/* sparse.c - CPU bodies of the sparse products (kernels/ops_sparse.def) and the transposed
 * reference product (kernels/reference.h). */
#include <string.h>

#include "backend.h"
#include "hg_config.h"
#include "reference.h"
#if HG_HAVE_OPENMP
#include <omp.h>
#endif

/* The model's width (dim 16 in every reference run) gets a 16-float vector path, written with
 * GCC/Clang vector extensions so the row update y += a x stays in registers whatever the ISA
 * (one zmm, two ymm or four xmm); other widths take the generic loop. */
typedef float v16f __attribute__((vector_size(64)));

static inline v16f load16(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store16(float *p, v16f v) { memcpy(p, &v, sizeof v); }

static void spmm16(int64_t i0, int64_t i1, const int64_t *restrict rowptr,
                   const int32_t *restrict col, const float *restrict val, const float *restrict X,
                   float beta, float *restrict Y)
{
    for (int64_t i = i0; i < i1; i++) {
        v16f acc = {0};
        for (int64_t p = rowptr[i]; p < rowptr[i + 1]; p++)
            acc += val[p] * load16(X + (int64_t)col[p] * 16);
        if (beta != 0.0f)
            acc += beta * load16(Y + i * 16);
        store16(Y + i * 16, acc);
    }
}

static void spmm_generic(int64_t i0, int64_t i1, const int64_t *restrict rowptr,
                         const int32_t *restrict col, const float *restrict val,
                         const float *restrict X, int64_t d, float beta, float *restrict Y)
{
    for (int64_t i = i0; i < i1; i++) {
        float *y = Y + i * d;
        if (beta == 0.0f)
            memset(y, 0, (size_t)d * sizeof *y);
        else if (beta != 1.0f)
            for (int64_t c = 0; c < d; c++)
                y[c] *= beta;
        for (int64_t p = rowptr[i]; p < rowptr[i + 1]; p++) {
            const float a = val[p];
            const float *x = X + (int64_t)col[p] * d;
            for (int64_t c = 0; c < d; c++)
                y[c] += a * x[c];
        }
    }
}

void hg_cpu_csr_spmm(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                   const float *val, const float *X, int64_t d, float beta, float *Y)
{
#if HG_HAVE_OPENMP
    if (k->threads > 1 && rowptr[nrows] * d > 262144) {
        /* static row blocks: every row is computed the same way whatever the thread count */
#pragma omp parallel num_threads(k->threads)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t i0 = nrows * t / T, i1 = nrows * (t + 1) / T;
            if (d == 16)
                spmm16(i0, i1, rowptr, col, val, X, beta, Y);
            else
                spmm_generic(i0, i1, rowptr, col, val, X, d, beta, Y);
        }
        return;
    }
#endif
    (void)k;
    if (d == 16)
        spmm16(0, nrows, rowptr, col, val, X, beta, Y);
    else
        spmm_generic(0, nrows, rowptr, col, val, X, d, beta, Y);
}

void hg_k_csr_spmm_t(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                     const float *val, const float *X, int64_t d, float *Y)
{
    HG_K_CPU_ONLY(k, "hg_k_csr_spmm_t");
    (void)k; /* scatter: sequential, so the summation order (and the result) is fixed */
    if (d == 16) {
        for (int64_t i = 0; i < nrows; i++) {
            const v16f x = load16(X + i * 16);
            for (int64_t p = rowptr[i]; p < rowptr[i + 1]; p++) {
                float *y = Y + (int64_t)col[p] * 16;
                store16(y, load16(y) + val[p] * x);
            }
        }
        return;
    }
    for (int64_t i = 0; i < nrows; i++) {
        const float *x = X + i * d;
        for (int64_t p = rowptr[i]; p < rowptr[i + 1]; p++) {
            const float a = val[p];
            float *y = Y + (int64_t)col[p] * d;
            for (int64_t c = 0; c < d; c++)
                y[c] += a * x[c];
        }
    }
}
