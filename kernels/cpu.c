/* cpu.c - CPU reference kernels: BLAS calls, CSR products, element-wise loops, Adam. */
#include "kernels.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "hg_config.h"
#if HG_HAVE_OPENMP
#include <omp.h>
#endif

extern void openblas_set_num_threads(int num_threads);

void hg_k_set_threads(hg_kctx *k, int threads)
{
    k->threads = threads < 1 ? 1 : threads;
    /* OpenBLAS stays on one thread: its results depend on its thread count (an SST run differed
       between 1 and 2 threads), its calls here are small, and an idle worker of its own would
       compete with ours for the cores */
    openblas_set_num_threads(1);
#if HG_HAVE_OPENMP
    omp_set_num_threads(k->threads);
#endif
}

static int fits_int(int64_t x) { return x >= 0 && x <= INT_MAX; }

int hg_k_gemm(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc)
{
    (void)k;
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(lda) || !fits_int(ldb) ||
        !fits_int(ldc))
        return -1;
    if (M == 0 || N == 0)
        return 0;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    return 0;
}

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

void hg_k_csr_spmm(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
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

/* Counter-based hash (splitmix64 finaliser of seed and index): the mask of element i does not
 * depend on the order or the device that computes it. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Element i is dropped when the top 53 bits of its hash fall below p * 2^53. */
static inline uint64_t dropout_hash(uint64_t seed, int64_t i)
{
    return mix64(seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i + 0x632be59bd9b4e019ULL) >> 11;
}

float hg_k_dropout_scale(int64_t i, float p, uint64_t seed)
{
    if (p <= 0.0f)
        return 1.0f;
    uint64_t threshold = (uint64_t)((double)p * 0x1.0p53);
    return dropout_hash(seed, i) < threshold ? 0.0f : 1.0f / (1.0f - p);
}

void hg_k_dropout_mask(float *mask, int64_t i0, int64_t n, float p, uint64_t seed)
{
    if (p <= 0.0f) {
        for (int64_t j = 0; j < n; j++)
            mask[j] = 1.0f;
        return;
    }
    const uint64_t threshold = (uint64_t)((double)p * 0x1.0p53);
    const float keep = 1.0f / (1.0f - p);
    for (int64_t j = 0; j < n; j++)
        mask[j] = dropout_hash(seed, i0 + j) < threshold ? 0.0f : keep;
}

void hg_k_dropout(const hg_kctx *k, float *out, const float *in, int64_t n, float p, uint64_t seed)
{
    (void)k;
    if (p <= 0.0f) {
        if (out != in)
            memmove(out, in, (size_t)n * sizeof *out);
        return;
    }
    const uint64_t threshold = (uint64_t)((double)p * 0x1.0p53);
    const float keep = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) /* branch-free: the mask is a coin flip at p = 0.5 */
        out[i] = in[i] * (dropout_hash(seed, i) < threshold ? 0.0f : keep);
}

void hg_k_relu_forward(const hg_kctx *k, float *y, const float *x, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void hg_k_relu_backward(const hg_kctx *k, float *dx, const float *dy, const float *x, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void hg_k_adam_step(const hg_kctx *k, float *p, const float *g, float *m, float *v, int64_t n,
                    float lr, float beta1, float beta2, float eps, float decoupled_wd, float l2_wd,
                    int64_t t)
{
    (void)k;
    const double bc1 = 1.0 - pow((double)beta1, (double)t);
    const double bc2 = 1.0 - pow((double)beta2, (double)t);
    const float step = (float)((double)lr / bc1);
    const float rbc2 = (float)(1.0 / sqrt(bc2));
    const float decay = 1.0f - lr * decoupled_wd;
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + l2_wd * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] = p[i] * decay - step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
}

double hg_k_sqnorm(const hg_kctx *k, const float *x, int64_t n)
{
    (void)k;
    /* sixteen interleaved double partial sums (element i goes to sum i mod 16), added as a tree
       at the end: one dependent add per 16 elements instead of one per element; the order is
       fixed, so the result is too */
    typedef double v8d __attribute__((vector_size(64)));
    v8d a0 = {0}, a1 = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v8d x0, x1;
        for (int j = 0; j < 8; j++) {
            x0[j] = x[i + j];
            x1[j] = x[i + 8 + j];
        }
        a0 += x0 * x0;
        a1 += x1 * x1;
    }
    double s = 0.0;
    for (; i < n; i++)
        s += (double)x[i] * x[i];
    v8d t = a0 + a1;
    return s + (((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7])));
}

void hg_k_scale(const hg_kctx *k, float *x, float a, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        x[i] *= a;
}
