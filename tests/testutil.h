/* testutil.h - shared cmocka helpers: tolerance comparisons and finite-difference checks. */
#ifndef HG_TESTUTIL_H
#define HG_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

#endif
