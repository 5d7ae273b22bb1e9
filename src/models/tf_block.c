/* tf_block.c - the Transformer's sublayers: multi-head attention with padding and causal masks,
 * the position-wise FFN and layer norm, forward and backward, on the kernel ops. */
#include <math.h>

#include "tf_internal.h"
#include "../hg.h"
#include "../rng.h"

uint64_t tf_site_seed(uint64_t dropout_seed, uint64_t site)
{
    return hg_rng_derive(dropout_seed, site);
}

/* y (=) dropout(x) when p > 0, else a copy unless y == x. */
static void drop(const hg_kctx *k, float *y, const float *x, int64_t n, float p, uint64_t seed)
{
    if (p > 0.0f)
        hg_k_dropout(k, y, x, n, p, seed, 0);
    else if (y != x)
        hg_k_copy(k, y, x, (size_t)n * sizeof(float));
}

/* The batched product of attention: for each of the `batch` (sentence, head) items,
 * C = op(A) op(B) with row-major items at fixed strides. */
static void bmm(const hg_kctx *k, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb, float beta,
                float *C, int64_t ldc, int64_t sc, int64_t batch)
{
    (void)hg_k_gemm_batched(k, ta, tb, M, N, K, 1.0f, A, lda, sa, B, ldb, sb, beta, C, ldc, sc,
                            batch);
}

void tf_mha_forward(const hg_tf *m, const tf_mha *a, tf_mha_act *act, float *out, const float *Xq,
                    const float *Xkv, int64_t B, int64_t Tq, int64_t Tk, const int32_t *key_len,
                    int causal, float p, uint64_t seed)
{
    const hg_kctx *k = m->k;
    const int64_t d = m->cfg.dim, H = m->cfg.heads, dh = d / H;
    const float scale = (float)(1.0 / sqrt((double)dh));
    float *ch = m->sc.dch; /* free during the forward */
    act->fused = m->cfg.attn_fused && causal && !key_len && Xq == Xkv && Tq == Tk;
    hg_linear_forward(a->q.L, act->q, Xq, a->q.b, B * Tq);
    hg_linear_forward(a->k.L, act->k, Xkv, a->k.b, B * Tk);
    hg_linear_forward(a->v.L, act->v, Xkv, a->v.b, B * Tk);
    hg_k_heads_split(k, act->qh, act->q, B, Tq, H, dh);
    hg_k_heads_split(k, act->kh, act->k, B, Tk, H, dh);
    hg_k_heads_split(k, act->vh, act->v, B, Tk, H, dh);
    if (act->fused) { /* the context in one kernel, no score stored; p: the row log-sum-exps */
        hg_k_attn_causal_forward(k, ch, act->p, act->qh, act->kh, act->vh, B * H, Tq, dh, scale,
                                 p, seed);
    } else {
        /* scores Q K^T, then the masked, scaled softmax in place, dropout, and P V */
        bmm(k, 0, 1, Tq, Tk, dh, act->qh, dh, Tq * dh, act->kh, dh, Tk * dh, 0.0f, act->p, Tk,
            Tq * Tk, B * H);
        hg_k_softmax_forward(k, act->p, act->p, B * H * Tq, Tk, scale, causal ? Tq : 0, key_len,
                             H * Tq);
        drop(k, act->pd, act->p, B * H * Tq * Tk, p, seed);
        bmm(k, 0, 0, Tq, dh, Tk, act->pd, Tk, Tq * Tk, act->vh, dh, Tk * dh, 0.0f, ch, dh,
            Tq * dh, B * H);
    }
    /* merged back to rows, through the output map */
    hg_k_heads_merge(k, act->c, ch, B, Tq, H, dh);
    hg_linear_forward(a->o.L, out, act->c, a->o.b, B * Tq);
}

int tf_mha_backward(hg_tf *m, tf_mha *a, const tf_mha_act *act, float *dXq, float *dXkv,
                    const float *dout, const float *Xq, const float *Xkv, int64_t B, int64_t Tq,
                    int64_t Tk, float p, uint64_t seed)
{
    const hg_kctx *k = m->k;
    tf_scratch *s = &m->sc;
    const int64_t d = m->cfg.dim, H = m->cfg.heads, dh = d / H;
    const int64_t np = B * H * Tq * Tk;
    const float scale = (float)(1.0 / sqrt((double)dh));
    int rc = HG_OK;
    /* through the output map: dC (rows x d), split by head */
    HG_CHECK(hg_linear_backward(a->o.L, s->t1, a->o.gb, dout, act->c, B * Tq));
    hg_k_heads_split(k, s->dch, s->t1, B, Tq, H, dh);
    if (act->fused) { /* the forward's context by head (into dq, free until the merges) */
        hg_k_heads_split(k, s->dq, act->c, B, Tq, H, dh);
        hg_k_attn_causal_backward(k, s->dqh, s->dkh, s->dvh, s->dch, act->qh, act->kh, act->vh,
                                  s->dq, act->p, B * H, Tq, dh, scale, p, seed);
    } else {
        /* dPd = dCh V^T, dV = Pd^T dCh */
        bmm(k, 0, 1, Tq, Tk, dh, s->dch, dh, Tq * dh, act->vh, dh, Tk * dh, 0.0f, s->dp, Tk,
            Tq * Tk, B * H);
        bmm(k, 1, 0, Tk, dh, Tq, act->pd, Tk, Tq * Tk, s->dch, dh, Tq * dh, 0.0f, s->dvh, dh,
            Tk * dh, B * H);
        /* through dropout (the same mask) and the softmax (its scale included) */
        drop(k, s->dp, s->dp, np, p, seed);
        hg_k_softmax_backward(k, s->dp, s->dp, act->p, B * H * Tq, Tk, scale);
        /* dQ = dS K, dK = dS^T Q */
        bmm(k, 0, 0, Tq, dh, Tk, s->dp, Tk, Tq * Tk, act->kh, dh, Tk * dh, 0.0f, s->dqh, dh,
            Tq * dh, B * H);
        bmm(k, 1, 0, Tk, dh, Tq, s->dp, Tk, Tq * Tk, act->qh, dh, Tq * dh, 0.0f, s->dkh, dh,
            Tk * dh, B * H);
    }
    hg_k_heads_merge(k, s->dq, s->dqh, B, Tq, H, dh);
    hg_k_heads_merge(k, s->dk, s->dkh, B, Tk, H, dh);
    hg_k_heads_merge(k, s->dv, s->dvh, B, Tk, H, dh);
    /* through the input maps */
    HG_CHECK(hg_linear_backward(a->q.L, dXq, a->q.gb, s->dq, Xq, B * Tq));
    if (dXkv) {
        HG_CHECK(hg_linear_backward(a->k.L, dXkv, a->k.gb, s->dk, Xkv, B * Tk));
        HG_CHECK(hg_linear_backward(a->v.L, s->t2, a->v.gb, s->dv, Xkv, B * Tk));
        hg_k_axpy(k, dXkv, 1.0f, s->t2, B * Tk * d);
    } else {
        HG_CHECK(hg_linear_backward(a->k.L, s->t2, a->k.gb, s->dk, Xkv, B * Tk));
        hg_k_axpy(k, dXq, 1.0f, s->t2, B * Tq * d);
        HG_CHECK(hg_linear_backward(a->v.L, s->t2, a->v.gb, s->dv, Xkv, B * Tk));
        hg_k_axpy(k, dXq, 1.0f, s->t2, B * Tq * d);
    }
done:
    return rc;
}

void tf_ffn_forward(const hg_tf *m, tf_layer *l, float *out, const float *x, int64_t rows,
                    float p, uint64_t seed)
{
    const hg_kctx *k = m->k;
    const int64_t f = m->cfg.ffn;
    hg_linear_forward(l->w1.L, l->h1, x, l->w1.b, rows);
    if (m->cfg.gelu)
        hg_k_gelu_forward(k, l->hd, l->h1, rows * f);
    else
        hg_k_relu_forward(k, l->hd, l->h1, rows * f);
    drop(k, l->hd, l->hd, rows * f, p, seed);
    hg_linear_forward(l->w2.L, out, l->hd, l->w2.b, rows);
}

int tf_ffn_backward(hg_tf *m, tf_layer *l, float *dx, const float *dout, const float *x,
                    int64_t rows, float p, uint64_t seed)
{
    const hg_kctx *k = m->k;
    const int64_t f = m->cfg.ffn;
    float *dh = m->sc.dh1;
    int rc = HG_OK;
    HG_CHECK(hg_linear_backward(l->w2.L, dh, l->w2.gb, dout, l->hd, rows));
    drop(k, dh, dh, rows * f, p, seed);
    if (m->cfg.gelu)
        hg_k_gelu_backward(k, dh, dh, l->h1, rows * f);
    else
        hg_k_relu_backward(k, dh, dh, l->h1, rows * f);
    HG_CHECK(hg_linear_backward(l->w1.L, dx, l->w1.gb, dh, x, rows));
done:
    return rc;
}

void tf_ln_forward(const hg_tf *m, const tf_ln *n, float *y, float *mean, float *rstd,
                   const float *x, int64_t rows)
{
    const int64_t d = m->cfg.dim;
    hg_k_layernorm_forward(m->k, y, mean, rstd, x, n->g, n->g + d, rows, d, m->cfg.ln_eps);
}

void tf_ln_backward(const hg_tf *m, tf_ln *n, float *dx, const float *dy, const float *x,
                    const float *mean, const float *rstd, int64_t rows)
{
    const int64_t d = m->cfg.dim;
    hg_k_layernorm_backward(m->k, dx, n->gg, n->gg + d, dy, x, mean, rstd, n->g, rows, d);
}
