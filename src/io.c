/* io.c - .npy and checkpoint files written atomically, mkdir -p (see io.h; the JSON writer is
 * in json.c). */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "hg.h"

/* Values are converted to little-endian bytes through a stack buffer of this many floats. */
#define IO_CHUNK_FLOATS 4096

/* FNV-1a, 64-bit (Fowler/Noll/Vo): the prime (the offset basis is in io.h). */
#define FNV64_PRIME UINT64_C(0x100000001b3)

uint64_t hg_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

static void put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *b)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* float32 <-> little-endian bytes, whatever the host byte order. */
static void floats_to_le(unsigned char *b, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32(b + 4 * i, u);
    }
}

static void floats_from_le(float *x, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32(b + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}

/* ---- Atomic files: write PATH.tmp, fsync, rename over PATH -------------------------------- */

typedef struct atomic_file {
    const char *path;
    char *tmp;     /* path + ".tmp" */
    FILE *f;
    uint64_t hash; /* FNV-1a of every byte written so far */
} atomic_file;

static int af_open(atomic_file *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->path = path;
    a->hash = HG_FNV64_OFFSET;
    size_t len = strlen(path);
    a->tmp = hg_calloc(len + 5, 1, "temporary file name");
    if (!a->tmp)
        return HG_ENOMEM;
    memcpy(a->tmp, path, len);
    memcpy(a->tmp + len, ".tmp", 5);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        hg_free(a->tmp);
        a->tmp = NULL;
        return HG_ERRORF(HG_EIO, "%s: cannot create temporary file %s.tmp: %s", path, path,
                         strerror(e));
    }
    return HG_OK;
}

static int af_write(atomic_file *a, const void *p, size_t n)
{
    if (n == 0)
        return HG_OK;
    if (fwrite(p, 1, n, a->f) != n)
        return HG_ERRORF(HG_EIO, "%s: write error on %s: %s", a->path, a->tmp, strerror(errno));
    a->hash = hg_fnv1a64(a->hash, p, n);
    return HG_OK;
}

static int af_write_floats(atomic_file *a, const float *x, uint64_t n)
{
    unsigned char b[4 * IO_CHUNK_FLOATS];
    while (n > 0) {
        size_t m = n < IO_CHUNK_FLOATS ? (size_t)n : IO_CHUNK_FLOATS;
        floats_to_le(b, x, m);
        int rc = af_write(a, b, 4 * m);
        if (rc != HG_OK)
            return rc;
        x += m;
        n -= m;
    }
    return HG_OK;
}

/* Drop the temporary file (after a failure); PATH is untouched. */
static void af_abort(atomic_file *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        unlink(a->tmp);
    hg_free(a->tmp);
    a->f = NULL;
    a->tmp = NULL;
}

/* Make the rename durable: fsync the directory holding path. Best effort (some file systems
 * refuse fsync on a directory); the rename itself is already atomic. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        if (len >= sizeof dir)
            return;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Flush, fsync, close and rename over PATH. Frees a->tmp in every case; on failure the
 * temporary file is removed. */
static int af_commit(atomic_file *a)
{
    int rc = HG_OK;
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) {
        rc = HG_ERRORF(HG_EIO, "%s: cannot flush %s: %s", a->path, a->tmp, strerror(errno));
        goto done;
    }
    FILE *f = a->f;
    a->f = NULL;
    if (fclose(f) != 0) {
        rc = HG_ERRORF(HG_EIO, "%s: cannot close %s: %s", a->path, a->tmp, strerror(errno));
        goto done;
    }
    if (rename(a->tmp, a->path) != 0) {
        rc = HG_ERRORF(HG_EIO, "%s: cannot rename %s over it: %s", a->path, a->tmp,
                       strerror(errno));
        goto done;
    }
    sync_parent_dir(a->path);
    hg_free(a->tmp);
    a->tmp = NULL;
done:
    if (rc != HG_OK)
        af_abort(a);
    return rc;
}

/* ---- NumPy .npy ---------------------------------------------------------------------------- */

/* .npy v1.0: "\x93NUMPY", major 1, minor 0, u16 header length, header text padded with spaces
 * and ending in '\n' so that the data is 64-byte aligned (numpy's own writer does the same). */
int hg_npy_write(const char *path, const float *data, int64_t rows, int64_t cols)
{
    if (!path || rows < 0 || cols < 0 || (rows > 0 && cols > INT64_MAX / rows))
        return HG_ERRORF(HG_EINVAL, "hg_npy_write: bad arguments (path %s, shape %lld x %lld)",
                         path ? path : "(null)", (long long)rows, (long long)cols);
    uint64_t count = (uint64_t)rows * (uint64_t)cols;
    if (count > 0 && !data)
        return HG_ERRORF(HG_EINVAL, "%s: hg_npy_write: NULL data for %lld x %lld", path,
                         (long long)rows, (long long)cols);

    unsigned char head[256];
    const size_t prefix = 10; /* magic 6, version 2, header length 2 */
    int dict = snprintf((char *)head + prefix, sizeof head - prefix,
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                        (long long)rows, (long long)cols);
    size_t total = prefix + (size_t)dict + 1; /* + '\n' */
    total = (total + 63) / 64 * 64;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (unsigned char)((total - prefix) & 0xff);
    head[9] = (unsigned char)((total - prefix) >> 8);
    memset(head + prefix + dict, ' ', total - prefix - (size_t)dict - 1);
    head[total - 1] = '\n';

    atomic_file a;
    int rc = af_open(&a, path);
    if (rc != HG_OK)
        return rc;
    HG_CHECK(af_write(&a, head, total));
    HG_CHECK(af_write_floats(&a, data, count));
    rc = af_commit(&a);
    return rc;
done:
    af_abort(&a);
    return rc;
}

int hg_file_write(const char *path, const void *data, size_t n)
{
    if (!path || (!data && n > 0))
        return HG_ERRORF(HG_EINVAL, "hg_file_write: NULL argument");
    atomic_file a;
    int rc = af_open(&a, path);
    if (rc != HG_OK)
        return rc;
    HG_CHECK(af_write(&a, data, n));
    return af_commit(&a);
done:
    af_abort(&a);
    return rc;
}

int hg_file_read(const char *path, char **buf, size_t *len)
{
    hg_quoted q;
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EIO, "%s: cannot open: %s", hg_quote(&q, path), strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - 1 - n, f);
        if (n < cap - 1)
            break;
        char *nb = realloc(b, 2 * cap);
        if (!nb)
            free(b);
        b = nb;
        cap *= 2;
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!b)
        return HG_ERRORF(HG_ENOMEM, "%s: out of memory", hg_quote(&q, path));
    if (err) {
        free(b);
        return HG_ERRORF(HG_EIO, "%s: cannot read: %s", hg_quote(&q, path), strerror(err));
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return HG_OK;
}

int hg_text_write(const char *path, const char *text)
{
    if (!text)
        return HG_ERRORF(HG_EINVAL, "hg_text_write: NULL argument");
    return hg_file_write(path, text, strlen(text));
}

/* ---- Checkpoints --------------------------------------------------------------------------- */

size_t hg_dtype_size(hg_dtype t)
{
    return t == HG_DTYPE_U64 ? 8 : 4;
}

/* Host values of a dtype <-> little-endian bytes. */
static void values_to_le(unsigned char *b, const void *x, hg_dtype t, size_t n)
{
    if (t == HG_DTYPE_F32) {
        floats_to_le(b, x, n);
        return;
    }
    const uint64_t *u = x;
    for (size_t i = 0; i < n; i++)
        put_u64(b + 8 * i, u[i]);
}

static void values_from_le(void *x, const unsigned char *b, hg_dtype t, size_t n)
{
    if (t == HG_DTYPE_F32) {
        floats_from_le(x, b, n);
        return;
    }
    uint64_t *u = x;
    for (size_t i = 0; i < n; i++)
        u[i] = get_u64(b + 8 * i);
}

/* Argument checks shared by writer and reader. */
static int check_entries(const char *who, int64_t n, const hg_ckpt_entry *e)
{
    if (n < 0 || (n > 0 && !e))
        return HG_ERRORF(HG_EINVAL, "%s: bad tensor list (n=%lld)", who, (long long)n);
    for (int64_t t = 0; t < n; t++) {
        size_t len = e[t].name ? strlen(e[t].name) : 0;
        if (len == 0 || len > HG_CKPT_MAX_NAME)
            return HG_ERRORF(HG_EINVAL, "%s: tensor %lld: name empty or longer than %d bytes", who,
                             (long long)t, HG_CKPT_MAX_NAME);
        if (e[t].dtype != HG_DTYPE_F32 && e[t].dtype != HG_DTYPE_U64)
            return HG_ERRORF(HG_EINVAL, "%s: tensor '%s': bad dtype %d", who, e[t].name,
                             (int)e[t].dtype);
        if (e[t].count < 0 || e[t].count > INT64_MAX / 8)
            return HG_ERRORF(HG_EINVAL, "%s: tensor '%s': bad count %lld", who, e[t].name,
                             (long long)e[t].count);
        for (int64_t u = 0; u < t; u++)
            if (strcmp(e[u].name, e[t].name) == 0)
                return HG_ERRORF(HG_EINVAL, "%s: tensor name '%s' given twice", who, e[t].name);
    }
    return HG_OK;
}

/* A host buffer for the largest of the n tensors (at least one byte). */
static void *largest_buffer(int64_t n, const hg_ckpt_entry *e)
{
    size_t most = 1;
    for (int64_t t = 0; t < n; t++)
        most = HG_MAX(most, (size_t)e[t].count * hg_dtype_size(e[t].dtype));
    return hg_calloc(most, 1, "checkpoint tensor buffer");
}

int hg_ckpt_save(const char *path, int64_t n, const hg_ckpt_entry *e, hg_ckpt_get_fn get,
                 void *ctx, const char *meta_json)
{
    if (!path || !get)
        return HG_ERRORF(HG_EINVAL, "hg_ckpt_save: NULL %s", path ? "get" : "path");
    int rc = check_entries(path, n, e);
    if (rc != HG_OK)
        return rc;
    const char *meta = meta_json ? meta_json : "";
    size_t meta_len = strlen(meta);
    unsigned char *host = largest_buffer(n, e);
    if (!host)
        return HG_ENOMEM;

    atomic_file a;
    rc = af_open(&a, path);
    if (rc != HG_OK) {
        hg_free(host);
        return rc;
    }
    unsigned char b[16];
    unsigned char chunk[8 * IO_CHUNK_FLOATS];
    HG_CHECK(af_write(&a, HG_CKPT_MAGIC, 8)); /* 7 characters and the NUL */
    put_u32(b, HG_CKPT_VERSION);
    put_u32(b + 4, 0);
    put_u64(b + 8, (uint64_t)meta_len);
    HG_CHECK(af_write(&a, b, 16));
    HG_CHECK(af_write(&a, meta, meta_len));
    put_u64(b, (uint64_t)n);
    HG_CHECK(af_write(&a, b, 8));
    for (int64_t t = 0; t < n; t++) {
        size_t len = strlen(e[t].name), es = hg_dtype_size(e[t].dtype);
        put_u32(b, (uint32_t)len);
        HG_CHECK(af_write(&a, b, 4));
        HG_CHECK(af_write(&a, e[t].name, len));
        put_u32(b, (uint32_t)e[t].dtype);
        put_u64(b + 4, (uint64_t)e[t].count);
        HG_CHECK(af_write(&a, b, 12));
        HG_CHECK(get(ctx, t, host));
        for (int64_t done = 0; done < e[t].count;) {
            size_t m = (size_t)HG_MIN(e[t].count - done, (int64_t)IO_CHUNK_FLOATS);
            values_to_le(chunk, host + (size_t)done * es, e[t].dtype, m);
            HG_CHECK(af_write(&a, chunk, m * es));
            done += (int64_t)m;
        }
    }
    put_u64(b, a.hash);
    HG_CHECK(af_write(&a, b, 8));
    rc = af_commit(&a);
    hg_free(host);
    return rc;
done:
    af_abort(&a);
    hg_free(host);
    return rc;
}

/* Sequential reader that hashes what it reads and knows how many bytes the file has left, so a
 * corrupted length is reported as truncation before any read is attempted. */
typedef struct ckpt_reader {
    FILE *f;
    const char *path;
    uint64_t hash;
    uint64_t left; /* bytes not yet read */
} ckpt_reader;

/* Read n bytes into dst (NULL: discard); hash them if `hash`. */
static int rd_bytes(ckpt_reader *r, void *dst, uint64_t n, int hash, const char *what)
{
    unsigned char b[4 * IO_CHUNK_FLOATS];
    if (n > r->left)
        return HG_ERRORF(HG_EFORMAT,
                         "%s: truncated checkpoint: %s needs %" PRIu64 " bytes, %" PRIu64
                         " left",
                         r->path, what, n, r->left);
    while (n > 0) {
        size_t m = n < sizeof b ? (size_t)n : sizeof b;
        unsigned char *p = dst ? (unsigned char *)dst : b;
        if (fread(p, 1, m, r->f) != m) {
            if (ferror(r->f))
                return HG_ERRORF(HG_EIO, "%s: read error: %s", r->path, strerror(errno));
            return HG_ERRORF(HG_EFORMAT, "%s: truncated checkpoint while reading %s", r->path,
                             what);
        }
        if (hash)
            r->hash = hg_fnv1a64(r->hash, p, m);
        r->left -= m;
        n -= m;
        if (dst)
            dst = (unsigned char *)dst + m;
    }
    return HG_OK;
}

/* Read count little-endian values of type t into x (NULL: discard). */
static int rd_values(ckpt_reader *r, void *x, hg_dtype t, uint64_t count, const char *what)
{
    unsigned char b[8 * IO_CHUNK_FLOATS];
    size_t es = hg_dtype_size(t);
    if (count > r->left / es)
        return HG_ERRORF(HG_EFORMAT,
                         "%s: truncated checkpoint: %s needs %" PRIu64 " values, %" PRIu64
                         " bytes left",
                         r->path, what, count, r->left);
    while (count > 0) {
        size_t m = count < IO_CHUNK_FLOATS ? (size_t)count : IO_CHUNK_FLOATS;
        int rc = rd_bytes(r, b, es * m, 1, what);
        if (rc != HG_OK)
            return rc;
        if (x) {
            values_from_le(x, b, t, m);
            x = (unsigned char *)x + es * m;
        }
        count -= m;
    }
    return HG_OK;
}

/* What one pass over the file is asked for. */
typedef struct ckpt_request {
    int64_t n;
    const hg_ckpt_entry *e;
    hg_ckpt_put_fn put;
    void *ctx;
    unsigned char *seen; /* (n) */
    void *host;          /* the largest requested tensor */
    char *meta;
    size_t meta_cap, *meta_len;
} ckpt_request;

/* One pass over the file. fill == 0: check everything, deliver nothing (seen[] marks the
 * requested tensors found). fill == 1: also deliver tensors and meta. Structural errors
 * (truncation, bad magic) stop at once; mismatches with the request are kept until the checksum
 * has been verified, so a corrupted file is reported as corrupted rather than as a mismatch. */
static int ckpt_pass(ckpt_reader *r, int fill, const ckpt_request *q)
{
    int rc = HG_OK, bad_rc = HG_OK;
    char bad_msg[512] = "";
    unsigned char b[16];
    char name[HG_CKPT_MAX_NAME + 1], shown[HG_CKPT_MAX_NAME + 1];

    HG_CHECK(rd_bytes(r, b, 8, 1, "the magic"));
    if (memcmp(b, HG_CKPT_MAGIC, 8) != 0) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: bad magic: not an hgnn checkpoint", r->path);
        goto done;
    }
    HG_CHECK(rd_bytes(r, b, 16, 1, "the header"));
    /* version 1: the tensor count; version 2: a reserved zero (the count follows the meta) */
    uint32_t version = get_u32(b);
    uint64_t ntensors = get_u32(b + 4), mlen = get_u64(b + 8);
    if (version != 1 && version != HG_CKPT_VERSION) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: unsupported checkpoint version %" PRIu32
                       " (expected 1 or %u)", r->path, version, HG_CKPT_VERSION);
        goto done;
    }
    if (version == HG_CKPT_VERSION && ntensors != 0) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: corrupt version-%u header (reserved field %" PRIu64
                       " is not 0)", r->path, HG_CKPT_VERSION, ntensors);
        goto done;
    }
    if (mlen > r->left) {
        rc = HG_ERRORF(HG_EFORMAT,
                       "%s: truncated checkpoint: meta of %" PRIu64 " bytes, %" PRIu64 " left",
                       r->path, mlen, r->left);
        goto done;
    }
    if (fill && q->meta_cap > 0) {
        size_t keep = mlen < q->meta_cap - 1 ? (size_t)mlen : q->meta_cap - 1;
        HG_CHECK(rd_bytes(r, q->meta, keep, 1, "the meta JSON"));
        q->meta[keep] = '\0';
        HG_CHECK(rd_bytes(r, NULL, mlen - keep, 1, "the meta JSON"));
    } else {
        HG_CHECK(rd_bytes(r, NULL, mlen, 1, "the meta JSON"));
    }
    if (fill && q->meta_len)
        *q->meta_len = (size_t)mlen;
    if (version != 1) {
        HG_CHECK(rd_bytes(r, b, 8, 1, "the tensor count"));
        ntensors = get_u64(b);
    }

    for (uint64_t k = 0; k < ntensors; k++) {
        HG_CHECK(rd_bytes(r, b, 4, 1, "a tensor name length"));
        uint32_t len = get_u32(b);
        if (len == 0 || len > HG_CKPT_MAX_NAME) {
            rc = HG_ERRORF(HG_EFORMAT, "%s: tensor %" PRIu64 ": bad name length %" PRIu32,
                           r->path, k, len);
            goto done;
        }
        HG_CHECK(rd_bytes(r, name, len, 1, "a tensor name"));
        name[len] = '\0';
        for (uint32_t i = 0; i <= len; i++) /* for messages: printable ASCII only */
            shown[i] = i == len ? '\0' : name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
        uint32_t dtype = HG_DTYPE_F32;
        if (version != 1) {
            HG_CHECK(rd_bytes(r, b, 4, 1, "a tensor dtype"));
            dtype = get_u32(b);
            if (dtype != HG_DTYPE_F32 && dtype != HG_DTYPE_U64) {
                rc = HG_ERRORF(HG_EFORMAT, "%s: tensor '%s': unknown dtype %" PRIu32, r->path,
                               shown, dtype);
                goto done;
            }
        }
        HG_CHECK(rd_bytes(r, b, 8, 1, "a tensor count"));
        uint64_t count = get_u64(b);
        int64_t want = -1;
        for (int64_t t = 0; t < q->n; t++)
            if (strlen(q->e[t].name) == len && memcmp(q->e[t].name, name, len) == 0) {
                want = t;
                break;
            }
        if (want >= 0 && bad_rc == HG_OK) {
            const hg_ckpt_entry *w = &q->e[want];
            if (q->seen[want] && !fill) {
                bad_rc = HG_EFORMAT;
                snprintf(bad_msg, sizeof bad_msg, "%s: tensor '%s' stored twice", r->path, shown);
            } else if (count != (uint64_t)w->count || dtype != (uint32_t)w->dtype) {
                bad_rc = HG_EFORMAT;
                snprintf(bad_msg, sizeof bad_msg,
                         "%s: tensor '%s' has %" PRIu64 " values%s, expected %lld", r->path,
                         shown, count, dtype != (uint32_t)w->dtype ? " of another type" : "",
                         (long long)w->count);
            }
            q->seen[want] = 1;
        }
        int deliver = fill && want >= 0 && bad_rc == HG_OK;
        HG_CHECK(rd_values(r, deliver ? q->host : NULL, (hg_dtype)dtype, count, shown));
        if (deliver)
            HG_CHECK(q->put(q->ctx, want, q->host));
    }

    uint64_t computed = r->hash;
    HG_CHECK(rd_bytes(r, b, 8, 0, "the checksum"));
    uint64_t stored = get_u64(b);
    if (stored != computed) {
        rc = HG_ERRORF(HG_EFORMAT,
                       "%s: checksum mismatch (stored %016" PRIx64 ", computed %016" PRIx64
                       "): the checkpoint is corrupted",
                       r->path, stored, computed);
        goto done;
    }
    if (r->left != 0) {
        rc = HG_ERRORF(HG_EFORMAT, "%s: %" PRIu64 " unexpected bytes after the checksum", r->path,
                       r->left);
        goto done;
    }
    if (bad_rc != HG_OK) {
        rc = HG_ERRORF(bad_rc, "%s", bad_msg);
        goto done;
    }
    for (int64_t t = 0; t < q->n; t++)
        if (!q->seen[t] && !q->e[t].optional) {
            rc = HG_ERRORF(HG_EFORMAT, "%s: missing tensor '%s'", r->path, q->e[t].name);
            goto done;
        }
done:
    return rc;
}

int hg_ckpt_load(const char *path, int64_t n, const hg_ckpt_entry *e, hg_ckpt_put_fn put,
                 void *ctx, char *meta, size_t meta_cap, size_t *meta_len)
{
    if (!path || !put)
        return HG_ERRORF(HG_EINVAL, "hg_ckpt_load: NULL %s", path ? "put" : "path");
    if (!meta && meta_cap > 0)
        return HG_ERRORF(HG_EINVAL, "%s: hg_ckpt_load: NULL meta buffer with meta_cap %zu", path,
                         meta_cap);
    int rc = check_entries(path, n, e);
    if (rc != HG_OK)
        return rc;
    ckpt_request q = {n, e, put, ctx, NULL, NULL, meta, meta_cap, meta_len};
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EIO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = HG_ERRORF(HG_EIO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = HG_ERRORF(HG_EIO, "%s: not a regular file", path);
        goto done;
    }
    q.seen = hg_calloc((size_t)HG_MAX(n, 1), 1, "checkpoint tensor flags");
    q.host = largest_buffer(n, e);
    if (!q.seen || !q.host) {
        rc = HG_ENOMEM;
        goto done;
    }
    for (int fill = 0; fill <= 1; fill++) {
        if (fill) {
            rewind(f);
            memset(q.seen, 0, (size_t)n);
        }
        ckpt_reader r = {f, path, HG_FNV64_OFFSET, (uint64_t)st.st_size};
        HG_CHECK(ckpt_pass(&r, fill, &q));
    }
done:
    hg_free(q.seen);
    hg_free(q.host);
    fclose(f);
    return rc;
}

/* ---- Checkpoints of host float arrays ---- */

typedef struct array_io {
    const float *const *src;
    float *const *dst;
    const int64_t *counts;
} array_io;

static int array_get(void *ctx, int64_t i, void *host_dst)
{
    const array_io *a = ctx;
    if (a->counts[i] > 0)
        memcpy(host_dst, a->src[i], (size_t)a->counts[i] * sizeof(float));
    return HG_OK;
}

static int array_put(void *ctx, int64_t i, const void *host_src)
{
    const array_io *a = ctx;
    if (a->counts[i] > 0)
        memcpy(a->dst[i], host_src, (size_t)a->counts[i] * sizeof(float));
    return HG_OK;
}

/* *out: entries for n float arrays (names, counts and data pointers checked). */
static int array_entries(hg_ckpt_entry **out, const char *path, int n, const char *const *names,
                         const void *const *data, const int64_t *counts)
{
    *out = NULL;
    if (n < 0 || (n > 0 && (!names || !data || !counts)))
        return HG_ERRORF(HG_EINVAL, "%s: bad tensor list (n=%d)", path, n);
    for (int t = 0; t < n; t++)
        if (counts[t] > 0 && !data[t])
            return HG_ERRORF(HG_EINVAL, "%s: tensor '%s': NULL data", path,
                             names[t] ? names[t] : "(null)");
    hg_ckpt_entry *e = hg_calloc((size_t)HG_MAX(n, 1), sizeof *e, "checkpoint tensor list");
    if (!e)
        return HG_ENOMEM;
    for (int t = 0; t < n; t++)
        e[t] = (hg_ckpt_entry){names[t], HG_DTYPE_F32, counts[t], 0};
    *out = e;
    return HG_OK;
}

int hg_ckpt_write(const char *path, int n, const char *const *names, const float *const *data,
                  const int64_t *counts, const char *meta_json)
{
    if (!path)
        return HG_ERRORF(HG_EINVAL, "hg_ckpt_write: NULL path");
    hg_ckpt_entry *e;
    int rc = array_entries(&e, path, n, names, (const void *const *)data, counts);
    if (rc != HG_OK)
        return rc;
    array_io a = {data, NULL, counts};
    rc = hg_ckpt_save(path, n, e, array_get, &a, meta_json);
    hg_free(e);
    return rc;
}

int hg_ckpt_read(const char *path, int n, const char *const *names, float *const *data,
                 const int64_t *counts, char *meta, size_t meta_cap, size_t *meta_len)
{
    if (!path)
        return HG_ERRORF(HG_EINVAL, "hg_ckpt_read: NULL path");
    hg_ckpt_entry *e;
    int rc = array_entries(&e, path, n, names, (const void *const *)data, counts);
    if (rc != HG_OK)
        return rc;
    array_io a = {NULL, data, counts};
    rc = hg_ckpt_load(path, n, e, array_put, &a, meta, meta_cap, meta_len);
    hg_free(e);
    return rc;
}

/* ---- Directories --------------------------------------------------------------------------- */

static int mkdir_one(const char *full, const char *dir)
{
    if (mkdir(dir, 0777) == 0)
        return HG_OK;
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return HG_OK;
        e = ENOTDIR;
    }
    return HG_ERRORF(HG_EIO, "%s: cannot create directory %s: %s", full, dir, strerror(e));
}

int hg_mkdir_p(const char *path)
{
    if (!path || !path[0])
        return HG_ERRORF(HG_EINVAL, "hg_mkdir_p: empty path");
    size_t len = strlen(path);
    int rc = HG_OK;
    char *tmp = hg_calloc(len + 1, 1, "directory path");
    if (!tmp)
        return HG_ENOMEM;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        rc = mkdir_one(path, tmp);
        *p = '/';
        if (rc != HG_OK)
            goto done;
    }
    rc = mkdir_one(path, tmp);
done:
    hg_free(tmp);
    return rc;
}
