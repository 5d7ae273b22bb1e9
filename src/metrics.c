/* metrics.c - evaluation metrics (see metrics.h); definitions follow scikit-learn. */
#include "metrics.h"

#include <math.h>

#include "hg.h"

int hg_metric_accuracy(double *out, const int32_t *pred, const int32_t *label, int64_t n)
{
    if (!out || !pred || !label || n <= 0)
        return HG_ERRORF(HG_EINVAL, "hg_metric_accuracy: need non-NULL arrays and n > 0 (n=%lld)",
                         (long long)n);
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++)
        correct += pred[i] == label[i];
    *out = (double)correct / (double)n;
    return HG_OK;
}

/* sklearn f1_score: F = 2 TP / (2 TP + FP + FN), which equals 2PR/(P+R) whenever P and R are
 * defined and gives 0 in every zero-division case sklearn resolves to 0. */
int hg_metric_f1(double *out, const int32_t *pred, const int32_t *label, int64_t n,
                 int32_t n_classes)
{
    if (!out || !pred || !label || n <= 0 || n_classes < 1)
        return HG_ERRORF(HG_EINVAL,
                         "hg_metric_f1: need non-NULL arrays, n > 0 and n_classes >= 1 "
                         "(n=%lld, n_classes=%d)",
                         (long long)n, (int)n_classes);
    int64_t tp = 0, fp = 0, fn = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t p = pred[i], y = label[i];
        if (p < 0 || p >= n_classes || y < 0 || y >= n_classes)
            return HG_ERRORF(HG_EINVAL,
                             "hg_metric_f1: sample %lld: pred %d / label %d outside [0, %d)",
                             (long long)i, (int)p, (int)y, (int)n_classes);
        if (n_classes == 2) { /* binary, positive label 1 */
            tp += p == 1 && y == 1;
            fp += p == 1 && y != 1;
            fn += p != 1 && y == 1;
        } else { /* micro: a miss is an FP for the predicted class and an FN for the true one */
            tp += p == y;
            fp += p != y;
            fn += p != y;
        }
    }
    int64_t den = 2 * tp + fp + fn;
    *out = den == 0 ? 0.0 : (double)(2 * tp) / (double)den;
    return HG_OK;
}

/* True when sample a ranks after sample b: scores descending, index ascending among ties
 * (a total order, so the sorted order is unique whatever the algorithm). */
static int ranks_after(const float *s, int64_t a, int64_t b)
{
    return s[a] < s[b] || (s[a] == s[b] && a > b);
}

static void sift_down(int64_t *idx, const float *s, int64_t root, int64_t n)
{
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && ranks_after(s, idx[c + 1], idx[c]))
            c++;
        if (!ranks_after(s, idx[c], idx[root]))
            return;
        int64_t t = idx[c];
        idx[c] = idx[root];
        idx[root] = t;
        root = c;
    }
}

/* Heapsort: O(n log n), in place, no allocation. */
static void rank_by_score(int64_t *idx, const float *s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    for (int64_t i = n / 2 - 1; i >= 0; i--)
        sift_down(idx, s, i, n);
    for (int64_t end = n - 1; end > 0; end--) {
        int64_t t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        sift_down(idx, s, 0, end);
    }
}

/* Shared argument checks and ranking of the two ranking metrics; counts the positives. */
static int rank_binary(int64_t *npos, const char *who, const double *out, const float *scores,
                       const uint8_t *labels, int64_t n, int64_t *idx)
{
    if (!out || !scores || !labels || !idx || n <= 0 || n > HG_METRIC_MAX_N)
        return HG_ERRORF(HG_EINVAL,
                         "%s: need non-NULL arrays and 0 < n <= 2^31 (n=%lld)", who,
                         (long long)n);
    int64_t p = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] > 1)
            return HG_ERRORF(HG_EINVAL, "%s: label[%lld] = %u is not 0 or 1", who, (long long)i,
                             (unsigned)labels[i]);
        if (!isfinite(scores[i]))
            return HG_ERRORF(HG_EINVAL, "%s: score[%lld] is not finite (%g)", who, (long long)i,
                             (double)scores[i]);
        p += labels[i];
    }
    rank_by_score(idx, scores, n);
    *npos = p;
    return HG_OK;
}

/* sklearn roc_auc_score (binary): trapezoid rule over the ROC points at distinct thresholds.
 * With integer counts, area * 2PN = sum_k (FP_k - FP_{k-1}) (TP_k + TP_{k-1}). */
static int roc_auc_ranked(double *out, const float *scores, const uint8_t *labels, int64_t n,
                          const int64_t *idx, int64_t npos)
{
    int64_t nneg = n - npos;
    if (npos == 0 || nneg == 0)
        return HG_ERRORF(HG_EINVAL,
                         "hg_metric_roc_auc: only one class present in the labels (%lld "
                         "positive, %lld negative): ROC AUC is undefined",
                         (long long)npos, (long long)nneg);
    int64_t tp = 0, fp = 0, tp_prev = 0, fp_prev = 0, area2 = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = idx[k];
        tp += labels[i];
        fp += 1 - labels[i];
        /* A threshold closes where the next score differs (or at the end): ties form one point. */
        if (k + 1 == n || scores[idx[k + 1]] != scores[i]) {
            area2 += (fp - fp_prev) * (tp + tp_prev);
            tp_prev = tp;
            fp_prev = fp;
        }
    }
    *out = (double)area2 / (2.0 * (double)npos * (double)nneg);
    return HG_OK;
}

int hg_metric_roc_auc(double *out, const float *scores, const uint8_t *labels, int64_t n,
                      int64_t *idx)
{
    int64_t npos = 0;
    int rc = rank_binary(&npos, "hg_metric_roc_auc", out, scores, labels, n, idx);
    return rc != HG_OK ? rc : roc_auc_ranked(out, scores, labels, n, idx, npos);
}

/* sklearn average_precision_score (binary): -sum(diff(recall) * precision[:-1]) over
 * precision_recall_curve, i.e. sum_k (R_k - R_{k-1}) P_k at distinct thresholds, descending. */
static int average_precision_ranked(double *out, const float *scores, const uint8_t *labels,
                                    int64_t n, const int64_t *idx, int64_t npos)
{
    if (npos == 0)
        return HG_ERRORF(HG_EINVAL,
                         "hg_metric_average_precision: no positive label among %lld samples: "
                         "recall, hence average precision, is undefined",
                         (long long)n);
    int64_t tp = 0, fp = 0, tp_prev = 0;
    double sum = 0.0; /* sum_k (TP_k - TP_{k-1}) * P_k; divided by P at the end */
    for (int64_t k = 0; k < n; k++) {
        int64_t i = idx[k];
        tp += labels[i];
        fp += 1 - labels[i];
        if (k + 1 == n || scores[idx[k + 1]] != scores[i]) {
            if (tp != tp_prev)
                sum += (double)(tp - tp_prev) * ((double)tp / (double)(tp + fp));
            tp_prev = tp;
        }
    }
    *out = sum / (double)npos;
    return HG_OK;
}

int hg_metric_average_precision(double *out, const float *scores, const uint8_t *labels,
                                int64_t n, int64_t *idx)
{
    int64_t npos = 0;
    int rc = rank_binary(&npos, "hg_metric_average_precision", out, scores, labels, n, idx);
    return rc != HG_OK ? rc : average_precision_ranked(out, scores, labels, n, idx, npos);
}

int hg_metric_roc_auc_ap(double *auc, double *ap, const float *scores, const uint8_t *labels,
                         int64_t n, int64_t *idx)
{
    int64_t npos = 0;
    int rc = rank_binary(&npos, "hg_metric_roc_auc_ap", auc, scores, labels, n, idx);
    if (rc == HG_OK && !ap)
        rc = HG_ERRORF(HG_EINVAL, "hg_metric_roc_auc_ap: NULL output");
    if (rc == HG_OK)
        rc = roc_auc_ranked(auc, scores, labels, n, idx, npos);
    if (rc == HG_OK)
        rc = average_precision_ranked(ap, scores, labels, n, idx, npos);
    return rc;
}
