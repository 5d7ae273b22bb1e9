/* registry.c - named tensors and their checkpoints (see registry.h). */
#include "registry.h"

#include <string.h>

#include "hg.h"

void hg_registry_init(hg_registry *r)
{
    memset(r, 0, sizeof *r);
}

void hg_registry_destroy(hg_registry *r)
{
    for (int64_t i = 0; i < r->n; i++)
        hg_free(r->t[i].name);
    hg_free(r->t);
    memset(r, 0, sizeof *r);
}

/* Append a copy of t named name (the checks of hg_registry_add). */
static int add(hg_registry *r, const char *name, const hg_tensor *t)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > HG_CKPT_MAX_NAME)
        return HG_ERRORF(HG_EINVAL, "tensor registry: name '%s' empty or longer than %d bytes",
                         name ? name : "(null)", HG_CKPT_MAX_NAME);
    if (t->count < 0 || (t->dtype != HG_DTYPE_F32 && t->dtype != HG_DTYPE_U64))
        return HG_ERRORF(HG_EINVAL, "tensor registry: '%s': bad count %lld or dtype %d", name,
                         (long long)t->count, (int)t->dtype);
    if (hg_registry_find(r, name) >= 0)
        return HG_ERRORF(HG_EINVAL, "tensor registry: name '%s' registered twice", name);
    if (r->n == r->cap) {
        int64_t cap = r->cap ? 2 * r->cap : 64;
        hg_tensor *grown = hg_calloc((size_t)cap, sizeof *grown, "tensor registry");
        if (!grown)
            return HG_ENOMEM;
        if (r->n)
            memcpy(grown, r->t, (size_t)r->n * sizeof *grown);
        hg_free(r->t);
        r->t = grown;
        r->cap = cap;
    }
    char *copy = hg_calloc(len + 1, 1, "tensor name");
    if (!copy)
        return HG_ENOMEM;
    memcpy(copy, name, len);
    r->t[r->n] = *t;
    r->t[r->n].name = copy;
    r->n++;
    return HG_OK;
}

int hg_registry_add(hg_registry *r, const char *name, hg_dtype dtype, void *data, int64_t count,
                    const hg_kctx *k, unsigned flags)
{
    if (!data && count > 0)
        return HG_ERRORF(HG_EINVAL, "tensor registry: '%s': NULL data", name ? name : "(null)");
    hg_tensor t = {NULL, dtype, count, flags, data, k, NULL, NULL, NULL, 0};
    return add(r, name, &t);
}

int hg_registry_add_io(hg_registry *r, const char *name, hg_dtype dtype, int64_t count,
                       hg_tensor_read_fn read, hg_tensor_write_fn write, void *obj, int64_t index,
                       unsigned flags)
{
    if (!read || !write)
        return HG_ERRORF(HG_EINVAL, "tensor registry: '%s': NULL read or write",
                         name ? name : "(null)");
    hg_tensor t = {NULL, dtype, count, flags, NULL, NULL, read, write, obj, index};
    return add(r, name, &t);
}

int hg_registry_add_as(hg_registry *r, const char *name, const hg_tensor *t)
{
    return add(r, name, t);
}

int64_t hg_registry_find(const hg_registry *r, const char *name)
{
    for (int64_t i = 0; i < r->n; i++)
        if (strcmp(r->t[i].name, name) == 0)
            return i;
    return -1;
}

size_t hg_tensor_bytes(const hg_tensor *t)
{
    return (size_t)t->count * hg_dtype_size(t->dtype);
}

size_t hg_registry_bytes(const hg_registry *r, unsigned skip)
{
    size_t b = 0;
    for (int64_t i = 0; i < r->n; i++)
        if (!(r->t[i].flags & skip))
            b += hg_tensor_bytes(&r->t[i]);
    return b;
}

void hg_registry_read(const hg_registry *r, int64_t i, void *host_dst)
{
    const hg_tensor *t = &r->t[i];
    size_t bytes = hg_tensor_bytes(t);
    if (t->read)
        t->read(t->obj, t->index, host_dst);
    else if (bytes == 0)
        return;
    else if (t->k)
        hg_k_download(t->k, host_dst, t->data, bytes);
    else
        memcpy(host_dst, t->data, bytes);
}

void hg_registry_write(hg_registry *r, int64_t i, const void *host_src)
{
    hg_tensor *t = &r->t[i];
    size_t bytes = hg_tensor_bytes(t);
    if (t->write)
        t->write(t->obj, t->index, host_src);
    else if (bytes == 0)
        return;
    else if (t->k)
        hg_k_upload(t->k, t->data, host_src, bytes);
    else
        memcpy(t->data, host_src, bytes);
}

void hg_registry_gather(const hg_registry *r, unsigned skip, void *host_dst)
{
    unsigned char *p = host_dst;
    for (int64_t i = 0; i < r->n; i++)
        if (!(r->t[i].flags & skip)) {
            hg_registry_read(r, i, p);
            p += hg_tensor_bytes(&r->t[i]);
        }
}

void hg_registry_scatter(hg_registry *r, unsigned skip, const void *host_src)
{
    const unsigned char *p = host_src;
    for (int64_t i = 0; i < r->n; i++)
        if (!(r->t[i].flags & skip)) {
            hg_registry_write(r, i, p);
            p += hg_tensor_bytes(&r->t[i]);
        }
}

/* The entries without the flags in skip, as checkpoint entries; map[j]: registry index of
 * entry j. */
typedef struct selection {
    hg_registry *r;
    hg_ckpt_entry *e;
    int64_t *map;
    int64_t n;
} selection;

static int select_entries(selection *s, const hg_registry *r, unsigned skip)
{
    memset(s, 0, sizeof *s);
    s->r = (hg_registry *)r;
    s->e = hg_calloc((size_t)HG_MAX(r->n, 1), sizeof *s->e, "checkpoint tensor list");
    s->map = hg_calloc((size_t)HG_MAX(r->n, 1), sizeof *s->map, "checkpoint tensor list");
    if (!s->e || !s->map)
        return HG_ENOMEM;
    for (int64_t i = 0; i < r->n; i++) {
        const hg_tensor *t = &r->t[i];
        if (t->flags & skip)
            continue;
        s->e[s->n] = (hg_ckpt_entry){t->name, t->dtype, t->count,
                                     (t->flags & HG_TENSOR_OPTIONAL) != 0};
        s->map[s->n++] = i;
    }
    return HG_OK;
}

static void selection_free(selection *s)
{
    hg_free(s->e);
    hg_free(s->map);
}

static int sel_get(void *ctx, int64_t j, void *host_dst)
{
    const selection *s = ctx;
    hg_registry_read(s->r, s->map[j], host_dst);
    return HG_OK;
}

static int sel_put(void *ctx, int64_t j, const void *host_src)
{
    const selection *s = ctx;
    hg_registry_write(s->r, s->map[j], host_src);
    return HG_OK;
}

int hg_registry_save(const hg_registry *r, unsigned skip, const char *path, const char *meta_json)
{
    selection s;
    int rc = select_entries(&s, r, skip);
    if (rc == HG_OK)
        rc = hg_ckpt_save(path, s.n, s.e, sel_get, &s, meta_json);
    selection_free(&s);
    return rc;
}

int hg_registry_load(hg_registry *r, unsigned skip, const char *path, char *meta, size_t meta_cap,
                     size_t *meta_len)
{
    selection s;
    int rc = select_entries(&s, r, skip);
    if (rc == HG_OK)
        rc = hg_ckpt_load(path, s.n, s.e, sel_put, &s, meta, meta_cap, meta_len);
    selection_free(&s);
    return rc;
}
