/* cuda.h - the CUDA backend's entry points, called by the public kernels (kernels.h) when
 * k->device == HG_DEVICE_CUDA. Each hg_cu_X takes exactly the arguments of hg_k_X (every array in
 * device memory) and must match it within float rounding; tests/test_cuda.c compares them.
 *
 * Files: cuda_lib.cu (context, streams, cuBLAS/cuSPARSE/cuSOLVER calls), cuda.cu (memory and the
 * element-wise/reduction kernels), cuda_lorentz.cu (the Lorentz and fused layer kernels). Without
 * a GPU the same .cu sources build against tests/cuda_emu.h, which runs every kernel launch on
 * the CPU, so that their logic is tested everywhere (tests/meson.build, the emu suite).
 *
 * This header is C: the .cu sources include it inside extern "C". */
#ifndef HG_KERNELS_CUDA_H
#define HG_KERNELS_CUDA_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The public kernels dispatch with HG_K_DEVICE(k, statement; return ...): compiled out when the
 * build has no CUDA backend. */
#if HG_HAVE_CUDA
#define HG_K_DEVICE(k, ...)                    \
    do {                                       \
        if ((k)->device == HG_DEVICE_CUDA) {   \
            __VA_ARGS__;                       \
        }                                      \
    } while (0)
#define HG_K_CPU_ONLY(k, name)                 \
    do {                                       \
        if ((k)->device != HG_DEVICE_CPU)      \
            hg_k_cpu_only_abort(name);         \
    } while (0)
#else
#define HG_K_DEVICE(k, ...) ((void)(k))
#define HG_K_CPU_ONLY(k, name) ((void)(k))
#endif
/* The reference per-op kernels run on the CPU only: called with a device context (a programming
 * error) they print the kernel's name and abort. */
void hg_k_cpu_only_abort(const char *name) __attribute__((noreturn));

typedef enum { HG_CU_H2D = 0, HG_CU_D2H = 1, HG_CU_D2D = 2 } hg_cu_copy_kind;

/* ---- context and memory (cuda_lib.cu, cuda.cu) ---- */
int hg_cu_init(hg_kctx *k);
void hg_cu_destroy(hg_kctx *k);
const char *hg_cu_device_name(const hg_kctx *k);
void *hg_cu_alloc(const hg_kctx *k, size_t bytes, const char *what);
void hg_cu_free(const hg_kctx *k, void *p);
void hg_cu_memcpy(const hg_kctx *k, void *dst, const void *src, size_t bytes, hg_cu_copy_kind kind);
void hg_cu_zero(const hg_kctx *k, void *p, size_t bytes);
int hg_cu_sync(const hg_kctx *k);
/* Device allocations made so far by this context (its own scratch included): a training step
 * after the first must not change it (tests). */
int64_t hg_cu_num_allocs(const hg_kctx *k);

/* ---- library-backed kernels (cuda_lib.cu) ---- */
int hg_cu_gemm(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K,
               float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc);
void hg_cu_csr_spmm(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                    const float *val, const float *X, int64_t d, float beta, float *Y);
int64_t hg_cu_svd_workspace_bytes(const hg_kctx *k, int64_t m, int64_t n);
int hg_cu_svd(const hg_kctx *k, const float *W, float *Ut, float *sigma, float *Vt, int64_t m,
              int64_t n, void *ws);

/* ---- element-wise and reduction kernels (cuda.cu) ---- */
void hg_cu_dropout(const hg_kctx *k, float *out, const float *in, int64_t n, float p, uint64_t seed);
void hg_cu_relu_forward(const hg_kctx *k, float *y, const float *x, int64_t n);
void hg_cu_relu_backward(const hg_kctx *k, float *dx, const float *dy, const float *x, int64_t n);
void hg_cu_adam_step(const hg_kctx *k, float *p, const float *g, float *m, float *v, int64_t n,
                     float lr, float beta1, float beta2, float eps, float decoupled_wd,
                     float l2_wd, int64_t t);
double hg_cu_sqnorm(const hg_kctx *k, const float *x, int64_t n);
void hg_cu_scale(const hg_kctx *k, float *x, float a, int64_t n);
void hg_cu_transpose(const hg_kctx *k, float *dst, const float *src, int64_t rows, int64_t cols);
void hg_cu_transpose_d2f(const hg_kctx *k, float *dst, const double *src, int64_t rows,
                         int64_t cols);
void hg_cu_gather(const hg_kctx *k, float *dst, const float *src, const int64_t *idx, int64_t n);
void hg_cu_axpy(const hg_kctx *k, float *y, float a, const float *x, int64_t n);
void hg_cu_scale_rows(const hg_kctx *k, float *dst, const float *s, const float *src,
                      int64_t rows, int64_t cols);
void hg_cu_row_dots(const hg_kctx *k, float *out, const float *A, const float *B, int64_t rows,
                    int64_t cols);
void hg_cu_clamp_min(const hg_kctx *k, float *x, float lo, int64_t n);
void hg_cu_normalize(const hg_kctx *k, float *x, int64_t n, double min_norm);
int hg_cu_all_finite(const hg_kctx *k, const float *x, int64_t n);
double hg_cu_class_margin_loss(const hg_kctx *k, float *dl, const float *logits,
                               const int64_t *idx, int64_t nidx, const int32_t *labels,
                               int64_t C, float margin, float w);
void hg_cu_argmax_rows(const hg_kctx *k, int32_t *pred, const float *logits, const int64_t *idx,
                       int64_t nidx, int64_t C);

/* ---- Lorentz model and fused HyboNet kernels (cuda_lorentz.cu); ws arguments are ignored:
 * the backend keeps its own scratch ---- */
void hg_cu_lorentz_centroid_backward(const hg_kctx *k, float *dS, const float *dout,
                                     const float *S, int64_t n, int64_t d);
void hg_cu_lorentz_linear_forward(const hg_kctx *k, float *hd, float *z, float *y, const float *x,
                                  const float *W, const float *b, const float *s, int relu,
                                  float p, uint64_t seed, int64_t n, int64_t din, int64_t d);
void hg_cu_lorentz_linear_forward_csr(const hg_kctx *k, float *z, float *y, const int64_t *rowptr,
                                      const int32_t *col, const float *val, const float *W,
                                      float *Wt, const float *b, const float *s, int64_t n,
                                      int64_t din, int64_t d);
void hg_cu_lorentz_agg_forward(const hg_kctx *k, float *S, float *out, const int64_t *rowptr,
                               const int32_t *col, const float *val, const float *y, int64_t n,
                               int64_t d);
void hg_cu_lorentz_linear_backward(const hg_kctx *k, float *gx, float *dz, float *gW, float *gb,
                                   float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                   const float *t_val, const float *gS, const float *z,
                                   const float *hd, const float *x, const float *W,
                                   const float *S_prev, const float *s, int relu, float p,
                                   uint64_t seed, int64_t n, int64_t din, int64_t d);
void hg_cu_lorentz_linear_backward_csr(const hg_kctx *k, float *dz, float *gW, float *gb,
                                       float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                       const float *t_val, const float *gS, const float *z,
                                       const int64_t *xt_rowptr, const int32_t *xt_col,
                                       const float *xt_val, const float *s, int64_t n,
                                       int64_t din, int64_t d);
void hg_cu_lorentz_pair_score(const hg_kctx *k, float *out, const float *X, const int32_t *pairs,
                              int64_t count, int64_t d);
void hg_cu_lorentz_pair_score_backward(const hg_kctx *k, float *dX, const float *X,
                                       const int32_t *pairs, const float *g, int64_t count,
                                       int64_t d);
double hg_cu_lorentz_pair_margin_loss(const hg_kctx *k, float *s_pos, float *s_neg, float *dX,
                                      const float *X, const int32_t *pos, const int32_t *neg,
                                      int64_t count, float margin, float w, int64_t n, int64_t d);
void hg_cu_lorentz_class_logits(const hg_kctx *k, float *logits, const float *X, const float *P,
                                const float *b, int64_t n, int64_t C, int64_t d);
void hg_cu_lorentz_class_logits_backward(const hg_kctx *k, float *dX, float *dP, float *db,
                                         const float *dl, const float *X, const float *P,
                                         const int64_t *idx, int64_t nidx, int64_t C, int64_t d);
void hg_cu_lorentz_radam_step(const hg_kctx *k, float *x, const float *grad, float *m, float *v,
                              int64_t n, int64_t d, float lr, float beta1, float beta2, float eps,
                              int64_t t);
void hg_cu_lorentz_stabilize(const hg_kctx *k, float *x, float *m, int64_t n, int64_t d);

#ifdef __cplusplus
}
#endif

#endif
