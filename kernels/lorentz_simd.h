/* lorentz_simd.h - internal to the CPU Lorentz kernels (lorentz_ops.c, lorentz_layer.c,
 * lorentz_decoder.c): the 16-wide vector helpers, the block loops, the threading helpers and
 * the per-row Lorentz maps they share. Not a public header. */
#ifndef HG_KERNELS_LORENTZ_SIMD_H
#define HG_KERNELS_LORENTZ_SIMD_H

#include <math.h>
#include <string.h>

#include "../src/hg.h"
#include "kernels.h"
#include "backend.h"
#include "reference.h"

#include "hg_config.h"
#if HG_HAVE_OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif


/* 16-wide rows (the model's width in every reference run) as one vector value (GCC/Clang vector
 * extensions: one zmm, two ymm or four xmm); sums of 16 products stay in float, whose rounding
 * (16 eps relative) is far below the float32 storage error of the inputs.
 *
 * The per-row scalars of the Lorentz maps (a norm, a sigmoid, a square root, a division) are
 * computed for 16 rows at once: rsum16 turns 16 row vectors into the vector of their 16 sums
 * (a pairwise tree), so exp/sqrt/div run once per 16 rows as vector operations instead of once
 * per row as scalar ones. A block is 16 rows; the last one is padded with zero rows, which every
 * map below sends to finite values, and only its real rows are written. */
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef int64_t v8l __attribute__((vector_size(64)));
typedef double v8d __attribute__((vector_size(64)));
static const v16f SPACE16 = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const v16f ETA16 = {-1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const v16f ZERO16 = {0};
#define BLK 16
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
/* Make the compiler assume x (an array) changed in memory: the per-row loops after it then read
 * its scalars with broadcast loads (load ports) instead of extracting lanes of a register
 * (shuffles, the scarce port of these blocks: 16 rows per block already need ~45 shuffles for the
 * row sums). Empty asm, no instruction. */
#define THROUGH_MEMORY(x) __asm__("" : "+m"(x))
/* A phase of a block kept out of line: it then gets the whole register file, where one inlined
 * body of several phases spills its accumulators every row. */
#define BLOCK_PHASE static __attribute__((noinline))

static inline v16f load16(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store16(float *p, v16f v) { memcpy(p, &v, sizeof v); }

static inline v8d load8d(const double *p)
{
    v8d v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store8d(double *p, v8d v) { memcpy(p, &v, sizeof v); }

static inline v16f splat(float x) { return (v16f){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

/* a * b + c, fused where the ISA has FMA (one rounding), else two roundings. Written with the
 * intrinsics where they exist: GCC does not always turn a lane loop of fmaf into one vector FMA. */
static inline v16f vfma(v16f a, v16f b, v16f c)
{
#if defined(__AVX512F__)
    return (v16f)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
    typedef float v8f __attribute__((vector_size(32)));
    v8f lo = (v8f)_mm256_fmadd_ps((__m256)SHUF(a, a, 0, 1, 2, 3, 4, 5, 6, 7),
                                  (__m256)SHUF(b, b, 0, 1, 2, 3, 4, 5, 6, 7),
                                  (__m256)SHUF(c, c, 0, 1, 2, 3, 4, 5, 6, 7));
    v8f hi = (v8f)_mm256_fmadd_ps((__m256)SHUF(a, a, 8, 9, 10, 11, 12, 13, 14, 15),
                                  (__m256)SHUF(b, b, 8, 9, 10, 11, 12, 13, 14, 15),
                                  (__m256)SHUF(c, c, 8, 9, 10, 11, 12, 13, 14, 15));
    return SHUF(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    return a * b + c;
#endif
}

static inline v16f vsel(v16i mask, v16f a, v16f b) /* mask ? a : b, lane-wise */
{
    return (v16f)(((v16i)a & mask) | ((v16i)b & ~mask));
}

/* Lane-wise a > b ? a : b (a NaN lane gives b, as fmaxf(NaN, b)). */
static inline v16f vmax(v16f a, v16f b) { return vsel(a > b, a, b); }

static inline v16f vabs(v16f a) { return (v16f)((v16i)a & 0x7fffffff); }

static inline v16f vsqrt(v16f a)
{
#if defined(__AVX512F__)
    return (v16f)_mm512_sqrt_ps((__m512)a);
#else
    v16f r;
    for (int j = 0; j < 16; j++)
        r[j] = sqrtf(a[j]);
    return r;
#endif
}

/* exp(x) lane-wise (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial; about
 * 1 ulp). The argument is clamped to the float range of the result first. */
#define HG_VEXP_MAX 88.3762626647949f
#define HG_VEXP_MIN (-87.3365447504019f)
static inline v16f vexp(v16f x)
{
    x = vmax(x, splat(HG_VEXP_MIN));
    x = vsel(x < HG_VEXP_MAX, x, splat(HG_VEXP_MAX));
    /* round to nearest by the 1.5 * 2^23 shift (|x log2 e| < 2^22) */
    v16f fx = x * 1.44269504088896341f + 12582912.0f;
    fx = fx - 12582912.0f;
    v16f r = x - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    v16f p = splat(1.9875691500e-4f);
    p = vfma(p, r, splat(1.3981999507e-3f));
    p = vfma(p, r, splat(8.3334519073e-3f));
    p = vfma(p, r, splat(4.1665795894e-2f));
    p = vfma(p, r, splat(1.6666665459e-1f));
    p = vfma(p, r, splat(5.0000001201e-1f));
    p = vfma(p, r * r, r) + 1.0f;
    v16i e = (__builtin_convertvector(fx, v16i) + 127) << 23;
    return p * (v16f)e;
}

static inline v16f vsigmoid(v16f x) { return 1.0f / (1.0f + vexp(-x)); }

/* out[r] = sum_j v[r][j] for 16 vectors: a pairwise tree whose four levels fold 256-, 128-, 64-
 * and 32-bit halves of two vectors into one; the inputs are taken in 4-bit reversed order so
 * that the sums come out in row order. */
static inline v16f rsum16(const v16f *v)
{
    static const int br[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
    v16f w[8], x[4], y[2];
    for (int k = 0; k < 8; k++) {
        v16f a = v[br[2 * k]], b = v[br[2 * k + 1]];
        w[k] = SHUF(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               SHUF(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
    for (int k = 0; k < 4; k++)
        x[k] = SHUF(w[2 * k], w[2 * k + 1], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
               SHUF(w[2 * k], w[2 * k + 1], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int k = 0; k < 2; k++)
        y[k] = SHUF(x[2 * k], x[2 * k + 1], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
               SHUF(x[2 * k], x[2 * k + 1], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    return SHUF(y[0], y[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
           SHUF(y[0], y[1], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}

/* out[r] = v[r][0] for 16 vectors: the first operands of rsum16's tree. */
static inline v16f rlane0(const v16f *v)
{
    static const int br[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
    v16f w[8], x[4], y[2];
    for (int k = 0; k < 8; k++)
        w[k] = SHUF(v[br[2 * k]], v[br[2 * k + 1]], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20,
                    21, 22, 23);
    for (int k = 0; k < 4; k++)
        x[k] = SHUF(w[2 * k], w[2 * k + 1], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    for (int k = 0; k < 2; k++)
        y[k] = SHUF(x[2 * k], x[2 * k + 1], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    return SHUF(y[0], y[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
}

/* Sum of the 16 lanes, as a tree. */
static inline float hsum16(v16f v)
{
    typedef float v8f __attribute__((vector_size(32)));
    typedef float v4f __attribute__((vector_size(16)));
    v8f a = SHUF(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + SHUF(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    v4f b = SHUF(a, a, 0, 1, 2, 3) + SHUF(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

/* The first n (<= 16) lanes of a row: masked stores and loads, so no call to memcpy with a
 * variable size on every row. */
static inline void store_first16(float *p, v16f v, int64_t n)
{
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
#else
    for (int64_t j = 0; j < n; j++)
        p[j] = v[j];
#endif
}

static inline v16f load_first16(const float *p, int64_t n)
{
#if defined(__AVX512F__)
    return (v16f)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
#else
    v16f v = ZERO16;
    for (int64_t j = 0; j < n; j++)
        v[j] = p[j];
    return v;
#endif
}

/* Block row i0 + r of an n-row matrix, or a zero row past the end. */
static inline v16f load_row16(const float *X, int64_t i0, int r, int nb)
{
    return r < nb ? load16(X + (i0 + r) * 16) : ZERO16;
}

/* sum_p val[p] X[col[p]] over p0 <= p < p1 for 16-wide X, in float. */
static inline v16f gather_run16(int64_t p0, int64_t p1, const int32_t *restrict col,
                                const float *restrict val, const float *restrict X)
{
    v16f a0 = ZERO16;
    for (int64_t p = p0; p < p1; p++)
        a0 += val[p] * load16(X + (int64_t)col[p] * 16);
    return a0;
}

/* Row i of A X for 16-wide X: sum_p val[p] X[col[p]]. Runs of HG_K_FLOAT_RUN terms in float;
 * longer rows (hubs) add their runs in double. */
static inline v16f gather_row16(int64_t p0, int64_t p1, const int32_t *restrict col,
                                const float *restrict val, const float *restrict X)
{
    if (p1 - p0 <= HG_K_FLOAT_RUN)
        return gather_run16(p0, p1, col, val, X);
    v8d lo = {0}, hi = {0};
    for (int64_t q = p0; q < p1; q += HG_K_FLOAT_RUN) {
        v16f a = gather_run16(q, q + HG_K_FLOAT_RUN < p1 ? q + HG_K_FLOAT_RUN : p1, col, val, X);
        lo += __builtin_convertvector(SHUF(a, a, 0, 1, 2, 3, 4, 5, 6, 7), v8d);
        hi += __builtin_convertvector(SHUF(a, a, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
    }
    typedef float v8f __attribute__((vector_size(32)));
    v8f l = __builtin_convertvector(lo, v8f), h = __builtin_convertvector(hi, v8f);
    return SHUF(l, h, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/* Column 0 of a block of 16-wide rows in memory: lane r = p[16 r] for r < nb, else 0. Used for
 * rows written long before (a gather of rows still in the store queue would stall). */
static inline v16f load_col0_16(const float *p, int nb)
{
#if defined(__AVX512F__)
    const __m512i idx = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192,
                                          208, 224, 240);
    return (v16f)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)((1u << nb) - 1u), idx,
                                          p, 4);
#else
    v16f v = ZERO16;
    for (int r = 0; r < nb; r++)
        v[r] = p[r * 16];
    return v;
#endif
}

static const v16i LANE0 = {-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

/* Every map on a block is split in two: its per-row scalars (row sums, exp, sqrt, divisions: a
 * long dependency chain for a few instructions) and its outputs (per row: broadcast loads of the
 * scalars, a few FMAs, a store: many independent instructions). The kernels run the scalars of
 * block b before the outputs of block b - 1, so the out-of-order core overlaps one block's chain
 * with the previous block's throughput work (a block's whole map, about 400 instructions, would
 * fill the reorder window and leave the chain exposed). The scalars go through memory
 * (THROUGH_MEMORY), read back as broadcast loads. */

/* LorentzLinear head: y = [t, z_sp f] per row. */
typedef struct {
    float f[BLK], t[BLK];
} head_fwd_sc;

static inline void head_fwd_scalars(head_fwd_sc *o, const v16f *zb, float es)
{
    v16f sq[BLK];
    for (int r = 0; r < BLK; r++) {
        const v16f zs = zb[r] * SPACE16;
        sq[r] = zs * zs;
    }
    v16f q = vmax(rsum16(sq), splat(HG_LORENTZ_LINEAR_MIN_SQNORM));
    v16f t = es * vsigmoid(rlane0(zb)) + HG_LORENTZ_LINEAR_TIME_OFFSET;
    store16(o->f, vsqrt((t * t - 1.0f) / q));
    store16(o->t, t);
    THROUGH_MEMORY(*o);
}

static inline void head_fwd_out(float *restrict y, const float *z, const head_fwd_sc *o, int nb)
{
    for (int r = 0; r < nb; r++)
        store16(y + r * 16, vsel(LANE0, splat(o->t[r]), load16(z + r * 16) * o->f[r]));
}

/* Head backward. Per row, with K = es sg (1 - sg),
 *   gz = dy * [K, f, .., f] + z * [0, c, .., c] + [a df_dt K, 0, .., 0],
 * whose lane 0 is (dy_0 + a df_dt) K: no lane of dy has to be taken out of its row. */
typedef struct {
    float f[BLK], c[BLK], k[BLK], e[BLK], s[BLK];
    float gs; /* the block's sum_r a df_dt sg es, one part of dL/ds */
} head_bwd_sc;

/* dyb, zb: the block's rows (zero past its end); z0 = column 0 of zb. */
static inline void head_bwd_scalars(head_bwd_sc *o, const v16f *dyb, const v16f *zb, v16f z0,
                                    float es)
{
    v16f sq[BLK], ad[BLK];
    for (int r = 0; r < BLK; r++) {
        const v16f zs = zb[r] * SPACE16;
        sq[r] = zs * zs;
        ad[r] = dyb[r] * zs;
    }
    v16f q_raw = rsum16(sq), a = rsum16(ad); /* a = sum_j dy_j z_j over the spatial part */
    v16f sg = vsigmoid(z0);
    v16f t = sg * es + HG_LORENTZ_LINEAR_TIME_OFFSET;
    v16i clamped = q_raw < HG_LORENTZ_LINEAR_MIN_SQNORM;
    v16f rq = 1.0f / vsel(clamped, splat(HG_LORENTZ_LINEAR_MIN_SQNORM), q_raw);
    v16f tt1 = t * t - 1.0f;
    v16f f = vsqrt(tt1 * rq);
    v16f df_dt = t * f / tt1; /* = t / (q f) */
    v16f df_dq = vsel(clamped, ZERO16, -0.5f * f * rq);
    v16f ses = sg * es;
    v16f K = ses * (1.0f - sg);
    v16f adt = a * df_dt;
    store16(o->f, f);
    store16(o->c, a * df_dq * 2.0f);
    store16(o->k, K);
    store16(o->e, adt * K);
    store16(o->s, ses);
    o->gs = hsum16(adt * ses);
    THROUGH_MEMORY(*o);
}

/* gz rows (< nb) from the dy and z rows; returns the block's dL/ds = sum_r (dy0 + a df_dt) sg es. */
static inline float head_bwd_out(float *restrict gz, const float *dy, const float *z,
                                 const head_bwd_sc *o, int nb)
{
    v16f gs0 = ZERO16; /* lane 0: sum_r dy0_r sg_r es */
    for (int r = 0; r < nb; r++) {
        const v16f F = vsel(LANE0, splat(o->k[r]), splat(o->f[r]));
        const v16f C = vsel(LANE0, ZERO16, splat(o->c[r]));
        const v16f E = vsel(LANE0, splat(o->e[r]), ZERO16);
        const v16f dyr = load16(dy + r * 16);
        store16(gz + r * 16, vfma(dyr, F, vfma(load16(z + r * 16), C, E)));
        gs0 = vfma(dyr, splat(o->s[r]), gs0);
    }
    return gs0[0] + o->gs;
}

/* Centroid normalisation: out = S r per row. */
typedef struct {
    float r[BLK];
} centroid_fwd_sc;

static inline void centroid_fwd_scalars(centroid_fwd_sc *o, const v16f *sb)
{
    v16f mm[BLK];
    for (int r = 0; r < BLK; r++)
        mm[r] = sb[r] * sb[r] * ETA16;
    v16f c = vmax(vabs(rsum16(mm)), splat(HG_LORENTZ_CENTROID_MIN));
    store16(o->r, 1.0f / vsqrt(c));
    THROUGH_MEMORY(*o);
}

static inline void centroid_fwd_out(float *restrict out, const float *S, const centroid_fwd_sc *o,
                                    int nb)
{
    for (int r = 0; r < nb; r++)
        store16(out + r * 16, load16(S + r * 16) * o->r[r]);
}

/* Centroid backward: dS = dout r + k eta S per row. */
typedef struct {
    float r[BLK], k[BLK];
} centroid_bwd_sc;

static inline void centroid_bwd_scalars(centroid_bwd_sc *o, const v16f *gob, const v16f *sb)
{
    v16f mm[BLK], gd[BLK];
    for (int r = 0; r < BLK; r++) {
        mm[r] = sb[r] * sb[r] * ETA16;
        gd[r] = gob[r] * sb[r];
    }
    v16f m = rsum16(mm), gs = rsum16(gd);
    v16f a = vabs(m);
    v16i clamped = a < HG_LORENTZ_CENTROID_MIN;
    v16f c = vsel(clamped, splat(HG_LORENTZ_CENTROID_MIN), a);
    v16f r = 1.0f / vsqrt(c);
    /* dr/dm = -1/2 c^(-3/2) sign(m); dm/dS_j = 2 eta_j S_j */
    v16f sign = vsel(m < 0.0f, splat(-1.0f), splat(1.0f));
    v16f dr_dm = vsel(clamped, ZERO16, -0.5f * r / c * sign);
    store16(o->r, r);
    store16(o->k, gs * dr_dm * 2.0f);
    THROUGH_MEMORY(*o);
}

static inline void centroid_bwd_out(float *restrict dS, const float *go, const float *S,
                                    const centroid_bwd_sc *o, int nb)
{
    for (int r = 0; r < nb; r++)
        store16(dS + r * 16, vfma(load16(go + r * 16), splat(o->r[r]),
                                  o->k[r] * (ETA16 * load16(S + r * 16))));
}

/* Rows of the block at i0 of an n-row matrix: its size (16 but for the last). */
static inline int block_rows(int64_t i0, int64_t n) { return n - i0 < BLK ? (int)(n - i0) : BLK; }

/* The pipelined block loop: iteration i0 runs the scalars of the block at i0 (when i0 < n), then
 * the outputs of the block before it (when i0 > 0); sc[b] holds the scalars of the block at i0,
 * sc[b ^ 1] those of the one before. */
#define FOR_BLOCKS_PIPELINED(i0, b, n) for (int64_t i0 = 0, b = 0; i0 < (n) + BLK; i0 += BLK, b ^= 1)
/* The same over the rows r0 .. r1 - 1 (r0 a multiple of BLK): the scalars when i0 < r1, the
 * outputs of the block at i0 - BLK when i0 > r0. */
#define FOR_BLOCKS_PIPELINED_RANGE(i0, b, r0, r1)                                                  \
    for (int64_t i0 = (r0), b = 0; i0 < (r1) + BLK; i0 += BLK, b ^= 1)

/* ---- threads ----
 * A multi-threaded kernel gives each thread one contiguous range of rows (kctx.threads of them,
 * from one parallel region per call). A row's outputs are computed by the same code whatever
 * range holds it. Sums over rows (parameter gradients, the scale's gradient) are taken per chunk
 * of HG_K_CHUNK rows, the float runs the one-thread loop flushes into double at the same
 * boundaries; with threads, each chunk's float partials go to its slot of the caller's workspace
 * and are added in chunk order after a barrier. Both are the same additions in the same order, so
 * the result does not depend on the thread count (and equals the one-thread result bit for bit). */

/* Fewest rows a kernel splits between threads: below, starting them costs more than it saves. */
#define PAR_MIN_ROWS 512
/* Row cost in adjacency entries, for balancing gathers between threads by work. */
#define PAR_ROW_COST 8
/* Layout of a chunk's slot in the workspace: up to 16 rows of 16 float partials (weight gradient
 * or class-point gradients), one row for the bias, then one value per block. */
#define SLOT_BIAS 256
#define SLOT_BLOCKS 272

/* Threads for a kernel over n rows. */
static inline int par_threads(const hg_kctx *k, int64_t n)
{
#if HG_HAVE_OPENMP
    return k && k->threads > 1 && n >= PAR_MIN_ROWS ? k->threads : 1;
#else
    (void)k;
    (void)n;
    return 1;
#endif
}

/* body(arg, t, T) on T threads (t = 0 .. T - 1), or on the caller alone when T is 1 (no OpenMP
 * call at all: a one-thread step stays free of the runtime). */
typedef void (*par_body)(void *arg, int t, int T);
static inline void par_run(int T, par_body body, void *arg)
{
#if HG_HAVE_OPENMP
    if (T > 1) {
#pragma omp parallel num_threads(T)
        body(arg, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#endif
    (void)T;
    body(arg, 0, 1);
}

static inline void par_barrier(int T)
{
#if HG_HAVE_OPENMP
    if (T > 1) {
#pragma omp barrier
    }
#else
    (void)T;
#endif
}

/* Start of part t of T of n rows, cut at multiples of unit rows: equal rows, or with rowptr equal
 * rows * PAR_ROW_COST + entries (parts may be empty). */
static inline int64_t par_split(int64_t n, int t, int T, int64_t unit, const int64_t *rowptr)
{
    if (t <= 0)
        return 0;
    if (t >= T)
        return n;
    const int64_t units = (n + unit - 1) / unit;
    if (!rowptr) {
        const int64_t r = units * t / T * unit;
        return r < n ? r : n;
    }
    const double target = (double)(rowptr[n] - rowptr[0] + PAR_ROW_COST * n) * t / T;
    int64_t lo = 0, hi = units; /* the first unit boundary whose work reaches the target */
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2, r = mid * unit < n ? mid * unit : n;
        if ((double)(rowptr[r] - rowptr[0] + PAR_ROW_COST * r) >= target)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo * unit < n ? lo * unit : n;
}

/* Slot of the chunk holding row i. */
static inline float *chunk_slot(float *ws, int64_t i)
{
    return ws + i / HG_K_CHUNK * HG_K_CHUNK_FLOATS;
}

/* Add a float partial sum of 16 lanes into a double accumulator of 16. */
static inline void flush16(double *restrict acc, v16f a)
{
    store8d(acc, load8d(acc) + __builtin_convertvector(SHUF(a, a, 0, 1, 2, 3, 4, 5, 6, 7), v8d));
    store8d(acc + 8,
            load8d(acc + 8) + __builtin_convertvector(SHUF(a, a, 8, 9, 10, 11, 12, 13, 14, 15), v8d));
}

/* acc (16 doubles) = 0 + the float partials at offset off of every slot, in chunk order. */
static inline void sum_slots16(double *restrict acc, const float *ws, int64_t nchunks, int off)
{
    memset(acc, 0, 16 * sizeof *acc);
    for (int64_t c = 0; c < nchunks; c++)
        flush16(acc, load16(ws + c * HG_K_CHUNK_FLOATS + off));
}

/* sum in double, in order, of the per-block values of every slot (n rows): the one-thread loop's
 * running sum of the blocks' values. */
static inline double sum_slot_blocks(const float *ws, int64_t n)
{
    double s = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += BLK)
        s += chunk_slot((float *)ws, i0)[SLOT_BLOCKS + i0 % HG_K_CHUNK / BLK];
    return s;
}

/* <x, y>_L of d-vectors in 16-wide float chunks (a vector of partial sums, then a tree): the
 * generic-width products of the decoders. */
static inline float inner16(const float *restrict x, const float *restrict y, int64_t d)
{
    v16f acc = ZERO16;
    int64_t j = 0;
    if (d >= 16) {
        acc = load16(x) * ETA16 * load16(y);
        j = 16;
    }
    for (; j + 16 <= d; j += 16)
        acc = vfma(load16(x + j), load16(y + j), acc);
    float s = hsum16(acc);
    for (; j < d; j++)
        s += (j == 0 ? -x[j] : x[j]) * y[j];
    return s;
}

/* sum_{j0 <= j < d} x_j y_j in double, in four interleaved partial sums (j mod 4) so that the
 * additions overlap instead of waiting on one another: the per-row reductions of the
 * generic-width paths. */
static inline double dot_d(const float *restrict x, const float *restrict y, int64_t j0, int64_t d)
{
    double a[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t j = j0;
    for (; j + 4 <= d; j += 4)
        for (int u = 0; u < 4; u++)
            a[u] += (double)x[j + u] * y[j + u];
    for (; j < d; j++)
        a[0] += (double)x[j] * y[j];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

static inline double inner(const float *restrict x, const float *restrict y, int64_t d)
{
    return dot_d(x, y, 1, d) - (double)x[0] * y[0];
}

static inline double spatial_sqnorm(const float *z, int64_t d) { return dot_d(z, z, 1, d); }

static inline double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* HyboNet's LorentzLinear output: time from a sigmoid, space rescaled onto the hyperboloid. */
static inline void head_forward_row(float *restrict yi, const float *restrict zi, double es, int64_t d)
{
    double t = sigmoid(zi[0]) * es + HG_LORENTZ_LINEAR_TIME_OFFSET;
    double q = fmax(spatial_sqnorm(zi, d), HG_LORENTZ_LINEAR_MIN_SQNORM);
    float f = (float)sqrt((t * t - 1.0) / q);
    yi[0] = (float)t;
    for (int64_t j = 1; j < d; j++)
        yi[j] = zi[j] * f;
}

/* Returns this row's contribution to ds. */
static inline double head_backward_row(float *restrict gz, const float *restrict gy,
                                       const float *restrict zi, double es, int64_t d)
{
    double sg = sigmoid(zi[0]);
    double t = sg * es + HG_LORENTZ_LINEAR_TIME_OFFSET;
    double q_raw = spatial_sqnorm(zi, d);
    int clamped = q_raw < HG_LORENTZ_LINEAR_MIN_SQNORM;
    double q = clamped ? HG_LORENTZ_LINEAR_MIN_SQNORM : q_raw;
    double f = sqrt((t * t - 1.0) / q);
    double a = dot_d(gy, zi, 1, d); /* sum_j dy_j z_j over the spatial part */
    double df_dt = t / (q * f);
    double df_dq = clamped ? 0.0 : -0.5 * f / q;
    double gt = gy[0] + a * df_dt;
    gz[0] = (float)(gt * es * sg * (1.0 - sg));
    const float ff = (float)f, c = (float)(a * df_dq * 2.0);
    for (int64_t j = 1; j < d; j++)
        gz[j] = gy[j] * ff + c * zi[j];
    return gt * sg * es;
}

static inline void centroid_forward_row(float *restrict out, const float *restrict si, int64_t d)
{
    double c = fmax(fabs(inner(si, si, d)), HG_LORENTZ_CENTROID_MIN);
    float r = (float)(1.0 / sqrt(c));
    for (int64_t j = 0; j < d; j++)
        out[j] = si[j] * r;
}

static inline void centroid_backward_row(float *restrict dS, const float *restrict go,
                                         const float *restrict si, int64_t d)
{
    double m = inner(si, si, d);
    double a = fabs(m);
    int clamped = a < HG_LORENTZ_CENTROID_MIN;
    double c = clamped ? HG_LORENTZ_CENTROID_MIN : a;
    double r = 1.0 / sqrt(c);
    double gs = dot_d(go, si, 0, d); /* dout . S */
    /* dr/dm = -1/2 c^(-3/2) sign(m); dm/dS_j = 2 eta_j S_j */
    double dr_dm = clamped ? 0.0 : -0.5 * r / c * (m < 0 ? -1.0 : 1.0);
    const float rf = (float)r, cf = (float)(gs * dr_dm * 2.0);
    dS[0] = go[0] * rf - cf * si[0];
    for (int64_t j = 1; j < d; j++)
        dS[j] = go[j] * rf + cf * si[j];
}

/* z row = b + sum_{k < kn} h[k] wt[k], kn <= 16 (two accumulators for a shorter dependency
 * chain: even k, odd k). */
static inline v16f matvec16(const v16f *wt, const float *restrict h, v16f b, int kn)
{
    v16f a0 = b, a1 = ZERO16;
    int k = 0;
    for (; k + 1 < kn; k += 2) {
        a0 = vfma(splat(h[k]), wt[k], a0);
        a1 = vfma(splat(h[k + 1]), wt[k + 1], a1);
    }
    if (k < kn)
        a0 = vfma(splat(h[k]), wt[k], a0);
    return a0 + a1;
}

#endif
