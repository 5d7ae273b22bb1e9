/* gpt2bpe.c - GPT-2's byte-level BPE (contracts in gpt2bpe.h): the vocabulary files read, the
 * pre-tokeniser (PCRE2), the merges, a cache of pre-token -> ids, and decoding. The file
 * formats (encoder.json, vocab.bpe, token files) are read in gpt2bpe_files.c. */
#include "gpt2bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadir.h"
#include "hg_config.h"
#include "gpt2bpe_internal.h"
#include "../src/hg.h"

static const char PRETOKEN_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Pre-tokens longer than this are encoded each time rather than cached. */
#define CACHE_MAX_KEY 64
/* The cache is emptied when it holds this many pre-tokens, or this many bytes of keys and ids,
 * so that its memory stays bounded (about 40 MB at most); a large English corpus has a few
 * hundred thousand distinct pre-tokens. */
#define CACHE_MAX_ENTRIES (1u << 19)
#define CACHE_MAX_BYTES (16u << 20)

/* ---- a hash map of byte strings -> uint32 --------------------------------------------------- */

typedef struct strmap_slot {
    uint32_t hash, len, off, val; /* len == 0: empty (keys are never empty) */
} strmap_slot;

typedef struct strmap {
    strmap_slot *slot;
    size_t mask, used;
    char *keys; /* every key's bytes, one after the other */
    size_t keys_len, keys_cap;
} strmap;

/* A multiplicative hash of 8 bytes at a time. */
static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15u ^ n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDu;
        h ^= h >> 32;
    }
    w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53u;
    return (uint32_t)(h >> 32);
}

/* a[0..n) == b[0..n), inlined for the short keys of the cache */
static int same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static int strmap_init(strmap *m, size_t slots)
{
    memset(m, 0, sizeof *m);
    m->slot = calloc(slots, sizeof *m->slot);
    if (!m->slot)
        return HG_ERRORF(HG_ENOMEM, "out of memory (tokeniser hash map)");
    m->mask = slots - 1;
    return HG_OK;
}

static void strmap_free(strmap *m)
{
    free(m->slot);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

static void strmap_clear(strmap *m)
{
    memset(m->slot, 0, (m->mask + 1) * sizeof *m->slot);
    m->used = 0;
    m->keys_len = 0;
}

/* The slot of key s (found: len != 0; else the empty slot where it would go). */
static strmap_slot *strmap_find(const strmap *m, const char *s, size_t n, uint32_t h)
{
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        strmap_slot *e = &m->slot[i];
        if (e->len == 0 || (e->hash == h && e->len == n && same_bytes(m->keys + e->off, s, n)))
            return e;
    }
}

/* Double the number of slots. */
static int strmap_grow(strmap *m)
{
    size_t slots = 2 * (m->mask + 1);
    strmap_slot *old = m->slot, *neu = calloc(slots, sizeof *neu);
    if (!neu)
        return HG_ERRORF(HG_ENOMEM, "out of memory (tokeniser hash map)");
    for (size_t i = 0; i <= m->mask; i++) {
        if (!old[i].len)
            continue;
        size_t j = old[i].hash & (slots - 1);
        while (neu[j].len)
            j = (j + 1) & (slots - 1);
        neu[j] = old[i];
    }
    free(old);
    m->slot = neu;
    m->mask = slots - 1;
    return HG_OK;
}

/* Insert key s -> val (s not yet present); the slots double when half are used. */
static int strmap_put(strmap *m, const char *s, size_t n, uint32_t h, uint32_t val)
{
    if (2 * (m->used + 1) > m->mask + 1) {
        int rc = strmap_grow(m);
        if (rc != HG_OK)
            return rc;
    }
    if (m->keys_len + n > m->keys_cap) {
        size_t cap = m->keys_cap ? 2 * m->keys_cap : 1 << 16;
        while (cap < m->keys_len + n)
            cap *= 2;
        char *k = realloc(m->keys, cap);
        if (!k)
            return HG_ERRORF(HG_ENOMEM, "out of memory (tokeniser hash map)");
        m->keys = k;
        m->keys_cap = cap;
    }
    strmap_slot *e = strmap_find(m, s, n, h);
    memcpy(m->keys + m->keys_len, s, n);
    *e = (strmap_slot){h, (uint32_t)n, (uint32_t)m->keys_len, val};
    m->keys_len += n;
    m->used++;
    return HG_OK;
}

/* ---- the tokeniser ------------------------------------------------------------------------- */

typedef struct merge_slot {
    uint32_t key; /* (left << 16 | right) + 1; 0: empty */
    int32_t rank, result;
} merge_slot;

struct hg_gpt2bpe {
    int32_t n;           /* vocabulary size */
    uint32_t *tok_off;   /* n + 1 offsets into tok_bytes */
    char *tok_bytes;     /* each token's bytes */
    int32_t byte_id[256];
    merge_slot *merge;   /* open addressing on (left, right) */
    uint32_t merge_mask;
    pcre2_code *re;
    pcre2_match_data *md;
    int jit;
    strmap cache;        /* pre-token -> offset of its ids in pool: pool[off] = count, ids */
    int32_t *pool;
    size_t pool_len, pool_cap;
    /* scratch of one pre-token's merges, grown as needed */
    int32_t *sym, *next, *prev;
    uint64_t *heap; /* (rank << 32 | position) */
    size_t scratch_cap;
};

int32_t hg_gpt2bpe_vocab_size(const hg_gpt2bpe *t)
{
    return t->n;
}

const char *hg_gpt2bpe_token(const hg_gpt2bpe *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n)
        return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_bytes + t->tok_off[id];
}

void hg_gpt2bpe_free(hg_gpt2bpe *t)
{
    if (!t)
        return;
    free(t->tok_off);
    free(t->tok_bytes);
    free(t->merge);
    pcre2_match_data_free(t->md);
    pcre2_code_free(t->re);
    strmap_free(&t->cache);
    free(t->pool);
    free(t->sym);
    free(t->next);
    free(t->prev);
    free(t->heap);
    free(t);
}

static uint32_t merge_hash(uint32_t key)
{
    return (key * 2654435761u) >> 7;
}

/* The slot of pair (l, r): found when its key is set. */
static const merge_slot *merge_find(const hg_gpt2bpe *t, int32_t l, int32_t r)
{
    uint32_t key = ((uint32_t)l << 16 | (uint32_t)r) + 1;
    for (uint32_t i = merge_hash(key) & t->merge_mask;; i = (i + 1) & t->merge_mask)
        if (t->merge[i].key == key || t->merge[i].key == 0)
            return &t->merge[i];
}

int32_t hg_gpt2bpe_merge_rank(const hg_gpt2bpe *t, int32_t left, int32_t right, int32_t *result)
{
    if (left < 0 || right < 0 || left >= t->n || right >= t->n)
        return -1;
    const merge_slot *e = merge_find(t, left, right);
    if (!e->key)
        return -1;
    *result = e->result;
    return e->rank;
}

static int compile_pretokeniser(hg_gpt2bpe *t)
{
    uint32_t unicode = 0;
    if (pcre2_config(PCRE2_CONFIG_UNICODE, &unicode) < 0 || !unicode)
        return HG_ERRORF(HG_EUNSUPPORTED, "PCRE2 was built without Unicode support");
    int err;
    PCRE2_SIZE at;
    t->re = pcre2_compile((PCRE2_SPTR)PRETOKEN_RE, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return HG_ERRORF(HG_EUNSUPPORTED, "PCRE2 cannot compile the pre-tokeniser: %s",
                         (const char *)msg);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!t->md)
        return HG_ERRORF(HG_ENOMEM, "out of memory (PCRE2 match data)");
    return HG_OK;
}

int hg_gpt2bpe_load(hg_gpt2bpe **out, const char *encoder_json, const char *vocab_bpe)
{
    *out = NULL;
    hg_gpt2bpe *t = calloc(1, sizeof *t);
    if (!t)
        return HG_ERRORF(HG_ENOMEM, "out of memory (tokeniser)");
    strmap vocab = {0};
    hg_gpt2_merges m = {0};
    int rc;
    HG_CHECK(hg_gpt2_read_vocab(encoder_json, &t->n, &t->tok_off, &t->tok_bytes));
    HG_CHECK(strmap_init(&vocab, 1u << 17));
    hg_quoted q;
    for (int32_t id = 0; id < t->n; id++) {
        const char *s = t->tok_bytes + t->tok_off[id];
        size_t len = t->tok_off[id + 1] - t->tok_off[id];
        uint32_t h = hash_bytes(s, len);
        if (strmap_find(&vocab, s, len, h)->len) {
            rc = HG_ERRORF(HG_EFORMAT, "%s: token %d is a second token of the same bytes",
                           hg_quote(&q, encoder_json), (int)id);
            goto done;
        }
        HG_CHECK(strmap_put(&vocab, s, len, h, (uint32_t)id));
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        const strmap_slot *e = strmap_find(&vocab, &c, 1, hash_bytes(&c, 1));
        if (!e->len) {
            rc = HG_ERRORF(HG_EFORMAT, "%s: byte 0x%02x has no token of its own",
                           hg_quote(&q, encoder_json), b);
            goto done;
        }
        t->byte_id[b] = (int32_t)e->val;
    }
    HG_CHECK(hg_gpt2_read_merges(vocab_bpe, &m));
    t->merge_mask = 1;
    while (t->merge_mask < 2 * (uint32_t)m.n + 2)
        t->merge_mask <<= 1;
    t->merge = calloc(t->merge_mask--, sizeof *t->merge);
    int32_t *made_at = malloc((size_t)t->n * sizeof *made_at); /* the merge making each token */
    char *cat = malloc(2 * (size_t)(m.max_len + 1));
    if (!t->merge || !made_at || !cat) {
        rc = HG_ERRORF(HG_ENOMEM, "out of memory (merges)");
        goto merges_done;
    }
    for (int32_t id = 0; id < t->n; id++)
        made_at[id] = -1;
    for (int32_t r = 0; r < m.n; r++) {
        const char *part[2] = {m.bytes + m.off[2 * r], m.bytes + m.off[2 * r + 1]};
        size_t len[2] = {m.off[2 * r + 1] - m.off[2 * r], m.off[2 * r + 2] - m.off[2 * r + 1]};
        int32_t id[3];
        memcpy(cat, part[0], len[0]);
        memcpy(cat + len[0], part[1], len[1]);
        for (int k = 0; k < 3; k++) {
            const char *s = k < 2 ? part[k] : cat;
            size_t n = k < 2 ? len[k] : len[0] + len[1];
            const strmap_slot *e = strmap_find(&vocab, s, n, hash_bytes(s, n));
            if (!e->len) {
                hg_quoted q2;
                rc = HG_ERRORF(HG_EFORMAT, "%s:%d: %s of the merge is not a token of %s",
                               hg_quote(&q, vocab_bpe), (int)m.line[r],
                               k == 0 ? "the left part" : k == 1 ? "the right part" : "the result",
                               hg_quote(&q2, encoder_json));
                goto merges_done;
            }
            id[k] = (int32_t)e->val;
        }
        /* A merge may only use tokens made by earlier merges, and each token is made by one
         * merge: then merging the lowest-ranked pair first, one occurrence at a time from the
         * left, equals GPT-2's pass that merges all occurrences of that pair at once. */
        int unmade = (len[0] > 1 && made_at[id[0]] < 0) || (len[1] > 1 && made_at[id[1]] < 0);
        if (unmade || made_at[id[2]] >= 0) {
            rc = HG_ERRORF(HG_EFORMAT, "%s:%d: the merge %s", hg_quote(&q, vocab_bpe),
                           (int)m.line[r],
                           unmade ? "uses a token that no earlier merge makes"
                                  : "makes a token that an earlier merge made");
            goto merges_done;
        }
        made_at[id[2]] = r;
        merge_slot *e = (merge_slot *)merge_find(t, id[0], id[1]);
        *e = (merge_slot){((uint32_t)id[0] << 16 | (uint32_t)id[1]) + 1, r, id[2]};
    }
    rc = HG_OK;
merges_done:
    free(made_at);
    free(cat);
    hg_gpt2_merges_free(&m);
    if (rc != HG_OK)
        goto done;
    HG_CHECK(compile_pretokeniser(t));
    HG_CHECK(strmap_init(&t->cache, 1u << 12));
done:
    strmap_free(&vocab);
    if (rc != HG_OK) {
        hg_gpt2bpe_free(t);
        return rc;
    }
    *out = t;
    return HG_OK;
}

int hg_gpt2bpe_load_dir(hg_gpt2bpe **out, const char *dir)
{
    *out = NULL;
    char enc[4096], merges[4096];
    if (dir) {
        if (snprintf(enc, sizeof enc, "%s/encoder.json", dir) >= (int)sizeof enc)
            return HG_ERRORF(HG_EIO, "vocabulary folder name too long");
    } else {
        const int rc = hg_data_find(enc, sizeof enc, HG_SOURCE_DATA_DIR, "gpt2/encoder.json", 0);
        if (rc == HG_EIO)
            return HG_ERRORF(HG_EIO, "GPT-2 vocabulary not found (looked for gpt2/encoder.json "
                                     "in " HG_DATA_SEARCH_TEXT(HG_SOURCE_DATA_DIR) ")");
        if (rc != HG_OK)
            return rc;
    }
    /* vocab.bpe beside encoder.json */
    const size_t stem = strlen(enc) - strlen("encoder.json");
    snprintf(merges, sizeof merges, "%.*svocab.bpe", (int)stem, enc);
    return hg_gpt2bpe_load(out, enc, merges);
}

/* ---- encoding ------------------------------------------------------------------------------ */

void hg_gpt2_ids_free(hg_gpt2_ids *ids)
{
    free(ids->id);
    memset(ids, 0, sizeof *ids);
}

static int ids_reserve(hg_gpt2_ids *ids, size_t more)
{
    if (ids->n + more <= ids->cap)
        return HG_OK;
    size_t cap = ids->cap ? ids->cap : 1024;
    while (cap < ids->n + more)
        cap *= 2;
    int32_t *p = realloc(ids->id, cap * sizeof *p);
    if (!p)
        return HG_ERRORF(HG_ENOMEM, "out of memory (%zu token ids)", cap);
    ids->id = p;
    ids->cap = cap;
    return HG_OK;
}

static int scratch_reserve(hg_gpt2bpe *t, size_t n)
{
    if (n <= t->scratch_cap)
        return HG_OK;
    size_t cap = t->scratch_cap ? t->scratch_cap : 256;
    while (cap < n)
        cap *= 2;
    free(t->sym);
    free(t->next);
    free(t->prev);
    free(t->heap);
    t->sym = malloc(cap * sizeof *t->sym);
    t->next = malloc(cap * sizeof *t->next);
    t->prev = malloc(cap * sizeof *t->prev);
    t->heap = malloc(2 * cap * sizeof *t->heap);
    if (!t->sym || !t->next || !t->prev || !t->heap) {
        t->scratch_cap = 0;
        return HG_ERRORF(HG_ENOMEM, "out of memory (a pre-token of %zu bytes)", n);
    }
    t->scratch_cap = cap;
    return HG_OK;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (h[c] >= v)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Queue the pair starting at position i, if it has a merge. */
static void queue_pair(hg_gpt2bpe *t, size_t *nheap, int32_t i)
{
    int32_t j = t->next[i];
    if (j < 0)
        return;
    const merge_slot *e = merge_find(t, t->sym[i], t->sym[j]);
    if (e->key)
        heap_push(t->heap, nheap, (uint64_t)e->rank << 32 | (uint32_t)i);
}

/* The merges of one pre-token (n >= 2 bytes): the ids left in t->sym, linked from position 0
 * by t->next. The lowest (rank, position) pair is merged first; a queued pair whose positions
 * no longer hold it is skipped when it comes up. */
static int bpe(hg_gpt2bpe *t, const unsigned char *s, size_t n)
{
    int rc = scratch_reserve(t, n);
    if (rc != HG_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        t->sym[i] = t->byte_id[s[i]];
        t->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        t->prev[i] = (int32_t)i - 1;
    }
    size_t nheap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        queue_pair(t, &nheap, (int32_t)i);
    while (nheap > 0) {
        uint64_t top = heap_pop(t->heap, &nheap);
        int32_t i = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32);
        int32_t j = t->next[i];
        if (t->sym[i] < 0 || j < 0)
            continue;
        const merge_slot *e = merge_find(t, t->sym[i], t->sym[j]);
        if (!e->key || e->rank != rank)
            continue;
        t->sym[i] = e->result;
        t->sym[j] = -1;
        t->next[i] = t->next[j];
        if (t->next[j] >= 0)
            t->prev[t->next[j]] = i;
        if (t->prev[i] >= 0)
            queue_pair(t, &nheap, t->prev[i]);
        queue_pair(t, &nheap, i);
    }
    return HG_OK;
}

/* Append the ids of one pre-token s[0..n) to ids, through the cache. */
static int encode_pretoken(hg_gpt2bpe *t, const char *s, size_t n, hg_gpt2_ids *ids)
{
    int rc;
    if (n == 1) {
        if ((rc = ids_reserve(ids, 1)) != HG_OK)
            return rc;
        ids->id[ids->n++] = t->byte_id[(unsigned char)s[0]];
        return HG_OK;
    }
    uint32_t h = 0;
    if (n <= CACHE_MAX_KEY) {
        h = hash_bytes(s, n);
        const strmap_slot *e = strmap_find(&t->cache, s, n, h);
        if (e->len) {
            const int32_t *p = t->pool + e->val;
            if ((rc = ids_reserve(ids, (size_t)p[0])) != HG_OK)
                return rc;
            memcpy(ids->id + ids->n, p + 1, (size_t)p[0] * sizeof *p);
            ids->n += (size_t)p[0];
            return HG_OK;
        }
    }
    if ((rc = bpe(t, (const unsigned char *)s, n)) != HG_OK)
        return rc;
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = t->next[i])
        count++;
    if ((rc = ids_reserve(ids, count)) != HG_OK)
        return rc;
    int32_t *dst = ids->id + ids->n;
    for (int32_t i = 0; i >= 0; i = t->next[i])
        *dst++ = t->sym[i];
    if (n <= CACHE_MAX_KEY) {
        if (t->cache.used >= CACHE_MAX_ENTRIES ||
            t->cache.keys_len + n + 4 * (t->pool_len + count + 1) > CACHE_MAX_BYTES) {
            strmap_clear(&t->cache);
            t->pool_len = 0;
        }
        if (t->pool_len + count + 1 > t->pool_cap) {
            size_t cap = t->pool_cap ? 2 * t->pool_cap : 1 << 16;
            int32_t *p = realloc(t->pool, cap * sizeof *p);
            if (!p)
                return HG_ERRORF(HG_ENOMEM, "out of memory (tokeniser cache)");
            t->pool = p;
            t->pool_cap = cap;
        }
        if ((rc = strmap_put(&t->cache, s, n, h, (uint32_t)t->pool_len)) != HG_OK)
            return rc;
        t->pool[t->pool_len] = (int32_t)count;
        memcpy(t->pool + t->pool_len + 1, ids->id + ids->n, count * sizeof *t->pool);
        t->pool_len += count + 1;
    }
    ids->n += count;
    return HG_OK;
}

/* The next pre-token of text[0..len) from *pos: [*s, *e), and *pos moved to *e. Returns 1, 0
 * at the end, or -1 with an error recorded (HG_EUNSUPPORTED: PCRE2 failed, such as a resource
 * limit; the interpreter is tried after the JIT). Bytes the expression skips (invalid UTF-8)
 * come out as a pre-token of their own. */
static int next_pretoken(const pcre2_code *re, pcre2_match_data *md, int jit, const char *text,
                         size_t len, size_t *pos, size_t *s, size_t *e)
{
    if (*pos >= len)
        return 0;
    int rc = jit ? pcre2_jit_match(re, (PCRE2_SPTR)text, len, *pos, 0, md, NULL)
                 : PCRE2_ERROR_JIT_STACKLIMIT;
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        rc = pcre2_match(re, (PCRE2_SPTR)text, len, *pos, 0, md, NULL);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        HG_ERRORF(HG_EUNSUPPORTED, "pre-tokeniser: PCRE2 failed at byte %zu: %s", *pos,
                  (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *s = *pos;
    if (rc < 0) /* nothing but skipped bytes left */
        *e = len;
    else if (ov[0] > *pos) /* skipped bytes before the match */
        *e = ov[0];
    else
        *e = ov[1];
    *pos = *e;
    return 1;
}

int hg_gpt2bpe_encode(hg_gpt2bpe *t, const char *text, size_t len, hg_gpt2_ids *ids)
{
    size_t n0 = ids->n, pos = 0, s, e;
    int more, rc = HG_OK;
    while (rc == HG_OK && (more = next_pretoken(t->re, t->md, t->jit, text, len, &pos, &s, &e)))
        rc = more < 0 ? HG_EUNSUPPORTED : encode_pretoken(t, text + s, e - s, ids);
    if (rc != HG_OK)
        ids->n = n0;
    return rc;
}

int hg_gpt2bpe_split(const hg_gpt2bpe *t, const char *text, size_t len, size_t *ends,
                     size_t max_ends, size_t *count)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!md)
        return HG_ERRORF(HG_ENOMEM, "out of memory (PCRE2 match data)");
    size_t n = 0, pos = 0, s, e;
    int more;
    while ((more = next_pretoken(t->re, md, t->jit, text, len, &pos, &s, &e)) > 0) {
        if (n < max_ends)
            ends[n] = e;
        n++;
    }
    pcre2_match_data_free(md);
    *count = n;
    return more < 0 ? HG_EUNSUPPORTED : HG_OK;
}

/* ---- decoding ------------------------------------------------------------------------------ */

int hg_gpt2bpe_decode(const hg_gpt2bpe *t, const int32_t *ids, size_t n, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= t->n)
            return HG_ERRORF(HG_EINVAL, "token id %lld at position %zu is out of range [0, %d)",
                             (long long)ids[k], k, (int)t->n);
        total += t->tok_off[ids[k] + 1] - t->tok_off[ids[k]];
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return HG_ERRORF(HG_ENOMEM, "out of memory (%zu decoded bytes)", total);
    char *p = buf;
    for (size_t k = 0; k < n; k++) {
        size_t m = t->tok_off[ids[k] + 1] - t->tok_off[ids[k]];
        memcpy(p, t->tok_bytes + t->tok_off[ids[k]], m);
        p += m;
    }
    *p = '\0';
    *out = buf;
    *len = total;
    return HG_OK;
}
