/* options.c - hgnn-train options, the reference hyperparameters and their parsing. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hg_config.h"
#include "../hg.h"
#include "../io.h"
#include "args.h"
#include "linear_args.h"

_Static_assert(HG_OPTIONS_DONE == HG_ARG_DONE, "HG_OPTIONS_DONE is hg_arg_parse's HG_ARG_DONE");

/* HyboNet's published run scripts; all dim 16, bias 1, patience 500. */
typedef struct reference {
    const char *dataset;
    hg_task task;
    float lr;
    int num_layers;
    float dropout, weight_decay, margin, grad_clip; /* grad_clip 0 = none */
    int act_relu, normalize_feats;
} reference;

static const reference references[] = {
    {"airport", HG_TASK_LP, 0.01f, 2, 0.0f, 0.0f, 2.0f, 0.0f, 0, 1},
    {"airport", HG_TASK_NC, 0.02f, 6, 0.0f, 1e-4f, 2.0f, 1.0f, 1, 1},
    {"cora", HG_TASK_LP, 0.02f, 2, 0.7f, 1e-3f, 0.1f, 0.5f, 0, 1},
    {"cora", HG_TASK_NC, 0.02f, 3, 0.9f, 1e-2f, 1.0f, 1.0f, 0, 1},
    {"disease_lp", HG_TASK_LP, 0.005f, 2, 0.0f, 0.0f, 30.0f, 0.5f, 0, 0},
    {"disease_nc", HG_TASK_NC, 0.005f, 4, 0.1f, 0.0f, 2.0f, 0.5f, 0, 1},
    {"pubmed", HG_TASK_LP, 0.008f, 2, 0.5f, 0.0f, 0.3f, 0.5f, 0, 1},
    {"pubmed", HG_TASK_NC, 0.02f, 3, 0.8f, 1e-3f, 1.0f, 0.5f, 0, 1},
};

/* Datasets whose node-classification split is random: val/test proportions. */
static void nc_split_props(const char *name, double *val, double *test)
{
    if (name && strcmp(name, "disease_nc") == 0) {
        *val = 0.10;
        *test = 0.60;
    } else { /* airport and any other dataset without a split file */
        *val = 0.15;
        *test = 0.15;
    }
}

void hg_train_options_usage(void)
{
    printf(
        "usage: hgnn-train (--dataset NAME | --data-dir DIR) [--task nc|lp] [options]\n"
        "\n"
        "Trains HyboNet (fully hyperbolic GCN, Lorentz model) for node classification (nc) or\n"
        "link prediction (lp). --dataset alone selects HyboNet's reference hyperparameters.\n"
        "\n"
        "data:\n"
        "  --dataset NAME          bundled: cora, pubmed, disease_nc, disease_lp, airport\n"
        "  --data-dir DIR          any directory in the same format (graph.edges, labels.txt,\n"
        "                          features.mtx, optional split file); with --dataset NAME the\n"
        "                          reference settings of NAME apply\n"
        "  --task nc|lp            node classification or link prediction (default: nc, or lp\n"
        "                          for disease_lp)\n"
        "  --use-feats 0|1         0: identity features (default: 1 when features.mtx exists)\n"
        "  --features-file NAME    feature file in the data dir (default features.mtx; for lp\n"
        "                          features_lp.mtx when present: Airport's LP loader keeps a\n"
        "                          fifth column)\n"
        "  --normalize-feats 0|1   row-normalise features\n"
        "  --degree-features 0|1   append one-hot(min(degree,5)) and a 1 column (airport: 1)\n"
        "  --split-file NAME       node split file in the data dir (default split_hybonet.txt,\n"
        "                          else split.txt, else a seeded random split)\n"
        "  --val-prop P --test-prop P   random node split (nc) or edge split (lp: 0.05 0.10)\n"
        "  --nc-split disjoint|reference  random node split: label 0 vs the rest (disjoint), or\n"
        "                          HGCN's overlapping groups, which leak test nodes into train\n"
        "  --lp-neg-pool reference|nonedge  training negatives: all pairs that are not training\n"
        "                          edges (reference: includes val/test positives) or non-edges\n"
        "  --split-seed N          seed of the data split (1234)\n"
        "model:\n"
        "  --dim N (16)  --num-layers N  --act none|relu  --bias 0|1  --dropout P  --margin M\n"
        "  --scale-init S          initial exp(s) of LorentzLinear (10)\n"
        "linear maps (sst/):\n"
        "  --method full|lora|relora|sst   how every weight is trained (full)\n"
        "  --rank R (1)  --lora-alpha A (= R)\n"
        "  --sst-steps T3 (100)    steps per SST iteration / ReLoRA merge\n"
        "  --sst-warmup N (100)    lr warm-up steps at the start of each iteration\n"
        "  --sst-rounds-iters T2   iterations per SST round (default ceil(k/r))\n"
        "  --sst-sampling sigma|mixed|uniform|top (sigma)   --sst-renorm 0|1 (1)\n"
        "  --prune-sigma K[,K...]  also evaluate the best model keeping the K largest singular\n"
        "                          values of every weight (K < 1: that fraction of them)\n"
        "optimisation:\n"
        "  --lr LR  --weight-decay WD  --wd-mode decoupled|l2 (decoupled)\n"
        "  --lr-schedule constant|warmup|invsqrt|cosine (constant)   --warmup-steps N (0)\n"
        "                          linear warm-up over N steps, then constant, inverse square\n"
        "                          root or cosine decay to 0 at the last epoch\n"
        "  --grad-clip C (0 = none)  --stabilize N (10: re-project class points every N steps)\n"
        "  --epochs N (5000; 0 = evaluate the initial model)  --patience N (500)\n"
        "  --min-epochs N (100)  --seed N (1234)\n"
        "  --eval-every N (1)      epochs between evaluations (patience counts evaluations)\n"
        "running:\n"
        "  --threads N (1)  --log-freq N (10)  --quiet\n"
        "  --out DIR               write result.json, log.csv, embeddings.npy, checkpoint.bin\n"
        "                          (the best model), last.ckpt (the run, resumable), args.txt\n"
        "  --save-every N (100)    every N epochs: rewrite last.ckpt, and the best checkpoint\n"
        "                          when it changed\n"
        "  --resume DIR            continue the run interrupted in DIR from its last.ckpt, with\n"
        "                          its options (DIR/args.txt; options given too override them):\n"
        "                          the same results as a run never interrupted\n"
        "  --load FILE             start from a checkpoint.bin of the same model (same dataset,\n"
        "                          task, method, rank, dim, layers); --epochs 0 evaluates it\n"
        "  --device cpu|cuda       where the training step runs (cuda: the GPU, when built with\n"
        "                          the CUDA backend)\n"
        "  --help  --version\n"
        "\n"
        "The last line of stdout is one JSON object with the run's results.\n");
}

/* Comma-separated positive numbers, e.g. "1,2,4,0.5". */
static int parse_list(const char *opt, const char *s, double *out, int *count)
{
    char buf[512], *save = NULL;
    if (strlen(s) >= sizeof buf)
        return hg_arg_bad(opt, s, "is too long");
    strcpy(buf, s);
    *count = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*count == HG_MAX_PRUNE)
            return hg_arg_bad(opt, s, "has too many entries");
        int rc = hg_arg_double(opt, t, 1e-9, 1e9, &out[*count]);
        if (rc)
            return rc;
        (*count)++;
    }
    return *count ? HG_OK : hg_arg_bad(opt, s, "is empty");
}

/* Options that only take effect through the reference table are tracked so the table never
 * overrides what the user wrote. */
enum {
    SET_LR = 1 << 0, SET_LAYERS = 1 << 1, SET_DROPOUT = 1 << 2, SET_WD = 1 << 3, SET_MARGIN = 1 << 4,
    SET_CLIP = 1 << 5, SET_ACT = 1 << 6, SET_NORM = 1 << 7, SET_VAL = 1 << 8, SET_TEST = 1 << 9,
    SET_AUG = 1 << 10, SET_TASK = 1 << 11
};

typedef struct train_parse {
    hg_train_options *o;
    unsigned set; /* SET_* of the options given */
} train_parse;

/* One option of hgnn-train (hg_arg_program.option). */
static int train_option(void *ctx, const char *key, const char *val)
{
    train_parse *tp = ctx;
    hg_train_options *o = tp->o;
    int rc = HG_OK, c = 0;
#define IS(name) (!strcmp(key, name))
#define CHOICE(what, ...) \
    hg_arg_choice(key, val, what, (const char *const[]){__VA_ARGS__, NULL}, &c)
    if (IS("--dataset"))
        o->dataset = val;
    else if (IS("--data-dir"))
        o->data_dir = val;
    else if (IS("--task")) {
        rc = CHOICE("a task", "nc", "lp");
        o->task = (hg_task)c;
        tp->set |= SET_TASK;
    } else if (IS("--use-feats"))
        rc = hg_arg_bool(key, val, &o->use_feats);
    else if (IS("--normalize-feats")) {
        rc = hg_arg_bool(key, val, &o->normalize_feats);
        tp->set |= SET_NORM;
    } else if (IS("--degree-features")) {
        rc = hg_arg_bool(key, val, &o->augment_degree);
        tp->set |= SET_AUG;
    } else if (IS("--split-file"))
        o->split_file = val;
    else if (IS("--features-file"))
        o->features_file = val;
    else if (IS("--nc-split")) {
        rc = CHOICE("a split rule", "disjoint", "reference");
        o->nc_split_reference = c;
    } else if (IS("--val-prop")) {
        rc = hg_arg_double(key, val, 0.0, 0.9, &o->val_prop);
        tp->set |= SET_VAL;
    } else if (IS("--test-prop")) {
        rc = hg_arg_double(key, val, 0.0, 0.9, &o->test_prop);
        tp->set |= SET_TEST;
    } else if (IS("--lp-neg-pool")) {
        rc = CHOICE("a pool", "reference", "nonedge");
        o->neg_pool = (hg_neg_pool)c;
    } else if (IS("--split-seed"))
        rc = hg_arg_u64(key, val, &o->split_seed);
    else if (IS("--seed"))
        rc = hg_arg_u64(key, val, &o->seed);
    else if (IS("--dim"))
        rc = hg_arg_int(key, val, 2, 1024, &o->dim);
    else if (IS("--num-layers")) {
        rc = hg_arg_int(key, val, 1, 17, &o->num_layers);
        tp->set |= SET_LAYERS;
    } else if (IS("--act")) {
        rc = CHOICE("an activation", "none", "relu");
        o->act_relu = c;
        tp->set |= SET_ACT;
    } else if (IS("--bias"))
        rc = hg_arg_bool(key, val, &o->bias);
    else if (IS("--dropout")) {
        rc = hg_arg_float(key, val, 0.0, 0.99, &o->dropout);
        tp->set |= SET_DROPOUT;
    } else if (IS("--margin")) {
        rc = hg_arg_float(key, val, 0.0, 1e6, &o->margin);
        tp->set |= SET_MARGIN;
    } else if (IS("--scale-init"))
        rc = hg_arg_float(key, val, 1e-3, 1e6, &o->scale_init);
    else if ((rc = hg_arg_linear(&o->linear, key, val, &c)) || c)
        ;
    else if (IS("--prune-sigma"))
        rc = parse_list(key, val, o->prune, &o->nprune);
    else if (IS("--lr")) {
        rc = hg_arg_float(key, val, 1e-9, 10.0, &o->lr);
        tp->set |= SET_LR;
    } else if (IS("--weight-decay")) {
        rc = hg_arg_float(key, val, 0.0, 10.0, &o->weight_decay);
        tp->set |= SET_WD;
    } else if (IS("--wd-mode")) {
        rc = CHOICE("a weight-decay mode", "decoupled", "l2");
        o->decoupled_wd = c == 0;
    } else if (IS("--grad-clip")) {
        if (!strcmp(val, "none"))
            o->grad_clip = 0.0f;
        else
            rc = hg_arg_float(key, val, 0.0, 1e9, &o->grad_clip);
        tp->set |= SET_CLIP;
    } else if (IS("--stabilize"))
        rc = hg_arg_int(key, val, 0, 1 << 30, &o->stabilize);
    else if (IS("--epochs"))
        rc = hg_arg_int(key, val, 0, 10000000, &o->epochs);
    else if (IS("--patience"))
        rc = hg_arg_int(key, val, 1, 10000000, &o->patience);
    else if (IS("--min-epochs"))
        rc = hg_arg_int(key, val, 0, 10000000, &o->min_epochs);
    else if (IS("--threads"))
        rc = hg_arg_int(key, val, 1, 1024, &o->threads);
    else if (IS("--log-freq"))
        rc = hg_arg_int(key, val, 0, 10000000, &o->log_freq);
    else if (IS("--save-every"))
        rc = hg_arg_int(key, val, 1, 10000000, &o->save_every);
    else if (IS("--eval-every"))
        rc = hg_arg_int(key, val, 1, 10000000, &o->eval_every);
    else if (IS("--lr-schedule")) {
        rc = CHOICE("a schedule", "constant", "warmup", "invsqrt", "cosine");
        o->lr_schedule = (hg_lr_kind)c;
    } else if (IS("--warmup-steps"))
        rc = hg_arg_int(key, val, 0, 10000000, &o->warmup_steps);
    else if (IS("--resume"))
        o->resume = val;
    else if (IS("--out"))
        o->out_dir = val;
    else if (IS("--load"))
        o->load = val;
    else if (IS("--device"))
        rc = hg_arg_device(key, val, &o->device);
    else
        return hg_arg_unknown(key);
#undef CHOICE
#undef IS
    return rc;
}

static void set_defaults(hg_train_options *o)
{
    memset(o, 0, sizeof *o);
    hg_linear_opts_default(&o->linear);
    o->task = HG_TASK_NC;
    o->dim = 16;
    o->num_layers = 2;
    o->bias = 1;
    o->margin = 2.0f;
    o->scale_init = 10.0f;
    o->lr = 0.01f;
    o->lr_schedule = HG_LR_CONSTANT;
    o->decoupled_wd = 1;
    o->stabilize = 10;
    o->epochs = 5000;
    o->patience = 500;
    o->min_epochs = 100;
    o->seed = 1234;
    o->split_seed = 1234;
    o->use_feats = -1;
    o->normalize_feats = 1;
    o->threads = 1;
    o->log_freq = 10;
    o->save_every = 100;
    o->eval_every = 1;
    o->device = "cpu";
    o->neg_pool = HG_NEG_POOL_REFERENCE;
}

#define ARGS_FILE "args.txt"

int hg_train_options_save(const char *dir, int argc, char **argv)
{
    return hg_arg_save(dir, ARGS_FILE, argc, argv);
}

void hg_train_options_free(hg_train_options *o)
{
    hg_arg_saved_free(&o->saved);
}

int hg_train_options_parse(hg_train_options *o, int argc, char **argv)
{
    set_defaults(o);
    train_parse tp = {o, 0};
    const hg_arg_program prog = {hg_train_options_usage, "hgnn-train " HG_VERSION, &o->quiet,
                                 NULL, train_option, &tp};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc != HG_OK)
        return rc;
    if (o->resume) { /* again: the saved options, then the ones given */
        const char *dir = o->resume;
        set_defaults(o);
        tp.set = 0;
        if ((rc = hg_arg_saved_read(&o->saved, "hgnn-train", dir, ARGS_FILE)) ||
            (rc = hg_arg_parse(&prog, o->saved.argc, o->saved.argv)) ||
            (rc = hg_arg_parse(&prog, argc, argv)))
            return rc;
        o->out_dir = dir;
    }
    unsigned set = tp.set;

    if (!o->dataset && !o->data_dir)
        return HG_ERRORF(HG_EINVAL, "no data: give --dataset NAME or --data-dir DIR (see --help)");
    if (o->dataset && !(set & SET_TASK) && !strcmp(o->dataset, "disease_lp"))
        o->task = HG_TASK_LP;

    /* reference settings of the named dataset, unless the option was given */
    const reference *ref = NULL;
    for (size_t r = 0; o->dataset && r < sizeof references / sizeof references[0]; r++)
        if (!strcmp(references[r].dataset, o->dataset) && references[r].task == o->task)
            ref = &references[r];
    if (ref) {
        if (!(set & SET_LR)) o->lr = ref->lr;
        if (!(set & SET_LAYERS)) o->num_layers = ref->num_layers;
        if (!(set & SET_DROPOUT)) o->dropout = ref->dropout;
        if (!(set & SET_WD)) o->weight_decay = ref->weight_decay;
        if (!(set & SET_MARGIN)) o->margin = ref->margin;
        if (!(set & SET_CLIP)) o->grad_clip = ref->grad_clip;
        if (!(set & SET_ACT)) o->act_relu = ref->act_relu;
        if (!(set & SET_NORM)) o->normalize_feats = ref->normalize_feats;
    }
    /* the paper's only deviation from HyboNet's settings: dropout 0.5 for LoRA and SST on Cora NC */
    if (o->dataset && !strcmp(o->dataset, "cora") && o->task == HG_TASK_NC && !(set & SET_DROPOUT) &&
        o->linear.method != HG_LINEAR_FULL)
        o->dropout = 0.5f;
    if (o->dataset && !strcmp(o->dataset, "airport") && !(set & SET_AUG))
        o->augment_degree = 1;
    if (o->task == HG_TASK_LP) {
        if (!(set & SET_VAL)) o->val_prop = 0.05;
        if (!(set & SET_TEST)) o->test_prop = 0.10;
    } else {
        double v, t;
        nc_split_props(o->dataset, &v, &t);
        if (!(set & SET_VAL)) o->val_prop = v;
        if (!(set & SET_TEST)) o->test_prop = t;
    }
    if (o->val_prop + o->test_prop >= 1.0)
        return HG_ERRORF(HG_EINVAL, "options --val-prop %g and --test-prop %g leave no training data",
                         o->val_prop, o->test_prop);
    int graph_layers = o->task == HG_TASK_NC ? o->num_layers - 1 : o->num_layers;
    if (graph_layers < 1)
        return HG_ERRORF(HG_EINVAL, "option --num-layers %d: node classification needs at least 2 "
                         "(num_layers - 1 graph layers)", o->num_layers);
    o->linear.weight_decay = o->weight_decay;
    o->linear.decoupled_wd = o->decoupled_wd;
    return HG_OK;
}
