/* cuda_nn.cu - the CUDA twins of the neural-network ops of kernels/nn.c (contracts:
 * ops_nn.def). Element-wise ops (and the embedding and head copies) are grid-stride loops; the row ops (softmax, layer norm,
 * cross-entropy) run one block per row (rows strided over the grid), the block's threads
 * striding over the row's columns and combining their partial results by tree reductions in
 * shared memory (fixed shape: the same bits on every run). Sums over the rows (bias, gamma and
 * beta gradients, the loss) are hg_cu_sum_rows's two-pass deterministic reductions. The
 * embedding gradient has no atomics: each thread owns a column of the ids of one residue class
 * and walks the rows in order (the CPU's sequence of operations, bit for bit).
 *
 * Scratch: each entry point asks hg_cu_scratch once and carves it (cuda_common.h). */
#include <math.h>

#include "cuda_common.h"

/* Threads of the row kernels' blocks (a power of two), and the most blocks of their grids. */
#define NN_BLOCK 256
#define NN_MAX_GRID 65535

static unsigned nn_grid(int64_t rows)
{
    return rows < 1 ? 1u : rows > NN_MAX_GRID ? (unsigned)NN_MAX_GRID : (unsigned)rows;
}

/* The block's sum of v (one value per thread), by a fixed tree over the threads; every thread
 * gets it. sh: blockDim.x doubles of shared memory. */
__device__ double nn_block_sum(double v, double *sh)
{
    const unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s)
            sh[t] += sh[t + s];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}

/* The block's maximum of v, the same way; sh: blockDim.x floats of shared memory. */
__device__ float nn_block_max(float v, float *sh)
{
    const unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s)
            sh[t] = fmaxf(sh[t], sh[t + s]);
        __syncthreads();
    }
    const float r = sh[0];
    __syncthreads();
    return r;
}

/* Every row kernel: the block's rows, and its threads' columns of a row. */
#define NN_ROWS(r, rows) for (int64_t r = blockIdx.x; r < (rows); r += gridDim.x)
#define NN_COLS(j, a, b) for (int64_t j = (a) + threadIdx.x; j < (b); j += blockDim.x)
/* Launch a row kernel over rows, with the dynamic shared memory of nn_block_sum. */
#define NN_LAUNCH(kern, rows, k) \
    HG_LAUNCH_BLOCK(kern, nn_grid(rows), NN_BLOCK, NN_BLOCK * sizeof(double), k)

/* ---------------------------------------------------------------- activations, bias */

__global__ void relu_fwd_kernel(float *y, const float *x, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void relu_bwd_kernel(float *dx, const float *dy, const float *x, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void hg_cu_relu_forward(const hg_kctx *k, float *y, const float *x, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(relu_fwd_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(y, x, n);
    HG_CU_LAUNCHED(k, "relu_forward");
}

void hg_cu_relu_backward(const hg_kctx *k, float *dx, const float *dy, const float *x, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(relu_bwd_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(dx, dy, x, n);
    HG_CU_LAUNCHED(k, "relu_backward");
}

__global__ void gelu_fwd_kernel(float *y, const float *x, int64_t n)
{
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

__global__ void gelu_bwd_kernel(float *dx, const float *dy, const float *x, int64_t n)
{
    const float c = (float)(0.5 * M_2_SQRTPI * M_SQRT1_2); /* 1 / sqrt(2 pi) */
    for (int64_t i = HG_CU_TID; i < n; i += HG_CU_STRIDE) {
        const float v = x[i];
        const float cdf = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2));
        dx[i] = dy[i] * (cdf + v * c * expf(-0.5f * v * v));
    }
}

void hg_cu_gelu_forward(const hg_kctx *k, float *y, const float *x, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(gelu_fwd_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(y, x, n);
    HG_CU_LAUNCHED(k, "gelu_forward");
}

void hg_cu_gelu_backward(const hg_kctx *k, float *dx, const float *dy, const float *x, int64_t n)
{
    if (n <= 0)
        return;
    HG_LAUNCH(gelu_bwd_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(dx, dy, x, n);
    HG_CU_LAUNCHED(k, "gelu_backward");
}

__global__ void add_bias_kernel(float *y, const float *b, int64_t rows, int64_t cols)
{
    for (int64_t i = HG_CU_TID; i < rows * cols; i += HG_CU_STRIDE)
        y[i] += b[i % cols];
}

void hg_cu_add_bias_rows(const hg_kctx *k, float *y, const float *b, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0)
        return;
    HG_LAUNCH(add_bias_kernel, hg_cu_blocks(rows * cols), HG_CU_BLOCK, k)(y, b, rows, cols);
    HG_CU_LAUNCHED(k, "add_bias_rows");
}

/* out (+=) the column sums of x (rows x cols, leading dimension cols) through scratch. */
static void col_sums_into(const hg_kctx *k, float *out, const float *x, int64_t rows, int64_t cols,
                          double *sums, double *tmp)
{
    hg_cu_sum_rows(k, sums, x, rows, cols, cols, tmp);
    hg_cu_add_d2f(k, out, sums, cols);
}

void hg_cu_col_sums(const hg_kctx *k, float *out, const float *x, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0)
        return;
    double *sums = (double *)hg_cu_scratch(
        k, (size_t)(cols + hg_cu_sum_rows_tmp(rows, cols)) * sizeof(double));
    if (sums)
        col_sums_into(k, out, x, rows, cols, sums, sums + cols);
}

/* ---------------------------------------------------------------- softmax */

/* Unmasked keys of row r: a prefix (kernels/nn.c). */
__device__ int64_t nn_softmax_keys(int64_t r, int64_t cols, int64_t causal, const int32_t *key_len,
                                   int64_t rows_per_len)
{
    int64_t nk = cols;
    if (causal > 0 && r % causal + 1 < nk)
        nk = r % causal + 1;
    if (key_len && key_len[r / rows_per_len] < nk)
        nk = key_len[r / rows_per_len] < 0 ? 0 : key_len[r / rows_per_len];
    return nk;
}

__global__ void softmax_fwd_kernel(float *y, const float *x, int64_t rows, int64_t cols,
                                   float scale, int64_t causal, const int32_t *key_len,
                                   int64_t rows_per_len)
{
    HG_DYN_SHARED(double, shd);
    __shared__ float shf[NN_BLOCK];
    NN_ROWS(r, rows) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        const int64_t nk = nn_softmax_keys(r, cols, causal, key_len, rows_per_len);
        float m = -INFINITY;
        NN_COLS(j, 0, nk) m = fmaxf(m, scale * xr[j]);
        m = nn_block_max(m, shf);
        double s = 0.0;
        NN_COLS(j, 0, nk) {
            const float e = expf(scale * xr[j] - m);
            yr[j] = e;
            s += e;
        }
        s = nn_block_sum(s, shd);
        const float inv = nk > 0 ? (float)(1.0 / s) : 0.0f;
        NN_COLS(j, 0, nk) yr[j] *= inv;
        NN_COLS(j, nk, cols) yr[j] = 0.0f;
    }
}

void hg_cu_softmax_forward(const hg_kctx *k, float *y, const float *x, int64_t rows, int64_t cols,
                           float scale, int64_t causal, const int32_t *key_len,
                           int64_t rows_per_len)
{
    if (rows <= 0 || cols <= 0)
        return;
    NN_LAUNCH(softmax_fwd_kernel, rows, k)(y, x, rows, cols, scale, causal, key_len, rows_per_len);
    HG_CU_LAUNCHED(k, "softmax_forward");
}

__global__ void softmax_bwd_kernel(float *dx, const float *dy, const float *y, int64_t rows,
                                   int64_t cols, float scale)
{
    HG_DYN_SHARED(double, shd);
    NN_ROWS(r, rows) {
        const float *dyr = dy + r * cols, *yr = y + r * cols;
        float *dxr = dx + r * cols;
        double dot = 0.0;
        NN_COLS(j, 0, cols) dot += (double)dyr[j] * yr[j];
        const float fd = (float)nn_block_sum(dot, shd);
        NN_COLS(j, 0, cols) dxr[j] = scale * yr[j] * (dyr[j] - fd);
    }
}

void hg_cu_softmax_backward(const hg_kctx *k, float *dx, const float *dy, const float *y,
                            int64_t rows, int64_t cols, float scale)
{
    if (rows <= 0 || cols <= 0)
        return;
    NN_LAUNCH(softmax_bwd_kernel, rows, k)(dx, dy, y, rows, cols, scale);
    HG_CU_LAUNCHED(k, "softmax_backward");
}

/* ---------------------------------------------------------------- fused causal attention
 * One thread per query (or key) row of a tile of ATT_TILE rows, one block per (item, tile); the
 * other side's rows stream through shared memory a tile at a time. The forward keeps a running
 * maximum and sum (online softmax) in float, so no score is stored; the backward recomputes the
 * scores from lse: dK, dV by key tiles (each thread walks the later queries), dQ by query tiles
 * (each thread walks its earlier keys). Fixed loop orders, no atomics: the same bits on every
 * run. Block-uniform loop bounds, so every thread meets every barrier. */

#define ATT_TILE 32

static unsigned att_grid(int64_t items, int64_t T)
{
    return (unsigned)(items * ((T + ATT_TILE - 1) / ATT_TILE));
}

/* Rows r0 .. r0 + ATT_TILE - 1 of the item's X (T x dh) into sh (zeros past T). */
__device__ void att_load_tile(float *sh, const float *X, int64_t r0, int64_t T, int64_t dh)
{
    for (int64_t e = threadIdx.x; e < ATT_TILE * dh; e += blockDim.x)
        sh[e] = r0 + e / dh < T ? X[r0 * dh + e] : 0.0f;
}

/* Head widths compiled as constants (DH > 0: every per-row array in registers, its loops
 * unrolled); DH = 0 reads dh at run time (the arrays then live in local memory). */
#ifdef __CUDACC__
#define ATT_UNROLL _Pragma("unroll")
#else
#define ATT_UNROLL
#endif
#define ATT_LEN(DH) ((DH) > 0 ? (DH) : HG_ATTN_MAX_DH)

template <int DH> __device__ float att_dot(const float *a, const float *b, int64_t dh)
{
    float s = 0.0f;
    ATT_UNROLL
    for (int64_t c = 0; c < (DH > 0 ? DH : dh); c++)
        s = fmaf(a[c], b[c], s);
    return s;
}

/* This thread's query row in a block over (item, query tile). */
struct att_row {
    int64_t b, t0, i, r; /* item, the tile's first row, the row, its index over all items */
    int live;            /* i < T */
};

__device__ att_row att_query_row(int64_t T)
{
    const int64_t tiles = (T + ATT_TILE - 1) / ATT_TILE;
    att_row w;
    w.b = blockIdx.x / tiles;
    w.t0 = (blockIdx.x % tiles) * ATT_TILE;
    w.i = w.t0 + threadIdx.x;
    w.r = w.b * T + w.i;
    w.live = w.i < T;
    return w;
}

/* The key tiles a query tile sees, through Ks and Vs (ATT_TILE x dh each): f(j, k_j, v_j) for
 * each key j <= i of the thread's row, in order. Every thread meets the same barriers. */
template <class F>
__device__ void att_keys(float *Ks, float *Vs, const float *Kb, const float *Vb, int64_t T,
                         int64_t dh, const att_row &w, F f)
{
    for (int64_t j0 = 0; j0 < T && j0 < w.t0 + ATT_TILE; j0 += ATT_TILE) {
        __syncthreads();
        att_load_tile(Ks, Kb, j0, T, dh);
        att_load_tile(Vs, Vb, j0, T, dh);
        __syncthreads();
        for (int64_t jj = 0; w.live && jj < ATT_TILE && j0 + jj <= w.i; jj++)
            f(j0 + jj, Ks + jj * dh, Vs + jj * dh);
    }
}

template <int DH>
__global__ void attn_fwd_kernel(float *O, float *lse, const float *Q, const float *K,
                                const float *V, int64_t T, int64_t dh_rt, float scale, float p,
                                uint64_t seed)
{
    const int64_t dh = DH > 0 ? DH : dh_rt;
    HG_DYN_SHARED(float, sh);
    const att_row w = att_query_row(T);
    const int64_t r = w.r;
    float q[ATT_LEN(DH)], o[ATT_LEN(DH)], m = -INFINITY, l = 0.0f;
    ATT_UNROLL
    for (int64_t c = 0; c < dh; c++) {
        q[c] = w.live ? Q[r * dh + c] : 0.0f;
        o[c] = 0.0f;
    }
    att_keys(sh, sh + ATT_TILE * dh, K + w.b * T * dh, V + w.b * T * dh, T, dh, w,
             [&](int64_t j, const float *kj, const float *vj) {
                 const float s = scale * att_dot<DH>(q, kj, dh);
                 if (s > m) { /* a new maximum: rescale what was summed */
                     const float corr = expf(m - s);
                     l *= corr;
                     ATT_UNROLL
                     for (int64_t c = 0; c < dh; c++)
                         o[c] *= corr;
                     m = s;
                 }
                 const float e = expf(s - m);
                 l += e;
                 const float pw = e * hg_cu_dropout_scale(r * T + j, p, seed);
                 if (pw != 0.0f) {
                     ATT_UNROLL
                     for (int64_t c = 0; c < dh; c++)
                         o[c] = fmaf(pw, vj[c], o[c]);
                 }
             });
    if (w.live) {
        ATT_UNROLL
        for (int64_t c = 0; c < dh; c++)
            O[r * dh + c] = o[c] / l;
        lse[r] = m + logf(l);
    }
}

template <int DH>
static void att_forward(const hg_kctx *k, float *O, float *lse, const float *Q, const float *K,
                        const float *V, int64_t items, int64_t T, int64_t dh, float scale, float p,
                        uint64_t seed)
{
    HG_LAUNCH_BLOCK(attn_fwd_kernel<DH>, att_grid(items, T), ATT_TILE,
                    2 * ATT_TILE * dh * sizeof(float), k)(O, lse, Q, K, V, T, dh, scale, p, seed);
}

/* fn<DH>(args) for the head widths compiled as constants (16, 32, 64), else fn<0>. */
#define ATT_BY_WIDTH(dh, fn, ...)                                                               \
    switch (dh) {                                                                              \
    case 16: fn<16>(__VA_ARGS__); break;                                                       \
    case 32: fn<32>(__VA_ARGS__); break;                                                       \
    case 64: fn<64>(__VA_ARGS__); break;                                                       \
    default: fn<0>(__VA_ARGS__); break;                                                        \
    }

void hg_cu_attn_causal_forward(const hg_kctx *k, float *O, float *lse, const float *Q,
                               const float *K, const float *V, int64_t items, int64_t T,
                               int64_t dh, float scale, float p, uint64_t seed)
{
    if (items <= 0 || T <= 0 || dh <= 0 || dh > HG_ATTN_MAX_DH)
        return;
    ATT_BY_WIDTH(dh, att_forward, k, O, lse, Q, K, V, items, T, dh, scale, p, seed);
    HG_CU_LAUNCHED(k, "attn_causal_forward");
}

/* dK, dV: thread = key row j of the block's tile; the query tiles from the key tile on. */
template <int DH>
__global__ void attn_bwd_kv_kernel(float *dK, float *dV, const float *dO, const float *Q,
                                   const float *K, const float *V, const float *O,
                                   const float *lse, int64_t T, int64_t dh_rt, float scale, float p,
                                   uint64_t seed)
{
    const int64_t dh = DH > 0 ? DH : dh_rt;
    HG_DYN_SHARED(float, sh);
    float *Qs = sh, *Gs = sh + ATT_TILE * dh, *Ls = Gs + ATT_TILE * dh, *Ds = Ls + ATT_TILE;
    const int64_t tiles = (T + ATT_TILE - 1) / ATT_TILE, b = blockIdx.x / tiles;
    const int64_t j0 = (blockIdx.x % tiles) * ATT_TILE, j = j0 + threadIdx.x;
    const int live = j < T;
    const int64_t o0 = b * T * dh;
    float kj[ATT_LEN(DH)], vj[ATT_LEN(DH)], dk[ATT_LEN(DH)], dv[ATT_LEN(DH)];
    ATT_UNROLL
    for (int64_t c = 0; c < dh; c++) {
        kj[c] = live ? K[o0 + j * dh + c] : 0.0f;
        vj[c] = live ? V[o0 + j * dh + c] : 0.0f;
        dk[c] = dv[c] = 0.0f;
    }
    for (int64_t i0 = j0; i0 < T; i0 += ATT_TILE) {
        __syncthreads();
        att_load_tile(Qs, Q + o0, i0, T, dh);
        att_load_tile(Gs, dO + o0, i0, T, dh);
        const int64_t it = i0 + threadIdx.x; /* this thread's query row of the tile */
        Ls[threadIdx.x] = it < T ? lse[b * T + it] : 0.0f;
        Ds[threadIdx.x] = it < T ? att_dot<DH>(dO + o0 + it * dh, O + o0 + it * dh, dh) : 0.0f;
        __syncthreads();
        for (int64_t ii = 0; live && ii < ATT_TILE && i0 + ii < T; ii++) {
            const int64_t i = i0 + ii;
            if (i < j)
                continue;
            const float *qi = Qs + ii * dh, *gi = Gs + ii * dh;
            const float P = expf(scale * att_dot<DH>(qi, kj, dh) - Ls[ii]);
            const float M = hg_cu_dropout_scale((b * T + i) * T + j, p, seed);
            const float dS = P * (M * att_dot<DH>(gi, vj, dh) - Ds[ii]), PM = P * M;
            ATT_UNROLL
            for (int64_t c = 0; c < dh; c++) {
                dv[c] = fmaf(PM, gi[c], dv[c]);
                dk[c] = fmaf(dS, qi[c], dk[c]);
            }
        }
    }
    if (live) {
        ATT_UNROLL
        for (int64_t c = 0; c < dh; c++) {
            dK[o0 + j * dh + c] = scale * dk[c];
            dV[o0 + j * dh + c] = dv[c];
        }
    }
}

/* dQ: thread = query row i of the block's tile; its keys' tiles. */
template <int DH>
__global__ void attn_bwd_q_kernel(float *dQ, const float *dO, const float *Q, const float *K,
                                  const float *V, const float *O, const float *lse, int64_t T,
                                  int64_t dh_rt, float scale, float p, uint64_t seed)
{
    const int64_t dh = DH > 0 ? DH : dh_rt;
    HG_DYN_SHARED(float, sh);
    const att_row w = att_query_row(T);
    const int64_t r = w.r;
    float q[ATT_LEN(DH)], g[ATT_LEN(DH)], dq[ATT_LEN(DH)];
    ATT_UNROLL
    for (int64_t c = 0; c < dh; c++) {
        q[c] = w.live ? Q[r * dh + c] : 0.0f;
        g[c] = w.live ? dO[r * dh + c] : 0.0f;
        dq[c] = 0.0f;
    }
    const float D = w.live ? att_dot<DH>(g, O + r * dh, dh) : 0.0f, L = w.live ? lse[r] : 0.0f;
    att_keys(sh, sh + ATT_TILE * dh, K + w.b * T * dh, V + w.b * T * dh, T, dh, w,
             [&](int64_t j, const float *kj, const float *vj) {
                 const float P = expf(scale * att_dot<DH>(q, kj, dh) - L);
                 const float M = hg_cu_dropout_scale(r * T + j, p, seed);
                 const float dS = P * (M * att_dot<DH>(g, vj, dh) - D);
                 ATT_UNROLL
                 for (int64_t c = 0; c < dh; c++)
                     dq[c] = fmaf(dS, kj[c], dq[c]);
             });
    if (w.live) {
        ATT_UNROLL
        for (int64_t c = 0; c < dh; c++)
            dQ[r * dh + c] = scale * dq[c];
    }
}

template <int DH>
static void att_backward(const hg_kctx *k, float *dQ, float *dK, float *dV, const float *dO,
                         const float *Q, const float *K, const float *V, const float *O,
                         const float *lse, int64_t items, int64_t T, int64_t dh, float scale,
                         float p, uint64_t seed)
{
    const unsigned grid = att_grid(items, T);
    HG_LAUNCH_BLOCK(attn_bwd_kv_kernel<DH>, grid, ATT_TILE,
                    (2 * ATT_TILE * dh + 2 * ATT_TILE) * sizeof(float), k)(
        dK, dV, dO, Q, K, V, O, lse, T, dh, scale, p, seed);
    HG_LAUNCH_BLOCK(attn_bwd_q_kernel<DH>, grid, ATT_TILE, 2 * ATT_TILE * dh * sizeof(float), k)(
        dQ, dO, Q, K, V, O, lse, T, dh, scale, p, seed);
}

void hg_cu_attn_causal_backward(const hg_kctx *k, float *dQ, float *dK, float *dV,
                                const float *dO, const float *Q, const float *K, const float *V,
                                const float *O, const float *lse, int64_t items, int64_t T,
                                int64_t dh, float scale, float p, uint64_t seed)
{
    if (items <= 0 || T <= 0 || dh <= 0 || dh > HG_ATTN_MAX_DH)
        return;
    ATT_BY_WIDTH(dh, att_backward, k, dQ, dK, dV, dO, Q, K, V, O, lse, items, T, dh, scale, p,
                 seed);
    HG_CU_LAUNCHED(k, "attn_causal_backward");
}

/* ---------------------------------------------------------------- layer norm */

__global__ void layernorm_fwd_kernel(float *y, float *mean, float *rstd, const float *x,
                                     const float *gamma, const float *beta, int64_t rows,
                                     int64_t cols, float eps)
{
    HG_DYN_SHARED(double, shd);
    NN_ROWS(r, rows) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double s = 0.0;
        NN_COLS(j, 0, cols) s += xr[j];
        const double mu = nn_block_sum(s, shd) / (double)cols;
        double v = 0.0;
        NN_COLS(j, 0, cols) v += ((double)xr[j] - mu) * ((double)xr[j] - mu);
        v = nn_block_sum(v, shd);
        const float m = (float)mu, rs = (float)(1.0 / sqrt(v / (double)cols + (double)eps));
        if (threadIdx.x == 0) {
            mean[r] = m;
            rstd[r] = rs;
        }
        NN_COLS(j, 0, cols) {
            float t = (xr[j] - m) * rs;
            if (gamma)
                t *= gamma[j];
            if (beta)
                t += beta[j];
            yr[j] = t;
        }
    }
}

void hg_cu_layernorm_forward(const hg_kctx *k, float *y, float *mean, float *rstd, const float *x,
                             const float *gamma, const float *beta, int64_t rows, int64_t cols,
                             float eps)
{
    if (rows <= 0 || cols <= 0)
        return;
    NN_LAUNCH(layernorm_fwd_kernel, rows, k)(y, mean, rstd, x, gamma, beta, rows, cols, eps);
    HG_CU_LAUNCHED(k, "layernorm_forward");
}

/* dx of each row; prod (NULL: none) (=) dy xhat, the terms of dgamma. */
__global__ void layernorm_bwd_kernel(float *dx, float *prod, const float *dy, const float *x,
                                     const float *mean, const float *rstd, const float *gamma,
                                     int64_t rows, int64_t cols)
{
    HG_DYN_SHARED(double, shd);
    NN_ROWS(r, rows) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        const float m = mean[r], rs = rstd[r];
        double a = 0.0, b = 0.0;
        NN_COLS(j, 0, cols) {
            const float g = gamma ? dyr[j] * gamma[j] : dyr[j];
            a += g;
            b += (double)g * ((xr[j] - m) * rs);
        }
        const float fa = (float)(nn_block_sum(a, shd) / (double)cols);
        const float fb = (float)(nn_block_sum(b, shd) / (double)cols);
        NN_COLS(j, 0, cols) {
            const float g = gamma ? dyr[j] * gamma[j] : dyr[j];
            const float xhat = (xr[j] - m) * rs;
            dxr[j] = rs * (g - fa - xhat * fb);
            if (prod)
                prod[r * cols + j] = dyr[j] * xhat;
        }
    }
}

void hg_cu_layernorm_backward(const hg_kctx *k, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *x, const float *mean,
                              const float *rstd, const float *gamma, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0)
        return;
    double *sums = NULL, *tmp = NULL;
    float *prod = NULL;
    if (dgamma || dbeta) {
        const int64_t nd = cols + hg_cu_sum_rows_tmp(rows, cols);
        sums = (double *)hg_cu_scratch(
            k, (size_t)nd * sizeof(double) + (dgamma ? (size_t)(rows * cols) * sizeof(float) : 0));
        if (!sums)
            return;
        tmp = sums + cols;
        if (dgamma)
            prod = (float *)(sums + nd);
    }
    NN_LAUNCH(layernorm_bwd_kernel, rows, k)(dx, prod, dy, x, mean, rstd, gamma, rows, cols);
    HG_CU_LAUNCHED(k, "layernorm_backward");
    if (dgamma)
        col_sums_into(k, dgamma, prod, rows, cols, sums, tmp);
    if (dbeta)
        col_sums_into(k, dbeta, dy, rows, cols, sums, tmp);
}

/* ---------------------------------------------------------------- cross-entropy */

__global__ void cross_entropy_kernel(double *rowloss, float *dl, const float *logits,
                                     const int32_t *targets, int64_t rows, int64_t C,
                                     float smoothing, int32_t ignore_index, float w)
{
    HG_DYN_SHARED(double, shd);
    __shared__ float shf[NN_BLOCK];
    NN_ROWS(r, rows) {
        const float *l = logits + r * C;
        float *d = dl ? dl + r * C : NULL;
        const int32_t target = targets[r];
        if (target == ignore_index) { /* the whole block takes this branch */
            if (d)
                NN_COLS(c, 0, C) d[c] = 0.0f;
            if (threadIdx.x == 0)
                rowloss[r] = 0.0;
            continue;
        }
        const float lt = l[target]; /* read before any thread writes d (in place: d == l) */
        float m = -INFINITY;
        NN_COLS(c, 0, C) m = fmaxf(m, l[c]);
        m = nn_block_max(m, shf);
        double s = 0.0, sl = 0.0;
        NN_COLS(c, 0, C) {
            s += expf(l[c] - m);
            sl += l[c];
        }
        s = nn_block_sum(s, shd);
        sl = nn_block_sum(sl, shd);
        const double off = (double)smoothing / (double)C;
        if (threadIdx.x == 0)
            rowloss[r] = (double)m + log(s) - (1.0 - smoothing) * (double)lt - off * sl;
        if (d) {
            const float inv = (float)(1.0 / s), q = (float)off;
            NN_COLS(c, 0, C) {
                float v = w * (expf(l[c] - m) * inv - q);
                if (c == target)
                    v -= w * (1.0f - smoothing);
                d[c] = v;
            }
        }
    }
}

double hg_cu_cross_entropy(const hg_kctx *k, float *dlogits, const float *logits,
                           const int32_t *targets, int64_t rows, int64_t C, float smoothing,
                           int32_t ignore_index, float w)
{
    if (rows <= 0)
        return 0.0;
    const int64_t tmpn = hg_cu_sum_rows_tmp(rows, 1);
    double *res = (double *)hg_cu_scratch(k, (size_t)(1 + rows + tmpn) * sizeof(double));
    if (!res)
        return NAN;
    double *rowloss = res + 1, *tmp = rowloss + rows;
    NN_LAUNCH(cross_entropy_kernel, rows, k)(rowloss, dlogits, logits, targets, rows, C, smoothing,
                                             ignore_index, w);
    HG_CU_LAUNCHED(k, "cross_entropy");
    hg_cu_sum_rows_d(k, res, rowloss, rows, 1, 1, tmp);
    return hg_cu_fetch_double(k, res);
}

/* ---------------------------------------------------------------- embeddings */

__global__ void embed_fwd_kernel(float *Y, const float *E, const int32_t *ids, const float *pos,
                                 int64_t rows, int64_t T, int64_t d, float scale)
{
    for (int64_t i = HG_CU_TID; i < rows * d; i += HG_CU_STRIDE) {
        const int64_t r = i / d, c = i % d;
        const int32_t id = ids[r];
        Y[i] = fmaf(scale, id >= 0 ? E[(int64_t)id * d + c] : 0.0f,
                    pos ? pos[(r % T) * d + c] : 0.0f);
    }
}

void hg_cu_embed_forward(const hg_kctx *k, float *Y, const float *E, const int32_t *ids,
                         const float *pos, int64_t rows, int64_t T, int64_t d, float scale)
{
    if (rows <= 0 || d <= 0)
        return;
    HG_LAUNCH(embed_fwd_kernel, hg_cu_blocks(rows * d), HG_CU_BLOCK, k)(Y, E, ids, pos, rows, T, d,
                                                                        scale);
    HG_CU_LAUNCHED(k, "embed_forward");
}

/* Work item (p, c), p < nclass: column c of the ids with id mod nclass == p, their rows in
 * order. Every id belongs to one class, so each element of dE sees the CPU's sequence. */
__global__ void embed_bwd_kernel(float *dE, const float *dY, const int32_t *ids, int64_t rows,
                                 int64_t d, float scale, int64_t nclass)
{
    for (int64_t i = HG_CU_TID; i < nclass * d; i += HG_CU_STRIDE) {
        const int64_t p = i / d, c = i % d;
        for (int64_t r = 0; r < rows; r++) {
            const int32_t id = ids[r];
            if (id >= 0 && id % nclass == p)
                dE[(int64_t)id * d + c] = fmaf(scale, dY[r * d + c], dE[(int64_t)id * d + c]);
        }
    }
}

/* Threads of the embedding gradient: enough residue classes of ids to fill the device. */
#define NN_EMBED_THREADS 65536
#define NN_EMBED_MAX_CLASSES 512

void hg_cu_embed_backward(const hg_kctx *k, float *dE, const float *dY, const int32_t *ids,
                          int64_t rows, int64_t d, float scale)
{
    if (rows <= 0 || d <= 0)
        return;
    int64_t nclass = NN_EMBED_THREADS / d;
    nclass = nclass < 1 ? 1 : nclass > NN_EMBED_MAX_CLASSES ? NN_EMBED_MAX_CLASSES : nclass;
    HG_LAUNCH(embed_bwd_kernel, hg_cu_blocks(nclass * d), HG_CU_BLOCK, k)(dE, dY, ids, rows, d,
                                                                          scale, nclass);
    HG_CU_LAUNCHED(k, "embed_backward");
}

/* ---------------------------------------------------------------- attention heads */

/* Element i of the (B, H, T, dh) array and its place in the (B, T, H, dh) one; split writes the
 * first from the second, merge the reverse. */
__global__ void heads_kernel(float *dst, const float *src, int64_t B, int64_t T, int64_t H,
                             int64_t dh, int split)
{
    for (int64_t i = HG_CU_TID; i < B * H * T * dh; i += HG_CU_STRIDE) {
        const int64_t e = i % dh, t = i / dh % T, h = i / (dh * T) % H, b = i / (dh * T * H);
        const int64_t j = ((b * T + t) * H + h) * dh + e;
        if (split)
            dst[i] = src[j];
        else
            dst[j] = src[i];
    }
}

static void heads_launch(const hg_kctx *k, float *dst, const float *src, int64_t B, int64_t T,
                         int64_t H, int64_t dh, int split)
{
    const int64_t n = B * T * H * dh;
    if (B <= 0 || T <= 0 || H <= 0 || dh <= 0)
        return;
    HG_LAUNCH(heads_kernel, hg_cu_blocks(n), HG_CU_BLOCK, k)(dst, src, B, T, H, dh, split);
    HG_CU_LAUNCHED(k, split ? "heads_split" : "heads_merge");
}

void hg_cu_heads_split(const hg_kctx *k, float *dst, const float *src, int64_t B, int64_t T,
                       int64_t H, int64_t dh)
{
    heads_launch(k, dst, src, B, T, H, dh, 1);
}

void hg_cu_heads_merge(const hg_kctx *k, float *dst, const float *src, int64_t B, int64_t T,
                       int64_t H, int64_t dh)
{
    heads_launch(k, dst, src, B, T, H, dh, 0);
}
