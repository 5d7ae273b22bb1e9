/* cuda_common.h - what the CUDA sources of kernels/ share: the runtime (or its CPU emulation,
 * tests/cuda_emu.h, under HG_CUDA_EMULATE), the backend state behind hg_kctx.device_state, the
 * launch macros and the scratch/reduction helpers. C++ only.
 *
 * Kernel rules (so that the emulation runs them faithfully): 1-D grids and blocks; no warp
 * intrinsics, no atomics. Kernels launched with HG_LAUNCH have independent threads (grid-stride
 * loops over the work items; no shared memory, no barriers); those launched with
 * HG_LAUNCH_BLOCK may use shared memory (static __shared__ arrays, and the launch's dynamic
 * shared memory through HG_DYN_SHARED) and __syncthreads(), reached by every thread of the block
 * the same number of times. Reductions run in fixed orders (block trees of fixed shape, or two
 * passes over fixed chunks: hg_cu_sum_rows): the same inputs give the same bits on every run. */
#ifndef HG_KERNELS_CUDA_COMMON_H
#define HG_KERNELS_CUDA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef HG_CUDA_EMULATE
#include "cuda_emu.h"
#define HG_LAUNCH(kern, grid, block, k)                                                  \
    hg_emu_launch((grid), (block), [&](auto... hg_emu_args) { kern(hg_emu_args...); })
#define HG_LAUNCH_BLOCK(kern, grid, block, smem, k)                                      \
    hg_emu_launch_block((grid), (block), (smem), [&](auto... hg_emu_args) { kern(hg_emu_args...); })
#define HG_DYN_SHARED(type, name) type *name = (type *)hg_emu_dyn_smem
#else
#include <cuda_runtime.h>
#define HG_LAUNCH(kern, grid, block, k) kern<<<(grid), (block), 0, hg_cu_st(k)->stream>>>
/* A launch whose blocks cooperate (shared memory, barriers), with smem bytes of dynamic shared
 * memory. */
#define HG_LAUNCH_BLOCK(kern, grid, block, smem, k)                                      \
    kern<<<(grid), (block), (smem), hg_cu_st(k)->stream>>>
/* The launch's dynamic shared memory as an array of type. */
#define HG_DYN_SHARED(type, name) extern __shared__ type name[]
#endif

extern "C" {
#include "../src/hg.h"
}
#include "cuda.h"

/* Copies between host and device memory, in either direction or within the device. */
typedef enum { HG_CU_H2D = 0, HG_CU_D2H = 1, HG_CU_D2D = 2 } hg_cu_copy_kind;
void hg_cu_memcpy(const hg_kctx *k, void *dst, const void *src, size_t bytes, hg_cu_copy_kind kind);

/* Threads per block of every launch, and the most blocks a grid-stride launch asks for. */
#define HG_CU_BLOCK 256
#define HG_CU_MAX_BLOCKS 4096

typedef struct hg_cu_state {
    cudaStream_t stream;
    void *lib;            /* cuda_lib.cu's handles and cuSPARSE descriptor cache */
    char name[256];       /* the GPU's name */
    int error;            /* sticky: the first failure of asynchronous work (HG_ECUDA) */
    char msg[256];        /* its message, reported again by hg_k_sync */
    int64_t nallocs;      /* device allocations made through this context */
    void *scratch;        /* device scratch of the kernels, grown on demand (first step) */
    size_t scratch_bytes;
    double *host;         /* pinned host doubles: scalar results coming back */
} hg_cu_state;

static inline hg_cu_state *hg_cu_st(const hg_kctx *k) { return (hg_cu_state *)k->device_state; }

/* Global index and stride of a grid-stride loop. */
#define HG_CU_TID ((int64_t)blockIdx.x * blockDim.x + threadIdx.x)
#define HG_CU_STRIDE ((int64_t)gridDim.x * blockDim.x)

/* Blocks for n work items (at least 1, at most HG_CU_MAX_BLOCKS: grid-stride loops do the rest). */
static inline unsigned hg_cu_blocks(int64_t n)
{
    int64_t b = (n + HG_CU_BLOCK - 1) / HG_CU_BLOCK;
    return (unsigned)(b < 1 ? 1 : b > HG_CU_MAX_BLOCKS ? HG_CU_MAX_BLOCKS : b);
}

/* Record a failure of the backend (HG_ECUDA with the formatted message): the first one sticks,
 * and hg_k_sync reports it. Returns -1. */
int hg_cu_fail(const hg_kctx *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* hg_cu_fail for a failed CUDA call; 0 on success. */
int hg_cu_check(const hg_kctx *k, cudaError_t e, const char *what);
/* Check the last launch. */
#define HG_CU_LAUNCHED(k, what) hg_cu_check((k), cudaGetLastError(), (what))

/* Device scratch of at least `bytes`, valid until the next hg_cu_* call that asks for scratch
 * (the library wrappers hg_cu_gemm, hg_cu_csr_spmm and hg_cu_svd never do).
 * It grows (a device allocation) only when a call needs more than any before: in the first
 * training step. NULL (error recorded) when that allocation fails. */
void *hg_cu_scratch(const hg_kctx *k, size_t bytes);

/* Deterministic sums over rows: out[j] (=) sum_i X[i * ld + j] for j < d, i < n, summed in double
 * over fixed chunks of rows, then the chunks in order. `accumulate`: out (+=) instead.
 * X float or double (hg_cu_sum_rows_d). tmp: scratch of hg_cu_sum_rows_tmp(n, d) doubles, not
 * overlapping out (callers carve it from hg_cu_scratch). */
int64_t hg_cu_sum_rows_tmp(int64_t n, int64_t d);
void hg_cu_sum_rows(const hg_kctx *k, double *out, const float *X, int64_t n, int64_t d,
                    int64_t ld, double *tmp);
void hg_cu_sum_rows_d(const hg_kctx *k, double *out, const double *X, int64_t n, int64_t d,
                      int64_t ld, double *tmp);
/* dst[j] (+=) (float)src[j] (device), j < n: a double result added into a float gradient. */
void hg_cu_add_d2f(const hg_kctx *k, float *dst, const double *src, int64_t n);
/* Drop cuda_lib.cu's cached sparse-matrix state that refers to p (called when p is freed). */
void hg_cu_forget_matrix(const hg_kctx *k, const void *p);
/* The double at src (device memory) on the host: waits for the stream. NAN after an error. */
double hg_cu_fetch_double(const hg_kctx *k, const double *src);


/* The dropout mask of element i (kernels/core.c's hg_k_dropout_scale, bit for bit): 0 or
 * 1/(1-p) from a splitmix64 hash of (seed, i). */
__host__ __device__ static inline float hg_cu_dropout_scale(int64_t i, float p, uint64_t seed)
{
    if (p <= 0.0f)
        return 1.0f;
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z = (z ^ (z >> 31)) >> 11;
    const uint64_t threshold = (uint64_t)((double)p * 9007199254740992.0); /* p * 2^53 */
    return z < threshold ? 0.0f : 1.0f / (1.0f - p);
}

#endif
