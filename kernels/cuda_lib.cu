/* cuda_lib.cu - CUDA backend: the context (device, stream, pinned scalars) and the library
 * calls: cuBLAS for dense products, cuSPARSE SpMM (generic API, CSR) for the sparse ones,
 * cuSOLVER for the SVDs of sst/. Under emulation (tests/) tests/cuda_emu_lib.cpp replaces this
 * file with CPU code.
 *
 * Row-major products on column-major cuBLAS: C = op(A) op(B) (M x N, row-major) is
 * C^T = op(B)^T op(A)^T in column-major, i.e. Sgemm(opB, opA, N, M, K, B, ldb, A, lda, C, ldc)
 * with the same leading dimensions. cuSPARSE takes row-major dense matrices directly.
 *
 * Sparse matrices: cuSPARSE wants the same index type for offsets and columns, so each CSR
 * matrix (identified by its rowptr and col device pointers) gets, at its first product, an int32
 * copy of its offsets, its descriptors and its SpMM buffer, cached here; later products only
 * point the descriptors at the current values and dense arrays. The first training step thus
 * allocates; later steps do not. hg_cu_free() drops entries naming a freed pointer. */
#include <string.h>

#include <cublas_v2.h>
#include <cusolverDn.h>
#include <cusparse.h>

#include "cuda_common.h"

#define HG_CU_MAX_MATRICES 16

typedef struct csr_entry {
    const int64_t *rowptr; /* the key: the caller's arrays */
    const int32_t *col;
    int64_t nrows, ncols, nnz, d;
    int32_t *rowptr32;
    cusparseSpMatDescr_t A;
    cusparseDnMatDescr_t X, Y;
    void *buf;
    size_t buf_bytes;
    int64_t last_use;
} csr_entry;

typedef struct lib_state {
    cublasHandle_t blas;
    cusparseHandle_t sparse;
    cusolverDnHandle_t solver;
    csr_entry mats[HG_CU_MAX_MATRICES];
    int64_t clock;
} lib_state;

static lib_state *lib(const hg_kctx *k) { return (lib_state *)hg_cu_st(k)->lib; }

/* 1 when a library call succeeded; else the failure is recorded (hg_cu_fail) and 0. */
static int blas_ok(const hg_kctx *k, cublasStatus_t s, const char *what)
{
    return s == CUBLAS_STATUS_SUCCESS ||
           !hg_cu_fail(k, "cuBLAS: %s failed (status %d)", what, (int)s);
}

static int sparse_ok(const hg_kctx *k, cusparseStatus_t s, const char *what)
{
    return s == CUSPARSE_STATUS_SUCCESS ||
           !hg_cu_fail(k, "cuSPARSE: %s failed: %s", what, cusparseGetErrorString(s));
}

static int solver_ok(const hg_kctx *k, cusolverStatus_t s, const char *what)
{
    return s == CUSOLVER_STATUS_SUCCESS ||
           !hg_cu_fail(k, "cuSOLVER: %s failed (status %d)", what, (int)s);
}

/* ---------------------------------------------------------------- context */

int hg_cu_available(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0;
}

int hg_cu_init(hg_kctx *k)
{
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev < 1) {
        (void)cudaGetLastError();
        return hg_error_set(HG_ECUDA, "--device cuda: no CUDA device (%s)",
                            e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    hg_cu_state *st = (hg_cu_state *)calloc(1, sizeof *st);
    lib_state *ls = (lib_state *)calloc(1, sizeof *ls);
    if (!st || !ls) {
        free(st);
        free(ls);
        return hg_error_set(HG_ENOMEM, "out of memory allocating the CUDA context");
    }
    st->lib = ls;
    k->device_state = st;
    k->device = HG_DEVICE_CUDA;
    int dev = 0;
    cudaDeviceProp prop;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
        snprintf(st->name, sizeof st->name, "%s", prop.name);
    else
        snprintf(st->name, sizeof st->name, "CUDA device %d", dev);
    int rc = HG_OK;
    if (hg_cu_check(k, cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking),
                    "cudaStreamCreate") ||
        hg_cu_check(k, cudaMallocHost((void **)&st->host, 16 * sizeof(double)), "cudaMallocHost"))
        rc = HG_ECUDA;
    if (rc == HG_OK && (!blas_ok(k, cublasCreate(&ls->blas), "cublasCreate") ||
                        !blas_ok(k, cublasSetStream(ls->blas, st->stream), "cublasSetStream") ||
                        /* plain FP32 (no TF32) and no atomics: the results of the CPU, bit-stable */
                        !blas_ok(k, cublasSetMathMode(ls->blas, CUBLAS_PEDANTIC_MATH),
                                 "cublasSetMathMode") ||
                        !blas_ok(k, cublasSetAtomicsMode(ls->blas, CUBLAS_ATOMICS_NOT_ALLOWED),
                                 "cublasSetAtomicsMode")))
        rc = HG_ECUDA;
    if (rc == HG_OK &&
        (!sparse_ok(k, cusparseCreate(&ls->sparse), "cusparseCreate") ||
         !sparse_ok(k, cusparseSetStream(ls->sparse, st->stream), "cusparseSetStream")))
        rc = HG_ECUDA;
    if (rc == HG_OK &&
        (!solver_ok(k, cusolverDnCreate(&ls->solver), "cusolverDnCreate") ||
         !solver_ok(k, cusolverDnSetStream(ls->solver, st->stream), "cusolverDnSetStream")))
        rc = HG_ECUDA;
    if (rc != HG_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", hg_last_error());
        hg_cu_destroy(k);
        return hg_error_set(HG_ECUDA, "--device cuda: %s", msg);
    }
    return HG_OK;
}

static void drop_entry(csr_entry *e)
{
    if (e->A)
        cusparseDestroySpMat(e->A);
    if (e->X)
        cusparseDestroyDnMat(e->X);
    if (e->Y)
        cusparseDestroyDnMat(e->Y);
    cudaFree(e->rowptr32);
    cudaFree(e->buf);
    memset(e, 0, sizeof *e);
}

void hg_cu_destroy(hg_kctx *k)
{
    hg_cu_state *st = hg_cu_st(k);
    if (!st)
        return;
    lib_state *ls = (lib_state *)st->lib;
    if (st->stream)
        cudaStreamSynchronize(st->stream);
    if (ls) {
        for (int i = 0; i < HG_CU_MAX_MATRICES; i++)
            drop_entry(&ls->mats[i]);
        if (ls->blas)
            cublasDestroy(ls->blas);
        if (ls->sparse)
            cusparseDestroy(ls->sparse);
        if (ls->solver)
            cusolverDnDestroy(ls->solver);
        free(ls);
    }
    cudaFree(st->scratch);
    if (st->host)
        cudaFreeHost(st->host);
    if (st->stream)
        cudaStreamDestroy(st->stream);
    free(st);
    k->device_state = NULL;
    k->device = HG_DEVICE_CPU;
}

const char *hg_cu_device_name(const hg_kctx *k) { return hg_cu_st(k)->name; }

/* ---------------------------------------------------------------- cuBLAS */

/* The handle runs in pedantic math (fp32 products exactly as asked); a bf16 product switches to
 * the default math around its call so that the compute type it names is honoured. */
static void fast_math(const hg_kctx *k, int on)
{
    (void)cublasSetMathMode(lib(k)->blas, on ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH);
}

int hg_cu_gemm(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K,
               float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc)
{
    const int64_t lim = 2147483647;
    if (M < 0 || N < 0 || K < 0 || M > lim || N > lim || K > lim || lda > lim || ldb > lim ||
        ldc > lim)
        return -1;
    if (M == 0 || N == 0)
        return 0;
    const cublasOperation_t ob = transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                            oa = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (k->precision == HG_PREC_BF16) { /* fp32 arrays, bf16 tensor-core products */
        fast_math(k, 1);
        cublasStatus_t s = cublasGemmEx(lib(k)->blas, ob, oa, (int)N, (int)M, (int)K, &alpha, B,
                                        CUDA_R_32F, (int)ldb, A, CUDA_R_32F, (int)lda, &beta, C,
                                        CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F_FAST_16BF,
                                        CUBLAS_GEMM_DEFAULT);
        fast_math(k, 0);
        return blas_ok(k, s, "cublasGemmEx (bf16)") ? 0 : -1;
    }
    cublasStatus_t s = cublasSgemm(lib(k)->blas, ob, oa, (int)N, (int)M, (int)K, &alpha, B,
                                   (int)ldb, A, (int)lda, &beta, C, (int)ldc);
    return blas_ok(k, s, "cublasSgemm") ? 0 : -1;
}

int hg_cu_gemm_batched(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K,
                       float alpha, const float *A, int64_t lda, int64_t strideA, const float *B,
                       int64_t ldb, int64_t strideB, float beta, float *C, int64_t ldc,
                       int64_t strideC, int64_t batch)
{
    const int64_t lim = 2147483647;
    if (M < 0 || N < 0 || K < 0 || M > lim || N > lim || K > lim || lda > lim || ldb > lim ||
        ldc > lim || batch < 0 || batch > lim)
        return -1;
    if (M == 0 || N == 0 || batch == 0)
        return 0;
    const cublasOperation_t ob = transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                            oa = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (k->precision == HG_PREC_BF16) {
        fast_math(k, 1);
        cublasStatus_t s = cublasGemmStridedBatchedEx(
            lib(k)->blas, ob, oa, (int)N, (int)M, (int)K, &alpha, B, CUDA_R_32F, (int)ldb,
            (long long)strideB, A, CUDA_R_32F, (int)lda, (long long)strideA, &beta, C, CUDA_R_32F,
            (int)ldc, (long long)strideC, (int)batch, CUBLAS_COMPUTE_32F_FAST_16BF,
            CUBLAS_GEMM_DEFAULT);
        fast_math(k, 0);
        return blas_ok(k, s, "cublasGemmStridedBatchedEx (bf16)") ? 0 : -1;
    }
    cublasStatus_t s = cublasSgemmStridedBatched(
        lib(k)->blas, ob, oa, (int)N, (int)M, (int)K, &alpha, B, (int)ldb, (long long)strideB, A,
        (int)lda, (long long)strideA, &beta, C, (int)ldc, (long long)strideC, (int)batch);
    return blas_ok(k, s, "cublasSgemmStridedBatched") ? 0 : -1;
}

/* ---------------------------------------------------------------- cuSPARSE */

__global__ void offsets_to_int32(int32_t *dst, const int64_t *src, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = (int32_t)src[i];
}

/* Largest column index + 1 of the nnz entries (one thread per chunk, then one thread). */
__global__ void max_col_pass1(int32_t *part, const int32_t *col, int64_t nnz, int64_t nch)
{
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < nch;
         c += (int64_t)gridDim.x * blockDim.x) {
        int32_t m = -1;
        for (int64_t p = c; p < nnz; p += nch)
            m = col[p] > m ? col[p] : m;
        part[c] = m;
    }
}

__global__ void max_col_pass2(int32_t *part, int64_t nch)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        int32_t m = -1;
        for (int64_t c = 0; c < nch; c++)
            m = part[c] > m ? part[c] : m;
        part[0] = m;
    }
}

static csr_entry *find_matrix(const hg_kctx *k, int64_t nrows, const int64_t *rowptr,
                              const int32_t *col, const float *val)
{
    lib_state *ls = lib(k);
    hg_cu_state *st = hg_cu_st(k);
    ls->clock++;
    csr_entry *free_slot = NULL, *oldest = &ls->mats[0];
    for (int i = 0; i < HG_CU_MAX_MATRICES; i++) {
        csr_entry *e = &ls->mats[i];
        if (e->rowptr == rowptr && e->col == col && e->nrows == nrows) {
            e->last_use = ls->clock;
            return e;
        }
        if (!e->rowptr && !free_slot)
            free_slot = e;
        if (e->last_use < oldest->last_use)
            oldest = e;
    }
    csr_entry *e = free_slot ? free_slot : oldest;
    drop_entry(e);
    /* first product with this matrix: its size, an int32 copy of its offsets, its descriptor */
    int64_t nnz = 0;
    hg_cu_memcpy(k, &nnz, rowptr + nrows, sizeof nnz, HG_CU_D2H);
    if (st->error)
        return NULL;
    if (nnz > 2147483647 || nrows > 2147483646) {
        hg_cu_fail(k, "CUDA: a sparse matrix with %lld rows and %lld entries exceeds the 32-bit "
                   "indices of the GPU path", (long long)nrows, (long long)nnz);
        return NULL;
    }
    int64_t ncols = 1;
    if (nnz > 0) {
        /* a block of its own, not the shared scratch: the caller may hold data there */
        const int64_t nch = nnz < 1024 ? nnz : 1024;
        int32_t *part = NULL;
        if (hg_cu_check(k, cudaMalloc((void **)&part, (size_t)nch * sizeof(int32_t)),
                        "cudaMalloc (CSR columns)"))
            return NULL;
        st->nallocs++;
        HG_LAUNCH(max_col_pass1, hg_cu_blocks(nch), HG_CU_BLOCK, k)(part, col, nnz, nch);
        HG_LAUNCH(max_col_pass2, 1, 1, k)(part, nch);
        int32_t mc = 0;
        hg_cu_memcpy(k, &mc, part, sizeof mc, HG_CU_D2H);
        cudaFree(part);
        ncols = (int64_t)mc + 1;
    }
    if (hg_cu_check(k, cudaMalloc((void **)&e->rowptr32, (size_t)(nrows + 1) * sizeof(int32_t)),
                    "cudaMalloc (CSR offsets)"))
        return NULL;
    st->nallocs++;
    HG_LAUNCH(offsets_to_int32, hg_cu_blocks(nrows + 1), HG_CU_BLOCK, k)(e->rowptr32, rowptr,
                                                                        nrows + 1);
    if (HG_CU_LAUNCHED(k, "CSR offsets to int32"))
        return NULL;
    if (!sparse_ok(k, cusparseCreateCsr(&e->A, nrows, ncols, nnz, e->rowptr32, (void *)col,
                                        (void *)val, CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
                                        CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F),
                   "cusparseCreateCsr"))
        return NULL;
    e->rowptr = rowptr;
    e->col = col;
    e->nrows = nrows;
    e->ncols = ncols;
    e->nnz = nnz;
    e->last_use = ls->clock;
    return e;
}

void hg_cu_forget_matrix(const hg_kctx *k, const void *p)
{
    lib_state *ls = lib(k);
    for (int i = 0; i < HG_CU_MAX_MATRICES; i++) {
        csr_entry *e = &ls->mats[i];
        if (e->rowptr && ((const void *)e->rowptr == p || (const void *)e->col == p))
            drop_entry(e);
    }
}

void hg_cu_csr_spmm(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                    const float *val, const float *X, int64_t d, float beta, float *Y)
{
    if (nrows <= 0 || d <= 0)
        return;
    csr_entry *e = find_matrix(k, nrows, rowptr, col, val);
    if (!e)
        return;
    lib_state *ls = lib(k);
    if (e->d != d) { /* dense descriptors for this width (once per matrix and width) */
        if (e->X)
            cusparseDestroyDnMat(e->X);
        if (e->Y)
            cusparseDestroyDnMat(e->Y);
        e->X = e->Y = NULL;
        e->d = 0;
        if (!sparse_ok(k, cusparseCreateDnMat(&e->X, e->ncols, d, d, (void *)X, CUDA_R_32F,
                                              CUSPARSE_ORDER_ROW), "cusparseCreateDnMat") ||
            !sparse_ok(k, cusparseCreateDnMat(&e->Y, nrows, d, d, Y, CUDA_R_32F,
                                              CUSPARSE_ORDER_ROW), "cusparseCreateDnMat"))
            return;
        e->d = d;
    }
    if (!sparse_ok(k, cusparseCsrSetPointers(e->A, e->rowptr32, (void *)col, (void *)val),
                   "cusparseCsrSetPointers") ||
        !sparse_ok(k, cusparseDnMatSetValues(e->X, (void *)X), "cusparseDnMatSetValues") ||
        !sparse_ok(k, cusparseDnMatSetValues(e->Y, Y), "cusparseDnMatSetValues"))
        return;
    const float alpha = 1.0f;
    size_t need = 0;
    /* non-transposed CSR SpMM is deterministic (cuSPARSE documentation) */
    if (!sparse_ok(k, cusparseSpMM_bufferSize(ls->sparse, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                              CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, e->A,
                                              e->X, &beta, e->Y, CUDA_R_32F,
                                              CUSPARSE_SPMM_ALG_DEFAULT, &need),
                   "cusparseSpMM_bufferSize"))
        return;
    if (need > e->buf_bytes) {
        cudaFree(e->buf);
        e->buf = NULL;
        e->buf_bytes = 0;
        if (hg_cu_check(k, cudaMalloc(&e->buf, need), "cudaMalloc (SpMM buffer)"))
            return;
        hg_cu_st(k)->nallocs++;
        e->buf_bytes = need;
    }
    sparse_ok(k, cusparseSpMM(ls->sparse, CUSPARSE_OPERATION_NON_TRANSPOSE,
                              CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, e->A, e->X, &beta, e->Y,
                              CUDA_R_32F, CUSPARSE_SPMM_ALG_DEFAULT, e->buf),
              "cusparseSpMM");
}

/* ---------------------------------------------------------------- cuSOLVER */

/* The SVD runs on A (rows x cols, column-major, rows >= cols) in double:
 *   m <= n: A = W^T, which is W's row-major buffer read column-major (rows n, cols m);
 *   m >  n: A = W, a transposed copy (rows m, cols n).
 * gesvd (jobu = jobvt = 'S') gives U (rows x kk), S, VT (kk x cols). */
typedef struct svd_layout {
    int64_t rows, cols, kk;
    int lwork;
} svd_layout;

static int svd_plan(const hg_kctx *k, int64_t m, int64_t n, svd_layout *L)
{
    L->rows = m <= n ? n : m;
    L->cols = m <= n ? m : n;
    L->kk = L->cols;
    if (L->rows > 2147483647)
        return -1;
    int lw = 0;
    if (!solver_ok(k, cusolverDnDgesvd_bufferSize(lib(k)->solver, (int)L->rows, (int)L->cols, &lw),
                   "cusolverDnDgesvd_bufferSize"))
        return -1;
    L->lwork = lw;
    return 0;
}

/* doubles: A (rows cols), S (kk), U (rows kk), VT (kk cols), work (lwork), rwork (kk); then the
 * int info */
static int64_t svd_doubles(const svd_layout *L)
{
    return L->rows * L->cols + L->kk + L->rows * L->kk + L->kk * L->cols + L->lwork + L->kk;
}

int64_t hg_cu_svd_workspace_bytes(const hg_kctx *k, int64_t m, int64_t n)
{
    svd_layout L;
    if (svd_plan(k, m, n, &L))
        return -1;
    return svd_doubles(&L) * (int64_t)sizeof(double) + 64;
}

/* A (column-major rows x cols, double) from W (m x n row-major, float). */
__global__ void svd_load(double *A, const float *W, int64_t m, int64_t n, int wide)
{
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < m * n;
         e += (int64_t)gridDim.x * blockDim.x) {
        if (wide) /* A = W^T column-major = W row-major */
            A[e] = (double)W[e];
        else { /* A = W column-major: A[i + j m] = W[i][j] */
            const int64_t i = e / n, j = e % n;
            A[i + j * m] = (double)W[e];
        }
    }
}

/* Ut (kk x m), sigma, Vt (kk x n) from U (rows x kk), S, VT (kk x cols), column-major. */
__global__ void svd_store(float *Ut, float *sigma, float *Vt, const double *U, const double *S,
                          const double *VT, int64_t m, int64_t n, int64_t kk, int wide)
{
    const int64_t total = kk * (m + n + 1);
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        if (e < kk * m) { /* Ut[i][a]: left singular vector i of W, entry a */
            const int64_t i = e / m, a = e % m;
            /* wide: W = V_A S U_A^T, so W's left vectors are A's right ones: VT[i + a kk] */
            Ut[e] = (float)(wide ? VT[i + a * kk] : U[a + i * m]);
        } else if (e < kk * (m + n)) { /* Vt[i][b] */
            const int64_t f = e - kk * m, i = f / n, b = f % n;
            Vt[f] = (float)(wide ? U[b + i * n] : VT[i + b * kk]);
        } else {
            const int64_t i = e - kk * (m + n);
            sigma[i] = (float)S[i];
        }
    }
}

int hg_cu_svd(const hg_kctx *k, const float *W, float *Ut, float *sigma, float *Vt, int64_t m,
              int64_t n, void *ws)
{
    svd_layout L;
    if (svd_plan(k, m, n, &L))
        return hg_error_set(HG_ELAPACK, "cuSOLVER: no SVD plan for a %lld x %lld matrix",
                            (long long)m, (long long)n);
    const int wide = m <= n;
    double *A = (double *)ws, *S = A + L.rows * L.cols, *U = S + L.kk, *VT = U + L.rows * L.kk,
           *work = VT + L.kk * L.cols, *rwork = work + L.lwork;
    int *info = (int *)(rwork + L.kk);
    HG_LAUNCH(svd_load, hg_cu_blocks(m * n), HG_CU_BLOCK, k)(A, W, m, n, wide);
    if (HG_CU_LAUNCHED(k, "svd_load"))
        return HG_ECUDA;
    if (!solver_ok(k, cusolverDnDgesvd(lib(k)->solver, 'S', 'S', (int)L.rows, (int)L.cols, A,
                                       (int)L.rows, S, U, (int)L.rows, VT, (int)L.kk, work,
                                       L.lwork, rwork, info),
                   "cusolverDnDgesvd"))
        return HG_ECUDA;
    int h_info = 0;
    hg_cu_memcpy(k, &h_info, info, sizeof h_info, HG_CU_D2H);
    if (hg_cu_st(k)->error)
        return HG_ECUDA;
    if (h_info != 0)
        return hg_error_set(HG_ELAPACK, "cuSOLVER: Dgesvd of a %lld x %lld matrix failed (info %d)",
                            (long long)m, (long long)n, h_info);
    HG_LAUNCH(svd_store, hg_cu_blocks(L.kk * (m + n + 1)), HG_CU_BLOCK, k)(Ut, sigma, Vt, U, S, VT,
                                                                          m, n, L.kk, wide);
    return HG_CU_LAUNCHED(k, "svd_store") ? HG_ECUDA : HG_OK;
}
