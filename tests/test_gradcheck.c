/* test_gradcheck.c - double-precision oracles for every backward of HyboNet (the mathematics of
 * ARCHITECTURE.md section 3). Suite: numerics.
 *
 * The float32 code is compared with a naive, separate re-implementation in double written from
 * ARCHITECTURE.md section 3 (and the clamps named in kernels/kernels.h): the whole model's
 * forward and loss on a tiny graph, and the expmap0, LorentzLinear head and centroid maps alone.
 * The oracle for every gradient is a central difference of the DOUBLE re-implementation, so its
 * own error is ~1e-10 relative and the tolerances below are the float32 rounding of the code
 * under test only (test_kernels.c and test_hyperbolic.c difference the float code itself, whose
 * rounding noise forces steps of 1e-2 and tolerances of ~1e-3).
 *
 * Notation: u = 2^-24 (float32 unit roundoff).
 *
 * Central differences of the double reference. f is a smooth function of the parameter over a
 * length L (the scale over which the map bends: |z_sp| for the head's direction, O(1) for
 * sigmoid, exp, cosh, the centroid away from the light cone). With step h:
 *   truncation  h^2 |f'''| / 6 ~ (h/L)^2 |f'| / 6,
 *   rounding    ~1e-16 F / h, F the size of the terms of f (double evaluations).
 * The model checks use h = 1e-6 (L >= 0.05 asserted at the check point: truncation <= 1e-10
 * relative; F / |f'| <= ~1e3 here: rounding <= 1e-7 |f'|, observed much smaller); the kernel checks
 * h = 1e-5 L (truncation ~1e-11, rounding ~1e-11 F/(L |f'|)). Both are >= 100x below every
 * tolerance. The evaluations record the side of every kink (hinges, ReLU inputs, clamps); a
 * difference that crosses one fails the test instead of comparing across it.
 *
 * (a) Forward agreement: every layer's output (per node, Euclidean norm of the difference) and the
 * loss. Tolerance: a rounding-error model of the float code, run through the double reference.
 * Each stage's float result is modelled as the exact one plus an error of the stage's worst-case
 * size times a uniform draw in [-1, 1] (independent per output), sizes from the derivations of
 * test_kernels.c:
 *   x0 stored in float, the dropout product:   u |v|
 *   z = h W^T + b (float dot of din + 1 terms):  (din + 2) u A_o, A_o = |b_o| + sum_j |W_oj h_j|
 *   head (per output):   46 u |y_j| on the 16-wide float path (kappa 45, +1 for the float offset
 *                        1.1f against 1.1), 3 u |y_j| on the generic (double) path
 *   A_hat y (float sums of deg terms, A_hat = 1/deg rounded):  (deg + 2) u sum_k |a_ik y_ko|
 *   centroid (per output):  (8.5 rho + 3) u |out_j| (16-wide; rho = |S|_E^2 / |<S,S>_L|), 2 u
 *   logits / scores:        (dim + 3) u |a|_abs, |a|_abs = 2 + |b| + 2 sum_j |x_j p_j|.
 * The reference is run NSIM = 8 times with such errors (fixed seed), and the tolerance is
 * SIM_FACTOR = 4 times the largest deviation from the exact reference seen (plus u |value|). It
 * carries the actual conditioning of the point (the head's 1/|z_sp|, the centroid's rho, their
 * compounding over layers), which a worst-case first-order bound overstates by orders of
 * magnitude. Stage errors at their worst-case size make it conservative: observed ratios
 * error/tolerance are 0.02..0.1 for the embeddings and below 0.1 for the loss (printed).
 *
 * (b) Gradients. The float backward's result differs from the exact gradient by (i) the float
 * forward's activations (relative ~1e-6 here, from (a)), and (ii) the roundings of the backward
 * itself: each stage (head backward, centroid backward, the gathers through A_hat^T, the
 * weight-gradient and input-gradient products, the decoder) has a relative error of at most
 * kappa u of the terms it combines, kappa <= ~160 on the 16-wide float paths (the head backward's
 * t^2 - 1 cancellation, see the kernel oracles below) and a few on the generic ones, and a
 * parameter's gradient passes through about two such stages per layer. Terms are taken at most
 * the largest gradient G of their block (one layer's W; one layer's bias and scale; the decoder's
 * class points and biases). So
 *   |g_float - g_ref| <= GRAD_KAPPA nlayers u (|g_ref| + G),  GRAD_KAPPA = 512 (~160 x 3),
 * i.e. atol = rtol ~6e-5 for 2 layers: a relative error of 1e-3 in the larger gradients of a
 * block fails. Observed: err/tol <= 0.12 (printed per case; at dim 16 the worst, ~60 u nlayers).
 * Biases with bias = 0 must have exactly zero gradient on both sides.
 *
 * Kernel oracles (expmap0, head, centroid backward) at widths 5 (generic path, per-row scalars in
 * double) and 16 (vector path in float), against central differences of f = sum R .* out of the
 * double maps: tolerance kappa u (|g_ref| + G_row), G_row the largest gradient of the row (every
 * output of a row is a combination of terms bounded by it, up to the map's own cancellation).
 *   expmap0 (double, rounded once): kappa 2 (+ 1e-8 G_row for the difference itself);
 *   head generic: f, c rounded to float, one fma per output: kappa 4; 16-wide: kappa 192
 *     (t^2 - 1 in float loses up to 5.8x: f ~43u, df/dt ~110u, the lane-0 term ~140u);
 *   centroid generic: kappa 4; 16-wide: <S,S>_L as a float sum, relative 17u rho, r and the
 *     rank-one coefficient inherit it: kappa = 20 rho + 8. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hyperbolic/hybonet.h"
#include "../kernels/kernels.h"
#include "../sst/linear.h"
#include "../sst/linear_internal.h"
#include "../src/hg.h"
#include "../src/rng.h"

#define U32 (0.5 * (double)FLT_EPSILON)

static hg_kctx K = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

/* ARCHITECTURE.md section 3 / kernels.h constants, restated in double for the reference */
#define REF_TIME_OFFSET 1.1
#define REF_HEAD_MIN_SQNORM 1e-8
#define REF_CENTROID_MIN 1e-8
#define REF_EXPMAP0_MIN 1e-4
#define REF_EXPMAP0_MAX 10.0

#define MODEL_H 1e-6
#define GRAD_KAPPA 512.0
#define NSIM 8
#define SIM_FACTOR 4.0

/* ---------------------------------------------------------------- the graph */

#define GN 12
#define GF 7
#define GC 3
#define MAXD 64
#define MAXL 3
#define MAXDIN 64
#define MAXPAIRS 16
#define MAXTHETA (MAXL * (MAXD + 1 + MAXD * MAXDIN) + GC * MAXD + GC)
#define MAXPAT (2 * GN * GC + MAXL * GN * MAXD + 2 * MAXL * GN + 2 * MAXPAIRS)
#define EMPTY_A 2 /* rows without features: their input point is (cosh 1e-4, 0) */
#define EMPTY_B 9

typedef hg_test_graph graph;

/* Ring plus chords (degrees 2..5, so A_hat is not symmetric), self loops, rows normalised; sparse
 * features in [0.1, 1) with two empty rows; random labels; 9 training nodes. */
static void build_graph(graph *g)
{
    static const int chords[][2] = {{0, 5}, {1, 7}, {3, 10}, {0, 8}, {4, 11}, {6, 9}, {2, 7}};
    const hg_test_graph_spec spec = {GN, GF, GC, chords, (int)(sizeof chords / sizeof chords[0]),
                                     EMPTY_A, EMPTY_B, 2024, 0.4, 0.6f, 3};
    hg_test_graph_build(g, &spec);
}

static void free_graph(graph *g) { hg_test_graph_destroy(g); }

/* ---------------------------------------------------------------- double reference */

enum { TASK_NC, TASK_LP };

typedef struct {
    const graph *g;
    int task, nlayers, dim, C, relu, bias;
    int64_t din[MAXL];
    float p;                  /* dropout (the float the model has: its mask values) */
    uint64_t lseed[MAXL];     /* per-layer dropout seeds */
    double margin;
    const int32_t *pos, *neg;
    int64_t npairs;
    double ahat[GN][GN];      /* D^-1 (A + I) from the 0/1 adjacency */
    double x0[GN][GF + 1];    /* expmap0 of (0, features) */
    int64_t x0idx[GN][GF + 1];/* dropout element of each coordinate of x0 (-1: zero, not stored) */
    /* parameters: per layer bias (dim), log scale, W (dim x din); class points (C x dim), class
       biases (C) */
    int64_t off_b[MAXL], off_s[MAXL], off_W[MAXL], off_P, off_bc, ntheta;
    double theta[MAXTHETA];
    /* the last evaluation */
    double h[MAXL][GN][MAXDIN], z[MAXL][GN][MAXD], y[MAXL][GN][MAXD], S[MAXL][GN][MAXD],
        out[MAXL][GN][MAXD];
    double logits[GN][GC], sp[MAXPAIRS], sn[MAXPAIRS];
    unsigned char pat[MAXPAT];
    int64_t npat;
    double min_hinge, min_relu, min_zsp, min_mink;
    /* simulated float32 rounding of every stage (forward tolerance): on when sim != 0 */
    int sim;
    hg_rng sim_rng;
    /* kink pattern at the base point */
    unsigned char base[MAXPAT];
    int have_base;
    int64_t crossed;
} ref_model;

static double minkowski(const double *x, const double *y, int64_t d)
{
    double s = -x[0] * y[0];
    for (int64_t j = 1; j < d; j++)
        s += x[j] * y[j];
    return s;
}

static double norm2(const double *x, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++)
        s += x[j] * x[j];
    return sqrt(s);
}

/* expmap0 of (0, v), v of length ds: c = clamp(|v|, MIN, MAX),
 * x = (cosh c, sinh c v / max(|v|, MIN)) (kernels.h: below MIN the direction is undefined and
 * the map is continued linearly; above MAX the direction is kept). */
static void ref_expmap0(double *x, const double *v, int64_t ds)
{
    double nrm = norm2(v, ds);
    double c = fmin(fmax(nrm, REF_EXPMAP0_MIN), REF_EXPMAP0_MAX);
    x[0] = cosh(c);
    for (int64_t j = 0; j < ds; j++)
        x[j + 1] = sinh(c) * v[j] / fmax(nrm, REF_EXPMAP0_MIN);
}

/* LorentzLinear head: t = sigmoid(z0) e^s + 1.1, y = [t, z_sp sqrt((t^2-1)/max(|z_sp|^2, 1e-8))].
 * Returns whether the clamp is active; *zsp = |z_sp|. */
static int ref_head(double *y, const double *z, double s, int64_t d, double *zsp)
{
    double t = 1.0 / (1.0 + exp(-z[0])) * exp(s) + REF_TIME_OFFSET;
    double q = 0.0;
    for (int64_t j = 1; j < d; j++)
        q += z[j] * z[j];
    double f = sqrt((t * t - 1.0) / fmax(q, REF_HEAD_MIN_SQNORM));
    y[0] = t;
    for (int64_t j = 1; j < d; j++)
        y[j] = z[j] * f;
    if (zsp)
        *zsp = sqrt(q);
    return q < REF_HEAD_MIN_SQNORM;
}

/* Centroid normalisation out = S / sqrt(max(|<S,S>_L|, 1e-8)); returns whether clamped. */
static int ref_centroid(double *out, const double *S, int64_t d, double *mink)
{
    double m = fabs(minkowski(S, S, d));
    double r = 1.0 / sqrt(fmax(m, REF_CENTROID_MIN));
    for (int64_t j = 0; j < d; j++)
        out[j] = S[j] * r;
    if (mink)
        *mink = m;
    return m < REF_CENTROID_MIN;
}

/* x plus a simulated rounding error: err times a uniform draw in [-1, 1] while a simulation runs,
 * x itself otherwise (file header, (a)). */
static double rnd(ref_model *r, double x, double err)
{
    return r->sim ? x + err * (2.0 * hg_rng_uniform(&r->sim_rng) - 1.0) : x;
}

/* |a|_abs of 2 + 2<x,p>_L + b */
static double abs_size(const double *x, const double *p, int64_t d, double b)
{
    double s = 2.0 + fabs(b);
    for (int64_t j = 0; j < d; j++)
        s += 2.0 * fabs(x[j] * p[j]);
    return s;
}

/* The whole model and its loss at theta; records the kink pattern (and compares it with the base
 * point's when one is set). */
static double ref_loss(ref_model *r)
{
    const int64_t dim = r->dim;
    const double u = U32;
    /* per-stage rounding of the float code (file header): head and centroid kappas by path */
    const double kh = dim == 16 ? 46.0 : 3.0;
    int64_t k = 0;
    r->min_hinge = r->min_relu = r->min_zsp = r->min_mink = INFINITY;
    for (int l = 0; l < r->nlayers; l++) {
        const int64_t din = r->din[l];
        const double *W = r->theta + r->off_W[l], *b = r->theta + r->off_b[l];
        const double s = r->theta[r->off_s[l]];
        for (int i = 0; i < GN; i++) {
            double *h = r->h[l][i];
            for (int64_t j = 0; j < din; j++) {
                double v;
                int64_t e;
                if (l == 0) {
                    v = rnd(r, r->x0[i][j], u * fabs(r->x0[i][j])); /* stored in float */
                    e = r->x0idx[i][j];
                } else {
                    v = r->out[l - 1][i][j];
                    e = (int64_t)i * din + j;
                    if (r->relu) { /* act(x) on the input of every layer but the first */
                        r->pat[k++] = v > 0.0;
                        r->min_relu = fmin(r->min_relu, fabs(v));
                        v = v > 0.0 ? v : 0.0;
                    }
                }
                if (r->p > 0.0f && e >= 0) {
                    v *= (double)hg_k_dropout_scale(e, r->p, r->lseed[l]);
                    v = rnd(r, v, u * fabs(v));
                }
                h[j] = v;
            }
            double *z = r->z[l][i];
            for (int64_t o = 0; o < dim; o++) {
                double a = r->bias ? b[o] : 0.0, A = fabs(a);
                for (int64_t j = 0; j < din; j++) {
                    a += W[o * din + j] * h[j];
                    A += fabs(W[o * din + j] * h[j]);
                }
                z[o] = rnd(r, a, (double)(din + 2) * u * A);
            }
            double zsp, *y = r->y[l][i];
            r->pat[k++] = (unsigned char)ref_head(y, z, s, dim, &zsp);
            r->min_zsp = fmin(r->min_zsp, zsp);
            for (int64_t o = 0; o < dim; o++)
                y[o] = rnd(r, y[o], kh * u * fabs(y[o]));
        }
        for (int i = 0; i < GN; i++) {
            double *S = r->S[l][i];
            int deg = 0;
            for (int kk = 0; kk < GN; kk++)
                deg += r->ahat[i][kk] != 0.0;
            for (int64_t o = 0; o < dim; o++) {
                double a = 0.0, A = 0.0;
                for (int kk = 0; kk < GN; kk++) {
                    a += r->ahat[i][kk] * r->y[l][kk][o];
                    A += fabs(r->ahat[i][kk] * r->y[l][kk][o]);
                }
                S[o] = rnd(r, a, (deg + 2.0) * u * A);
            }
            double mk, *out = r->out[l][i];
            r->pat[k++] = (unsigned char)ref_centroid(out, S, dim, &mk);
            r->min_mink = fmin(r->min_mink, mk);
            const double se = norm2(S, dim), kc = dim == 16 ? 8.5 * se * se / mk + 3.0 : 2.0;
            for (int64_t o = 0; o < dim; o++)
                out[o] = rnd(r, out[o], kc * u * fabs(out[o]));
        }
    }
    double (*emb)[MAXD] = r->out[r->nlayers - 1];
    double loss = 0.0;
    if (r->task == TASK_NC) {
        const double *P = r->theta + r->off_P, *bc = r->theta + r->off_bc;
        for (int64_t a = 0; a < r->g->ntrain; a++) {
            int64_t i = r->g->train[a];
            for (int c = 0; c < r->C; c++) {
                const double bb = r->bias ? bc[c] : 0.0;
                r->logits[i][c] = rnd(r, 2.0 + 2.0 * minkowski(emb[i], P + c * dim, dim) + bb,
                                      (dim + 3.0) * u * abs_size(emb[i], P + c * dim, dim, bb));
            }
            const int y = r->g->labels[i];
            for (int c = 0; c < r->C; c++) {
                double t = r->margin - r->logits[i][y] + r->logits[i][c];
                r->pat[k++] = t > 0.0;
                if (c != y)
                    r->min_hinge = fmin(r->min_hinge, fabs(t));
                loss += fmax(t, 0.0);
            }
        }
        loss /= (double)r->g->ntrain * r->C;
    } else {
        for (int64_t e = 0; e < r->npairs; e++) {
            const int32_t *pp = r->pos + 2 * e, *nn = r->neg + 2 * e;
            r->sp[e] = rnd(r, 2.0 + 2.0 * minkowski(emb[pp[0]], emb[pp[1]], dim),
                           (dim + 3.0) * u * abs_size(emb[pp[0]], emb[pp[1]], dim, 0.0));
            r->sn[e] = rnd(r, 2.0 + 2.0 * minkowski(emb[nn[0]], emb[nn[1]], dim),
                           (dim + 3.0) * u * abs_size(emb[nn[0]], emb[nn[1]], dim, 0.0));
            double t0 = r->margin - r->sp[e] + r->sp[e], t1 = r->margin - r->sp[e] + r->sn[e];
            r->pat[k++] = t0 > 0.0;
            r->pat[k++] = t1 > 0.0;
            r->min_hinge = fmin(r->min_hinge, fabs(t1));
            loss += fmax(t0, 0.0) + fmax(t1, 0.0);
        }
        loss /= 2.0 * (double)r->npairs;
    }
    assert_true(k <= MAXPAT);
    r->npat = k;
    if (r->have_base && memcmp(r->pat, r->base, (size_t)k) != 0)
        r->crossed++;
    return loss;
}

/* The reference of a float model: structure from its config, the graph from the 0/1 adjacency
 * and the features, every parameter copied (weights as the model reads them). */
static void ref_from_model(ref_model *r, const hg_hybonet *m, const graph *g, uint64_t dseed)
{
    memset(r, 0, sizeof *r);
    r->g = g;
    r->task = m->cfg.nclasses > 0 ? TASK_NC : TASK_LP;
    r->nlayers = m->cfg.nlayers;
    r->dim = m->cfg.dim;
    r->C = m->cfg.nclasses;
    r->relu = m->cfg.act_relu;
    r->bias = m->cfg.bias;
    r->p = m->cfg.dropout;
    r->margin = m->cfg.margin;
    for (int i = 0; i < GN; i++) {
        int deg = 0;
        for (int j = 0; j < GN; j++)
            deg += g->A[i][j] || i == j;
        for (int j = 0; j < GN; j++)
            r->ahat[i][j] = g->A[i][j] || i == j ? 1.0 / deg : 0.0;
    }
    for (int i = 0; i < GN; i++) {
        double v[GF] = {0};
        for (int64_t q = g->feat.rowptr[i]; q < g->feat.rowptr[i + 1]; q++)
            v[g->feat.col[q]] = g->feat.val[q];
        ref_expmap0(r->x0[i], v, GF);
        /* the dropout element of each coordinate: its position in the model's sparse input */
        for (int j = 0; j <= GF; j++)
            r->x0idx[i][j] = -1;
        for (int64_t q = m->x0.rowptr[i]; q < m->x0.rowptr[i + 1]; q++)
            r->x0idx[i][m->x0.col[q]] = q;
        for (int j = 0; j <= GF; j++) /* a coordinate not stored must be 0 */
            assert_true(r->x0idx[i][j] >= 0 || r->x0[i][j] == 0.0);
    }
    int64_t o = 0;
    for (int l = 0; l < r->nlayers; l++) {
        const hg_hybonet_layer *L = &m->layer[l];
        r->din[l] = L->din;
        r->lseed[l] = hg_hybonet_dropout_seed(dseed, l);
        r->off_b[l] = o;
        for (int j = 0; j < r->dim; j++)
            r->theta[o++] = L->bias[j];
        r->off_s[l] = o;
        r->theta[o++] = *L->scale;
        r->off_W[l] = o;
        const float *W = hg_linear_weight(L->lin);
        for (int64_t q = 0; q < r->dim * L->din; q++)
            r->theta[o++] = W[q];
    }
    r->off_P = o;
    for (int64_t q = 0; q < (int64_t)r->C * r->dim; q++)
        r->theta[o++] = m->cls[q];
    r->off_bc = o;
    for (int c = 0; c < r->C; c++)
        r->theta[o++] = m->cls_bias[c];
    r->ntheta = o;
    assert_true(o <= MAXTHETA);
}

/* The float model's analytic gradient in the reference's theta layout. */
static void model_grad(const hg_hybonet *m, const ref_model *r, double *g)
{
    for (int l = 0; l < r->nlayers; l++) {
        const hg_hybonet_layer *L = &m->layer[l];
        for (int j = 0; j < r->dim; j++)
            g[r->off_b[l] + j] = L->gbias[j];
        g[r->off_s[l]] = *L->gscale;
        const float *gW = L->lin->gW; /* full rank: the gradient of W itself (linear_internal.h) */
        for (int64_t q = 0; q < r->dim * L->din; q++)
            g[r->off_W[l] + q] = gW[q];
    }
    for (int64_t q = 0; q < (int64_t)r->C * r->dim; q++)
        g[r->off_P + q] = m->gcls[q];
    for (int c = 0; c < r->C; c++)
        g[r->off_bc + c] = m->gcls_bias[c];
}

/* ---------------------------------------------------------------- the model cases */

static hg_hybonet_config base_config(int nlayers, int dim, int nclasses)
{
    hg_hybonet_config c;
    memset(&c, 0, sizeof c);
    c.n = GN;
    c.nfeat = GF;
    c.dim = dim;
    c.nlayers = nlayers;
    c.nclasses = nclasses;
    c.bias = 1;
    c.margin = 2.0f;
    c.scale_init = 10.0f;
    hg_linear_opts_default(&c.linear);
    c.linear.method = HG_LINEAR_FULL;
    c.seed = 4321;
    return c;
}

/* A generic point: biases in +-0.1, log scales log 10 +- 0.3, column 0 of every W (0 at
 * initialisation) in +-0.1 so that no node sits in the head's clamp (a featureless node's
 * z_sp is then ~0.2 instead of 0), class biases in +-0.5. */
static void randomise_params(hg_hybonet *m, uint64_t seed)
{
    hg_rng r;
    hg_rng_seed(&r, seed);
    float Wb[MAXD * MAXDIN];
    for (int l = 0; l < m->cfg.nlayers; l++) {
        hg_hybonet_layer *L = &m->layer[l];
        for (int j = 0; j < m->cfg.dim; j++)
            L->bias[j] = (float)(0.2 * (hg_rng_uniform(&r) - 0.5));
        *L->scale = (float)(log(10.0) + 0.6 * (hg_rng_uniform(&r) - 0.5));
        memcpy(Wb, hg_linear_weight(L->lin), (size_t)(m->cfg.dim * L->din) * sizeof(float));
        for (int64_t i = 0; i < m->cfg.dim; i++)
            Wb[i * L->din] = (float)(0.2 * (hg_rng_uniform(&r) - 0.5));
        assert_int_equal(hg_linear_load_weight(L->lin, Wb), HG_OK); /* full rank: W is the parameter */
    }
    for (int c = 0; c < m->cfg.nclasses; c++)
        m->cls_bias[c] = (float)(hg_rng_uniform(&r) - 0.5);
}

typedef struct {
    const graph *g;
    hg_hybonet m;
    uint64_t dseed;
    int32_t pos[2 * MAXPAIRS], neg[2 * MAXPAIRS];
    int64_t npairs;
} model_case;

static double model_loss(model_case *c, int want_grad)
{
    if (c->m.cfg.nclasses > 0)
        return hg_hybonet_nc_loss(&c->m, c->g->train, c->g->ntrain, c->g->labels, want_grad);
    return hg_hybonet_lp_loss(&c->m, c->pos, c->neg, c->npairs, want_grad);
}

/* (a) and (b) for one configured model at its current parameters. */
static void check_case(model_case *c, const char *what)
{
    hg_hybonet *m = &c->m;
    ref_model *r = calloc(1, sizeof *r);
    double *ga = malloc(MAXTHETA * sizeof *ga), *gr = malloc(MAXTHETA * sizeof *gr);
    assert_true(r && ga && gr);
    ref_from_model(r, m, c->g, c->dseed);
    r->pos = c->pos;
    r->neg = c->neg;
    r->npairs = c->npairs;
    const int64_t n = GN, dim = m->cfg.dim;

    /* the float model: forward, loss and gradients in training mode with the fixed seed */
    hg_hybonet_zero_grad(m);
    hg_hybonet_forward(m, 1, c->dseed);
    const double loss_f = model_loss(c, 1);
    hg_hybonet_backward(m, 1, c->dseed);
    model_grad(m, r, ga);

    /* (a) the tolerance: the reference re-run NSIM times with simulated roundings */
    static double out_exact[MAXL][GN][MAXD];
    double dev[MAXL][GN], dloss = 0.0;
    const double loss_r = ref_loss(r);
    memcpy(out_exact, r->out, sizeof out_exact);
    memset(dev, 0, sizeof dev);
    r->sim = 1;
    hg_rng_seed(&r->sim_rng, 4711);
    for (int t = 0; t < NSIM; t++) {
        dloss = fmax(dloss, fabs(ref_loss(r) - loss_r));
        for (int l = 0; l < m->cfg.nlayers; l++)
            for (int64_t i = 0; i < n; i++) {
                double d2 = 0.0;
                for (int64_t j = 0; j < dim; j++) {
                    double d = r->out[l][i][j] - out_exact[l][i][j];
                    d2 += d * d;
                }
                dev[l][i] = fmax(dev[l][i], sqrt(d2));
            }
    }
    r->sim = 0;
    ref_loss(r); /* back to the exact state, and the base point's kink pattern */
    memcpy(r->base, r->pat, (size_t)r->npat);
    r->have_base = 1;

    /* (a) forward agreement, every layer's output, then the loss */
    double worst_fwd = 0.0;
    static double tolE[MAXL][GN];
    for (int l = 0; l < m->cfg.nlayers; l++)
        for (int64_t i = 0; i < n; i++) {
            double d2 = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                double d = (double)m->layer[l].out[i * dim + j] - r->out[l][i][j];
                d2 += d * d;
            }
            double err = sqrt(d2), tol = SIM_FACTOR * dev[l][i] + U32 * norm2(r->out[l][i], dim);
            worst_fwd = fmax(worst_fwd, err / tol);
            tolE[l][i] = tol;
            if (!(err <= tol))
                fail_msg("%s: layer %d node %lld: |out_float - out_ref| = %.3g > %.3g", what, l,
                         (long long)i, err, tol);
        }
    const double lb = SIM_FACTOR * dloss + U32 * fabs(loss_r);
    if (!(fabs(loss_f - loss_r) <= lb))
        fail_msg("%s: loss float %.12g, reference %.12g (|diff| %.3g > %.3g)", what, loss_f,
                 loss_r, fabs(loss_f - loss_r), lb);

    /* the check point is generic: every kink far from the float/double differences and from
     * the steps below */
    if (!(r->min_hinge > 1e-3 && r->min_zsp > 0.05 && r->min_mink > 1e-2))
        fail_msg("%s: check point too close to a kink: min |hinge| %.3g, min |z_sp| %.3g, "
                 "min |<S,S>_L| %.3g: change the seed", what, r->min_hinge, r->min_zsp,
                 r->min_mink);
    /* every ReLU input farther from 0 than the float forward's tolerance: the float model
       takes the same side */
    for (int l = 1; r->relu && l < m->cfg.nlayers; l++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < dim; j++) {
                const double x = r->out[l - 1][i][j];
                if (!(fabs(x) > tolE[l - 1][i]) ||
                    (x > 0.0) != (m->layer[l - 1].out[i * dim + j] > 0.0f))
                    fail_msg("%s: ReLU input (layer %d, node %lld, coordinate %lld) %.3g within "
                             "the forward tolerance %.3g of 0: change the seed", what, l,
                             (long long)i, (long long)j, x, tolE[l - 1][i]);
            }
    /* the float model is on the same side of every hinge */
    if (r->task == TASK_NC)
        for (int64_t a = 0; a < c->g->ntrain; a++) {
            int64_t i = c->g->train[a];
            int y = c->g->labels[i];
            for (int cc = 0; cc < r->C; cc++) {
                const float *li = m->logits + i * r->C;
                assert_true((m->cfg.margin - (double)li[y] + li[cc] > 0.0) ==
                            (r->margin - r->logits[i][y] + r->logits[i][cc] > 0.0));
            }
        }
    else
        for (int64_t e = 0; e < c->npairs; e++) {
            const float *sp = m->pair_score, *sn = m->pair_score + c->npairs;
            assert_true((m->cfg.margin - (double)sp[e] + sn[e] > 0.0) ==
                        (r->margin - r->sp[e] + r->sn[e] > 0.0));
        }

    /* (b) every parameter: central difference of the reference */
    for (int64_t k = 0; k < r->ntheta; k++) {
        const double saved = r->theta[k];
        r->theta[k] = saved + MODEL_H;
        const double hp = r->theta[k] - saved;
        const double fp = ref_loss(r);
        r->theta[k] = saved - MODEL_H;
        const double hm = saved - r->theta[k];
        const double fm = ref_loss(r);
        r->theta[k] = saved;
        gr[k] = (fp - fm) / (hp + hm);
    }
    if (r->crossed)
        fail_msg("%s: %lld difference evaluations crossed a kink", what, (long long)r->crossed);

    /* blocks: per layer (bias, scale) and W; the decoder */
    int64_t bstart[2 * MAXL + 1], bend[2 * MAXL + 1];
    const char *bname[2 * MAXL + 1];
    int nb = 0;
    static const char *const names[] = {"bias/scale of layer 0", "W of layer 0",
                                        "bias/scale of layer 1", "W of layer 1",
                                        "bias/scale of layer 2", "W of layer 2"};
    for (int l = 0; l < r->nlayers; l++) {
        bstart[nb] = r->off_b[l];
        bend[nb] = r->off_s[l] + 1;
        bname[nb++] = names[2 * l];
        bstart[nb] = r->off_W[l];
        bend[nb] = r->off_W[l] + dim * r->din[l];
        bname[nb++] = names[2 * l + 1];
    }
    if (r->C > 0) {
        bstart[nb] = r->off_P;
        bend[nb] = r->ntheta;
        bname[nb++] = "class points/biases";
    }
    if (!r->bias) { /* biases unused: no gradient on either side, exactly */
        for (int l = 0; l < r->nlayers; l++)
            for (int j = 0; j < r->dim; j++)
                assert_true(ga[r->off_b[l] + j] == 0.0 && gr[r->off_b[l] + j] == 0.0);
        for (int cc = 0; cc < r->C; cc++)
            assert_true(ga[r->off_bc + cc] == 0.0 && gr[r->off_bc + cc] == 0.0);
    }
    const double kap = GRAD_KAPPA * m->cfg.nlayers * U32;
    double worst_grad = 0.0;
    for (int bi = 0; bi < nb; bi++) {
        double G = 0.0;
        for (int64_t k = bstart[bi]; k < bend[bi]; k++)
            G = fmax(G, fabs(gr[k]));
        int64_t bad = 0;
        for (int64_t k = bstart[bi]; k < bend[bi]; k++) {
            double tol = kap * (fabs(gr[k]) + G), err = fabs(ga[k] - gr[k]);
            worst_grad = fmax(worst_grad, err / tol);
            if (!(err <= tol) && bad++ < 5)
                print_error("%s: %s [%lld]: float %.9g, double reference %.9g (|diff| %.3g > "
                            "tol %.3g)\n", what, bname[bi], (long long)(k - bstart[bi]), ga[k],
                            gr[k], err, tol);
        }
        if (bad)
            fail_msg("%s: %s: %lld of %lld gradient entries disagree with the double reference",
                     what, bname[bi], (long long)bad, (long long)(bend[bi] - bstart[bi]));
    }
    print_message("%-40s err/tol: forward %.3f, loss %.3f (|diff| %.1e), gradients %.3f\n",
                  what, worst_fwd, fabs(loss_f - loss_r) / lb, fabs(loss_f - loss_r), worst_grad);
    free(r);
    free(ga);
    free(gr);
}

static void nc_case(int nlayers, int dim, int relu, float dropout, int bias, uint64_t pseed,
                    const char *what)
{
    graph g;
    build_graph(&g);
    model_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->g = &g;
    c->dseed = 777;
    hg_hybonet_config cfg = base_config(nlayers, dim, GC);
    cfg.act_relu = relu;
    cfg.dropout = dropout;
    cfg.bias = bias;
    cfg.margin = 1.0f;
    int rc = hg_hybonet_init(&c->m, &K, &cfg, &g.feat, &g.adj, MAXPAIRS);
    if (rc != HG_OK)
        fail_msg("hg_hybonet_init: %s: %s", hg_strerror(rc), hg_last_error());
    randomise_params(&c->m, pseed);
    check_case(c, what);
    hg_hybonet_destroy(&c->m);
    free(c);
    free_graph(&g);
}

/* (1) 2 layers, no activation, no dropout: dim 16 (16-wide kernels, dense first layer) and 6 */
static void test_nc_2layers(void **state)
{
    (void)state;
    nc_case(2, 16, 0, 0.0f, 1, 11, "nc 2 layers dim 16");
    nc_case(2, 6, 0, 0.0f, 1, 11, "nc 2 layers dim 6");
}

/* (2) 3 layers, ReLU, dropout 0.3 with a fixed seed (the reference applies the same mask); the
 * wide widths run the BLAS products and the generic gathers (24: a partial block of 16 columns,
 * 64: whole blocks of 64) */
static void test_nc_3layers_relu_dropout(void **state)
{
    (void)state;
    nc_case(3, 16, 1, 0.3f, 1, 12, "nc 3 layers relu dropout 0.3 dim 16");
    nc_case(3, 6, 1, 0.3f, 1, 12, "nc 3 layers relu dropout 0.3 dim 6");
    nc_case(3, 24, 1, 0.3f, 1, 12, "nc 3 layers relu dropout 0.3 dim 24");
    nc_case(3, 64, 1, 0.3f, 1, 12, "nc 3 layers relu dropout 0.3 dim 64");
}

/* (3) no biases (their gradients must be exactly 0 on both sides) */
static void test_nc_no_bias(void **state)
{
    (void)state;
    nc_case(2, 16, 0, 0.0f, 0, 13, "nc bias 0 dim 16");
    nc_case(2, 6, 1, 0.0f, 0, 13, "nc bias 0 relu dim 6");
}

static void lp_case(int dim, float dropout, const char *what)
{
    graph g;
    build_graph(&g);
    model_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->g = &g;
    c->dseed = 999;
    /* 8 positive pairs (edges) and 8 negatives (non-edges), fixed */
    hg_rng rg;
    hg_rng_seed(&rg, 57);
    while (c->npairs < 8) {
        int u = (int)hg_rng_below(&rg, GN), v = (int)hg_rng_below(&rg, GN);
        if (u != v && g.A[u][v]) {
            c->pos[2 * c->npairs] = u;
            c->pos[2 * c->npairs + 1] = v;
            c->npairs++;
        }
    }
    for (int64_t e = 0; e < c->npairs;) {
        int u = (int)hg_rng_below(&rg, GN), v = (int)hg_rng_below(&rg, GN);
        if (u != v && !g.A[u][v]) {
            c->neg[2 * e] = u;
            c->neg[2 * e + 1] = v;
            e++;
        }
    }
    hg_hybonet_config cfg = base_config(2, dim, 0);
    cfg.dropout = dropout;
    int rc = hg_hybonet_init(&c->m, &K, &cfg, &g.feat, &g.adj, 2 * MAXPAIRS);
    if (rc != HG_OK)
        fail_msg("hg_hybonet_init: %s: %s", hg_strerror(rc), hg_last_error());
    randomise_params(&c->m, 21);
    /* The margin: midway between the two middle values of s_pos - s_neg (reference, at this
     * point): half the hinges active, the nearest kink as far as possible. It is only read by
     * the loss, so it is set on the built model. */
    ref_model *r = calloc(1, sizeof *r);
    assert_non_null(r);
    ref_from_model(r, &c->m, &g, c->dseed);
    r->pos = c->pos;
    r->neg = c->neg;
    r->npairs = c->npairs;
    ref_loss(r);
    double diff[MAXPAIRS];
    for (int64_t e = 0; e < c->npairs; e++)
        diff[e] = r->sp[e] - r->sn[e];
    for (int64_t a = 1; a < c->npairs; a++)
        for (int64_t b = a; b > 0 && diff[b - 1] > diff[b]; b--) {
            double t = diff[b];
            diff[b] = diff[b - 1];
            diff[b - 1] = t;
        }
    c->m.cfg.margin = (float)(0.5 * (diff[c->npairs / 2 - 1] + diff[c->npairs / 2]));
    free(r);
    check_case(c, what);
    hg_hybonet_destroy(&c->m);
    free(c);
    free_graph(&g);
}

/* Link prediction, 2 layers, fixed pairs; dim 16 without dropout and dim 6 with 0.2 */
static void test_lp(void **state)
{
    (void)state;
    lp_case(16, 0.0f, "lp 2 layers dim 16");
    lp_case(6, 0.2f, "lp 2 layers dropout 0.2 dim 6");
    lp_case(24, 0.2f, "lp 2 layers dropout 0.2 dim 24");
}

/* ---------------------------------------------------------------- kernel oracles */

static const int64_t widths[] = {5, 16};

/* max |g| over [a, b) */
static double maxabs(const double *g, int64_t a, int64_t b)
{
    double s = 0.0;
    for (int64_t k = a; k < b; k++)
        s = fmax(s, fabs(g[k]));
    return s;
}

/* Central difference of f w.r.t. x[k] with step h (the steps actually taken in double). */
typedef double (*dfn)(void *ctx);
static double cdiff(dfn f, void *ctx, double *x, double h)
{
    const double s = *x;
    *x = s + h;
    const double hp = *x - s, fp = f(ctx);
    *x = s - h;
    const double hm = s - *x, fm = f(ctx);
    *x = s;
    return (fp - fm) / (hp + hm);
}

/* One row of a kernel gradient against the reference differences: |ana - num| <=
 * kappa u (|num| + G_row) + extra G_row. Returns the worst err / tol. */
static double compare_row(const float *ana, const double *num, int64_t nrow, double kappa,
                          double extra, const char *what, int64_t row, int64_t d)
{
    const double G = maxabs(num, 0, nrow);
    double worst = 0.0;
    for (int64_t j = 0; j < nrow; j++) {
        double tol = kappa * U32 * (fabs(num[j]) + G) + extra * G, err = fabs(ana[j] - num[j]);
        worst = fmax(worst, err / tol);
        if (!(err <= tol))
            fail_msg("%s (d=%lld) row %lld [%lld]: float %.9g, double reference %.9g (|diff| "
                     "%.3g > %.3g)", what, (long long)d, (long long)row, (long long)j,
                     (double)ana[j], num[j], err, tol);
    }
    return worst;
}

#define KN 8
typedef struct {
    int64_t d;
    double v[KN * MAXD]; /* inputs of the map (as doubles of the float inputs) */
    double R[KN * MAXD];
    double s;            /* head: log scale */
    int64_t row;         /* the row being differenced */
    int clamp_side;      /* the clamp state of that row at the base point */
    int crossed;
} kern_ctx;

/* ---- expmap0 */

static const double exp_norms[] = {2e-5, 1e-2, 0.3, 1.0, 3.0, 5.0, 10.5, 15.0};

static double exp_f(void *p)
{
    kern_ctx *c = p;
    const int64_t d = c->d, ds = d - 1;
    double x[MAXD];
    ref_expmap0(x, c->v + c->row * ds, ds);
    double nrm = norm2(c->v + c->row * ds, ds);
    int side = (nrm < REF_EXPMAP0_MIN) - (nrm > REF_EXPMAP0_MAX);
    if (side != c->clamp_side)
        c->crossed++;
    double f = 0.0;
    for (int64_t j = 0; j < d; j++)
        f += c->R[c->row * d + j] * x[j];
    return f;
}

static void test_expmap0_oracle(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        const int64_t d = widths[w], ds = d - 1, n = KN;
        kern_ctx c;
        memset(&c, 0, sizeof c);
        c.d = d;
        float v[KN * MAXD], R[KN * MAXD], dv[KN * MAXD];
        hg_rng g;
        hg_rng_seed(&g, 300 + (uint64_t)d);
        for (int64_t i = 0; i < n; i++) {
            double t[MAXD], nr = 0.0;
            for (int64_t j = 0; j < ds; j++) {
                t[j] = hg_rng_normal(&g);
                nr += t[j] * t[j];
            }
            for (int64_t j = 0; j < ds; j++)
                v[i * ds + j] = (float)(t[j] / sqrt(nr) * exp_norms[i]);
        }
        hg_test_fill_uniform(R, (size_t)(n * d), -1.0f, 1.0f, 310 + (uint64_t)d);
        for (int64_t q = 0; q < n * ds; q++)
            c.v[q] = v[q];
        for (int64_t q = 0; q < n * d; q++)
            c.R[q] = R[q];
        hg_k_lorentz_expmap0_backward(&K, dv, R, v, n, d);
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            c.row = i;
            const double nrm = norm2(c.v + i * ds, ds);
            c.clamp_side = (nrm < REF_EXPMAP0_MIN) - (nrm > REF_EXPMAP0_MAX);
            /* L: the direction bends over |v|, cosh/sinh over 1; below MIN the map is linear
               and the step 1e-5 keeps |v| (2e-5) below MIN = 1e-4 */
            const double h = nrm < REF_EXPMAP0_MIN ? 1e-5 : 1e-5 * fmin(1.0, nrm);
            double num[MAXD];
            for (int64_t j = 0; j < ds; j++)
                num[j] = cdiff(exp_f, &c, c.v + i * ds + j, h);
            worst = fmax(worst, compare_row(dv + i * ds, num, ds, 2.0, 1e-8, "expmap0 dv", i, d));
        }
        assert_int_equal(c.crossed, 0);
        print_message("expmap0 backward d=%-2lld err/tol %.3f\n", (long long)d, worst);
    }
}

/* ---- LorentzLinear head */

#define HEAD_CLAMP_ROW 5

static double head_f(void *p)
{
    kern_ctx *c = p;
    const int64_t d = c->d;
    double f = 0.0;
    for (int64_t i = 0; i < KN; i++) {
        if (c->row >= 0 && i != c->row)
            continue;
        double y[MAXD];
        int cl = ref_head(y, c->v + i * d, c->s, d, NULL);
        if (cl != (i == HEAD_CLAMP_ROW))
            c->crossed++;
        for (int64_t j = 0; j < d; j++)
            f += c->R[i * d + j] * y[j];
    }
    return f;
}

static void test_head_oracle(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        const int64_t d = widths[w], n = KN;
        const double kappa = d == 16 ? 192.0 : 4.0;
        kern_ctx c;
        memset(&c, 0, sizeof c);
        c.d = d;
        float z[KN * MAXD], R[KN * MAXD], dz[KN * MAXD];
        hg_test_fill_uniform(z, (size_t)(n * d), -1.5f, 1.5f, 320 + (uint64_t)d);
        hg_test_fill_uniform(R, (size_t)(n * d), -1.0f, 1.0f, 330 + (uint64_t)d);
        /* row 0: t = sigmoid(-6) e^s + 1.1 ~ 1.12, where t^2 - 1 cancels (the 16-wide path's
           worst case); the clamp row: |z_sp|^2 = 2.5e-9 < 1e-8 */
        z[0] = -6.0f;
        for (int64_t j = 1; j < d; j++)
            z[HEAD_CLAMP_ROW * d + j] = 0.0f;
        z[HEAD_CLAMP_ROW * d + 1] = 3e-5f;
        z[HEAD_CLAMP_ROW * d + 2] = -4e-5f;
        const float s = logf(10.0f) - 0.2f;
        c.s = s;
        for (int64_t q = 0; q < n * d; q++) {
            c.v[q] = z[q];
            c.R[q] = R[q];
        }
        float ds = 0.25f; /* accumulates (+=) */
        hg_k_lorentz_linear_head_backward(&K, dz, &ds, R, z, s, n, d);
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            c.row = i;
            const double zsp = norm2(c.v + i * d + 1, d - 1);
            double num[MAXD];
            for (int64_t j = 0; j < d; j++) {
                /* z0: sigmoid bends over 1; z_sp: the direction over |z_sp|; inside the clamp
                   y_sp is linear in z_sp, and the step keeps |z_sp|^2 below 1e-8 */
                double h = j == 0 ? 1e-5 : (i == HEAD_CLAMP_ROW ? 1e-9 : 1e-5 * fmin(1.0, zsp));
                num[j] = cdiff(head_f, &c, c.v + i * d + j, h);
            }
            worst = fmax(worst, compare_row(dz + i * d, num, d, kappa, 1e-8, "head dz", i, d));
        }
        /* ds: every row's t depends on s */
        c.row = -1;
        double nums = cdiff(head_f, &c, &c.s, 1e-5);
        float got = ds - 0.25f;
        /* ds is a sum over the rows: kappa u of the sum of |row terms| <= n max row term */
        worst = fmax(worst, compare_row(&got, &nums, 1, kappa * n, 1e-8, "head ds", 0, d));
        assert_int_equal(c.crossed, 0);
        print_message("head backward d=%-2lld err/tol %.3f\n", (long long)d, worst);
    }
}

/* ---- centroid */

#define CEN_CLAMP_ROW 6 /* on the light cone: <S,S>_L = 0, clamped */
#define CEN_SPACE_ROW 7 /* spacelike: <S,S>_L > 0, |.| taken */

static double cen_f(void *p)
{
    kern_ctx *c = p;
    const int64_t d = c->d;
    double out[MAXD];
    int cl = ref_centroid(out, c->v + c->row * d, d, NULL);
    if (cl != c->clamp_side)
        c->crossed++;
    double f = 0.0;
    for (int64_t j = 0; j < d; j++)
        f += c->R[c->row * d + j] * out[j];
    return f;
}

static void test_centroid_oracle(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        const int64_t d = widths[w], n = KN;
        kern_ctx c;
        memset(&c, 0, sizeof c);
        c.d = d;
        float S[KN * MAXD], R[KN * MAXD], dS[KN * MAXD];
        hg_rng g;
        hg_rng_seed(&g, 340 + (uint64_t)d);
        /* timelike rows: positive combinations of points of the hyperboloid (distance <= 1.5) */
        for (int64_t i = 0; i < CEN_CLAMP_ROW; i++) {
            double acc[MAXD] = {0};
            for (int k = 0; k < 3; k++) {
                double v[MAXD], x[MAXD], nr = 0.0;
                for (int64_t j = 0; j < d - 1; j++) {
                    v[j] = hg_rng_normal(&g);
                    nr += v[j] * v[j];
                }
                double dist = 1.5 * hg_rng_uniform(&g);
                for (int64_t j = 0; j < d - 1; j++)
                    v[j] *= dist / sqrt(nr);
                ref_expmap0(x, v, d - 1);
                double wk = 0.2 + 1.3 * hg_rng_uniform(&g);
                for (int64_t j = 0; j < d; j++)
                    acc[j] += wk * x[j];
            }
            for (int64_t j = 0; j < d; j++)
                S[i * d + j] = (float)acc[j];
        }
        for (int64_t j = 0; j < d; j++) {
            S[CEN_CLAMP_ROW * d + j] = j < 2 ? 1.0f : 0.0f;          /* (1, 1, 0, ..) */
            S[CEN_SPACE_ROW * d + j] = j == 0 ? 0.5f : (j < 3 ? 1.0f : 0.25f); /* spacelike */
        }
        hg_test_fill_uniform(R, (size_t)(n * d), -1.0f, 1.0f, 350 + (uint64_t)d);
        for (int64_t q = 0; q < n * d; q++) {
            c.v[q] = S[q];
            c.R[q] = R[q];
        }
        hg_k_lorentz_centroid_backward(&K, dS, R, S, n, d);
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            c.row = i;
            const double *si = c.v + i * d;
            const double mk = fabs(minkowski(si, si, d)), se = norm2(si, d);
            c.clamp_side = mk < REF_CENTROID_MIN;
            assert_int_equal(c.clamp_side, i == CEN_CLAMP_ROW);
            if (i == CEN_SPACE_ROW)
                assert_true(minkowski(si, si, d) > 0.1);
            else if (i != CEN_CLAMP_ROW)
                assert_true(minkowski(si, si, d) < -0.1);
            /* L = |<S,S>_L| / (2|S|_E) (where <S,S>_L changes by a fraction of itself); inside
               the clamp the map is linear and the step keeps |<S,S>_L| < 1e-8 */
            const double h = c.clamp_side ? 1e-10 : 1e-5 * mk / (2.0 * se);
            const double rho = c.clamp_side ? 1.0 : se * se / mk;
            const double kappa = d == 16 ? 20.0 * rho + 8.0 : 4.0;
            double num[MAXD];
            for (int64_t j = 0; j < d; j++)
                num[j] = cdiff(cen_f, &c, c.v + i * d + j, h);
            /* the clamp row's differences divide rounding of |out| ~ 1e4 by h = 1e-10: ~1e-8
               relative */
            worst = fmax(worst, compare_row(dS + i * d, num, d, kappa,
                                            c.clamp_side ? 1e-6 : 1e-8, "centroid dS", i, d));
        }
        assert_int_equal(c.crossed, 0);
        print_message("centroid backward d=%-2lld err/tol %.3f\n", (long long)d, worst);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expmap0_oracle),
        cmocka_unit_test(test_head_oracle),
        cmocka_unit_test(test_centroid_oracle),
        cmocka_unit_test(test_nc_2layers),
        cmocka_unit_test(test_nc_3layers_relu_dropout),
        cmocka_unit_test(test_nc_no_bias),
        cmocka_unit_test(test_lp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
