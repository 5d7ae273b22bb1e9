/* lorentz_decoder.c - CPU bodies of the Lorentz decoders: pair scores and their backward, the
 * link-prediction margin loss, the class logits and their backward. The shared vector and
 * threading helpers are in lorentz_simd.h. */
#include <math.h>
#include <string.h>

#include "../src/hg.h"
#include "kernels.h"
#include "backend.h"
#include "reference.h"
#include "lorentz_simd.h"

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
