/* lorentz.c - CPU reference kernels of the Lorentz model of ARCHITECTURE.md section 3 (curvature
 * -1), and the fused HyboNet layer kernels built on them. Row-wise maps over n points of width d
 * (coordinate 0 is time); per-row arithmetic in double on the generic-width paths, in float on
 * the 16-wide ones (see below). */
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

int64_t hg_k_workspace_floats(int64_t n)
{
    return (n + HG_K_CHUNK - 1) / HG_K_CHUNK * HG_K_CHUNK_FLOATS;
}

/* Threads for a kernel over n rows. */
static int par_threads(const hg_kctx *k, int64_t n)
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
static void par_run(int T, par_body body, void *arg)
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
static int64_t par_split(int64_t n, int t, int T, int64_t unit, const int64_t *rowptr)
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

/* acc (16 doubles) = 0 + the float partials at offset off of every slot, in chunk order. */
static void sum_slots16(double *restrict acc, const float *ws, int64_t nchunks, int off);

/* sum in double, in order, of the per-block values of every slot (n rows): the one-thread loop's
 * running sum of the blocks' values. */
static double sum_slot_blocks(const float *ws, int64_t n)
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

double hg_k_lorentz_inner(const float *x, const float *y, int64_t d) { return inner(x, y, d); }

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

void hg_k_lorentz_linear_head_forward(const hg_kctx *k, float *y, const float *z, float s, int64_t n,
                                      int64_t d)
{
    HG_K_CPU_ONLY(k, "hg_k_lorentz_linear_head_forward");
    (void)k;
    const double es = exp((double)s);
    if (d == 16) {
        head_fwd_sc sc[2];
        FOR_BLOCKS_PIPELINED(i0, b, n) {
            if (i0 < n) {
                const int nb = block_rows(i0, n);
                v16f zb[BLK];
                for (int r = 0; r < BLK; r++)
                    zb[r] = load_row16(z, i0, r, nb);
                head_fwd_scalars(&sc[b], zb, (float)es);
            }
            if (i0 > 0)
                head_fwd_out(y + (i0 - BLK) * 16, z + (i0 - BLK) * 16, &sc[b ^ 1],
                             block_rows(i0 - BLK, n));
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        head_forward_row(y + i * d, z + i * d, es, d);
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

void hg_k_lorentz_linear_head_backward(const hg_kctx *k, float *dz, float *ds, const float *dy,
                                       const float *z, float s, int64_t n, int64_t d)
{
    HG_K_CPU_ONLY(k, "hg_k_lorentz_linear_head_backward");
    (void)k;
    const double es = exp((double)s);
    double gs = 0.0;
    if (d == 16) {
        head_bwd_sc sc[2];
        FOR_BLOCKS_PIPELINED(i0, b, n) {
            if (i0 < n) {
                const int nb = block_rows(i0, n);
                v16f zb[BLK], dyb[BLK];
                for (int r = 0; r < BLK; r++) {
                    zb[r] = load_row16(z, i0, r, nb);
                    dyb[r] = load_row16(dy, i0, r, nb);
                }
                head_bwd_scalars(&sc[b], dyb, zb, load_col0_16(z + i0 * 16, nb), (float)es);
            }
            if (i0 > 0) {
                const int64_t p0 = i0 - BLK;
                gs += head_bwd_out(dz + p0 * 16, dy + p0 * 16, z + p0 * 16, &sc[b ^ 1],
                                   block_rows(p0, n));
            }
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            gs += head_backward_row(dz + i * d, dy + i * d, z + i * d, es, d);
    }
    *ds += (float)gs;
}

static inline void centroid_forward_row(float *restrict out, const float *restrict si, int64_t d)
{
    double c = fmax(fabs(inner(si, si, d)), HG_LORENTZ_CENTROID_MIN);
    float r = (float)(1.0 / sqrt(c));
    for (int64_t j = 0; j < d; j++)
        out[j] = si[j] * r;
}

void hg_k_lorentz_centroid_forward(const hg_kctx *k, float *out, const float *S, int64_t n, int64_t d)
{
    HG_K_CPU_ONLY(k, "hg_k_lorentz_centroid_forward");
    (void)k;
    if (d == 16) {
        centroid_fwd_sc sc[2];
        FOR_BLOCKS_PIPELINED(i0, b, n) {
            if (i0 < n) {
                const int nb = block_rows(i0, n);
                v16f sb[BLK];
                for (int r = 0; r < BLK; r++)
                    sb[r] = load_row16(S, i0, r, nb);
                centroid_fwd_scalars(&sc[b], sb);
            }
            if (i0 > 0)
                centroid_fwd_out(out + (i0 - BLK) * 16, S + (i0 - BLK) * 16, &sc[b ^ 1],
                                 block_rows(i0 - BLK, n));
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        centroid_forward_row(out + i * d, S + i * d, d);
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

typedef struct {
    float *dS;
    const float *dout, *S;
    int64_t n;
} centroid_bwd_args;

static void centroid_backward16(const centroid_bwd_args *a, int64_t r0, int64_t r1)
{
    float *restrict dS = a->dS;
    const float *dout = a->dout, *S = a->S;
    const int64_t n = a->n;
    centroid_bwd_sc sc[2];
    FOR_BLOCKS_PIPELINED_RANGE(i0, b, r0, r1) {
        if (i0 < r1) {
            const int nb = block_rows(i0, n);
            v16f gob[BLK], sb[BLK];
            for (int r = 0; r < BLK; r++) {
                gob[r] = load_row16(dout, i0, r, nb);
                sb[r] = load_row16(S, i0, r, nb);
            }
            centroid_bwd_scalars(&sc[b], gob, sb);
        }
        if (i0 > r0) {
            const int64_t p0 = i0 - BLK;
            centroid_bwd_out(dS + p0 * 16, dout + p0 * 16, S + p0 * 16, &sc[b ^ 1],
                             block_rows(p0, n));
        }
    }
}

static void centroid_backward16_part(void *arg, int t, int T)
{
    const centroid_bwd_args *a = arg;
    centroid_backward16(a, par_split(a->n, t, T, BLK, NULL), par_split(a->n, t + 1, T, BLK, NULL));
}

void hg_cpu_lorentz_centroid_backward(const hg_kctx *k, float *dS, const float *dout, const float *S,
                                    int64_t n, int64_t d)
{
    if (d == 16) {
        centroid_bwd_args a = {dS, dout, S, n};
        par_run(par_threads(k, n), centroid_backward16_part, &a);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        centroid_backward_row(dS + i * d, dout + i * d, S + i * d, d);
}

/* ---- fused HyboNet layer kernels ---- */

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

/* Add a float partial sum of 16 lanes into a double accumulator of 16. */
static inline void flush16(double *restrict acc, v16f a)
{
    store8d(acc, load8d(acc) + __builtin_convertvector(SHUF(a, a, 0, 1, 2, 3, 4, 5, 6, 7), v8d));
    store8d(acc + 8,
            load8d(acc + 8) + __builtin_convertvector(SHUF(a, a, 8, 9, 10, 11, 12, 13, 14, 15), v8d));
}

static void sum_slots16(double *restrict acc, const float *ws, int64_t nchunks, int off)
{
    memset(acc, 0, 16 * sizeof *acc);
    for (int64_t c = 0; c < nchunks; c++)
        flush16(acc, load16(ws + c * HG_K_CHUNK_FLOATS + off));
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

void hg_cpu_lorentz_pair_score(const hg_kctx *k, float *out, const float *X, const int32_t *pairs,
                             int64_t count, int64_t d)
{
    (void)k;
    if (d == 16) {
        for (int64_t e0 = 0; e0 < count; e0 += BLK) {
            const int nb = count - e0 < BLK ? (int)(count - e0) : BLK;
            v16f pr[BLK];
            for (int r = 0; r < BLK; r++) {
                if (r >= nb) {
                    pr[r] = ZERO16;
                    continue;
                }
                const int32_t *pe = pairs + 2 * (e0 + r);
                pr[r] = load16(X + (int64_t)pe[0] * 16) * load16(X + (int64_t)pe[1] * 16) * ETA16;
            }
            float sa[BLK];
            store16(sa, 2.0f + 2.0f * rsum16(pr));
            memcpy(out + e0, sa, (size_t)nb * sizeof *sa);
        }
        return;
    }
    for (int64_t e = 0; e < count; e++)
        out[e] = (float)(2.0 + 2.0 * inner(X + (int64_t)pairs[2 * e] * d,
                                           X + (int64_t)pairs[2 * e + 1] * d, d));
}

void hg_cpu_lorentz_pair_score_backward(const hg_kctx *k, float *dX, const float *X,
                                      const int32_t *pairs, const float *g, int64_t count,
                                      int64_t d)
{
    (void)k;
    for (int64_t e = 0; e < count; e++) {
        if (g[e] == 0.0f)
            continue;
        const int64_t u = pairs[2 * e], v = pairs[2 * e + 1];
        if (d == 16) {
            /* d(2 + 2<u,v>_L)/du = 2 eta v */
            const v16f c = (2.0f * g[e]) * ETA16;
            const v16f xu = load16(X + u * 16), xv = load16(X + v * 16);
            store16(dX + u * 16, vfma(c, xv, load16(dX + u * 16)));
            store16(dX + v * 16, vfma(c, xu, load16(dX + v * 16)));
            continue;
        }
        const float cs = 2.0f * g[e];
        for (int64_t j = 0; j < d; j++) {
            const float c = j == 0 ? -cs : cs;
            dX[u * d + j] += c * X[v * d + j];
            dX[v * d + j] += c * X[u * d + j];
        }
    }
}

/* dX rows u and v (+=) c eta X_v and c eta X_u: the gradient of c <x_u, x_v>_L. */
static inline void pair_grad16(float *restrict dX, const float *restrict X, const int32_t *pr,
                               float c)
{
    const int64_t u = pr[0], v = pr[1];
    const v16f ce = c * ETA16, xu = load16(X + u * 16), xv = load16(X + v * 16);
    store16(dX + u * 16, vfma(ce, xv, load16(dX + u * 16)));
    store16(dX + v * 16, vfma(ce, xu, load16(dX + v * 16)));
}

int64_t hg_k_pair_workspace_floats(int64_t count)
{
    return (count + BLK - 1) / BLK * 32;
}

typedef struct {
    float *s_pos, *s_neg, *dX;
    const float *X;
    const int32_t *pos, *neg;
    int64_t count, n;
    float margin, w;
    double *hinge; /* (16 per block) the blocks' masked hinges, or NULL */
    double loss;
} pair_loss_args;

/* Couples e0 .. e1 - 1 (e0 a multiple of BLK) of the 16-wide margin loss: scores, the hinges of
 * each block into a->hinge (16 lanes, 0 where inactive) or, without it, into the running lane
 * sums lossl/lossh and with dX the gradients of the active couples, in couple order. */
static void pair_margin_loss16(pair_loss_args *a, int64_t e0, int64_t e1, v8d *lossl, v8d *lossh)
{
    const v8l LANES8 = {0, 1, 2, 3, 4, 5, 6, 7};
    const double m = a->margin;
    const v8d md = {m, m, m, m, m, m, m, m};
    const float *X = a->X;
    const int64_t count = a->count;
    for (int64_t b0 = e0; b0 < e1; b0 += BLK) {
        const int nb = count - b0 < BLK ? (int)(count - b0) : BLK;
        v16f pp[BLK], pn[BLK];
        for (int r = 0; r < BLK; r++) {
            if (r >= nb) {
                pp[r] = pn[r] = ZERO16;
                continue;
            }
            const int32_t *pa = a->pos + 2 * (b0 + r), *pb = a->neg + 2 * (b0 + r);
            pp[r] = load16(X + (int64_t)pa[0] * 16) * load16(X + (int64_t)pa[1] * 16) * ETA16;
            pn[r] = load16(X + (int64_t)pb[0] * 16) * load16(X + (int64_t)pb[1] * 16) * ETA16;
        }
        const v16f sp = 2.0f + 2.0f * rsum16(pp), sn = 2.0f + 2.0f * rsum16(pn);
        store_first16(a->s_pos + b0, sp, nb);
        store_first16(a->s_neg + b0, sn, nb);
        /* hinges in double, lane-wise; the lanes past nb are masked off */
        const v8d tl = md - __builtin_convertvector(SHUF(sp, sp, 0, 1, 2, 3, 4, 5, 6, 7), v8d) +
                       __builtin_convertvector(SHUF(sn, sn, 0, 1, 2, 3, 4, 5, 6, 7), v8d);
        const v8d th = md -
                       __builtin_convertvector(SHUF(sp, sp, 8, 9, 10, 11, 12, 13, 14, 15), v8d) +
                       __builtin_convertvector(SHUF(sn, sn, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
        const v8l al = (tl > 0.0) & (LANES8 < nb), ah = (th > 0.0) & (LANES8 + 8 < nb);
        if (a->hinge) {
            store8d(a->hinge + b0, (v8d)((v8l)tl & al));
            store8d(a->hinge + b0 + 8, (v8d)((v8l)th & ah));
            continue;
        }
        *lossl += (v8d)((v8l)tl & al);
        *lossh += (v8d)((v8l)th & ah);
        if (!a->dX)
            continue;
        unsigned active = 0;
        for (int r = 0; r < 8; r++)
            active |= (unsigned)(al[r] & 1) << r | (unsigned)(ah[r] & 1) << (r + 8);
        for (; active; active &= active - 1) {
            const int64_t e = b0 + __builtin_ctz(active);
            pair_grad16(a->dX, X, a->pos + 2 * e, -2.0f * a->w);
            pair_grad16(a->dX, X, a->neg + 2 * e, 2.0f * a->w);
        }
    }
}

/* dX row u (+=) c eta X_v when r0 <= u < r1: one end of pair_grad16, for the rows one thread
 * owns. */
static inline void pair_grad16_rows(float *restrict dX, const float *restrict X, int64_t u,
                                    int64_t v, float c, int64_t r0, int64_t r1)
{
    if (u >= r0 && u < r1)
        store16(dX + u * 16, vfma(c * ETA16, load16(X + v * 16), load16(dX + u * 16)));
}

/* Thread t of T: the scores and hinges of its blocks; after a barrier, the loss (last thread) and
 * the gradients of every active couple, in couple order, for its own range of rows of dX (each
 * row then receives its terms in the one-thread order). */
static void pair_margin_loss16_part(void *arg, int t, int T)
{
    pair_loss_args *a = arg;
    const int64_t count = a->count;
    pair_margin_loss16(a, par_split(count, t, T, BLK, NULL), par_split(count, t + 1, T, BLK, NULL),
                       NULL, NULL);
    par_barrier(T);
    if (t == T - 1) {
        v8d lossl = {0}, lossh = {0};
        for (int64_t b0 = 0; b0 < count; b0 += BLK) {
            lossl += load8d(a->hinge + b0);
            lossh += load8d(a->hinge + b0 + 8);
        }
        const v8d s = lossl + lossh;
        a->loss = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    }
    if (!a->dX)
        return;
    const int64_t r0 = par_split(a->n, t, T, BLK, NULL), r1 = par_split(a->n, t + 1, T, BLK, NULL);
    const float cp = -2.0f * a->w, cn = 2.0f * a->w;
    for (int64_t e = 0; e < count; e++) {
        if (!(a->hinge[e] > 0.0)) /* inactive couples have a zero hinge */
            continue;
        const int32_t *p = a->pos + 2 * e, *q = a->neg + 2 * e;
        pair_grad16_rows(a->dX, a->X, p[0], p[1], cp, r0, r1);
        pair_grad16_rows(a->dX, a->X, p[1], p[0], cp, r0, r1);
        pair_grad16_rows(a->dX, a->X, q[0], q[1], cn, r0, r1);
        pair_grad16_rows(a->dX, a->X, q[1], q[0], cn, r0, r1);
    }
}

double hg_cpu_lorentz_pair_margin_loss(const hg_kctx *k, float *s_pos, float *s_neg, float *dX,
                                     const float *X, const int32_t *pos, const int32_t *neg,
                                     int64_t count, float margin, float w, int64_t n, int64_t d,
                                     float *ws)
{
    double loss = 0.0;
    if (d == 16) {
        pair_loss_args a = {s_pos, s_neg, dX, X, pos, neg, count, n, margin, w, NULL, 0.0};
        const int T = ws ? par_threads(k, count) : 1;
        if (T > 1) {
            a.hinge = (double *)(void *)ws;
            par_run(T, pair_margin_loss16_part, &a);
            return a.loss;
        }
        v8d lossl = {0}, lossh = {0}; /* couple e adds to lane e mod 16 */
        pair_margin_loss16(&a, 0, count, &lossl, &lossh);
        /* the lane sums, in a fixed order */
        const v8d t = lossl + lossh;
        return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
    }
    for (int64_t e = 0; e < count; e++) {
        const int32_t *a = pos + 2 * e, *b = neg + 2 * e;
        s_pos[e] = (float)(2.0 + 2.0 * inner(X + (int64_t)a[0] * d, X + (int64_t)a[1] * d, d));
        s_neg[e] = (float)(2.0 + 2.0 * inner(X + (int64_t)b[0] * d, X + (int64_t)b[1] * d, d));
        double t = (double)margin - s_pos[e] + s_neg[e];
        if (!(t > 0.0))
            continue;
        loss += t;
        if (!dX)
            continue;
        for (int q = 0; q < 2; q++) {
            const int32_t *pr = q ? b : a;
            const float cs = (q ? 2.0f : -2.0f) * w;
            const int64_t u = pr[0], v = pr[1];
            for (int64_t j = 0; j < d; j++) {
                const float c = j == 0 ? -cs : cs;
                dX[u * d + j] += c * X[v * d + j];
                dX[v * d + j] += c * X[u * d + j];
            }
        }
    }
    return loss;
}

typedef struct {
    float *logits, *dX;
    const float *X, *P, *b, *dl;
    const int64_t *idx;
    int64_t n, C;
    float *ws;
    double gpd[16][16], gbd[16];
} class_args;

/* Rows r0 .. r1 - 1 of the 16-wide class logits. */
static void class_logits16(const class_args *a, int64_t r0, int64_t r1)
{
    const int64_t C = a->C;
    /* pt[j][c] = 2 eta_j P[c][j]: row i's logits are 2 + b + sum_j x_ij pt[j] */
    v16f pt[16];
    float c0[16] = {0};
    for (int j = 0; j < 16; j++) {
        pt[j] = ZERO16;
        for (int64_t c = 0; c < C; c++)
            pt[j][c] = (j == 0 ? -2.0f : 2.0f) * a->P[c * 16 + j];
    }
    for (int64_t c = 0; c < C; c++)
        c0[c] = 2.0f + (a->b ? a->b[c] : 0.0f);
    const v16f base = load16(c0);
    for (int64_t i = r0; i < r1; i++)
        store_first16(a->logits + i * C, matvec16(pt, a->X + i * 16, ZERO16, 16) + base, C);
}

static void class_logits16_part(void *arg, int t, int T)
{
    const class_args *a = arg;
    class_logits16(a, par_split(a->n, t, T, BLK, NULL), par_split(a->n, t + 1, T, BLK, NULL));
}

void hg_cpu_lorentz_class_logits(const hg_kctx *k, float *logits, const float *X, const float *P,
                               const float *b, int64_t n, int64_t C, int64_t d)
{
    if (d == 16 && C <= 16) {
        class_args a = {.logits = logits, .X = X, .P = P, .b = b, .n = n, .C = C};
        par_run(par_threads(k, n), class_logits16_part, &a);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++)
            logits[i * C + c] = 2.0f + 2.0f * inner16(X + i * d, P + c * d, d) + (b ? b[c] : 0.0f);
}

/* Points r0 .. r1 - 1 (r0 a multiple of HG_K_CHUNK) of the 16-wide class-logit backward: dX rows,
 * and each chunk's float partials of the class-point and bias gradients into its slot of ws, or
 * straight into a->gpd, a->gbd. */
static void class_logits_backward16(class_args *a, int64_t r0, int64_t r1, float *ws)
{
    const int64_t C = a->C, nidx = a->n;
    float *restrict dX = a->dX;
    v16f pe[16], gp[16]; /* pe[c] = 2 eta P[c]; gp[c]: float partial of dl_c x */
    v16f gbp = ZERO16;
    for (int64_t c = 0; c < 16; c++) {
        pe[c] = c < C ? 2.0f * ETA16 * load16(a->P + c * 16) : ZERO16;
        gp[c] = ZERO16;
    }
    for (int64_t i = r0; i < r1; i++) {
        const float *g = a->dl + i * C;
        const int64_t row = a->idx[i];
        gbp += load_first16(g, C);
        v16f acc = ZERO16;
        const v16f xv = load16(a->X + row * 16);
        for (int64_t c = 0; c < C; c++) {
            acc = vfma(splat(g[c]), pe[c], acc);
            gp[c] = vfma(splat(g[c]), xv, gp[c]);
        }
        store16(dX + row * 16, load16(dX + row * 16) + acc);
        if ((i + 1) % HG_K_CHUNK == 0 || i + 1 == nidx) {
            float *slot = ws ? chunk_slot(ws, i) : NULL;
            for (int64_t c = 0; c < C; c++) {
                if (slot)
                    store16(slot + c * 16, gp[c]);
                else
                    flush16(a->gpd[c], gp[c]);
                gp[c] = ZERO16;
            }
            if (slot)
                store16(slot + SLOT_BIAS, gbp);
            else
                flush16(a->gbd, gbp);
            gbp = ZERO16;
        }
    }
}

static void class_logits_backward16_part(void *arg, int t, int T)
{
    class_args *a = arg;
    const int64_t n = a->n, nchunks = (n + HG_K_CHUNK - 1) / HG_K_CHUNK;
    const int64_t r0 = par_split(n, t, T, HG_K_CHUNK, NULL),
                  r1 = par_split(n, t + 1, T, HG_K_CHUNK, NULL);
    if (r0 < r1)
        class_logits_backward16(a, r0, r1, a->ws);
    par_barrier(T);
    for (int64_t c = a->C * t / T; c < a->C * (t + 1) / T; c++)
        sum_slots16(a->gpd[c], a->ws, nchunks, (int)c * 16);
    if (t == T - 1)
        sum_slots16(a->gbd, a->ws, nchunks, SLOT_BIAS);
}

void hg_cpu_lorentz_class_logits_backward(const hg_kctx *k, float *dX, float *dP, float *db,
                                        const float *dl, const float *X, const float *P,
                                        const int64_t *idx, int64_t nidx, int64_t C, int64_t d,
                                        float *ws)
{
    if (d == 16 && C <= 16) {
        class_args a = {.dX = dX, .X = X, .P = P, .dl = dl, .idx = idx, .n = nidx, .C = C,
                        .ws = ws};
        const int T = ws ? par_threads(k, nidx) : 1;
        if (T > 1)
            par_run(T, class_logits_backward16_part, &a);
        else
            class_logits_backward16(&a, 0, nidx, NULL);
        for (int64_t c = 0; c < C; c++) {
            for (int j = 0; j < 16; j++)
                dP[c * 16 + j] += (float)((j == 0 ? -2.0 : 2.0) * a.gpd[c][j]);
            if (db)
                db[c] += (float)a.gbd[c];
        }
        return;
    }
    for (int64_t a = 0; a < nidx; a++) {
        float *dx = dX + idx[a] * d;
        for (int64_t c = 0; c < C; c++) {
            const float g = dl[a * C + c];
            for (int64_t j = 0; j < d; j++)
                dx[j] += (j == 0 ? -2.0f : 2.0f) * g * P[c * d + j];
        }
    }
    /* parameter gradients summed over the rows in double, one (class, coordinate) at a time */
    for (int64_t c = 0; c < C; c++) {
        for (int64_t j = 0; j < d; j++) {
            double acc = 0.0;
            for (int64_t a = 0; a < nidx; a++)
                acc += (double)dl[a * C + c] * X[idx[a] * d + j];
            dP[c * d + j] += (float)((j == 0 ? -2.0 : 2.0) * acc);
        }
        if (db) {
            double acc = 0.0;
            for (int64_t a = 0; a < nidx; a++)
                acc += dl[a * C + c];
            db[c] += (float)acc;
        }
    }
}

void hg_k_lorentz_expmap0_forward(const hg_kctx *k, float *x, const float *v, int64_t n, int64_t d)
{
    HG_K_CPU_ONLY(k, "hg_k_lorentz_expmap0_forward");
    (void)k;
    const int64_t ds = d - 1;
    for (int64_t i = 0; i < n; i++) {
        const float *vi = v + i * ds;
        float *xi = x + i * d;
        double nrm = 0.0;
        for (int64_t j = 0; j < ds; j++)
            nrm += (double)vi[j] * vi[j];
        nrm = sqrt(nrm);
        double c = fmin(fmax(nrm, HG_LORENTZ_EXPMAP0_MIN_NORM), HG_LORENTZ_EXPMAP0_MAX_NORM);
        double sc = sinh(c) / fmax(nrm, HG_LORENTZ_EXPMAP0_MIN_NORM);
        xi[0] = (float)cosh(c);
        for (int64_t j = 0; j < ds; j++)
            xi[j + 1] = (float)(vi[j] * sc);
    }
}

void hg_k_lorentz_expmap0_backward(const hg_kctx *k, float *dv, const float *dx, const float *v,
                                   int64_t n, int64_t d)
{
    HG_K_CPU_ONLY(k, "hg_k_lorentz_expmap0_backward");
    (void)k;
    const int64_t ds = d - 1;
    for (int64_t i = 0; i < n; i++) {
        const float *vi = v + i * ds, *gx = dx + i * d;
        float *gv = dv + i * ds;
        double nrm = 0.0, gdotv = 0.0;
        for (int64_t j = 0; j < ds; j++) {
            nrm += (double)vi[j] * vi[j];
            gdotv += (double)gx[j + 1] * vi[j];
        }
        nrm = sqrt(nrm);
        if (nrm < HG_LORENTZ_EXPMAP0_MIN_NORM) {
            /* x_sp = v * sinh(MIN)/MIN: linear in v; x0 constant */
            double sc = sinh((double)HG_LORENTZ_EXPMAP0_MIN_NORM) / HG_LORENTZ_EXPMAP0_MIN_NORM;
            for (int64_t j = 0; j < ds; j++)
                gv[j] = (float)(gx[j + 1] * sc);
            continue;
        }
        int inside = nrm <= HG_LORENTZ_EXPMAP0_MAX_NORM;
        double c = inside ? nrm : HG_LORENTZ_EXPMAP0_MAX_NORM;
        double sh = sinh(c), ch = cosh(c);
        /* x0 = cosh(c(|v|)), x_j = sinh(c) v_j / |v|; dc/d|v| = inside */
        double dnorm = 0.0; /* dL/d|v| through c and through 1/|v| */
        dnorm += inside ? gx[0] * sh : 0.0;
        dnorm += gdotv * ((inside ? ch : 0.0) / nrm - sh / (nrm * nrm));
        for (int64_t j = 0; j < ds; j++)
            gv[j] = (float)(gx[j + 1] * sh / nrm + dnorm * vi[j] / nrm);
    }
}

void hg_k_lorentz_logmap0(const hg_kctx *k, float *v, const float *x, int64_t n, int64_t d)
{
    HG_K_CPU_ONLY(k, "hg_k_lorentz_logmap0");
    (void)k;
    const int64_t ds = d - 1;
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double sn = sqrt(spatial_sqnorm(xi, d));
        double dist = asinh(sn); /* = acosh(x0) on the manifold, without acosh's loss near 1 */
        double sc = sn > 0.0 ? dist / sn : 1.0;
        for (int64_t j = 0; j < ds; j++)
            v[i * ds + j] = (float)(xi[j + 1] * sc);
    }
}

void hg_k_lorentz_flip_time(const hg_kctx *k, float *out, const float *x, int64_t n, int64_t d)
{
    HG_K_CPU_ONLY(k, "hg_k_lorentz_flip_time");
    (void)k;
    for (int64_t i = 0; i < n; i++) {
        out[i * d] = -x[i * d];
        if (out != x)
            memcpy(out + i * d + 1, x + i * d + 1, (size_t)(d - 1) * sizeof *out);
    }
}

/* u <- u + <x,u>_L x: projection onto the tangent space at x. */
static void proj_tan(double *u, const double *x, int64_t d)
{
    double xu = -x[0] * u[0];
    for (int64_t j = 1; j < d; j++)
        xu += x[j] * u[j];
    for (int64_t j = 0; j < d; j++)
        u[j] += xu * x[j];
}

static double inner_d(const double *x, const double *y, int64_t d)
{
    double s = -x[0] * y[0];
    for (int64_t j = 1; j < d; j++)
        s += x[j] * y[j];
    return s;
}

/* Largest width for the per-point scratch arrays of the Riemannian step (class points are
 * `dim`-wide; 16 in every reference run). */
#define HG_LORENTZ_RADAM_MAX_D 1024

void hg_cpu_lorentz_radam_step(const hg_kctx *k, float *x, const float *grad, float *m, float *v,
                             int64_t n, int64_t d, float lr, float beta1, float beta2, float eps,
                             int64_t t)
{
    (void)k;
    double X[HG_LORENTZ_RADAM_MAX_D], U[HG_LORENTZ_RADAM_MAX_D], M[HG_LORENTZ_RADAM_MAX_D],
        Y[HG_LORENTZ_RADAM_MAX_D];
    if (d > HG_LORENTZ_RADAM_MAX_D)
        return; /* the caller validates dim against this limit */
    const double bc1 = 1.0 - pow((double)beta1, (double)t);
    const double bc2 = 1.0 - pow((double)beta2, (double)t);
    for (int64_t i = 0; i < n; i++) {
        float *xi = x + i * d, *mi = m + i * d;
        for (int64_t j = 0; j < d; j++) {
            X[j] = xi[j];
            U[j] = grad[i * d + j];
        }
        U[0] = -U[0]; /* Euclidean -> Riemannian: inverse metric, then projection */
        proj_tan(U, X, d);
        double uu = inner_d(U, U, d);
        v[i] = (float)(beta2 * v[i] + (1.0 - beta2) * uu);
        double denom = sqrt(fmax((double)v[i], 0.0) / bc2) + eps;
        for (int64_t j = 0; j < d; j++) {
            M[j] = beta1 * mi[j] + (1.0 - beta1) * U[j];
            U[j] = -(double)lr * (M[j] / bc1) / denom; /* the step, a tangent vector at X */
        }
        /* y = expmap_x(u) = cosh|u| x + sinh|u| u/|u| */
        double nu = sqrt(fmax(inner_d(U, U, d), 0.0));
        if (nu < HG_LORENTZ_EXPMAP_MIN_NORM) {
            for (int64_t j = 0; j < d; j++)
                Y[j] = X[j] + U[j];
        } else {
            double ch = cosh(nu), sh = sinh(nu) / nu;
            for (int64_t j = 0; j < d; j++)
                Y[j] = ch * X[j] + sh * U[j];
        }
        /* parallel transport of the moment from x to y: m + <y,m>_L / (1 - <x,y>_L) (x + y) */
        double ym = inner_d(Y, M, d), xy = inner_d(X, Y, d);
        double coef = ym / (1.0 - xy);
        for (int64_t j = 0; j < d; j++) {
            mi[j] = (float)(M[j] + coef * (X[j] + Y[j]));
            xi[j] = (float)Y[j];
        }
    }
}

void hg_cpu_lorentz_stabilize(const hg_kctx *k, float *x, float *m, int64_t n, int64_t d)
{
    (void)k;
    double X[HG_LORENTZ_RADAM_MAX_D], M[HG_LORENTZ_RADAM_MAX_D];
    if (d > HG_LORENTZ_RADAM_MAX_D)
        return;
    for (int64_t i = 0; i < n; i++) {
        float *xi = x + i * d;
        double sq = 0.0;
        for (int64_t j = 1; j < d; j++)
            sq += (double)xi[j] * xi[j];
        xi[0] = (float)sqrt(1.0 + sq);
        if (m) {
            for (int64_t j = 0; j < d; j++) {
                X[j] = xi[j];
                M[j] = m[i * d + j];
            }
            proj_tan(M, X, d);
            for (int64_t j = 0; j < d; j++)
                m[i * d + j] = (float)M[j];
        }
    }
}
