/* tf_decode.c - incremental decoding for beam search: the sources are encoded once, and every
 * decoder layer's cross-attention keys and values computed once per source; each step feeds one
 * token per live hypothesis row, whose self-attention keys and values are cached.
 *
 * Layouts: the self-attention cache of a layer is (position, row, d) with max_rows rows per
 * position, so a step appends one block and attention reads a head of every position at a fixed
 * stride; rows are reordered by their parents with one gather per cached position. The cross
 * keys and values are (source, head, position, dh), copied per row when the rows' sources change. */
#include <math.h>
#include <string.h>

#include "tf_internal.h"
#include "../hg.h"

static float *alloc_f(const hg_kctx *k, int64_t count, const char *what)
{
    return hg_k_alloc(k, (size_t)(count > 0 ? count : 1) * sizeof(float), what);
}

void tf_decode_free(hg_tf *m)
{
    tf_dec_state *s = &m->ds;
    const hg_kctx *k = m->k;
    for (int l = 0; l < HG_TF_MAX_LAYERS; l++) {
        float *b[] = {s->ck[l], s->cv[l], s->sk[l], s->sv[l], s->rowk[l], s->rowv[l]};
        for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
            hg_k_free(k, b[i]);
    }
    float *b[] = {s->spare, s->x, s->y, s->f, s->q, s->p, s->c, s->hf, s->mean, s->rstd};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        hg_k_free(k, b[i]);
    hg_k_free(k, s->src);
    hg_k_free(k, s->src_len);
    hg_k_free(k, s->row_len);
    hg_k_free(k, s->tok);
    hg_k_free(k, s->gather_idx);
    hg_free(s->gather_host);
    hg_free(s->src_len_host);
    hg_free(s->row_len_host);
    hg_free(s->prev_src_row);
    memset(s, 0, sizeof *s);
}

int hg_tf_decode_init(hg_tf *m, int64_t max_sources, int64_t max_rows, int64_t max_src_len,
                      int64_t max_steps)
{
    const hg_kctx *k = m->k;
    const hg_tf_config *c = &m->cfg;
    const int64_t d = c->dim, L = c->dec_layers;
    tf_dec_state *s = &m->ds;
    tf_decode_free(m);
    if (max_sources < 1 || max_rows < 1 || max_src_len < 1 || max_steps < 1 ||
        (c->enc_layers > 0 && (max_sources * max_src_len > c->max_src_rows ||
                               max_src_len > c->max_len)) ||
        max_steps > c->max_len)
        return HG_ERRORF(HG_EINVAL, "transformer: decoding capacity (%lld sources of %lld tokens, "
                         "%lld steps) beyond the model's (%lld source rows, %lld positions)",
                         (long long)max_sources, (long long)max_src_len, (long long)max_steps,
                         (long long)c->max_src_rows, (long long)c->max_len);
    s->max_sources = max_sources;
    s->max_rows = max_rows;
    s->max_src_len = max_src_len;
    s->max_steps = max_steps;
    int ok = 1;
    for (int64_t l = 0; l < L; l++) {
        s->ck[l] = alloc_f(k, max_sources * max_src_len * d, "cross keys");
        s->cv[l] = alloc_f(k, max_sources * max_src_len * d, "cross values");
        s->rowk[l] = alloc_f(k, max_rows * max_src_len * d, "row cross keys");
        s->rowv[l] = alloc_f(k, max_rows * max_src_len * d, "row cross values");
        s->sk[l] = alloc_f(k, max_steps * max_rows * d, "key cache");
        s->sv[l] = alloc_f(k, max_steps * max_rows * d, "value cache");
        ok = ok && s->ck[l] && s->cv[l] && s->rowk[l] && s->rowv[l] && s->sk[l] && s->sv[l];
    }
    s->spare = alloc_f(k, max_steps * max_rows * d, "cache reorder");
    s->x = alloc_f(k, max_rows * d, "decoder rows");
    s->y = alloc_f(k, max_rows * d, "decoder rows");
    s->f = alloc_f(k, max_rows * d, "decoder rows");
    s->q = alloc_f(k, max_rows * d, "decoder rows");
    s->c = alloc_f(k, max_rows * d, "decoder rows");
    s->p = alloc_f(k, max_rows * c->heads * HG_MAX(max_steps, max_src_len), "decoder scores");
    s->hf = alloc_f(k, max_rows * c->ffn, "decoder FFN");
    s->mean = alloc_f(k, max_rows, "decoder norm");
    s->rstd = alloc_f(k, max_rows, "decoder norm");
    s->src = hg_k_alloc(k, (size_t)(max_sources * max_src_len) * sizeof(int32_t), "sources");
    s->src_len = hg_k_alloc(k, (size_t)max_sources * sizeof(int32_t), "source lengths");
    s->row_len = hg_k_alloc(k, (size_t)max_rows * sizeof(int32_t), "row lengths");
    s->tok = hg_k_alloc(k, (size_t)max_rows * sizeof(int32_t), "tokens");
    s->gather_idx = hg_k_alloc(k, (size_t)(max_rows * d) * sizeof(int64_t), "reorder index");
    s->gather_host = hg_calloc((size_t)(max_rows * d), sizeof(int64_t), "reorder index");
    s->src_len_host = hg_calloc((size_t)max_sources, sizeof(int32_t), "source lengths");
    s->row_len_host = hg_calloc((size_t)max_rows, sizeof(int32_t), "row lengths");
    s->prev_src_row = hg_calloc((size_t)max_rows, sizeof(int64_t), "row sources");
    ok = ok && s->spare && s->x && s->y && s->f && s->q && s->c && s->p && s->hf && s->mean &&
         s->rstd && s->src && s->src_len && s->row_len && s->tok && s->gather_idx &&
         s->gather_host && s->src_len_host && s->row_len_host && s->prev_src_row;
    if (!ok) {
        tf_decode_free(m);
        return HG_ENOMEM;
    }
    return HG_OK;
}

int hg_tf_decode_start(hg_tf *m, const int32_t *src, const int32_t *src_len, int64_t n,
                       int64_t Ts)
{
    const hg_kctx *k = m->k;
    const hg_tf_config *c = &m->cfg;
    tf_dec_state *s = &m->ds;
    const int64_t d = c->dim, H = c->heads, dh = d / H;
    if (!s->x || n < 1 || n > s->max_sources ||
        (c->enc_layers > 0 && (Ts < 1 || Ts > s->max_src_len || !src || !src_len)))
        return HG_ERRORF(HG_EINVAL, "transformer: %lld sources of %lld tokens beyond the decoding "
                         "capacity (%lld of %lld)", (long long)n, (long long)Ts,
                         (long long)s->max_sources, (long long)s->max_src_len);
    s->n = n;
    s->Ts = Ts;
    s->rows = 0;
    if (c->enc_layers == 0) /* decoder-only: nothing to encode */
        return HG_OK;
    memcpy(s->src_len_host, src_len, (size_t)n * sizeof(int32_t));
    hg_k_upload(k, s->src, src, (size_t)(n * Ts) * sizeof(int32_t));
    hg_k_upload(k, s->src_len, src_len, (size_t)n * sizeof(int32_t));
    tf_encode(m, s->src, s->src_len, n, Ts, 0.0f, 0, m->mem, m->mem_mean, m->mem_rstd);
    /* every decoder layer's cross-attention keys and values, split by head */
    for (int l = 0; l < c->dec_layers; l++) {
        tf_mha *a = &m->dec[l].att[1];
        hg_linear_forward(a->k.L, m->sc.dq, m->mem, a->k.b, n * Ts);
        hg_k_heads_split(k, s->ck[l], m->sc.dq, n, Ts, H, dh);
        hg_linear_forward(a->v.L, m->sc.dq, m->mem, a->v.b, n * Ts);
        hg_k_heads_split(k, s->cv[l], m->sc.dq, n, Ts, H, dh);
    }
    return HG_OK;
}

/* Reorder every layer's cache rows by parent (positions < t). */
static void reorder(hg_tf *m, int64_t t, const int64_t *parent, int64_t rows)
{
    const hg_kctx *k = m->k;
    tf_dec_state *s = &m->ds;
    const int64_t d = m->cfg.dim, cap = s->max_rows * d;
    int identity = rows == s->rows;
    for (int64_t i = 0; i < rows && identity; i++)
        identity = parent[i] == i;
    if (identity || t == 0)
        return;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t e = 0; e < d; e++)
            s->gather_host[i * d + e] = parent[i] * d + e;
    hg_k_upload(k, s->gather_idx, s->gather_host, (size_t)(rows * d) * sizeof(int64_t));
    for (int l = 0; l < m->cfg.dec_layers; l++) {
        float **caches[2] = {&s->sk[l], &s->sv[l]};
        for (int q = 0; q < 2; q++) {
            for (int64_t p = 0; p < t; p++)
                hg_k_gather(k, s->spare + p * cap, *caches[q] + p * cap, s->gather_idx, rows * d);
            float *old = *caches[q];
            *caches[q] = s->spare;
            s->spare = old;
        }
    }
}

/* The rows' cross keys and values, when the rows' sources changed. */
static void row_sources(hg_tf *m, const int64_t *src_row, int64_t rows)
{
    const hg_kctx *k = m->k;
    tf_dec_state *s = &m->ds;
    const int64_t blk = s->Ts * m->cfg.dim;
    int same = rows == s->rows;
    for (int64_t i = 0; i < rows && same; i++)
        same = src_row[i] == s->prev_src_row[i];
    if (same)
        return;
    for (int64_t i = 0; i < rows; i++) {
        s->prev_src_row[i] = src_row[i];
        s->row_len_host[i] = s->src_len_host[src_row[i]];
        for (int l = 0; l < m->cfg.dec_layers; l++) {
            hg_k_copy(k, s->rowk[l] + i * blk, s->ck[l] + src_row[i] * blk, (size_t)blk * sizeof(float));
            hg_k_copy(k, s->rowv[l] + i * blk, s->cv[l] + src_row[i] * blk, (size_t)blk * sizeof(float));
        }
    }
    hg_k_upload(k, s->row_len, s->row_len_host, (size_t)rows * sizeof(int32_t));
}

/* One attention of the step: q (rows x d) against `keys` keys at K, V (position stride ldk,
 * head stride dh, item stride sk), into s->c, then the output map into s->f. */
static void step_attention(hg_tf *m, const tf_mha *a, int64_t rows, const float *K,
                           const float *V, int64_t keys, int64_t ldk, int64_t sk,
                           const int32_t *key_len)
{
    const hg_kctx *k = m->k;
    tf_dec_state *s = &m->ds;
    const int64_t d = m->cfg.dim, H = m->cfg.heads, dh = d / H;
    (void)hg_k_gemm_batched(k, 0, 1, 1, keys, dh, 1.0f, s->q, dh, dh, K, ldk, sk, 0.0f, s->p,
                            keys, keys, rows * H);
    hg_k_softmax_forward(k, s->p, s->p, rows * H, keys, (float)(1.0 / sqrt((double)dh)), 0,
                         key_len, H);
    (void)hg_k_gemm_batched(k, 0, 0, 1, dh, keys, 1.0f, s->p, keys, keys, V, ldk, sk, 0.0f, s->c,
                            dh, dh, rows * H);
    hg_linear_forward(a->o.L, s->f, s->c, a->o.b, rows);
}

int hg_tf_decode_step(hg_tf *m, int64_t t, const int32_t *tokens, const int64_t *parent,
                      const int64_t *src_row, int64_t rows, float *logits)
{
    const hg_kctx *k = m->k;
    const hg_tf_config *c = &m->cfg;
    tf_dec_state *s = &m->ds;
    const int64_t d = c->dim, H = c->heads, dh = d / H, cap = s->max_rows * d;
    if (!s->x || s->n < 1 || t < 0 || t >= s->max_steps || rows < 1 || rows > s->max_rows)
        return HG_ERRORF(HG_EINVAL, "transformer: decoding step %lld with %lld rows beyond the "
                         "capacity (%lld steps, %lld rows)", (long long)t, (long long)rows,
                         (long long)s->max_steps, (long long)s->max_rows);
    for (int64_t i = 0; i < rows; i++)
        if (src_row[i] < 0 || src_row[i] >= s->n || (t > 0 && (parent[i] < 0 || parent[i] >= s->rows)))
            return HG_ERRORF(HG_EINVAL, "transformer: decoding row %lld has source %lld / parent "
                             "%lld out of range", (long long)i, (long long)src_row[i],
                             (long long)(t > 0 ? parent[i] : 0));
    reorder(m, t, parent, rows);
    if (c->enc_layers > 0)
        row_sources(m, src_row, rows);
    s->rows = rows;
    hg_k_upload(k, s->tok, tokens, (size_t)rows * sizeof(int32_t));
    hg_k_embed_forward(k, s->x, m->E, s->tok, m->pe + t * d, rows, 1, d, m->emb_scale);
    const int post = c->post_ln;
    for (int l = 0; l < c->dec_layers; l++) {
        tf_layer *L = &m->dec[l];
        for (int j = 0; j < L->nsub; j++) {
            const float *in = s->x;
            if (!post) {
                tf_ln_forward(m, &L->ln[j], s->y, s->mean, s->rstd, s->x, rows);
                in = s->y;
            }
            if (L->kind[j] == TF_SELF) {
                const tf_mha *a = &L->att[0];
                hg_linear_forward(a->q.L, s->q, in, a->q.b, rows);
                hg_linear_forward(a->k.L, s->sk[l] + t * cap, in, a->k.b, rows);
                hg_linear_forward(a->v.L, s->sv[l] + t * cap, in, a->v.b, rows);
                step_attention(m, a, rows, s->sk[l], s->sv[l], t + 1, cap, dh, NULL);
            } else if (L->kind[j] == TF_CROSS) {
                const tf_mha *a = &L->att[1];
                hg_linear_forward(a->q.L, s->q, in, a->q.b, rows);
                step_attention(m, a, rows, s->rowk[l], s->rowv[l], s->Ts, dh, s->Ts * dh,
                               s->row_len);
            } else {
                hg_linear_forward(L->w1.L, s->hf, in, L->w1.b, rows);
                if (c->gelu)
                    hg_k_gelu_forward(k, s->hf, s->hf, rows * c->ffn);
                else
                    hg_k_relu_forward(k, s->hf, s->hf, rows * c->ffn);
                hg_linear_forward(L->w2.L, s->f, s->hf, L->w2.b, rows);
            }
            hg_k_axpy(k, s->x, 1.0f, s->f, rows * d);
            if (post) {
                tf_ln_forward(m, &L->ln[j], s->y, s->mean, s->rstd, s->x, rows);
                hg_k_copy(k, s->x, s->y, (size_t)(rows * d) * sizeof(float));
            }
        }
    }
    const float *h = s->x;
    if (!post) {
        tf_ln_forward(m, &m->dec_ln, s->y, s->mean, s->rstd, s->x, rows);
        h = s->y;
    }
    hg_k_gemm(k, 0, 1, rows, c->vocab, d, 1.0f, h, d, m->E, d, 0.0f, logits, c->vocab);
    return HG_OK;
}
