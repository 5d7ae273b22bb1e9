/* lorentz.c - CPU reference kernels of the Lorentz model (curvature -1), DESIGN.md section 3.
 * Row-wise maps over n points of width d (coordinate 0 is time). Per-row arithmetic in double. */
#include <math.h>
#include <string.h>

#include "kernels.h"

/* 16-wide rows (the model's width in every reference run) as one vector value (GCC/Clang vector
 * extensions: one zmm, two ymm or four xmm); sums of 16 products stay in float, whose rounding
 * (16 eps relative) is far below the float32 storage error of the inputs. */
typedef float v16f __attribute__((vector_size(64)));
static const v16f SPACE16 = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const v16f ETA16 = {-1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

static inline v16f load16(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store16(float *p, v16f v) { memcpy(p, &v, sizeof v); }

static inline float hsum16(v16f v)
{
    float s = 0.0f;
    for (int j = 0; j < 16; j++)
        s += v[j];
    return s;
}

static inline double inner(const float *restrict x, const float *restrict y, int64_t d)
{
    double s = -(double)x[0] * y[0];
    for (int64_t j = 1; j < d; j++)
        s += (double)x[j] * y[j];
    return s;
}

double hg_k_lorentz_inner(const float *x, const float *y, int64_t d) { return inner(x, y, d); }

static inline double spatial_sqnorm(const float *z, int64_t d)
{
    double q = 0.0;
    for (int64_t j = 1; j < d; j++)
        q += (double)z[j] * z[j];
    return q;
}

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

static inline void head_forward16(float *restrict yi, const float *restrict zi, float es)
{
    v16f z = load16(zi);
    float q = fmaxf(hsum16(z * z * SPACE16), HG_LORENTZ_LINEAR_MIN_SQNORM);
    float t = es / (1.0f + expf(-zi[0])) + HG_LORENTZ_LINEAR_TIME_OFFSET;
    v16f y = z * sqrtf((t * t - 1.0f) / q);
    y[0] = t;
    store16(yi, y);
}

void hg_k_lorentz_linear_head_forward(const hg_kctx *k, float *y, const float *z, float s, int64_t n,
                                      int64_t d)
{
    (void)k;
    const double es = exp((double)s);
    if (d == 16) {
        for (int64_t i = 0; i < n; i++)
            head_forward16(y + i * 16, z + i * 16, (float)es);
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
    double a = 0.0; /* sum_j dy_j z_j over the spatial part */
    for (int64_t j = 1; j < d; j++)
        a += (double)gy[j] * zi[j];
    double df_dt = t / (q * f);
    double df_dq = clamped ? 0.0 : -0.5 * f / q;
    double gt = gy[0] + a * df_dt;
    gz[0] = (float)(gt * es * sg * (1.0 - sg));
    const float ff = (float)f, c = (float)(a * df_dq * 2.0);
    for (int64_t j = 1; j < d; j++)
        gz[j] = gy[j] * ff + c * zi[j];
    return gt * sg * es;
}

static inline float head_backward16(float *restrict gzi, const float *restrict gyi,
                                    const float *restrict zi, float es)
{
    v16f z = load16(zi), gy = load16(gyi);
    float sg = 1.0f / (1.0f + expf(-zi[0]));
    float t = sg * es + HG_LORENTZ_LINEAR_TIME_OFFSET;
    float q_raw = hsum16(z * z * SPACE16);
    int clamped = q_raw < HG_LORENTZ_LINEAR_MIN_SQNORM;
    float q = clamped ? HG_LORENTZ_LINEAR_MIN_SQNORM : q_raw;
    float f = sqrtf((t * t - 1.0f) / q);
    float a = hsum16(gy * z * SPACE16);
    float df_dt = t / (q * f);
    float df_dq = clamped ? 0.0f : -0.5f * f / q;
    float gt = gy[0] + a * df_dt;
    v16f gz = gy * f + (a * df_dq * 2.0f) * z;
    gz[0] = gt * es * sg * (1.0f - sg);
    store16(gzi, gz);
    return gt * sg * es;
}

void hg_k_lorentz_linear_head_backward(const hg_kctx *k, float *dz, float *ds, const float *dy,
                                       const float *z, float s, int64_t n, int64_t d)
{
    (void)k;
    const double es = exp((double)s);
    double gs = 0.0;
    if (d == 16) {
        for (int64_t i = 0; i < n; i++)
            gs += head_backward16(dz + i * 16, dy + i * 16, z + i * 16, (float)es);
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

static inline void centroid_forward16(float *restrict out, const float *restrict si)
{
    v16f x = load16(si);
    float c = fmaxf(fabsf(hsum16(x * x * ETA16)), HG_LORENTZ_CENTROID_MIN);
    store16(out, x * (1.0f / sqrtf(c)));
}

void hg_k_lorentz_centroid_forward(const hg_kctx *k, float *out, const float *S, int64_t n, int64_t d)
{
    (void)k;
    if (d == 16) {
        for (int64_t i = 0; i < n; i++)
            centroid_forward16(out + i * 16, S + i * 16);
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
    double gs = 0.0; /* dout . S */
    for (int64_t j = 0; j < d; j++)
        gs += (double)go[j] * si[j];
    /* dr/dm = -1/2 c^(-3/2) sign(m); dm/dS_j = 2 eta_j S_j */
    double dr_dm = clamped ? 0.0 : -0.5 * r / c * (m < 0 ? -1.0 : 1.0);
    const float rf = (float)r, cf = (float)(gs * dr_dm * 2.0);
    dS[0] = go[0] * rf - cf * si[0];
    for (int64_t j = 1; j < d; j++)
        dS[j] = go[j] * rf + cf * si[j];
}

static inline void centroid_backward16(float *restrict dSi, const float *restrict goi,
                                       const float *restrict si)
{
    v16f x = load16(si), go = load16(goi);
    float m = hsum16(x * x * ETA16);
    float a = fabsf(m);
    int clamped = a < HG_LORENTZ_CENTROID_MIN;
    float c = clamped ? HG_LORENTZ_CENTROID_MIN : a;
    float r = 1.0f / sqrtf(c);
    float gs = hsum16(go * x);
    float dr_dm = clamped ? 0.0f : -0.5f * r / c * (m < 0 ? -1.0f : 1.0f);
    store16(dSi, go * r + (gs * dr_dm * 2.0f) * (ETA16 * x));
}

void hg_k_lorentz_centroid_backward(const hg_kctx *k, float *dS, const float *dout, const float *S,
                                    int64_t n, int64_t d)
{
    (void)k;
    if (d == 16) {
        for (int64_t i = 0; i < n; i++)
            centroid_backward16(dS + i * 16, dout + i * 16, S + i * 16);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        centroid_backward_row(dS + i * d, dout + i * d, S + i * d, d);
}

void hg_k_lorentz_expmap0_forward(const hg_kctx *k, float *x, const float *v, int64_t n, int64_t d)
{
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
    (void)k;
    const int64_t ds = d - 1;
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double sn = sqrt(spatial_sqnorm(xi, d));
        double dist = acosh(fmax((double)xi[0], 1.0));
        double sc = sn > 0.0 ? dist / sn : 1.0;
        for (int64_t j = 0; j < ds; j++)
            v[i * ds + j] = (float)(xi[j + 1] * sc);
    }
}

void hg_k_lorentz_flip_time(const hg_kctx *k, float *out, const float *x, int64_t n, int64_t d)
{
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

void hg_k_lorentz_radam_step(const hg_kctx *k, float *x, const float *grad, float *m, float *v,
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

void hg_k_lorentz_stabilize(const hg_kctx *k, float *x, float *m, int64_t n, int64_t d)
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
