/* test_metrics.c - evaluation metrics (hand-derived from scikit-learn's definitions) and the
 * file outputs of io.c (.npy, checkpoints, atomic writes, mkdir -p, JSON). */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/hg.h"
#include "../src/io.h"
#include "../src/metrics.h"
#include "../src/rng.h"

/* Metric values are exact rationals computed from integer counts, then one or a few double
 * operations: a few ulp of error at most, so 1e-14 absolute is generous and still catches any
 * wrong tie handling (which moves the value by at least 1/(P N) here). */
#define METRIC_ATOL 1e-14

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void assert_close1(double got, double want, const char *what)
{
    hg_assert_allclose(&got, &want, 1, METRIC_ATOL, 0.0, what);
}

static void assert_error_mentions(const char *needle)
{
    if (!strstr(hg_last_error(), needle))
        fail_msg("error message \"%s\" does not mention \"%s\"", hg_last_error(), needle);
}

/* ---- accuracy and F1 ----------------------------------------------------------------------- */

static void test_accuracy(void **state)
{
    (void)state;
    const int32_t pred[] = {0, 1, 2, 2, 1}, label[] = {0, 2, 2, 1, 1};
    double acc = -1;
    assert_int_equal(hg_metric_accuracy(&acc, pred, label, 5), HG_OK);
    assert_close1(acc, 3.0 / 5.0, "accuracy"); /* samples 0, 2, 4 right */
    assert_int_equal(hg_metric_accuracy(&acc, pred, label, 0), HG_EINVAL);
    assert_int_equal(hg_metric_accuracy(NULL, pred, label, 5), HG_EINVAL);
}

static void test_f1_micro(void **state)
{
    (void)state;
    /* Three classes -> micro: TP = 3 (samples 0, 2, 4), each of the 2 misses is one FP (for the
     * predicted class) and one FN (for the true class): F1 = 2*3 / (2*3 + 2 + 2) = 0.6 = acc. */
    const int32_t pred[] = {0, 1, 2, 2, 1}, label[] = {0, 2, 2, 1, 1};
    double f1 = -1;
    assert_int_equal(hg_metric_f1(&f1, pred, label, 5, 3), HG_OK);
    assert_close1(f1, 0.6, "micro f1");
    /* Six classes, one right out of four: 2 / (2 + 3 + 3) = 0.25. */
    const int32_t p2[] = {5, 4, 3, 0}, y2[] = {5, 1, 2, 3};
    assert_int_equal(hg_metric_f1(&f1, p2, y2, 4, 6), HG_OK);
    assert_close1(f1, 0.25, "micro f1, 6 classes");
}

static void test_f1_binary(void **state)
{
    (void)state;
    /* Two classes -> binary, positive 1: TP = 2 (samples 0, 4), FP = 1 (sample 1), FN = 1
     * (sample 3): precision = recall = 2/3, F1 = 4 / 6 = 2/3 (accuracy would be 3/5). */
    const int32_t pred[] = {1, 1, 0, 0, 1}, label[] = {1, 0, 0, 1, 1};
    double f1 = -1;
    assert_int_equal(hg_metric_f1(&f1, pred, label, 5, 2), HG_OK);
    assert_close1(f1, 2.0 / 3.0, "binary f1");
    /* Class 0 is not the positive class: swapping the roles changes F1.
     * TP = 1 (sample 2), FP = 1 (sample 3), FN = 1 (sample 1): 2 / 4 = 0.5. */
    const int32_t np[] = {0, 0, 1, 1, 0}, ny[] = {0, 1, 1, 0, 0};
    assert_int_equal(hg_metric_f1(&f1, np, ny, 5, 2), HG_OK);
    assert_close1(f1, 0.5, "binary f1, swapped");
}

static void test_f1_zero_division(void **state)
{
    (void)state;
    double f1 = -1;
    /* No positive predicted nor present: TP = FP = FN = 0, precision and recall 0/0;
     * sklearn (zero_division="warn") returns 0. Accuracy would be 1. */
    const int32_t zeros[] = {0, 0, 0};
    assert_int_equal(hg_metric_f1(&f1, zeros, zeros, 3, 2), HG_OK);
    assert_close1(f1, 0.0, "f1 0/0");
    /* Positives present, none predicted: precision 0/0 -> 0, recall 0/1 = 0, F1 0. */
    const int32_t y1[] = {1, 0, 0};
    f1 = -1;
    assert_int_equal(hg_metric_f1(&f1, zeros, y1, 3, 2), HG_OK);
    assert_close1(f1, 0.0, "f1 no predicted positive");
    /* Positives predicted, none present: recall 0/0 -> 0, precision 0. */
    f1 = -1;
    assert_int_equal(hg_metric_f1(&f1, y1, zeros, 3, 2), HG_OK);
    assert_close1(f1, 0.0, "f1 no true positive");
}

static void test_f1_invalid(void **state)
{
    (void)state;
    double f1 = 7;
    const int32_t pred[] = {0, 2}, label[] = {0, 1};
    assert_int_equal(hg_metric_f1(&f1, pred, label, 2, 2), HG_EINVAL); /* 2 not in [0, 2) */
    assert_error_mentions("outside");
    const int32_t neg[] = {-1, 0};
    assert_int_equal(hg_metric_f1(&f1, neg, label, 2, 3), HG_EINVAL);
    assert_int_equal(hg_metric_f1(&f1, label, label, 2, 0), HG_EINVAL);
    assert_true(f1 == 7); /* untouched on failure */
}

/* ---- ROC AUC and average precision ---------------------------------------------------------- */

/* Checks AUC and AP of one case, and that idx holds the deterministic order. */
static void check_rank_case(const float *s, const uint8_t *y, int64_t n, double want_auc,
                            double want_ap)
{
    int64_t idx[64];
    double auc = -1, ap = -1;
    assert_true(n <= 64);
    assert_int_equal(hg_metric_roc_auc(&auc, s, y, n, idx), HG_OK);
    assert_close1(auc, want_auc, "roc auc");
    for (int64_t k = 0; k + 1 < n; k++) /* scores descending, index ascending among ties */
        assert_true(s[idx[k]] > s[idx[k + 1]] ||
                    (s[idx[k]] == s[idx[k + 1]] && idx[k] < idx[k + 1]));
    assert_int_equal(hg_metric_average_precision(&ap, s, y, n, idx), HG_OK);
    assert_close1(ap, want_ap, "average precision");
    /* the combined call (one ranking) gives the same two values */
    double auc2 = -1, ap2 = -1;
    assert_int_equal(hg_metric_roc_auc_ap(&auc2, &ap2, s, y, n, idx), HG_OK);
    assert_true(auc2 == auc && ap2 == ap);
}

static void test_auc_ap_distinct(void **state)
{
    (void)state;
    /* sklearn's docstring example. Descending: 0.8(+) 0.4(-) 0.35(+) 0.1(-); P = N = 2.
     * ROC points (FPR, TPR): (0,0) (0,.5) (.5,.5) (.5,1) (1,1); area = .5*.5 + .5*1 = 0.75
     * (pairs: 0.8 beats both negatives, 0.35 beats 0.1 only: 3/4).
     * AP: thresholds with a recall step: 0.8 (R .5, P 1), 0.35 (R 1, P 2/3):
     * .5*1 + .5*2/3 = 5/6 = 0.8333333. */
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t y[] = {0, 0, 1, 1};
    check_rank_case(s, y, 4, 0.75, 5.0 / 6.0);
}

static void test_auc_ap_ties_across_classes(void **state)
{
    (void)state;
    /* scores [0.5,0.5,0.5,0.2] labels [1,0,1,0]: P = N = 2. Distinct thresholds descending:
     *   0.5: TP 2, FP 1 -> (FPR, TPR) = (.5, 1), precision 2/3, recall 1
     *   0.2: TP 2, FP 2 -> (1, 1)
     * ROC AUC = trapezoid over (0,0) (.5,1) (1,1) = .5*(0+1)/2 + .5*(1+1)/2 = .25 + .5 = 0.75
     * (Mann-Whitney: each positive ties the 0.5 negative (1/2) and beats 0.2 (1): 3/4).
     * AP = (1 - 0) * 2/3 = 2/3: the tied group enters as one step, not in some sample order
     * (ranking the positives first would give 1, the negative first 5/6). */
    const float s[] = {0.5f, 0.5f, 0.5f, 0.2f};
    const uint8_t y[] = {1, 0, 1, 0};
    check_rank_case(s, y, 4, 0.75, 2.0 / 3.0);
}

static void test_auc_ap_ties_mixed(void **state)
{
    (void)state;
    /* scores [.9 .7 .7 .7 .3 .3] labels [1 1 0 0 1 0]: P = N = 3.
     *   .9: TP 1 FP 0 -> (0, 1/3),   precision 1,   recall 1/3
     *   .7: TP 2 FP 2 -> (2/3, 2/3), precision 1/2, recall 2/3
     *   .3: TP 3 FP 3 -> (1, 1),     precision 1/2, recall 1
     * AUC = 0 + (2/3)(1/3 + 2/3)/2 + (1/3)(2/3 + 1)/2 = 1/3 + 5/18 = 11/18
     * (Mann-Whitney: .9 beats 3; .7 ties 2, beats 1 -> 2; .3 ties 1 -> 1/2; 5.5/9 = 11/18).
     * AP = (1/3)(1) + (1/3)(1/2) + (1/3)(1/2) = 2/3. */
    const float s[] = {0.9f, 0.7f, 0.7f, 0.7f, 0.3f, 0.3f};
    const uint8_t y[] = {1, 1, 0, 0, 1, 0};
    check_rank_case(s, y, 6, 11.0 / 18.0, 2.0 / 3.0);
    /* Same multiset in another order: same values (no dependence on input order). */
    const float s2[] = {0.3f, 0.7f, 0.9f, 0.3f, 0.7f, 0.7f};
    const uint8_t y2[] = {1, 0, 1, 0, 1, 0};
    check_rank_case(s2, y2, 6, 11.0 / 18.0, 2.0 / 3.0);
}

static void test_auc_ap_extremes(void **state)
{
    (void)state;
    /* All scores tied: one ROC point (1,1), AUC = 1/2; AP = 1 * P/n = 1/2. */
    const float tied[] = {0.5f, 0.5f, 0.5f, 0.5f};
    const uint8_t y[] = {1, 0, 1, 0};
    check_rank_case(tied, y, 4, 0.5, 0.5);
    /* Perfect ranking: AUC 1, AP 1. */
    const float good[] = {0.9f, 0.1f, 0.8f, 0.2f};
    check_rank_case(good, y, 4, 1.0, 1.0);
    /* Reversed: AUC 0; descending 0.9(-) 0.8(-) 0.2(+) 0.1(+):
     * AP = .5 * 1/3 + .5 * 2/4 = 5/12. */
    const float bad[] = {0.1f, 0.9f, 0.2f, 0.8f};
    check_rank_case(bad, y, 4, 0.0, 5.0 / 12.0);
    /* Negative scores and -0 == +0 (a tie). (+) at 0, (-) at -0 tie: AUC over
     * {0(+), -0(-), -1(+), -2(-)}: pairs: +0 vs -0 tie 1/2, +0 vs -2 win, -1 vs -0 loss,
     * -1 vs -2 win: 2.5/4. AP: threshold 0: TP 1 FP 1 (P 1/2, R 1/2); -1: TP 2 FP 1 (2/3, 1):
     * .5*.5 + .5*2/3 = 7/12. */
    const float sz[] = {0.0f, -0.0f, -1.0f, -2.0f};
    check_rank_case(sz, y, 4, 0.625, 7.0 / 12.0);
}

static void test_auc_ap_undefined(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f};
    const uint8_t ones[] = {1, 1, 1}, zeros[] = {0, 0, 0};
    int64_t idx[3];
    double v = 42;
    assert_int_equal(hg_metric_roc_auc(&v, s, ones, 3, idx), HG_EINVAL);
    assert_error_mentions("one class");
    assert_int_equal(hg_metric_roc_auc(&v, s, zeros, 3, idx), HG_EINVAL);
    assert_int_equal(hg_metric_average_precision(&v, s, zeros, 3, idx), HG_EINVAL);
    assert_error_mentions("no positive");
    assert_true(v == 42);
    /* All positive: precision 1 at every threshold, AP = 1 (as sklearn). */
    assert_int_equal(hg_metric_average_precision(&v, s, ones, 3, idx), HG_OK);
    assert_close1(v, 1.0, "AP all positive");
    /* Bad inputs. */
    const uint8_t two[] = {0, 2, 1};
    assert_int_equal(hg_metric_roc_auc(&v, s, two, 3, idx), HG_EINVAL);
    const float nan_s[] = {0.1f, NAN, 0.3f};
    const uint8_t y[] = {0, 1, 1};
    assert_int_equal(hg_metric_roc_auc(&v, nan_s, y, 3, idx), HG_EINVAL);
    const float inf_s[] = {0.1f, INFINITY, 0.3f};
    assert_int_equal(hg_metric_average_precision(&v, inf_s, y, 3, idx), HG_EINVAL);
    assert_int_equal(hg_metric_roc_auc(&v, s, y, 0, idx), HG_EINVAL);
    assert_int_equal(hg_metric_roc_auc(&v, s, y, 3, NULL), HG_EINVAL);
}

/* Oracles straight from the definitions, O(n^2): AUC as the Mann-Whitney statistic, AP by
 * evaluating precision and recall at every distinct score taken as a threshold. */
static double naive_auc(const float *s, const uint8_t *y, int n)
{
    double u = 0;
    int p = 0, q = 0;
    for (int i = 0; i < n; i++) {
        p += y[i];
        q += !y[i];
        for (int j = 0; j < n; j++)
            if (y[i] && !y[j])
                u += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    }
    return u / ((double)p * q);
}

static double naive_ap(const float *s, const uint8_t *y, int n)
{
    int p = 0;
    for (int i = 0; i < n; i++)
        p += y[i];
    /* Thresholds in descending order: repeatedly take the largest score below the last one. */
    double ap = 0, prev_r = 0, thr = INFINITY;
    for (;;) {
        double next = -INFINITY;
        for (int i = 0; i < n; i++)
            if (s[i] < thr && s[i] > next)
                next = s[i];
        if (next == -INFINITY)
            break;
        thr = next;
        int tp = 0, fp = 0;
        for (int i = 0; i < n; i++)
            if (s[i] >= thr) {
                tp += y[i];
                fp += !y[i];
            }
        double r = (double)tp / p;
        ap += (r - prev_r) * ((double)tp / (tp + fp));
        prev_r = r;
    }
    return ap;
}

static void test_auc_ap_random_vs_naive(void **state)
{
    (void)state;
    enum { N = 300 };
    float s[N];
    uint8_t y[N];
    int64_t idx[N];
    hg_rng r;
    hg_rng_seed(&r, 1234);
    for (int trial = 0; trial < 20; trial++) {
        int levels = 2 + trial * 3; /* few levels -> many ties */
        for (int i = 0; i < N; i++) {
            s[i] = (float)hg_rng_below(&r, (uint64_t)levels) / (float)levels - 0.25f;
            y[i] = hg_rng_uniform(&r) < 0.3 + 0.4 * s[i];
        }
        double auc, ap;
        assert_int_equal(hg_metric_roc_auc(&auc, s, y, N, idx), HG_OK);
        assert_int_equal(hg_metric_average_precision(&ap, s, y, N, idx), HG_OK);
        /* The oracles sum O(n) doubles in another order: allow 1e-12. */
        double want_auc = naive_auc(s, y, N), want_ap = naive_ap(s, y, N);
        hg_assert_allclose(&auc, &want_auc, 1, 1e-12, 0.0, "auc vs naive");
        hg_assert_allclose(&ap, &want_ap, 1, 1e-12, 0.0, "ap vs naive");
    }
}

/* ---- file helpers ---------------------------------------------------------------------------- */

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/hg_test_metrics_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void join(char *out, size_t cap, const char *name)
{
    int m = snprintf(out, cap, "%s/%s", tmpdir, name);
    assert_true(m > 0 && (size_t)m < cap);
}

/* Whole file into a malloc'ed buffer (caller frees). */
static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- .npy ----------------------------------------------------------------------------------- */

static void test_npy_roundtrip(void **state)
{
    (void)state;
    char path[256], tmp[300];
    join(path, sizeof path, "m.npy");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    float x[3 * 5];
    for (int i = 0; i < 15; i++)
        x[i] = (float)i * 0.5f - 3.25f;
    assert_int_equal(hg_npy_write(path, x, 3, 5), HG_OK);
    assert_false(exists(tmp));

    size_t size;
    unsigned char *b = slurp(path, &size);
    assert_memory_equal(b, "\x93NUMPY\x01\x00", 8);
    size_t hlen = (size_t)b[8] | (size_t)b[9] << 8;
    size_t data_off = 10 + hlen;
    assert_int_equal(data_off % 64, 0);
    assert_int_equal(size, data_off + sizeof x);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }";
    size_t dlen = strlen(dict);
    assert_memory_equal(b + 10, dict, dlen);
    for (size_t i = 10 + dlen; i < data_off - 1; i++)
        assert_int_equal(b[i], ' ');
    assert_int_equal(b[data_off - 1], '\n');
    for (int i = 0; i < 15; i++) { /* little-endian float32 */
        uint32_t u = (uint32_t)b[data_off + 4 * i] | (uint32_t)b[data_off + 4 * i + 1] << 8 |
                     (uint32_t)b[data_off + 4 * i + 2] << 16 |
                     (uint32_t)b[data_off + 4 * i + 3] << 24;
        float v;
        memcpy(&v, &u, 4);
        assert_true(v == x[i]);
    }
    free(b);

    /* Empty matrix: header only, still aligned. */
    assert_int_equal(hg_npy_write(path, NULL, 0, 7), HG_OK);
    b = slurp(path, &size);
    assert_int_equal(size % 64, 0);
    assert_non_null(memmem(b, size, "'shape': (0, 7)", 15));
    free(b);
    assert_int_equal(hg_npy_write(path, x, -1, 5), HG_EINVAL);
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

enum { NT = 3 };
static const char *const ck_names[NT] = {"layer0.W", "layer0.b", "empty"};
static const int64_t ck_counts[NT] = {6000, 3, 0}; /* 6000 > one I/O chunk */
static float ck_w[6000], ck_b[3];
static const char *ck_meta = "{\"lr\": 0.01, \"dataset\": \"cora\"}";

static void write_ckpt(const char *path)
{
    for (int i = 0; i < 6000; i++)
        ck_w[i] = (float)i * 0.001f - 1.0f;
    ck_b[0] = 1.5f;
    ck_b[1] = -2.0f;
    ck_b[2] = 1e-30f;
    const float *const data[NT] = {ck_w, ck_b, NULL};
    assert_int_equal(hg_ckpt_write(path, NT, ck_names, data, ck_counts, ck_meta), HG_OK);
}

/* Read into sentinel-filled buffers; on failure check they are untouched. */
static int read_ckpt(const char *path, const char *const *names, const int64_t *counts, int n)
{
    static float w[6001], b[4];
    for (int i = 0; i < 6001; i++)
        w[i] = 777.0f;
    for (int i = 0; i < 4; i++)
        b[i] = 777.0f;
    float *const data[NT] = {w, b, NULL};
    int rc = hg_ckpt_read(path, n, names, data, counts, NULL, 0, NULL);
    if (rc != HG_OK) {
        for (int i = 0; i < 6001; i++)
            assert_true(w[i] == 777.0f);
        for (int i = 0; i < 4; i++)
            assert_true(b[i] == 777.0f);
    }
    return rc;
}

static void test_ckpt_roundtrip(void **state)
{
    (void)state;
    char path[256], tmp[300];
    join(path, sizeof path, "model.ckpt");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_ckpt(path);
    assert_false(exists(tmp)); /* no temporary left after success */

    static float w[6000];
    float b[3];
    float *const data[NT] = {w, b, NULL};
    char meta[256];
    size_t meta_len = 0;
    assert_int_equal(
        hg_ckpt_read(path, NT, ck_names, data, ck_counts, meta, sizeof meta, &meta_len), HG_OK);
    assert_memory_equal(w, ck_w, sizeof w);
    assert_memory_equal(b, ck_b, sizeof b);
    assert_string_equal(meta, ck_meta);
    assert_int_equal(meta_len, strlen(ck_meta));

    /* A subset, in another order, with a short meta buffer (truncated, full length reported). */
    const char *const sub_names[1] = {"layer0.b"};
    const int64_t sub_counts[1] = {3};
    float *const sub_data[1] = {b};
    memset(b, 0, sizeof b);
    char small[5];
    assert_int_equal(
        hg_ckpt_read(path, 1, sub_names, sub_data, sub_counts, small, sizeof small, &meta_len),
        HG_OK);
    assert_memory_equal(b, ck_b, sizeof b);
    assert_string_equal(small, "{\"lr");
    assert_int_equal(meta_len, strlen(ck_meta));

    /* Writer argument checks. */
    const char *const dup[2] = {"a", "a"};
    const int64_t c2[2] = {1, 1};
    const float *const d2[2] = {ck_b, ck_b};
    assert_int_equal(hg_ckpt_write(path, 2, dup, d2, c2, NULL), HG_EINVAL);
    /* ... and the good file survived the refused write. */
    assert_int_equal(read_ckpt(path, ck_names, ck_counts, NT), HG_OK);
}

static void test_ckpt_failures(void **state)
{
    (void)state;
    char path[256], bad[256];
    join(path, sizeof path, "good.ckpt");
    join(bad, sizeof bad, "bad.ckpt");
    write_ckpt(path);
    size_t size;
    unsigned char *good = slurp(path, &size);
    unsigned char *b = malloc(size + 1);
    assert_non_null(b);

    /* Missing file: HG_EIO naming the path. */
    char missing[256];
    join(missing, sizeof missing, "nope.ckpt");
    assert_int_equal(read_ckpt(missing, ck_names, ck_counts, NT), HG_EIO);
    assert_error_mentions(missing);

    /* Wrong magic. */
    memcpy(b, good, size);
    b[0] = 'X';
    spit(bad, b, size);
    assert_int_equal(read_ckpt(bad, ck_names, ck_counts, NT), HG_EFORMAT);
    assert_error_mentions("magic");
    assert_error_mentions(bad);

    /* Truncated: in the middle of a tensor, just before the checksum, and in the header. */
    const size_t cuts[] = {size / 2, size - 8, size - 1, 12, 0};
    for (size_t k = 0; k < NELEM(cuts); k++) {
        spit(bad, good, cuts[k]);
        assert_int_equal(read_ckpt(bad, ck_names, ck_counts, NT), HG_EFORMAT);
        assert_error_mentions("truncated");
    }

    /* Trailing garbage after the checksum. */
    memcpy(b, good, size);
    b[size] = 0;
    spit(bad, b, size + 1);
    assert_int_equal(read_ckpt(bad, ck_names, ck_counts, NT), HG_EFORMAT);

    /* One flipped bit in the data of layer0.W: checksum mismatch. */
    memcpy(b, good, size);
    b[size / 2] ^= 0x10;
    spit(bad, b, size);
    assert_int_equal(read_ckpt(bad, ck_names, ck_counts, NT), HG_EFORMAT);
    assert_error_mentions("checksum");
    /* A flipped bit in the meta JSON too. */
    memcpy(b, good, size);
    b[8 + 16 + 3] ^= 0x01;
    spit(bad, b, size);
    assert_int_equal(read_ckpt(bad, ck_names, ck_counts, NT), HG_EFORMAT);
    assert_error_mentions("checksum");

    /* Wrong count requested. */
    const int64_t wrong[NT] = {6000, 4, 0};
    assert_int_equal(read_ckpt(path, ck_names, wrong, NT), HG_EFORMAT);
    assert_error_mentions("layer0.b");
    assert_error_mentions("expected 4");

    /* Missing tensor. */
    const char *const other[NT] = {"layer0.W", "layer1.b", "empty"};
    assert_int_equal(read_ckpt(path, other, ck_counts, NT), HG_EFORMAT);
    assert_error_mentions("missing tensor 'layer1.b'");

    /* Unsupported version (checked before the checksum; bytes 8..11). */
    memcpy(b, good, size);
    b[8] = 9;
    spit(bad, b, size);
    assert_int_equal(read_ckpt(bad, ck_names, ck_counts, NT), HG_EFORMAT);
    assert_error_mentions("version");

    /* The good file still reads. */
    assert_int_equal(read_ckpt(path, ck_names, ck_counts, NT), HG_OK);
    free(good);
    free(b);
}

static void test_atomic_write(void **state)
{
    (void)state;
    char path[256], tmp[300];
    join(path, sizeof path, "atomic.ckpt");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_ckpt(path);

    /* The temporary cannot be created (PATH.tmp is a directory): the write fails with HG_EIO
     * naming the path, and the previous file is intact. */
    assert_int_equal(mkdir(tmp, 0700), 0);
    const float x[2] = {1, 2};
    const char *const nm[1] = {"x"};
    const int64_t cnt[1] = {2};
    const float *const dat[1] = {x};
    assert_int_equal(hg_ckpt_write(path, 1, nm, dat, cnt, "{}"), HG_EIO);
    assert_error_mentions(path);
    assert_int_equal(hg_npy_write(path, x, 1, 2), HG_EIO);
    assert_int_equal(read_ckpt(path, ck_names, ck_counts, NT), HG_OK);
    assert_int_equal(rmdir(tmp), 0);

    /* The rename fails (PATH is a non-empty directory): HG_EIO, and PATH.tmp is removed. */
    char dir[256], inner[300];
    join(dir, sizeof dir, "adir");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(inner, sizeof inner, "%s/keep", dir);
    spit(inner, (const unsigned char *)"k", 1);
    assert_int_equal(hg_ckpt_write(dir, 1, nm, dat, cnt, "{}"), HG_EIO);
    assert_error_mentions("rename");
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    assert_false(exists(tmp));
    assert_true(exists(inner));
}

/* ---- mkdir -p ------------------------------------------------------------------------------- */

static void test_mkdir_p(void **state)
{
    (void)state;
    char path[256], file[256], below[300];
    join(path, sizeof path, "a/b//c/");
    assert_int_equal(hg_mkdir_p(path), HG_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(hg_mkdir_p(path), HG_OK); /* existing: fine */
    /* A regular file in the way. */
    join(file, sizeof file, "a/f");
    spit(file, (const unsigned char *)"x", 1);
    snprintf(below, sizeof below, "%s/g", file);
    assert_int_equal(hg_mkdir_p(below), HG_EIO);
    assert_error_mentions(below);
    assert_int_equal(hg_mkdir_p(file), HG_EIO);
    assert_int_equal(hg_mkdir_p(""), HG_EINVAL);
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static void test_json_buf(void **state)
{
    (void)state;
    char buf[512];
    hg_json j;
    hg_json_begin_buf(&j, buf, sizeof buf);
    hg_json_add_str(&j, "name", "a\"b\\c\nd\te\x01/\xc3\xa9");
    hg_json_add_int(&j, "epochs", -42);
    hg_json_add_int(&j, "big", INT64_MIN);
    hg_json_add_double(&j, "lr", 0.1);
    hg_json_add_double(&j, "nan", NAN);
    hg_json_add_double(&j, "inf", -INFINITY);
    hg_json_add_double(&j, "two", 2.0);
    hg_json_add_bool(&j, "ok", 1);
    hg_json_add_bool(&j, "no", 0);
    hg_json_add_str(&j, "nil", NULL);
    hg_json_add_raw(&j, "opts", "{\"k\": [1, 2]}");
    assert_int_equal(hg_json_end(&j), HG_OK);
    assert_string_equal(buf, "{\"name\": \"a\\\"b\\\\c\\nd\\te\\u0001/\xc3\xa9\", "
                             "\"epochs\": -42, \"big\": -9223372036854775808, "
                             "\"lr\": 0.10000000000000001, \"nan\": null, \"inf\": null, "
                             "\"two\": 2, \"ok\": true, \"no\": false, \"nil\": null, "
                             "\"opts\": {\"k\": [1, 2]}}");
    /* %.17g round-trips. */
    double v = 1.0 / 3.0;
    hg_json_begin_buf(&j, buf, sizeof buf);
    hg_json_add_double(&j, "v", v);
    assert_int_equal(hg_json_end(&j), HG_OK);
    assert_true(strtod(buf + 6, NULL) == v);

    /* Too small: HG_EINVAL, and a NUL-terminated prefix. */
    char small[8];
    hg_json_begin_buf(&j, small, sizeof small);
    hg_json_add_str(&j, "key", "value");
    assert_int_equal(hg_json_end(&j), HG_EINVAL);
    assert_string_equal(small, "{\"key\":");
    /* Empty object. */
    hg_json_begin_buf(&j, buf, 3);
    assert_int_equal(hg_json_end(&j), HG_OK);
    assert_string_equal(buf, "{}");
}

static void test_json_file(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    hg_json j;
    hg_json_begin_file(&j, f);
    hg_json_add_str(&j, "task", "nc");
    hg_json_add_double(&j, "test_acc", 0.5);
    assert_int_equal(hg_json_end(&j), HG_OK);
    rewind(f);
    char buf[128] = "";
    assert_non_null(fgets(buf, sizeof buf, f));
    assert_string_equal(buf, "{\"task\": \"nc\", \"test_acc\": 0.5}");
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest metrics[] = {
        cmocka_unit_test(test_accuracy),
        cmocka_unit_test(test_f1_micro),
        cmocka_unit_test(test_f1_binary),
        cmocka_unit_test(test_f1_zero_division),
        cmocka_unit_test(test_f1_invalid),
        cmocka_unit_test(test_auc_ap_distinct),
        cmocka_unit_test(test_auc_ap_ties_across_classes),
        cmocka_unit_test(test_auc_ap_ties_mixed),
        cmocka_unit_test(test_auc_ap_extremes),
        cmocka_unit_test(test_auc_ap_undefined),
        cmocka_unit_test(test_auc_ap_random_vs_naive),
    };
    const struct CMUnitTest io[] = {
        cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test(test_ckpt_roundtrip),
        cmocka_unit_test(test_ckpt_failures),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_json_buf),
        cmocka_unit_test(test_json_file),
    };
    int failed = cmocka_run_group_tests_name("metrics", metrics, NULL, NULL);
    failed += cmocka_run_group_tests_name("io", io, setup_dir, teardown_dir);
    return failed;
}
