/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>

#include "hg_config.h"
#include "../src/rng.h"

static void report_mismatch(double worst, size_t worst_i, double g, double w, size_t bad,
                            const char *what, const char *file, int line)
{
    print_error("%s:%d: %s: %zu mismatches; worst at [%zu]: got %.9g want %.9g (excess %.3g)\n",
                file, line, what, bad, worst_i, g, w, worst);
}

static void check_pair(double g, double w, size_t i, double atol, double rtol, size_t *bad,
                       double *worst, size_t *worst_i, const char *what, const char *file, int line)
{
    double tol = atol + rtol * fabs(w);
    double err = fabs(g - w);
    if (!(err <= tol)) { /* also catches NaN */
        if (*bad < 5)
            print_error("%s:%d: %s[%zu]: got %.9g want %.9g (|diff| %.3g > tol %.3g)\n", file, line,
                        what, i, g, w, err, tol);
        (*bad)++;
        double excess = isnan(err) ? INFINITY : err - tol;
        if (excess >= *worst) {
            *worst = excess;
            *worst_i = i;
        }
    }
}

void hg_assert_allclose_(const double *got, const double *want, size_t n, double atol, double rtol,
                         const char *what, const char *file, int line)
{
    size_t bad = 0, worst_i = 0;
    double worst = -1;
    for (size_t i = 0; i < n; i++)
        check_pair(got[i], want[i], i, atol, rtol, &bad, &worst, &worst_i, what, file, line);
    if (bad) {
        report_mismatch(worst, worst_i, got[worst_i], want[worst_i], bad, what, file, line);
        fail_msg("%s: not allclose", what);
    }
}

void hg_assert_allclose_f_(const float *got, const float *want, size_t n, double atol, double rtol,
                           const char *what, const char *file, int line)
{
    size_t bad = 0, worst_i = 0;
    double worst = -1;
    for (size_t i = 0; i < n; i++)
        check_pair(got[i], want[i], i, atol, rtol, &bad, &worst, &worst_i, what, file, line);
    if (bad) {
        report_mismatch(worst, worst_i, got[worst_i], want[worst_i], bad, what, file, line);
        fail_msg("%s: not allclose", what);
    }
}

void hg_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    hg_rng r;
    hg_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)hg_rng_uniform(&r);
}

void hg_check_grad_(hg_test_scalar_fn f, void *ctx, float *theta, const double *grad, size_t n,
                    size_t max_checks, double h, double atol, double rtol, const char *what,
                    const char *file, int line)
{
    size_t stride = n > max_checks ? n / max_checks : 1;
    size_t bad = 0, checked = 0;
    for (size_t i = 0; i < n; i += stride, checked++) {
        float saved = theta[i];
        theta[i] = (float)(saved + h);
        double hp = (double)theta[i] - saved; /* the step actually taken in float */
        double fp = f(ctx);
        theta[i] = (float)(saved - h);
        double hm = saved - (double)theta[i];
        double fm = f(ctx);
        theta[i] = saved;
        double num = (fp - fm) / (hp + hm);
        double ana = grad[i];
        double tol = atol + rtol * fmax(fabs(num), fabs(ana));
        if (!(fabs(num - ana) <= tol)) {
            if (bad < 5)
                print_error("%s:%d: %s grad[%zu]: analytic %.9g numeric %.9g (tol %.3g)\n", file,
                            line, what, i, ana, num, tol);
            bad++;
        }
    }
    if (bad)
        fail_msg("%s: %zu of %zu gradient entries disagree with central differences", what, bad,
                 checked);
}

const char *hg_test_data_dir(void) { return HG_SOURCE_DATA_DIR; }
