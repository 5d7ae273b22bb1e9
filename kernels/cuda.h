/* cuda.h - the CUDA backend's bodies: hg_cu_X for every op X of the op lists (ops_*.def), with
 * the op's exact parameters (every array in device memory), matching the CPU body within float
 * rounding (tests/test_cuda*.c compare them); and its lifecycle.
 *
 * Files: cuda_lib.cu (context, streams, cuBLAS/cuSPARSE/cuSOLVER calls), cuda.cu (memory, the
 * element-wise/reduction kernels, the backend table), cuda_lorentz.cu (the Lorentz and fused
 * layer kernels), cuda_nn.cu (the Transformer's row kernels), cuda_module.c (the module's entry
 * point). They build into the module libhgnn-cuda.so; without a GPU the same .cu sources build
 * against tests/cuda_emu.h, which runs every kernel launch on the CPU, so that their logic is
 * tested everywhere (tests/meson.build, the emu suite).
 *
 * This header is C: the .cu sources include it inside extern "C". */
#ifndef HG_KERNELS_CUDA_H
#define HG_KERNELS_CUDA_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HG_KOP(name, params, args) void hg_cu_##name params;
#define HG_KOPR(type, name, params, args) type hg_cu_##name params;
#include "ops_core.def"
#include "ops_sparse.def"
#include "ops_lorentz.def"
#include "ops_nn.def"
#undef HG_KOP
#undef HG_KOPR

/* The lifecycle members of the table (backend.h). */
int hg_cu_available(void);
int hg_cu_init(hg_kctx *k);
void hg_cu_destroy(hg_kctx *k);
int64_t hg_cu_num_allocs(const hg_kctx *k);

/* The backend's table (cuda.cu). */
const hg_kbackend *hg_kbackend_cuda(void);

#ifdef __cplusplus
}
#endif

#endif
