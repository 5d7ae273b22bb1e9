/* metrics.h - evaluation metrics: accuracy, F1, ROC AUC, average precision.
 *
 * Definitions follow scikit-learn (accuracy_score, f1_score, roc_auc_score,
 * average_precision_score) so that numbers are comparable with HGCN/HyboNet's reference runs.
 * Nothing is allocated: the ranking metrics take a caller-provided index buffer of n entries.
 * Results are written to `*out` only on success. Long reductions run in (exact) integer counts
 * and double. */
#ifndef HG_METRICS_H
#define HG_METRICS_H

#include <stdint.h>

/* Largest n accepted by the ranking metrics: the trapezoid sum of ROC AUC is accumulated exactly
 * in int64 as sum(dFP * (TP_k + TP_{k-1})) <= 2 * P * N <= n^2 / 2, which fits for n <= 2^31. */
#define HG_METRIC_MAX_N ((int64_t)1 << 31)

/* Fraction of i in [0, n) with pred[i] == label[i] (sklearn accuracy_score).
 * Errors: HG_EINVAL if n <= 0 or a pointer is NULL. */
int hg_metric_accuracy(double *out, const int32_t *pred, const int32_t *label, int64_t n);

/* F1 score the way HGCN's acc_f1 calls sklearn's f1_score:
 * - n_classes == 2: average='binary', positive label 1: F1 = 2TP / (2TP + FP + FN);
 * - otherwise (n_classes == 1 or > 2): average='micro' over all classes, which for single-label
 *   predictions equals the accuracy (every error is one FP and one FN).
 * Zero division (2TP + FP + FN == 0, e.g. no positive predicted nor present in the binary case)
 * gives 0, as sklearn's default zero_division does (it also warns).
 * Every pred[i] and label[i] must lie in [0, n_classes).
 * Errors: HG_EINVAL if n <= 0, n_classes < 1, a pointer is NULL or a value is out of range. */
int hg_metric_f1(double *out, const int32_t *pred, const int32_t *label, int64_t n,
                 int32_t n_classes);

/* Area under the ROC curve, as sklearn.metrics.roc_auc_score for binary labels: the ROC curve has
 * one point per distinct score (ties grouped, thresholds descending) plus (0, 0), and the area is
 * the trapezoid rule over it, so a tie between a positive and a negative counts 1/2 (the
 * Mann-Whitney U statistic / (P N)). Computed as an exact integer ratio, correctly rounded;
 * sklearn's floating-point trapezoid agrees to a few ulp.
 * scores (n): higher means more likely positive; labels (n): 0 or 1.
 * idx (n): workspace, overwritten with the sample order (score descending, index ascending among
 * equal scores, so the order is deterministic; the value does not depend on it).
 * Errors: HG_EINVAL if n <= 0 or n > HG_METRIC_MAX_N, a pointer is NULL, a label is not 0/1,
 * a score is NaN or infinite (sklearn rejects them too), or y_true holds one class only
 * (undefined, sklearn raises ValueError). */
int hg_metric_roc_auc(double *out, const float *scores, const uint8_t *labels, int64_t n,
                      int64_t *idx);

/* Average precision, as sklearn.metrics.average_precision_score for binary labels:
 * AP = sum_k (R_k - R_{k-1}) P_k over the distinct scores taken as thresholds in descending order
 * (ties grouped, R_0 = 0), with P_k = TP_k / (TP_k + FP_k), R_k = TP_k / P. A step function, no
 * interpolation. All-positive labels give 1.
 * Arguments and idx as for hg_metric_roc_auc.
 * Errors: HG_EINVAL as for hg_metric_roc_auc, and when there is no positive label (recall is
 * undefined; recent sklearn returns 0 with a warning, older versions NaN; we refuse). An
 * all-positive input is accepted. */
int hg_metric_average_precision(double *out, const float *scores, const uint8_t *labels,
                                int64_t n, int64_t *idx);

/* Both ranking metrics from one ranking (the sort dominates their cost): the same values as
 * hg_metric_roc_auc and hg_metric_average_precision, the same errors. */
int hg_metric_roc_auc_ap(double *auc, double *ap, const float *scores, const uint8_t *labels,
                         int64_t n, int64_t *idx);

#endif
