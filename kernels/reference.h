/* reference.h - the per-op reference kernels: the readable form of each operation the fused
 * kernels (kernels/ops_lorentz.def) compose in one pass, checked against finite differences and
 * naive double code, and the reference the fused kernels are tested against (tests/). They run
 * on the CPU only, on host memory: called with a device context (a programming error) they print
 * their name and abort. Model code uses them only for host-side setup (expmap0 of the input
 * features). */
#ifndef HG_KERNELS_REFERENCE_H
#define HG_KERNELS_REFERENCE_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Minkowski product of two d-vectors, in double. */
double hg_k_lorentz_inner(const float *x, const float *y, int64_t d);

/* LorentzLinear output map, row-wise over n rows of width d:
 *   t = sigmoid(z0) * exp(s) + 1.1,  y = [t, z_{1:} * sqrt((t^2 - 1) / max(|z_{1:}|^2, 1e-8))].
 * forward: y (=). backward: dz (=), *ds (+=). z is the forward input. */
void hg_k_lorentz_linear_head_forward(const hg_kctx *k, float *y, const float *z, float s, int64_t n,
                                      int64_t d);
void hg_k_lorentz_linear_head_backward(const hg_kctx *k, float *dz, float *ds, const float *dy,
                                       const float *z, float s, int64_t n, int64_t d);

/* Lorentzian centroid normalisation, row-wise: out = S / sqrt(max(|<S,S>_L|, 1e-8)), out (=).
 * (Its backward is an op: hg_k_lorentz_centroid_backward.) */
void hg_k_lorentz_centroid_forward(const hg_kctx *k, float *out, const float *S, int64_t n, int64_t d);

/* expmap0 of tangent vectors (0, v) at the origin, row-wise: v (n x d-1) -> x (n x d),
 * x = (cosh c, sinh c * v/|v|), c = clamp(|v|, MIN, MAX). backward: dv (=). */
void hg_k_lorentz_expmap0_forward(const hg_kctx *k, float *x, const float *v, int64_t n, int64_t d);
void hg_k_lorentz_expmap0_backward(const hg_kctx *k, float *dv, const float *dx, const float *v,
                                   int64_t n, int64_t d);
/* logmap0 (inverse of expmap0 inside the clamp range): x (n x d) -> v (n x d-1). */
void hg_k_lorentz_logmap0(const hg_kctx *k, float *v, const float *x, int64_t n, int64_t d);

/* Copy of x (n x d) with the time column negated: the metric applied, so that
 * <x_i, y_j>_L = (eta x)_i . y_j is one GEMM. */
void hg_k_lorentz_flip_time(const hg_kctx *k, float *out, const float *x, int64_t n, int64_t d);

/* Y (ncols x d) += A^T X, A CSR (nrows x ncols), X (nrows x d): the transposed product by
 * scatter, sequential (so the summation order is fixed), with no transposed copy of A. */
void hg_k_csr_spmm_t(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                     const float *val, const float *X, int64_t d, float *Y);

#ifdef __cplusplus
}
#endif

#endif
