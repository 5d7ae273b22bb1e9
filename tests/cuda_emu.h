/* cuda_emu.h - the part of the CUDA runtime the backend uses, emulated on the CPU, so that
 * kernels/cuda*.cu build with a C++ compiler and run their kernels (serially, block by block,
 * thread by thread) on machines without a GPU. What it checks: every kernel's indexing,
 * arithmetic, reductions and launch configuration, the backend's memory handling and its
 * agreement with the CPU kernels. What it cannot: timing, races, and the library calls (cuBLAS,
 * cuSPARSE, cuSOLVER), which tests/cuda_emu_lib.cpp replaces by the CPU kernels.
 *
 * Two launch modes (kernels/cuda_common.h). HG_LAUNCH: each thread runs to its end, one after
 * the other (no shared memory, no barriers: __syncthreads() there aborts). HG_LAUNCH_BLOCK: the
 * threads of a block run as coroutines (tests/cuda_emu.cpp) in phases: each runs until its next
 * __syncthreads() or its end, in thread order, before any goes past that barrier; a block whose
 * threads do not all reach the same barriers aborts (a divergent barrier, undefined on a GPU).
 * __shared__ variables are static (blocks run one at a time, so one copy is the block's), the
 * dynamic shared memory one buffer per launch, filled with a NaN pattern at each block's start
 * so that a read before any write shows. No warp intrinsics, no atomics.
 *
 * Device memory is host address space that only the emulated device may touch (cuda_emu.cpp). */
#ifndef HG_TESTS_CUDA_EMU_H
#define HG_TESTS_CUDA_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Device memory is inaccessible outside launches, copies and library calls (tests/cuda_emu.cpp):
 * host code that reads it crashes, as with a real GPU. */
extern "C" {
void hg_emu_open(void);
void hg_emu_close(void);
void *hg_emu_dev_alloc(size_t bytes);
void hg_emu_dev_free(void *p);
}

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* The running "thread": set by the launcher (one emulated device, one host thread at a time). */
extern dim3 hg_emu_thread_idx, hg_emu_block_idx, hg_emu_block_dim, hg_emu_grid_dim;
#define threadIdx hg_emu_thread_idx
#define blockIdx hg_emu_block_idx
#define blockDim hg_emu_block_dim
#define gridDim hg_emu_grid_dim

/* Block mode (cuda_emu.cpp): run fn(arg) as every thread of grid.x blocks of block.x threads,
 * with smem bytes of dynamic shared memory at hg_emu_dyn_smem; and the barrier. */
extern "C" {
void hg_emu_run_blocks(dim3 grid, dim3 block, size_t smem, void (*fn)(void *), void *arg);
void hg_emu_syncthreads(void);
}
extern void *hg_emu_dyn_smem;
#define __syncthreads() hg_emu_syncthreads()

/* HG_LAUNCH(kern, grid, block, k)(args...): every block, every thread, in order. */
template <class F> struct hg_emu_launcher {
    dim3 grid, block;
    F f;
    template <class... A> void operator()(A... a) const
    {
        hg_emu_open();
        hg_emu_grid_dim = grid;
        hg_emu_block_dim = block;
        for (unsigned b = 0; b < grid.x; b++)
            for (unsigned t = 0; t < block.x; t++) {
                hg_emu_block_idx = dim3(b);
                hg_emu_thread_idx = dim3(t);
                f(a...);
            }
        hg_emu_close();
    }
};
template <class F> hg_emu_launcher<F> hg_emu_launch(dim3 grid, dim3 block, F f)
{
    return hg_emu_launcher<F>{grid, block, f};
}

/* HG_LAUNCH_BLOCK(kern, grid, block, smem, k)(args...): block mode. */
template <class F> struct hg_emu_block_launcher {
    dim3 grid, block;
    size_t smem;
    F f;
    template <class... A> void operator()(A... a) const
    {
        auto call = [&]() { f(a...); };
        hg_emu_open();
        hg_emu_run_blocks(grid, block, smem,
                          [](void *c) { (*static_cast<decltype(call) *>(c))(); }, &call);
        hg_emu_close();
    }
};
template <class F>
hg_emu_block_launcher<F> hg_emu_launch_block(dim3 grid, dim3 block, size_t smem, F f)
{
    return hg_emu_block_launcher<F>{grid, block, smem, f};
}

typedef enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorNoDevice = 100 } cudaError_t;
typedef enum {
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3
} cudaMemcpyKind;
typedef struct hg_emu_stream *cudaStream_t;

/* Emulated device memory: counted so that tests can assert that a training step allocates
 * nothing on the device either. */
extern int64_t hg_emu_device_allocs;

static inline cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = hg_emu_dev_alloc(bytes);
    if (!*p)
        return cudaErrorMemoryAllocation;
    hg_emu_device_allocs++;
    return cudaSuccess;
}
static inline cudaError_t cudaFree(void *p)
{
    if (p) /* cudaFree(NULL) does nothing, as CUDA's */
        hg_emu_dev_free(p);
    return cudaSuccess;
}
static inline cudaError_t cudaMallocHost(void **p, size_t bytes) { *p = aligned_alloc(256, (bytes + 255) / 256 * 256); return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
static inline cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
static inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind,
                                          cudaStream_t)
{
    hg_emu_open();
    if (bytes)
        memmove(dst, src, bytes);
    hg_emu_close();
    return cudaSuccess;
}
static inline cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t)
{
    hg_emu_open();
    if (bytes)
        memset(p, v, bytes);
    hg_emu_close();
    return cudaSuccess;
}
static inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline cudaError_t cudaPeekAtLastError(void) { return cudaSuccess; }
static inline const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaSuccess ? "no error" : "emulated CUDA error";
}

#endif
