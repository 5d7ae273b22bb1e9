/* backend.h - inside kernels/: the device backend's function table and the CPU bodies of the ops,
 * both generated from the op lists (ops_*.def), and the loader's interface to a backend module.
 *
 * A backend (today the CUDA one, kernels/cuda*.cu) fills one hg_kbackend: its lifecycle
 * functions and one body per op, each with the op's exact parameters. hg_kctx_init gets the
 * table (from the module libhgnn-cuda.so, or linked in when built with HG_CUDA_BUILTIN, as the
 * emulated backend of tests/ is) and stores it in hg_kctx.backend; every hg_k_X then calls
 * k->backend->X, or the CPU body hg_cpu_X on a CPU context. */
#ifndef HG_KERNELS_BACKEND_H
#define HG_KERNELS_BACKEND_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Raised whenever the table's layout, an op's parameters or hg_kctx's layout change, so that a
 * module built from other sources is refused rather than called with wrong arguments (5: the
 * context's precision). */
#define HG_KBACKEND_ABI 5

typedef struct hg_kbackend {
    uint32_t abi;  /* HG_KBACKEND_ABI of the sources the backend was built from */
    uint32_t size; /* sizeof(hg_kbackend) there */
    /* 1 when a device is present (no context needed). */
    int (*available)(void);
    /* Open a context on the device: sets k->device and k->device_state; HG_ECUDA/HG_ENOMEM
     * recorded on failure (k then left a CPU context). */
    int (*init)(hg_kctx *k);
    void (*destroy)(hg_kctx *k);
    /* Device allocations made so far through k (its scratch included): tests check that a
     * training step after the first makes none. */
    int64_t (*num_allocs)(const hg_kctx *k);
#define HG_KOP(name, params, args) void(*name) params;
#define HG_KOPR(type, name, params, args) type(*name) params;
#include "ops_core.def"
#include "ops_sparse.def"
#include "ops_lorentz.def"
#include "ops_nn.def"
#undef HG_KOP
#undef HG_KOPR
} hg_kbackend;

/* What the executable lends a loaded module: its error recording (src/hg.h), so that messages
 * recorded by the backend reach the caller's hg_last_error(). */
typedef struct hg_khost {
    int (*error_set)(int status, const char *fmt, ...);
    const char *(*last_error)(void);
} hg_khost;

/* The one symbol a backend module exports: its table, given the host's services. */
#define HG_KBACKEND_MODULE_ENTRY "hg_kbackend_cuda_module"
typedef const hg_kbackend *(*hg_kbackend_module_entry)(const hg_khost *host);

/* The CPU bodies: hg_cpu_X for every op X (kernels/core.c, sparse.c, lorentz_ops.c,
 * lorentz_layer.c, lorentz_decoder.c, nn.c). */
#define HG_KOP(name, params, args) void hg_cpu_##name params;
#define HG_KOPR(type, name, params, args) type hg_cpu_##name params;
#include "ops_core.def"
#include "ops_sparse.def"
#include "ops_lorentz.def"
#include "ops_nn.def"
#undef HG_KOP
#undef HG_KOPR

/* Device allocations made through k (0 on the CPU): see hg_kbackend.num_allocs. */
int64_t hg_k_device_allocs(const hg_kctx *k);

/* The reference kernels (reference.h) run on the CPU only: called with a device context they
 * print the kernel's name and abort. */
void hg_k_cpu_only_abort(const char *name) __attribute__((noreturn));
#define HG_K_CPU_ONLY(k, name)             \
    do {                                   \
        if ((k)->backend)                  \
            hg_k_cpu_only_abort(name);     \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
