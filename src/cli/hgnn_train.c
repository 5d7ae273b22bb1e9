/* hgnn_train.c - the hgnn-train program: loads a dataset, trains HyboNet with every linear map
 * in one of the sst/ modes, reports the paper's metrics and saves what the user asked for.
 * This is the one place that ties datasets/, hyperbolic/ and sst/ together; the training loop
 * itself is the shared driver's (src/driver.h), to which this file describes the model. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hg_config.h"
#include "options.h"
#include "../driver.h"
#include "../hg.h"
#include "../io.h"
#include "../outdir.h"
#include "../params.h"
#include "../metrics.h"
#include "../registry.h"
#include "../rng.h"
#include "../../datasets/dataset.h"
#include "../../hyperbolic/hybonet.h"

/* Exit codes: bad input or options, and a run that failed after it started (divergence, I/O). */
enum { EXIT_INPUT = 2, EXIT_RUN = 3 };

/* Gradient-clipping guard of torch.nn.utils.clip_grad_norm_ (max_norm / (norm + 1e-6)). */
#define HG_CLIP_EPS 1e-6

/* The metrics of an evaluation, in the driver's order: the validation loss goes to log.csv
 * only; the model is selected on val F1 (nc) or (AUC + AP) / 2 (lp), as HGCN's has_improved. */
enum { M_LOSS, M_ACC, M_F1 };
enum { M_AUC = 1, M_AP, M_AUC_AP };
static const hg_metric_desc nc_metrics[] = {
    {"loss", NULL, HG_METRIC_LOG},
    {"acc", NULL, HG_METRIC_LOG | HG_METRIC_REPORT},
    {"f1", NULL, HG_METRIC_LOG | HG_METRIC_REPORT},
};
static const hg_metric_desc lp_metrics[] = {
    {"loss", NULL, HG_METRIC_LOG},
    {"roc_auc", "auc", HG_METRIC_LOG | HG_METRIC_REPORT},
    {"ap", NULL, HG_METRIC_LOG | HG_METRIC_REPORT},
    {"auc_ap", NULL, 0},
};

typedef struct run {
    const hg_train_options *o;
    hg_kctx k;
    hg_dataset data;
    hg_hybonet model;
    char data_dir[4096];
    const char *name;
    /* evaluation workspace, sized once */
    int32_t *pred;       /* (n) */
    int64_t *rank_idx;   /* (2 * max eval pairs) */
    uint8_t *pair_label; /* (2 * max eval pairs) */
    int32_t *train_neg;  /* (2 * n_train_pos) */
    float *scores;       /* (2 * max eval pairs) pair scores brought back for the metrics */
    /* the index, label and pair arrays in the model's memory (the host arrays on the CPU) */
    const int64_t *k_idx_train, *k_idx_val, *k_idx_test;
    const int32_t *k_labels, *k_train_pos, *k_val_pos, *k_val_neg, *k_test_pos, *k_test_neg;
    int32_t *k_train_neg;
    void *k_bufs[16];    /* the device copies among them, freed at the end */
    int nk_bufs;
    float *best_emb;     /* (n x dim) embeddings of the best model */
    float *prune_w;      /* (dim x max din) a pruned weight */
    hg_rng neg_rng;      /* link prediction's training negatives */
    int64_t stats_base[2]; /* SST round ends and ReLoRA merges done before a resume */
    char *prune_json;    /* the pruning sweep's JSON array */
    hg_registry reg;     /* the model's tensors and the run's state */
    hg_driver drv;
} run;

/* ---- evaluation ---- */

/* idx: host copy (labels), k_idx: the model's (the same array on the CPU). */
static int eval_nc(run *r, const int64_t *idx, const int64_t *k_idx, int64_t count, double *out)
{
    hg_hybonet *m = &r->model;
    if (count <= 0) {
        out[M_LOSS] = out[M_ACC] = out[M_F1] = NAN;
        return HG_OK;
    }
    out[M_LOSS] = hg_hybonet_nc_loss(m, k_idx, count, r->k_labels, 0);
    hg_hybonet_nc_predict(m, k_idx, count, m->pred);
    hg_k_download(&r->k, r->pred, m->pred, (size_t)count * sizeof(int32_t));
    /* labels of the evaluated nodes, gathered into the second half of the workspace */
    int32_t *lab = (int32_t *)r->rank_idx;
    for (int64_t a = 0; a < count; a++)
        lab[a] = r->data.labels[idx[a]];
    int rc = hg_metric_accuracy(&out[M_ACC], r->pred, lab, count);
    if (!rc)
        rc = hg_metric_f1(&out[M_F1], r->pred, lab, count, r->data.nclasses);
    return rc;
}

static int eval_lp(run *r, const int32_t *pos, const int32_t *neg, int64_t count, double *out)
{
    hg_hybonet *m = &r->model;
    if (count <= 0) {
        out[M_LOSS] = out[M_AUC] = out[M_AP] = out[M_AUC_AP] = NAN;
        return HG_OK;
    }
    /* the loss leaves the scores of the positives, then the negatives, in m->pair_score */
    out[M_LOSS] = hg_hybonet_lp_loss(m, pos, neg, count, 0);
    hg_k_download(&r->k, r->scores, m->pair_score, (size_t)(2 * count) * sizeof(float));
    for (int64_t e = 0; e < 2 * count; e++)
        r->pair_label[e] = e < count;
    int rc = hg_metric_roc_auc_ap(&out[M_AUC], &out[M_AP], r->scores, r->pair_label, 2 * count,
                                  r->rank_idx);
    out[M_AUC_AP] = 0.5 * (out[M_AUC] + out[M_AP]);
    return rc;
}

/* Evaluate the current model (no dropout) on val or test (the driver's evaluate). */
static int evaluate(void *ctx, hg_split split, double *out)
{
    run *r = ctx;
    const hg_dataset *d = &r->data;
    const int test = split == HG_SPLIT_TEST;
    hg_hybonet_forward(&r->model, 0, 0);
    int rc;
    if (r->o->task == HG_TASK_NC)
        rc = test ? eval_nc(r, d->idx_test, r->k_idx_test, d->n_test, out)
                  : eval_nc(r, d->idx_val, r->k_idx_val, d->n_val, out);
    else
        rc = test ? eval_lp(r, r->k_test_pos, r->k_test_neg, d->n_test_pos, out)
                  : eval_lp(r, r->k_val_pos, r->k_val_neg, d->n_val_pos, out);
    /* a failure of the device's asynchronous work surfaces here at the latest */
    return rc ? rc : hg_k_sync(&r->k);
}

/* ---- training (the driver's grad and update) ---- */

static int train_grad(void *ctx, int64_t step, double *loss, double *grad_norm)
{
    run *r = ctx;
    hg_hybonet *m = &r->model;
    const hg_dataset *d = &r->data;
    uint64_t dseed = hg_rng_derive(r->o->seed, 1000 + (uint64_t)step);
    hg_hybonet_zero_grad(m);
    hg_hybonet_forward(m, 1, dseed);
    if (r->o->task == HG_TASK_NC) {
        *loss = hg_hybonet_nc_loss(m, r->k_idx_train, d->n_train, r->k_labels, 1);
    } else {
        hg_dataset_sample_negatives(d, &r->neg_rng, r->train_neg, d->n_train_pos);
        if (r->k_train_neg != r->train_neg) /* the step's one input upload */
            hg_k_upload(&r->k, r->k_train_neg, r->train_neg,
                        (size_t)(2 * d->n_train_pos) * sizeof(int32_t));
        *loss = hg_hybonet_lp_loss(m, r->k_train_pos, r->k_train_neg, d->n_train_pos, 1);
    }
    *grad_norm = 0.0;
    if (!isfinite(*loss)) /* the driver stops here */
        return HG_OK;
    hg_hybonet_backward(m, 1, dseed);
    *grad_norm = hg_hybonet_grad_norm(m);
    return HG_OK;
}

static int train_update(void *ctx, int64_t step, double lr, double grad_norm)
{
    run *r = ctx;
    const hg_train_options *o = r->o;
    (void)step;
    if (o->grad_clip > 0.0f && grad_norm > o->grad_clip)
        hg_hybonet_scale_grad(&r->model, (float)(o->grad_clip / (grad_norm + HG_CLIP_EPS)));
    int rc = hg_hybonet_step(&r->model, (float)lr, o->stabilize);
    /* (the sync: the step's time includes the device's queued work) */
    return rc ? rc : hg_k_sync(&r->k);
}

/* ---- the model's state (the driver's registry) ---- */

static void reloaded(void *ctx)
{
    run *r = ctx;
    hg_hybonet_rematerialise(&r->model);
}

static void on_best(void *ctx)
{
    run *r = ctx;
    hg_k_download(&r->k, r->best_emb, r->model.emb,
                  (size_t)(r->data.n * r->model.cfg.dim) * sizeof(float));
}

static int save_embeddings(void *ctx, const char *dir)
{
    run *r = ctx;
    char path[4200];
    hg_outdir_staged(path, sizeof path, dir, "embeddings.npy");
    return hg_npy_write(path, r->best_emb, r->data.n, r->model.cfg.dim);
}

/* SST round ends and ReLoRA merges of every layer, those before a resume included. */
static void linear_stats(const run *r, hg_linear_stats *total)
{
    memset(total, 0, sizeof *total);
    total->reorths = r->stats_base[0];
    total->merges = r->stats_base[1];
    for (int l = 0; l < r->model.cfg.nlayers; l++) {
        hg_linear_stats ls;
        hg_linear_get_stats(r->model.layer[l].lin, &ls);
        total->reorths += ls.reorths;
        total->merges += ls.merges;
        total->schedule_seconds += ls.schedule_seconds;
    }
}

static void stats_read(const void *obj, int64_t i, void *host_dst)
{
    hg_linear_stats ls;
    uint64_t *u = host_dst;
    (void)i;
    linear_stats(obj, &ls);
    u[0] = (uint64_t)ls.reorths;
    u[1] = (uint64_t)ls.merges;
}

static void stats_write(void *obj, int64_t i, const void *host_src)
{
    run *r = obj;
    const uint64_t *u = host_src;
    hg_linear_stats ls;
    (void)i;
    r->stats_base[0] = r->stats_base[1] = 0;
    linear_stats(r, &ls);
    r->stats_base[0] = (int64_t)u[0] - ls.reorths;
    r->stats_base[1] = (int64_t)u[1] - ls.merges;
}

/* Every tensor the model keeps across steps (hg_hybonet_register) and the run's own state for a
 * resume: the negative sampler's generator, the best model's embeddings, the schedule counters
 * reported. */
static int register_tensors(run *r)
{
    hg_hybonet *m = &r->model;
    hg_registry *g = &r->reg;
    int rc = HG_OK;
    HG_CHECK(hg_hybonet_register(m, g));
    HG_CHECK(hg_registry_add(g, "run.neg_rng", HG_DTYPE_U64, r->neg_rng.s, 4, NULL,
                             HG_TENSOR_RUN));
    HG_CHECK(hg_registry_add(g, "run.best_emb", HG_DTYPE_F32, r->best_emb,
                             r->data.n * m->cfg.dim, NULL, HG_TENSOR_RUN));
    HG_CHECK(hg_registry_add_io(g, "run.linear_stats", HG_DTYPE_U64, 2, stats_read, stats_write,
                                r, 0, HG_TENSOR_RUN));
done:
    return rc;
}

/* ---- setup ---- */

static int load(run *r)
{
    const hg_train_options *o = r->o;
    int rc;
    if (o->data_dir)
        snprintf(r->data_dir, sizeof r->data_dir, "%s", o->data_dir);
    else if ((rc = hg_dataset_bundled_dir(r->data_dir, sizeof r->data_dir, o->dataset)))
        return rc;
    r->name = o->dataset ? o->dataset : r->data_dir;
    struct stat st;
    if (stat(r->data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return HG_ERRORF(HG_EIO, "--data-dir %s: not a directory", r->data_dir);

    hg_dataset_opts dopt = {0};
    dopt.dir = r->data_dir;
    dopt.name = o->dataset;
    dopt.task = o->task;
    dopt.use_feats = o->use_feats;
    dopt.features_file = o->features_file;
    if (!dopt.features_file && o->task == HG_TASK_LP) { /* the LP loader's own features if any */
        char p[4200];
        snprintf(p, sizeof p, "%s/features_lp.mtx", r->data_dir);
        if (stat(p, &st) == 0)
            dopt.features_file = "features_lp.mtx";
    }
    if (dopt.use_feats < 0) { /* auto: features when the file exists */
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", r->data_dir,
                 dopt.features_file ? dopt.features_file : "features.mtx");
        dopt.use_feats = stat(p, &st) == 0;
        if (!dopt.use_feats && !o->quiet)
            fprintf(stderr, "hgnn-train: note: %s has no %s: identity features "
                            "(--use-feats 0)\n", r->data_dir,
                    dopt.features_file ? dopt.features_file : "features.mtx");
    }
    dopt.normalize_feats = o->normalize_feats;
    dopt.augment_degree = o->augment_degree;
    dopt.val_prop = o->val_prop;
    dopt.test_prop = o->test_prop;
    dopt.split_seed = o->split_seed;
    dopt.neg_pool = o->neg_pool;
    dopt.nc_split_reference = o->nc_split_reference;
    char split[4200];
    dopt.split_file = o->split_file;
    if (!dopt.split_file && o->task == HG_TASK_NC) {
        const char *cands[] = {"split_hybonet.txt", "split.txt"};
        for (int c = 0; c < 2 && !dopt.split_file; c++) {
            snprintf(split, sizeof split, "%s/%s", r->data_dir, cands[c]);
            if (stat(split, &st) == 0)
                dopt.split_file = cands[c];
        }
    } else if (dopt.split_file) {
        snprintf(split, sizeof split, "%s/%s", r->data_dir, dopt.split_file);
        if (stat(split, &st) != 0)
            return HG_ERRORF(HG_EIO, "--split-file %s: no such file in %s", dopt.split_file,
                             r->data_dir);
    }
    return hg_dataset_load(&r->data, &dopt);
}

/* host (n bytes) in the model's memory: the host array itself on the CPU, else a device copy
 * (NULL for an empty or absent array; r->nk_bufs = -1 after a failed allocation). */
static void *to_k(run *r, const void *host, size_t bytes)
{
    if (r->k.device == HG_DEVICE_CPU || !host || bytes == 0)
        return (void *)host;
    if (r->nk_bufs < 0 || r->nk_bufs >= (int)(sizeof r->k_bufs / sizeof r->k_bufs[0])) {
        r->nk_bufs = -1;
        return NULL;
    }
    void *p = hg_k_alloc(&r->k, bytes, "dataset arrays");
    if (!p) {
        r->nk_bufs = -1;
        return NULL;
    }
    hg_k_upload(&r->k, p, host, bytes);
    r->k_bufs[r->nk_bufs++] = p;
    return p;
}

static int setup(run *r)
{
    const hg_train_options *o = r->o;
    hg_dataset *d = &r->data;
    int rc;
    if (o->task == HG_TASK_NC) {
        if (d->nclasses < 2)
            return HG_ERRORF(HG_EINVAL, "%s/labels.txt: node classification needs at least 2 "
                             "classes", r->data_dir);
        if (d->n_train < 1 || d->n_val < 1)
            return HG_ERRORF(HG_EINVAL, "%s: the node split leaves %lld train and %lld val nodes",
                             r->data_dir, (long long)d->n_train, (long long)d->n_val);
    } else if (d->n_train_pos < 1 || d->n_val_pos < 1) {
        return HG_ERRORF(HG_EINVAL, "%s: the edge split leaves %lld train and %lld val edges",
                         r->data_dir, (long long)d->n_train_pos, (long long)d->n_val_pos);
    }
    hg_hybonet_config c = {0};
    c.n = d->n;
    c.nfeat = d->nfeat;
    c.dim = o->dim;
    c.nlayers = o->task == HG_TASK_NC ? o->num_layers - 1 : o->num_layers;
    c.nclasses = o->task == HG_TASK_NC ? d->nclasses : 0;
    c.dropout = o->dropout;
    c.act_relu = o->act_relu;
    c.bias = o->bias;
    c.margin = o->margin;
    c.scale_init = o->scale_init;
    c.linear = o->linear;
    c.seed = o->seed;
    int64_t max_eval = HG_MAX(HG_MAX(d->n_val_pos, d->n_test_pos), d->n_train_pos);
    HG_CHECK(hg_hybonet_init(&r->model, &r->k, &c, &d->feat, &d->adj, 2 * max_eval));

    hg_hybonet *m = &r->model;
    int64_t neval = HG_MAX(2 * max_eval, d->n);
    r->pred = hg_calloc((size_t)d->n, sizeof *r->pred, "predictions");
    r->rank_idx = hg_calloc((size_t)neval, sizeof *r->rank_idx, "ranking workspace");
    r->pair_label = hg_calloc((size_t)neval, 1, "pair labels");
    r->train_neg = hg_calloc((size_t)(2 * HG_MAX(d->n_train_pos, 1)), sizeof(int32_t), "negatives");
    r->scores = hg_calloc((size_t)neval, sizeof *r->scores, "pair scores");
    r->best_emb = hg_calloc((size_t)(d->n * o->dim), sizeof(float), "best embeddings");
    r->prune_json = hg_calloc((size_t)HG_MAX_PRUNE * 400, 1, "pruning results");
    int64_t max_w = 0;
    for (int l = 0; l < m->cfg.nlayers; l++)
        max_w = HG_MAX(max_w, hg_linear_rows(m->layer[l].lin) * hg_linear_cols(m->layer[l].lin));
    r->prune_w = hg_calloc((size_t)max_w, sizeof(float), "pruned weight");
    if (!r->pred || !r->rank_idx || !r->pair_label || !r->train_neg || !r->scores ||
        !r->best_emb || !r->prune_json || !r->prune_w) {
        rc = HG_ENOMEM;
        goto done;
    }
    /* the index, label and pair arrays in the model's memory */
    r->k_idx_train = to_k(r, d->idx_train, (size_t)d->n_train * sizeof(int64_t));
    r->k_idx_val = to_k(r, d->idx_val, (size_t)d->n_val * sizeof(int64_t));
    r->k_idx_test = to_k(r, d->idx_test, (size_t)d->n_test * sizeof(int64_t));
    r->k_labels = to_k(r, d->labels, (size_t)d->n * sizeof(int32_t));
    r->k_train_pos = to_k(r, d->train_pos, (size_t)(2 * d->n_train_pos) * sizeof(int32_t));
    r->k_val_pos = to_k(r, d->val_pos, (size_t)(2 * d->n_val_pos) * sizeof(int32_t));
    r->k_val_neg = to_k(r, d->val_neg, (size_t)(2 * d->n_val_pos) * sizeof(int32_t));
    r->k_test_pos = to_k(r, d->test_pos, (size_t)(2 * d->n_test_pos) * sizeof(int32_t));
    r->k_test_neg = to_k(r, d->test_neg, (size_t)(2 * d->n_test_pos) * sizeof(int32_t));
    r->k_train_neg = to_k(r, r->train_neg, (size_t)(2 * HG_MAX(d->n_train_pos, 1)) * sizeof(int32_t));
    if (r->nk_bufs < 0) {
        rc = HG_ENOMEM;
        goto done;
    }
    hg_rng_seed(&r->neg_rng, hg_rng_derive(o->seed, 7));
    rc = register_tensors(r);
done:
    return rc;
}

static void run_destroy(run *r)
{
    hg_driver_destroy(&r->drv);
    hg_registry_destroy(&r->reg);
    hg_hybonet_destroy(&r->model);
    hg_dataset_destroy(&r->data);
    for (int i = 0; i < r->nk_bufs; i++)
        hg_k_free(&r->k, r->k_bufs[i]);
    hg_kctx_destroy(&r->k);
    void *bufs[] = {r->pred, r->rank_idx, r->pair_label, r->train_neg, r->scores,
                    r->best_emb, r->prune_json, r->prune_w};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        hg_free(bufs[i]);
}

/* ---- results ---- */

/* "<prefix>_<metric>" for the reported metrics of an evaluation. */
static void add_metrics(hg_json *j, const char *prefix, const run *r, const double *m)
{
    const hg_driver_model *dm = &r->drv.model;
    char key[64];
    for (int i = 0; i < dm->nmetrics; i++)
        if (dm->metrics[i].flags & HG_METRIC_REPORT) {
            snprintf(key, sizeof key, "%s_%s", prefix, dm->metrics[i].name);
            hg_json_add_double(j, key, m[i]);
        }
}

/* Singular-value pruning of the best model: for each K, every weight keeps its K largest
 * singular values (K < 1: that fraction of min(out, in), rounded up); val and test metrics of
 * the pruned model go into the JSON array r->prune_json (one object per K). */
static int prune_sweep(run *r)
{
    hg_hybonet *m = &r->model;
    const hg_train_options *o = r->o;
    const size_t cap = (size_t)HG_MAX_PRUNE * 400;
    char *out = r->prune_json;
    size_t len = 0;
    int rc = HG_OK;
    len += (size_t)snprintf(out + len, cap - len, "[");
    for (int i = 0; i < o->nprune && rc == HG_OK; i++) {
        hg_driver_restore_best(&r->drv);
        int64_t keep_max = 0;
        for (int l = 0; l < m->cfg.nlayers; l++) {
            hg_linear *lin = m->layer[l].lin;
            int64_t k = HG_MIN(hg_linear_rows(lin), hg_linear_cols(lin));
            int64_t keep = o->prune[i] < 1.0 ? (int64_t)ceil(o->prune[i] * (double)k)
                                              : HG_MIN((int64_t)o->prune[i], k);
            keep_max = HG_MAX(keep_max, keep);
            if ((rc = hg_linear_pruned_weight(lin, keep, r->prune_w)) ||
                (rc = hg_linear_load_weight(lin, r->prune_w)))
                break;
        }
        double val[HG_DRIVER_MAX_METRICS], test[HG_DRIVER_MAX_METRICS];
        if (!rc && !(rc = evaluate(r, HG_SPLIT_VAL, val)))
            rc = evaluate(r, HG_SPLIT_TEST, test);
        if (rc)
            break;
        char obj[512];
        hg_json j;
        hg_json_begin_buf(&j, obj, sizeof obj);
        hg_json_add_double(&j, "keep", o->prune[i]);
        hg_json_add_int(&j, "kept_max", keep_max);
        add_metrics(&j, "val", r, val);
        add_metrics(&j, "test", r, test);
        if ((rc = hg_json_end(&j)))
            break;
        len += (size_t)snprintf(out + len, cap > len ? cap - len : 0, "%s%s", i ? ", " : "", obj);
    }
    if (len + 2 > cap)
        return HG_ERRORF(HG_EINVAL, "--prune-sigma: too many entries for the result line");
    snprintf(out + len, cap - len, "]");
    hg_driver_restore_best(&r->drv);
    return rc;
}

/* The checkpoints' meta JSON. */
static void meta_json(void *ctx, char *buf, size_t cap)
{
    const run *r = ctx;
    const hg_train_options *o = r->o;
    hg_json j;
    hg_json_begin_buf(&j, buf, cap);
    hg_json_add_str(&j, "dataset", r->name);
    hg_json_add_str(&j, "task", o->task == HG_TASK_NC ? "nc" : "lp");
    hg_json_add_str(&j, "method", hg_linear_method_name(o->linear.method));
    hg_json_add_int(&j, "rank", o->linear.rank);
    hg_json_add_int(&j, "dim", o->dim);
    hg_json_add_int(&j, "num_layers", o->num_layers);
    hg_json_add_int(&j, "nfeat", r->data.nfeat);
    hg_json_add_int(&j, "nclasses", r->data.nclasses);
    hg_json_add_int(&j, "seed", (int64_t)o->seed);
    hg_json_add_int(&j, "split_seed", (int64_t)o->split_seed);
    hg_json_end(&j);
}

/* The result line (the driver's add_json). */
static void add_json(void *ctx, hg_json *j, const hg_driver *d)
{
    const run *r = ctx;
    const hg_train_options *o = r->o;
    const hg_hybonet *m = &r->model;
    hg_json_add_str(j, "dataset", r->name);
    hg_json_add_str(j, "task", o->task == HG_TASK_NC ? "nc" : "lp");
    hg_json_add_str(j, "method", hg_linear_method_name(o->linear.method));
    hg_json_add_int(j, "rank", o->linear.method == HG_LINEAR_FULL ? 0 : o->linear.rank);
    char seeds[2][32];
    snprintf(seeds[0], sizeof seeds[0], "%llu", (unsigned long long)o->seed);
    snprintf(seeds[1], sizeof seeds[1], "%llu", (unsigned long long)o->split_seed);
    hg_json_add_raw(j, "seed", seeds[0]);
    hg_json_add_raw(j, "split_seed", seeds[1]);
    hg_driver_json(d, j, HG_DRIVER_JSON_PROGRESS);
    hg_json_add_int(j, "trainable_params", hg_hybonet_num_trainable(m));
    hg_json_add_int(j, "optimizer_state_floats", hg_hybonet_state_floats(m));
    hg_driver_json(d, j, HG_DRIVER_JSON_METRICS | HG_DRIVER_JSON_TRAIN);
    hg_linear_stats ls;
    linear_stats(r, &ls);
    hg_json_add_int(j, "sst_reorths", ls.reorths);
    hg_json_add_int(j, "relora_merges", ls.merges);
    hg_json_add_double(j, "schedule_seconds", ls.schedule_seconds);
    hg_driver_json(d, j, HG_DRIVER_JSON_TIMING);
    hg_json_add_int(j, "threads", o->threads);
    hg_json_add_str(j, "device", hg_k_device_name(&r->k));
    hg_json_add_double(j, "lr", o->lr);
    if (o->lr_schedule != HG_LR_CONSTANT) {
        hg_json_add_str(j, "lr_schedule", hg_lr_kind_name(o->lr_schedule));
        hg_json_add_int(j, "warmup_steps", o->warmup_steps);
    }
    hg_json_add_double(j, "dropout", o->dropout);
    hg_json_add_double(j, "weight_decay", o->weight_decay);
    hg_json_add_int(j, "num_layers", o->num_layers);
    hg_json_add_int(j, "dim", o->dim);
    if (o->nprune > 0)
        hg_json_add_raw(j, "prune", r->prune_json);
}

/* The driver for this run: HyboNet behind its callbacks, one step per epoch. */
static int driver_init(run *r, double t_start)
{
    const hg_train_options *o = r->o;
    const int nc = o->task == HG_TASK_NC;
    hg_driver_model dm = {0};
    dm.ctx = r;
    dm.reg = &r->reg;
    dm.nmetrics = nc ? 3 : 4;
    dm.metrics = nc ? nc_metrics : lp_metrics;
    dm.select = nc ? M_F1 : M_AUC_AP;
    dm.higher_better = 1;
    dm.grad = train_grad;
    dm.update = train_update;
    dm.evaluate = evaluate;
    dm.reloaded = reloaded;
    dm.on_best = on_best;
    dm.save_best = save_embeddings;
    dm.meta = meta_json;
    dm.add_json = add_json;
    hg_driver_config c = {0};
    c.unit = "epoch";
    c.max_steps = o->epochs;
    c.eval_every = o->eval_every;
    c.patience = o->patience;
    c.min_steps = o->min_epochs;
    c.lr = (hg_lr_schedule){o->lr_schedule, o->lr, o->warmup_steps, o->epochs};
    c.save_every = o->save_every;
    c.log_freq = o->log_freq;
    c.quiet = o->quiet;
    c.out_dir = o->out_dir;
    c.program = "hgnn-train";
    c.t_start = t_start;
    return hg_driver_init(&r->drv, &c, &dm);
}

/* Load a checkpoint into the model (every tensor must be present with the same size). */
static int load_checkpoint(run *r, const char *path)
{
    int rc = hg_driver_load(&r->drv, path);
    if (rc) {
        char why[1024]; /* the message is formatted into the buffer it comes from */
        snprintf(why, sizeof why, "%s", hg_last_error());
        return HG_ERRORF(rc, "--load: %s (was it saved by a run with the same dataset, task, "
                         "method, rank, dim and layers?)", why);
    }
    return HG_OK;
}

int main(int argc, char **argv)
{
    hg_train_options o;
    run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    /* a file-size limit makes writes fail with EFBIG, reported like a full disk, instead of
     * killing the process */
    signal(SIGXFSZ, SIG_IGN);
    int rc = hg_train_options_parse(&o, argc, argv);
    if (rc == HG_OPTIONS_DONE)
        return 0;
    if (rc) {
        fprintf(stderr, "hgnn-train: %s\n", hg_last_error());
        hg_train_options_free(&o);
        return EXIT_INPUT;
    }
    const int nc = o.task == HG_TASK_NC;
    int exit_code = EXIT_INPUT;
    double t_start = hg_now();
    /* the command line first, so that a run interrupted at any point can be resumed */
    if (o.out_dir && ((rc = hg_mkdir_p(o.out_dir)) ||
                      (!o.resume && ((rc = hg_outdir_reset(o.out_dir)) ||
                                     (rc = hg_train_options_save(o.out_dir, argc, argv))))))
        goto fail;
    if ((rc = hg_kctx_init(&r.k, strcmp(o.device, "cuda") == 0 ? HG_DEVICE_CUDA : HG_DEVICE_CPU,
                           o.threads)) ||
        (rc = load(&r)) || (rc = setup(&r)) || (rc = driver_init(&r, t_start)))
        goto fail;
    hg_hybonet *m = &r.model;
    hg_dataset *d = &r.data;
    if (!o.quiet)
        printf("hgnn-train: %s %s | %lld nodes, %lld edges, %lld features | method %s rank %d | "
               "%lld trainable parameters | %s\n",
               r.name, nc ? "nc" : "lp", (long long)d->n, (long long)d->nedges,
               (long long)d->nfeat, hg_linear_method_name(o.linear.method), o.linear.rank,
               (long long)hg_hybonet_num_trainable(m), hg_k_device_name(&r.k));

    const int resume = o.resume != NULL;
    /* a resumed run that had saved nothing yet starts afresh, as the original did */
    if (o.load && !(resume && hg_driver_resumable(&r.drv)) && (rc = load_checkpoint(&r, o.load)))
        goto fail;
    exit_code = EXIT_RUN;
    if ((rc = hg_driver_run(&r.drv, resume)) || (o.nprune > 0 && (rc = prune_sweep(&r))) ||
        (rc = hg_driver_report(&r.drv)))
        goto fail;
    run_destroy(&r);
    hg_train_options_free(&o);
    return 0;

fail:
    fflush(stdout);
    fprintf(stderr, "hgnn-train: %s\n", hg_last_error()[0] ? hg_last_error() : hg_strerror(rc));
    run_destroy(&r);
    hg_train_options_free(&o);
    return exit_code;
}
