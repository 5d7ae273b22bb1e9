/* transformer.c - the encoder-decoder Transformer: parameters, initialisation, the training loss
 * and its backward pass, checkpoint registration. Sublayers: tf_block.c; decoding: tf_decode.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tf_internal.h"
#include "../hg.h"
#include "../rng.h"

/* Seed streams of the initialisation. */
enum { STREAM_EMB = 1, STREAM_MAP = 100, STREAM_LINEAR = 10000 };
/* Dropout sites: the embeddings, then per layer and sublayer the inner dropout (attention
 * probabilities, FFN hidden) and the residual branch. */
/* Rows of the output projection computed at once. */
#define TF_OUT_CHUNK 256
enum { SITE_SRC = 1, SITE_TGT = 2, SITE_ENC = 1000, SITE_DEC = 100000 };

static uint64_t site(int dec, int l, int j, int which)
{
    return (uint64_t)(dec ? SITE_DEC : SITE_ENC) + (uint64_t)(64 * l + 4 * j + which);
}

static float *alloc_f(const hg_kctx *k, int64_t count, const char *what)
{
    return hg_k_alloc(k, (size_t)(count > 0 ? count : 1) * sizeof(float), what);
}

/* ---- construction ---- */

typedef struct builder {
    hg_tf *m;
    float *w;      /* host staging of one map's initial weight */
    int nbias;     /* declared biases, in order */
    int64_t bias_n[HG_TF_MAX_LAYERS * 10];
    tf_lin *bias_of[HG_TF_MAX_LAYERS * 10];
    int nln;
    tf_ln *lns[HG_TF_MAX_LAYERS * 3 + 2];
} builder;

static int declare_lin(builder *b, tf_lin *l, const char *name, int64_t out, int64_t in)
{
    hg_tf *m = b->m;
    const hg_tf_config *c = &m->cfg;
    const int i = m->nmaps;
    int rc = HG_OK;
    hg_rng r;
    hg_rng_seed(&r, hg_rng_derive(c->seed, STREAM_MAP + (uint64_t)i));
    const double bound = 1.0 / sqrt((double)in);
    for (int64_t e = 0; e < out * in; e++)
        b->w[e] = c->init_std > 0.0f ? (float)(hg_rng_normal(&r) * c->init_std)
                                     : (float)((2.0 * hg_rng_uniform(&r) - 1.0) * bound);
    HG_CHECK(hg_linear_create(&l->L, m->P, m->group_weights, m->group_vectors, name, out, in, b->w,
                              &c->linear, hg_rng_derive(c->seed, STREAM_LINEAR + (uint64_t)i),
                              HG_MAX(c->max_src_rows, c->max_tgt_rows)));
    snprintf(m->map_name[m->nmaps], sizeof m->map_name[0], "%s", name);
    m->maps[m->nmaps++] = l->L;
    char bname[96];
    snprintf(bname, sizeof bname, "%s.b", name);
    HG_CHECK(hg_params_add(m->P, m->group_plain, bname, out, HG_PARAM_ADAM, 0, NULL, &l->bias_id));
    m->plain_ids[m->nplain++] = l->bias_id;
    b->bias_n[b->nbias] = in;
    b->bias_of[b->nbias++] = l;
done:
    return rc;
}

static int declare_ln(builder *b, tf_ln *n, const char *name)
{
    b->lns[b->nln++] = n;
    int rc = hg_params_add(b->m->P, b->m->group_plain, name, 2 * (int64_t)b->m->cfg.dim,
                           HG_PARAM_ADAM, 0, NULL, &n->id);
    b->m->plain_ids[b->m->nplain++] = n->id;
    return rc;
}

static int declare_layer(builder *b, tf_layer *l, int dec, int li)
{
    const hg_tf_config *c = &b->m->cfg;
    const int64_t d = c->dim;
    const char *const sub[3] = {"self", "cross", "ffn"};
    int rc = HG_OK;
    char p[96];
    /* encoder and decoder-only layers: self-attention, FFN; encoder-decoder's decoder: self,
       cross, FFN */
    const int cross = dec && c->enc_layers > 0;
    l->nsub = cross ? 3 : 2;
    for (int j = 0; j < l->nsub; j++)
        l->kind[j] = cross ? j : (j == 0 ? TF_SELF : TF_FFN);
    for (int j = 0; j < l->nsub; j++) {
        snprintf(p, sizeof p, "%s.%d.ln%d", dec ? "dec" : "enc", li, j + 1);
        HG_CHECK(declare_ln(b, &l->ln[j], p));
        if (l->kind[j] == TF_FFN) {
            snprintf(p, sizeof p, "%s.%d.ffn.w1", dec ? "dec" : "enc", li);
            HG_CHECK(declare_lin(b, &l->w1, p, c->ffn, d));
            snprintf(p, sizeof p, "%s.%d.ffn.w2", dec ? "dec" : "enc", li);
            HG_CHECK(declare_lin(b, &l->w2, p, d, c->ffn));
        } else {
            tf_mha *a = &l->att[l->kind[j]];
            tf_lin *maps[4] = {&a->q, &a->k, &a->v, &a->o};
            const char *mn = "qkvo";
            for (int q = 0; q < 4; q++) {
                snprintf(p, sizeof p, "%s.%d.%s.%c", dec ? "dec" : "enc", li, sub[l->kind[j]],
                         mn[q]);
                HG_CHECK(declare_lin(b, maps[q], p, d, d));
            }
        }
    }
done:
    return rc;
}

/* scores: the floats of p and pd (with fused attention: the row log-sum-exps, and no pd). */
static int alloc_mha_act(const hg_kctx *k, tf_mha_act *a, int64_t rq, int64_t rk, int64_t d,
                         int64_t scores, int fused)
{
    a->q = alloc_f(k, rq * d, "attention q");
    a->qh = alloc_f(k, rq * d, "attention q");
    a->c = alloc_f(k, rq * d, "attention context");
    a->k = alloc_f(k, rk * d, "attention k");
    a->kh = alloc_f(k, rk * d, "attention k");
    a->v = alloc_f(k, rk * d, "attention v");
    a->vh = alloc_f(k, rk * d, "attention v");
    a->p = alloc_f(k, scores, "attention probabilities");
    a->pd = alloc_f(k, fused ? 1 : scores, "attention probabilities");
    return a->q && a->qh && a->c && a->k && a->kh && a->v && a->vh && a->p && a->pd ? HG_OK
                                                                                  : HG_ENOMEM;
}

static void free_mha_act(const hg_kctx *k, tf_mha_act *a)
{
    float *b[] = {a->q, a->k, a->v, a->qh, a->kh, a->vh, a->p, a->pd, a->c};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        hg_k_free(k, b[i]);
}

static int alloc_layer(hg_tf *m, tf_layer *l, int dec)
{
    const hg_kctx *k = m->k;
    const hg_tf_config *c = &m->cfg;
    const int64_t d = c->dim, H = c->heads;
    const int64_t rows = dec ? c->max_tgt_rows : c->max_src_rows;
    const int64_t len = dec ? c->max_tgt_len : c->max_src_len;
    int rc = HG_OK;
    for (int j = 0; j < l->nsub; j++) {
        l->s[j + 1] = alloc_f(k, rows * d, "residual stream");
        l->y[j] = alloc_f(k, rows * d, "layer norm output");
        l->mean[j] = alloc_f(k, rows, "layer norm mean");
        l->rstd[j] = alloc_f(k, rows, "layer norm rstd");
        if (!l->s[j + 1] || !l->y[j] || !l->mean[j] || !l->rstd[j])
            return HG_ENOMEM;
        const int fused = dec && c->attn_fused; /* causal self-attention: fused */
        if (l->kind[j] == TF_SELF)
            HG_CHECK(alloc_mha_act(k, &l->act[0], rows, rows, d, H * rows * (fused ? 1 : len),
                                   fused));
        else if (l->kind[j] == TF_CROSS)
            HG_CHECK(alloc_mha_act(k, &l->act[1], rows, c->max_src_rows, d,
                                   H * rows * c->max_src_len, 0));
    }
    l->h1 = alloc_f(k, rows * c->ffn, "FFN hidden");
    l->hd = alloc_f(k, rows * c->ffn, "FFN hidden");
    if (!l->h1 || !l->hd)
        rc = HG_ENOMEM;
done:
    return rc;
}

static void free_layer(const hg_kctx *k, tf_layer *l)
{
    for (int j = 0; j < l->nsub; j++) {
        float *b[] = {l->s[j + 1], l->y[j], l->mean[j], l->rstd[j]};
        for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
            hg_k_free(k, b[i]);
    }
    free_mha_act(k, &l->act[0]);
    free_mha_act(k, &l->act[1]);
    hg_k_free(k, l->h1);
    hg_k_free(k, l->hd);
}

static int check_config(const hg_tf_config *c)
{
    if (c->vocab < 4)
        return HG_ERRORF(HG_EINVAL, "--vocab %lld: at least 4", (long long)c->vocab);
    if (c->dim < 2 || c->heads < 1 || c->dim % c->heads != 0)
        return HG_ERRORF(HG_EINVAL, "--dim %d --heads %d: the width must be a positive multiple "
                         "of the heads", c->dim, c->heads);
    if (c->attn_fused && c->dim / c->heads > HG_ATTN_MAX_DH)
        return HG_ERRORF(HG_EINVAL, "--attention fused: heads of %d (--dim %d / --heads %d) are "
                         "wider than the fused kernel's %d", c->dim / c->heads, c->dim, c->heads,
                         HG_ATTN_MAX_DH);
    if (c->dim % 2 != 0)
        return HG_ERRORF(HG_EINVAL, "--dim %d: must be even (sinusoidal positions)", c->dim);
    if (c->ffn < 1)
        return HG_ERRORF(HG_EINVAL, "--ffn %d: must be >= 1", c->ffn);
    if (c->enc_layers < 0 || c->enc_layers > HG_TF_MAX_LAYERS || c->dec_layers < 1 ||
        c->dec_layers > HG_TF_MAX_LAYERS)
        return HG_ERRORF(HG_EINVAL, "--enc-layers %d --dec-layers %d: in [0, %d] and [1, %d]",
                         c->enc_layers, c->dec_layers, HG_TF_MAX_LAYERS, HG_TF_MAX_LAYERS);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return HG_ERRORF(HG_EINVAL, "--dropout %g: must be in [0, 1)", c->dropout);
    if (c->max_len < 2 || c->max_src_len < 1 || c->max_tgt_len < 1 || c->max_batch < 1 ||
        c->max_src_rows < 1 || c->max_tgt_rows < 1 || c->max_src_len > c->max_len ||
        c->max_tgt_len > c->max_len)
        return HG_ERRORF(HG_EINVAL, "transformer: bad capacity (max_len %lld, source %lld, "
                         "target %lld)", (long long)c->max_len, (long long)c->max_src_len,
                         (long long)c->max_tgt_len);
    return HG_OK;
}

static void sinusoid(float *pe, int64_t len, int64_t d)
{
    for (int64_t p = 0; p < len; p++)
        for (int64_t i = 0; i < d; i += 2) {
            const double ang = (double)p / pow(10000.0, (double)i / (double)d);
            pe[p * d + i] = (float)sin(ang);
            pe[p * d + i + 1] = (float)cos(ang);
        }
}

int hg_tf_init(hg_tf **out, const hg_kctx *k, const hg_tf_config *cfg)
{
    *out = NULL;
    int rc = check_config(cfg);
    if (rc)
        return rc;
    hg_tf *m = hg_calloc(1, sizeof *m, "transformer");
    if (!m)
        return HG_ENOMEM;
    builder b = {.m = m};
    float *host = NULL;
    m->cfg = *cfg;
    m->k = k;
    const hg_tf_config *c = &m->cfg;
    const int64_t d = c->dim, V = c->vocab, f = c->ffn;
    {
        hg_param_hp weights, vectors;
        hg_linear_group_hp(&c->linear, &weights, &vectors);
        hg_param_hp plain = weights;
        plain.weight_decay = 0.0f; /* embeddings, norms and biases: no weight decay */
        HG_CHECK(hg_params_create(&m->P, k));
        HG_CHECK(hg_params_add_group(m->P, "plain", &plain, &m->group_plain));
        HG_CHECK(hg_params_add_group(m->P, "weights", &weights, &m->group_weights));
        HG_CHECK(hg_params_add_group(m->P, "vectors", &vectors, &m->group_vectors));
    }
    HG_CHECK(hg_params_add(m->P, m->group_plain, "emb", V * d, HG_PARAM_ADAM, 0, NULL, &m->emb_id));
    m->plain_ids[m->nplain++] = m->emb_id;
    if (c->learned_pos) {
        HG_CHECK(hg_params_add(m->P, m->group_plain, "pos", c->max_len * d, HG_PARAM_ADAM, 0, NULL,
                               &m->pos_id));
        m->plain_ids[m->nplain++] = m->pos_id;
    }
    m->emb_scale = c->emb_scale > 0.0f ? c->emb_scale : sqrtf((float)d);
    b.w = hg_calloc((size_t)(d * HG_MAX(d, f)), sizeof *b.w, "initial weight");
    if (!b.w) {
        rc = HG_ENOMEM;
        goto done;
    }
    for (int l = 0; l < c->enc_layers; l++)
        HG_CHECK(declare_layer(&b, &m->enc[l], 0, l));
    for (int l = 0; l < c->dec_layers; l++)
        HG_CHECK(declare_layer(&b, &m->dec[l], 1, l));
    if (!c->post_ln) {
        HG_CHECK(declare_ln(&b, &m->enc_ln, "enc.ln"));
        HG_CHECK(declare_ln(&b, &m->dec_ln, "dec.ln"));
    }
    HG_CHECK(hg_params_commit(m->P));

    /* initial values of the ordinary parameters, staged on the host */
    host = hg_calloc((size_t)HG_MAX(HG_MAX(V, c->max_len) * d, 2 * d), sizeof *host,
                     "initial parameters");
    if (!host) {
        rc = HG_ENOMEM;
        goto done;
    }
    {
        hg_rng r;
        hg_rng_seed(&r, hg_rng_derive(c->seed, STREAM_EMB));
        const double sd = c->init_std > 0.0f ? c->init_std : 1.0 / sqrt((double)d);
        for (int64_t e = 0; e < V * d; e++)
            host[e] = (float)(hg_rng_normal(&r) * sd);
        m->E = hg_params_data(m->P, m->emb_id);
        m->gE = hg_params_grad(m->P, m->emb_id);
        hg_k_upload(k, m->E, host, (size_t)(V * d) * sizeof(float));
        if (c->learned_pos) {
            for (int64_t e = 0; e < c->max_len * d; e++)
                host[e] = (float)(hg_rng_normal(&r) * sd);
            m->pe = hg_params_data(m->P, m->pos_id);
            m->gpe = hg_params_grad(m->P, m->pos_id);
            hg_k_upload(k, m->pe, host, (size_t)(c->max_len * d) * sizeof(float));
        }
    }
    for (int i = 0; i < b.nbias; i++) {
        tf_lin *l = b.bias_of[i];
        const int64_t n = hg_params_count(m->P, l->bias_id);
        hg_rng r;
        hg_rng_seed(&r, hg_rng_derive(c->seed, STREAM_MAP + 5000 + (uint64_t)i));
        const double bound = 1.0 / sqrt((double)b.bias_n[i]);
        for (int64_t e = 0; e < n; e++)
            host[e] = c->init_std > 0.0f ? 0.0f : (float)((2.0 * hg_rng_uniform(&r) - 1.0) * bound);
        l->b = hg_params_data(m->P, l->bias_id);
        l->gb = hg_params_grad(m->P, l->bias_id);
        hg_k_upload(k, l->b, host, (size_t)n * sizeof(float));
    }
    for (int64_t e = 0; e < 2 * d; e++)
        host[e] = e < d ? 1.0f : 0.0f;
    for (int i = 0; i < b.nln; i++) {
        tf_ln *n = b.lns[i];
        n->g = hg_params_data(m->P, n->id);
        n->gg = hg_params_grad(m->P, n->id);
        hg_k_upload(k, n->g, host, (size_t)(2 * d) * sizeof(float));
    }

    /* activations and scratch */
    const int64_t Rs = c->max_src_rows, Rt = c->max_tgt_rows, R = HG_MAX(Rs, Rt);
    const int64_t H = c->heads;
    /* the score gradients of the widest attention that stores scores: encoder self-attention,
     * cross-attention, and decoder self-attention unless it is fused (decoder-only and fused:
     * none at all) */
    const int64_t scores =
        c->enc_layers == 0 && c->attn_fused
            ? 1
            : H * HG_MAX(HG_MAX(Rs * c->max_src_len, c->attn_fused ? 0 : Rt * c->max_tgt_len),
                         Rt * c->max_src_len);
    for (int l = 0; l < c->enc_layers; l++)
        HG_CHECK(alloc_layer(m, &m->enc[l], 0));
    for (int l = 0; l < c->dec_layers; l++)
        HG_CHECK(alloc_layer(m, &m->dec[l], 1));
    if (!c->learned_pos)
        m->pe = alloc_f(k, c->max_len * d, "positions");
    m->pos_ids = hg_k_alloc(k, (size_t)Rt * sizeof(int32_t), "position ids");
    m->pos_host = hg_calloc((size_t)Rt, sizeof(int32_t), "position ids");
    m->src_x = alloc_f(k, Rs * d, "source embeddings");
    m->tgt_x = alloc_f(k, Rt * d, "target embeddings");
    m->mem = alloc_f(k, Rs * d, "encoder output");
    m->mem_mean = alloc_f(k, Rs, "encoder norm");
    m->mem_rstd = alloc_f(k, Rs, "encoder norm");
    m->h = alloc_f(k, Rt * d, "decoder output");
    m->h_mean = alloc_f(k, Rt, "decoder norm");
    m->h_rstd = alloc_f(k, Rt, "decoder norm");
    m->logits = alloc_f(k, HG_MIN(Rt, TF_OUT_CHUNK) * V, "logits");
    tf_scratch *s = &m->sc;
    float **rd[] = {&s->f, &s->g, &s->dy, &s->t1, &s->t2, &s->dq, &s->dk, &s->dv, &s->dqh,
                    &s->dkh, &s->dvh, &s->dch, &s->dln, &s->dkv};
    for (size_t i = 0; i < sizeof rd / sizeof rd[0]; i++)
        if (!(*rd[i] = alloc_f(k, R * d, "scratch")))
            rc = HG_ENOMEM;
    s->dp = alloc_f(k, scores, "score gradients");
    s->dh1 = alloc_f(k, R * f, "FFN gradient");
    s->dmem = alloc_f(k, Rs * d, "encoder output gradient");
    if (rc || !m->pe || !m->pos_ids || !m->pos_host || !m->src_x || !m->tgt_x || !m->mem || !m->mem_mean || !m->mem_rstd ||
        !m->h || !m->h_mean || !m->h_rstd || !m->logits || !s->dp || !s->dh1 || !s->dmem) {
        rc = HG_ENOMEM;
        goto done;
    }
    if (!c->learned_pos) {
        sinusoid(host, c->max_len, d);
        hg_k_upload(k, m->pe, host, (size_t)(c->max_len * d) * sizeof(float));
    }
done:
    hg_free(b.w);
    hg_free(host);
    if (rc)
        hg_tf_free(m);
    else
        *out = m;
    return rc;
}

void hg_tf_free(hg_tf *m)
{
    if (!m)
        return;
    const hg_kctx *k = m->k;
    for (int l = 0; l < HG_TF_MAX_LAYERS; l++) {
        free_layer(k, &m->enc[l]);
        free_layer(k, &m->dec[l]);
    }
    for (int i = 0; i < m->nmaps; i++)
        hg_linear_free(m->maps[i]);
    hg_params_free(m->P);
    tf_scratch *s = &m->sc;
    if (!m->cfg.learned_pos)
        hg_k_free(k, m->pe);
    hg_k_free(k, m->pos_ids);
    hg_free(m->pos_host);
    float *b[] = {m->src_x, m->tgt_x, m->mem, m->mem_mean, m->mem_rstd, m->h, m->h_mean,
                  m->h_rstd, m->logits, s->f, s->g, s->dy, s->t1, s->t2, s->dq, s->dk, s->dv,
                  s->dqh, s->dkh, s->dvh, s->dch, s->dln, s->dkv, s->dp, s->dh1, s->dmem};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        hg_k_free(k, b[i]);
    tf_decode_free(m);
    hg_free(m);
}

const hg_tf_config *hg_tf_cfg(const hg_tf *m) { return &m->cfg; }
hg_params *hg_tf_params(hg_tf *m) { return m->P; }

int hg_tf_group(const hg_tf *m, int which)
{
    return which == HG_TF_GROUP_WEIGHTS ? m->group_weights
         : which == HG_TF_GROUP_VECTORS ? m->group_vectors : m->group_plain;
}
int hg_tf_num_maps(const hg_tf *m) { return m->nmaps; }
hg_linear *hg_tf_map(const hg_tf *m, int i) { return m->maps[i]; }
int64_t hg_tf_num_trainable(const hg_tf *m) { return hg_params_num_trainable(m->P); }
int64_t hg_tf_state_floats(const hg_tf *m) { return hg_params_state_floats(m->P); }

/* ---- forward and backward ---- */

typedef struct pass {
    int64_t B, Ts, Tt;
    const int32_t *src_len;
    float p;              /* dropout probability of this pass (0: evaluation) */
    uint64_t seed;
} pass;

/* Sublayer j of layer l (layer li of the encoder or decoder): s[j] -> s[j + 1]. */
static void sub_forward(hg_tf *m, tf_layer *l, int dec, int li, int j, const pass *ps)
{
    const hg_kctx *k = m->k;
    const int64_t d = m->cfg.dim, T = dec ? ps->Tt : ps->Ts, rows = ps->B * T;
    const int post = m->cfg.post_ln;
    float *in = post ? l->s[j] : l->y[j], *f = m->sc.f;
    if (!post)
        tf_ln_forward(m, &l->ln[j], l->y[j], l->mean[j], l->rstd[j], l->s[j], rows);
    const uint64_t s_in = tf_site_seed(ps->seed, site(dec, li, j, 0));
    const uint64_t s_res = tf_site_seed(ps->seed, site(dec, li, j, 1));
    switch (l->kind[j]) {
    case TF_SELF:
        tf_mha_forward(m, &l->att[0], &l->act[0], f, in, in, ps->B, T, T,
                       dec ? NULL : ps->src_len, dec, ps->p, s_in);
        break;
    case TF_CROSS:
        tf_mha_forward(m, &l->att[1], &l->act[1], f, in, m->mem, ps->B, T, ps->Ts, ps->src_len,
                       0, ps->p, s_in);
        break;
    default:
        tf_ffn_forward(m, l, f, in, rows, ps->p, s_in);
    }
    if (ps->p > 0.0f)
        hg_k_dropout(k, f, f, rows * d, ps->p, s_res, 0);
    float *sum = post ? l->y[j] : l->s[j + 1];
    hg_k_copy(k, sum, l->s[j], (size_t)(rows * d) * sizeof(float));
    hg_k_axpy(k, sum, 1.0f, f, rows * d);
    if (post)
        tf_ln_forward(m, &l->ln[j], l->s[j + 1], l->mean[j], l->rstd[j], l->y[j], rows);
}

/* ds: dL/ds[j + 1] in, dL/ds[j] out (in place). Cross-attention adds into sc.dmem. */
static int sub_backward(hg_tf *m, tf_layer *l, int dec, int li, int j, const pass *ps, float *ds)
{
    const hg_kctx *k = m->k;
    tf_scratch *s = &m->sc;
    const int64_t d = m->cfg.dim, T = dec ? ps->Tt : ps->Ts, rows = ps->B * T;
    const int post = m->cfg.post_ln;
    const float *in = post ? l->s[j] : l->y[j];
    const uint64_t s_in = tf_site_seed(ps->seed, site(dec, li, j, 0));
    const uint64_t s_res = tf_site_seed(ps->seed, site(dec, li, j, 1));
    int rc = HG_OK;
    /* dF: the gradient of the branch output, through its dropout */
    const float *dsum = ds;
    if (post) {
        tf_ln_backward(m, &l->ln[j], s->dln, ds, l->y[j], l->mean[j], l->rstd[j], rows);
        dsum = s->dln;
    }
    if (ps->p > 0.0f)
        hg_k_dropout(k, s->f, dsum, rows * d, ps->p, s_res, 0);
    else
        hg_k_copy(k, s->f, dsum, (size_t)(rows * d) * sizeof(float));
    switch (l->kind[j]) {
    case TF_SELF:
        HG_CHECK(tf_mha_backward(m, &l->att[0], &l->act[0], s->dy, NULL, s->f, in, in, ps->B, T,
                                 T, ps->p, s_in));
        break;
    case TF_CROSS:
        HG_CHECK(tf_mha_backward(m, &l->att[1], &l->act[1], s->dy, s->dkv, s->f, in, m->mem,
                                 ps->B, T, ps->Ts, ps->p, s_in));
        hg_k_axpy(k, s->dmem, 1.0f, s->dkv, ps->B * ps->Ts * d);
        break;
    default:
        HG_CHECK(tf_ffn_backward(m, l, s->dy, s->f, in, rows, ps->p, s_in));
    }
    if (post) {
        /* ds[j] = dz + dF/ds[j] */
        hg_k_copy(k, ds, s->dln, (size_t)(rows * d) * sizeof(float));
        hg_k_axpy(k, ds, 1.0f, s->dy, rows * d);
    } else {
        /* ds[j] = ds[j + 1] + LN's backward of the branch's input gradient */
        tf_ln_backward(m, &l->ln[j], s->dln, s->dy, l->s[j], l->mean[j], l->rstd[j], rows);
        hg_k_axpy(k, ds, 1.0f, s->dln, rows * d);
    }
done:
    return rc;
}

static int check_batch(const hg_tf *m, const hg_tf_batch *b)
{
    const hg_tf_config *c = &m->cfg;
    const int enc = c->enc_layers > 0;
    if (b->B < 1 || (enc && (b->Ts < 1 || b->Ts > c->max_src_len || b->B * b->Ts > c->max_src_rows ||
                             !b->src || !b->src_len)) ||
        b->Tt < 1 || b->B > c->max_batch || b->Tt > c->max_tgt_len ||
        b->B * b->Tt > c->max_tgt_rows)
        return HG_ERRORF(HG_EINVAL, "transformer: batch of %lld x (%lld, %lld) beyond the model's "
                         "capacity (%lld sentences, lengths %lld/%lld, rows %lld/%lld)",
                         (long long)b->B, (long long)b->Ts, (long long)b->Tt,
                         (long long)c->max_batch, (long long)c->max_src_len,
                         (long long)c->max_tgt_len, (long long)c->max_src_rows,
                         (long long)c->max_tgt_rows);
    return HG_OK;
}

/* Embedding of ids (B x T) into x, with dropout at the given site. */
static void embed(hg_tf *m, float *x, const int32_t *ids, int64_t B, int64_t T, const pass *ps,
                  int which)
{
    const int64_t d = m->cfg.dim;
    hg_k_embed_forward(m->k, x, m->E, ids, m->pe, B * T, T, d, m->emb_scale);
    if (ps->p > 0.0f)
        hg_k_dropout(m->k, x, x, B * T * d, ps->p, tf_site_seed(ps->seed, (uint64_t)which), 0);
}

static void embed_backward(hg_tf *m, float *dx, const int32_t *ids, int64_t B, int64_t T,
                           const pass *ps, int which)
{
    const int64_t d = m->cfg.dim;
    if (ps->p > 0.0f)
        hg_k_dropout(m->k, dx, dx, B * T * d, ps->p, tf_site_seed(ps->seed, (uint64_t)which), 0);
    hg_k_embed_backward(m->k, m->gE, dx, ids, B * T, d, m->emb_scale);
    if (m->gpe) { /* the position table's gradient: rows by position, r mod T */
        if (m->pos_T != T || m->pos_rows != B * T) {
            for (int64_t r = 0; r < B * T; r++)
                m->pos_host[r] = (int32_t)(r % T);
            hg_k_upload(m->k, m->pos_ids, m->pos_host, (size_t)(B * T) * sizeof(int32_t));
            m->pos_T = T;
            m->pos_rows = B * T;
        }
        hg_k_embed_backward(m->k, m->gpe, dx, m->pos_ids, B * T, d, 1.0f);
    }
}

void tf_encode(hg_tf *m, const int32_t *src, const int32_t *src_len, int64_t B, int64_t Ts,
               float p, uint64_t seed, float *mem, float *mean, float *rstd)
{
    const pass ps = {B, Ts, 0, src_len, p, seed};
    float *x = m->src_x;
    embed(m, x, src, B, Ts, &ps, SITE_SRC);
    for (int l = 0; l < m->cfg.enc_layers; l++) {
        tf_layer *L = &m->enc[l];
        L->s[0] = x;
        for (int j = 0; j < L->nsub; j++)
            sub_forward(m, L, 0, l, j, &ps);
        x = L->s[L->nsub];
    }
    if (m->cfg.post_ln)
        hg_k_copy(m->k, mem, x, (size_t)(B * Ts * m->cfg.dim) * sizeof(float));
    else
        tf_ln_forward(m, &m->enc_ln, mem, mean, rstd, x, B * Ts);
}

int hg_tf_loss(hg_tf *m, const hg_tf_batch *b, float smoothing, int train, uint64_t dropout_seed,
               int want_grad, double *loss)
{
    const hg_kctx *k = m->k;
    const hg_tf_config *c = &m->cfg;
    const int64_t d = c->dim, V = c->vocab;
    int rc = HG_OK;
    HG_CHECK(check_batch(m, b));
    const pass ps = {b->B, b->Ts, b->Tt, b->src_len, train ? c->dropout : 0.0f, dropout_seed};
    const int64_t Rs = c->enc_layers > 0 ? b->B * b->Ts : 0, Rt = b->B * b->Tt;

    /* encoder, decoder, tied output projection, loss */
    const int enc = c->enc_layers > 0;
    if (enc)
        tf_encode(m, b->src, b->src_len, b->B, b->Ts, ps.p, dropout_seed, m->mem, m->mem_mean,
                  m->mem_rstd);
    float *x = m->tgt_x;
    embed(m, x, b->tgt_in, b->B, b->Tt, &ps, SITE_TGT);
    for (int l = 0; l < c->dec_layers; l++) {
        tf_layer *L = &m->dec[l];
        L->s[0] = x;
        for (int j = 0; j < L->nsub; j++)
            sub_forward(m, L, 1, l, j, &ps);
        x = L->s[L->nsub];
    }
    const float *h = x;
    if (!c->post_ln) {
        tf_ln_forward(m, &m->dec_ln, m->h, m->h_mean, m->h_rstd, x, Rt);
        h = m->h;
    }
    /* the tied output projection and the loss, TF_OUT_CHUNK rows at a time (the logits of a
       chunk stay in cache; the gradient replaces them in place and is used at once) */
    tf_scratch *s = &m->sc;
    float *dh = c->post_ln ? s->g : s->dln;
    const float w = b->ntok > 0 ? 1.0f / (float)b->ntok : 0.0f;
    *loss = 0.0;
    for (int64_t r0 = 0; r0 < Rt; r0 += TF_OUT_CHUNK) {
        const int64_t n = HG_MIN(TF_OUT_CHUNK, Rt - r0);
        hg_k_gemm(k, 0, 1, n, V, d, 1.0f, h + r0 * d, d, m->E, d, 0.0f, m->logits, V);
        *loss += hg_k_cross_entropy(k, want_grad ? m->logits : NULL, m->logits,
                                    b->tgt_out + r0, n, V, smoothing, HG_TF_IGNORE, w);
        if (!want_grad)
            continue;
        hg_k_gemm(k, 1, 0, V, d, n, 1.0f, m->logits, V, h + r0 * d, d, 1.0f, m->gE, d);
        hg_k_gemm(k, 0, 0, n, d, V, 1.0f, m->logits, V, m->E, d, 0.0f, dh + r0 * d, d);
    }
    if (!want_grad)
        goto done;

    /* backward: decoder (from the output projection's gradient dh), encoder */
    float *ds = s->g;
    if (!c->post_ln)
        tf_ln_backward(m, &m->dec_ln, ds, s->dln, x, m->h_mean, m->h_rstd, Rt);
    if (enc)
        hg_k_zero(k, s->dmem, (size_t)(Rs * d) * sizeof(float));
    for (int l = c->dec_layers - 1; l >= 0; l--)
        for (int j = m->dec[l].nsub - 1; j >= 0; j--)
            HG_CHECK(sub_backward(m, &m->dec[l], 1, l, j, &ps, ds));
    embed_backward(m, ds, b->tgt_in, b->B, b->Tt, &ps, SITE_TGT);
    if (!enc)
        goto done;
    const float *xe = m->enc[c->enc_layers - 1].s[m->enc[c->enc_layers - 1].nsub];
    if (c->post_ln)
        hg_k_copy(k, ds, s->dmem, (size_t)(Rs * d) * sizeof(float));
    else
        tf_ln_backward(m, &m->enc_ln, ds, s->dmem, xe, m->mem_mean, m->mem_rstd, Rs);
    for (int l = c->enc_layers - 1; l >= 0; l--)
        for (int j = m->enc[l].nsub - 1; j >= 0; j--)
            HG_CHECK(sub_backward(m, &m->enc[l], 0, l, j, &ps, ds));
    embed_backward(m, ds, b->src, b->B, b->Ts, &ps, SITE_SRC);
done:
    return rc;
}

int hg_tf_step(hg_tf *m, double lr, double grad_norm, float clip)
{
    if (clip > 0.0f && grad_norm > clip)
        hg_params_scale_grad(m->P, (float)(clip / (grad_norm + 1e-6)));
    return hg_params_step(m->P, (float)lr);
}

/* ---- checkpoints ---- */

static void map_read(const void *obj, int64_t i, void *host_dst)
{
    hg_linear_tensor_read(obj, (int)i, host_dst);
}

static void map_write(void *obj, int64_t i, const void *host_src)
{
    hg_linear_tensor_write(obj, (int)i, host_src);
}

int hg_tf_register(hg_tf *m, hg_registry *reg)
{
    int rc = HG_OK;
    char name[160];
    for (int i = 0; i < m->nmaps; i++) {
        hg_linear *L = m->maps[i];
        for (int t = 0; t < hg_linear_num_tensors(L); t++) {
            const char *tn;
            int64_t count;
            hg_linear_tensor(L, t, &tn, &count);
            snprintf(name, sizeof name, "%s.%s", m->map_name[i], tn);
            HG_CHECK(hg_registry_add_io(reg, name, HG_DTYPE_F32, count, map_read, map_write, L,
                                        t, 0));
        }
    }
    /* the ordinary parameters (every trainable tensor of the plain group) and their moments */
    for (int i = 0; i < m->nplain; i++) {
        const int id = m->plain_ids[i];
        const char *pn = hg_params_name(m->P, id);
        const int64_t count = hg_params_count(m->P, id);
        HG_CHECK(hg_registry_add(reg, pn, HG_DTYPE_F32, hg_params_data(m->P, id), count, m->k,
                                 0));
        snprintf(name, sizeof name, "%s.adam_m", pn);
        HG_CHECK(hg_registry_add(reg, name, HG_DTYPE_F32, hg_params_moment1(m->P, id), count,
                                 m->k, 0));
        snprintf(name, sizeof name, "%s.adam_v", pn);
        HG_CHECK(hg_registry_add(reg, name, HG_DTYPE_F32, hg_params_moment2(m->P, id), count,
                                 m->k, 0));
    }
    const int groups[3] = {m->group_plain, m->group_weights, m->group_vectors};
    const char *gn[3] = {"clock.plain", "clock.weights", "clock.vectors"};
    for (int g = 0; g < 3; g++)
        HG_CHECK(hg_registry_add(reg, gn[g], HG_DTYPE_U64,
                                 &hg_params_group_clock(m->P, groups[g])->t, 1, NULL, 0));
done:
    return rc;
}

void hg_tf_rematerialise(hg_tf *m)
{
    for (int i = 0; i < m->nmaps; i++)
        hg_linear_rematerialise(m->maps[i]);
}
