/* testutil.h - shared cmocka helpers: tolerance comparisons, finite-difference checks, a small
 * test graph, and the kernel tests' scratch and input builders (test_kernels*.c and test_cuda*.c
 * build the same inputs from the same seeds with them). */
#ifndef HG_TESTUTIL_H
#define HG_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../kernels/kernels.h"
#include "../kernels/reference.h"
#include "../src/rng.h"

/* Fails (cmocka) unless |got - want| <= atol + rtol * |want| elementwise; prints the worst element
 * and the first mismatches. */
void hg_assert_allclose_(const double *got, const double *want, size_t n, double atol, double rtol,
                         const char *what, const char *file, int line);
#define hg_assert_allclose(got, want, n, atol, rtol, what) \
    hg_assert_allclose_((got), (want), (n), (atol), (rtol), (what), __FILE__, __LINE__)
/* Same for float arrays (compared in double). */
void hg_assert_allclose_f_(const float *got, const float *want, size_t n, double atol, double rtol,
                           const char *what, const char *file, int line);
#define hg_assert_allclose_f(got, want, n, atol, rtol, what) \
    hg_assert_allclose_f_((got), (want), (n), (atol), (rtol), (what), __FILE__, __LINE__)

/* Fill with uniform values in [lo, hi) from a fixed-seed stream. */
void hg_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);

/* Central-difference gradient check of a scalar function f(theta) (double precision evaluations
 * through the float parameters): perturbs up to max_checks entries of theta (evenly spaced) by
 * +-h and compares (f+ - f-)/(2h) with the analytic gradient grad[i].
 * f is called with ctx. Tolerance: |num - ana| <= atol + rtol * max(|num|, |ana|). */
typedef double (*hg_test_scalar_fn)(void *ctx);
void hg_check_grad_(hg_test_scalar_fn f, void *ctx, float *theta, const double *grad, size_t n,
                    size_t max_checks, double h, double atol, double rtol, const char *what,
                    const char *file, int line);
#define hg_check_grad(f, ctx, theta, grad, n, max_checks, h, atol, rtol, what) \
    hg_check_grad_((f), (ctx), (theta), (grad), (n), (max_checks), (h), (atol), (rtol), (what), \
                   __FILE__, __LINE__)

/* A small graph for model tests: a ring of n nodes plus chords (irregular degrees, so A_hat is
 * not symmetric), A its 0/1 adjacency, adj = D^-1 (A + I) in CSR, sparse random features
 * (n x nfeat) in [0.1, 1) with the given density, rows empty_a and empty_b empty and every other
 * row with at least one feature (value `fill`), labels drawn in [0, nclasses) after the features
 * from the same stream, and train = the nodes with i % 4 != skip_mod. */
#define HG_TEST_GRAPH_MAX 32
typedef struct hg_test_graph_spec {
    int n, nfeat, nclasses;
    const int (*chords)[2];
    int nchords;
    int empty_a, empty_b;
    uint64_t seed;
    double density;
    float fill;
    int skip_mod;
} hg_test_graph_spec;

#include "../src/csr.h"
typedef struct hg_test_graph {
    int A[HG_TEST_GRAPH_MAX][HG_TEST_GRAPH_MAX]; /* (n x n) 0/1 adjacency, no self loops */
    hg_csr adj;                                  /* D^-1 (A + I) */
    hg_csr feat;                                 /* (n x nfeat) sparse features */
    int32_t labels[HG_TEST_GRAPH_MAX];
    int64_t train[HG_TEST_GRAPH_MAX];
    int64_t ntrain;
} hg_test_graph;
/* n <= HG_TEST_GRAPH_MAX. */
void hg_test_graph_build(hg_test_graph *g, const hg_test_graph_spec *s);
void hg_test_graph_destroy(hg_test_graph *g);

/* Directory of the bundled datasets (source tree), and of test fixtures (build tree). */
const char *hg_test_data_dir(void);

/* max |x_i| and max |x_i - y_i| over n floats, in double; 0 for n = 0. NaN elements are skipped
 * (fmax ignores them): check finiteness separately where a NaN must fail. */
double hg_test_max_abs(const float *x, int64_t n);
double hg_test_max_abs_diff(const float *x, const float *y, int64_t n);

/* ---- scratch of the running test ----
 * Zeroed host blocks that live until hg_test_release or hg_test_free_all, so that a test builds
 * its inputs and references without freeing each. A test frees them at its end, or its cmocka
 * teardown does (which also runs after a failure); a loop frees what one iteration made with
 * hg_test_mark / hg_test_release. Failing allocations fail the test. */
void *hg_test_alloc(int64_t count, size_t size); /* count elements of size bytes (count <= 0: 1) */
float *hg_test_floats(int64_t n);
double *hg_test_doubles(int64_t n);
/* The current scratch position; hg_test_release(mark) frees the blocks allocated since. */
int hg_test_mark(void);
void hg_test_release(int mark);
/* Frees every block (and the table of blocks). */
void hg_test_free_all(void);

/* Scratch copies: NaN-filled / uniform in [lo, hi) from seed (as hg_test_fill_uniform) / x in
 * double. */
void hg_test_fill_nan(float *x, int64_t n);
float *hg_test_uniform(int64_t n, float lo, float hi, uint64_t seed);
double *hg_test_f2d(const float *x, int64_t n);
/* 2 E_i (the tolerance of two results each within E of the exact one), in scratch. */
double *hg_test_twice(const double *E, int64_t n);
/* Per-element tolerance (scratch, n x d) of two float evaluations of z = h Wt + b (h n x din,
 * Wt din x d, b NULL or d): dots of din + 1 terms, 2 (din + 2) u sum|terms|. */
double *hg_test_linear_tol(const float *h, const float *Wt, const float *b, int64_t n,
                           int64_t din, int64_t d);

/* ---- CSR matrices in scratch ---- */
typedef struct hg_test_csr {
    int64_t nrows, ncols, nnz;
    int64_t *rowptr;
    int32_t *col;
    float *val;
} hg_test_csr;

/* Entry (i, j) is present with probability dens, always when i or j is in hubs (a hub row or
 * column), never when i % emod == emod - 1 (an empty row) or j % emod == emod - 2 (an empty
 * column; both win over hubs); values uniform in [lo, hi). Two draws from seed per (i, j). */
void hg_test_csr_random(hg_test_csr *a, int64_t nrows, int64_t ncols, double dens,
                        const int64_t *hubs, int nhubs, int64_t emod, float lo, float hi,
                        uint64_t seed);
/* t = a^T, the entries of each row in increasing source row (as hybonet.c builds it). */
void hg_test_csr_transpose(hg_test_csr *t, const hg_test_csr *a);
/* a as a dense row-major nrows x ncols matrix. */
float *hg_test_csr_dense(const hg_test_csr *a);
/* The most entries in a row. */
int64_t hg_test_csr_maxrow(const hg_test_csr *a);
/* Per-element tolerance (scratch, nrows x d) of two float evaluations of S = A Y (Y ncols x d):
 * row i sums k_i terms, 2 (k_i + 1) u sum|terms|. */
double *hg_test_csr_spmm_tol(const hg_test_csr *A, const float *Y, int64_t d);
/* A sparse layer input X (nrows x ncols: density 0.15, values in [-1, 1), rows i % 9 == 8 and
 * columns j % 9 == 7 empty, hubs 0 and 40: column 0, the time coordinate, in every other row)
 * from seed, and Xt = X^T; asserts that both have a row longer than HG_K_FLOAT_RUN (true for
 * 83 x 80). */
void hg_test_csr_input(hg_test_csr *X, hg_test_csr *Xt, int64_t nrows, int64_t ncols,
                       uint64_t seed);

/* ---- points of the hyperboloid (curvature -1, widths d <= HG_LORENTZ_MAX_D) ---- */

/* A point (double): expmap0 of a random direction (d - 1 normal draws from g) at distance r. */
void hg_test_random_point(double *x, int64_t d, double r, hg_rng *g);
/* n points (rounded to float) at distances uniform in [0, rmax) from the origin. */
void hg_test_random_points(float *X, int64_t n, int64_t d, double rmax, uint64_t seed);
/* Aggregates as the model's S: positive combinations (weights in [0.2, 1.5)) of 3 points at
 * distance < 1.5 (timelike), every 9th row (i % 9 == 8) zero (an empty aggregation row: the
 * centroid's clamp). */
void hg_test_random_aggregates(float *S, int64_t n, int64_t d, uint64_t seed);

/* ---- one LorentzLinear layer l > 0 of the model, as the fused kernels see it ---- */
typedef struct hg_test_layer {
    int64_t n, din, d;
    hg_test_csr A, At; /* aggregation (n x n) and its transpose */
    float *S_prev, *x; /* n x din: the previous layer's aggregate, x = centroid(S_prev) */
    float *W, *Wt, *b; /* d x din, din x d, d */
    float *gS;         /* n x d: the gradient arriving at this layer's aggregate */
    float s;
} hg_test_layer;

/* A: density 0.08, values in [0.05, 1), rows/columns i % 9 == 8 / 7 empty, hubs 5 and 60 (rows
 * and columns longer than HG_K_FLOAT_RUN, asserted: n > 60, e.g. 83) from seed; S_prev aggregates
 * from seed + 1 and x = centroid(S_prev) on the CPU context k; W uniform in +-1/sqrt(din) from
 * seed + 2, Wt = W^T; b in [-0.5, 0.5) from seed + 3; gS in [-1, 1) from seed + 4; s = 0.7. */
void hg_test_layer_setup(hg_test_layer *L, const hg_kctx *k, int64_t n, int64_t din, int64_t d,
                         uint64_t seed);

/* ---- the first-order error bound of the LorentzLinear backward chain ---- */

/* The head map's Jacobian coefficients of one row, in double (mirror of the head):
 *   dz0 = (dy0 + a dfdt) K,  dz_j = f dy_j + 2 a dfdq z_j,  ds += (dy0 + a dfdt) ses,
 * a = sum_{j >= 1} dy_j z_j. */
typedef struct hg_test_head_jac {
    double f, K, dfdt, dfdq, ses;
} hg_test_head_jac;
hg_test_head_jac hg_test_head_jac_of(const float *z, float s, int64_t d);

/* The inputs of hg_k_lorentz_linear_backward (its doc): dy = At gS, the head backward on z,
 * gWt = hd^T dz, gb = column sums of dz, and with W the input gradient (dz W) * mask * act'(x)
 * (mask from p, seed), through the centroid backward of S_prev when S_prev is given. */
typedef struct hg_test_bwd_in {
    int64_t n, din, d;
    int relu;
    float p, s;
    uint64_t seed;
    const hg_test_csr *At;
    const float *gS, *z, *hd, *x;
    const float *W;      /* d x din; NULL: no input gradient */
    const float *S_prev; /* n x din or NULL */
} hg_test_bwd_in;

/* Stage roundings kappa (units of u = 2^-24) of one implementation of the chain; each caller
 * derives its own (test_kernels_fused.c: the CPU's paths; test_cuda_layer.c: the float path at
 * any width). */
typedef struct hg_test_bwd_kappa {
    double (*head_time)(int64_t d, float z0); /* dz0 (dfdt, K) of a row with time coordinate z0 */
    double (*head_space)(int64_t d);          /* dz_j (f, a dfdq) */
    double ds_sums; /* ds: head_time's plus this (its float sums over the rows) */
    /* the centroid backward of row S (width din), c = max(|<S,S>_L|, HG_LORENTZ_CENTROID_MIN) */
    double (*centroid)(const float *S, int64_t din, double c);
} hg_test_bwd_kappa;

/* First-order bounds E of |result - exact| (scratch arrays; gx NULL without W). */
typedef struct hg_test_bwd_bound {
    double *dz, *gWt, *gb, gs, *gx;
} hg_test_bwd_bound;

/* The running bound along the chain: along the magnitude chain M_out = |J| M_in (M_0 = |gS|),
 * each stage gives E_out = |J| E_in + kappa_s u |J| M_in, with kappa_s from kap except
 *   dy = At gS: float sums of k_i terms: k_i + 1;
 *   gWt = hd^T dz, gb: sums of n rows: n + 1;
 *   dx = (dz W) * mask * act': a dot of d terms and one multiply: d + 2. */
void hg_test_bwd_bounds(hg_test_bwd_bound *E, const hg_test_bwd_in *in,
                        const hg_test_bwd_kappa *kap);

/* ---- decoders ---- */

/* 0 .. n-1 shuffled (hg_rng_shuffle_i64 from seed), in scratch. */
int64_t *hg_test_shuffled_rows(int64_t n, uint64_t seed);

/* The pair score 2 + 2 <x, y>_L in double; *mag = 2 + 2 sum_j |x_j y_j| (the size of its terms). */
double hg_test_score(const float *x, const float *y, int64_t d, double *mag);
/* count random pairs (u, v) of points < npts - 1, pair 1 a point with itself (score 0); with
 * nan_every, one end of every nan_every-th pair is the point npts - 1. */
void hg_test_random_pairs(int32_t *pairs, int64_t count, int32_t npts, uint64_t seed,
                          int nan_every);

/* ---- linear maps on their own (sst/): a map in a parameter group of its own, committed ---- */
#include "../sst/linear.h"

/* Create group + map on k (fails the test on error). max_rows as hg_linear_create. */
hg_linear *hg_test_linear_create(const hg_kctx *k, int64_t m, int64_t n, const float *W,
                                 const hg_linear_opts *o, uint64_t seed, int64_t max_rows);
/* The same, returning the status instead of failing (for validation tests). */
int hg_test_linear_try(const hg_kctx *k, int64_t m, int64_t n, const float *W,
                       const hg_linear_opts *o, uint64_t seed, hg_linear **out);
void hg_test_linear_free(hg_linear *L); /* the map and its group */
hg_params *hg_test_linear_group(const hg_linear *L);
void hg_test_linear_zero_grad(hg_linear *L);
double hg_test_linear_grad_sqnorm(const hg_linear *L);
void hg_test_linear_scale_grad(hg_linear *L, float a);
int hg_test_linear_step(hg_linear *L, float lr);
/* Name, data (k's memory, or host for "sched") and count of checkpoint tensor i. */
void hg_test_linear_tensor(const hg_linear *L, int i, const char **name, float **data,
                           int64_t *count);

#endif
