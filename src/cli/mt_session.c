/* mt_session.c - hgnn-mt's shared pieces (contract in mt_session.h). */
#include "mt_session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../hg.h"
#include "../models/beam.h"

int hg_mt_session_open(hg_mt_session *s, const hg_mt_options *o)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    int rc = hg_kctx_init(&s->k, strcmp(o->device, "cuda") == 0 ? HG_DEVICE_CUDA : HG_DEVICE_CPU,
                          o->threads);
    s->have_k = rc == HG_OK;
    s->k.precision = o->bf16 ? HG_PREC_BF16 : HG_PREC_FP32;
    return rc;
}

void hg_mt_session_close(hg_mt_session *s)
{
    hg_tf_free(s->model);
    hg_spm_free(s->spm);
    if (s->have_k) {
        hg_k_free(&s->k, s->dec_logits);
        if (s->dec_host != s->dec_logits)
            hg_free(s->dec_host);
        hg_kctx_destroy(&s->k);
    }
    hg_free(s->dec_ids);
    hg_free(s->dec_len);
    memset(s, 0, sizeof *s);
}

void hg_mt_model_config(const hg_mt_options *o, int64_t vocab, int64_t max_batch,
                        int64_t max_src_len, int64_t max_tgt_len, int64_t max_src_rows,
                        int64_t max_tgt_rows, hg_tf_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab = vocab;
    c->dim = o->dim;
    c->heads = o->heads;
    c->ffn = o->ffn;
    c->enc_layers = o->enc_layers;
    c->dec_layers = o->dec_layers;
    c->dropout = o->dropout;
    c->post_ln = o->post_ln;
    c->gelu = o->gelu;
    c->attn_fused = o->attn_fused;
    c->ln_eps = 1e-5f;
    c->max_src_len = max_src_len;
    c->max_tgt_len = max_tgt_len;
    c->max_len = HG_MAX(max_src_len, max_tgt_len);
    c->max_batch = max_batch;
    c->max_src_rows = max_src_rows;
    c->max_tgt_rows = max_tgt_rows;
    c->linear = o->linear;
    c->seed = o->seed;
}

int64_t hg_mt_decode_rows(const hg_mt_options *o, int64_t max_src_len)
{
    return o->decode_batch * max_src_len;
}

int hg_mt_decode_setup(hg_mt_session *s, int64_t max_src_len, int max_beam)
{
    const hg_mt_options *o = s->o;
    const int64_t V = hg_tf_cfg(s->model)->vocab;
    const int64_t rows = o->decode_batch * max_beam;
    int rc = hg_tf_decode_init(s->model, o->decode_batch, rows, max_src_len,
                               max_src_len + o->extra_len + 1);
    if (rc)
        return rc;
    s->dec_max_len = max_src_len;
    s->dec_ids = hg_calloc((size_t)(o->decode_batch * max_src_len), sizeof(int32_t), "sources");
    s->dec_len = hg_calloc((size_t)o->decode_batch, sizeof(int32_t), "source lengths");
    s->dec_logits = hg_k_alloc(&s->k, (size_t)(rows * V) * sizeof(float), "logits");
    if (!s->dec_ids || !s->dec_len || !s->dec_logits)
        return HG_ENOMEM;
    if (s->k.device == HG_DEVICE_CPU)
        s->dec_host = s->dec_logits;
    else if (!(s->dec_host = hg_calloc((size_t)(rows * V), sizeof(float), "logits")))
        return HG_ENOMEM;
    return HG_OK;
}

/* ---- the beam search's model callbacks ---- */

static int dec_start(void *ctx, const int64_t *src, int64_t n, int beam)
{
    hg_mt_session *s = ctx;
    const hg_token_corpus *c = s->dec_src;
    (void)beam;
    int64_t Ts = 1;
    for (int64_t i = 0; i < n; i++)
        Ts = HG_MAX(Ts, c->off[src[i] + 1] - c->off[src[i]] + 1);
    for (int64_t i = 0; i < n; i++) {
        const int64_t a = c->off[src[i]], len = c->off[src[i] + 1] - a;
        int32_t *row = s->dec_ids + i * Ts;
        memcpy(row, c->ids + a, (size_t)len * sizeof(int32_t));
        for (int64_t t = len; t < Ts; t++)
            row[t] = s->eos; /* EOS, then padding (masked) */
        s->dec_len[i] = (int32_t)(len + 1);
    }
    return hg_tf_decode_start(s->model, s->dec_ids, s->dec_len, n, Ts);
}

static int dec_step(void *ctx, int64_t t, const int32_t *tokens, const int64_t *parent,
                    const int64_t *src_row, int64_t rows, float *logp)
{
    hg_mt_session *s = ctx;
    const int64_t V = hg_tf_cfg(s->model)->vocab;
    int rc = hg_tf_decode_step(s->model, t, tokens, parent, src_row, rows, s->dec_logits);
    if (rc)
        return rc;
    if (s->dec_host != s->dec_logits)
        hg_k_download(&s->k, s->dec_host, s->dec_logits, (size_t)(rows * V) * sizeof(float));
    else if ((rc = hg_k_sync(&s->k)))
        return rc;
    /* log-softmax of each row, in double */
    for (int64_t r = 0; r < rows; r++) {
        const float *l = s->dec_host + r * V;
        float *out = logp + r * V;
        float mx = l[0];
        for (int64_t j = 1; j < V; j++)
            mx = l[j] > mx ? l[j] : mx;
        double sum = 0.0;
        for (int64_t j = 0; j < V; j++)
            sum += exp((double)(l[j] - mx));
        const float lse = (float)((double)mx + log(sum));
        for (int64_t j = 0; j < V; j++)
            out[j] = l[j] - lse;
    }
    return HG_OK;
}

void hg_mt_free_lines(char **lines, int64_t n)
{
    if (!lines)
        return;
    for (int64_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

int hg_mt_translate(hg_mt_session *s, const hg_token_corpus *src, int beam, char ***out)
{
    const hg_mt_options *o = s->o;
    const int64_t n = src->n;
    int rc = HG_OK;
    hg_beam_result res = {0};
    int64_t *len = hg_calloc((size_t)(n > 0 ? n : 1), sizeof *len, "source lengths");
    char **lines = calloc((size_t)(n > 0 ? n : 1), sizeof *lines);
    *out = NULL;
    if (!len || !lines) {
        rc = HG_ERRORF(HG_ENOMEM, "out of memory for %lld translations", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        len[i] = src->off[i + 1] - src->off[i] + 1;
        if (len[i] > s->dec_max_len) {
            rc = HG_ERRORF(HG_EINVAL, "sentence %lld: %lld tokens, beyond the %lld the decoder "
                           "was sized for", (long long)(i + 1), (long long)len[i] - 1,
                           (long long)s->dec_max_len - 1);
            goto done;
        }
    }
    s->dec_src = src;
    const hg_beam_model bm = {s, (int32_t)hg_tf_cfg(s->model)->vocab, s->bos, s->eos, dec_start,
                              dec_step};
    const hg_beam_opts bo = {beam, o->len_penalty, o->extra_len, o->decode_batch};
    HG_CHECK(hg_beam_search(&bm, len, n, &bo, &res));
    for (int64_t i = 0; i < n; i++)
        HG_CHECK(hg_spm_decode(s->spm, res.tok + res.off[i], res.off[i + 1] - res.off[i],
                               &lines[i]));
    *out = lines;
    lines = NULL;
done:
    hg_beam_result_free(&res);
    hg_free(len);
    hg_mt_free_lines(lines, n);
    return rc;
}
