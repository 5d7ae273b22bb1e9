/* core.c - CPU bodies of the core ops (kernels/ops_core.def): context memory, generic array ops,
 * BLAS/LAPACK products, dropout, Adam, the decoder losses. */
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"
#include "backend.h"
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

int hg_cpu_gemm(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K,
                float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                float *C, int64_t ldc)
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

/* Floating-point operations below which a batch of products stays on one thread. */
#define GEMM_BATCH_PAR_MIN 65536

int hg_cpu_gemm_batched(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, int64_t strideA, const float *B,
                        int64_t ldb, int64_t strideB, float beta, float *C, int64_t ldc,
                        int64_t strideC, int64_t batch)
{
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(lda) || !fits_int(ldb) ||
        !fits_int(ldc) || batch < 0)
        return -1;
    if (M == 0 || N == 0 || batch == 0)
        return 0;
    /* every item is one single-threaded BLAS call, whichever thread makes it: the bits of
       hg_cpu_gemm per item, for any thread count */
    const int nt = 2 * M * N * K * batch >= GEMM_BATCH_PAR_MIN && batch > 1 ? k->threads : 1;
#if HG_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (nt > 1) num_threads(nt)
#endif
    for (int64_t i = 0; i < batch; i++)
        hg_cpu_gemm(k, transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb,
                    beta, C + i * strideC, ldc);
    (void)nt;
    return 0;
}

/* The model's width (dim 16 in every reference run) gets a 16-float vector path, written with
 * GCC/Clang vector extensions so the row update y += a x stays in registers whatever the ISA
 * (one zmm, two ymm or four xmm); other widths take the generic loop. */

/* Counter-based hash (splitmix64 finaliser of seed and index): the mask of element i does not
 * depend on the order or the device that computes it. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Element i is dropped when the top 53 bits of its hash fall below p * 2^53. */
static inline uint64_t dropout_hash(uint64_t seed, uint64_t i)
{
    return mix64(seed * 0x9e3779b97f4a7c15ULL + i + 0x632be59bd9b4e019ULL) >> 11;
}

float hg_k_dropout_scale(int64_t i, float p, uint64_t seed)
{
    if (p <= 0.0f)
        return 1.0f;
    uint64_t threshold = (uint64_t)((double)p * 0x1.0p53);
    return dropout_hash(seed, (uint64_t)i) < threshold ? 0.0f : 1.0f / (1.0f - p);
}

float hg_k_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) /* infinity or NaN */
        return x;
    u += 0x7fffu + ((u >> 16) & 1u); /* to nearest, ties to even; may carry into the exponent */
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
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
        mask[j] = dropout_hash(seed, (uint64_t)(i0 + j)) < threshold ? 0.0f : keep;
}

void hg_cpu_dropout(const hg_kctx *k, float *out, const float *in, int64_t n, float p,
                    uint64_t seed, uint64_t offset)
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
        out[i] = in[i] * (dropout_hash(seed, offset + (uint64_t)i) < threshold ? 0.0f : keep);
}

void hg_cpu_adam_step(const hg_kctx *k, float *p, const float *g, float *m, float *v, int64_t n,
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

double hg_cpu_sqnorm(const hg_kctx *k, const float *x, int64_t n)
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

void hg_cpu_scale(const hg_kctx *k, float *x, float a, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        x[i] *= a;
}

/* ---------------------------------------------------------------- context memory (CPU) */

const char *hg_cpu_device_name(const hg_kctx *k)
{
    (void)k;
    return "cpu";
}

void *hg_cpu_alloc(const hg_kctx *k, size_t bytes, const char *what)
{
    (void)k;
    size_t b = (bytes > 0 ? bytes : 1);
    b = (b + 63) / 64 * 64;
    void *p = aligned_alloc(64, b);
    if (!p) {
        hg_error_set(HG_ENOMEM, "out of memory allocating %zu bytes for %s", b, what);
        return NULL;
    }
    memset(p, 0, b);
    return p;
}

void hg_cpu_free(const hg_kctx *k, void *p)
{
    (void)k;
    free(p);
}

void hg_cpu_upload(const hg_kctx *k, void *dst, const void *src, size_t bytes)
{
    (void)k;
    if (bytes)
        memcpy(dst, src, bytes);
}

void hg_cpu_download(const hg_kctx *k, void *dst, const void *src, size_t bytes)
{
    (void)k;
    if (bytes)
        memcpy(dst, src, bytes);
}

void hg_cpu_copy(const hg_kctx *k, void *dst, const void *src, size_t bytes)
{
    (void)k;
    if (bytes && dst != src)
        memmove(dst, src, bytes);
}

void hg_cpu_zero(const hg_kctx *k, void *p, size_t bytes)
{
    (void)k;
    if (bytes)
        memset(p, 0, bytes);
}

int hg_cpu_sync(const hg_kctx *k)
{
    (void)k;
    return HG_OK;
}

/* ---------------------------------------------------------------- generic array ops */

void hg_cpu_transpose(const hg_kctx *k, float *dst, const float *src, int64_t rows, int64_t cols)
{
    (void)k;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = src[i * cols + j];
}

void hg_cpu_transpose_d2f(const hg_kctx *k, float *dst, const double *src, int64_t rows,
                        int64_t cols)
{
    (void)k;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = (float)src[i * cols + j];
}

void hg_cpu_gather(const hg_kctx *k, float *dst, const float *src, const int64_t *idx, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        dst[i] = src[idx[i]];
}

void hg_cpu_axpy(const hg_kctx *k, float *y, float a, const float *x, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

void hg_cpu_scale_rows(const hg_kctx *k, float *dst, const float *s, const float *src, int64_t rows,
                     int64_t cols)
{
    (void)k;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[i * cols + j] = s[i] * src[i * cols + j];
}

void hg_cpu_row_dots(const hg_kctx *k, float *out, const float *A, const float *B, int64_t rows,
                   int64_t cols)
{
    (void)k;
    for (int64_t i = 0; i < rows; i++) {
        double d = 0.0;
        for (int64_t j = 0; j < cols; j++)
            d += (double)A[i * cols + j] * B[i * cols + j];
        out[i] += (float)d;
    }
}

void hg_cpu_clamp_min(const hg_kctx *k, float *x, float lo, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        if (x[i] < lo)
            x[i] = lo;
}

void hg_cpu_normalize(const hg_kctx *k, float *x, int64_t n, double min_norm)
{
    (void)k;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    s = sqrt(s);
    if (s > min_norm) {
        const float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < n; i++)
            x[i] *= inv;
    }
}

int hg_cpu_all_finite(const hg_kctx *k, const float *x, int64_t n)
{
    (void)k;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* Thin SVD of the row-major m x n matrix in a (destroyed), read as W^T (n x m) column-major:
 * W^T = V S U^T, so LAPACK's "U" (n x k, ldu n) is our Vt (k x n row-major) and its "VT"
 * (k x m, ldvt k) is our U (m x k row-major). Returns LAPACK's info. */
static lapack_int svd_thin(int64_t m, int64_t n, double *a, double *s, double *vt_rows,
                           double *u_rowmajor, double *work, lapack_int lwork, lapack_int *iwork)
{
    const lapack_int kk = (lapack_int)HG_MIN(m, n);
    return LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'S', (lapack_int)n, (lapack_int)m, a, (lapack_int)n,
                               s, vt_rows, (lapack_int)n, u_rowmajor, kk, work, lwork, iwork);
}

/* Optimal dgesdd workspace (doubles) for an m x n thin SVD (query only; no array is read);
 * -1 on failure. */
static int64_t svd_lwork(int64_t m, int64_t n)
{
    double q = 0.0, dummy = 0.0;
    lapack_int idummy = 0;
    lapack_int info = svd_thin(m, n, &dummy, &dummy, &dummy, &dummy, &q, -1, &idummy);
    if (info != 0 || !(q >= 1.0) || q > (double)INT_MAX)
        return -1;
    return (int64_t)q;
}

/* CPU workspace: a (m n), s (k), vt (k n), u (m k), iwork (8k lapack_int, as doubles), work. */
int64_t hg_cpu_svd_workspace_bytes(const hg_kctx *k, int64_t m, int64_t n)
{
    (void)k;
    const int64_t kk = HG_MIN(m, n), lwork = svd_lwork(m, n);
    if (lwork < 0)
        return -1;
    const int64_t idoubles = (8 * kk * (int64_t)sizeof(lapack_int) + 7) / 8;
    return (m * n + kk + kk * n + m * kk + idoubles + lwork) * (int64_t)sizeof(double);
}

int hg_cpu_svd(const hg_kctx *k, const float *W, float *Ut, float *sigma, float *Vt, int64_t m,
             int64_t n, void *ws)
{
    (void)k;
    const int64_t kk = HG_MIN(m, n), lwork = svd_lwork(m, n);
    if (lwork < 0)
        return HG_ERRORF(HG_ELAPACK, "dgesdd workspace query for %lld x %lld failed",
                         (long long)m, (long long)n);
    double *a = ws, *s = a + m * n, *vrows = s + kk, *u = vrows + kk * n, *rest = u + m * kk;
    lapack_int *iwork = (lapack_int *)rest;
    double *work = rest + (8 * kk * (int64_t)sizeof(lapack_int) + 7) / 8;
    for (int64_t i = 0; i < m * n; i++)
        a[i] = W[i];
    lapack_int info = svd_thin(m, n, a, s, vrows, u, work, (lapack_int)lwork, iwork);
    if (info != 0)
        return HG_ERRORF(HG_ELAPACK, "dgesdd of a %lld x %lld matrix failed (info %d)",
                         (long long)m, (long long)n, (int)info);
    for (int64_t i = 0; i < kk; i++) {
        sigma[i] = (float)s[i];
        for (int64_t a_ = 0; a_ < m; a_++)
            Ut[i * m + a_] = (float)u[a_ * kk + i];
        for (int64_t b = 0; b < n; b++)
            Vt[i * n + b] = (float)vrows[i * n + b];
    }
    return HG_OK;
}

/* ---------------------------------------------------------------- decoder losses */

double hg_cpu_class_margin_loss(const hg_kctx *k, float *dl, const float *logits,
                              const int64_t *idx, int64_t nidx, const int32_t *labels, int64_t C,
                              float margin, float w)
{
    (void)k;
    /* Branch-free: the active hinges are data-dependent coin flips. Class y's own term is
       relu(margin), active whenever margin > 0, with zero net gradient. */
    double loss = 0.0;
    for (int64_t a = 0; a < nidx; a++) {
        const float *li = logits + idx[a] * C;
        const int32_t y = labels[idx[a]];
        float nactive = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            double t = (double)margin - li[y] + li[c];
            int active = t > 0.0;
            loss += active ? t : 0.0;
            nactive += (float)active;
            if (dl)
                dl[a * C + c] = active ? w : 0.0f;
        }
        if (dl)
            dl[a * C + y] -= nactive * w;
    }
    return loss;
}

void hg_cpu_argmax_rows(const hg_kctx *k, int32_t *pred, const float *logits, const int64_t *idx,
                      int64_t nidx, int64_t C)
{
    (void)k;
    for (int64_t a = 0; a < nidx; a++) {
        const float *li = logits + idx[a] * C;
        int32_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (li[c] > li[best])
                best = (int32_t)c;
        pred[a] = best;
    }
}
