/* kernels.h - the compute kernels every model op reduces to.
 *
 * This folder is a leaf: it includes nothing from sst/, hyperbolic/ or datasets/, and from src/
 * only hg.h (status codes and error recording).
 * Every kernel takes the kernel context first; a device backend (CUDA sources in kernels/,
 * later) implements the same list behind the same names, selected by hg_kctx.device inside
 * kernels/, so model code never changes when a backend is added.
 *
 * Two kinds: the per-op kernels (CSR products, dropout, ReLU, LorentzLinear head, centroid,
 * expmap0, ...) are the readable reference of each operation, checked against finite
 * differences and naive double code; the fused kernels the model calls (hg_k_lorentz_linear_*,
 * _agg_forward, _pair_*, _class_logits*) compose them in one pass for speed and are tested
 * against those compositions (tests/test_kernels.c).
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

typedef struct hg_kctx {
    hg_device device;
    int threads;  /* CPU threads of our own parallel loops (>= 1); results never depend on it */
    void *device_state; /* backend-owned handles/streams/workspace; NULL on the CPU */
} hg_kctx;

/* Set the thread count of our own parallel loops. BLAS always runs on one thread: OpenBLAS's
 * results depend on its thread count. */
void hg_k_set_threads(hg_kctx *k, int threads);

/* ---- context and memory ----
 * Every array a kernel reads or writes lives in the context's memory: host memory on the CPU,
 * device memory with the CUDA backend (kernels/cuda.cu). Model code allocates through the context
 * and moves data with upload/download only outside the training step (setup, evaluation,
 * checkpoints). On the CUDA backend every call is ordered on the context's one stream; errors of
 * asynchronous work are sticky and reported by the next hg_k_sync(). */

/* A context for `device` with `threads` CPU threads. HG_EUNSUPPORTED (built without CUDA),
 * HG_ECUDA (no device, or a handle could not be created), HG_ENOMEM. */
int hg_kctx_init(hg_kctx *k, hg_device device, int threads);
void hg_kctx_destroy(hg_kctx *k); /* safe on a zeroed or CPU context */
/* 1 when this build has the CUDA backend and a CUDA device is present. */
int hg_k_cuda_available(void);
/* "cpu", or the GPU's name; valid while k lives. */
const char *hg_k_device_name(const hg_kctx *k);

/* Zeroed, 64-byte aligned block of k's memory; records HG_ENOMEM naming `what` on failure. */
void *hg_k_alloc(const hg_kctx *k, size_t bytes, const char *what);
void hg_k_free(const hg_kctx *k, void *p); /* NULL is fine */
/* host -> k's memory, k's memory -> host (waits for pending work), and within k's memory. */
void hg_k_upload(const hg_kctx *k, void *dst, const void *src, size_t bytes);
void hg_k_download(const hg_kctx *k, void *dst, const void *src, size_t bytes);
void hg_k_copy(const hg_kctx *k, void *dst, const void *src, size_t bytes);
void hg_k_zero(const hg_kctx *k, void *p, size_t bytes);
/* Wait for the context's pending work; HG_ECUDA (recorded) when any of it failed. */
int hg_k_sync(const hg_kctx *k);

/* ---- generic array ops (model and sst/ code never loops over k's memory itself) ---- */

/* dst (cols x rows) (=) src (rows x cols)^T. */
void hg_k_transpose(const hg_kctx *k, float *dst, const float *src, int64_t rows, int64_t cols);
/* The same from double to float. */
void hg_k_transpose_d2f(const hg_kctx *k, float *dst, const double *src, int64_t rows,
                        int64_t cols);
/* dst[i] (=) src[idx[i]], i < n. */
void hg_k_gather(const hg_kctx *k, float *dst, const float *src, const int64_t *idx, int64_t n);
/* y (+=) a x. */
void hg_k_axpy(const hg_kctx *k, float *y, float a, const float *x, int64_t n);
/* dst[i][j] (=) s[i] src[i][j] over rows x cols (in place allowed). */
void hg_k_scale_rows(const hg_kctx *k, float *dst, const float *s, const float *src, int64_t rows,
                     int64_t cols);
/* out[i] (+=) sum_j A[i][j] B[i][j] (summed in double), i < rows. */
void hg_k_row_dots(const hg_kctx *k, float *out, const float *A, const float *B, int64_t rows,
                   int64_t cols);
/* x[i] = max(x[i], lo) (a NaN stays NaN). */
void hg_k_clamp_min(const hg_kctx *k, float *x, float lo, int64_t n);
/* x /= |x| when |x| > min_norm (norm in double). */
void hg_k_normalize(const hg_kctx *k, float *x, int64_t n, double min_norm);
/* 1 when every one of the n floats is finite. */
int hg_k_all_finite(const hg_kctx *k, const float *x, int64_t n);

/* Thin SVD of W (m x n, row-major), k = min(m, n), in double: W = Ut^T diag(sigma) Vt with
 * Ut (k x m) row i = U_i, sigma (k) descending, Vt (k x n) row i = V_i, all (=) in k's memory.
 * ws: hg_k_svd_workspace_bytes(k, m, n) bytes of k's memory, allocated once.
 * Returns HG_OK or HG_ELAPACK (recorded; outputs undefined). */
int64_t hg_k_svd_workspace_bytes(const hg_kctx *k, int64_t m, int64_t n);
int hg_k_svd(const hg_kctx *k, const float *W, float *Ut, float *sigma, float *Vt, int64_t m,
             int64_t n, void *ws);

/* C = alpha * op(A) op(B) + beta * C, row-major; op(A) is M x K, op(B) is K x N.
 * Returns 0, or -1 when a size does not fit the BLAS int (caller reports it). */
int hg_k_gemm(const hg_kctx *k, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);

/* Y (nrows x d) = beta * Y + A X, A CSR (nrows x ncols), X (ncols x d). */
void hg_k_csr_spmm(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                   const float *val, const float *X, int64_t d, float beta, float *Y);

/* Y (ncols x d) += A^T X, A CSR (nrows x ncols), X (nrows x d): the transposed product by scatter,
 * so no transposed copy of A is kept. */
void hg_k_csr_spmm_t(const hg_kctx *k, int64_t nrows, const int64_t *rowptr, const int32_t *col,
                     const float *val, const float *X, int64_t d, float *Y);

/* out[i] = in[i] * mask(i) / (1 - p), mask(i) = 1 with probability 1-p, drawn from a counter-based
 * hash of (seed, i) so any backend produces the same mask. p = 0 copies. */
void hg_k_dropout(const hg_kctx *k, float *out, const float *in, int64_t n, float p, uint64_t seed);
/* The mask value dropout used for element i: 0 or 1/(1-p). */
float hg_k_dropout_scale(int64_t i, float p, uint64_t seed);
/* mask[j] (=) hg_k_dropout_scale(i0 + j, p, seed) for j < n: the mask of a run of elements. */
void hg_k_dropout_mask(float *mask, int64_t i0, int64_t n, float p, uint64_t seed);

/* ReLU: y (=) max(x, 0); backward dx (=) dy * (x > 0). In-place allowed. */
void hg_k_relu_forward(const hg_kctx *k, float *y, const float *x, int64_t n);
void hg_k_relu_backward(const hg_kctx *k, float *dx, const float *dy, const float *x, int64_t n);

/* ---- Lorentz model (curvature -1), DESIGN.md section 3 ---- */

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

/* Minkowski product of two d-vectors, in double. */
double hg_k_lorentz_inner(const float *x, const float *y, int64_t d);

/* LorentzLinear output map, row-wise over n rows of width d:
 *   t = sigmoid(z0) * exp(s) + 1.1,  y = [t, z_{1:} * sqrt((t^2 - 1) / max(|z_{1:}|^2, 1e-8))].
 * forward: y (=). backward: dz (=), *ds (+=). z is the forward input. */
void hg_k_lorentz_linear_head_forward(const hg_kctx *k, float *y, const float *z, float s, int64_t n,
                                      int64_t d);
void hg_k_lorentz_linear_head_backward(const hg_kctx *k, float *dz, float *ds, const float *dy,
                                       const float *z, float s, int64_t n, int64_t d);

/* Lorentzian centroid normalisation, row-wise: out = S / sqrt(max(|<S,S>_L|, 1e-8)).
 * forward: out (=). backward: dS (=) given dout and the forward input S. */
void hg_k_lorentz_centroid_forward(const hg_kctx *k, float *out, const float *S, int64_t n, int64_t d);
void hg_k_lorentz_centroid_backward(const hg_kctx *k, float *dS, const float *dout, const float *S,
                                    int64_t n, int64_t d);

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

/* Riemannian Adam on the Lorentz model for n points of width d (geoopt's RiemannianAdam):
 * Euclidean grad -> Riemannian grad (metric, tangent projection), first moment (n x d) and one
 * second moment per point (Minkowski square of the gradient), step by the exponential map,
 * first moment moved by parallel transport. lr_t already includes nothing: bias corrections use
 * step t (>= 1). */
void hg_k_lorentz_radam_step(const hg_kctx *k, float *x, const float *grad, float *m, float *v,
                             int64_t n, int64_t d, float lr, float beta1, float beta2, float eps,
                             int64_t t);
/* Put points back on the manifold (x0 = sqrt(1 + |x_{1:}|^2)) and moments into their tangent spaces. */
void hg_k_lorentz_stabilize(const hg_kctx *k, float *x, float *m, int64_t n, int64_t d);

/* ---- fused HyboNet layer kernels (DESIGN.md section 3) ----
 * One pass over the rows per kernel. Width d = 16 (every reference run) takes a vector path that
 * computes the per-row scalars (norms, sigmoid, square roots) of 16 rows at once; any other
 * width takes a scalar path with the same results up to float rounding, whose dense layer
 * products (z = hd W^T, the weight gradient dz^T hd, the input gradient dz W) are float GEMMs
 * (BLAS, one thread) and whose element-wise parts are row loops. Widths up to
 * HG_LORENTZ_MAX_D. Sums of up to HG_K_FLOAT_RUN terms stay in float (that many eps relative at
 * most, below the float32 storage error of the inputs); longer ones (parameter gradients over
 * the rows, hubs' neighbours, wide products) add their float runs into double. */

/* Widest row the fused kernels and the Riemannian step take (dim is checked against it). */
#define HG_LORENTZ_MAX_D 1024
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

/* LorentzLinear with a dense input x (n x din), the weight W (d x din, row-major, as sst/ keeps
 * it), bias b (d, or NULL), log scale *s (one float in k's memory, like every array argument):
 * hd (=) dropout(act(x)) with the element mask of hg_k_dropout over the n x din array (act =
 * ReLU when relu, else identity); z (=) hd W^T + b; y (=) head(z) as
 * hg_k_lorentz_linear_head_forward. hd may be NULL when !relu and p == 0 (x is then the input).
 * d = 16 with din < 16 and no hd takes the 16-wide path with the input zero-padded. */
void hg_k_lorentz_linear_forward(const hg_kctx *k, float *hd, float *z, float *y, const float *x,
                                 const float *W, const float *b, const float *s, int relu, float p,
                                 uint64_t seed, int64_t n, int64_t din, int64_t d);
/* The same with a sparse input X (CSR, n x din) and the weight W (d x din): Wt (=) W^T (din x d,
 * scratch whose rows the product gathers), z (=) X Wt + b, y (=) head(z). */
void hg_k_lorentz_linear_forward_csr(const hg_kctx *k, float *z, float *y, const int64_t *rowptr,
                                     const int32_t *col, const float *val, const float *W,
                                     float *Wt, const float *b, const float *s, int64_t n,
                                     int64_t din, int64_t d);

/* LorentzAgg: S (=) A y with A CSR (n x n), out (=) centroid(S) (hg_k_lorentz_centroid_forward). */
void hg_k_lorentz_agg_forward(const hg_kctx *k, float *S, float *out, const int64_t *rowptr,
                              const int32_t *col, const float *val, const float *y, int64_t n,
                              int64_t d);

/* Backward of LorentzLinear followed by the aggregation, given gS = dL/dS (n x d) and At, the
 * transpose of the aggregation matrix (CSR, n x n): dy = At gS, dz = head backward (as
 * hg_k_lorentz_linear_head_backward), then
 *   gW (=) dz^T hd (d x din, W's layout: the weight gradient; on the 16-wide path summed in
 *   double and rounded once, on the others one float GEMM),
 *   gb (+=) column sums of dz (NULL: none), *gs (+=) dL/ds,
 *   gx (=) act'(x) * mask * (dz W) (n x din; NULL: not computed), with the forward's relu, p, seed;
 *   with S_prev (n x din, the previous layer's aggregate; NULL: none) gx (=) instead the centroid
 *   backward (hg_k_lorentz_centroid_backward) of that through S_prev: dL/dS_prev.
 * hd is the forward's hd (or x when that was NULL); W (d x din) the forward's weight. dz: n x d
 * floats of scratch (contents unspecified on return). d = 16 with din < 16 and no gx takes the
 * 16-wide path. ws: the workspace of n rows (above), or NULL. */
void hg_k_lorentz_linear_backward(const hg_kctx *k, float *gx, float *dz, float *gW, float *gb,
                                  float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                  const float *t_val, const float *gS, const float *z,
                                  const float *hd, const float *x, const float *W,
                                  const float *S_prev, const float *s, int relu, float p, uint64_t seed,
                                  int64_t n, int64_t din, int64_t d, float *ws);
/* The same for the sparse-input layer, whose input X (n x din) is given transposed, Xt (CSR,
 * din x n): dz (=) (n x d, the head gradient, also scratch), gW (=) (Xt dz)^T (d x din, W's
 * layout; each entry summed in float runs added in double, rounded once), gb (+=), *gs (+=).
 * No input gradient. ws: the workspace of n rows, or NULL. */
void hg_k_lorentz_linear_backward_csr(const hg_kctx *k, float *dz, float *gW, float *gb,
                                      float *gs, const int64_t *t_rowptr, const int32_t *t_col,
                                      const float *t_val, const float *gS, const float *z,
                                      const int64_t *xt_rowptr, const int32_t *xt_col,
                                      const float *xt_val, const float *s, int64_t n, int64_t din,
                                      int64_t d, float *ws);

/* Pair scores s_e = 2 + 2 <x_u, x_v>_L = -d2(x_u, x_v) of count pairs (u, v) = pairs[2e],
 * pairs[2e + 1] (rows of X, n x d): out (=). backward: dX (+=) g_e ds_e/dX for every pair with
 * g_e != 0, in pair order. */
void hg_k_lorentz_pair_score(const hg_kctx *k, float *out, const float *X, const int32_t *pairs,
                             int64_t count, int64_t d);
void hg_k_lorentz_pair_score_backward(const hg_kctx *k, float *dX, const float *X,
                                      const int32_t *pairs, const float *g, int64_t count,
                                      int64_t d);

/* Link-prediction margin loss over count couples (pos[e], neg[e]) of pairs of rows of X (n x d):
 * s_pos (=), s_neg (=) their scores (as hg_k_lorentz_pair_score); returns
 * sum_e relu(margin - s_pos[e] + s_neg[e]) (in double). dX (NULL: no gradient) (+=) w times the
 * gradient of that sum: for every active couple, in couple order, -w ds_pos/dX then w ds_neg/dX.
 * ws: hg_k_pair_workspace_floats(count) floats (the couples' hinges, for threads), or NULL. */
double hg_k_lorentz_pair_margin_loss(const hg_kctx *k, float *s_pos, float *s_neg, float *dX,
                                     const float *X, const int32_t *pos, const int32_t *neg,
                                     int64_t count, float margin, float w, int64_t n, int64_t d,
                                     float *ws);
int64_t hg_k_pair_workspace_floats(int64_t count);

/* Class logits l_ic = 2 + 2 <x_i, p_c>_L + b_c for n points X (n x d) and C points P (C x d),
 * b (C, or NULL): logits (=) (n x C). backward over the rows idx[0..nidx) given their logit
 * gradients dl (nidx x C, row a for point idx[a]): dX (+=) those rows, dP (+=), db (+=, NULL:
 * none). The idx are distinct. ws: the workspace of nidx rows, or NULL. */
void hg_k_lorentz_class_logits(const hg_kctx *k, float *logits, const float *X, const float *P,
                               const float *b, int64_t n, int64_t C, int64_t d);
void hg_k_lorentz_class_logits_backward(const hg_kctx *k, float *dX, float *dP, float *db,
                                        const float *dl, const float *X, const float *P,
                                        const int64_t *idx, int64_t nidx, int64_t C, int64_t d,
                                        float *ws);

/* ---- optimiser ---- */

/* Adam (torch semantics, bias-corrected) on n floats; step t >= 1.
 * decoupled_wd: p -= lr*wd*p before the update (AdamW); l2_wd: g += l2_wd*p. */
void hg_k_adam_step(const hg_kctx *k, float *p, const float *g, float *m, float *v, int64_t n,
                    float lr, float beta1, float beta2, float eps, float decoupled_wd, float l2_wd,
                    int64_t t);

/* Node-classification margin loss over the rows idx[0..nidx) of logits (n x C) with labels
 * (n, of every node): returns sum_{a, c} relu(margin - l_{idx[a], y} + l_{idx[a], c}) (double);
 * with dl (NULL: none) dl row a (=) w times its gradient (nidx x C). */
double hg_k_class_margin_loss(const hg_kctx *k, float *dl, const float *logits,
                              const int64_t *idx, int64_t nidx, const int32_t *labels, int64_t C,
                              float margin, float w);
/* pred[a] (=) arg max_c logits[idx[a]][c] (the first on ties). */
void hg_k_argmax_rows(const hg_kctx *k, int32_t *pred, const float *logits, const int64_t *idx,
                      int64_t nidx, int64_t C);

/* Sum of squares of n floats, in double. */
double hg_k_sqnorm(const hg_kctx *k, const float *x, int64_t n);
/* x *= a */
void hg_k_scale(const hg_kctx *k, float *x, float a, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
