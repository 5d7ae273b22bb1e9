/* schedule.c - learning-rate schedules and early stopping (see schedule.h). */
#include "schedule.h"

#include <math.h>
#include <string.h>

#include "hg.h"

static const char *const lr_names[] = {"constant", "warmup", "invsqrt", "cosine"};

double hg_lr_at(const hg_lr_schedule *s, int64_t step)
{
    if (s->kind == HG_LR_CONSTANT)
        return s->base;
    if (step < 1)
        step = 1;
    if (s->warmup > 0 && step < s->warmup)
        return s->base * (double)step / (double)s->warmup;
    switch (s->kind) {
    case HG_LR_INVSQRT:
        return s->base * sqrt((double)(s->warmup > 0 ? s->warmup : 1) / (double)step);
    case HG_LR_COSINE: {
        int64_t span = s->total - s->warmup;
        if (span <= 0)
            return s->base;
        double p = (double)HG_MIN(HG_MAX(step - s->warmup, 0), span) / (double)span;
        return s->base * 0.5 * (1.0 + cos(M_PI * p));
    }
    default:
        return s->base;
    }
}

int hg_lr_kind_parse(const char *name)
{
    for (int k = 0; k < (int)(sizeof lr_names / sizeof lr_names[0]); k++)
        if (strcmp(name, lr_names[k]) == 0)
            return k;
    return -1;
}

const char *hg_lr_kind_name(hg_lr_kind kind)
{
    return (unsigned)kind < sizeof lr_names / sizeof lr_names[0] ? lr_names[kind] : "?";
}

void hg_early_stop_init(hg_early_stop *e, int higher_better, int64_t patience, int64_t min_step)
{
    e->higher_better = higher_better;
    e->patience = patience;
    e->min_step = min_step;
    e->best = higher_better ? -INFINITY : INFINITY;
    e->best_step = -1;
    e->since_best = 0;
}

int hg_early_stop_update(hg_early_stop *e, int64_t step, double v)
{
    /* the first evaluation is the best so far whatever its value (NaN stays the worst value) */
    int better = e->higher_better ? v > e->best : v < e->best; /* false for NaN */
    if (better || e->best_step < 0) {
        if (!isnan(v))
            e->best = v;
        e->best_step = step;
        e->since_best = 0;
        return 1;
    }
    e->since_best++;
    return 0;
}

int hg_early_stop_done(const hg_early_stop *e, int64_t step)
{
    return e->since_best >= e->patience && step >= e->min_step;
}
