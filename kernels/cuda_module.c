/* cuda_module.c - the entry point of the GPU backend module (libhgnn-cuda.so): the one symbol
 * kernels/backend.c looks up. The module records its errors through the loading program's
 * src/hg.h functions (hg_khost), so that they reach the program's hg_last_error(); these
 * definitions stand in for src/error.c inside the module. */
#include <stdarg.h>
#include <stdio.h>

#include "../src/hg.h"
#include "cuda.h"

static const hg_khost *host;

int hg_error_set(int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return host->error_set(status, "%s", msg);
}

const char *hg_last_error(void) { return host->last_error(); }

__attribute__((visibility("default"))) const hg_kbackend *
hg_kbackend_cuda_module(const hg_khost *h)
{
    host = h;
    return hg_kbackend_cuda();
}
