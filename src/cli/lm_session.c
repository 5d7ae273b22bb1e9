/* lm_session.c - hgnn-lm's shared pieces (contract in lm_session.h). */
#include "lm_session.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../hg.h"

int hg_lm_session_open(hg_lm_session *s, const hg_lm_options *o, int vocab, int64_t max_windows)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    int rc = hg_kctx_init(&s->k, strcmp(o->device, "cuda") == 0 ? HG_DEVICE_CUDA : HG_DEVICE_CPU,
                          o->threads);
    s->have_k = rc == HG_OK;
    s->k.precision = o->bf16 ? HG_PREC_BF16 : HG_PREC_FP32;
    if (rc)
        return rc;
    const int64_t T = o->ctx, rows = max_windows * T;
    hg_tf_config c;
    memset(&c, 0, sizeof c);
    c.vocab = hg_lm_model_vocab(vocab);
    c.dim = o->dim;
    c.heads = o->heads;
    c.ffn = o->ffn;
    c.enc_layers = 0;
    c.dec_layers = o->layers;
    c.dropout = o->dropout;
    c.ln_eps = 1e-5f;
    c.learned_pos = 1;
    c.emb_scale = 1.0f;
    c.init_std = 0.02f;
    c.max_len = HG_MAX(o->positions, 2);
    c.max_src_len = 1;
    c.max_tgt_len = T;
    c.max_batch = max_windows;
    c.max_src_rows = 1;
    c.max_tgt_rows = rows;
    c.linear = o->linear;
    c.attn_fused = o->attn_fused;
    c.seed = o->seed;
    if ((rc = hg_tf_init(&s->model, &s->k, &c)))
        return rc;
    s->max_windows = max_windows;
    const size_t bytes = (size_t)rows * sizeof(int32_t);
    s->h_in = hg_calloc((size_t)rows, sizeof(int32_t), "batch");
    s->h_out = hg_calloc((size_t)rows, sizeof(int32_t), "batch");
    s->k_in = hg_k_alloc(&s->k, bytes, "batch");
    s->k_out = hg_k_alloc(&s->k, bytes, "batch");
    return s->h_in && s->h_out && s->k_in && s->k_out ? HG_OK : HG_ENOMEM;
}

void hg_lm_session_close(hg_lm_session *s)
{
    hg_tf_free(s->model);
    if (s->have_k) {
        hg_k_free(&s->k, s->k_in);
        hg_k_free(&s->k, s->k_out);
        hg_kctx_destroy(&s->k);
    }
    hg_free(s->h_in);
    hg_free(s->h_out);
    memset(s, 0, sizeof *s);
}

void hg_lm_load(hg_lm_session *s, const hg_tokens *t, int64_t limit, const int64_t *start,
                int64_t nw, hg_tf_batch *b)
{
    const int64_t T = s->o->ctx;
    int64_t ntok = 0;
    for (int64_t w = 0; w < nw; w++) {
        const uint16_t *x = t->ids + start[w];
        const int64_t len = HG_MIN(T, limit - start[w] - 1); /* targets in the window */
        int32_t *in = s->h_in + w * T, *out = s->h_out + w * T;
        for (int64_t i = 0; i < T; i++) {
            in[i] = i < len ? x[i] : 0; /* after the end: any id (causal: never attended to) */
            out[i] = i < len ? x[i + 1] : HG_TF_IGNORE;
        }
        ntok += len;
    }
    const size_t bytes = (size_t)(nw * T) * sizeof(int32_t);
    hg_k_upload(&s->k, s->k_in, s->h_in, bytes);
    hg_k_upload(&s->k, s->k_out, s->h_out, bytes);
    *b = (hg_tf_batch){nw, 0, T, ntok, NULL, NULL, s->k_in, s->k_out};
}

int hg_lm_nll(hg_lm_session *s, const hg_tokens *t, int64_t limit, double *nll)
{
    const int64_t T = s->o->ctx;
    if (limit <= 0 || limit > t->n)
        limit = t->n;
    if (limit < 2)
        return HG_ERRORF(HG_EINVAL, "the evaluation data holds %lld tokens: at least 2 are "
                         "needed", (long long)limit);
    int64_t start[64]; /* a batch of window starts, in chunks of at most 64 */
    const int64_t per = HG_MIN(s->max_windows, 64);
    double sum = 0.0, ntok = 0.0;
    int rc = HG_OK;
    for (int64_t a = 0; a < limit - 1;) {
        int64_t nw = 0;
        for (; nw < per && a < limit - 1; nw++, a += T)
            start[nw] = a;
        hg_tf_batch b;
        double l;
        hg_lm_load(s, t, limit, start, nw, &b);
        HG_CHECK(hg_tf_loss(s->model, &b, 0.0f, 0, 0, 0, &l));
        sum += l;
        ntok += (double)b.ntok;
    }
    *nll = sum / ntok;
done:
    return rc;
}

/* A map back to its trained weight W (full rank: W is the parameter; the others rebuild theirs
 * and SST goes back to its own product path). */
static int restore_weight(hg_linear *L, const float *W)
{
    const int rc = hg_linear_load_weight(L, W);
    hg_linear_rematerialise(L);
    return rc;
}

int hg_lm_prune_nll(hg_lm_session *s, const hg_tokens *t, int64_t limit, const double *keep,
                    int n, double *nll)
{
    const int maps = hg_tf_num_maps(s->model);
    float **orig = hg_calloc((size_t)maps, sizeof *orig, "weights"), *work = NULL;
    int rc = orig ? HG_OK : HG_ENOMEM;
    int64_t most = 0;
    for (int i = 0; !rc && i < maps; i++) { /* the weights as they are (keep all) */
        const hg_linear *L = hg_tf_map(s->model, i);
        const int64_t m = hg_linear_rows(L), c = hg_linear_cols(L);
        most = HG_MAX(most, m * c);
        if (!(orig[i] = hg_calloc((size_t)(m * c), sizeof(float), "weights")))
            rc = HG_ENOMEM;
        else
            rc = hg_linear_pruned_weight(L, HG_MIN(m, c), orig[i]);
    }
    if (!rc && !(work = hg_calloc((size_t)HG_MAX(most, 1), sizeof *work, "weights")))
        rc = HG_ENOMEM;
    for (int f = 0; !rc && f < n; f++) {
        for (int i = 0; !rc && i < maps; i++) {
            hg_linear *L = hg_tf_map(s->model, i);
            const int64_t k = HG_MIN(hg_linear_rows(L), hg_linear_cols(L));
            const int64_t kept = HG_MAX((int64_t)1, (int64_t)ceil(keep[f] * (double)k - 1e-9));
            if (kept >= k)
                rc = restore_weight(L, orig[i]); /* nothing pruned: the map as trained, bitwise */
            else if (!(rc = hg_linear_pruned_weight(L, kept, work)))
                rc = hg_linear_load_weight(L, work);
        }
        if (!rc)
            rc = hg_lm_nll(s, t, limit, &nll[f]);
    }
    for (int i = 0; orig && i < maps; i++) /* back to the trained weights */
        if (orig[i]) {
            const int r2 = restore_weight(hg_tf_map(s->model, i), orig[i]);
            rc = rc ? rc : r2;
        }
    for (int i = 0; orig && i < maps; i++)
        hg_free(orig[i]);
    hg_free(orig);
    hg_free(work);
    return rc;
}

void hg_lm_json_pruned(hg_json *j, const char *key, const double *keep, const double *nll, int n)
{
    if (n <= 0)
        return;
    char buf[64 * HG_LM_MAX_PRUNE + 4];
    size_t at = (size_t)snprintf(buf, sizeof buf, "[");
    for (int f = 0; f < n && f < HG_LM_MAX_PRUNE; f++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s[%.17g, %.17g]", f ? ", " : "",
                               keep[f], exp(nll[f]));
    snprintf(buf + at, sizeof buf - at, "]");
    hg_json_add_raw(j, key, buf);
}
