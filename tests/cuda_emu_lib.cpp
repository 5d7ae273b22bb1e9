extern "C" {
#include "../kernels/kernels.h"
}
/* cuda_emu_lib.cpp - the emulated backend's stand-in for kernels/cuda_lib.cu: the context
 * without a GPU, and the library calls (cuBLAS, cuSPARSE, cuSOLVER) done by the CPU kernels on
 * the emulated device memory (which is host memory). See tests/cuda_emu.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda_common.h"

static const hg_kctx cpu = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

int hg_cu_available(void) { return 1; }

int hg_cu_init(hg_kctx *k)
{
    hg_cu_state *st = (hg_cu_state *)calloc(1, sizeof *st);
    double *host = (double *)calloc(16, sizeof *host);
    if (!st || !host) {
        free(st);
        free(host);
        return hg_error_set(HG_ENOMEM, "out of memory allocating the emulated CUDA context");
    }
    st->host = host;
    snprintf(st->name, sizeof st->name, "emulated CUDA device (CPU)");
    k->device_state = st;
    k->device = HG_DEVICE_CUDA;
    return HG_OK;
}

void hg_cu_destroy(hg_kctx *k)
{
    hg_cu_state *st = hg_cu_st(k);
    if (!st)
        return;
    cudaFree(st->scratch);
    free(st->host);
    free(st);
    k->device_state = NULL;
    k->device = HG_DEVICE_CPU;
}

const char *hg_cu_device_name(const hg_kctx *k) { return hg_cu_st(k)->name; }

/* HG_PREC_BF16 as the tensor cores do it: both inputs rounded to bfloat16 (the stored matrix
 * behind op(X), rows x cols at leading dimension ld, packed into a buffer kept between calls),
 * then the fp32 product. */
static float *bf16_pack(int slot, const float *X, int64_t rows, int64_t cols, int64_t ld)
{
    static float *buf[2];
    static int64_t cap[2];
    if (rows * cols > cap[slot]) {
        free(buf[slot]);
        buf[slot] = (float *)malloc((size_t)(rows * cols) * sizeof(float));
        if (!buf[slot]) {
            fprintf(stderr, "cuda_emu: out of memory rounding a product's input to bfloat16\n");
            abort();
        }
        cap[slot] = rows * cols;
    }
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            buf[slot][i * cols + j] = hg_k_bf16_round(X[i * ld + j]);
    return buf[slot];
}

static int gemm_bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                     int64_t ldc)
{
    if (M <= 0 || N <= 0 || K <= 0)
        return hg_k_gemm(&cpu, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    const int64_t ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K,
                  bc = transB ? K : N;
    const float *Ab = bf16_pack(0, A, ar, ac, lda), *Bb = bf16_pack(1, B, br, bc, ldb);
    return hg_k_gemm(&cpu, transA, transB, M, N, K, alpha, Ab, ac, Bb, bc, beta, C, ldc);
}

int hg_cu_gemm(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K,
               float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc)
{
    hg_emu_open();
    int r_ = k->precision == HG_PREC_BF16
                 ? gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
                 : hg_k_gemm(&cpu, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    hg_emu_close();
    return r_;
}

int hg_cu_gemm_batched(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K,
                       float alpha, const float *A, int64_t lda, int64_t strideA, const float *B,
                       int64_t ldb, int64_t strideB, float beta, float *C, int64_t ldc,
                       int64_t strideC, int64_t batch)
{
    hg_emu_open();
    int r_ = 0;
    if (k->precision == HG_PREC_BF16) /* item by item, as hg_k_gemm_batched promises */
        for (int64_t i = 0; i < batch && r_ == 0; i++)
            r_ = gemm_bf16(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB,
                           ldb, beta, C + i * strideC, ldc);
    else
        r_ = hg_k_gemm_batched(&cpu, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb,
                               strideB, beta, C, ldc, strideC, batch);
    hg_emu_close();
    return r_;
}

void hg_cu_csr_spmm(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                    const float *val, const float *X, int64_t d, float beta, float *Y)
{
    (void)k;
    hg_emu_open();
    hg_k_csr_spmm(&cpu, nrows, rowptr, col, val, X, d, beta, Y);
    hg_emu_close();
}

void hg_cu_forget_matrix(const hg_kctx *k, const void *p)
{
    (void)k;
    (void)p;
}

int64_t hg_cu_svd_workspace_bytes(const hg_kctx *k, int64_t m, int64_t n)
{
    (void)k;
    return hg_k_svd_workspace_bytes(&cpu, m, n);
}

int hg_cu_svd(const hg_kctx *k, const float *W, float *Ut, float *sigma, float *Vt, int64_t m,
              int64_t n, void *ws)
{
    (void)k;
    hg_emu_open();
    int r_ = hg_k_svd(&cpu, W, Ut, sigma, Vt, m, n, ws);
    hg_emu_close();
    return r_;
}
