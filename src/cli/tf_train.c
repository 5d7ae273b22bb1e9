/* tf_train.c - the Transformer programs' shared training pieces (contract in tf_train.h). */
#include "tf_train.h"

#include <math.h>

#include "../hg.h"

static const hg_metric_desc metrics[HG_TF_NMETRICS] = {
    {"loss", NULL, HG_METRIC_LOG | HG_METRIC_REPORT},
    {"ppl", NULL, HG_METRIC_LOG | HG_METRIC_REPORT},
};

int hg_tf_train_driver(hg_tf_train *t, hg_driver *d, hg_driver_model *m, hg_driver_config *c)
{
    m->nmetrics = HG_TF_NMETRICS;
    m->metrics = metrics;
    m->select = HG_TF_M_LOSS;
    m->higher_better = 0;
    m->update = hg_tf_train_update;
    m->reloaded = hg_tf_train_reloaded;
    c->unit = "step";
    c->patience = c->max_steps + 1;
    c->min_steps = c->max_steps;
    c->log_freq = 1;
    c->dist = &t->dist;
    return hg_driver_init(d, c, m);
}

int hg_tf_train_reduce(hg_tf_train *t, int64_t step, int64_t accum, double *sc, int n,
                       double *loss, double *grad_norm)
{
    hg_params *P = hg_tf_params(t->model);
    const int64_t G = accum * t->dist.size; /* micro-batches of the step, every rank's */
    const int bad = t->dist.size > 1 && !(isfinite(sc[0]) && isfinite(hg_params_grad_sqnorm(P)));
    int rc = hg_dist_step_scalars(&t->dist, sc, n, bad, step);
    if (rc || (rc = hg_dist_sum_grad(&t->dist, hg_params_grad_buffer(P),
                                     hg_params_num_trainable(P))))
        return rc;
    if (G > 1)
        hg_params_scale_grad(P, 1.0f / (float)G);
    *loss = sc[0] / (double)G;
    *grad_norm = isfinite(*loss) ? sqrt(hg_params_grad_sqnorm(P)) : 0.0;
    return HG_OK;
}

int hg_tf_train_update(void *ctx, int64_t step, double lr, double grad_norm)
{
    hg_tf_train *t = ctx;
    hg_params *P = hg_tf_params(t->model);
    int rc = hg_tf_step(t->model, lr, grad_norm, t->clip);
    if (rc == HG_OK && step % t->check_every == 0)
        rc = hg_dist_check_replicas(&t->dist, hg_params_param_buffer(P),
                                    hg_params_param_floats(P), step);
    return rc ? rc : hg_k_sync(t->k);
}

void hg_tf_train_reloaded(void *ctx)
{
    hg_tf_train *t = ctx;
    hg_tf_rematerialise(t->model);
}

void hg_tf_train_meta(const hg_tf_train *t, const char *name, const hg_linear_opts *lin,
                      int layers, int dim, char *buf, size_t cap)
{
    hg_json j;
    hg_json_begin_buf(&j, buf, cap);
    hg_json_add_str(&j, "model", name);
    hg_json_add_str(&j, "method", hg_linear_method_name(lin->method));
    hg_json_add_int(&j, "rank", lin->rank);
    hg_json_add_int(&j, "layers", layers);
    hg_json_add_int(&j, "dim", dim);
    hg_json_add_int(&j, "vocab", hg_tf_cfg(t->model)->vocab);
    hg_json_end(&j);
}

void hg_tf_train_json(const hg_tf_train *t, hg_json *j, const hg_driver *d)
{
    const double secs = d->train_seconds;
    hg_driver_json(d, j, HG_DRIVER_JSON_TRAIN);
    hg_json_add_double(j, "tokens_per_s", secs > 0 ? t->tokens / secs : 0.0);
    hg_json_add_int(j, "world_size", t->dist.size);
    hg_json_add_double(j, "comm_share", secs > 0 ? t->dist.comm_seconds / secs : 0.0);
    hg_json_add_int(j, "trainable_params", hg_tf_num_trainable(t->model));
    hg_json_add_int(j, "optimizer_state_floats", hg_tf_state_floats(t->model));
    hg_driver_json(d, j, HG_DRIVER_JSON_TIMING);
    hg_json_add_int(j, "threads", t->threads);
    hg_json_add_str(j, "device", hg_k_device_name(t->k));
    hg_json_add_str(j, "precision", t->k->precision == HG_PREC_BF16 ? "bf16" : "fp32");
}
