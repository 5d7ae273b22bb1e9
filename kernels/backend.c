/* backend.c - the ops' dispatch (generated from the op lists), contexts, and the loading of the
 * GPU backend module. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/hg.h"
#include "hg_config.h"

#if !HG_CUDA_BUILTIN
#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>
#endif

/* hg_k_X: the device backend's body on a device context, the CPU body otherwise. */
#define HG_KOP(name, params, args)          \
    void hg_k_##name params                 \
    {                                       \
        if (k->backend)                     \
            k->backend->name args;          \
        else                                \
            hg_cpu_##name args;             \
    }
#define HG_KOPR(type, name, params, args)                           \
    type hg_k_##name params                                         \
    {                                                               \
        return k->backend ? k->backend->name args : hg_cpu_##name args; \
    }
#include "ops_core.def"
#include "ops_sparse.def"
#include "ops_lorentz.def"
#include "ops_nn.def"
#undef HG_KOP
#undef HG_KOPR

void hg_k_cpu_only_abort(const char *name)
{
    fprintf(stderr, "hgnn: internal error: %s is a CPU reference kernel, called with a device "
            "context\n", name);
    abort();
}

int64_t hg_k_device_allocs(const hg_kctx *k) { return k->backend ? k->backend->num_allocs(k) : 0; }

/* ---------------------------------------------------------------- the GPU backend */

#define MODULE_NAME "libhgnn-cuda.so"

#if HG_CUDA_BUILTIN
/* Linked in (the emulated backend of tests/). */
const hg_kbackend *hg_kbackend_cuda(void);

static const hg_kbackend *cuda_backend(char *why, size_t len)
{
    (void)why;
    (void)len;
    return hg_kbackend_cuda();
}
#else
/* One attempt per process: the table, or the reason there is none. */
static int tried;
static const hg_kbackend *loaded;
static char load_error[1024];

static const hg_khost host = {hg_error_set, hg_last_error};

/* Open the module at path: 1 and *be set; 0 when there is no file (why untouched); -1 with why. */
static int open_module(const char *path, const hg_kbackend **be, char *why, size_t len)
{
    if (access(path, F_OK) != 0)
        return 0;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, len, "--device cuda: cannot load the CUDA backend (%.500s); is the CUDA "
                 "runtime installed? (see README, GPU)", dlerror());
        return -1;
    }
    hg_kbackend_module_entry entry;
    *(void **)&entry = dlsym(h, HG_KBACKEND_MODULE_ENTRY);
    const hg_kbackend *t = entry ? entry(&host) : NULL;
    if (!t || t->abi != HG_KBACKEND_ABI || t->size != sizeof(hg_kbackend)) {
        snprintf(why, len, "--device cuda: %.500s is not a CUDA backend of this hgnn (built from "
                 "other sources; rebuild it)", path);
        dlclose(h);
        return -1;
    }
    *be = t; /* stays loaded for the life of the process */
    return 1;
}

static const hg_kbackend *cuda_backend(char *why, size_t len)
{
    if (tried) {
        snprintf(why, len, "%.1000s", load_error);
        return loaded;
    }
    tried = 1;
    char paths[2][PATH_MAX + 32];
    int np = 0;
    const char *env = getenv("HGNN_CUDA_MODULE");
    if (env && env[0]) {
        snprintf(paths[np++], sizeof paths[0], "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash) {
                *slash = '\0';
                snprintf(paths[np++], sizeof paths[0], "%s/%s", exe, MODULE_NAME);
            }
        }
        snprintf(paths[np++], sizeof paths[0], "%s/%s", HG_INSTALL_MODULE_DIR, MODULE_NAME);
    }
    for (int i = 0; i < np && !loaded; i++) {
        int r = open_module(paths[i], &loaded, load_error, sizeof load_error);
        if (r < 0)
            break;
    }
    if (!loaded && !load_error[0]) {
        if (env && env[0])
            snprintf(load_error, sizeof load_error, "--device cuda: no CUDA backend module at "
                     "%.500s (HGNN_CUDA_MODULE; see README, GPU)", env);
        else if (HG_HAVE_CUDA)
            snprintf(load_error, sizeof load_error, "--device cuda: the CUDA backend module "
                     MODULE_NAME " is neither next to the program nor in %s (see README, GPU)",
                     HG_INSTALL_MODULE_DIR);
        else
            snprintf(load_error, sizeof load_error, "--device cuda: this hgnn was built without "
                     "the CUDA backend (the CUDA toolkit was not found at configure time; see "
                     "README, GPU)");
    }
    snprintf(why, len, "%.1000s", load_error);
    return loaded;
}
#endif

int hg_k_cuda_available(void)
{
    char why[1024];
    const hg_kbackend *be = cuda_backend(why, sizeof why);
    return be && be->available();
}

int hg_kctx_init(hg_kctx *k, hg_device device, int threads)
{
    memset(k, 0, sizeof *k);
    k->device = HG_DEVICE_CPU;
    hg_k_set_threads(k, threads);
    if (device == HG_DEVICE_CPU)
        return HG_OK;
    char why[1024];
    const hg_kbackend *be = cuda_backend(why, sizeof why);
    if (!be)
        return HG_ERRORF(HG_EUNSUPPORTED, "%s", why);
    int rc = be->init(k);
    if (rc == HG_OK)
        k->backend = be;
    return rc;
}

void hg_kctx_destroy(hg_kctx *k)
{
    if (k->backend)
        k->backend->destroy(k);
    k->backend = NULL;
    k->device_state = NULL;
    k->device = HG_DEVICE_CPU;
}
