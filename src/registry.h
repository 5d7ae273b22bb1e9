/* registry.h - a growable list of named tensors: what a model, its optimiser and a training
 * run must keep to be saved, restored or compared.
 *
 * An entry names a tensor and says how to reach it: either a pointer with the kernel context
 * whose memory holds it (host memory when the context is NULL or a CPU one; copied with
 * hg_k_download / hg_k_upload otherwise), or a pair of callbacks that copy it to and from host
 * memory (for tensors that live behind another module's interface). Entries are added at setup
 * (adding allocates); reading and writing them allocate nothing. Names are unique.
 * Checkpoints of a registry use the file format of io.h. */
#ifndef HG_REGISTRY_H
#define HG_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/kernels.h"
#include "io.h"

/* Entry flags. */
enum {
    /* A checkpoint without this tensor still loads (the tensor keeps its value): state added
       after older checkpoints were written. */
    HG_TENSOR_OPTIONAL = 1u << 0,
    /* Part of a run's resumable state only (generators, counters, host copies), not of the
       model: left out of model snapshots and best-model checkpoints. */
    HG_TENSOR_RUN = 1u << 1,
};

/* Copy tensor `index` of obj to / from host memory (count elements of the entry's dtype). */
typedef void (*hg_tensor_read_fn)(const void *obj, int64_t index, void *host_dst);
typedef void (*hg_tensor_write_fn)(void *obj, int64_t index, const void *host_src);

typedef struct hg_tensor {
    char *name;           /* owned copy */
    hg_dtype dtype;
    int64_t count;        /* elements */
    unsigned flags;       /* HG_TENSOR_* */
    void *data;           /* the tensor in k's memory, or NULL when reached through read/write */
    const hg_kctx *k;     /* NULL: data is host memory */
    hg_tensor_read_fn read;
    hg_tensor_write_fn write;
    void *obj;            /* first argument of read/write */
    int64_t index;        /* second argument of read/write */
} hg_tensor;

typedef struct hg_registry {
    hg_tensor *t;
    int64_t n, cap;
} hg_registry;

void hg_registry_init(hg_registry *r);
void hg_registry_destroy(hg_registry *r); /* safe on a zeroed or initialised registry */

/* Add a tensor of count elements at data, in k's memory (k NULL: host memory).
 * Errors: HG_EINVAL (name empty, longer than HG_CKPT_MAX_NAME or already present; negative
 * count; NULL data with count > 0), HG_ENOMEM. */
int hg_registry_add(hg_registry *r, const char *name, hg_dtype dtype, void *data, int64_t count,
                    const hg_kctx *k, unsigned flags);
/* Add a tensor reached through read(obj, index, .) and write(obj, index, .).
 * Errors: as hg_registry_add (NULL read or write: HG_EINVAL). */
int hg_registry_add_io(hg_registry *r, const char *name, hg_dtype dtype, int64_t count,
                       hg_tensor_read_fn read, hg_tensor_write_fn write, void *obj, int64_t index,
                       unsigned flags);
/* Add a copy of entry t under another name (e.g. a prefixed one). Errors: as hg_registry_add. */
int hg_registry_add_as(hg_registry *r, const char *name, const hg_tensor *t);

/* Index of the entry called name, or -1. */
int64_t hg_registry_find(const hg_registry *r, const char *name);
/* Bytes of entry i's values on the host. */
size_t hg_tensor_bytes(const hg_tensor *t);
/* Bytes of every entry that has none of the flags in skip. */
size_t hg_registry_bytes(const hg_registry *r, unsigned skip);

/* Copy entry i to / from host memory (hg_tensor_bytes of it). */
void hg_registry_read(const hg_registry *r, int64_t i, void *host_dst);
void hg_registry_write(hg_registry *r, int64_t i, const void *host_src);
/* Copy every entry without the flags in skip, in order, to / from one host buffer of
 * hg_registry_bytes(r, skip) bytes. */
void hg_registry_gather(const hg_registry *r, unsigned skip, void *host_dst);
void hg_registry_scatter(hg_registry *r, unsigned skip, const void *host_src);

/* Write every entry without the flags in skip to a checkpoint at path (io.h's format, atomic),
 * with meta_json (NULL: ""). Errors: those of hg_ckpt_save. */
int hg_registry_save(const hg_registry *r, unsigned skip, const char *path, const char *meta_json);
/* Load every entry without the flags in skip from the checkpoint at path (version 1 or 2):
 * each must be present with its dtype and count unless HG_TENSOR_OPTIONAL. The file is checked
 * in full before any entry is written. meta, meta_cap, meta_len: as hg_ckpt_load.
 * Errors: those of hg_ckpt_load (the message names the path and the tensor). */
int hg_registry_load(hg_registry *r, unsigned skip, const char *path, char *meta, size_t meta_cap,
                     size_t *meta_len);

#endif
