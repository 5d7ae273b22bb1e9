/* kernels.h - the compute kernels every model op reduces to.
 *
 * This folder is a leaf: it includes nothing from sst/, hyperbolic/ or datasets/, and from src/
 * only hg.h (status codes and error recording).
 *
 * Every op takes the kernel context first and is listed once, in the op lists of its family
 * (ops_core.def: memory, BLAS/LAPACK, element-wise, optimiser; ops_sparse.def: CSR products;
 * ops_lorentz.def: the Lorentz model and the fused HyboNet layers; ops_nn.def: the Transformer's
 * softmax, layer norm, activations, cross-entropy), with its contract. From those lists come the
 * prototypes below, the dispatch (kernels/backend.c: a CPU context runs the CPU body hg_cpu_X, a
 * device context its backend's), and the device backend's function table (kernels/backend.h).
 * The GPU backend is a module loaded at run time (libhgnn-cuda.so, see hg_kctx_init).
 * The per-op reference maps the fused kernels are tested against are in kernels/reference.h.
 *
 * Layout: row-major float32 matrices; CSR matrices as (rowptr[nrows+1] int64, col[nnz] int32,
 * val[nnz] float). Long reductions accumulate in double. Outputs marked (=) are overwritten,
 * (+=) accumulate. */
#ifndef HG_KERNELS_H
#define HG_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { HG_DEVICE_CPU = 0, HG_DEVICE_CUDA = 1 } hg_device;
/* The arithmetic of the dense products (gemm, gemm_batched). HG_PREC_BF16: the CUDA backend
 * rounds both inputs to bfloat16 and multiplies on the tensor cores, accumulating and writing
 * fp32 (cuBLAS's CUBLAS_COMPUTE_32F_FAST_16BF; it may pick TF32, which is closer). Each entry of
 * C then lies within (2^-7 + K 2^-23) sum_k |a_ik b_kj| of the fp32 product. Arrays stay fp32. */
typedef enum { HG_PREC_FP32 = 0, HG_PREC_BF16 = 1 } hg_precision;

struct hg_kbackend;

typedef struct hg_kctx {
    hg_device device;
    int threads;  /* CPU threads of our own parallel loops (>= 1); results never depend on it */
    void *device_state; /* backend-owned handles/streams/workspace; NULL on the CPU */
    const struct hg_kbackend *backend; /* the device backend's ops; NULL on the CPU */
    hg_precision precision; /* of gemm/gemm_batched on the CUDA backend (HG_PREC_FP32 after
                             * hg_kctx_init); the CPU backend computes fp32 whatever it says */
} hg_kctx;

/* ---- context ---- */

/* A context for `device` with `threads` CPU threads. HG_DEVICE_CUDA loads the GPU backend
 * module, libhgnn-cuda.so, on first use: from $HGNN_CUDA_MODULE when set, else next to the
 * executable, else from the install directory (libdir/hgnn). HG_EUNSUPPORTED (no module, or one
 * that cannot be loaded: the CUDA runtime missing, another version), HG_ECUDA (no device, or a
 * handle could not be created), HG_ENOMEM. */
int hg_kctx_init(hg_kctx *k, hg_device device, int threads);
void hg_kctx_destroy(hg_kctx *k); /* safe on a zeroed or CPU context */
/* 1 when the GPU backend module loads and a CUDA device is present. */
int hg_k_cuda_available(void);

/* Set the thread count of our own parallel loops. BLAS always runs on one thread: OpenBLAS's
 * results depend on its thread count. */
void hg_k_set_threads(hg_kctx *k, int threads);

/* The dropout mask value of element i (hg_k_dropout): 0 or 1/(1-p). */
float hg_k_dropout_scale(int64_t i, float p, uint64_t seed);
/* mask[j] (=) hg_k_dropout_scale(i0 + j, p, seed) for j < n: the mask of a run of elements. */
void hg_k_dropout_mask(float *mask, int64_t i0, int64_t n, float p, uint64_t seed);

/* x rounded to the nearest bfloat16 (ties to even), as a float; infinities and NaN unchanged. */
float hg_k_bf16_round(float x);

/* ---- Lorentz model (curvature -1) constants ---- */

/* Squared norm below which the spatial part of a LorentzLinear output is treated as zero. */
#define HG_LORENTZ_LINEAR_MIN_SQNORM 1e-8f
/* Offset keeping the LorentzLinear time coordinate away from 1 (where the spatial scale is 0). */
#define HG_LORENTZ_LINEAR_TIME_OFFSET 1.1f
/* |<S,S>_L| floor of the centroid normalisation (an all-zero aggregate would divide by 0). */
#define HG_LORENTZ_CENTROID_MIN 1e-8f
/* expmap0 clamps |v| to [MIN, MAX]: below MIN the direction v/|v| is undefined, above MAX
 * cosh overflows float32 after a few layers (the reference clamps at 10 too). */
#define HG_LORENTZ_EXPMAP0_MIN_NORM 1e-4f
#define HG_LORENTZ_EXPMAP0_MAX_NORM 10.0f
/* Floor of the Minkowski norm of a tangent vector in expmap_x (direction undefined below). */
#define HG_LORENTZ_EXPMAP_MIN_NORM 1e-7f

/* Widest row the fused kernels and the Riemannian step take (dim is checked against it). */
#define HG_LORENTZ_MAX_D 1024
/* The widest attention head of the fused attention ops (hg_k_attn_causal_forward). */
#define HG_ATTN_MAX_DH 128
/* Longest run of terms summed in float before it is added into a double accumulator. */
#define HG_K_FLOAT_RUN 64

/* With kctx.threads > 1 the 16-wide kernels split their rows between threads; their results do
 * not depend on the thread count. Those summing over rows (parameter gradients) then keep one
 * slot of HG_K_CHUNK_FLOATS float partial sums per chunk of HG_K_CHUNK rows (the float runs
 * above) in a workspace ws of hg_k_workspace_floats(rows) floats, owned by the caller and
 * allocated once; ws NULL runs those kernels on one thread. */
#define HG_K_CHUNK HG_K_FLOAT_RUN
#define HG_K_CHUNK_FLOATS 288
int64_t hg_k_workspace_floats(int64_t n);
/* Floats of the ws of hg_k_lorentz_pair_margin_loss over count couples. */
int64_t hg_k_pair_workspace_floats(int64_t count);

/* ---- the ops (contracts in the lists) ---- */
#define HG_KOP(name, params, args) void hg_k_##name params;
#define HG_KOPR(type, name, params, args) type hg_k_##name params;
#include "ops_core.def"
#include "ops_sparse.def"
#include "ops_lorentz.def"
#include "ops_nn.def"
#undef HG_KOP
#undef HG_KOPR

#ifdef __cplusplus
}
#endif

#endif
