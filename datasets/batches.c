/* batches.c - token-budget batches over length buckets, and their layout (batches.h). */
#include "batches.h"

#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"

/* One pair's sort key: its lengths with the added token, then its index. */
typedef struct {
    int64_t tgt, src, idx;
} pair_key;

static int cmp_key(const void *pa, const void *pb)
{
    const pair_key *a = pa, *b = pb;
    if (a->tgt != b->tgt)
        return a->tgt < b->tgt ? -1 : 1;
    if (a->src != b->src)
        return a->src < b->src ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static int64_t sent_len(const hg_token_corpus *c, int64_t i) { return c->off[i + 1] - c->off[i]; }

int hg_mt_batches_make(hg_mt_batches *out, const hg_token_corpus *src, const hg_token_corpus *tgt,
                       int64_t max_tokens)
{
    memset(out, 0, sizeof *out);
    if (src->n != tgt->n)
        return HG_ERRORF(HG_EINVAL, "batches: %lld source sentences but %lld target sentences",
                         (long long)src->n, (long long)tgt->n);
    if (src->n < 1)
        return HG_ERRORF(HG_EINVAL, "batches: no sentence pairs");
    if (max_tokens < 1)
        return HG_ERRORF(HG_EINVAL, "batches: token budget %lld is not positive",
                         (long long)max_tokens);
    int64_t n = src->n;
    pair_key *key = hg_calloc((size_t)n, sizeof *key, "batch sort keys");
    out->pair = hg_calloc((size_t)n, sizeof *out->pair, "batch pairs");
    out->start = hg_calloc((size_t)n + 1, sizeof *out->start, "batch starts");
    if (!key || !out->pair || !out->start) {
        hg_free(key);
        hg_mt_batches_free(out);
        return HG_ENOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        key[i] = (pair_key){sent_len(tgt, i) + 1, sent_len(src, i) + 1, i};
    qsort(key, (size_t)n, sizeof *key, cmp_key);

    /* Walk in key order; in that order a joining pair's target length is the batch's largest. */
    int64_t nb = 0, count = 0, tmax = 0, smax = 0;
    for (int64_t k = 0; k <= n; k++) {
        int close = k == n || (count > 0 && key[k].tgt * (count + 1) > max_tokens);
        if (close) {
            out->max_pairs = HG_MAX(out->max_pairs, count);
            out->max_src_len = HG_MAX(out->max_src_len, smax);
            out->max_tgt_len = HG_MAX(out->max_tgt_len, tmax);
            out->max_src_rows = HG_MAX(out->max_src_rows, count * smax);
            out->max_tgt_rows = HG_MAX(out->max_tgt_rows, count * tmax);
            out->start[++nb] = k;
            count = smax = 0;
        }
        if (k == n)
            break;
        out->pair[k] = key[k].idx;
        count++;
        tmax = key[k].tgt;
        smax = HG_MAX(smax, key[k].src);
    }
    out->nbatches = nb;
    hg_free(key);
    return HG_OK;
}

void hg_mt_batches_free(hg_mt_batches *b)
{
    hg_free(b->start);
    hg_free(b->pair);
    memset(b, 0, sizeof *b);
}

void hg_mt_batches_shuffle(int64_t *order, int64_t n, hg_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    hg_rng_shuffle_i64(rng, order, n);
}

void hg_mt_collate(const hg_mt_batches *b, int64_t batch, const hg_token_corpus *src,
                   const hg_token_corpus *tgt, int32_t bos, int32_t eos, int32_t pad_id,
                   int32_t ignore_id, int32_t *src_ids, int32_t *src_len, int32_t *tgt_in,
                   int32_t *tgt_out, int32_t *tgt_len, int64_t *B, int64_t *Ts, int64_t *Tt)
{
    const int64_t *pair = b->pair + b->start[batch];
    int64_t nb = b->start[batch + 1] - b->start[batch], ts = 0, tt = 0;
    for (int64_t i = 0; i < nb; i++) {
        ts = HG_MAX(ts, sent_len(src, pair[i]) + 1);
        tt = HG_MAX(tt, sent_len(tgt, pair[i]) + 1);
    }
    for (int64_t i = 0; i < nb; i++) {
        int64_t p = pair[i], ls = sent_len(src, p), lt = sent_len(tgt, p);
        const int32_t *s = src->ids + src->off[p], *t = tgt->ids + tgt->off[p];
        int32_t *srow = src_ids + i * ts, *in = tgt_in + i * tt, *outr = tgt_out + i * tt;
        memcpy(srow, s, (size_t)ls * sizeof *srow);
        srow[ls] = eos;
        for (int64_t j = ls + 1; j < ts; j++)
            srow[j] = pad_id;
        in[0] = bos;
        memcpy(in + 1, t, (size_t)lt * sizeof *in);
        memcpy(outr, t, (size_t)lt * sizeof *outr);
        outr[lt] = eos;
        for (int64_t j = lt + 1; j < tt; j++) {
            in[j] = pad_id;
            outr[j] = ignore_id;
        }
        src_len[i] = (int32_t)(ls + 1);
        tgt_len[i] = (int32_t)(lt + 1);
    }
    *B = nb;
    *Ts = ts;
    *Tt = tt;
}
