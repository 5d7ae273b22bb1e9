/* tf_train.h - what `hgnn-mt train` and `hgnn-lm train` share around the training driver
 * (driver.h): the end of a data-parallel gradient step, the optimiser step with the replicas'
 * check, the reload hook, and the fields of the result line that do not depend on the task.
 * Each program's run struct starts with an hg_tf_train, so that hg_tf_train_update and
 * hg_tf_train_reloaded serve as the driver's callbacks with the run as their context. */
#ifndef HG_CLI_TF_TRAIN_H
#define HG_CLI_TF_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "../dist.h"
#include "../driver.h"
#include "../io.h"
#include "../models/transformer.h"

typedef struct hg_tf_train {
    hg_tf *model;          /* the model trained (borrowed) */
    const hg_kctx *k;      /* its kernel context */
    hg_dist dist;          /* the data-parallel ranks (a world of one without mpirun) */
    float clip;            /* gradient clipping (0: none) */
    int64_t check_every;   /* steps between the replicas' checksum comparisons */
    int threads;
    double tokens;         /* tokens trained on by this process */
} hg_tf_train;

/* The metrics of both programs' evaluations: validation loss (selected; lower is better) and
 * perplexity. */
enum { HG_TF_M_LOSS, HG_TF_M_PPL, HG_TF_NMETRICS };

/* Set up the driver d of a Transformer program. The program fills m's ctx (its run, which
 * starts with t), reg, grad, evaluate, meta and add_json, and c's max_steps, eval_every, lr,
 * save_every, quiet, no_summary, out_dir, program and t_start; this fills the rest: the metrics
 * above, the shared update and reload callbacks, steps as the unit, no early stopping (the final
 * model is the result), a log line at every evaluation, t's ranks. Errors: those of
 * hg_driver_init. */
int hg_tf_train_driver(hg_tf_train *t, hg_driver *d, hg_driver_model *m, hg_driver_config *c);

/* The end of a step's gradient, after this rank's `accum` micro-batches added their gradients
 * and sc[0..n) their sums (sc[0]: the sum of the micro-batches' mean losses): sums sc and the
 * gradients over the ranks (a rank whose loss or gradient is not finite stops every rank at this
 * step), divides the gradients by accum x ranks, and gives the step's loss (sc[0] / (accum x
 * ranks)) and the gradients' global norm. Errors: those of hg_dist_step_scalars and
 * hg_dist_sum_grad. */
int hg_tf_train_reduce(hg_tf_train *t, int64_t step, int64_t accum, double *sc, int n,
                       double *loss, double *grad_norm);
/* The driver's update: hg_tf_step (clipping, then the optimiser), then every check_every steps
 * the replicas' parameters compared, then a sync of the context. ctx: a run struct whose first
 * member is its hg_tf_train. Errors: those of hg_tf_step, hg_dist_check_replicas, hg_k_sync. */
int hg_tf_train_update(void *ctx, int64_t step, double lr, double grad_norm);
/* The driver's reload hook: the maps' weights rebuilt from their tensors (same ctx). */
void hg_tf_train_reloaded(void *ctx);
/* The checkpoints' meta data: {"model": name, "method", "rank", "layers", "dim", "vocab"}. */
void hg_tf_train_meta(const hg_tf_train *t, const char *name, const hg_linear_opts *lin,
                      int layers, int dim, char *buf, size_t cap);
/* The result line's fields after the task's own: the driver's training fields, tokens_per_s,
 * world_size, comm_share, trainable_params, optimizer_state_floats, the timings, threads and
 * device. */
void hg_tf_train_json(const hg_tf_train *t, hg_json *j, const hg_driver *d);

#endif
