/* driver.h - the training loop shared by the programs: steps with a learning-rate schedule,
 * evaluations, early stopping on a validation metric, the best model's snapshot, the NaN guard,
 * checkpoints (the best model's, and a resumable one), step timing, the progress line, log.csv
 * and the final JSON result line. It knows nothing of graphs or sequences: a program describes
 * its model through hg_driver_model.
 *
 * Files in cfg.out_dir:
 *   log.csv          one line per evaluation: UNIT,loss,grad_norm,val_<metric>...,step_ms
 *   checkpoint.bin   the best model (its registry's tensors without HG_TENSOR_RUN), rewritten
 *                    every save_every steps when it changed and at the end
 *   last.ckpt        everything a resume needs: the model's registry (all of it), the best
 *                    model's snapshot ("best/<name>"), the driver's counters, best metrics and
 *                    early-stopping state ("driver/..."); every save_every steps and at the end.
 *                    It holds no timings, so an interrupted and resumed run ends with the same
 *                    bytes as an uninterrupted one
 *   result.json      the JSON line
 *   manifest.json    what makes the files above one set (outdir.h): every save stages the files
 *                    that changed and commits them with log.csv's lines so far, so that after a
 *                    kill at any moment the directory holds one run's files of one step
 * A run resumed from last.ckpt (hg_driver_run with resume = 1) continues exactly where the saved
 * one was: same metrics, same final parameters, same files (but for the timings), as a run
 * never interrupted. The timings reported (train_seconds, the median step) are those of the steps
 * taken by the process. */
#ifndef HG_DRIVER_H
#define HG_DRIVER_H

#include <stdint.h>
#include <stdio.h>

#include "dist.h"
#include "io.h"
#include "registry.h"
#include "schedule.h"

#define HG_DRIVER_MAX_METRICS 8

/* Metric flags: a log.csv column ("val_<name>"); reported (JSON "val_<name>", "test_<name>",
 * the progress line and the closing summary). */
enum { HG_METRIC_LOG = 1u << 0, HG_METRIC_REPORT = 1u << 1 };

typedef struct hg_metric_desc {
    const char *name;  /* e.g. "f1", "roc_auc" */
    const char *label; /* in the progress line (NULL: name) */
    unsigned flags;    /* HG_METRIC_* */
} hg_metric_desc;

typedef enum { HG_SPLIT_VAL = 0, HG_SPLIT_TEST = 1 } hg_split;

struct hg_driver;

/* The model as the driver sees it. Callbacks return HG_OK or a status with a message recorded;
 * ctx is their first argument. */
typedef struct hg_driver_model {
    void *ctx;
    /* Everything the model keeps across steps: parameters, optimiser moments and counters
       (saved in checkpoints, snapshotted as the best model) and, flagged HG_TENSOR_RUN, the
       run's own state (generators, data position, host copies kept for the outputs), saved in
       last.ckpt only. */
    hg_registry *reg;
    int nmetrics;                  /* at most HG_DRIVER_MAX_METRICS */
    const hg_metric_desc *metrics;
    int select;                    /* the metric early stopping and the best model follow */
    int higher_better;             /* for that metric */
    /* Gradients of step `step` (1, 2, ...): *loss, *grad_norm (global L2 norm). */
    int (*grad)(void *ctx, int64_t step, double *loss, double *grad_norm);
    /* The optimiser step with learning rate lr (grad_norm: as returned, for clipping). */
    int (*update)(void *ctx, int64_t step, double lr, double grad_norm);
    /* Every metric of the current model on a split, into out[nmetrics]. */
    int (*evaluate)(void *ctx, hg_split split, double *out);
    /* The registry's tensors were overwritten (load, resume, best restored): rebuild what
       derives from them. */
    void (*reloaded)(void *ctx);
    /* A new best model (the driver has taken its snapshot); NULL: nothing more to keep. */
    void (*on_best)(void *ctx);
    /* Write the best model's own outputs into dir besides checkpoint.bin, staged for the
       driver's next commit (hg_outdir_staged: DIR/NAME.new, NAME one of outdir.c's set);
       NULL: none. */
    int (*save_best)(void *ctx, const char *dir);
    /* Meta JSON stored in the checkpoints, into buf (cap bytes). */
    void (*meta)(void *ctx, char *buf, size_t cap);
    /* Fields of the JSON result line, in the program's order, calling hg_driver_json for the
       driver's own. */
    void (*add_json)(void *ctx, hg_json *j, const struct hg_driver *d);
} hg_driver_model;

typedef struct hg_driver_config {
    const char *unit;        /* what a step is called in messages, log.csv and the JSON ("epoch"
                                for full-batch training, "step") */
    int64_t max_steps;       /* 0: evaluate the initial model only */
    int64_t eval_every;      /* steps between evaluations (>= 1) */
    int64_t patience;        /* evaluations without improvement before stopping */
    int64_t min_steps;       /* no early stop before this step */
    hg_lr_schedule lr;
    int64_t save_every;      /* steps between saves of the checkpoints (>= 1) */
    int64_t log_freq;        /* steps between progress lines (0: none) */
    int quiet;               /* no progress line nor summary */
    int no_summary;          /* no closing "best STEP: test ..." line (the program reports its
                                final model itself) */
    const char *out_dir;     /* NULL: no files */
    const char *program;     /* for notes on stderr */
    double t_start;          /* hg_now() when the program started (for total_seconds) */
    hg_dist *dist;           /* data-parallel ranks (NULL: alone): rank 0 starts the run (afresh
                                or from last.ckpt) and every other rank takes the whole state
                                from it; the other ranks run with out_dir NULL and quiet */
} hg_driver_config;

typedef struct hg_driver {
    hg_driver_config cfg;
    hg_driver_model model;
    hg_early_stop es;
    int64_t step;            /* steps taken */
    int64_t first_step;      /* steps taken before this process (resumed) */
    int64_t log_lines;       /* lines of log.csv after its header */
    int64_t log_bytes;       /* bytes of log.csv written (whole lines) */
    char run_id[40];         /* this run's id in the directory's manifest (outdir.h) */
    int stopped_early;
    int dirty;               /* a best model not yet written */
    double train_seconds;    /* in the steps of this process */
    double best_val[HG_DRIVER_MAX_METRICS], best_test[HG_DRIVER_MAX_METRICS];
    double *step_ms;         /* (max_steps) time of each step of this process */
    unsigned char *best;     /* the best model: the registry's tensors without HG_TENSOR_RUN */
    hg_registry best_reg;    /* the snapshot under the model's names (checkpoint.bin) */
    hg_registry resume;      /* what last.ckpt holds */
    uint64_t state[10];      /* the driver's scalars, packed for last.ckpt */
    FILE *log;
    char *json;              /* the result line */
    unsigned char *sync;     /* with several ranks: the state sent from rank 0 at the start */
} hg_driver;

/* Set up a driver (allocates the snapshot, the step times and the checkpoint lists; copies cfg
 * and model; model->reg must be complete). Errors: HG_EINVAL (bad config or metric list),
 * HG_ENOMEM. */
int hg_driver_init(hg_driver *d, const hg_driver_config *cfg, const hg_driver_model *model);
void hg_driver_destroy(hg_driver *d); /* safe on a zeroed struct */

/* Load the model's tensors (not HG_TENSOR_RUN; HG_TENSOR_OPTIONAL ones may be absent) from a
 * checkpoint written by this program (version 1 or 2), then model.reloaded.
 * Errors: those of hg_registry_load. */
int hg_driver_load(hg_driver *d, const char *path);

/* Whether cfg.out_dir holds a last.ckpt to resume from. */
int hg_driver_resumable(const hg_driver *d);

/* Train: resume = 1 continues from cfg.out_dir/last.ckpt when it exists (otherwise starts
 * afresh); starting afresh evaluates the initial model as step 0. With several ranks (cfg.dist)
 * rank 0 does this and sends everything last.ckpt would hold to the others. Steps until max_steps or early
 * stopping, evaluating every eval_every steps; writes log.csv, progress lines and the
 * checkpoints (see above; all of them once more at the end). Errors: HG_ENUMERIC (non-finite
 * loss or gradient norm: the message names the step; checkpoint.bin keeps the best model), those
 * of the callbacks (evaluation failures say so with the step), HG_EIO, HG_ENOMEM, those of
 * hg_registry_load for last.ckpt. */
int hg_driver_run(hg_driver *d, int resume);

/* Put the best model's snapshot back into the model (then model.reloaded). */
void hg_driver_restore_best(hg_driver *d);

/* The driver's JSON fields, by group. */
enum {
    HG_DRIVER_JSON_PROGRESS = 1u << 0, /* "<unit>s" (steps taken), "best_<unit>", "stopped" */
    HG_DRIVER_JSON_METRICS = 1u << 1,  /* "val_<m>", "test_<m>" of the best model (reported m) */
    HG_DRIVER_JSON_TRAIN = 1u << 2,    /* "train_seconds" (this process's steps only) */
    HG_DRIVER_JSON_TIMING = 1u << 3,   /* "total_seconds", "<unit>_ms" (median step), and
                                          "peak_rss_mib" */
};
void hg_driver_json(const hg_driver *d, hg_json *j, unsigned groups);

/* Peak resident memory of this program in MiB: VmHWM of /proc/self/status (the high-water mark
 * of this address space). getrusage's ru_maxrss is the fallback only: it keeps the mark of the
 * process that started us across the exec, so a large parent inflates it. */
double hg_peak_rss_mib(void);

/* Print the summary line (unless quiet) and the JSON result line (model.add_json) to stdout,
 * and write it to out_dir/result.json. Errors: HG_EINVAL (line too long), HG_EIO. */
int hg_driver_report(hg_driver *d);

#endif
