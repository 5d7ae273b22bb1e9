/* schedule.h - learning-rate schedules and early stopping: the two pieces of a training run's
 * control that are plain functions of the step and of the evaluations seen so far. */
#ifndef HG_SCHEDULE_H
#define HG_SCHEDULE_H

#include <stdint.h>

/* ---- learning-rate schedules ---- */

typedef enum {
    HG_LR_CONSTANT = 0, /* base */
    HG_LR_WARMUP,       /* linear warm-up from base / warmup to base over `warmup` steps, then
                           base */
    HG_LR_INVSQRT,      /* linear warm-up, then base * sqrt(warmup / step) (warmup 0: base /
                           sqrt(step)) */
    HG_LR_COSINE        /* linear warm-up, then base * (1 + cos(pi * p)) / 2 with p the fraction
                           of the steps after the warm-up done: base at the warm-up's end, 0 at
                           step `total` and after (total <= warmup: base) */
} hg_lr_kind;

typedef struct hg_lr_schedule {
    hg_lr_kind kind;
    double base;     /* the peak learning rate */
    int64_t warmup;  /* warm-up steps (0: none) */
    int64_t total;   /* steps of the whole run (cosine) */
} hg_lr_schedule;

/* Learning rate of step `step` (1 = the first step). */
double hg_lr_at(const hg_lr_schedule *s, int64_t step);
/* Parse / print a kind: "constant", "warmup", "invsqrt", "cosine"; -1 for an unknown name. */
int hg_lr_kind_parse(const char *name);
const char *hg_lr_kind_name(hg_lr_kind kind);

/* ---- early stopping ---- */

/* Tracks the best value of the selection metric over evaluations and says when to stop:
 * after `patience` evaluations in a row without improvement, once at least `min_step` steps have
 * been taken. A value improves on the best when it is strictly better (greater when
 * higher_better, else smaller); NaN is never better (it counts as the worst value). The first
 * evaluation is always the best so far (the initial model, before any step). */
typedef struct hg_early_stop {
    int higher_better;
    int64_t patience, min_step;
    double best;        /* best value so far (the worst value before any) */
    int64_t best_step;  /* step of the best value (-1 before any) */
    int64_t since_best; /* evaluations since the best one */
} hg_early_stop;

void hg_early_stop_init(hg_early_stop *e, int higher_better, int64_t patience, int64_t min_step);
/* Record the evaluation at `step` with value v; returns 1 when it is a new best (then best,
 * best_step are updated and since_best is 0), else 0 (since_best grows by one). */
int hg_early_stop_update(hg_early_stop *e, int64_t step, double v);
/* Whether to stop after the evaluation at `step`. */
int hg_early_stop_done(const hg_early_stop *e, int64_t step);

#endif
