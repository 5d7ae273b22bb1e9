/* hgnn_train.c - the hgnn-train program: loads a dataset, trains HyboNet with every linear map
 * in one of the sst/ modes, reports the paper's metrics and saves what the user asked for.
 * This is the one place that ties datasets/, hyperbolic/ and sst/ together (DESIGN.md 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "hg_config.h"
#include "options.h"
#include "../hg.h"
#include "../io.h"
#include "../metrics.h"
#include "../rng.h"
#include "../../datasets/dataset.h"
#include "../../hyperbolic/hybonet.h"

/* Exit codes: bad input or options, and a run that failed after it started (divergence, I/O). */
enum { EXIT_INPUT = 2, EXIT_RUN = 3 };

/* Gradient-clipping guard of torch.nn.utils.clip_grad_norm_ (max_norm / (norm + 1e-6)). */
#define HG_CLIP_EPS 1e-6

typedef struct metrics {
    double loss;
    double acc, f1;      /* nc */
    double roc_auc, ap;  /* lp */
} metrics;

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
    int32_t *eval_pairs; /* (2 * 2 * max eval pairs) */
    int32_t *train_neg;  /* (2 * n_train_pos) */
    float *scores;       /* (2 * max eval pairs) pair scores brought back for the metrics */
    /* the index, label and pair arrays in the model's memory (the host arrays on the CPU) */
    const int64_t *k_idx_train, *k_idx_val, *k_idx_test;
    const int32_t *k_labels, *k_train_pos, *k_val_pos, *k_val_neg, *k_test_pos, *k_test_neg;
    int32_t *k_train_neg;
    void *k_bufs[16];    /* the device copies among them, freed at the end */
    int nk_bufs;
    /* best model */
    float *best_emb;     /* (n x dim) */
    float *prune_w;      /* (dim x max din) a pruned weight */
    float *snapshot;     /* all persistent tensors, concatenated */
    int64_t snapshot_len;
    double *step_ms;     /* (epochs) */
    FILE *log;
} run;

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int64_t n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- evaluation ---- */

/* idx: host copy (labels), k_idx: the model's (the same array on the CPU). */
static int eval_nc(run *r, const int64_t *idx, const int64_t *k_idx, int64_t count, metrics *out)
{
    hg_hybonet *m = &r->model;
    if (count <= 0) {
        out->acc = out->f1 = NAN;
        return HG_OK;
    }
    out->loss = hg_hybonet_nc_loss(m, k_idx, count, r->k_labels, 0);
    hg_hybonet_nc_predict(m, k_idx, count, m->pred);
    hg_k_download(&r->k, r->pred, m->pred, (size_t)count * sizeof(int32_t));
    /* labels of the evaluated nodes, gathered into the second half of the workspace */
    int32_t *lab = (int32_t *)r->rank_idx;
    for (int64_t a = 0; a < count; a++)
        lab[a] = r->data.labels[idx[a]];
    int rc = hg_metric_accuracy(&out->acc, r->pred, lab, count);
    if (!rc)
        rc = hg_metric_f1(&out->f1, r->pred, lab, count, r->data.nclasses);
    return rc;
}

static int eval_lp(run *r, const int32_t *pos, const int32_t *neg, int64_t count, metrics *out)
{
    hg_hybonet *m = &r->model;
    if (count <= 0) {
        out->roc_auc = out->ap = NAN;
        return HG_OK;
    }
    /* the loss leaves the scores of the positives, then the negatives, in m->pair_score */
    out->loss = hg_hybonet_lp_loss(m, pos, neg, count, 0);
    hg_k_download(&r->k, r->scores, m->pair_score, (size_t)(2 * count) * sizeof(float));
    for (int64_t e = 0; e < 2 * count; e++)
        r->pair_label[e] = e < count;
    return hg_metric_roc_auc_ap(&out->roc_auc, &out->ap, r->scores, r->pair_label, 2 * count,
                                r->rank_idx);
}

/* Evaluate the current model (no dropout) on val and, when asked, test. */
static int evaluate(run *r, metrics *val, metrics *test)
{
    const hg_dataset *d = &r->data;
    hg_hybonet_forward(&r->model, 0, 0);
    int rc;
    if (r->o->task == HG_TASK_NC) {
        rc = eval_nc(r, d->idx_val, r->k_idx_val, d->n_val, val);
        if (!rc && test)
            rc = eval_nc(r, d->idx_test, r->k_idx_test, d->n_test, test);
    } else {
        rc = eval_lp(r, r->k_val_pos, r->k_val_neg, d->n_val_pos, val);
        if (!rc && test)
            rc = eval_lp(r, r->k_test_pos, r->k_test_neg, d->n_test_pos, test);
    }
    /* a failure of the device's asynchronous work surfaces here at the latest */
    return rc ? rc : hg_k_sync(&r->k);
}

/* Model-selection score: val F1 (nc) or (AUC + AP) / 2 (lp), as HGCN's has_improved. */
static double selection_score(const run *r, const metrics *m)
{
    double s = r->o->task == HG_TASK_NC ? m->f1 : 0.5 * (m->roc_auc + m->ap);
    return isnan(s) ? -INFINITY : s;
}

static void add_metrics(struct hg_json *j, const char *prefix, const struct run *r,
                        const metrics *m);

/* ---- persistence ---- */

/* Copy every persistent tensor of the model into the snapshot (to_model = 0) or back. */
static void snapshot_copy(run *r, int to_model)
{
    hg_hybonet *m = &r->model;
    int64_t off = 0;
    for (int t = 0; t < hg_hybonet_num_tensors(m); t++) {
        char name[128];
        int64_t count;
        hg_hybonet_tensor_info(m, t, name, sizeof name, &count);
        if (to_model)
            hg_hybonet_tensor_write(m, t, r->snapshot + off);
        else
            hg_hybonet_tensor_read(m, t, r->snapshot + off);
        off += count;
    }
}

/* Remember the current model (and its embeddings) as the best one. */
static void snapshot_take(run *r)
{
    snapshot_copy(r, 0);
    hg_k_download(&r->k, r->best_emb, r->model.emb,
                  (size_t)(r->data.n * r->model.cfg.dim) * sizeof(float));
}

/* Load the best parameters (the snapshot) into the model. */
static void snapshot_restore(run *r)
{
    snapshot_copy(r, 1);
    hg_hybonet_rematerialise(&r->model);
}

/* Singular-value pruning of the best model: for each K, every weight keeps its K largest
 * singular values (K < 1: that fraction of min(out, in), rounded up); val and test metrics of
 * the pruned model go into the JSON array `out` (one object per K). */
static int prune_sweep(run *r, char *out, size_t cap)
{
    hg_hybonet *m = &r->model;
    const hg_train_options *o = r->o;
    size_t len = 0;
    int rc = HG_OK;
    len += (size_t)snprintf(out + len, cap - len, "[");
    for (int i = 0; i < o->nprune && rc == HG_OK; i++) {
        snapshot_restore(r);
        int64_t keep_max = 0;
        for (int l = 0; l < m->cfg.nlayers; l++) {
            hg_linear *lin = m->layer[l].lin;
            int64_t k = HG_MIN(hg_linear_rows(lin), hg_linear_cols(lin));
            int64_t keep = o->prune[i] < 1.0 ? (int64_t)ceil(o->prune[i] * (double)k)
                                              : HG_MIN((int64_t)o->prune[i], k);
            keep_max = HG_MAX(keep_max, keep);
            if ((rc = hg_linear_pruned_weight(lin, keep, r->prune_w)))
                break;
            hg_linear_load_weight(lin, r->prune_w);
        }
        metrics val = {0}, test = {0};
        if (!rc)
            rc = evaluate(r, &val, &test);
        if (rc)
            break;
        char obj[512];
        hg_json j;
        hg_json_begin_buf(&j, obj, sizeof obj);
        hg_json_add_double(&j, "keep", o->prune[i]);
        hg_json_add_int(&j, "kept_max", keep_max);
        add_metrics(&j, "val", r, &val);
        add_metrics(&j, "test", r, &test);
        if ((rc = hg_json_end(&j)))
            break;
        len += (size_t)snprintf(out + len, cap > len ? cap - len : 0, "%s%s", i ? ", " : "", obj);
    }
    if (len + 2 > cap)
        return HG_ERRORF(HG_EINVAL, "--prune-sigma: too many entries for the result line");
    snprintf(out + len, cap - len, "]");
    snapshot_restore(r);
    return rc;
}

static void meta_json(const run *r, char *buf, size_t cap)
{
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

/* Name, size and place in the snapshot of every persistent tensor of the model; at most 64. */
static int model_tensors(run *r, char names[][128], const char **np, float **dp, int64_t *counts)
{
    hg_hybonet *m = &r->model;
    int nt = hg_hybonet_num_tensors(m);
    if (nt > 64)
        return HG_ERRORF(HG_EINVAL, "checkpoint: too many tensors (%d)", nt);
    int64_t off = 0;
    for (int t = 0; t < nt; t++) {
        hg_hybonet_tensor_info(m, t, names[t], 128, &counts[t]);
        np[t] = names[t];
        dp[t] = r->snapshot + off;
        off += counts[t];
    }
    return HG_OK;
}

/* Load a checkpoint into the model (every tensor must be present with the same size), through
 * the snapshot buffer. */
static int load_checkpoint(run *r, const char *path)
{
    char names[64][128];
    const char *np[64];
    float *dp[64];
    int64_t counts[64];
    int rc = model_tensors(r, names, np, dp, counts);
    if (rc)
        return rc;
    rc = hg_ckpt_read(path, hg_hybonet_num_tensors(&r->model), np, dp, counts, NULL, 0, NULL);
    if (rc) {
        char why[1024]; /* the message is formatted into the buffer it comes from */
        snprintf(why, sizeof why, "%s", hg_last_error());
        return HG_ERRORF(rc, "--load: %s (was it saved by a run with the same dataset, task, "
                         "method, rank, dim and layers?)", why);
    }
    snapshot_restore(r);
    return HG_OK;
}

/* Write the best model's checkpoint (the snapshot) and embeddings. */
static int save_best(run *r)
{
    char path[4200], meta[2048];
    hg_hybonet *m = &r->model;
    int nt = hg_hybonet_num_tensors(m);
    char names[64][128];
    const char *np[64];
    float *snap[64];
    const float *dp[64];
    int64_t counts[64];
    int rc0 = model_tensors(r, names, np, snap, counts);
    if (rc0)
        return rc0;
    for (int t = 0; t < nt; t++)
        dp[t] = snap[t];
    meta_json(r, meta, sizeof meta);
    snprintf(path, sizeof path, "%s/checkpoint.bin", r->o->out_dir);
    int rc = hg_ckpt_write(path, nt, np, dp, counts, meta);
    if (!rc) {
        snprintf(path, sizeof path, "%s/embeddings.npy", r->o->out_dir);
        rc = hg_npy_write(path, r->best_emb, r->data.n, m->cfg.dim);
    }
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
    r->snapshot_len = 0;
    for (int t = 0; t < hg_hybonet_num_tensors(m); t++) {
        char name[128];
        int64_t count;
        hg_hybonet_tensor_info(m, t, name, sizeof name, &count);
        r->snapshot_len += count;
    }
    int64_t neval = HG_MAX(2 * max_eval, d->n);
    r->pred = hg_calloc((size_t)d->n, sizeof *r->pred, "predictions");
    r->rank_idx = hg_calloc((size_t)neval, sizeof *r->rank_idx, "ranking workspace");
    r->pair_label = hg_calloc((size_t)neval, 1, "pair labels");
    r->train_neg = hg_calloc((size_t)(2 * HG_MAX(d->n_train_pos, 1)), sizeof(int32_t), "negatives");
    r->scores = hg_calloc((size_t)neval, sizeof *r->scores, "pair scores");
    r->best_emb = hg_calloc((size_t)(d->n * o->dim), sizeof(float), "best embeddings");
    r->snapshot = hg_calloc((size_t)r->snapshot_len, sizeof(float), "best parameters");
    r->step_ms = hg_calloc((size_t)HG_MAX(o->epochs, 1), sizeof(double), "step times");
    int64_t max_w = 0;
    for (int l = 0; l < m->cfg.nlayers; l++)
        max_w = HG_MAX(max_w, hg_linear_rows(m->layer[l].lin) * hg_linear_cols(m->layer[l].lin));
    r->prune_w = hg_calloc((size_t)max_w, sizeof(float), "pruned weight");
    if (!r->pred || !r->rank_idx || !r->pair_label || !r->train_neg || !r->scores ||
        !r->best_emb || !r->snapshot || !r->step_ms || !r->prune_w) {
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
    if (r->nk_bufs < 0)
        rc = HG_ENOMEM;
done:
    return rc;
}

static void run_destroy(run *r)
{
    hg_hybonet_destroy(&r->model);
    hg_dataset_destroy(&r->data);
    for (int i = 0; i < r->nk_bufs; i++)
        hg_k_free(&r->k, r->k_bufs[i]);
    hg_kctx_destroy(&r->k);
    void *bufs[] = {r->pred, r->rank_idx, r->pair_label, r->train_neg, r->scores,
                    r->best_emb, r->snapshot, r->step_ms, r->prune_w};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        hg_free(bufs[i]);
    if (r->log)
        fclose(r->log);
}

/* ---- training ---- */

static void add_metrics(struct hg_json *j, const char *prefix, const struct run *r,
                        const metrics *m)
{
    char key[64];
    if (r->o->task == HG_TASK_NC) {
        snprintf(key, sizeof key, "%s_acc", prefix);
        hg_json_add_double(j, key, m->acc);
        snprintf(key, sizeof key, "%s_f1", prefix);
        hg_json_add_double(j, key, m->f1);
    } else {
        snprintf(key, sizeof key, "%s_roc_auc", prefix);
        hg_json_add_double(j, key, m->roc_auc);
        snprintf(key, sizeof key, "%s_ap", prefix);
        hg_json_add_double(j, key, m->ap);
    }
}

int main(int argc, char **argv)
{
    hg_train_options o;
    run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    int rc = hg_train_options_parse(&o, argc, argv);
    if (rc == HG_OPTIONS_DONE)
        return 0;
    if (rc) {
        fprintf(stderr, "hgnn-train: %s\n", hg_last_error());
        return EXIT_INPUT;
    }
    const int nc = o.task == HG_TASK_NC;
    int exit_code = EXIT_INPUT;
    double t_start = hg_now();
    if ((rc = hg_kctx_init(&r.k, strcmp(o.device, "cuda") == 0 ? HG_DEVICE_CUDA : HG_DEVICE_CPU,
                           o.threads)) ||
        (rc = load(&r)) || (rc = setup(&r)))
        goto fail;
    hg_hybonet *m = &r.model;
    hg_dataset *d = &r.data;
    if (o.out_dir) {
        char path[4200];
        if ((rc = hg_mkdir_p(o.out_dir)))
            goto fail;
        snprintf(path, sizeof path, "%s/log.csv", o.out_dir);
        r.log = fopen(path, "w");
        if (!r.log) {
            rc = HG_ERRORF(HG_EIO, "%s: cannot write", path);
            goto fail;
        }
        fprintf(r.log, nc ? "epoch,loss,grad_norm,val_loss,val_acc,val_f1,step_ms\n"
                          : "epoch,loss,grad_norm,val_loss,val_roc_auc,val_ap,step_ms\n");
    }
    if (!o.quiet)
        printf("hgnn-train: %s %s | %lld nodes, %lld edges, %lld features | method %s rank %d | "
               "%lld trainable parameters | %s\n",
               r.name, nc ? "nc" : "lp", (long long)d->n, (long long)d->nedges,
               (long long)d->nfeat, hg_linear_method_name(o.linear.method), o.linear.rank,
               (long long)hg_hybonet_num_trainable(m), hg_k_device_name(&r.k));

    if (o.load && (rc = load_checkpoint(&r, o.load)))
        goto fail;
    exit_code = EXIT_RUN;
    metrics val = {0}, best_val = {0}, best_test = {0};
    if ((rc = evaluate(&r, &best_val, &best_test)))
        goto fail;
    double best_score = selection_score(&r, &best_val);
    int best_epoch = 0, since_best = 0, epoch = 0, dirty = 1;
    snapshot_take(&r);
    double train_seconds = 0.0;
    hg_rng neg_rng;
    hg_rng_seed(&neg_rng, hg_rng_derive(o.seed, 7));
    const char *stop = "max_epochs";

    for (epoch = 1; epoch <= o.epochs; epoch++) {
        uint64_t dseed = hg_rng_derive(o.seed, 1000 + (uint64_t)epoch);
        double t0 = hg_now();
        hg_hybonet_zero_grad(m);
        hg_hybonet_forward(m, 1, dseed);
        double loss;
        if (nc) {
            loss = hg_hybonet_nc_loss(m, r.k_idx_train, d->n_train, r.k_labels, 1);
        } else {
            hg_dataset_sample_negatives(d, &neg_rng, r.train_neg, d->n_train_pos);
            if (r.k_train_neg != r.train_neg) /* the step's one input upload */
                hg_k_upload(&r.k, r.k_train_neg, r.train_neg,
                            (size_t)(2 * d->n_train_pos) * sizeof(int32_t));
            loss = hg_hybonet_lp_loss(m, r.k_train_pos, r.k_train_neg, d->n_train_pos, 1);
        }
        if (!isfinite(loss)) {
            rc = HG_ERRORF(HG_ENUMERIC, "epoch %d: training loss is %g (diverged; try a smaller "
                           "--lr or --grad-clip)", epoch, loss);
            goto fail;
        }
        hg_hybonet_backward(m, 1, dseed);
        double gnorm = hg_hybonet_grad_norm(m);
        if (!isfinite(gnorm)) {
            rc = HG_ERRORF(HG_ENUMERIC, "epoch %d: gradient norm is %g", epoch, gnorm);
            goto fail;
        }
        if (o.grad_clip > 0.0f && gnorm > o.grad_clip)
            hg_hybonet_scale_grad(m, (float)(o.grad_clip / (gnorm + HG_CLIP_EPS)));
        if ((rc = hg_hybonet_step(m, o.lr, o.stabilize)) || (rc = hg_k_sync(&r.k)))
            goto fail; /* (the sync: the step's time includes the device's queued work) */
        double t1 = hg_now();
        r.step_ms[epoch - 1] = 1e3 * (t1 - t0);
        train_seconds += t1 - t0;

        if ((rc = evaluate(&r, &val, NULL))) {
            char why[1024];
            snprintf(why, sizeof why, "%s", hg_last_error());
            rc = HG_ERRORF(rc, "epoch %d: evaluation failed (diverged? try a smaller --lr or "
                           "--grad-clip): %s", epoch, why);
            goto fail;
        }
        double score = selection_score(&r, &val);
        if (score > best_score) {
            best_score = score;
            best_val = val;
            best_epoch = epoch;
            since_best = 0;
            if ((rc = evaluate(&r, &val, &best_test)))
                goto fail;
            snapshot_take(&r);
            dirty = 1;
        } else {
            since_best++;
        }
        if (r.log)
            fprintf(r.log, "%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.4f\n", epoch, loss, gnorm, val.loss,
                    nc ? val.acc : val.roc_auc, nc ? val.f1 : val.ap, r.step_ms[epoch - 1]);
        if (!o.quiet && o.log_freq > 0 && epoch % o.log_freq == 0)
            printf("epoch %5d | loss %.4f | val %s %.4f %s %.4f | best %d | %.3f ms/step\n", epoch,
                   loss, nc ? "acc" : "auc", nc ? val.acc : val.roc_auc, nc ? "f1" : "ap",
                   nc ? val.f1 : val.ap, best_epoch, r.step_ms[epoch - 1]);
        if (o.out_dir && dirty && epoch % o.save_every == 0) {
            if ((rc = save_best(&r)))
                goto fail;
            dirty = 0;
        }
        if (since_best >= o.patience && epoch >= o.min_epochs) {
            stop = "early_stop";
            break;
        }
    }
    int epochs_run = epoch > o.epochs ? o.epochs : epoch;
    double epoch_ms = median(r.step_ms, epochs_run);

    static char prune_json[HG_MAX_PRUNE * 400];
    if (o.nprune > 0 && (rc = prune_sweep(&r, prune_json, sizeof prune_json)))
        goto fail;

    if (o.out_dir && (rc = save_best(&r)))
        goto fail;

    static char json[HG_MAX_PRUNE * 400 + 8192 + 2];
    hg_json j;
    hg_json_begin_buf(&j, json, sizeof json - 2);
    hg_json_add_str(&j, "dataset", r.name);
    hg_json_add_str(&j, "task", nc ? "nc" : "lp");
    hg_json_add_str(&j, "method", hg_linear_method_name(o.linear.method));
    hg_json_add_int(&j, "rank", o.linear.method == HG_LINEAR_FULL ? 0 : o.linear.rank);
    char seeds[2][32];
    snprintf(seeds[0], sizeof seeds[0], "%llu", (unsigned long long)o.seed);
    snprintf(seeds[1], sizeof seeds[1], "%llu", (unsigned long long)o.split_seed);
    hg_json_add_raw(&j, "seed", seeds[0]);
    hg_json_add_raw(&j, "split_seed", seeds[1]);
    hg_json_add_int(&j, "epochs", epochs_run);
    hg_json_add_int(&j, "best_epoch", best_epoch);
    hg_json_add_str(&j, "stopped", stop);
    hg_json_add_int(&j, "trainable_params", hg_hybonet_num_trainable(m));
    hg_json_add_int(&j, "optimizer_state_floats", hg_hybonet_state_floats(m));
    add_metrics(&j, "val", &r, &best_val);
    add_metrics(&j, "test", &r, &best_test);
    hg_json_add_double(&j, "train_seconds", train_seconds);
    hg_linear_stats ls_total = {0};
    for (int l = 0; l < m->cfg.nlayers; l++) {
        hg_linear_stats ls;
        hg_linear_get_stats(m->layer[l].lin, &ls);
        ls_total.reorths += ls.reorths;
        ls_total.merges += ls.merges;
        ls_total.schedule_seconds += ls.schedule_seconds;
    }
    hg_json_add_int(&j, "sst_reorths", ls_total.reorths);
    hg_json_add_int(&j, "relora_merges", ls_total.merges);
    hg_json_add_double(&j, "schedule_seconds", ls_total.schedule_seconds);
    hg_json_add_double(&j, "total_seconds", hg_now() - t_start);
    hg_json_add_double(&j, "epoch_ms", epoch_ms);
    hg_json_add_double(&j, "peak_rss_mib", peak_rss_mib());
    hg_json_add_int(&j, "threads", o.threads);
    hg_json_add_str(&j, "device", hg_k_device_name(&r.k));
    hg_json_add_double(&j, "lr", o.lr);
    hg_json_add_double(&j, "dropout", o.dropout);
    hg_json_add_double(&j, "weight_decay", o.weight_decay);
    hg_json_add_int(&j, "num_layers", o.num_layers);
    hg_json_add_int(&j, "dim", o.dim);
    if (o.nprune > 0)
        hg_json_add_raw(&j, "prune", prune_json);
    if ((rc = hg_json_end(&j)))
        goto fail;
    if (!o.quiet)
        printf("best epoch %d: test %s %.4f, %s %.4f | %d epochs, %.2f s training, %.3f ms/step\n",
               best_epoch, nc ? "acc" : "roc_auc", nc ? best_test.acc : best_test.roc_auc,
               nc ? "f1" : "ap", nc ? best_test.f1 : best_test.ap, epochs_run, train_seconds,
               epoch_ms);
    printf("%s\n", json);
    if (o.out_dir) {
        char path[4200];
        snprintf(path, sizeof path, "%s/result.json", o.out_dir);
        size_t len = strlen(json);
        json[len] = '\n'; /* the file ends with a newline, as stdout does */
        json[len + 1] = '\0';
        if ((rc = hg_text_write(path, json)))
            goto fail;
    }
    run_destroy(&r);
    return 0;

fail:
    fflush(stdout);
    fprintf(stderr, "hgnn-train: %s\n", hg_last_error()[0] ? hg_last_error() : hg_strerror(rc));
    /* keep what was already achieved: the best checkpoint so far */
    if (exit_code == EXIT_RUN && o.out_dir && r.snapshot)
        save_best(&r);
    run_destroy(&r);
    return exit_code;
}
