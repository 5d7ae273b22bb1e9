/* cuda_lorentz.cu - the CUDA twins of the Lorentz-model and fused HyboNet kernels of
 * kernels/lorentz_*.c (contracts: ops_lorentz.def; entry points: cuda.h). Every
 * hg_cu_lorentz_X computes what hg_k_lorentz_X computes, up to float rounding, and gives the same
 * bits on every run.
 *
 * Structure: the dense products go through the library wrappers (hg_cu_gemm, hg_cu_csr_spmm);
 * the row-wise maps (LorentzLinear head and its backward, centroid normalisation and its
 * backward, the Riemannian Adam step) are one thread per row, with their per-row scalars in
 * double as the CPU's generic-width paths; parameter gradients (sums over rows) are two-pass
 * deterministic reductions: per-chunk partial sums (float runs of HG_K_FLOAT_RUN terms added into
 * double, as on the CPU) then hg_cu_sum_rows[_d] over the chunks. Scatters into rows that may
 * repeat (pair gradients) are turned into gathers: each output row is owned by one thread, which
 * scans the pairs in order (see k_pair_rows_scan and k_pair_owner_scan). No atomics, no shared
 * memory, no barriers: every launch is an HG_LAUNCH of independent threads (cuda_common.h).
 *
 * Scratch: each entry point asks hg_cu_scratch once for everything it needs and carves it; the
 * wrappers it calls (hg_cu_gemm, hg_cu_csr_spmm, hg_cu_sum_rows[_d], hg_cu_add_d2f, hg_cu_zero,
 * hg_cu_fetch_double) must not ask for scratch themselves. */
#include <math.h>
#include <stdio.h>

#include "cuda_common.h"

/* Grid-stride loop over n work items. */
#define LZ_FOR(i, n)                                                                           \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
         i += (int64_t)gridDim.x * blockDim.x)

/* Launch kern over `items` work items (at least one block: hg_cu_blocks). */
#define LZ_LAUNCH(kern, items, k) HG_LAUNCH(kern, hg_cu_blocks(items), HG_CU_BLOCK, k)

/* Largest partial-sum table (doubles) of the chunked products: chunks grow beyond HG_K_FLOAT_RUN
 * rows when more would not fit (only for very wide weights). 64 MiB. */
#define LZ_PART_MAX_DOUBLES ((int64_t)1 << 23)
/* Pair gradients by row scan: (segment, row) threads wanted, the fewest pairs of a segment, and
 * the largest table of per-segment partial rows (floats, 64 MiB). */
#define LZ_PAIR_THREADS ((int64_t)1 << 17)
#define LZ_PAIR_MIN_SEG 64
#define LZ_PAIR_MAX_FLOATS ((int64_t)1 << 24)

/* ---- scratch layout ---- */

/* Offsets into the one scratch region, each sub-buffer 256-byte aligned. */
typedef struct {
    size_t off;
} lz_layout;

static size_t lz_take(lz_layout *l, size_t bytes)
{
    const size_t o = l->off;
    l->off += (bytes + 255) / 256 * 256;
    return o;
}

#define LZ_AT(base, off, T) ((T *)(void *)((char *)(base) + (off)))

static int64_t lz_max(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t lz_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* A library product that could not run (a size beyond the BLAS int): recorded, and sticky so
 * that the next hg_k_sync reports it. */
static void lz_gemm_failed(const hg_kctx *k, const char *what)
{
    hg_cu_fail(k, "%s: a matrix size does not fit the BLAS int", what);
}

/* ---- per-row device helpers ---- */

__device__ static inline double lz_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* <x, y>_L of two d-vectors, in double. */
__device__ static inline double lz_inner(const float *x, const float *y, int64_t d)
{
    double s = -(double)x[0] * y[0];
    for (int64_t j = 1; j < d; j++)
        s += (double)x[j] * y[j];
    return s;
}

/* Centroid backward of one row (lorentz_simd.h centroid_backward_row): dS (=) from dout and the
 * forward input S. dS may be dout (every read of a coordinate precedes its write). */
__device__ static inline void lz_centroid_backward_row(float *dS, const float *go, const float *si,
                                                       int64_t d)
{
    const double m = lz_inner(si, si, d);
    const double a = fabs(m);
    const int clamped = a < HG_LORENTZ_CENTROID_MIN;
    const double c = clamped ? (double)HG_LORENTZ_CENTROID_MIN : a;
    const double r = 1.0 / sqrt(c);
    double gs = 0.0; /* dout . S */
    for (int64_t j = 0; j < d; j++)
        gs += (double)go[j] * si[j];
    /* dr/dm = -1/2 c^(-3/2) sign(m); dm/dS_j = 2 eta_j S_j */
    const double dr_dm = clamped ? 0.0 : -0.5 * r / c * (m < 0 ? -1.0 : 1.0);
    const float rf = (float)r, cf = (float)(gs * dr_dm * 2.0);
    dS[0] = go[0] * rf - cf * si[0];
    for (int64_t j = 1; j < d; j++)
        dS[j] = go[j] * rf + cf * si[j];
}

/* ---- row-wise kernels ---- */

/* LorentzLinear head, one row per thread (lorentz_simd.h head_forward_row): z (+=) b (NULL: none),
 * then y (=) [t, z_{1:} f], t = sigmoid(z0) e^s + 1.1,
 * f = sqrt((t^2 - 1) / max(|z_{1:}|^2, 1e-8)). */
__global__ static void k_head_forward(float *y, float *z, const float *b, const float *s,
                                      int64_t n, int64_t d)
{
    LZ_FOR(i, n) {
        const double es = exp((double)*s);
        float *zi = z + i * d, *yi = y + i * d;
        if (b)
            for (int64_t j = 0; j < d; j++)
                zi[j] += b[j];
        double q = 0.0;
        for (int64_t j = 1; j < d; j++)
            q += (double)zi[j] * zi[j];
        q = fmax(q, (double)HG_LORENTZ_LINEAR_MIN_SQNORM);
        const double t = lz_sigmoid(zi[0]) * es + HG_LORENTZ_LINEAR_TIME_OFFSET;
        const float f = (float)sqrt((t * t - 1.0) / q);
        yi[0] = (float)t;
        for (int64_t j = 1; j < d; j++)
            yi[j] = zi[j] * f;
    }
}

/* LorentzLinear head backward, one row per thread, in place: g holds dy (=) and gets dz
 * (lorentz_simd.h head_backward_row); gsr[i] (=) the row's part of dL/ds. */
__global__ static void k_head_backward(float *g, double *gsr, const float *z, const float *s,
                                       int64_t n, int64_t d)
{
    LZ_FOR(i, n) {
        const double es = exp((double)*s);
        float *gy = g + i * d;
        const float *zi = z + i * d;
        const double sg = lz_sigmoid(zi[0]);
        const double t = sg * es + HG_LORENTZ_LINEAR_TIME_OFFSET;
        double q_raw = 0.0, a = 0.0; /* a = sum_j dy_j z_j over the spatial part */
        for (int64_t j = 1; j < d; j++) {
            q_raw += (double)zi[j] * zi[j];
            a += (double)gy[j] * zi[j];
        }
        const int clamped = q_raw < HG_LORENTZ_LINEAR_MIN_SQNORM;
        const double q = clamped ? (double)HG_LORENTZ_LINEAR_MIN_SQNORM : q_raw;
        const double f = sqrt((t * t - 1.0) / q);
        const double df_dt = t / (q * f);
        const double df_dq = clamped ? 0.0 : -0.5 * f / q;
        const double gt = gy[0] + a * df_dt;
        gy[0] = (float)(gt * es * sg * (1.0 - sg));
        const float ff = (float)f, c = (float)(a * df_dq * 2.0);
        for (int64_t j = 1; j < d; j++)
            gy[j] = gy[j] * ff + c * zi[j];
        gsr[i] = gt * sg * es;
    }
}

/* Centroid normalisation, one row per thread: out (=) S / sqrt(max(|<S,S>_L|, 1e-8)). */
__global__ static void k_centroid_forward(float *out, const float *S, int64_t n, int64_t d)
{
    LZ_FOR(i, n) {
        const float *si = S + i * d;
        const double c = fmax(fabs(lz_inner(si, si, d)), (double)HG_LORENTZ_CENTROID_MIN);
        const float r = (float)(1.0 / sqrt(c));
        for (int64_t j = 0; j < d; j++)
            out[i * d + j] = si[j] * r;
    }
}

__global__ static void k_centroid_backward(float *dS, const float *dout, const float *S,
                                           int64_t n, int64_t d)
{
    LZ_FOR(i, n)
        lz_centroid_backward_row(dS + i * d, dout + i * d, S + i * d, d);
}

/* hd[e] (=) act(x[e]) * mask(e) over the n x din elements (e row-major, as hg_k_dropout). */
__global__ static void k_act_dropout(float *hd, const float *x, int relu, float p, uint64_t seed,
                                     int64_t total)
{
    LZ_FOR(e, total) {
        float v = x[e];
        if (relu)
            v = v > 0.0f ? v : 0.0f;
        if (p > 0.0f)
            v *= hg_cu_dropout_scale(e, p, seed);
        hd[e] = v;
    }
}

/* The input gradient's mask, in place: g[e] (=) act'(x[e]) * mask(e) * g[e]. */
__global__ static void k_act_dropout_backward(float *g, const float *x, int relu, float p,
                                              uint64_t seed, int64_t total)
{
    LZ_FOR(e, total) {
        float v = g[e];
        if (p > 0.0f)
            v *= hg_cu_dropout_scale(e, p, seed);
        g[e] = relu && !(x[e] > 0.0f) ? 0.0f : v;
    }
}

/* ---- chunked products over rows (parameter gradients) ---- */

/* part[ch][p * N + o] (=) sum over the rows i of chunk ch (rows ch * rows .. , fewer in the last)
 * of A[i * lda + p] * B[r(i) * ldb + o], r(i) = bidx[i] (NULL: i); p < M, o < N. Float runs of
 * HG_K_FLOAT_RUN rows added into double, as the CPU's weight gradients. One thread per entry. */
__global__ static void k_chunk_products(double *part, const float *A, int64_t lda, const float *B,
                                        int64_t ldb, const int64_t *bidx, int64_t n, int64_t M,
                                        int64_t N, int64_t rows, int64_t nch)
{
    const int64_t MN = M * N;
    LZ_FOR(t, nch * MN) {
        const int64_t ch = t / MN, q = t % MN, p = q / N, o = q % N;
        const int64_t i0 = ch * rows, i1 = i0 + rows < n ? i0 + rows : n;
        double acc = 0.0;
        for (int64_t r0 = i0; r0 < i1; r0 += HG_K_FLOAT_RUN) {
            const int64_t r1 = r0 + HG_K_FLOAT_RUN < i1 ? r0 + HG_K_FLOAT_RUN : i1;
            float f = 0.0f;
            for (int64_t i = r0; i < r1; i++)
                f += A[i * lda + p] * B[(bidx ? bidx[i] : i) * ldb + o];
            acc += f;
        }
        part[t] = acc;
    }
}

/* Rows per chunk of a product over n rows with M x N outputs, and the chunk count. */
static int64_t lz_chunk_rows(int64_t n, int64_t MN)
{
    int64_t rows = HG_K_FLOAT_RUN;
    const int64_t maxch = lz_max(1, LZ_PART_MAX_DOUBLES / lz_max(MN, 1));
    if ((n + rows - 1) / rows > maxch) {
        rows = (n + maxch - 1) / maxch;
        rows = (rows + HG_K_FLOAT_RUN - 1) / HG_K_FLOAT_RUN * HG_K_FLOAT_RUN;
    }
    return rows;
}

/* out[c * d + o] (=) sum_{q in row c of A} val[q] X[col[q] * d + o] for a CSR matrix A (nrows
 * rows), float runs added into double: the sparse layer's weight gradient Xt dz (lorentz_layer.c's
 * 16-wide path; the generic one sums in double). One thread per output. */
__global__ static void k_csr_gather_d(double *out, const int64_t *rowptr, const int32_t *col,
                                      const float *val, const float *X, int64_t nrows, int64_t d)
{
    LZ_FOR(t, nrows * d) {
        const int64_t c = t / d, o = t % d;
        const int64_t p0 = rowptr[c], p1 = rowptr[c + 1];
        double acc = 0.0;
        for (int64_t q0 = p0; q0 < p1; q0 += HG_K_FLOAT_RUN) {
            const int64_t q1 = q0 + HG_K_FLOAT_RUN < p1 ? q0 + HG_K_FLOAT_RUN : p1;
            float f = 0.0f;
            for (int64_t q = q0; q < q1; q++)
                f += val[q] * X[(int64_t)col[q] * d + o];
            acc += f;
        }
        out[t] = acc;
    }
}

/* dP[c * d + j] (+=) (float)(eta_j 2 G[c * d + j]): the class points' gradient from the double
 * sums G = sum_a dl_ac x_a. */
__global__ static void k_add_eta2(float *dP, const double *G, int64_t total, int64_t d)
{
    LZ_FOR(t, total)
        dP[t] += (float)((t % d == 0 ? -2.0 : 2.0) * G[t]);
}

/* ---- pairs ---- */

/* The terms of pair (pr[0], pr[1]) with coefficient cs = sc g (skipped when g == 0) landing in
 * row u: o (+=) cs eta X_v when pr[0] == u, then cs eta X_{pr[0]} when pr[1] == u (both for a
 * point paired with itself), as the CPU's dX[u] += ..., dX[v] += .... */
__device__ static inline void lz_pair_terms(float *o, const float *X, const int32_t *pr, float g,
                                            float sc, int64_t u, int64_t d)
{
    if (g == 0.0f)
        return;
    const int64_t pu = pr[0], pv = pr[1];
    if (pu != u && pv != u)
        return;
    const float cs = sc * g;
    if (pu == u)
        for (int64_t j = 0; j < d; j++)
            o[j] += (j == 0 ? -cs : cs) * X[pv * d + j];
    if (pv == u)
        for (int64_t j = 0; j < d; j++)
            o[j] += (j == 0 ? -cs : cs) * X[pu * d + j];
}

/* Pair gradients without atomics, by row scan (n known): thread (g, u) owns row u of segment g
 * (pairs g * seglen .. (g + 1) * seglen - 1) and scans that segment in pair order, adding every
 * term landing in row u (pairs of list a, then of list b, per index e: the CPU's couple order)
 * into out + g * seg_stride + u * d; with zero_first that row is zeroed first (per-segment
 * partials, summed in segment order by k_seg_reduce), else out is dX itself (one segment). The
 * threads of a warp hold consecutive rows of one segment, so they read the same pair entries
 * (broadcast). Cost: n * count pair visits in all, spread over nseg * n threads. */
__global__ static void k_pair_rows_scan(float *out, int64_t seg_stride, int zero_first,
                                        const float *X, const int32_t *pa, const float *ga,
                                        float sa, const int32_t *pb, const float *gb, float sb,
                                        int64_t count, int64_t seglen, int64_t nseg, int64_t n,
                                        int64_t d)
{
    LZ_FOR(t, nseg * n) {
        const int64_t u = t % n, g = t / n;
        float *o = out + g * seg_stride + u * d;
        if (zero_first)
            for (int64_t j = 0; j < d; j++)
                o[j] = 0.0f;
        const int64_t e0 = g * seglen, e1 = e0 + seglen < count ? e0 + seglen : count;
        for (int64_t e = e0; e < e1; e++) {
            lz_pair_terms(o, X, pa + 2 * e, ga[e], sa, u, d);
            if (pb)
                lz_pair_terms(o, X, pb + 2 * e, gb[e], sb, u, d);
        }
    }
}

/* dX[q] (+=) P[0][q] + P[1][q] + ... (in segment order), q < total = n * d. */
__global__ static void k_seg_reduce(float *dX, const float *P, int64_t nseg, int64_t total)
{
    LZ_FOR(q, total) {
        float acc = dX[q];
        for (int64_t g = 0; g < nseg; g++)
            acc += P[g * total + q];
        dX[q] = acc;
    }
}

/* Pair gradients without atomics when the row count is not known (pair_score_backward): one
 * thread per endpoint position q < 2 count; row u = pairs[q] is owned by its first position with
 * g != 0, whose thread adds the terms of pairs q / 2 .. count - 1 landing in u straight into dX,
 * in pair order (exactly the CPU's order for that row). Cost: O(count^2) pair visits in all
 * (each thread scans at most 2 count positions), no scratch, no host round trip. */
__global__ static void k_pair_owner_scan(float *dX, const float *X, const int32_t *pairs,
                                         const float *g, int64_t count, int64_t d)
{
    LZ_FOR(q, 2 * count) {
        if (g[q / 2] == 0.0f)
            continue;
        const int32_t u = pairs[q];
        int owner = 1;
        for (int64_t r = 0; r < q && owner; r++)
            owner = !(pairs[r] == u && g[r / 2] != 0.0f);
        if (!owner)
            continue;
        float *o = dX + (int64_t)u * d;
        for (int64_t e = q / 2; e < count; e++)
            lz_pair_terms(o, X, pairs + 2 * e, g[e], 2.0f, u, d);
    }
}

/* out[e] (=) 2 + 2 <X_u, X_v>_L of pair e. */
__global__ static void k_pair_score(float *out, const float *X, const int32_t *pairs,
                                    int64_t count, int64_t d)
{
    LZ_FOR(e, count)
        out[e] = (float)(2.0 + 2.0 * lz_inner(X + (int64_t)pairs[2 * e] * d,
                                              X + (int64_t)pairs[2 * e + 1] * d, d));
}

/* Scores of couple e, its hinge (margin - s_pos + s_neg, 0 when not > 0) and its activity flag
 * (1 or 0: the coefficient of its gradient terms). */
__global__ static void k_pair_hinge(float *s_pos, float *s_neg, double *hinge, float *act,
                                    const float *X, const int32_t *pos, const int32_t *neg,
                                    int64_t count, float margin, int64_t d)
{
    LZ_FOR(e, count) {
        const int32_t *a = pos + 2 * e, *b = neg + 2 * e;
        const float *xa = X + (int64_t)a[0] * d, *xb = X + (int64_t)a[1] * d;
        const float *xc = X + (int64_t)b[0] * d, *xd = X + (int64_t)b[1] * d;
        const float sp = (float)(2.0 + 2.0 * lz_inner(xa, xb, d));
        const float sn = (float)(2.0 + 2.0 * lz_inner(xc, xd, d));
        s_pos[e] = sp;
        s_neg[e] = sn;
        const double t = (double)margin - sp + sn;
        const int on = t > 0.0; /* a NaN is inactive, as on the CPU */
        hinge[e] = on ? t : 0.0;
        act[e] = on ? 1.0f : 0.0f;
    }
}

/* Segments of the row scan over count pairs for n rows of width d: enough (segment, row)
 * threads to fill the GPU, at least LZ_PAIR_MIN_SEG pairs each, partials within
 * LZ_PAIR_MAX_FLOATS. A function of the sizes only, so the result is the same on every run. */
static int64_t lz_pair_segments(int64_t n, int64_t count, int64_t d)
{
    if (n <= 0 || count <= 0 || d <= 0)
        return 1;
    int64_t s = LZ_PAIR_THREADS / n;
    s = lz_min(s, (count + LZ_PAIR_MIN_SEG - 1) / LZ_PAIR_MIN_SEG);
    s = lz_min(s, LZ_PAIR_MAX_FLOATS / (n * d));
    return s < 1 ? 1 : s;
}

/* ---- class logits ---- */

/* logits[i * C + c] (=) 2 + 2 <X_i, P_c>_L + b_c, one thread per logit. */
__global__ static void k_class_logits(float *logits, const float *X, const float *P,
                                      const float *b, int64_t n, int64_t C, int64_t d)
{
    LZ_FOR(t, n * C) {
        const int64_t i = t / C, c = t % C;
        logits[t] = 2.0f + 2.0f * (float)lz_inner(X + i * d, P + c * d, d) + (b ? b[c] : 0.0f);
    }
}

/* dX[idx[a] * d + j] (+=) sum_c eta_j 2 dl[a][c] P[c][j], one thread per (a, j): the idx are
 * distinct (contract), so no two threads write one element. */
__global__ static void k_class_dx(float *dX, const float *dl, const float *P, const int64_t *idx,
                                  int64_t nidx, int64_t C, int64_t d)
{
    LZ_FOR(t, nidx * d) {
        const int64_t a = t / d, j = t % d;
        float *dx = dX + idx[a] * d + j;
        float v = *dx;
        const float sgn = j == 0 ? -2.0f : 2.0f;
        for (int64_t c = 0; c < C; c++)
            v += sgn * dl[a * C + c] * P[c * d + j];
        *dx = v;
    }
}

/* ---- Riemannian Adam and stabilisation (lorentz_ops.c hg_cpu_lorentz_radam_step) ---- */

/* The per-coordinate quantities of the step at point x, recomputed from the unchanged inputs in
 * every pass (so no per-thread arrays): U_j the Riemannian gradient (inverse metric, projection
 * with xu = <x, eta g>_L), M_j the new first moment, S_j the step (a tangent vector at x). */
__device__ static inline double lz_radam_u(const float *xi, const float *gi, double xu, int64_t j)
{
    const double u0 = j == 0 ? -(double)gi[0] : (double)gi[j];
    return u0 + xu * xi[j];
}

__global__ static void k_radam(float *x, const float *grad, float *m, float *v, int64_t n,
                               int64_t d, float lr, float beta1, float beta2, float eps,
                               double bc1, double bc2)
{
    LZ_FOR(i, n) {
        float *xi = x + i * d, *mi = m + i * d;
        const float *gi = grad + i * d;
        /* projection onto the tangent space: xu = <x, U0>_L, U0 = eta g */
        double xu = -(double)xi[0] * -(double)gi[0];
        for (int64_t j = 1; j < d; j++)
            xu += (double)xi[j] * gi[j];
        double uu = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double u = lz_radam_u(xi, gi, xu, j);
            uu += j == 0 ? -u * u : u * u;
        }
        const float vi = (float)(beta2 * v[i] + (1.0 - beta2) * uu);
        v[i] = vi;
        const double denom = sqrt(fmax((double)vi, 0.0) / bc2) + eps;
#define LZ_RADAM_M(j) (beta1 * mi[j] + (1.0 - beta1) * lz_radam_u(xi, gi, xu, (j)))
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double sj = -(double)lr * (LZ_RADAM_M(j) / bc1) / denom;
            ss += j == 0 ? -sj * sj : sj * sj;
        }
        /* y = expmap_x(S) = cosh|S| x + sinh|S| S/|S| */
        const double nu = sqrt(fmax(ss, 0.0));
        const int tiny = nu < HG_LORENTZ_EXPMAP_MIN_NORM;
        const double ch = tiny ? 1.0 : cosh(nu), sh = tiny ? 1.0 : sinh(nu) / nu;
        /* parallel transport of M from x to y: M + <y,M>_L / (1 - <x,y>_L) (x + y) */
        double ym = 0.0, xy = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double Mj = LZ_RADAM_M(j);
            const double sj = -(double)lr * (Mj / bc1) / denom;
            const double yj = tiny ? xi[j] + sj : ch * xi[j] + sh * sj;
            ym += j == 0 ? -yj * Mj : yj * Mj;
            xy += j == 0 ? -(double)xi[j] * yj : (double)xi[j] * yj;
        }
        const double coef = ym / (1.0 - xy);
        for (int64_t j = 0; j < d; j++) { /* coordinate j's inputs are read before its writes */
            const double Mj = LZ_RADAM_M(j);
            const double sj = -(double)lr * (Mj / bc1) / denom;
            const double Xj = xi[j];
            const double yj = tiny ? Xj + sj : ch * Xj + sh * sj;
            mi[j] = (float)(Mj + coef * (Xj + yj));
            xi[j] = (float)yj;
        }
#undef LZ_RADAM_M
    }
}

/* x0 (=) sqrt(1 + |x_{1:}|^2); m (NULL: none) (=) its projection onto the tangent space at x. */
__global__ static void k_stabilize(float *x, float *m, int64_t n, int64_t d)
{
    LZ_FOR(i, n) {
        float *xi = x + i * d;
        double sq = 0.0;
        for (int64_t j = 1; j < d; j++)
            sq += (double)xi[j] * xi[j];
        xi[0] = (float)sqrt(1.0 + sq);
        if (!m)
            continue;
        float *mi = m + i * d;
        const double xu = lz_inner(xi, mi, d);
        for (int64_t j = 0; j < d; j++)
            mi[j] = (float)((double)mi[j] + xu * xi[j]);
    }
}

/* ---- entry points ---- */

extern "C" {

void hg_cu_lorentz_centroid_backward(const hg_kctx *k, float *dS, const float *dout,
                                     const float *S, int64_t n, int64_t d)
{
    if (n <= 0)
        return;
    LZ_LAUNCH(k_centroid_backward, n, k)(dS, dout, S, n, d);
    HG_CU_LAUNCHED(k, "lorentz_centroid_backward");
}

void hg_cu_lorentz_linear_forward(const hg_kctx *k, float *hd, float *z, float *y, const float *x,
                                  const float *W, const float *b, const float *s, int relu,
                                  float p, uint64_t seed, int64_t n, int64_t din, int64_t d)
{
    if (n <= 0)
        return;
    const float *h = x;
    if (hd) {
        LZ_LAUNCH(k_act_dropout, n * din, k)(hd, x, relu, p, seed, n * din);
        HG_CU_LAUNCHED(k, "lorentz_linear_forward (dropout)");
        h = hd;
    }
    /* z (=) h W^T */
    if (hg_cu_gemm(k, 0, 1, n, d, din, 1.0f, h, din, W, din, 0.0f, z, d)) {
        lz_gemm_failed(k, "hg_cu_lorentz_linear_forward");
        return;
    }
    LZ_LAUNCH(k_head_forward, n, k)(y, z, b, s, n, d);
    HG_CU_LAUNCHED(k, "lorentz_linear_forward (head)");
}

void hg_cu_lorentz_linear_forward_csr(const hg_kctx *k, float *z, float *y, const int64_t *rowptr,
                                      const int32_t *col, const float *val, const float *W,
                                      float *Wt, const float *b, const float *s, int64_t n,
                                      int64_t din, int64_t d)
{
    hg_cu_transpose(k, Wt, W, d, din); /* Wt (=) W^T */
    if (n <= 0)
        return;
    hg_cu_csr_spmm(k, n, rowptr, col, val, Wt, d, 0.0f, z); /* z (=) X Wt */
    LZ_LAUNCH(k_head_forward, n, k)(y, z, b, s, n, d);
    HG_CU_LAUNCHED(k, "lorentz_linear_forward_csr");
}

void hg_cu_lorentz_agg_forward(const hg_kctx *k, float *S, float *out, const int64_t *rowptr,
                               const int32_t *col, const float *val, const float *y, int64_t n,
                               int64_t d)
{
    if (n <= 0)
        return;
    hg_cu_csr_spmm(k, n, rowptr, col, val, y, d, 0.0f, S); /* S (=) A y */
    LZ_LAUNCH(k_centroid_forward, n, k)(out, S, n, d);
    HG_CU_LAUNCHED(k, "lorentz_agg_forward");
}

/* Shared tail of both LorentzLinear backwards: gb (+=) the column sums of dz (n x d), *gs (+=) the
 * sum of the rows' scale gradients gsr (n doubles). sums: d + 1 doubles; tmp: sum_rows scratch. */
static void lz_bias_scale_grads(const hg_kctx *k, float *gb, float *gs, const float *dz,
                                const double *gsr, int64_t n, int64_t d, double *sums,
                                double *tmp)
{
    if (gb) {
        hg_cu_sum_rows(k, sums, dz, n, d, d, tmp);
        hg_cu_add_d2f(k, gb, sums, d);
    }
    hg_cu_sum_rows_d(k, sums + d, gsr, n, 1, 1, tmp);
    hg_cu_add_d2f(k, gs, sums + d, 1);
}

void hg_cu_lorentz_linear_backward(const hg_kctx *k, float *gx, float *dz, float *gW, float *gb,
                                   float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                   const float *t_val, const float *gS, const float *z,
                                   const float *hd, const float *x, const float *W,
                                   const float *S_prev, const float *s, int relu, float p,
                                   uint64_t seed, int64_t n, int64_t din, int64_t d, float *ws)
{
    (void)ws;
    if (n <= 0) { /* gW (=) an empty sum; gb, gs, gx: nothing */
        hg_cu_zero(k, gW, (size_t)(din * d) * sizeof *gW);
        return;
    }
    const int64_t MN = din * d, rows = lz_chunk_rows(n, MN), nch = (n + rows - 1) / rows;
    const int64_t ntmp = lz_max(hg_cu_sum_rows_tmp(nch, MN),
                                lz_max(hg_cu_sum_rows_tmp(n, d), hg_cu_sum_rows_tmp(n, 1)));
    lz_layout L = {0};
    const size_t o_gsr = lz_take(&L, (size_t)n * sizeof(double));
    const size_t o_part = lz_take(&L, (size_t)(nch * MN) * sizeof(double));
    const size_t o_gwt = lz_take(&L, (size_t)MN * sizeof(double));
    const size_t o_sums = lz_take(&L, (size_t)(d + 1) * sizeof(double));
    const size_t o_tmp = lz_take(&L, (size_t)ntmp * sizeof(double));
    const size_t o_dx = gx && S_prev ? lz_take(&L, (size_t)(n * din) * sizeof(float)) : 0;
    void *base = hg_cu_scratch(k, L.off);
    if (!base)
        return;
    double *gWt = LZ_AT(base, o_gwt, double);
    double *gsr = LZ_AT(base, o_gsr, double), *part = LZ_AT(base, o_part, double);
    double *sums = LZ_AT(base, o_sums, double), *tmp = LZ_AT(base, o_tmp, double);

    /* dy = At gS, then dz = head backward (in place); hg_cu_csr_spmm uses no scratch */
    hg_cu_csr_spmm(k, n, t_rowptr, t_col, t_val, gS, d, 0.0f, dz);
    LZ_LAUNCH(k_head_backward, n, k)(dz, gsr, z, s, n, d);
    HG_CU_LAUNCHED(k, "lorentz_linear_backward (head)");
    /* gWt = hd^T dz: chunk partials, then their sum in chunk order; gW (=) gWt^T in float */
    LZ_LAUNCH(k_chunk_products, nch * MN, k)(part, hd, din, dz, d, (const int64_t *)NULL, n, din,
                                             d, rows, nch);
    HG_CU_LAUNCHED(k, "lorentz_linear_backward (weight)");
    hg_cu_sum_rows_d(k, gWt, part, nch, MN, MN, tmp);
    hg_cu_transpose_d2f(k, gW, gWt, din, d);
    lz_bias_scale_grads(k, gb, gs, dz, gsr, n, d, sums, tmp);
    if (!gx)
        return;
    /* dx = act'(x) mask (dz W), into gx or (S_prev) scratch for the centroid backward */
    float *dx = S_prev ? LZ_AT(base, o_dx, float) : gx;
    if (hg_cu_gemm(k, 0, 0, n, din, d, 1.0f, dz, d, W, din, 0.0f, dx, din)) {
        lz_gemm_failed(k, "hg_cu_lorentz_linear_backward");
        return;
    }
    if (relu || p > 0.0f) {
        LZ_LAUNCH(k_act_dropout_backward, n * din, k)(dx, x, relu, p, seed, n * din);
        HG_CU_LAUNCHED(k, "lorentz_linear_backward (mask)");
    }
    if (S_prev) {
        LZ_LAUNCH(k_centroid_backward, n, k)(gx, dx, S_prev, n, din);
        HG_CU_LAUNCHED(k, "lorentz_linear_backward (centroid)");
    }
}

void hg_cu_lorentz_linear_backward_csr(const hg_kctx *k, float *dz, float *gW, float *gb,
                                       float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                       const float *t_val, const float *gS, const float *z,
                                       const int64_t *xt_rowptr, const int32_t *xt_col,
                                       const float *xt_val, const float *s, int64_t n,
                                       int64_t din, int64_t d, float *ws)
{
    (void)ws;
    const int64_t ntmp = lz_max(hg_cu_sum_rows_tmp(n, d), hg_cu_sum_rows_tmp(n, 1));
    lz_layout L = {0};
    const size_t o_gsr = lz_take(&L, (size_t)n * sizeof(double));
    const size_t o_sums = lz_take(&L, (size_t)(d + 1) * sizeof(double));
    const size_t o_tmp = lz_take(&L, (size_t)ntmp * sizeof(double));
    const size_t o_gwt = lz_take(&L, (size_t)(din * d) * sizeof(double));
    void *base = hg_cu_scratch(k, L.off);
    if (!base)
        return;
    if (n > 0) {
        double *gsr = LZ_AT(base, o_gsr, double), *sums = LZ_AT(base, o_sums, double);
        hg_cu_csr_spmm(k, n, t_rowptr, t_col, t_val, gS, d, 0.0f, dz); /* dy = At gS */
        LZ_LAUNCH(k_head_backward, n, k)(dz, gsr, z, s, n, d);
        HG_CU_LAUNCHED(k, "lorentz_linear_backward_csr (head)");
        lz_bias_scale_grads(k, gb, gs, dz, gsr, n, d, sums, LZ_AT(base, o_tmp, double));
    }
    if (din <= 0)
        return;
    /* gWt = Xt dz (rows of Xt are empty when n == 0: zeros), gW (=) gWt^T in float */
    double *gWt = LZ_AT(base, o_gwt, double);
    LZ_LAUNCH(k_csr_gather_d, din * d, k)(gWt, xt_rowptr, xt_col, xt_val, dz, din, d);
    HG_CU_LAUNCHED(k, "lorentz_linear_backward_csr (weight)");
    hg_cu_transpose_d2f(k, gW, gWt, din, d);
}

void hg_cu_lorentz_pair_score(const hg_kctx *k, float *out, const float *X, const int32_t *pairs,
                              int64_t count, int64_t d)
{
    if (count <= 0)
        return;
    LZ_LAUNCH(k_pair_score, count, k)(out, X, pairs, count, d);
    HG_CU_LAUNCHED(k, "lorentz_pair_score");
}

void hg_cu_lorentz_pair_score_backward(const hg_kctx *k, float *dX, const float *X,
                                       const int32_t *pairs, const float *g, int64_t count,
                                       int64_t d)
{
    /* the row count of dX is not an argument: rows are owned by their first pair (see
     * k_pair_owner_scan); the model does not call this kernel in a training step */
    if (count <= 0)
        return;
    LZ_LAUNCH(k_pair_owner_scan, 2 * count, k)(dX, X, pairs, g, count, d);
    HG_CU_LAUNCHED(k, "lorentz_pair_score_backward");
}

double hg_cu_lorentz_pair_margin_loss(const hg_kctx *k, float *s_pos, float *s_neg, float *dX,
                                      const float *X, const int32_t *pos, const int32_t *neg,
                                      int64_t count, float margin, float w, int64_t n, int64_t d,
                                      float *ws)
{
    (void)ws;
    if (count <= 0)
        return 0.0;
    const int64_t nseg = dX ? lz_pair_segments(n, count, d) : 1;
    const int64_t seglen = (count + nseg - 1) / nseg;
    lz_layout L = {0};
    const size_t o_hinge = lz_take(&L, (size_t)count * sizeof(double));
    const size_t o_act = lz_take(&L, (size_t)count * sizeof(float));
    const size_t o_loss = lz_take(&L, sizeof(double));
    const size_t o_tmp = lz_take(&L, (size_t)hg_cu_sum_rows_tmp(count, 1) * sizeof(double));
    const size_t o_part = nseg > 1 ? lz_take(&L, (size_t)(nseg * n * d) * sizeof(float)) : 0;
    void *base = hg_cu_scratch(k, L.off);
    if (!base)
        return NAN;
    double *hinge = LZ_AT(base, o_hinge, double), *loss = LZ_AT(base, o_loss, double);
    float *act = LZ_AT(base, o_act, float);
    LZ_LAUNCH(k_pair_hinge, count, k)(s_pos, s_neg, hinge, act, X, pos, neg, count, margin, d);
    HG_CU_LAUNCHED(k, "lorentz_pair_margin_loss (scores)");
    hg_cu_sum_rows_d(k, loss, hinge, count, 1, 1, LZ_AT(base, o_tmp, double));
    if (dX && n > 0) {
        /* per couple: -w ds_pos/dX then w ds_neg/dX, coefficients -2w and 2w times act */
        float *out = nseg > 1 ? LZ_AT(base, o_part, float) : dX;
        LZ_LAUNCH(k_pair_rows_scan, nseg * n, k)(out, n * d, nseg > 1 ? 1 : 0, X, pos,
                                                 (const float *)act, -2.0f * w, neg,
                                                 (const float *)act, 2.0f * w, count, seglen,
                                                 nseg, n, d);
        HG_CU_LAUNCHED(k, "lorentz_pair_margin_loss (gradient)");
        if (nseg > 1) {
            LZ_LAUNCH(k_seg_reduce, n * d, k)(dX, (const float *)out, nseg, n * d);
            HG_CU_LAUNCHED(k, "lorentz_pair_margin_loss (gradient sum)");
        }
    }
    return hg_cu_fetch_double(k, loss);
}

void hg_cu_lorentz_class_logits(const hg_kctx *k, float *logits, const float *X, const float *P,
                                const float *b, int64_t n, int64_t C, int64_t d)
{
    if (n <= 0 || C <= 0)
        return;
    LZ_LAUNCH(k_class_logits, n * C, k)(logits, X, P, b, n, C, d);
    HG_CU_LAUNCHED(k, "lorentz_class_logits");
}

void hg_cu_lorentz_class_logits_backward(const hg_kctx *k, float *dX, float *dP, float *db,
                                         const float *dl, const float *X, const float *P,
                                         const int64_t *idx, int64_t nidx, int64_t C, int64_t d,
                                         float *ws)
{
    (void)ws;
    if (nidx <= 0 || C <= 0) /* every gradient is an empty sum: nothing to add */
        return;
    const int64_t MN = C * d, rows = lz_chunk_rows(nidx, MN), nch = (nidx + rows - 1) / rows;
    const int64_t ntmp = lz_max(hg_cu_sum_rows_tmp(nch, MN), hg_cu_sum_rows_tmp(nidx, C));
    lz_layout L = {0};
    const size_t o_part = lz_take(&L, (size_t)(nch * MN) * sizeof(double));
    const size_t o_G = lz_take(&L, (size_t)MN * sizeof(double));
    const size_t o_gb = lz_take(&L, (size_t)C * sizeof(double));
    const size_t o_tmp = lz_take(&L, (size_t)ntmp * sizeof(double));
    void *base = hg_cu_scratch(k, L.off);
    if (!base)
        return;
    double *part = LZ_AT(base, o_part, double), *G = LZ_AT(base, o_G, double);
    double *tmp = LZ_AT(base, o_tmp, double);
    LZ_LAUNCH(k_class_dx, nidx * d, k)(dX, dl, P, idx, nidx, C, d);
    HG_CU_LAUNCHED(k, "lorentz_class_logits_backward (dX)");
    /* dP (+=) eta 2 sum_a dl_a^T x_{idx[a]}: chunk partials, their sum, then the metric */
    LZ_LAUNCH(k_chunk_products, nch * MN, k)(part, dl, C, X, d, idx, nidx, C, d, rows, nch);
    HG_CU_LAUNCHED(k, "lorentz_class_logits_backward (dP)");
    hg_cu_sum_rows_d(k, G, part, nch, MN, MN, tmp);
    LZ_LAUNCH(k_add_eta2, MN, k)(dP, (const double *)G, MN, d);
    HG_CU_LAUNCHED(k, "lorentz_class_logits_backward (dP add)");
    if (db) {
        double *gbd = LZ_AT(base, o_gb, double);
        hg_cu_sum_rows(k, gbd, dl, nidx, C, C, tmp);
        hg_cu_add_d2f(k, db, gbd, C);
    }
}

void hg_cu_lorentz_radam_step(const hg_kctx *k, float *x, const float *grad, float *m, float *v,
                              int64_t n, int64_t d, float lr, float beta1, float beta2, float eps,
                              int64_t t)
{
    if (n <= 0 || d <= 0)
        return;
    const double bc1 = 1.0 - pow((double)beta1, (double)t);
    const double bc2 = 1.0 - pow((double)beta2, (double)t);
    LZ_LAUNCH(k_radam, n, k)(x, grad, m, v, n, d, lr, beta1, beta2, eps, bc1, bc2);
    HG_CU_LAUNCHED(k, "lorentz_radam_step");
}

void hg_cu_lorentz_stabilize(const hg_kctx *k, float *x, float *m, int64_t n, int64_t d)
{
    if (n <= 0 || d <= 0)
        return;
    LZ_LAUNCH(k_stabilize, n, k)(x, m, n, d);
    HG_CU_LAUNCHED(k, "lorentz_stabilize");
}

} /* extern "C" */
