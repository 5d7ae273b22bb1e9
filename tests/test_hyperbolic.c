/* test_hyperbolic.c - the whole HyboNet model (hyperbolic/hybonet.c) on tiny graphs built here.
 * Suite: numerics. Oracles: central differences of the losses through every parameter (the
 * weights through sst/ in full-rank mode), the manifold constraint of every layer's points,
 * bitwise determinism, and the class points' constraint under the optimiser.
 *
 * Gradient-check tolerances. The loss is a double sum over float logits (scores), and everything
 * before them is float32 (GEMM, CSR products, the 16-wide head and centroid computed in float), so
 * the loss carries a rounding noise that differs between f(theta+h) and f(theta-h). Bound: a logit
 * a = 2 + 2<x,p>_L + b is a sum of terms of total size |a|_abs = 2 + |b| + sum_j |2 x_j p_j|, and
 * its error relative to |a|_abs is at most kappa u per layer (u = 2^-24). The per-stage bounds of
 * test_kernels.c add up to ~100 u per layer if every rounding were aligned; roundings are
 * independent and grow like the square root of their number (~10 stages x 16 lanes): ~10 u. We
 * take kappa = 16 per layer. The loss adds +-w of each active logit, so its noise is at most
 * noise = kappa u S with S = w sum_active (|a_y|_abs + |a_c|_abs) (loss_scale() below). Measured on
 * these graphs (f at one-ulp parameter changes, 2 to 4 layers): 0.1..5.5 u S, at most 2.7 u S per
 * layer, so the bound holds with a factor >= 5. A central difference then errs by at most
 * 2 noise / 2h; the checks allow twice that: atol = 2 noise / h, with h = 3e-3.
 * Truncation: h^2 |f'''| / 6, relative ~c (h/L)^2. Sigmoid, exp(s), cosh and the centroid bend over
 * O(1) changes of a parameter; the head maps z_sp to its direction, which bends over |z_sp|, so L is
 * the smallest |z_sp| of any node in any layer (0.1..1 here; featureless nodes have the smallest).
 * c ~ 5 is observed; rtol = max(2e-3, 20 (h/L)^2), which also covers the float rounding of the
 * analytic gradients (tens of u).
 * The decoders are also checked alone (check_decoder_grads): there the loss is piecewise linear in
 * each input, only the rounding term remains, and the check is sharper.
 *
 * Kinks: the losses are hinges and the activation is a ReLU. Every evaluation compares the side of
 * each hinge, each ReLU input and each head clamp (|z_sp|^2 < 1e-8) with the base point; where a
 * difference would straddle a kink the step is divided by 4 (down to 1e-5, atol growing as 1/h),
 * and the test fails if even that does not avoid it, rather than compare across a kink. The checks
 * run at a generic point: biases and scales randomised, and column 0 of every W (zero at
 * initialisation) too, so that no node sits in the head's clamp (see test_layers_on_manifold). */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hyperbolic/hybonet.h"
#include "../kernels/kernels.h"
#include "../src/hg.h"
#include "../src/rng.h"

#define U32 (0.5 * (double)FLT_EPSILON) /* unit roundoff of float32 */

static hg_kctx K = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};

/* ---------------------------------------------------------------- the graph */

#define GN 12 /* nodes */
#define GF 7  /* feature columns */
#define GC 3  /* classes */
#define MAXPAIRS 32
#define EMPTY_A 3 /* nodes without features: their input point is the origin */
#define EMPTY_B 8

typedef hg_test_graph graph;

/* A ring of GN nodes plus chords (node degrees 2..5, so A_hat is not symmetric and a backward
 * that used A_hat for A_hat^T would show), self loops added, rows normalised; sparse random
 * features in [0.1, 1) with two empty rows; random labels; 9 training nodes. */
static void build_graph(graph *g)
{
    static const int chords[][2] = {{0, 6}, {1, 4}, {2, 9}, {0, 3}, {5, 10}, {0, 9}, {4, 8}};
    const hg_test_graph_spec spec = {GN, GF, GC, chords, (int)(sizeof chords / sizeof chords[0]),
                                     EMPTY_A, EMPTY_B, 777, 0.45, 0.5f, 1};
    hg_test_graph_build(g, &spec);
}

static void free_graph(graph *g) { hg_test_graph_destroy(g); }

static hg_hybonet_config base_config(int nlayers, int dim, int nclasses)
{
    hg_hybonet_config c;
    memset(&c, 0, sizeof c);
    c.n = GN;
    c.nfeat = GF;
    c.dim = dim;
    c.nlayers = nlayers;
    c.nclasses = nclasses;
    c.dropout = 0.0f;
    c.act_relu = 0;
    c.bias = 1;
    c.margin = 2.0f;
    c.scale_init = 10.0f;
    hg_linear_opts_default(&c.linear);
    c.linear.method = HG_LINEAR_FULL;
    c.seed = 1234;
    return c;
}

static void init_model(hg_hybonet *m, const hg_hybonet_config *c, const graph *g)
{
    int rc = hg_hybonet_init(m, &K, c, &g->feat, &g->adj, MAXPAIRS);
    if (rc != HG_OK)
        fail_msg("hg_hybonet_init: %s: %s", hg_strerror(rc), hg_last_error());
}

/* The weight W of layer l (full-rank mode: persistent tensor 0 of its hg_linear is W itself). */
static float *layer_weight(hg_hybonet *m, int l, int64_t *count)
{
    const char *name;
    float *data;
    hg_test_linear_tensor(m->layer[l].lin, 0, &name, &data, count);
    assert_non_null(name);
    assert_string_equal(name, "W");
    assert_int_equal(*count, hg_linear_rows(m->layer[l].lin) * hg_linear_cols(m->layer[l].lin));
    return data;
}

/* Move the parameters off their special initial values (biases 0, equal scales, W column 0 = 0)
 * so the checks run at a generic point: biases uniform in +-0.1, log-scales log(10) +- 0.3,
 * W[:, 0] uniform in +-0.1 (|z_sp| of a featureless node ~0.2, far from the clamp at 1e-4).
 * Larger common offsets (the bias and W[:, 0] x0 are the same for every node) would pull all
 * embeddings together and drown the link-prediction scores' differences in their rounding. */
static void randomise_params(hg_hybonet *m, uint64_t seed)
{
    hg_rng r;
    hg_rng_seed(&r, seed);
    for (int l = 0; l < m->cfg.nlayers; l++) {
        for (int j = 0; j < m->cfg.dim; j++)
            m->layer[l].bias[j] = (float)(0.2 * (hg_rng_uniform(&r) - 0.5));
        *m->layer[l].scale = (float)(log(10.0) + 0.6 * (hg_rng_uniform(&r) - 0.5));
        int64_t cnt;
        float *W = layer_weight(m, l, &cnt);
        const int64_t din = m->layer[l].din;
        for (int64_t i = 0; i < m->cfg.dim; i++)
            W[i * din] = (float)(0.2 * (hg_rng_uniform(&r) - 0.5));
        hg_linear_rematerialise(m->layer[l].lin);
    }
    for (int c = 0; c < m->cfg.nclasses; c++)
        m->cls_bias[c] = (float)(hg_rng_uniform(&r) - 0.5);
}

/* ---------------------------------------------------------------- the scalar objective */

enum { TASK_NC, TASK_LP };

#define MAXPAT 8192

typedef struct {
    hg_hybonet m;
    int task;
    uint64_t dseed;
    const graph *g;
    int32_t pos[2 * MAXPAIRS], neg[2 * MAXPAIRS];
    int64_t npairs;
    /* side of every hinge, ReLU input and head clamp at the base point */
    unsigned char base[MAXPAT];
    int64_t npat;
    int have_base;
    int64_t crossed;  /* evaluations where a side changed */
    int decoder_only; /* model_f: evaluate the loss at the current m->emb, no forward */
    double min_hinge; /* min |hinge argument| at the base point */
} model_ctx;

static int64_t pattern(model_ctx *c, unsigned char *pat, double *min_hinge)
{
    hg_hybonet *m = &c->m;
    const int64_t n = m->cfg.n, dim = m->cfg.dim;
    int64_t k = 0;
    double mh = INFINITY;
    if (c->task == TASK_NC) {
        const int64_t C = m->cfg.nclasses;
        for (int64_t a = 0; a < c->g->ntrain; a++) {
            int64_t i = c->g->train[a];
            int32_t y = c->g->labels[i];
            for (int64_t cc = 0; cc < C; cc++) {
                if (cc == y)
                    continue; /* margin > 0: always active */
                double t = (double)m->cfg.margin - m->logits[i * C + y] + m->logits[i * C + cc];
                mh = fmin(mh, fabs(t));
                pat[k++] = t > 0.0;
            }
        }
    } else {
        const float *sp = m->pair_score, *sn = m->pair_score + c->npairs;
        for (int64_t e = 0; e < c->npairs; e++) {
            double t = (double)m->cfg.margin - sp[e] + sn[e];
            mh = fmin(mh, fabs(t));
            pat[k++] = t > 0.0;
        }
    }
    for (int l = 0; l < m->cfg.nlayers; l++) {
        if (m->cfg.act_relu && l > 0)
            for (int64_t j = 0; j < n * dim; j++)
                pat[k++] = m->layer[l - 1].out[j] > 0.0f;
        for (int64_t i = 0; i < n; i++) {
            double q = 0.0;
            for (int64_t j = 1; j < dim; j++)
                q += (double)m->layer[l].z[i * dim + j] * m->layer[l].z[i * dim + j];
            pat[k++] = q < HG_LORENTZ_LINEAR_MIN_SQNORM;
        }
    }
    assert_true(k <= MAXPAT);
    if (min_hinge)
        *min_hinge = mh;
    return k;
}

static double eval_loss(model_ctx *c, int want_grad)
{
    hg_hybonet *m = &c->m;
    if (c->task == TASK_NC)
        return hg_hybonet_nc_loss(m, c->g->train, c->g->ntrain, c->g->labels, want_grad);
    return hg_hybonet_lp_loss(m, c->pos, c->neg, c->npairs, want_grad);
}

/* f(theta): rebuild the weights from the (possibly perturbed) sst/ tensors, forward in training
 * mode with the fixed dropout seed (so the mask is the same in every evaluation), the loss; and
 * compare the kink pattern with the base point. */
static double model_f(void *p)
{
    model_ctx *c = p;
    if (!c->decoder_only) {
        hg_hybonet_rematerialise(&c->m);
        hg_hybonet_forward(&c->m, 1, c->dseed);
    }
    double f = eval_loss(c, 0);
    unsigned char pat[MAXPAT];
    int64_t k = pattern(c, pat, NULL);
    if (c->have_base && (k != c->npat || memcmp(pat, c->base, (size_t)k) != 0))
        c->crossed++;
    return f;
}

/* Analytic gradients at the current parameters: zero_grad, forward, loss(want_grad), backward
 * with the same dropout seed. Fills m->grads and the sst/ gradients. */
static void analytic(model_ctx *c)
{
    hg_hybonet_zero_grad(&c->m);
    hg_hybonet_rematerialise(&c->m);
    hg_hybonet_forward(&c->m, 1, c->dseed);
    eval_loss(c, 1);
    hg_hybonet_backward(&c->m, 1, c->dseed);
}

static void set_base(model_ctx *c)
{
    c->have_base = 0;
    model_f(c);
    c->npat = pattern(c, c->base, &c->min_hinge);
    c->have_base = 1;
    c->crossed = 0;
}

/* dL/dW of layer l, element by element, through sst/'s public interface only: after a backward
 * the layer's gradient buffer holds G (full rank: the trainable gradient is G itself) and
 * hg_test_linear_grad_sqnorm() reads |G|^2; handing it alpha e_k more with hg_linear_accumulate_grad()
 * gives |G + alpha e_k|^2, so G_k = (|G + alpha e_k|^2 - |G|^2 - alpha^2) / (2 alpha) (the
 * polarisation identity). Error: G_k + alpha is stored in float (relative u), so
 * |err| <= u (|G_k| + alpha)^2 / alpha + ~1e-16 |G|^2 / alpha; alpha = 1 makes that ~1e-7 for
 * gradients of order one, far below the central-difference tolerance. (An accessor such as
 * hg_linear_grad_tensor() in sst/linear.h would make this a plain read.) */
static void weight_grad(model_ctx *c, int l, double *G)
{
    hg_linear *lin = c->m.layer[l].lin;
    const int64_t cnt = hg_linear_rows(lin) * hg_linear_cols(lin);
    float *E = calloc((size_t)cnt, sizeof *E);
    assert_non_null(E);
    const double alpha = 1.0;
    for (int64_t k = 0; k < cnt; k++) {
        analytic(c);
        double s0 = hg_test_linear_grad_sqnorm(lin);
        E[k] = (float)alpha;
        hg_linear_accumulate_grad(lin, E);
        E[k] = 0.0f;
        double s1 = hg_test_linear_grad_sqnorm(lin);
        G[k] = (s1 - s0 - alpha * alpha) / (2.0 * alpha);
    }
    free(E);
}

/* ---------------------------------------------------------------- tolerances */

#define KAPPA_PER_LAYER 16.0
#define GRAD_H 3e-3
#define GRAD_H_DECODER 1e-2
#define GRAD_H_MIN 1e-5
#define GRAD_RTOL 2e-3

/* |a|_abs of the logit 2 + 2<x,p>_L + b (or the score 2 + 2<x,y>_L). */
static double logit_abs(const float *x, const float *p, int64_t dim, double b)
{
    double s = 2.0 + fabs(b);
    for (int64_t j = 0; j < dim; j++)
        s += fabs(2.0 * (double)x[j] * p[j]);
    return s;
}

/* S of the file header at the current embeddings: w sum over the active hinges of the |.|_abs of
 * the logits (scores) they contain. The loss's rounding noise is kappa u S. */
static double loss_scale(model_ctx *c)
{
    hg_hybonet *m = &c->m;
    const int64_t dim = m->cfg.dim;
    double S = 0.0;
    eval_loss(c, 0);
    if (c->task == TASK_NC) {
        const int64_t C = m->cfg.nclasses;
        const double w = 1.0 / ((double)c->g->ntrain * (double)C);
        for (int64_t a = 0; a < c->g->ntrain; a++) {
            int64_t i = c->g->train[a];
            int32_t y = c->g->labels[i];
            for (int64_t cc = 0; cc < C; cc++) {
                double t = (double)m->cfg.margin - m->logits[i * C + y] + m->logits[i * C + cc];
                if (t <= 0.0 || cc == y)
                    continue;
                double by = m->cfg.bias ? m->cls_bias[y] : 0.0;
                double bc = m->cfg.bias ? m->cls_bias[cc] : 0.0;
                S += w * (logit_abs(m->emb + i * dim, m->cls + y * dim, dim, by) +
                          logit_abs(m->emb + i * dim, m->cls + cc * dim, dim, bc));
            }
        }
    } else {
        const double w = 1.0 / (2.0 * (double)c->npairs);
        for (int64_t e = 0; e < c->npairs; e++) {
            double t = (double)m->cfg.margin - m->pair_score[e] + m->pair_score[c->npairs + e];
            if (t <= 0.0)
                continue;
            const int32_t *pp = c->pos + 2 * e, *nn = c->neg + 2 * e;
            S += w * (logit_abs(m->emb + pp[0] * dim, m->emb + pp[1] * dim, dim, 0.0) +
                      logit_abs(m->emb + nn[0] * dim, m->emb + nn[1] * dim, dim, 0.0));
        }
    }
    return S;
}

/* The smallest |z_sp| over every layer and node: the LorentzLinear head maps z_sp to its
 * direction (times sqrt(t^2 - 1)), which bends over |z_sp|: the truncation length scale L. */
static double head_length_scale(hg_hybonet *m)
{
    const int64_t dim = m->cfg.dim;
    double L = 1.0;
    for (int l = 0; l < m->cfg.nlayers; l++)
        for (int64_t i = 0; i < m->cfg.n; i++) {
            double q = 0.0;
            for (int64_t j = 1; j < dim; j++)
                q += (double)m->layer[l].z[i * dim + j] * m->layer[l].z[i * dim + j];
            L = fmin(L, sqrt(q));
        }
    return L;
}

/* Tolerances of one check: atol = 2 noise / h (rounding), rtol = max(rtol_min, 20 (h/L)^2)
 * (truncation ~ c (h/L)^2 with c ~ 5 observed here; L = INFINITY where f is piecewise linear). */
typedef struct {
    double h0, noise, L, rtol_min, atol_extra;
} grad_tol;

/* One entry theta[k] against its analytic gradient: the largest step h <= h0 (by factors of 4)
 * whose differences cross no kink, then hg_check_grad with the tolerances above. */
static void check_entry(model_ctx *c, float *theta, size_t k, double grad, const grad_tol *tol,
                        const char *label)
{
    double h = tol->h0;
    for (;;) {
        const float saved = theta[k];
        c->crossed = 0;
        theta[k] = (float)(saved + h);
        model_f(c);
        theta[k] = (float)(saved - h);
        model_f(c);
        theta[k] = saved;
        if (!c->crossed)
            break;
        h /= 4.0;
        if (h < GRAD_H_MIN)
            fail_msg("%s[%zu]: every step down to %.1e crosses a hinge/ReLU/clamp kink (min "
                     "|hinge| %.3g): change the seed", label, k, GRAD_H_MIN, c->min_hinge);
    }
    const double atol = 2.0 * tol->noise / h + tol->atol_extra;
    const double rtol = fmax(tol->rtol_min, 20.0 * (h / tol->L) * (h / tol->L));
    hg_check_grad(model_f, c, theta + k, &grad, 1, 1, h, atol, rtol, label);
    assert_true(c->crossed == 0);
}

/* Every ordinary parameter (biases, scales, class biases, class points: Euclidean gradient) and
 * every weight of every layer against central differences of the whole model. */
static void check_model_grads(model_ctx *c, const char *what)
{
    hg_hybonet *m = &c->m;
    char label[160];
    set_base(c);
    grad_tol tol = {GRAD_H, KAPPA_PER_LAYER * m->cfg.nlayers * U32 * loss_scale(c),
                    head_length_scale(m), GRAD_RTOL, 0.0};

    analytic(c);
    double *g = malloc((size_t)m->nparams * sizeof *g);
    assert_non_null(g);
    for (int64_t i = 0; i < m->nparams; i++)
        g[i] = m->grads[i];
    snprintf(label, sizeof label, "%s: params", what);
    for (int64_t i = 0; i < m->nparams; i++)
        check_entry(c, m->params, (size_t)i, g[i], &tol, label);
    free(g);

    for (int l = 0; l < m->cfg.nlayers; l++) {
        int64_t cnt;
        float *W = layer_weight(m, l, &cnt);
        double *G = malloc((size_t)cnt * sizeof *G);
        assert_non_null(G);
        weight_grad(c, l, G);
        snprintf(label, sizeof label, "%s: W of layer %d", what, l);
        for (int64_t k = 0; k < cnt; k++)
            check_entry(c, W, (size_t)k, G[k], &tol, label);
        free(G);
    }
}

/* The decoder alone, sharper: the loss as a function of the embeddings (and, for NC, of the class
 * points and class biases) with the layers frozen. It is piecewise linear in each of them (the
 * logits 2 + 2<x,p>_L + b are bilinear, the scores 2 + 2<x,y>_L quadratic only through pairs
 * (u, u), which the pairs here avoid), so the central difference has no truncation error. Noise:
 * the logits are a float GEMM over dim terms (|err| <= (dim + 3) u |a|_abs), the scores double
 * rounded to float; kappa = dim + 3 for both. The analytic gradients are float GEMMs over the C
 * classes (or float sums of the pair terms): relative error ~(C + 2) u of the terms they sum, allowed
 * as rtol 1e-4 plus an absolute 64 u max|grad| for cancellation. */
static void check_decoder_grads(model_ctx *c, const char *what)
{
    hg_hybonet *m = &c->m;
    const int64_t n = m->cfg.n, dim = m->cfg.dim, C = m->cfg.nclasses;
    char label[160];
    set_base(c);
    c->decoder_only = 1;
    hg_hybonet_zero_grad(m);
    eval_loss(c, 1);
    const int64_t ne = n * dim, np = C * dim + C;
    double *g = malloc((size_t)(ne + np) * sizeof *g);
    assert_non_null(g);
    double gmax = 0.0;
    for (int64_t i = 0; i < ne; i++)
        gmax = fmax(gmax, fabs(g[i] = m->demb[i]));
    for (int64_t i = 0; i < C * dim; i++)
        gmax = fmax(gmax, fabs(g[ne + i] = m->gcls[i]));
    for (int64_t i = 0; i < C; i++)
        gmax = fmax(gmax, fabs(g[ne + C * dim + i] = m->gcls_bias[i]));
    grad_tol tol = {GRAD_H_DECODER, (dim + 3.0) * U32 * loss_scale(c), INFINITY, 1e-4,
                    64.0 * U32 * gmax};
    snprintf(label, sizeof label, "%s: decoder dL/demb", what);
    for (int64_t i = 0; i < ne; i++)
        check_entry(c, m->emb, (size_t)i, g[i], &tol, label);
    snprintf(label, sizeof label, "%s: decoder dL/dclass point", what);
    for (int64_t i = 0; i < C * dim; i++)
        check_entry(c, m->cls, (size_t)i, g[ne + i], &tol, label);
    if (m->cfg.bias) {
        snprintf(label, sizeof label, "%s: decoder dL/dclass bias", what);
        for (int64_t i = 0; i < C; i++)
            check_entry(c, m->cls_bias, (size_t)i, g[ne + C * dim + i], &tol, label);
    }
    free(g);
    c->decoder_only = 0;
}

/* ---------------------------------------------------------------- NC gradient checks */

static void nc_grad_case(int nlayers, int dim, int act_relu, float dropout, int bias,
                         const char *what)
{
    graph g;
    build_graph(&g);
    hg_hybonet_config cfg = base_config(nlayers, dim, GC);
    cfg.act_relu = act_relu;
    cfg.dropout = dropout;
    cfg.bias = bias;
    model_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    init_model(&c->m, &cfg, &g);
    randomise_params(&c->m, 99);
    c->task = TASK_NC;
    c->dseed = 4242;
    c->g = &g;
    check_model_grads(c, what);
    check_decoder_grads(c, what);
    if (!bias) {
        /* the biases are not used: no gradient reaches them */
        analytic(c);
        for (int l = 0; l < nlayers; l++)
            for (int j = 0; j < dim; j++)
                assert_true(c->m.layer[l].gbias[j] == 0.0f);
        for (int k = 0; k < GC; k++)
            assert_true(c->m.gcls_bias[k] == 0.0f);
    }
    hg_hybonet_destroy(&c->m);
    free(c);
    free_graph(&g);
}

/* (a) 2 layers, no activation, no dropout; at dim 16 (the 16-wide kernels) and dim 6 (generic) */
static void test_nc_grad_2layers(void **state)
{
    (void)state;
    nc_grad_case(2, 16, 0, 0.0f, 1, "nc 2 layers dim 16");
    nc_grad_case(2, 6, 0, 0.0f, 1, "nc 2 layers dim 6");
}

/* (b) 3 layers, ReLU, dropout 0.3 with one fixed seed for every evaluation */
static void test_nc_grad_3layers_relu_dropout(void **state)
{
    (void)state;
    nc_grad_case(3, 16, 1, 0.3f, 1, "nc 3 layers relu dropout 0.3 dim 16");
    nc_grad_case(3, 6, 1, 0.3f, 1, "nc 3 layers relu dropout 0.3 dim 6");
}

/* (c) no biases */
static void test_nc_grad_no_bias(void **state)
{
    (void)state;
    nc_grad_case(2, 16, 0, 0.0f, 0, "nc bias 0 dim 16");
    nc_grad_case(2, 6, 1, 0.0f, 0, "nc bias 0 relu dim 6");
}

/* ---------------------------------------------------------------- LP gradient check */

static void lp_grad_case(int dim, float dropout, const char *what)
{
    graph g;
    build_graph(&g);
    model_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->task = TASK_LP;
    c->dseed = 5151;
    c->g = &g;
    /* 8 positive pairs (edges, both orientations appear) and 8 negatives (non-edges) */
    hg_rng r;
    hg_rng_seed(&r, 31);
    c->npairs = 0;
    while (c->npairs < 8) {
        int u = (int)hg_rng_below(&r, GN), v = (int)hg_rng_below(&r, GN);
        if (u != v && g.A[u][v]) {
            c->pos[2 * c->npairs] = u;
            c->pos[2 * c->npairs + 1] = v;
            c->npairs++;
        }
    }
    for (int64_t e = 0; e < c->npairs;) {
        int u = (int)hg_rng_below(&r, GN), v = (int)hg_rng_below(&r, GN);
        if (u != v && !g.A[u][v]) {
            c->neg[2 * e] = u;
            c->neg[2 * e + 1] = v;
            e++;
        }
    }
    hg_hybonet_config cfg = base_config(2, dim, 0);
    cfg.dropout = dropout;
    /* The margin: midway between the two middle values of s_pos - s_neg at the check point, so
     * about half the hinges are active and the nearest sits as far from its kink as possible. */
    cfg.margin = 0.0f;
    init_model(&c->m, &cfg, &g);
    randomise_params(&c->m, 98);
    hg_hybonet_forward(&c->m, 1, c->dseed);
    float sp[MAXPAIRS], sn[MAXPAIRS];
    double diff[MAXPAIRS];
    hg_hybonet_lp_scores(&c->m, c->pos, c->npairs, sp);
    hg_hybonet_lp_scores(&c->m, c->neg, c->npairs, sn);
    for (int64_t e = 0; e < c->npairs; e++)
        diff[e] = (double)sp[e] - sn[e];
    for (int64_t a = 1; a < c->npairs; a++) /* insertion sort */
        for (int64_t b = a; b > 0 && diff[b - 1] > diff[b]; b--) {
            double t = diff[b];
            diff[b] = diff[b - 1];
            diff[b - 1] = t;
        }
    const float margin = (float)(0.5 * (diff[c->npairs / 2 - 1] + diff[c->npairs / 2]));
    hg_hybonet_destroy(&c->m);
    cfg.margin = margin;
    init_model(&c->m, &cfg, &g);
    randomise_params(&c->m, 98);
    set_base(c);
    int active = 0;
    for (int64_t e = 0; e < c->npairs; e++)
        active += c->base[e];
    assert_true(active > 0 && active < c->npairs);
    check_model_grads(c, what);
    check_decoder_grads(c, what);
    /* the loss value: the reference form mean(relu(margin - s_pos + [s_pos, s_neg])) */
    double want = 0.0;
    hg_hybonet_forward(&c->m, 1, c->dseed);
    hg_hybonet_lp_scores(&c->m, c->pos, c->npairs, sp);
    hg_hybonet_lp_scores(&c->m, c->neg, c->npairs, sn);
    for (int64_t e = 0; e < c->npairs; e++)
        want += fmax((double)margin, 0.0) + fmax((double)margin - sp[e] + sn[e], 0.0);
    want /= 2.0 * (double)c->npairs;
    double got = hg_hybonet_lp_loss(&c->m, c->pos, c->neg, c->npairs, 0);
    /* same float scores summed in double, in another order: a few double ulps */
    assert_true(fabs(got - want) <= 1e-12 * (1.0 + fabs(want)));
    hg_hybonet_destroy(&c->m);
    free(c);
    free_graph(&g);
}

static void test_lp_grad(void **state)
{
    (void)state;
    lp_grad_case(16, 0.0f, "lp 2 layers dim 16");
    lp_grad_case(6, 0.2f, "lp 2 layers dropout 0.2 dim 6");
}

/* ---------------------------------------------------------------- manifold */

/* |<x,x>_L + 1| <= c u |x|_E^2 for the rows listed in `rows` (all when NULL); c from the kernel
 * derivations in test_kernels.c: the head and the centroid round their outputs with relative
 * error <= 2u (generic, d != 16) or a few tens of u (16-wide float path): allow c = 8 or 48.
 * Both bounds hold for any input z or S, so they apply layer by layer inside the model. */
static void assert_rows_on_manifold(const float *x, int64_t n, int64_t d, const char *what, int l)
{
    const double cman = d == 16 ? 48.0 : 8.0;
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double r = hg_k_lorentz_inner(xi, xi, d) + 1.0;
        double tol = cman * U32 * hg_k_sqnorm(&K, xi, d);
        if (!(fabs(r) <= tol) || !(xi[0] >= 1.0f))
            fail_msg("%s of layer %d, node %lld (dim %lld): <x,x>_L + 1 = %.3g (tol %.3g), "
                     "x0 = %.9g", what, l, (long long)i, (long long)d, r, tol, (double)xi[0]);
    }
}

static void check_all_layers(hg_hybonet *m, int expect_clamped)
{
    const int64_t n = m->cfg.n, dim = m->cfg.dim;
    for (int l = 0; l < m->cfg.nlayers; l++) {
        const hg_hybonet_layer *L = &m->layer[l];
        assert_rows_on_manifold(L->out, n, dim, "out", l);
        /* y: every node whose z_sp is outside the head's clamp; inside it (|z_sp|^2 < 1e-8)
         * y = (t, z_sp sqrt((t^2-1)/1e-8)) has |y_sp|^2 < t^2 - 1, off the hyperboloid by design
         * (as in the reference); the centroid puts the aggregate back on it. */
        int clamped = 0;
        for (int64_t i = 0; i < n; i++) {
            double q = 0.0;
            for (int64_t j = 1; j < dim; j++)
                q += (double)L->z[i * dim + j] * L->z[i * dim + j];
            if (q < HG_LORENTZ_LINEAR_MIN_SQNORM) {
                clamped++;
                assert_true(L->y[i * dim] > HG_LORENTZ_LINEAR_TIME_OFFSET - 1e-6f);
                continue;
            }
            assert_rows_on_manifold(L->y + i * dim, 1, dim, "y", l);
        }
        if (expect_clamped >= 0 && l == 0)
            assert_int_equal(clamped, expect_clamped);
    }
}

static void test_layers_on_manifold(void **state)
{
    (void)state;
    graph g;
    build_graph(&g);
    static const int dims[] = {16, 6};
    for (int di = 0; di < 2; di++) {
        hg_hybonet_config cfg = base_config(4, dims[di], GC);
        cfg.act_relu = 1;
        cfg.dropout = 0.5f;
        hg_hybonet m;
        init_model(&m, &cfg, &g);

        /* the input points expmap0(0, f): double arithmetic rounded once, c = 8 */
        for (int64_t i = 0; i < GN; i++) {
            double s = 0.0, e2 = 0.0;
            for (int64_t p = m.x0.rowptr[i]; p < m.x0.rowptr[i + 1]; p++) {
                double v = m.x0.val[p];
                s += m.x0.col[p] == 0 ? -v * v : v * v;
                e2 += v * v;
            }
            assert_true(m.x0.col[m.x0.rowptr[i]] == 0 && m.x0.val[m.x0.rowptr[i]] >= 1.0f);
            assert_true(fabs(s + 1.0) <= 8.0 * U32 * e2);
        }
        /* the class points at initialisation: distance 1 from the origin */
        assert_rows_on_manifold(m.cls, GC, dims[di], "class point", -1);
        for (int c = 0; c < GC; c++)
            assert_true(fabs(m.cls[c * dims[di]] - cosh(1.0)) <= 2.0 * U32 * cosh(1.0));

        /* At initialisation (b = 0, W[:, 0] = 0) a node without features has z = 0: its head
         * output sits in the clamp (y = (t, 0)). Evaluation mode, so no dropout. */
        hg_hybonet_forward(&m, 0, 0);
        check_all_layers(&m, 2);

        /* random parameters, training mode (dropout 0.5 masks), several masks */
        for (uint64_t s = 0; s < 4; s++) {
            randomise_params(&m, 500 + s);
            hg_hybonet_forward(&m, 1, 900 + s);
            check_all_layers(&m, -1);
            hg_hybonet_forward(&m, 0, 0);
            check_all_layers(&m, 0);
        }
        hg_hybonet_destroy(&m);
    }
    free_graph(&g);
}

/* ---------------------------------------------------------------- determinism */

static void test_determinism(void **state)
{
    (void)state;
    graph g;
    build_graph(&g);
    hg_hybonet_config cfg = base_config(3, 16, GC);
    cfg.act_relu = 1;
    cfg.dropout = 0.3f;
    hg_hybonet a, b;
    init_model(&a, &cfg, &g);
    init_model(&b, &cfg, &g);
    const size_t bytes = (size_t)(GN * 16) * sizeof(float);
    /* same config and seed: the same bits, in evaluation and in training mode */
    hg_hybonet_forward(&a, 0, 0);
    hg_hybonet_forward(&b, 0, 0);
    assert_memory_equal(a.emb, b.emb, bytes);
    hg_hybonet_forward(&a, 1, 77);
    hg_hybonet_forward(&b, 1, 77);
    assert_memory_equal(a.emb, b.emb, bytes);
    /* ... and after a few identical training steps */
    for (int t = 0; t < 5; t++) {
        hg_hybonet *ms[2] = {&a, &b};
        for (int k = 0; k < 2; k++) {
            hg_hybonet_zero_grad(ms[k]);
            hg_hybonet_forward(ms[k], 1, 100 + (uint64_t)t);
            hg_hybonet_nc_loss(ms[k], g.train, g.ntrain, g.labels, 1);
            hg_hybonet_backward(ms[k], 1, 100 + (uint64_t)t);
            assert_int_equal(hg_hybonet_step(ms[k], 0.02f, 10), HG_OK);
        }
    }
    hg_hybonet_forward(&a, 0, 0);
    hg_hybonet_forward(&b, 0, 0);
    assert_memory_equal(a.emb, b.emb, bytes);
    assert_memory_equal(a.params, b.params, (size_t)a.nparams * sizeof(float));
    /* another dropout seed gives another embedding */
    hg_hybonet_forward(&a, 1, 77);
    hg_hybonet_forward(&b, 1, 78);
    assert_true(memcmp(a.emb, b.emb, bytes) != 0);
    hg_hybonet_destroy(&b);
    /* another model seed gives other weights, hence another embedding */
    cfg.seed = 1235;
    init_model(&b, &cfg, &g);
    hg_hybonet_destroy(&a);
    cfg.seed = 1234;
    init_model(&a, &cfg, &g);
    hg_hybonet_forward(&a, 0, 0);
    hg_hybonet_forward(&b, 0, 0);
    assert_true(memcmp(a.emb, b.emb, bytes) != 0);
    assert_true(memcmp(a.cls, b.cls, (size_t)(GC * 16) * sizeof(float)) != 0);
    hg_hybonet_destroy(&a);
    hg_hybonet_destroy(&b);
    free_graph(&g);
}

/* ---------------------------------------------------------------- threads */

/* A graph large enough for the kernels to split rows between threads: TN nodes, each linked to
 * a few random others and to one of TH hubs (hub rows longer than HG_K_FLOAT_RUN, so the double
 * flush of long gathers runs), self loops, rows normalised; nf random sparse features per node. */
#define TN 1500
#define TH 5
static void build_big_graph(hg_csr *adj, hg_csr *feat, int64_t nf, uint64_t seed)
{
    unsigned char *A = calloc((size_t)TN * TN, 1);
    assert_non_null(A);
    hg_rng r;
    hg_rng_seed(&r, seed);
    for (int64_t i = 0; i < TN; i++) {
        A[i * TN + i] = 1;
        const int64_t h = (int64_t)hg_rng_below(&r, TH);
        A[i * TN + h] = A[h * TN + i] = 1;
        for (int e = 0; e < 3; e++) {
            const int64_t j = (int64_t)hg_rng_below(&r, TN);
            A[i * TN + j] = A[j * TN + i] = 1;
        }
    }
    int64_t nnz = 0;
    for (int64_t q = 0; q < (int64_t)TN * TN; q++)
        nnz += A[q];
    assert_int_equal(hg_csr_alloc(adj, TN, TN, nnz), HG_OK);
    int64_t p = 0;
    for (int64_t i = 0; i < TN; i++) {
        int64_t deg = 0;
        for (int64_t j = 0; j < TN; j++)
            deg += A[i * TN + j];
        adj->rowptr[i] = p;
        for (int64_t j = 0; j < TN; j++)
            if (A[i * TN + j]) {
                adj->col[p] = (int32_t)j;
                adj->val[p++] = 1.0f / (float)deg;
            }
    }
    adj->rowptr[TN] = p;
    free(A);
    const int64_t per_row = nf < 4 ? nf : 4;
    assert_int_equal(hg_csr_alloc(feat, TN, nf, TN * per_row), HG_OK);
    p = 0;
    for (int64_t i = 0; i < TN; i++) {
        feat->rowptr[i] = p;
        const int64_t c0 = (int64_t)hg_rng_below(&r, (uint64_t)(nf - per_row + 1));
        for (int64_t q = 0; q < per_row; q++) { /* distinct increasing columns */
            feat->col[p] = (int32_t)(c0 + q);
            feat->val[p++] = (float)(0.1 + 0.9 * hg_rng_uniform(&r));
        }
    }
    feat->rowptr[TN] = p;
}

/* Training steps of the same model on 1, 2 and 3 threads give the same bits: losses, gradients,
 * parameters, embeddings. nf > 15 or dropout takes the sparse first layer, else the dense one. */
static void threads_case(int64_t nf, float dropout, int nc)
{
    hg_csr adj = {0}, feat = {0};
    build_big_graph(&adj, &feat, nf, 99 + (uint64_t)nf);
    hg_hybonet_config cfg = base_config(3, 16, nc ? GC : 0);
    cfg.n = TN;
    cfg.nfeat = nf;
    cfg.act_relu = 1;
    cfg.dropout = dropout;
    int32_t *labels = malloc(TN * sizeof *labels), *pos = malloc(2 * TN * sizeof *pos),
            *neg = malloc(2 * TN * sizeof *neg);
    int64_t *train = malloc(TN * sizeof *train), ntrain = 0;
    assert_true(labels && pos && neg && train);
    hg_rng r;
    hg_rng_seed(&r, 5);
    for (int64_t i = 0; i < TN; i++) {
        labels[i] = (int32_t)hg_rng_below(&r, GC);
        if (i % 5 != 2)
            train[ntrain++] = i;
    }
    const int64_t npairs = TN / 2;
    for (int64_t e = 0; e < 2 * npairs; e++) {
        pos[e] = adj.col[hg_rng_below(&r, (uint64_t)adj.nnz)];
        neg[e] = (int32_t)hg_rng_below(&r, TN);
    }
    enum { NT = 3, STEPS = 4 };
    hg_kctx ks[NT];
    hg_hybonet ms[NT];
    double losses[NT][STEPS];
    for (int t = 0; t < NT; t++) {
        ks[t] = (hg_kctx){HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
        hg_k_set_threads(&ks[t], t + 1);
        assert_int_equal(hg_hybonet_init(&ms[t], &ks[t], &cfg, &feat, &adj, 2 * npairs), HG_OK);
        hg_hybonet *m = &ms[t];
        assert_true(nf > 15 || dropout > 0.0f ? m->x0_dense == NULL : m->x0_dense != NULL);
        for (int s = 0; s < STEPS; s++) {
            hg_hybonet_zero_grad(m);
            hg_hybonet_forward(m, 1, 40 + (uint64_t)s);
            losses[t][s] = nc ? hg_hybonet_nc_loss(m, train, ntrain, labels, 1)
                              : hg_hybonet_lp_loss(m, pos, neg, npairs, 1);
            hg_hybonet_backward(m, 1, 40 + (uint64_t)s);
            if (s + 1 < STEPS) /* the last step's gradients are compared below */
                assert_int_equal(hg_hybonet_step(m, 0.02f, 10), HG_OK);
        }
    }
    const size_t emb_bytes = (size_t)TN * 16 * sizeof(float);
    for (int t = 1; t < NT; t++) {
        assert_memory_equal(losses[0], losses[t], sizeof losses[0]);
        assert_memory_equal(ms[0].emb, ms[t].emb, emb_bytes);
        assert_memory_equal(ms[0].demb, ms[t].demb, emb_bytes);
        assert_memory_equal(ms[0].params, ms[t].params, (size_t)ms[0].nparams * sizeof(float));
        assert_memory_equal(ms[0].grads, ms[t].grads, (size_t)ms[0].nparams * sizeof(float));
        for (int l = 0; l < cfg.nlayers; l++) {
            int64_t count;
            const float *w0 = layer_weight(&ms[0], l, &count);
            const float *wt = layer_weight(&ms[t], l, &count);
            assert_memory_equal(w0, wt, (size_t)count * sizeof(float));
        }
        assert_memory_equal(ms[0].gw, ms[t].gw, (size_t)(16 * ms[0].layer[0].din) * sizeof(float));
    }
    for (int t = 0; t < NT; t++)
        hg_hybonet_destroy(&ms[t]);
    free(labels);
    free(pos);
    free(neg);
    free(train);
    hg_csr_destroy(&adj);
    hg_csr_destroy(&feat);
}

static void test_threads_nc_sparse_input(void **state)
{
    (void)state;
    threads_case(40, 0.3f, 1);
}

static void test_threads_nc_dense_input(void **state)
{
    (void)state;
    threads_case(11, 0.0f, 1);
}

static void test_threads_lp(void **state)
{
    (void)state;
    threads_case(40, 0.0f, 0);
}

/* ---------------------------------------------------------------- optimiser */

static void test_class_points_stay_on_manifold(void **state)
{
    (void)state;
    graph g;
    build_graph(&g);
    hg_hybonet_config cfg = base_config(2, 16, GC);
    hg_hybonet m;
    init_model(&m, &cfg, &g);
    const int64_t dim = 16;
    double loss0 = 0.0, loss = 0.0;
    for (int t = 1; t <= 205; t++) {
        hg_hybonet_zero_grad(&m);
        hg_hybonet_forward(&m, 1, (uint64_t)t);
        loss = hg_hybonet_nc_loss(&m, g.train, g.ntrain, g.labels, 1);
        if (t == 1)
            loss0 = loss;
        hg_hybonet_backward(&m, 1, (uint64_t)t);
        assert_int_equal(hg_hybonet_step(&m, 0.02f, 10), HG_OK);
        /* Each Riemannian step recomputes the point in double and rounds it (<= 4u |x|_E^2 of
         * constraint error, test_kernels.c), carrying the previous error along with a gain of
         * cosh^2 of the step length (~1); re-projection every 10 steps resets it to <= 2u. So at
         * most 10 steps' worth: 40u |x|_E^2; allow 48u (the bound used for the 16-wide kernels). */
        for (int c = 0; c < GC; c++) {
            const float *p = m.cls + c * dim;
            double r = hg_k_lorentz_inner(p, p, dim) + 1.0;
            double tol = 48.0 * U32 * hg_k_sqnorm(&K, p, dim);
            if (!(fabs(r) <= tol) || !(p[0] >= 1.0f))
                fail_msg("step %d: class point %d: <p,p>_L + 1 = %.3g (tol %.3g)", t, c, r, tol);
            /* right after a re-projection the time coordinate is sqrt(1 + |p_sp|^2) rounded */
            if (t % 10 == 0)
                assert_true(fabs(r) <= 4.0 * U32 * hg_k_sqnorm(&K, p, dim));
        }
    }
    /* training did something: the loss went down */
    assert_true(loss < loss0);
    hg_hybonet_destroy(&m);
    free_graph(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nc_grad_2layers),
        cmocka_unit_test(test_nc_grad_3layers_relu_dropout),
        cmocka_unit_test(test_nc_grad_no_bias),
        cmocka_unit_test(test_lp_grad),
        cmocka_unit_test(test_layers_on_manifold),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_threads_nc_sparse_input),
        cmocka_unit_test(test_threads_nc_dense_input),
        cmocka_unit_test(test_threads_lp),
        cmocka_unit_test(test_class_points_stay_on_manifold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
