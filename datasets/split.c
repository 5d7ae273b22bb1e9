/* split.c - node-classification splits (a split file or a seeded random split), the
 * link-prediction edge split with its val/test negatives, and the training-negative sampler
 * with the exclusion index it probes (dataset.h states the rules). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"

static int bsearch_i64(const int64_t *a, int64_t n, int64_t key)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == key;
}

static void key_to_pair(int64_t key, int64_t n, int32_t *out)
{
    out[0] = (int32_t)(key / n);
    out[1] = (int32_t)(key % n);
}

/* ------------------------------------------------------------------------------------------ */
/* node-classification splits                                                                   */

static int alloc_nc_idx(hg_dataset *d, int64_t ntr, int64_t nva, int64_t nte)
{
    d->idx_train = hg_calloc((size_t)HG_MAX(ntr, 1), sizeof *d->idx_train, "idx_train");
    d->idx_val = hg_calloc((size_t)HG_MAX(nva, 1), sizeof *d->idx_val, "idx_val");
    d->idx_test = hg_calloc((size_t)HG_MAX(nte, 1), sizeof *d->idx_test, "idx_test");
    if (!d->idx_train || !d->idx_val || !d->idx_test)
        return HG_ENOMEM;
    return HG_OK;
}

/* split.txt / split_hybonet.txt: train/val/test/none per node; unlabelled nodes are left out. */
int hg_ds_nc_split_file(hg_dataset *d, const char *path)
{
    int rc = HG_OK;
    int64_t cnt[4];
    uint8_t *which = hg_calloc((size_t)d->n, 1, "split");

    if (!which)
        return HG_ENOMEM;
    HG_CHECK(hg_ds_read_split(which, cnt, path, d->n));
    HG_CHECK(alloc_nc_idx(d, cnt[0], cnt[1], cnt[2]));
    for (int64_t i = 0; i < d->n; i++) {
        if (d->labels[i] < 0) /* an unlabelled node cannot be trained or scored: left out */
            continue;
        if (which[i] == 0)
            d->idx_train[d->n_train++] = i;
        else if (which[i] == 1)
            d->idx_val[d->n_val++] = i;
        else if (which[i] == 2)
            d->idx_test[d->n_test++] = i;
    }
done:
    hg_free(which);
    return rc;
}

/* HGCN's split_data without its overlap: label 0 vs label > 0 (-1 ignored), each
 * group shuffled; round(prop * min(#zero, #nonzero)) of each group to val, the same rule to
 * test, the rest to train. rint() rounds half to even, as Python's round(). */
/* Sort ascending and drop repeats (the overlapping reference groups can draw a node twice). */
static void sort_unique(int64_t *a, int64_t *n)
{
    qsort(a, (size_t)*n, sizeof(int64_t), hg_ds_cmp_i64);
    int64_t w = 0;
    for (int64_t i = 0; i < *n; i++)
        if (w == 0 || a[w - 1] != a[i])
            a[w++] = a[i];
    *n = w;
}

int hg_ds_nc_split_random(hg_dataset *d, double val_prop, double test_prop, uint64_t seed,
                          int reference_groups)
{
    int rc = HG_OK;
    int64_t *grp[2] = {NULL, NULL}, cnt[2] = {0, 0};
    hg_rng rng;

    for (int g = 0; g < 2; g++) {
        grp[g] = hg_calloc((size_t)d->n, sizeof *grp[g], "split group");
        if (!grp[g]) {
            rc = HG_ENOMEM;
            goto done;
        }
    }
    for (int64_t i = 0; i < d->n; i++) {
        if (d->labels[i] < 0)
            continue;
        if (reference_groups) { /* HGCN: pos = label != 0, neg = label != 1 (overlapping) */
            if (d->labels[i] != 1)
                grp[0][cnt[0]++] = i;
            if (d->labels[i] != 0)
                grp[1][cnt[1]++] = i;
        } else if (d->labels[i] == 0) {
            grp[0][cnt[0]++] = i;
        } else {
            grp[1][cnt[1]++] = i;
        }
    }
    int64_t mn = HG_MIN(cnt[0], cnt[1]);
    int64_t nv = (int64_t)rint(val_prop * (double)mn);
    int64_t nt = (int64_t)rint(test_prop * (double)mn);
    if (nv + nt > mn) /* only by rounding when val_prop + test_prop is close to 1 */
        nt = mn - nv;
    HG_CHECK(alloc_nc_idx(d, cnt[0] + cnt[1] - 2 * (nv + nt), 2 * nv, 2 * nt));
    hg_rng_seed(&rng, seed);
    /* nonzero group first, as the reference shuffles pos_idx before neg_idx */
    hg_rng_shuffle_i64(&rng, grp[1], cnt[1]);
    hg_rng_shuffle_i64(&rng, grp[0], cnt[0]);
    for (int g = 0; g < 2; g++) {
        for (int64_t k = 0; k < cnt[g]; k++) {
            if (k < nv)
                d->idx_val[d->n_val++] = grp[g][k];
            else if (k < nv + nt)
                d->idx_test[d->n_test++] = grp[g][k];
            else
                d->idx_train[d->n_train++] = grp[g][k];
        }
    }
    sort_unique(d->idx_train, &d->n_train);
    sort_unique(d->idx_val, &d->n_val);
    sort_unique(d->idx_test, &d->n_test);
done:
    hg_free(grp[0]);
    hg_free(grp[1]);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* link-prediction split                                                                        */

/* Open-addressing set of non-negative int64 keys (-1 = empty slot). */
/* Multiplier of the key hashes (Fibonacci hashing: 2^64 / golden ratio). */
#define HG_NEG_HASH_MUL 0x9e3779b97f4a7c15ULL
/* The filter in front of the exclusion set is a blocked Bloom filter: one 64-bit word per key
 * (chosen by the top bits of key * HG_NEG_HASH_MUL), HG_NEG_FILTER_K bits set in it (chosen by
 * the top bits of key * HG_NEG_FILTER_MUL), HG_NEG_FILTER_BITS_PER_KEY bits per excluded key:
 * one word load answers "not excluded" for all but about 1% of the non-excluded pairs; each
 * false positive costs a probe of the set, a cache miss and a mispredicted branch. */
#define HG_NEG_FILTER_BITS_PER_KEY 16
#define HG_NEG_FILTER_K 3
#define HG_NEG_FILTER_MUL 0xc2b2ae3d27d4eb4fULL

/* The filter word mask of a key: HG_NEG_FILTER_K bit positions from 6-bit fields of its hash. */
static inline uint64_t filter_mask(int64_t key)
{
    const uint64_t g = (uint64_t)key * HG_NEG_FILTER_MUL;
    uint64_t m = 0;
    for (int b = 0; b < HG_NEG_FILTER_K; b++)
        m |= (uint64_t)1 << (g >> (58 - 6 * b) & 63);
    return m;
}
typedef struct {
    int64_t *slot;
    int64_t mask;
} key_set;

static int key_set_init(key_set *s, int64_t count)
{
    int64_t cap = 16;
    while (cap < 2 * count + 1)
        cap *= 2;
    s->slot = hg_calloc((size_t)cap, sizeof *s->slot, "key set");
    if (!s->slot)
        return HG_ENOMEM;
    for (int64_t i = 0; i < cap; i++)
        s->slot[i] = -1;
    s->mask = cap - 1;
    return HG_OK;
}

/* Insert key; returns 0 if it was already present. */
static int key_set_insert(key_set *s, int64_t key)
{
    uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ULL;
    int64_t i = (int64_t)(h >> 17) & s->mask;
    while (s->slot[i] != -1) {
        if (s->slot[i] == key)
            return 0;
        i = (i + 1) & s->mask;
    }
    s->slot[i] = key;
    return 1;
}

/* A uniformly random unordered pair u != v, as its key. */
static int64_t random_pair_key(hg_rng *rng, int64_t n)
{
    int64_t u, v;
    do {
        u = (int64_t)hg_rng_below(rng, (uint64_t)n);
        v = (int64_t)hg_rng_below(rng, (uint64_t)n);
    } while (u == v);
    return hg_ds_pair_key(u, v, n);
}

/* HGCN mask_edges: shuffle the edges (split seed); val = first floor(m * val_prop), test = next
 * floor(m * test_prop), train = the rest. val/test negatives: as many distinct random non-edges
 * of the full graph (u < v, u != v), drawn by rejection with the same stream. Returns the sorted
 * training keys in *train_keys. */
int hg_ds_lp_split(hg_dataset *d, int64_t **train_keys, const int64_t *keys, int64_t m,
                   const hg_dataset_opts *o)
{
    int rc = HG_OK;
    int64_t n = d->n, *shuf = NULL, *tk = NULL;
    key_set drawn = {0};
    hg_rng rng;

    int64_t nv = (int64_t)floor((double)m * o->val_prop);
    int64_t nt = (int64_t)floor((double)m * o->test_prop);
    int64_t ntr = m - nv - nt;
    int64_t total_pairs = n * (n - 1) / 2;
    if (ntr < 1) {
        rc = HG_ERRORF(HG_EINVAL, "link prediction: no training edges left (%lld edges, %lld val, "
                       "%lld test)", (long long)m, (long long)nv, (long long)nt);
        goto done;
    }
    if (total_pairs - m < nv + nt) {
        rc = HG_ERRORF(HG_EINVAL, "link prediction: %lld non-edges, fewer than the %lld val/test "
                       "negatives needed", (long long)(total_pairs - m), (long long)(nv + nt));
        goto done;
    }
    shuf = hg_calloc((size_t)m, sizeof *shuf, "edge shuffle");
    tk = hg_calloc((size_t)ntr, sizeof *tk, "training edges");
    d->train_pos = hg_calloc((size_t)(2 * ntr), sizeof(int32_t), "train_pos");
    d->val_pos = hg_calloc((size_t)HG_MAX(2 * nv, 1), sizeof(int32_t), "val_pos");
    d->val_neg = hg_calloc((size_t)HG_MAX(2 * nv, 1), sizeof(int32_t), "val_neg");
    d->test_pos = hg_calloc((size_t)HG_MAX(2 * nt, 1), sizeof(int32_t), "test_pos");
    d->test_neg = hg_calloc((size_t)HG_MAX(2 * nt, 1), sizeof(int32_t), "test_neg");
    if (!shuf || !tk || !d->train_pos || !d->val_pos || !d->val_neg || !d->test_pos ||
        !d->test_neg) {
        rc = HG_ENOMEM;
        goto done;
    }
    memcpy(shuf, keys, (size_t)m * sizeof *shuf);
    hg_rng_seed(&rng, o->split_seed);
    hg_rng_shuffle_i64(&rng, shuf, m);
    for (int64_t k = 0; k < nv; k++)
        key_to_pair(shuf[k], n, d->val_pos + 2 * k);
    for (int64_t k = 0; k < nt; k++)
        key_to_pair(shuf[nv + k], n, d->test_pos + 2 * k);
    for (int64_t k = 0; k < ntr; k++) {
        key_to_pair(shuf[nv + nt + k], n, d->train_pos + 2 * k);
        tk[k] = shuf[nv + nt + k];
    }
    d->n_val_pos = nv;
    d->n_test_pos = nt;
    d->n_train_pos = ntr;

    HG_CHECK(key_set_init(&drawn, nv + nt));
    for (int64_t k = 0; k < nv + nt; k++) {
        int64_t key;
        do
            key = random_pair_key(&rng, n);
        while (bsearch_i64(keys, m, key) || !key_set_insert(&drawn, key));
        key_to_pair(key, n, k < nv ? d->val_neg + 2 * k : d->test_neg + 2 * (k - nv));
    }
    qsort(tk, (size_t)ntr, sizeof *tk, hg_ds_cmp_i64);
    *train_keys = tk;
    tk = NULL;
done:
    hg_free(drawn.slot);
    hg_free(shuf);
    hg_free(tk);
    return rc;
}


int hg_ds_neg_excl_index(hg_dataset *d)
{
    key_set excl = {0};
    int rc = key_set_init(&excl, d->n_neg_excl);
    if (rc != HG_OK)
        return rc;
    d->neg_excl_set = excl.slot;
    d->neg_excl_mask = excl.mask;
    int words = 0; /* log2 of the filter size in words */
    while (((int64_t)64 << words) < HG_NEG_FILTER_BITS_PER_KEY * d->n_neg_excl)
        words++;
    d->neg_excl_shift = 64 - words;
    d->neg_excl_bits = hg_calloc((size_t)1 << words, sizeof *d->neg_excl_bits, "negative filter");
    if (!d->neg_excl_bits)
        return HG_ENOMEM;
    for (int64_t k = 0; k < d->n_neg_excl; k++) {
        const int64_t key = d->neg_excl[k];
        const uint64_t h = (uint64_t)key * HG_NEG_HASH_MUL;
        key_set_insert(&excl, key);
        d->neg_excl_bits[words ? h >> d->neg_excl_shift : 0] |= filter_mask(key);
    }
    return HG_OK;
}

/* Membership in the exclusion set: the filter bit, then the slot sequence of key_set_insert.
 * The fields are passed as values: read from the struct, every store of a sampled pair (an
 * int32_t, which may alias the int shift) would force them to be reloaded. */
static inline int excl_has(const uint64_t *bits, int shift, const int64_t *slot, int64_t mask,
                           int64_t key)
{
    const uint64_t h = (uint64_t)key * HG_NEG_HASH_MUL, m = filter_mask(key);
    if ((bits[shift < 64 ? h >> shift : 0] & m) != m)
        return 0;
    for (int64_t i = (int64_t)(h >> 17) & mask;; i = (i + 1) & mask) {
        if (slot[i] == key)
            return 1;
        if (slot[i] == -1)
            return 0;
    }
}

/* The sampler's own generator: HG_NEG_LANES xoshiro256** streams side by side (one vector step
 * gives HG_NEG_LANES 64-bit draws, where one library call gives one through a state that makes
 * a round trip through memory), seeded on every call from 4 * HG_NEG_LANES draws of the caller's
 * generator, so the caller's stream still decides everything. */
#define HG_NEG_LANES 8
typedef uint64_t neg_lanes __attribute__((vector_size(8 * HG_NEG_LANES)));

static inline neg_lanes rotl_lanes(neg_lanes x, int k) { return (x << k) | (x >> (64 - k)); }

static inline neg_lanes xoshiro_lanes(neg_lanes *s)
{
    neg_lanes result = rotl_lanes(s[1] * 5, 7) * 9;
    neg_lanes t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl_lanes(s[3], 45);
    return result;
}

void hg_dataset_sample_negatives(const hg_dataset *d, hg_rng *rng, int32_t *out, int64_t count)
{
    int64_t n = d->n;
    if (n < 2) { /* no pairs at all: only a zeroed dataset gets here (load rejects it) */
        memset(out, 0, (size_t)(2 * HG_MAX(count, (int64_t)0)) * sizeof *out);
        return;
    }
    neg_lanes s[4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < HG_NEG_LANES; j++)
            s[i][j] = hg_rng_u64(rng);
    for (int j = 0; j < HG_NEG_LANES; j++) /* xoshiro's one forbidden state */
        if (!(s[0][j] | s[1][j] | s[2][j] | s[3][j]))
            s[0][j] = 1;
    /* Rejection sampling, uniform over the pool. Each 64-bit draw is a candidate: u and v
       uniform in [0, n) from its two 32-bit halves by Lemire's multiply-shift, exact because a
       candidate whose low product word falls below 2^32 mod n is rejected as a whole (the halves
       are independent, so each stays uniform and the two stay independent); then (u, u), then
       pairs in the exclusion set (the filter and hash set built at load, or for a dataset built
       without them a binary search in neg_excl). Candidates are taken in lane order. */
    const uint64_t n64 = (uint64_t)n, thresh = (uint64_t)((uint32_t)(-(uint32_t)n) % (uint32_t)n);
    const uint64_t *bits = d->neg_excl_bits;
    const int shift = d->neg_excl_shift;
    const int64_t *slot = d->neg_excl_set, mask = d->neg_excl_mask;
    const int64_t *sorted = d->neg_excl, nsorted = d->n_neg_excl;
    int64_t k = 0;
    while (k < count) {
        const neg_lanes x = xoshiro_lanes(s);
        const neg_lanes mu = (x & 0xffffffffu) * n64, mv = (x >> 32) * n64;
        const neg_lanes u = mu >> 32, v = mv >> 32;
        const neg_lanes lt = u < v;
        const neg_lanes lo = (u & lt) | (v & ~lt), hi = (v & lt) | (u & ~lt);
        const neg_lanes rej = ((mu & 0xffffffffu) < thresh) | ((mv & 0xffffffffu) < thresh) |
                              (u == v);
        /* the filter test of all lanes, without branches: "maybe" lanes need the exact test */
        const neg_lanes key = lo * n64 + hi;
        neg_lanes maybe = rej;
        if (slot) {
            const neg_lanes h = key * HG_NEG_HASH_MUL, g = key * HG_NEG_FILTER_MUL;
            neg_lanes m = {0}, w;
            for (int b = 0; b < HG_NEG_FILTER_K; b++)
                m |= ((neg_lanes){0} + 1) << (g >> (58 - 6 * b) & 63);
            const neg_lanes widx = shift < 64 ? h >> shift : (neg_lanes){0};
            for (int j = 0; j < HG_NEG_LANES; j++)
                w[j] = bits[widx[j]];
            maybe |= (w & m) == m;
        } else {
            maybe = ~(neg_lanes){0};
        }
        uint64_t l[HG_NEG_LANES], r[HG_NEG_LANES], q[HG_NEG_LANES], e[HG_NEG_LANES];
        memcpy(l, &lo, sizeof l); /* through memory: the loops below load lanes, not extract */
        memcpy(r, &hi, sizeof r);
        memcpy(q, &maybe, sizeof q);
        memcpy(e, &rej, sizeof e);
        uint64_t any = 0;
        for (int j = 0; j < HG_NEG_LANES; j++)
            any |= q[j];
        if (!any && k + HG_NEG_LANES <= count) { /* the common case: every lane is a negative */
            for (int j = 0; j < HG_NEG_LANES; j++) {
                out[2 * (k + j)] = (int32_t)l[j];
                out[2 * (k + j) + 1] = (int32_t)r[j];
            }
            k += HG_NEG_LANES;
            continue;
        }
        for (int j = 0; j < HG_NEG_LANES && k < count; j++) {
            if (e[j])
                continue;
            const int64_t a = (int64_t)l[j], b = (int64_t)r[j], kj = a * n + b;
            if (q[j] && (slot ? excl_has(bits, shift, slot, mask, kj)
                              : bsearch_i64(sorted, nsorted, kj)))
                continue;
            out[2 * k] = (int32_t)a;
            out[2 * k + 1] = (int32_t)b;
            k++;
        }
    }
}
