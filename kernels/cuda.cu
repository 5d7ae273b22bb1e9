/* cuda.cu - CUDA backend: device memory, scratch, deterministic reductions and the element-wise
 * kernels (the twins of kernels/core.c), and the backend's table. Context creation and the
 * library calls are in cuda_lib.cu; the Lorentz kernels in cuda_lorentz.cu; the Transformer's
 * in cuda_nn.cu. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cuda_common.h"

#ifdef HG_CUDA_EMULATE
dim3 hg_emu_thread_idx, hg_emu_block_idx, hg_emu_block_dim, hg_emu_grid_dim;
int64_t hg_emu_device_allocs;
#endif

/* ---------------------------------------------------------------- errors and memory */

int hg_cu_fail(const hg_kctx *k, const char *fmt, ...)
{
    hg_cu_state *st = hg_cu_st(k);
    if (!st->error) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
        st->error = 1;
    }
    hg_error_set(HG_ECUDA, "%s", st->msg);
    return -1;
}

int hg_cu_check(const hg_kctx *k, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 0;
    return hg_cu_fail(k, "CUDA: %s: %s", what, cudaGetErrorString(e));
}

void *hg_cu_alloc(const hg_kctx *k, size_t bytes, const char *what)
{
    hg_cu_state *st = hg_cu_st(k);
    size_t b = bytes > 0 ? bytes : 1;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, b);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* not sticky: the caller reports it */
        hg_error_set(HG_ENOMEM, "out of GPU memory allocating %zu bytes for %s (%s)", b, what,
                     cudaGetErrorString(e));
        return NULL;
    }
    st->nallocs++;
    hg_cu_check(k, cudaMemsetAsync(p, 0, b, st->stream), "zeroing a new allocation");
    return p;
}

void hg_cu_free(const hg_kctx *k, void *p)
{
    if (!p)
        return;
    hg_cu_forget_matrix(k, p); /* cuda_lib.cu's cached sparse descriptors that name p */
    hg_cu_check(k, cudaFree(p), "cudaFree");
}

void hg_cu_memcpy(const hg_kctx *k, void *dst, const void *src, size_t bytes, hg_cu_copy_kind kind)
{
    if (!bytes)
        return;
    hg_cu_state *st = hg_cu_st(k);
    const cudaMemcpyKind kinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                    cudaMemcpyDeviceToDevice};
    hg_cu_check(k, cudaMemcpyAsync(dst, src, bytes, kinds[kind], st->stream), "cudaMemcpyAsync");
    if (kind == HG_CU_D2H) /* the caller reads dst next */
        hg_cu_check(k, cudaStreamSynchronize(st->stream), "cudaStreamSynchronize");
}

void hg_cu_zero(const hg_kctx *k, void *p, size_t bytes)
{
    if (bytes)
        hg_cu_check(k, cudaMemsetAsync(p, 0, bytes, hg_cu_st(k)->stream), "cudaMemsetAsync");
}

int hg_cu_sync(const hg_kctx *k)
{
    hg_cu_state *st = hg_cu_st(k);
    hg_cu_check(k, cudaStreamSynchronize(st->stream), "cudaStreamSynchronize");
    if (st->error)
        return hg_error_set(HG_ECUDA, "%s", st->msg);
    return HG_OK;
}

void hg_cu_upload(const hg_kctx *k, void *dst, const void *src, size_t bytes)
{
    hg_cu_memcpy(k, dst, src, bytes, HG_CU_H2D);
}

void hg_cu_download(const hg_kctx *k, void *dst, const void *src, size_t bytes)
{
    hg_cu_memcpy(k, dst, src, bytes, HG_CU_D2H);
}

void hg_cu_copy(const hg_kctx *k, void *dst, const void *src, size_t bytes)
{
    hg_cu_memcpy(k, dst, src, bytes, HG_CU_D2D);
}

int64_t hg_cu_num_allocs(const hg_kctx *k) { return hg_cu_st(k)->nallocs; }

void *hg_cu_scratch(const hg_kctx *k, size_t bytes)
{
    hg_cu_state *st = hg_cu_st(k);
    if (bytes <= st->scratch_bytes)
        return st->scratch;
    /* grow to the next MiB; cudaFree waits for the work still using the old block */
    size_t b = (bytes + (1u << 20) - 1) / (1u << 20) * (1u << 20);
    if (st->scratch)
        hg_cu_check(k, cudaFree(st->scratch), "cudaFree (scratch)");
    st->scratch = NULL;
    st->scratch_bytes = 0;
    void *p = NULL;
    if (hg_cu_check(k, cudaMalloc(&p, b), "cudaMalloc (scratch)"))
        return NULL;
    st->nallocs++;
    st->scratch = p;
    st->scratch_bytes = b;
    return p;
}

double hg_cu_fetch_double(const hg_kctx *k, const double *src)
{
    hg_cu_state *st = hg_cu_st(k);
    hg_cu_memcpy(k, st->host, src, sizeof(double), HG_CU_D2H);
    return st->error ? NAN : st->host[0];
}

/* ---------------------------------------------------------------- deterministic reductions */

/* Row sums run in two passes: nch interleaved chunks (chunk c takes rows c, c + nch, ...; one
 * thread per chunk and column, so a warp reads whole rows), then one thread per column adds the
 * chunks in order. nch depends only on n: the bits depend only on the inputs. */
static int64_t sum_rows_chunks(int64_t n)
{
    int64_t c = (n + 63) / 64;
    return c < 1 ? 1 : c > 1024 ? 1024 : c;
}

int64_t hg_cu_sum_rows_tmp(int64_t n, int64_t d) { return sum_rows_chunks(n) * d; }

template <class T>
__global__ void sum_rows_pass1(double *tmp, const T *X, int64_t n, int64_t d, int64_t ld,
                               int64_t nch)
{
    for (int64_t t = HG_CU_TID; t < nch * d; t += HG_CU_STRIDE) {
        const int64_t c = t / d, j = t % d;
        double s = 0.0;
        for (int64_t i = c; i < n; i += nch)
            s += (double)X[i * ld + j];
        tmp[t] = s;
    }
}

__global__ void sum_rows_pass2(double *out, const double *tmp, int64_t d, int64_t nch)
{
    for (int64_t j = HG_CU_TID; j < d; j += HG_CU_STRIDE) {
        double s = 0.0;
        for (int64_t c = 0; c < nch; c++)
            s += tmp[c * d + j];
        out[j] = s;
    }
}

template <class T>
static void sum_rows(const hg_kctx *k, double *out, const T *X, int64_t n, int64_t d, int64_t ld,
                     double *tmp)
{
    if (d <= 0)
        return;
    const int64_t nch = sum_rows_chunks(n);
    HG_LAUNCH(sum_rows_pass1<T>, hg_cu_blocks(nch * d), HG_CU_BLOCK, k)(tmp, X, n, d, ld, nch);
    HG_LAUNCH(sum_rows_pass2, hg_cu_blocks(d), HG_CU_BLOCK, k)(out, tmp, d, nch);
    HG_CU_LAUNCHED(k, "sum_rows");
}

void hg_cu_sum_rows(const hg_kctx *k, double *out, const float *X, int64_t n, int64_t d,
                    int64_t ld, double *tmp)
{
    sum_rows<float>(k, out, X, n, d, ld, tmp);
}

void hg_cu_sum_rows_d(const hg_kctx *k, double *out, const double *X, int64_t n, int64_t d,
                      int64_t ld, double *tmp)
{
    sum_rows<double>(k, out, X, n, d, ld, tmp);
}

__global__ void add_d2f_kernel(float *dst, const double *src, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        dst[i] += (float)src[i];
}

void hg_cu_add_d2f(const hg_kctx *k, float *dst, const double *src, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(add_d2f_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(dst, src, n);
    HG_CU_LAUNCHED(k, "add_d2f");
}

/* Squares (or non-finite flags) of x into tmp (n doubles), then their sum. */
__global__ void square_kernel(double *out, const float *x, int64_t n, int finite_flags)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        out[i] = finite_flags ? (isfinite(x[i]) ? 0.0 : 1.0) : (double)x[i] * x[i];
}

/* sum over x of x^2 (or of the non-finite flags) into *res (device); scratch carved here. */
static double *sum_squares(const hg_kctx *k, const float *x, int64_t n, int finite_flags)
{
    const int64_t tmpn = hg_cu_sum_rows_tmp(n, 1);
    double *res = (double *)hg_cu_scratch(k, (size_t)(1 + n + tmpn) * sizeof(double));
    if (!res)
        return NULL;
    double *sq = res + 1, *tmp = sq + n;
    HG_LAUNCH(square_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(sq, x, n, finite_flags);
    hg_cu_sum_rows_d(k, res, sq, n, 1, 1, tmp);
    return res;
}

double hg_cu_sqnorm(const hg_kctx *k, const float *x, int64_t n)
{
    if (n <= 0)
        return 0.0;
    double *res = sum_squares(k, x, n, 0);
    return res ? hg_cu_fetch_double(k, res) : NAN;
}

int hg_cu_all_finite(const hg_kctx *k, const float *x, int64_t n)
{
    if (n <= 0)
        return 1;
    double *res = sum_squares(k, x, n, 1);
    return res ? hg_cu_fetch_double(k, res) == 0.0 : 0;
}

/* ---------------------------------------------------------------- element-wise kernels */

__global__ void dropout_kernel(float *out, const float *in, int64_t n, float p, uint64_t seed,
                               uint64_t offset)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        out[i] = in[i] * hg_cu_dropout_scale((int64_t)(offset + (uint64_t)i), p, seed);
}

void hg_cu_dropout(const hg_kctx *k, float *out, const float *in, int64_t n, float p, uint64_t seed,
                   uint64_t offset)
{
    if (n <= 0)
        return;
    if (p <= 0.0f) {
        if (out != in)
            hg_cu_memcpy(k, out, in, (size_t)n * sizeof(float), HG_CU_D2D);
        return;
    }
    HG_LAUNCH(dropout_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(out, in, n, p, seed, offset);
    HG_CU_LAUNCHED(k, "dropout");
}

__global__ void adam_kernel(float *p, const float *g, float *m, float *v, int64_t n, float beta1,
                            float beta2, float eps, float l2_wd, float step, float rbc2,
                            float decay)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE) {
        float gi = g[i] + l2_wd * p[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) * rbc2 + eps);
    }
}

void hg_cu_adam_step(const hg_kctx *k, float *p, const float *g, float *m, float *v, int64_t n,
                     float lr, float beta1, float beta2, float eps, float decoupled_wd,
                     float l2_wd, int64_t t)
{
    if (n <= 0)
        return;
    /* the bias corrections as the CPU computes them (host double, then float) */
    const double bc1 = 1.0 - pow((double)beta1, (double)t);
    const double bc2 = 1.0 - pow((double)beta2, (double)t);
    const float step = (float)((double)lr / bc1);
    const float rbc2 = (float)(1.0 / sqrt(bc2));
    const float decay = 1.0f - lr * decoupled_wd;
    HG_LAUNCH(adam_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(p, g, m, v, n, beta1, beta2, eps, l2_wd,
                                                           step, rbc2, decay);
    HG_CU_LAUNCHED(k, "adam_step");
}

__global__ void scale_kernel(float *x, float a, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        x[i] *= a;
}

void hg_cu_scale(const hg_kctx *k, float *x, float a, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(scale_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(x, a, n);
    HG_CU_LAUNCHED(k, "scale");
}

template <class T>
__global__ void transpose_kernel(float *dst, const T *src, int64_t rows, int64_t cols)
{
    for (int64_t e = HG_CU_TID; e < rows * cols; e += HG_CU_STRIDE) {
        const int64_t i = e / cols, j = e % cols;
        dst[j * rows + i] = (float)src[e];
    }
}

void hg_cu_transpose(const hg_kctx *k, float *dst, const float *src, int64_t rows, int64_t cols)
{
    if (rows * cols <= 0)
        return;
    HG_LAUNCH(transpose_kernel<float>, hg_cu_blocks(rows * cols), HG_CU_BLOCK, k)(dst, src, rows,
                                                                                  cols);
    HG_CU_LAUNCHED(k, "transpose");
}

void hg_cu_transpose_d2f(const hg_kctx *k, float *dst, const double *src, int64_t rows,
                         int64_t cols)
{
    if (rows * cols <= 0)
        return;
    HG_LAUNCH(transpose_kernel<double>, hg_cu_blocks(rows * cols), HG_CU_BLOCK, k)(dst, src, rows,
                                                                                   cols);
    HG_CU_LAUNCHED(k, "transpose_d2f");
}

__global__ void gather_kernel(float *dst, const float *src, const int64_t *idx, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        dst[i] = src[idx[i]];
}

void hg_cu_gather(const hg_kctx *k, float *dst, const float *src, const int64_t *idx, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(gather_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(dst, src, idx, n);
    HG_CU_LAUNCHED(k, "gather");
}

__global__ void axpy_kernel(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        y[i] += a * x[i];
}

void hg_cu_axpy(const hg_kctx *k, float *y, float a, const float *x, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(axpy_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(y, a, x, n);
    HG_CU_LAUNCHED(k, "axpy");
}

__global__ void scale_rows_kernel(float *dst, const float *s, const float *src, int64_t rows,
                                  int64_t cols)
{
    for (int64_t e = HG_CU_TID; e < rows * cols; e += HG_CU_STRIDE)
        dst[e] = s[e / cols] * src[e];
}

void hg_cu_scale_rows(const hg_kctx *k, float *dst, const float *s, const float *src,
                      int64_t rows, int64_t cols)
{
    if (rows * cols <= 0)
        return;
    HG_LAUNCH(scale_rows_kernel, hg_cu_blocks(rows * cols), HG_CU_BLOCK, k)(dst, s, src, rows, cols);
    HG_CU_LAUNCHED(k, "scale_rows");
}

/* One thread per row: the rows are few (singular triplets) and the sum runs in the CPU's order. */
__global__ void row_dots_kernel(float *out, const float *A, const float *B, int64_t rows,
                                int64_t cols)
{
    for (int64_t i = HG_CU_TID; i < rows; i += HG_CU_STRIDE) {
        double d = 0.0;
        for (int64_t j = 0; j < cols; j++)
            d += (double)A[i * cols + j] * B[i * cols + j];
        out[i] += (float)d;
    }
}

void hg_cu_row_dots(const hg_kctx *k, float *out, const float *A, const float *B, int64_t rows,
                    int64_t cols)
{
    if (rows <= 0)
        return;
    HG_LAUNCH(row_dots_kernel, hg_cu_blocks(rows), HG_CU_BLOCK, k)(out, A, B, rows, cols);
    HG_CU_LAUNCHED(k, "row_dots");
}

__global__ void clamp_min_kernel(float *x, float lo, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        if (x[i] < lo)
            x[i] = lo;
}

void hg_cu_clamp_min(const hg_kctx *k, float *x, float lo, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(clamp_min_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(x, lo, n);
    HG_CU_LAUNCHED(k, "clamp_min");
}

/* x /= |x| with |x|^2 read from device memory: no round trip to the host. */
__global__ void normalize_kernel(float *x, int64_t n, const double *sq, double min_norm)
{
    const double s = sqrt(*sq);
    if (!(s > min_norm))
        return;
    const float inv = (float)(1.0 / s);
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        x[i] *= inv;
}

void hg_cu_normalize(const hg_kctx *k, float *x, int64_t n, double min_norm)
{
    if (n <= 0)
        return;
    double *res = sum_squares(k, x, n, 0);
    if (!res)
        return;
    HG_LAUNCH(normalize_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(x, n, res, min_norm);
    HG_CU_LAUNCHED(k, "normalize");
}

/* ---------------------------------------------------------------- decoder loss and predictions */

/* One thread per loss row a: its hinge sum into rowloss[a], its gradient row into dl. */
__global__ void class_margin_kernel(double *rowloss, float *dl, const float *logits,
                                    const int64_t *idx, int64_t nidx, const int32_t *labels,
                                    int64_t C, float margin, float w)
{
    for (int64_t a = HG_CU_TID; a < nidx; a += HG_CU_STRIDE) {
        const float *li = logits + idx[a] * C;
        const int32_t y = labels[idx[a]];
        float nactive = 0.0f;
        double loss = 0.0;
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
        rowloss[a] = loss;
    }
}

double hg_cu_class_margin_loss(const hg_kctx *k, float *dl, const float *logits,
                               const int64_t *idx, int64_t nidx, const int32_t *labels,
                               int64_t C, float margin, float w)
{
    if (nidx <= 0)
        return 0.0;
    const int64_t tmpn = hg_cu_sum_rows_tmp(nidx, 1);
    double *res = (double *)hg_cu_scratch(k, (size_t)(1 + nidx + tmpn) * sizeof(double));
    if (!res)
        return NAN;
    double *rowloss = res + 1, *tmp = rowloss + nidx;
    HG_LAUNCH(class_margin_kernel, hg_cu_blocks(nidx), HG_CU_BLOCK, k)(rowloss, dl, logits, idx,
                                                                       nidx, labels, C, margin, w);
    HG_CU_LAUNCHED(k, "class_margin_loss");
    hg_cu_sum_rows_d(k, res, rowloss, nidx, 1, 1, tmp);
    return hg_cu_fetch_double(k, res);
}

__global__ void argmax_kernel(int32_t *pred, const float *logits, const int64_t *idx, int64_t nidx,
                              int64_t C)
{
    for (int64_t a = HG_CU_TID; a < nidx; a += HG_CU_STRIDE) {
        const float *li = logits + idx[a] * C;
        int32_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (li[c] > li[best])
                best = (int32_t)c;
        pred[a] = best;
    }
}

void hg_cu_argmax_rows(const hg_kctx *k, int32_t *pred, const float *logits, const int64_t *idx,
                       int64_t nidx, int64_t C)
{
    if (nidx <= 0)
        return;
    HG_LAUNCH(argmax_kernel, hg_cu_blocks(nidx), HG_CU_BLOCK, k)(pred, logits, idx, nidx, C);
    HG_CU_LAUNCHED(k, "argmax_rows");
}

/* ---------------------------------------------------------------- the table */

static const hg_kbackend cuda_backend = {
    HG_KBACKEND_ABI,
    sizeof(hg_kbackend),
    hg_cu_available,
    hg_cu_init,
    hg_cu_destroy,
    hg_cu_num_allocs,
#define HG_KOP(name, params, args) hg_cu_##name,
#define HG_KOPR(type, name, params, args) hg_cu_##name,
#include "ops_core.def"
#include "ops_sparse.def"
#include "ops_lorentz.def"
#include "ops_nn.def"
#undef HG_KOP
#undef HG_KOPR
};

const hg_kbackend *hg_kbackend_cuda(void) { return &cuda_backend; }
