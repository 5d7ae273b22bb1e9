/* lorentz_layer.c - CPU bodies of the fused HyboNet layer kernels: LorentzLinear forward and
 * backward (dense input and CSR input), the neighbourhood aggregation, with 16-wide paths and
 * generic-width ones. The shared vector and threading helpers are in lorentz_simd.h. */
#include <math.h>
#include <string.h>

#include "../src/hg.h"
#include "kernels.h"
#include "backend.h"
#include "reference.h"
#include "lorentz_simd.h"

/* ---- fused HyboNet layer kernels ---- */

typedef struct {
    float *hd, *z, *y;
    const float *x, *W, *b;
    float es, p;
    int relu;
    uint64_t seed;
    int64_t n, din;
} linear_fwd_args;

/* wt (16 x 16) (=) W^T for W (16 x din), din <= 16; rows k >= din of wt are 0. */
static void transpose_pad16(float (*wt)[16], const float *W, int64_t din)
{
    for (int kk = 0; kk < 16; kk++)
        for (int o = 0; o < 16; o++)
            wt[kk][o] = kk < din ? W[o * din + kk] : 0.0f;
}

/* Rows r0 .. r1 - 1 of the dense LorentzLinear of width 16 (din = 16, or din < 16 without hd:
 * the sums then stop at din terms; a padded input would only add exact zeros). */
static void linear_forward16(const linear_fwd_args *a, int64_t r0, int64_t r1)
{
    float *restrict hd = a->hd, *restrict z = a->z, *restrict y = a->y;
    const float *restrict x = a->x;
    const float es = a->es, p = a->p;
    const int relu = a->relu;
    const uint64_t seed = a->seed;
    const int64_t n = a->n, din = a->din;
    float wtm[16][16] __attribute__((aligned(64)));
    transpose_pad16(wtm, a->W, din);
    v16f wt[16];
    for (int kk = 0; kk < 16; kk++)
        wt[kk] = load16(wtm[kk]);
    const v16f bv = a->b ? load16(a->b) : ZERO16;
    const float *h = hd ? hd : x;
    head_fwd_sc sc[2];
    FOR_BLOCKS_PIPELINED_RANGE(i0, blk, r0, r1) {
        if (i0 > r0)
            head_fwd_out(y + (i0 - BLK) * 16, z + (i0 - BLK) * 16, &sc[blk ^ 1],
                         block_rows(i0 - BLK, n));
        if (i0 >= r1)
            continue;
        const int nb = block_rows(i0, n);
        if (hd) /* the whole block first: the products below read hd back one float at a time,
                   which store-to-load forwarding from a just-written vector would stall */
            for (int r = 0; r < nb; r++) {
                const int64_t i = i0 + r;
                v16f v = load16(x + i * 16);
                if (relu)
                    v = vmax(v, ZERO16);
                if (p > 0.0f) {
                    float mask[16];
                    hg_k_dropout_mask(mask, i * 16, 16, p, seed);
                    v *= load16(mask);
                }
                store16(hd + i * 16, v);
            }
        v16f zb[BLK];
        for (int r = 0; r < BLK; r++) {
            if (r >= nb) {
                zb[r] = ZERO16;
                continue;
            }
            const int64_t i = i0 + r;
            zb[r] = din == 16 ? matvec16(wt, h + i * 16, bv, 16)
                              : matvec16(wt, h + i * din, bv, (int)din);
            store16(z + i * 16, zb[r]);
        }
        head_fwd_scalars(&sc[blk], zb, es);
    }
}

static void linear_forward16_part(void *arg, int t, int T)
{
    const linear_fwd_args *a = arg;
    linear_forward16(a, par_split(a->n, t, T, BLK, NULL), par_split(a->n, t + 1, T, BLK, NULL));
}

/* Scratch rows of the generic (d != 16) paths. */
typedef struct {
    double acc[HG_LORENTZ_MAX_D];
    float f[HG_LORENTZ_MAX_D], a[HG_LORENTZ_MAX_D], c[HG_LORENTZ_MAX_D];
} row_scratch;

/* out (d) (=) init (NULL: 0) + sum_{q0 <= q < q1} coef[q] X[row(q)] in float, each element's
 * terms added in q order; zero coefficients skipped. Columns go 64 at a time through four vector
 * accumulators (registers, not a row in memory updated once per term), then 16 at a time. */
static void run_sum(float *restrict out, const float *init, int64_t q0, int64_t q1,
                    const float *coef, const int32_t *idx, const float *X, int64_t d)
{
    int64_t o0 = 0;
    for (; o0 + 64 <= d; o0 += 64) {
        v16f a[4];
        for (int u = 0; u < 4; u++)
            a[u] = init ? load16(init + o0 + 16 * u) : ZERO16;
        for (int64_t q = q0; q < q1; q++) {
            const float c = coef[q];
            if (c == 0.0f)
                continue;
            const float *x = X + (idx ? (int64_t)idx[q] : q) * d + o0;
            for (int u = 0; u < 4; u++)
                a[u] = vfma(splat(c), load16(x + 16 * u), a[u]);
        }
        for (int u = 0; u < 4; u++)
            store16(out + o0 + 16 * u, a[u]);
    }
    for (; o0 < d; o0 += 16) {
        const int64_t w = d - o0 < 16 ? d - o0 : 16;
        v16f a = init ? load_first16(init + o0, w) : ZERO16;
        for (int64_t q = q0; q < q1; q++) {
            const float c = coef[q];
            if (c == 0.0f)
                continue;
            a = vfma(splat(c), load_first16(X + (idx ? (int64_t)idx[q] : q) * d + o0, w), a);
        }
        store_first16(out + o0, a, w);
    }
}

/* out (d) = b (NULL: 0) + sum_{q < nterms} coef[q] X[row(q)] with row(q) = idx[q] (or q when idx
 * is NULL), X rows of width d: float runs of HG_K_FLOAT_RUN terms added into double; zero
 * coefficients (dropped inputs) are skipped. The generic-width form of gather_row16. */
static void axpy_rows(float *restrict out, const float *b, int64_t nterms, const float *coef,
                      const int32_t *idx, const float *X, int64_t d, row_scratch *sc)
{
    if (nterms <= HG_K_FLOAT_RUN) { /* one run: straight into out */
        run_sum(out, b, 0, nterms, coef, idx, X, d);
        return;
    }
    for (int64_t o = 0; o < d; o++)
        sc->acc[o] = b ? b[o] : 0.0;
    for (int64_t q0 = 0; q0 < nterms; q0 += HG_K_FLOAT_RUN) {
        const int64_t q1 = q0 + HG_K_FLOAT_RUN < nterms ? q0 + HG_K_FLOAT_RUN : nterms;
        run_sum(sc->f, NULL, q0, q1, coef, idx, X, d);
        for (int64_t o = 0; o < d; o++)
            sc->acc[o] += sc->f[o];
    }
    for (int64_t o = 0; o < d; o++)
        out[o] = (float)sc->acc[o];
}

/* The heads of rows r0 .. r1 - 1 of z (width d) into y, after adding the bias b (NULL: none) to
 * z: a block of rows at a time so that their scalar chains overlap. */
static void bias_heads(float *restrict y, float *restrict z, const float *b, double es, int64_t n,
                       int64_t d)
{
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        const int64_t i1 = i0 + BLK < n ? i0 + BLK : n;
        for (int64_t i = i0; b && i < i1; i++)
            for (int64_t o = 0; o < d; o++)
                z[i * d + o] += b[o];
        for (int64_t i = i0; i < i1; i++)
            head_forward_row(y + i * d, z + i * d, es, d);
    }
}

/* hd (=) dropout(act(x)) row by row (n x din), with the element mask of hg_k_dropout. */
static void act_dropout_rows(float *restrict hd, const float *restrict x, int relu, float p,
                             uint64_t seed, int64_t n, int64_t din, float *mask)
{
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * din;
        float *hi = hd + i * din;
        if (p > 0.0f) {
            hg_k_dropout_mask(mask, i * din, din, p, seed);
            for (int64_t j = 0; j < din; j++)
                hi[j] = (relu && !(xi[j] > 0.0f) ? 0.0f : xi[j]) * mask[j];
        } else {
            for (int64_t j = 0; j < din; j++)
                hi[j] = relu && !(xi[j] > 0.0f) ? 0.0f : xi[j];
        }
    }
}

/* A product of the wide paths through BLAS; a size past the BLAS int is recorded (the model's
 * sizes never get there: dim <= HG_LORENTZ_MAX_D, n and din fit int32 indices). */
static void wide_gemm(const hg_kctx *k, int tA, int tB, int64_t M, int64_t N, int64_t K,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                      int64_t ldc, const char *what)
{
    if (hg_cpu_gemm(k, tA, tB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc))
        HG_ERRORF(HG_EINVAL, "%s: a product of %lld x %lld x %lld does not fit BLAS", what,
                  (long long)M, (long long)N, (long long)K);
}

void hg_cpu_lorentz_linear_forward(const hg_kctx *k, float *hd, float *z, float *y, const float *x,
                                   const float *W, const float *b, const float *s, int relu,
                                   float p, uint64_t seed, int64_t n, int64_t din, int64_t d)
{
    (void)k;
    const double es = exp((double)*s);
    if (d == 16 && (din == 16 || (din < 16 && !hd))) {
        linear_fwd_args a = {hd, z, y, x, W, b, (float)es, p, relu, seed, n, din};
        par_run(par_threads(k, n), linear_forward16_part, &a);
        return;
    }
    if (d > HG_LORENTZ_MAX_D || din > HG_LORENTZ_MAX_D)
        return; /* the caller validates dim against this limit */
    /* any other width: the element-wise input map, z = h W^T through BLAS, bias and heads */
    float mask[HG_LORENTZ_MAX_D];
    if (hd)
        act_dropout_rows(hd, x, relu, p, seed, n, din, mask);
    wide_gemm(k, 0, 1, n, d, din, hd ? hd : x, din, W, din, z, d, "hg_k_lorentz_linear_forward");
    bias_heads(y, z, b, es, n, d);
}

/* Arguments of the two kernels that gather rows through a CSR matrix A: the sparse-input
 * LorentzLinear (out1 = z = A X + b, out2 = y = head(z)) and the aggregation (out1 = S = A X,
 * out2 = centroid(S)). */
typedef struct {
    float *out1, *out2;
    const int64_t *rowptr;
    const int32_t *col;
    const float *val, *X, *b;
    float es;
    int64_t n;
} gather_args;

static void linear_forward_csr16(const gather_args *a, int64_t r0, int64_t r1)
{
    float *restrict z = a->out1, *restrict y = a->out2;
    const int64_t *rowptr = a->rowptr, n = a->n;
    const int32_t *col = a->col;
    const float *val = a->val, *Wt = a->X;
    const v16f bv = a->b ? load16(a->b) : ZERO16;
    head_fwd_sc sc[2];
    FOR_BLOCKS_PIPELINED_RANGE(i0, blk, r0, r1) {
        if (i0 > r0)
            head_fwd_out(y + (i0 - BLK) * 16, z + (i0 - BLK) * 16, &sc[blk ^ 1],
                         block_rows(i0 - BLK, n));
        if (i0 >= r1)
            continue;
        const int nb = block_rows(i0, n);
        v16f zb[BLK];
        for (int r = 0; r < BLK; r++) {
            if (r >= nb) {
                zb[r] = ZERO16;
                continue;
            }
            const int64_t i = i0 + r;
            zb[r] = gather_row16(rowptr[i], rowptr[i + 1], col, val, Wt) + bv;
            store16(z + i * 16, zb[r]);
        }
        head_fwd_scalars(&sc[blk], zb, a->es);
    }
}

static void linear_forward_csr16_part(void *arg, int t, int T)
{
    const gather_args *a = arg;
    linear_forward_csr16(a, par_split(a->n, t, T, BLK, a->rowptr),
                         par_split(a->n, t + 1, T, BLK, a->rowptr));
}

/* Any width (the 16-wide kernels have their own paths): acc (=) A X + b row by row, then
 * out (=) the LorentzLinear head of acc (head != 0, log-scale factor es) or its centroid
 * normalisation, a block of rows at a time so their scalar chains overlap. */
static void gather_map_generic(float *acc, float *out, const int64_t *rowptr, const int32_t *col,
                               const float *val, const float *X, const float *b, int64_t n,
                               int64_t d, int head, double es)
{
    row_scratch scratch, *sc = &scratch;
    for (int64_t i = 0; i < n; i++) {
        axpy_rows(acc + i * d, b, rowptr[i + 1] - rowptr[i], val + rowptr[i], col + rowptr[i], X,
                  d, sc);
        if (i % BLK == BLK - 1 || i == n - 1)
            for (int64_t r = i / BLK * BLK; r <= i; r++) {
                if (head)
                    head_forward_row(out + r * d, acc + r * d, es, d);
                else
                    centroid_forward_row(out + r * d, acc + r * d, d);
            }
    }
}

/* Wt (din x d) (=) W^T for W (d x din), in tiles of 16 x 16 so that both sides stream through
 * whole cache lines. */
static void transpose_tiled(float *restrict Wt, const float *restrict W, int64_t d, int64_t din)
{
    for (int64_t o0 = 0; o0 < d; o0 += 16)
        for (int64_t c0 = 0; c0 < din; c0 += 16) {
            const int64_t o1 = o0 + 16 < d ? o0 + 16 : d, c1 = c0 + 16 < din ? c0 + 16 : din;
            for (int64_t c = c0; c < c1; c++)
                for (int64_t o = o0; o < o1; o++)
                    Wt[c * d + o] = W[o * din + c];
        }
}

void hg_cpu_lorentz_linear_forward_csr(const hg_kctx *k, float *z, float *y,
                                       const int64_t *rowptr, const int32_t *col,
                                       const float *val, const float *W, float *Wt,
                                       const float *b, const float *s, int64_t n, int64_t din,
                                       int64_t d)
{
    const double es = exp((double)*s);
    transpose_tiled(Wt, W, d, din);
    if (d == 16) {
        gather_args a = {z, y, rowptr, col, val, Wt, b, (float)es, n};
        par_run(par_threads(k, n), linear_forward_csr16_part, &a);
        return;
    }
    if (d > HG_LORENTZ_MAX_D)
        return;
    gather_map_generic(z, y, rowptr, col, val, Wt, b, n, d, 1, es);
}

/* Rows i0 .. i0 + nb - 1 of A X (16-wide) into Y. */
BLOCK_PHASE void gather_blk(float *restrict Y, const int64_t *rowptr, const int32_t *col,
                            const float *val, const float *X, int64_t i0, int nb)
{
    for (int r = 0; r < nb; r++) {
        const int64_t i = i0 + r;
        store16(Y + i * 16, gather_row16(rowptr[i], rowptr[i + 1], col, val, X));
    }
}

static void agg_forward16(const gather_args *a, int64_t r0, int64_t r1)
{
    float *restrict S = a->out1, *restrict out = a->out2;
    const int64_t n = a->n;
    centroid_fwd_sc sc[2];
    FOR_BLOCKS_PIPELINED_RANGE(i0, b, r0, r1) {
        if (i0 > r0)
            centroid_fwd_out(out + (i0 - BLK) * 16, S + (i0 - BLK) * 16, &sc[b ^ 1],
                             block_rows(i0 - BLK, n));
        if (i0 >= r1)
            continue;
        const int nb = block_rows(i0, n);
        gather_blk(S, a->rowptr, a->col, a->val, a->X, i0, nb);
        v16f sb[BLK];
        for (int r = 0; r < BLK; r++)
            sb[r] = load_row16(S, i0, r, nb);
        centroid_fwd_scalars(&sc[b], sb);
    }
}

static void agg_forward16_part(void *arg, int t, int T)
{
    const gather_args *a = arg;
    agg_forward16(a, par_split(a->n, t, T, BLK, a->rowptr), par_split(a->n, t + 1, T, BLK, a->rowptr));
}

void hg_cpu_lorentz_agg_forward(const hg_kctx *k, float *S, float *out, const int64_t *rowptr,
                              const int32_t *col, const float *val, const float *y, int64_t n,
                              int64_t d)
{
    if (d == 16) {
        gather_args a = {S, out, rowptr, col, val, y, NULL, 0.0f, n};
        par_run(par_threads(k, n), agg_forward16_part, &a);
        return;
    }
    if (d > HG_LORENTZ_MAX_D)
        return;
    gather_map_generic(S, out, rowptr, col, val, y, NULL, n, d, 0, 0.0);
}

/* dy rows of a block (At gS) and its z rows; returns nothing, fills dyb and zb (zero past nb). */
static inline void backward_inputs_blk(v16f *dyb, v16f *zb, const int64_t *t_rowptr,
                                       const int32_t *t_col, const float *t_val, const float *gS,
                                       const float *z, int64_t i0, int nb)
{
    for (int r = 0; r < BLK; r++) {
        if (r >= nb) {
            dyb[r] = zb[r] = ZERO16;
            continue;
        }
        const int64_t i = i0 + r;
        dyb[r] = gather_row16(t_rowptr[i], t_rowptr[i + 1], t_col, t_val, gS);
        zb[r] = load16(z + i * 16);
    }
}

/* Blocks of rows whose weight-gradient partial sums stay in float before the double flush. */
#define FLUSH_BLOCKS (HG_K_FLOAT_RUN / BLK)

/* dx rows of a block: act'(x) * mask * (gz W), from the block's head gradients gz, into dx
 * (row r of the block at dx + r * 16). W stays in registers; gz is read with broadcast loads. */
BLOCK_PHASE void input_grad_blk(float *restrict dx, const float (*gz)[16], const float *W,
                                const float *x, int relu, float p, uint64_t seed, int64_t i0,
                                int nb)
{
    v16f w[16];
    for (int o = 0; o < 16; o++)
        w[o] = load16(W + o * 16);
    for (int r = 0; r < nb; r++) {
        const int64_t i = i0 + r;
        v16f a0 = ZERO16, a1 = ZERO16;
        for (int o = 0; o < 16; o += 2) {
            a0 = vfma(splat(gz[r][o]), w[o], a0);
            a1 = vfma(splat(gz[r][o + 1]), w[o + 1], a1);
        }
        v16f g = a0 + a1;
        if (p > 0.0f) {
            float mask[16];
            hg_k_dropout_mask(mask, i * 16, 16, p, seed);
            g *= load16(mask);
        }
        if (relu)
            g = vsel(load16(x + i * 16) > 0.0f, g, ZERO16);
        store16(dx + r * 16, g);
    }
}

/* The input gradient of a block into gx, or with S_prev its centroid backward through S_prev. */
static inline void input_grad_out_blk(float *restrict gx, const float (*gz)[16], const float *W,
                                      const float *x, const float *S_prev, int relu, float p,
                                      uint64_t seed, int64_t i0, int nb)
{
    if (!S_prev) {
        input_grad_blk(gx + i0 * 16, gz, W, x, relu, p, seed, i0, nb);
        return;
    }
    float dx[BLK][16] __attribute__((aligned(64)));
    input_grad_blk(dx[0], gz, W, x, relu, p, seed, i0, nb);
    v16f dxb[BLK], sb[BLK];
    for (int r = 0; r < BLK; r++) {
        dxb[r] = r < nb ? load16(dx[r]) : ZERO16;
        sb[r] = load_row16(S_prev, i0, r, nb);
    }
    centroid_bwd_sc sc;
    centroid_bwd_scalars(&sc, dxb, sb);
    centroid_bwd_out(gx + i0 * 16, dx[0], S_prev + i0 * 16, &sc, nb);
}

typedef struct {
    float *gx;
    double gWt[256];  /* the transposed weight gradient (din rows of 16), in double */
    const int64_t *t_rowptr;
    const int32_t *t_col;
    const float *t_val, *gS, *z, *hd, *x, *W, *S_prev;
    float es, p;
    int relu;
    uint64_t seed;
    int64_t n, din;
    float *ws;        /* chunk slots (threads), or NULL */
    double gbd[16];   /* the bias gradient, in double */
    double gsd;       /* the scale gradient, in double */
} linear_bwd_args;

/* Rows r0 .. r1 - 1 (r0 a multiple of HG_K_CHUNK) of the LorentzLinear backward of width 16 (din
 * = 16, or din < 16 without gx: the input zero-padded to 16 coordinates). Each
 * chunk's float partials of the weight and bias gradients and each block's part of the scale
 * gradient go, with ws, to the chunk's slot; without, straight into a->gWt, a->gbd, a->gsd. */
static void linear_backward16(linear_bwd_args *a, int64_t r0, int64_t r1, float *ws)
{
    float *restrict gx = a->gx;
    const float *z = a->z, *hd = a->hd, *x = a->x, *S_prev = a->S_prev;
    const float es = a->es, p = a->p;
    const int relu = a->relu;
    const uint64_t seed = a->seed;
    const int64_t n = a->n, din = a->din;
    /* Gm[k][o]: float partial of sum_rows hd[k] dz[o], kept in memory between blocks and in
       registers within one (the phases of a block would not fit in 32 registers at once) */
    float Gm[16][16] __attribute__((aligned(64))) = {{0}};
    /* an aligned copy of W: its rows are read as vector operands, and a row straddling two cache
       lines costs two loads */
    float Wa[16][16] __attribute__((aligned(64))), pad[16];
    if (gx)
        memcpy(Wa, a->W, sizeof Wa);
    float dyr[2][BLK][16] __attribute__((aligned(64))); /* dy rows of this block and the last */
    float gz[BLK][16] __attribute__((aligned(64)));     /* head gradients of the last block */
    head_bwd_sc sc[2];
    v16f gbp = ZERO16;
    FOR_BLOCKS_PIPELINED_RANGE(i0, b, r0, r1) {
        if (i0 < r1) { /* this block: dy = At gS, the head's scalars */
            const int nb = block_rows(i0, n);
            v16f dyb[BLK], zb[BLK];
            backward_inputs_blk(dyb, zb, a->t_rowptr, a->t_col, a->t_val, a->gS, z, i0, nb);
            for (int r = 0; r < BLK; r++)
                store16(dyr[b][r], dyb[r]);
            head_bwd_scalars(&sc[b], dyb, zb, load_col0_16(z + i0 * 16, nb), es);
        }
        if (i0 == r0)
            continue;
        /* the last block: dz, the parameter gradients, the input gradient */
        const int64_t p0 = i0 - BLK;
        const int nb = block_rows(p0, n);
        const float gsb = head_bwd_out(gz[0], dyr[b ^ 1][0], z + p0 * 16, &sc[b ^ 1], nb);
        if (ws)
            chunk_slot(ws, p0)[SLOT_BLOCKS + p0 % HG_K_CHUNK / BLK] = gsb;
        else
            a->gsd += gsb;
        THROUGH_MEMORY(gz);
        {
            v16f G[16];
            for (int kk = 0; kk < 16; kk++)
                G[kk] = load16(Gm[kk]);
            for (int r = 0; r < nb; r++) {
                const v16f g = load16(gz[r]);
                const int64_t i = p0 + r;
                const float *h = hd + i * din;
                gbp += g;
                /* din < 16: rows kk >= din of G collect products with the next row's first
                   coordinates and are never read; the last rows read a zero-padded copy
                   instead of reading past the array */
                if (din < 16 && i * din + 16 > n * din) {
                    memset(pad, 0, sizeof pad);
                    memcpy(pad, h, (size_t)din * sizeof *h);
                    h = pad;
                }
                for (int kk = 0; kk < 16; kk++)
                    G[kk] = vfma(splat(h[kk]), g, G[kk]);
            }
            for (int kk = 0; kk < 16; kk++)
                store16(Gm[kk], G[kk]);
        }
        THROUGH_MEMORY(Gm);
        if (gx)
            input_grad_out_blk(gx, gz, Wa[0], x, S_prev, relu, p, seed, p0, nb);
        if ((p0 + BLK) % HG_K_CHUNK == 0 || p0 + BLK >= n) { /* the chunk's end */
            if (ws) {
                float *slot = chunk_slot(ws, p0);
                memcpy(slot, Gm, sizeof Gm);
                store16(slot + SLOT_BIAS, gbp);
            } else {
                for (int kk = 0; kk < 16; kk++)
                    flush16(a->gWt + kk * 16, load16(Gm[kk]));
                flush16(a->gbd, gbp);
            }
            memset(Gm, 0, sizeof Gm);
            gbp = ZERO16;
        }
    }
}

/* Thread t of T: its rows into the slots, then (after all rows) its share of the sums over the
 * slots: rows of gWt, and the bias and scale on the last thread. */
static void linear_backward16_part(void *arg, int t, int T)
{
    linear_bwd_args *a = arg;
    const int64_t n = a->n, nchunks = (n + HG_K_CHUNK - 1) / HG_K_CHUNK;
    const int64_t r0 = par_split(n, t, T, HG_K_CHUNK, a->t_rowptr),
                  r1 = par_split(n, t + 1, T, HG_K_CHUNK, a->t_rowptr);
    if (r0 < r1)
        linear_backward16(a, r0, r1, a->ws);
    par_barrier(T);
    for (int kk = 16 * t / T; kk < 16 * (t + 1) / T; kk++)
        sum_slots16(a->gWt + kk * 16, a->ws, nchunks, kk * 16);
    if (t == T - 1) {
        sum_slots16(a->gbd, a->ws, nchunks, SLOT_BIAS);
        a->gsd = sum_slot_blocks(a->ws, n);
    }
}

/* gW (d x din) (=) the float rounding of the transposed double sums gWt (din x d). */
static void store_gw(float *restrict gW, const double *gWt, int64_t din, int64_t d)
{
    for (int64_t o = 0; o < d; o++)
        for (int64_t c = 0; c < din; c++)
            gW[o * din + c] = (float)gWt[c * d + o];
}

/* dz (=) the head backward of dy = At gS row by row (n x d); gbd (+=) the column sums of dz in
 * double. Returns the scale gradient. */
static double head_backward_rows(float *restrict dz, double *restrict gbd, const int64_t *t_rowptr,
                                 const int32_t *t_col, const float *t_val, const float *gS,
                                 const float *z, double es, int64_t n, int64_t d, row_scratch *sc)
{
    double gsd = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float *dzi = dz + i * d;
        axpy_rows(sc->a, NULL, t_rowptr[i + 1] - t_rowptr[i], t_val + t_rowptr[i],
                  t_col + t_rowptr[i], gS, d, sc);
        gsd += head_backward_row(dzi, sc->a, z + i * d, es, d);
        for (int64_t o = 0; o < d; o++)
            gbd[o] += dzi[o];
    }
    return gsd;
}

void hg_cpu_lorentz_linear_backward(const hg_kctx *k, float *gx, float *dz, float *gW, float *gb,
                                  float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                  const float *t_val, const float *gS, const float *z,
                                  const float *hd, const float *x, const float *W,
                                  const float *S_prev, const float *s, int relu, float p, uint64_t seed,
                                  int64_t n, int64_t din, int64_t d, float *ws)
{
    const double es = exp((double)*s);
    if (d == 16 && (din == 16 || (din < 16 && !gx))) {
        linear_bwd_args a = {gx,   {0},       t_rowptr, t_col, t_val, gS,   z,    hd, x, W,
                             S_prev, (float)es, p,      relu,  seed,  n,    din,  ws, {0}, 0.0};
        const int T = ws ? par_threads(k, n) : 1;
        if (T > 1)
            par_run(T, linear_backward16_part, &a);
        else
            linear_backward16(&a, 0, n, NULL);
        store_gw(gW, a.gWt, din, 16);
        if (gb)
            for (int j = 0; j < 16; j++)
                gb[j] += (float)a.gbd[j];
        *gs += (float)a.gsd;
        return;
    }
    if (d > HG_LORENTZ_MAX_D || din > HG_LORENTZ_MAX_D)
        return;
    /* any other width: the head backward row by row into dz, the two products through BLAS, the
       input gradient's element-wise masks and centroid backward row by row */
    row_scratch scratch, *sc = &scratch;
    double gbd[HG_LORENTZ_MAX_D] = {0};
    const double gsd = head_backward_rows(dz, gbd, t_rowptr, t_col, t_val, gS, z, es, n, d, sc);
    wide_gemm(k, 1, 0, d, din, n, dz, d, hd, din, gW, din, "hg_k_lorentz_linear_backward");
    if (gb)
        for (int64_t j = 0; j < d; j++)
            gb[j] += (float)gbd[j];
    *gs += (float)gsd;
    if (!gx)
        return;
    wide_gemm(k, 0, 0, n, din, d, dz, d, W, din, gx, din, "hg_k_lorentz_linear_backward");
    for (int64_t i = 0; i < n; i++) {
        float *gi = gx + i * din, *dx = S_prev ? sc->c : gi;
        const float *xi = x + i * din;
        if (p > 0.0f) {
            hg_k_dropout_mask(sc->f, i * din, din, p, seed);
            for (int64_t j = 0; j < din; j++)
                dx[j] = relu && !(xi[j] > 0.0f) ? 0.0f : gi[j] * sc->f[j];
        } else if (relu || S_prev) {
            for (int64_t j = 0; j < din; j++)
                dx[j] = relu && !(xi[j] > 0.0f) ? 0.0f : gi[j];
        }
        if (S_prev)
            centroid_backward_row(gi, dx, S_prev + i * din, din);
    }
}

typedef struct {
    float *dz, *gW;
    const int64_t *t_rowptr, *xt_rowptr;
    const int32_t *t_col, *xt_col;
    const float *t_val, *gS, *z, *xt_val;
    float es;
    int64_t n, din;
    float *ws;
    double gbd[16], gsd;
} linear_bwd_csr_args;

/* Rows r0 .. r1 - 1 (r0 a multiple of HG_K_CHUNK) of the sparse-input layer's head backward:
 * dz, and the bias and scale gradients (into the slots of ws, or straight into a->gbd, a->gsd). */
static void linear_backward_csr16_rows(linear_bwd_csr_args *a, int64_t r0, int64_t r1, float *ws)
{
    float *restrict dz = a->dz;
    const float *z = a->z;
    const int64_t n = a->n;
    v16f gbp = ZERO16;
    float dyr[2][BLK][16] __attribute__((aligned(64)));
    head_bwd_sc sc[2];
    FOR_BLOCKS_PIPELINED_RANGE(i0, b, r0, r1) {
        if (i0 < r1) {
            const int nb = block_rows(i0, n);
            v16f dyb[BLK], zb[BLK];
            backward_inputs_blk(dyb, zb, a->t_rowptr, a->t_col, a->t_val, a->gS, z, i0, nb);
            for (int r = 0; r < BLK; r++)
                store16(dyr[b][r], dyb[r]);
            head_bwd_scalars(&sc[b], dyb, zb, load_col0_16(z + i0 * 16, nb), a->es);
        }
        if (i0 == r0)
            continue;
        const int64_t p0 = i0 - BLK;
        const int nb = block_rows(p0, n);
        const float gsb = head_bwd_out(dz + p0 * 16, dyr[b ^ 1][0], z + p0 * 16, &sc[b ^ 1], nb);
        if (ws)
            chunk_slot(ws, p0)[SLOT_BLOCKS + p0 % HG_K_CHUNK / BLK] = gsb;
        else
            a->gsd += gsb;
        for (int r = 0; r < nb; r++)
            gbp += load16(dz + (p0 + r) * 16);
        if ((p0 + BLK) % HG_K_CHUNK == 0 || p0 + BLK >= n) {
            if (ws)
                store16(chunk_slot(ws, p0) + SLOT_BIAS, gbp);
            else
                flush16(a->gbd, gbp);
            gbp = ZERO16;
        }
    }
}

/* Columns c0 .. c1 - 1 of gW (16 x din): column c = sum over the rows i holding feature c of
 * X_ic dz_i, a gather through Xt in float runs added in double, rounded to float. */
static void linear_backward_csr16_weight(const linear_bwd_csr_args *a, int64_t c0, int64_t c1)
{
    const int64_t din = a->din;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t p0 = a->xt_rowptr[c], p1 = a->xt_rowptr[c + 1];
        double w[16] = {0};
        for (int64_t q = p0; q < p1; q += HG_K_FLOAT_RUN)
            flush16(w, gather_run16(q, q + HG_K_FLOAT_RUN < p1 ? q + HG_K_FLOAT_RUN : p1,
                                    a->xt_col, a->xt_val, a->dz));
        for (int o = 0; o < 16; o++)
            a->gW[o * din + c] = (float)w[o];
    }
}

static void linear_backward_csr16_part(void *arg, int t, int T)
{
    linear_bwd_csr_args *a = arg;
    const int64_t n = a->n, din = a->din;
    const int64_t r0 = par_split(n, t, T, HG_K_CHUNK, a->t_rowptr),
                  r1 = par_split(n, t + 1, T, HG_K_CHUNK, a->t_rowptr);
    if (r0 < r1)
        linear_backward_csr16_rows(a, r0, r1, a->ws);
    par_barrier(T);
    linear_backward_csr16_weight(a, par_split(din, t, T, 1, a->xt_rowptr),
                                 par_split(din, t + 1, T, 1, a->xt_rowptr));
    if (t == T - 1) {
        const int64_t nchunks = (n + HG_K_CHUNK - 1) / HG_K_CHUNK;
        sum_slots16(a->gbd, a->ws, nchunks, SLOT_BIAS);
        a->gsd = sum_slot_blocks(a->ws, n);
    }
}

void hg_cpu_lorentz_linear_backward_csr(const hg_kctx *k, float *dz, float *gW, float *gb,
                                      float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                      const float *t_val, const float *gS, const float *z,
                                      const int64_t *xt_rowptr, const int32_t *xt_col,
                                      const float *xt_val, const float *s, int64_t n, int64_t din,
                                      int64_t d, float *ws)
{
    const double es = exp((double)*s);
    if (d == 16) {
        linear_bwd_csr_args a = {dz, gW, t_rowptr, xt_rowptr, t_col, xt_col, t_val, gS, z,
                                 xt_val, (float)es, n, din, ws, {0}, 0.0};
        const int T = ws ? par_threads(k, n) : 1;
        if (T > 1) {
            par_run(T, linear_backward_csr16_part, &a);
        } else {
            linear_backward_csr16_rows(&a, 0, n, NULL);
            linear_backward_csr16_weight(&a, 0, din);
        }
        if (gb)
            for (int j = 0; j < 16; j++)
                gb[j] += (float)a.gbd[j];
        *gs += (float)a.gsd;
        return;
    }
    if (d > HG_LORENTZ_MAX_D)
        return;
    row_scratch scratch, *sc = &scratch;
    double gbd[HG_LORENTZ_MAX_D] = {0};
    const double gsd = head_backward_rows(dz, gbd, t_rowptr, t_col, t_val, gS, z, es, n, d, sc);
    /* column c of gW: the rows of dz holding feature c, weighted (float runs into double) */
    for (int64_t c = 0; c < din; c++) {
        const int64_t q0 = xt_rowptr[c], nq = xt_rowptr[c + 1] - q0;
        axpy_rows(sc->a, NULL, nq, xt_val + q0, xt_col + q0, dz, d, sc);
        for (int64_t o = 0; o < d; o++)
            gW[o * din + c] = sc->a[o];
    }
    if (gb)
        for (int64_t j = 0; j < d; j++)
            gb[j] += (float)gbd[j];
    *gs += (float)gsd;
}
