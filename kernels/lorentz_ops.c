/* lorentz_ops.c - CPU bodies of the per-op Lorentz maps of ARCHITECTURE.md section 3 (curvature
 * -1): the reference ops of reference.h (inner product, LorentzLinear head, centroid, exp/log
 * maps at the origin, time flip), the centroid backward op, Riemannian Adam and stabilize. The
 * shared vector and threading helpers are in lorentz_simd.h. */
#include <math.h>
#include <string.h>

#include "../src/hg.h"
#include "kernels.h"
#include "backend.h"
#include "reference.h"
#include "lorentz_simd.h"

int64_t hg_k_workspace_floats(int64_t n)
{
    return (n + HG_K_CHUNK - 1) / HG_K_CHUNK * HG_K_CHUNK_FLOATS;
}

double hg_k_lorentz_inner(const float *x, const float *y, int64_t d) { return inner(x, y, d); }

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
