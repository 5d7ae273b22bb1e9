/* hybonet.c - HyboNet forward/backward, decoders and losses (ARCHITECTURE.md section 3). */
#include "hybonet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/reference.h"
#include "../src/hg.h"
#include "../src/rng.h"

/* Seed streams: initialisation of layer l's weight, class points, dropout of layer l. */
enum { STREAM_WEIGHT = 0, STREAM_CLASS = 100, STREAM_DROPOUT = 200, STREAM_LINEAR = 300 };

/* Zeroed buffer of count elements of size bytes in the model's memory (k's: host or device). */
static void *alloc_k(const hg_kctx *k, int64_t count, size_t size, const char *what)
{
    return hg_k_alloc(k, (size_t)(count > 0 ? count : 1) * size, what);
}

static float *alloc_f(const hg_kctx *k, int64_t count, const char *what)
{
    return alloc_k(k, count, sizeof(float), what);
}

/* dst: a copy of the host matrix src in k's memory. */
static int csr_to_k(const hg_kctx *k, hg_csr *dst, const hg_csr *src, const char *what)
{
    memset(dst, 0, sizeof *dst);
    dst->nrows = src->nrows;
    dst->ncols = src->ncols;
    dst->nnz = src->nnz;
    dst->rowptr = alloc_k(k, src->nrows + 1, sizeof(int64_t), what);
    dst->col = alloc_k(k, src->nnz, sizeof(int32_t), what);
    dst->val = alloc_f(k, src->nnz, what);
    if (!dst->rowptr || !dst->col || !dst->val)
        return HG_ENOMEM;
    hg_k_upload(k, dst->rowptr, src->rowptr, (size_t)(src->nrows + 1) * sizeof(int64_t));
    hg_k_upload(k, dst->col, src->col, (size_t)src->nnz * sizeof(int32_t));
    hg_k_upload(k, dst->val, src->val, (size_t)src->nnz * sizeof(float));
    return HG_OK;
}

static void csr_free_k(const hg_kctx *k, hg_csr *a)
{
    hg_k_free(k, a->rowptr);
    hg_k_free(k, a->col);
    hg_k_free(k, a->val);
    memset(a, 0, sizeof *a);
}

/* expmap0 of each sparse feature row: the row's non-zeros are the spatial coordinates (zeros
 * stay zero), column 0 becomes the time coordinate. Reuses the dense kernel row by row. */
static int build_input(hg_csr *x0, const hg_csr *feat)
{
    const hg_kctx cpu = {HG_DEVICE_CPU, 1, NULL, NULL, HG_PREC_FP32};
    int rc = hg_csr_alloc(x0, feat->nrows, feat->ncols + 1, feat->nnz + feat->nrows);
    if (rc)
        return rc;
    int64_t maxrow = 0;
    for (int64_t i = 0; i < feat->nrows; i++)
        maxrow = HG_MAX(maxrow, feat->rowptr[i + 1] - feat->rowptr[i]);
    float *row = hg_calloc((size_t)maxrow + 1, sizeof *row, "expmap0 row");
    if (!row)
        return HG_ENOMEM;
    int64_t p = 0;
    for (int64_t i = 0; i < feat->nrows; i++) {
        int64_t a = feat->rowptr[i], b = feat->rowptr[i + 1];
        hg_k_lorentz_expmap0_forward(&cpu, row, feat->val + a, 1, b - a + 1);
        x0->rowptr[i] = p;
        x0->col[p] = 0;
        x0->val[p++] = row[0];
        for (int64_t q = a; q < b; q++) {
            x0->col[p] = feat->col[q] + 1;
            x0->val[p++] = row[q - a + 1];
        }
    }
    x0->rowptr[feat->nrows] = p;
    hg_free(row);
    return HG_OK;
}

/* at = a^T (CSR): the backward passes gather the rows of A^T instead of scattering through A,
 * and visit the entries of each row in increasing source row, the order of the scatter.
 * src (NULL: not wanted) receives the index in a of each entry of at. */
static int build_transpose(hg_csr *at, int64_t *src, const hg_csr *a)
{
    int rc = hg_csr_alloc(at, a->ncols, a->nrows, a->nnz);
    if (rc)
        return rc;
    for (int64_t p = 0; p < a->nnz; p++)
        at->rowptr[a->col[p] + 1]++;
    for (int64_t j = 0; j < a->ncols; j++)
        at->rowptr[j + 1] += at->rowptr[j];
    for (int64_t i = 0; i < a->nrows; i++)
        for (int64_t p = a->rowptr[i]; p < a->rowptr[i + 1]; p++) {
            int64_t q = at->rowptr[a->col[p]]++;
            at->col[q] = (int32_t)i;
            at->val[q] = a->val[p];
            if (src)
                src[q] = p;
        }
    for (int64_t j = a->ncols; j > 0; j--)
        at->rowptr[j] = at->rowptr[j - 1];
    at->rowptr[0] = 0;
    return HG_OK;
}

int hg_hybonet_init(hg_hybonet *m, const hg_kctx *k, const hg_hybonet_config *cfg,
                    const hg_csr *feat, const hg_csr *adj, int64_t max_pairs)
{
    int rc = HG_OK;
    /* host staging, freed before returning */
    float *w_init = NULL, *hparams = NULL, *x0_dense = NULL;
    hg_csr x0 = {0}, adj_t = {0}, x0t = {0};
    int64_t *x0t_src = NULL;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->k = k;
    const int64_t n = cfg->n, dim = cfg->dim, C = cfg->nclasses;
    if (n < 1 || feat->nrows != n || adj->nrows != n || adj->ncols != n)
        return HG_ERRORF(HG_EINVAL, "hybonet: features (%lld rows) and adjacency (%lld x %lld) do "
                         "not match %lld nodes", (long long)feat->nrows, (long long)adj->nrows,
                         (long long)adj->ncols, (long long)n);
    if (dim < 2 || dim > HG_LORENTZ_MAX_D)
        return HG_ERRORF(HG_EINVAL, "--dim %lld: must be in [2, %d]", (long long)dim,
                         HG_LORENTZ_MAX_D);
    if (cfg->nlayers < 1 || cfg->nlayers > HG_HYBONET_MAX_LAYERS)
        return HG_ERRORF(HG_EINVAL, "--num-layers: %d graph layers, must be in [1, %d]",
                         cfg->nlayers, HG_HYBONET_MAX_LAYERS);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return HG_ERRORF(HG_EINVAL, "--dropout %g: must be in [0, 1)", cfg->dropout);

    /* graph structures, built on the host, then copied into the model's memory */
    HG_CHECK(build_input(&x0, feat));
    HG_CHECK(build_transpose(&adj_t, NULL, adj));
    x0t_src = hg_calloc((size_t)HG_MAX(x0.nnz, 1), sizeof *x0t_src, "input transpose");
    if (!x0t_src) {
        rc = HG_ENOMEM;
        goto done;
    }
    HG_CHECK(build_transpose(&x0t, x0t_src, &x0));
    HG_CHECK(csr_to_k(k, &m->adj, adj, "adjacency"));
    HG_CHECK(csr_to_k(k, &m->adj_t, &adj_t, "adjacency transpose"));
    HG_CHECK(csr_to_k(k, &m->x0, &x0, "input points"));
    HG_CHECK(csr_to_k(k, &m->x0t, &x0t, "input points transpose"));
    m->x0t_src = alloc_k(k, x0.nnz, sizeof(int64_t), "input transpose");
    m->x0_drop = alloc_f(k, x0.nnz, "input dropout");
    m->x0t_drop = alloc_f(k, x0.nnz, "input dropout, transposed");
    if (!m->x0t_src || !m->x0_drop || !m->x0t_drop) {
        rc = HG_ENOMEM;
        goto done;
    }
    hg_k_upload(k, m->x0t_src, x0t_src, (size_t)x0.nnz * sizeof(int64_t));

    /* one parameter group for the whole model: the ordinary parameters (per layer bias (dim) +
       scale (1), then class biases; Adam without weight decay) followed by the class points
       (Riemannian Adam), both on the group's own clock (t = the model's step), then every
       layer's weight through sst/ */
    m->nparams = cfg->nlayers * (dim + 1) + C + C * dim;
    m->cls_offset = cfg->nlayers * (dim + 1) + C;
    hparams = hg_calloc((size_t)m->nparams, sizeof *hparams, "initial parameters");
    if (!hparams) {
        rc = HG_ENOMEM;
        goto done;
    }
    {
        hg_param_hp plain, weights, vectors;
        hg_linear_group_hp(&cfg->linear, &weights, &vectors);
        plain = vectors; /* no weight decay (biases, scales, class points) */
        HG_CHECK(hg_params_create(&m->P, k));
        HG_CHECK(hg_params_add_group(m->P, "plain", &plain, &m->group_plain));
        HG_CHECK(hg_params_add_group(m->P, "weights", &weights, &m->group_weights));
        HG_CHECK(hg_params_add_group(m->P, "vectors", &vectors, &m->group_vectors));
        HG_CHECK(hg_params_add(m->P, m->group_plain, "params", m->cls_offset, HG_PARAM_ADAM, 0,
                               NULL, &m->id_params));
        HG_CHECK(hg_params_add(m->P, m->group_plain, "classes", C * dim, HG_PARAM_LORENTZ, dim,
                               NULL, &m->id_classes));
    }

    int64_t max_din = 0;
    for (int l = 0; l < cfg->nlayers; l++) {
        hg_hybonet_layer *L = &m->layer[l];
        L->din = l == 0 ? cfg->nfeat + 1 : dim;
        max_din = HG_MAX(max_din, L->din);
        hparams[l * (dim + 1) + dim] = logf(cfg->scale_init);
        if (l > 0)
            L->hd = alloc_f(k, n * dim, "layer dropout");
        L->z = alloc_f(k, n * dim, "layer z");
        L->y = alloc_f(k, n * dim, "layer y");
        L->s = alloc_f(k, n * dim, "layer aggregate");
        L->out = alloc_f(k, n * dim, "layer output");
        if ((l > 0 && !L->hd) || !L->z || !L->y || !L->s || !L->out) {
            rc = HG_ENOMEM;
            goto done;
        }
    }
    m->emb = m->layer[cfg->nlayers - 1].out;

    /* weights: uniform(+-1/sqrt(d_out)), column 0 (acting on the input time coordinate) = 0 */
    w_init = hg_calloc((size_t)(dim * max_din), sizeof *w_init, "initial weight");
    if (!w_init) {
        rc = HG_ENOMEM;
        goto done;
    }
    for (int l = 0; l < cfg->nlayers; l++) {
        hg_hybonet_layer *L = &m->layer[l];
        hg_rng r;
        hg_rng_seed(&r, hg_rng_derive(cfg->seed, STREAM_WEIGHT + (uint64_t)l));
        const double bound = 1.0 / sqrt((double)dim);
        for (int64_t i = 0; i < dim; i++)
            for (int64_t j = 0; j < L->din; j++)
                w_init[i * L->din + j] = j == 0 ? 0.0f : (float)((2.0 * hg_rng_uniform(&r) - 1.0) * bound);
        char lname[32];
        snprintf(lname, sizeof lname, "layer%d", l);
        HG_CHECK(hg_linear_create(&L->lin, m->P, m->group_weights, m->group_vectors, lname, dim,
                                  L->din, w_init, &cfg->linear,
                                  hg_rng_derive(cfg->seed, STREAM_LINEAR + (uint64_t)l), 0));
    }
    HG_CHECK(hg_params_commit(m->P));
    /* "params" and "classes" are adjacent in the group (one run of the plain group): the
       checkpoint's "params" tensor and these views cover both */
    m->params = hg_params_data(m->P, m->id_params);
    m->grads = hg_params_grad(m->P, m->id_params);
    m->cls_bias = m->params + cfg->nlayers * (dim + 1);
    m->gcls_bias = m->grads + cfg->nlayers * (dim + 1);
    m->cls = m->params + m->cls_offset;
    m->gcls = m->grads + m->cls_offset;
    for (int l = 0; l < cfg->nlayers; l++) {
        hg_hybonet_layer *L = &m->layer[l];
        L->bias = m->params + l * (dim + 1);
        L->gbias = m->grads + l * (dim + 1);
        L->scale = L->bias + dim;
        L->gscale = L->gbias + dim;
    }

    /* class points: a random unit tangent direction at the origin, expmap0 at distance 1 */
    if (C > 0) {
        hg_rng r;
        hg_rng_seed(&r, hg_rng_derive(cfg->seed, STREAM_CLASS));
        for (int64_t c = 0; c < C; c++) {
            float *p = hparams + m->cls_offset + c * dim;
            double nrm = 0.0;
            for (int64_t j = 1; j < dim; j++) {
                p[j] = (float)hg_rng_normal(&r);
                nrm += (double)p[j] * p[j];
            }
            nrm = sqrt(nrm);
            for (int64_t j = 1; j < dim; j++)
                p[j] = (float)(p[j] / nrm * sinh(1.0));
            p[0] = (float)cosh(1.0);
        }
    }
    hg_k_upload(k, m->params, hparams, (size_t)m->nparams * sizeof(float));

    /* a first layer with few input coordinates (Disease, Airport: 11 features) and no dropout
       runs as a dense product (16-wide: zero-padded inside the kernel): cheaper than gathering
       its near-dense rows */
    const int64_t din0 = m->layer[0].din;
    if (dim == 16 && din0 <= 16 && cfg->dropout == 0.0f) {
        x0_dense = hg_calloc((size_t)(n * din0), sizeof *x0_dense, "dense input");
        m->x0_dense = alloc_f(k, n * din0, "dense input");
        if (!x0_dense || !m->x0_dense) {
            rc = HG_ENOMEM;
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t p = x0.rowptr[i]; p < x0.rowptr[i + 1]; p++)
                x0_dense[i * din0 + x0.col[p]] = x0.val[p];
        hg_k_upload(k, m->x0_dense, x0_dense, (size_t)(n * din0) * sizeof(float));
    } else {
        m->wt = alloc_f(k, din0 * dim, "first weight transpose");
        if (!m->wt) {
            rc = HG_ENOMEM;
            goto done;
        }
    }

    m->demb = alloc_f(k, n * dim, "embedding gradient");
    m->g0 = alloc_f(k, n * dim, "scratch");
    m->g1 = alloc_f(k, n * dim, "scratch");
    m->dz = alloc_f(k, n * dim, "head gradient");
    m->gw = alloc_f(k, max_din * dim, "weight gradient");
    m->logits = alloc_f(k, n * HG_MAX(C, 1), "logits");
    m->dlogits = alloc_f(k, n * HG_MAX(C, 1), "logit gradient");
    m->pred = alloc_k(k, n, sizeof(int32_t), "predictions");
    m->max_pairs = max_pairs;
    m->pair_score = alloc_f(k, max_pairs, "pair scores");
    m->ws = alloc_f(k, hg_k_workspace_floats(n), "kernel workspace");
    m->pair_ws = alloc_f(k, hg_k_pair_workspace_floats((max_pairs + 1) / 2), "pair workspace");
    if (!m->demb || !m->g0 || !m->g1 || !m->dz || !m->gw || !m->logits ||
        !m->dlogits || !m->pred || !m->pair_score || !m->ws || !m->pair_ws)
        rc = HG_ENOMEM;
done:
    hg_free(w_init);
    hg_free(hparams);
    hg_free(x0_dense);
    hg_free(x0t_src);
    hg_csr_destroy(&x0);
    hg_csr_destroy(&adj_t);
    hg_csr_destroy(&x0t);
    if (rc)
        hg_hybonet_destroy(m);
    return rc;
}

void hg_hybonet_destroy(hg_hybonet *m)
{
    const hg_kctx *k = m->k;
    if (!k) { /* zeroed */
        memset(m, 0, sizeof *m);
        return;
    }
    for (int l = 0; l < HG_HYBONET_MAX_LAYERS; l++) {
        hg_hybonet_layer *L = &m->layer[l];
        hg_linear_free(L->lin);
        float *lb[] = {L->hd, L->z, L->y, L->s, L->out};
        for (size_t i = 0; i < sizeof lb / sizeof lb[0]; i++)
            hg_k_free(k, lb[i]);
    }
    hg_params_free(m->P);
    csr_free_k(k, &m->adj);
    csr_free_k(k, &m->adj_t);
    csr_free_k(k, &m->x0);
    csr_free_k(k, &m->x0t);
    void *bufs[] = {m->x0t_src, m->dz, m->pred, m->x0_drop, m->x0t_drop, m->x0_dense, m->demb,
                    m->g0, m->g1, m->wt,
                    m->gw, m->logits, m->dlogits, m->pair_score, m->ws, m->pair_ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        hg_k_free(k, bufs[i]);
    memset(m, 0, sizeof *m);
}

static uint64_t dropout_seed_of(uint64_t seed, int l) { return hg_rng_derive(seed, STREAM_DROPOUT + (uint64_t)l); }

uint64_t hg_hybonet_dropout_seed(uint64_t dropout_seed, int l)
{
    return dropout_seed_of(dropout_seed, l);
}

/* Layers l > 0 keep act(input) after dropout in hd only when it differs from the input. */
static int layer_has_hd(const hg_hybonet *m, float p) { return m->cfg.act_relu || p > 0.0f; }

void hg_hybonet_forward(hg_hybonet *m, int train, uint64_t dropout_seed)
{
    const hg_kctx *k = m->k;
    const int64_t n = m->cfg.n, dim = m->cfg.dim;
    const float p = train ? m->cfg.dropout : 0.0f;
    for (int l = 0; l < m->cfg.nlayers; l++) {
        hg_hybonet_layer *L = &m->layer[l];
        const float *W = hg_linear_weight(L->lin);
        const float *b = m->cfg.bias ? L->bias : NULL;
        uint64_t ds = dropout_seed_of(dropout_seed, l);
        if (l == 0 && m->x0_dense) {
            hg_k_lorentz_linear_forward(k, NULL, L->z, L->y, m->x0_dense, W, b, L->scale, 0, 0.0f,
                                        ds, n, L->din, dim);
        } else if (l == 0) {
            /* sparse input: z = drop(x0) W^T + b as CSR x (W^T) */
            const float *xv = m->x0.val;
            if (p > 0.0f) {
                hg_k_dropout(k, m->x0_drop, m->x0.val, m->x0.nnz, p, ds, 0);
                xv = m->x0_drop;
            }
            hg_k_lorentz_linear_forward_csr(k, L->z, L->y, m->x0.rowptr, m->x0.col, xv, W, m->wt,
                                            b, L->scale, n, L->din, dim);
        } else {
            hg_k_lorentz_linear_forward(k, layer_has_hd(m, p) ? L->hd : NULL, L->z, L->y,
                                        m->layer[l - 1].out, W, b, L->scale,
                                        m->cfg.act_relu, p, ds, n, L->din, dim);
        }
        hg_k_lorentz_agg_forward(k, L->s, L->out, m->adj.rowptr, m->adj.col, m->adj.val, L->y,
                                 n, dim);
    }
}

void hg_hybonet_backward(hg_hybonet *m, int train, uint64_t dropout_seed)
{
    const hg_kctx *k = m->k;
    const int64_t n = m->cfg.n, dim = m->cfg.dim;
    const float p = train ? m->cfg.dropout : 0.0f;
    const hg_csr *at = &m->adj_t;
    /* dL/dS of the current layer, and of the previous one (written while gS is still gathered) */
    float *gS = m->g0, *gSp = m->g1;
    hg_k_lorentz_centroid_backward(k, gS, m->demb, m->layer[m->cfg.nlayers - 1].s, n, dim);
    for (int l = m->cfg.nlayers - 1; l >= 0; l--) {
        hg_hybonet_layer *L = &m->layer[l];
        float *gb = m->cfg.bias ? L->gbias : NULL;
        const float *W = hg_linear_weight(L->lin);
        if (l == 0 && m->x0_dense) { /* no input gradient */
            hg_k_lorentz_linear_backward(k, NULL, m->dz, m->gw, gb, L->gscale, at->rowptr,
                                         at->col, at->val, gS, L->z, m->x0_dense, m->x0_dense, W,
                                         NULL, L->scale, 0, 0.0f, 0, n, L->din, dim, m->ws);
        } else if (l == 0) {
            const float *xtv = m->x0t.val;
            if (p > 0.0f) { /* the forward's dropped values, in transposed order */
                hg_k_gather(k, m->x0t_drop, m->x0_drop, m->x0t_src, m->x0t.nnz);
                xtv = m->x0t_drop;
            }
            hg_k_lorentz_linear_backward_csr(k, gSp, m->gw, gb, L->gscale, at->rowptr, at->col,
                                             at->val, gS, L->z, m->x0t.rowptr, m->x0t.col, xtv,
                                             L->scale, n, L->din, dim, m->ws);
        } else {
            const float *x = m->layer[l - 1].out;
            hg_k_lorentz_linear_backward(k, gSp, m->dz, m->gw, gb, L->gscale, at->rowptr,
                                         at->col, at->val, gS, L->z,
                                         layer_has_hd(m, p) ? L->hd : x, x, W,
                                         m->layer[l - 1].s, L->scale,
                                         m->cfg.act_relu, p, dropout_seed_of(dropout_seed, l), n,
                                         L->din, dim, m->ws);
            float *t = gS;
            gS = gSp;
            gSp = t;
        }
        hg_linear_accumulate_grad(L->lin, m->gw);
    }
}

void hg_hybonet_nc_logits(hg_hybonet *m)
{
    hg_k_lorentz_class_logits(m->k, m->logits, m->emb, m->cls, m->cfg.bias ? m->cls_bias : NULL,
                              m->cfg.n, m->cfg.nclasses, m->cfg.dim);
}

double hg_hybonet_nc_loss(hg_hybonet *m, const int64_t *idx, int64_t nidx, const int32_t *labels,
                          int want_grad)
{
    const int64_t n = m->cfg.n, dim = m->cfg.dim, C = m->cfg.nclasses;
    const float margin = m->cfg.margin;
    hg_hybonet_nc_logits(m);
    /* dlogits row a: the gradient of node idx[a]'s logits (compact, nidx x C) */
    const double w = 1.0 / ((double)nidx * (double)C);
    double loss = hg_k_class_margin_loss(m->k, want_grad ? m->dlogits : NULL, m->logits, idx, nidx,
                                         labels, C, margin, (float)w);
    if (want_grad) {
        hg_k_zero(m->k, m->demb, (size_t)(n * dim) * sizeof(float));
        hg_k_lorentz_class_logits_backward(m->k, m->demb, m->gcls,
                                           m->cfg.bias ? m->gcls_bias : NULL, m->dlogits, m->emb,
                                           m->cls, idx, nidx, C, dim, m->ws);
    }
    return loss * w;
}

void hg_hybonet_nc_predict(const hg_hybonet *m, const int64_t *idx, int64_t nidx, int32_t *pred)
{
    hg_k_argmax_rows(m->k, pred, m->logits, idx, nidx, m->cfg.nclasses);
}

void hg_hybonet_lp_scores(const hg_hybonet *m, const int32_t *pairs, int64_t count, float *out)
{
    hg_k_lorentz_pair_score(m->k, out, m->emb, pairs, count, m->cfg.dim);
}

double hg_hybonet_lp_loss(hg_hybonet *m, const int32_t *pos, const int32_t *neg, int64_t count,
                          int want_grad)
{
    const float margin = m->cfg.margin;
    /* the reference's form: relu(margin - s_pos + [s_pos, s_neg]), mean over the 2 * count terms;
       the first half is the constant relu(margin) */
    const double w = 1.0 / (2.0 * (double)count);
    if (want_grad)
        hg_k_zero(m->k, m->demb, (size_t)(m->cfg.n * m->cfg.dim) * sizeof(float));
    double hinge = hg_k_lorentz_pair_margin_loss(m->k, m->pair_score, m->pair_score + count,
                                                 want_grad ? m->demb : NULL, m->emb, pos, neg,
                                                 count, margin, (float)w, m->cfg.n, m->cfg.dim,
                                                 m->pair_ws);
    return ((double)count * fmax((double)margin, 0.0) + hinge) * w;
}

void hg_hybonet_zero_grad(hg_hybonet *m) { hg_params_zero_grad(m->P); }

double hg_hybonet_grad_norm(const hg_hybonet *m) { return sqrt(hg_params_grad_sqnorm(m->P)); }

void hg_hybonet_scale_grad(hg_hybonet *m, float a) { hg_params_scale_grad(m->P, a); }

int hg_hybonet_step(hg_hybonet *m, float lr, int stabilize)
{
    /* one fused step: biases and scales (Adam), class points (Riemannian Adam), every weight's
       method and schedule (sst/) */
    int rc = hg_params_step(m->P, lr);
    const int64_t t = hg_params_group_clock(m->P, m->group_plain)->t; /* steps taken */
    if (m->cfg.nclasses > 0 && stabilize > 0 && t % stabilize == 0)
        hg_k_lorentz_stabilize(m->k, m->cls, hg_params_moment1(m->P, m->id_classes),
                               m->cfg.nclasses, m->cfg.dim);
    return rc;
}

int64_t hg_hybonet_num_trainable(const hg_hybonet *m)
{
    int64_t t = m->nparams - (m->cfg.bias ? 0 : m->cfg.nlayers * m->cfg.dim + m->cfg.nclasses);
    for (int l = 0; l < m->cfg.nlayers; l++)
        t += hg_linear_num_trainable(m->layer[l].lin);
    return t;
}

int64_t hg_hybonet_state_floats(const hg_hybonet *m)
{
    /* Adam m and v for biases and scales; Riemannian Adam: m per coordinate, v per point */
    int64_t t = 2 * m->cls_offset + m->cfg.nclasses * m->cfg.dim + m->cfg.nclasses;
    for (int l = 0; l < m->cfg.nlayers; l++)
        t += hg_linear_state_floats(m->layer[l].lin);
    return t;
}

int hg_hybonet_num_tensors(const hg_hybonet *m)
{
    int t = 1; /* the ordinary parameter block */
    for (int l = 0; l < m->cfg.nlayers; l++)
        t += hg_linear_num_tensors(m->layer[l].lin);
    return t;
}

/* Tensor i: (layer, index within the layer), or layer -1 for the ordinary parameter block. */
static int tensor_locate(const hg_hybonet *m, int i, int *li)
{
    for (int l = 0; l < m->cfg.nlayers; l++) {
        int nt = hg_linear_num_tensors(m->layer[l].lin);
        if (i < nt) {
            *li = i;
            return l;
        }
        i -= nt;
    }
    *li = 0;
    return -1;
}

void hg_hybonet_tensor_info(const hg_hybonet *m, int i, char *name, size_t name_len,
                            int64_t *count)
{
    int li, l = tensor_locate(m, i, &li);
    if (l < 0) {
        snprintf(name, name_len, "params");
        *count = m->nparams;
        return;
    }
    const char *nm;
    hg_linear_tensor(m->layer[l].lin, li, &nm, count);
    snprintf(name, name_len, "layer%d.%s", l, nm);
}

void hg_hybonet_tensor_read(const hg_hybonet *m, int i, float *host_dst)
{
    int li, l = tensor_locate(m, i, &li);
    if (l < 0)
        hg_k_download(m->k, host_dst, m->params, (size_t)m->nparams * sizeof(float));
    else
        hg_linear_tensor_read(m->layer[l].lin, li, host_dst);
}

void hg_hybonet_tensor_write(hg_hybonet *m, int i, const float *host_src)
{
    int li, l = tensor_locate(m, i, &li);
    if (l < 0)
        hg_k_upload(m->k, m->params, host_src, (size_t)m->nparams * sizeof(float));
    else
        hg_linear_tensor_write(m->layer[l].lin, li, host_src);
}

void hg_hybonet_rematerialise(hg_hybonet *m)
{
    for (int l = 0; l < m->cfg.nlayers; l++)
        hg_linear_rematerialise(m->layer[l].lin);
}

static void tensor_read_cb(const void *obj, int64_t i, void *host_dst)
{
    hg_hybonet_tensor_read(obj, (int)i, host_dst);
}

static void tensor_write_cb(void *obj, int64_t i, const void *host_src)
{
    hg_hybonet_tensor_write(obj, (int)i, host_src);
}

int hg_hybonet_register(hg_hybonet *m, hg_registry *reg)
{
    int rc = HG_OK;
    for (int t = 0; t < hg_hybonet_num_tensors(m); t++) {
        char name[128];
        int64_t count;
        hg_hybonet_tensor_info(m, t, name, sizeof name, &count);
        HG_CHECK(hg_registry_add_io(reg, name, HG_DTYPE_F32, count, tensor_read_cb,
                                    tensor_write_cb, m, t, 0));
    }
    /* the ordinary parameters' moments and their clock (the sst/ maps save theirs in their
       own tensors); optional: checkpoints of the first format lack them */
    const int ids[2] = {m->id_params, m->id_classes};
    const char *names[2] = {"params", "classes"};
    for (int i = 0; i < 2; i++) {
        char name[64];
        const int64_t count = hg_params_count(m->P, ids[i]);
        snprintf(name, sizeof name, "%s.adam_m", names[i]);
        HG_CHECK(hg_registry_add(reg, name, HG_DTYPE_F32, hg_params_moment1(m->P, ids[i]), count,
                                 m->k, HG_TENSOR_OPTIONAL));
        snprintf(name, sizeof name, "%s.adam_v", names[i]);
        HG_CHECK(hg_registry_add(reg, name, HG_DTYPE_F32, hg_params_moment2(m->P, ids[i]), count,
                                 m->k, HG_TENSOR_OPTIONAL));
    }
    HG_CHECK(hg_registry_add(reg, "params.clock_t", HG_DTYPE_U64,
                             &hg_params_group_clock(m->P, m->group_plain)->t, 1, NULL,
                             HG_TENSOR_OPTIONAL));
done:
    return rc;
}
