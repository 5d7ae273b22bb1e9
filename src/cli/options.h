/* options.h - hgnn-train's command line: every hyperparameter is an option, and
 * `--dataset X --task Y` alone selects the reference hyperparameters of HyboNet's run scripts
 * and the paper's SST defaults. */
#ifndef HG_CLI_OPTIONS_H
#define HG_CLI_OPTIONS_H

#include <stdint.h>

#include "../../datasets/dataset.h"
#include "../../sst/linear.h"
#include "args.h"
#include "../schedule.h"

#define HG_MAX_PRUNE 32

typedef struct hg_train_options {
    const char *dataset;   /* bundled name, or NULL with data_dir */
    const char *data_dir;  /* any directory in the same format */
    hg_task task;
    /* model */
    int dim, num_layers, act_relu, bias;
    float dropout, margin, scale_init;
    /* optimisation */
    float lr, weight_decay, grad_clip; /* grad_clip <= 0: none */
    int decoupled_wd, stabilize;
    int epochs, patience, min_epochs;
    hg_lr_kind lr_schedule; /* constant by default */
    int warmup_steps;
    uint64_t seed, split_seed;
    hg_linear_opts linear;
    /* data */
    int use_feats;         /* -1: auto (1 when features.mtx exists) */
    int normalize_feats, augment_degree;
    const char *split_file;
    const char *features_file;
    int nc_split_reference;
    double val_prop, test_prop;
    hg_neg_pool neg_pool;
    /* running and output */
    int threads, log_freq, quiet, save_every, eval_every;
    const char *out_dir;
    const char *load;      /* checkpoint to start from (evaluate it with --epochs 0) */
    const char *resume;    /* directory of an interrupted run (then out_dir is the same) */
    hg_arg_saved saved;    /* the resumed run's command line (the strings of its options point
                              into it) */
    const char *device;
    /* singular-value pruning sweep of the best model: each entry K >= 1 keeps the K largest
       singular values of every weight, 0 < K < 1 keeps that fraction of them (rounded up) */
    double prune[HG_MAX_PRUNE];
    int nprune;
} hg_train_options;

/* Parse argv into o (defaults first, then the dataset's reference settings, then the options
 * given, which always win). With --resume DIR, the options saved in DIR/args.txt come first and
 * those given after them (so --resume DIR alone repeats the interrupted run), and out_dir is DIR.
 * Returns 0 on success, HG_OPTIONS_DONE when --help/--version was printed, HG_EIO when
 * DIR/args.txt cannot be read, and HG_EINVAL with a one-line message naming the option
 * otherwise. Free with hg_train_options_free (also after a failure). */
int hg_train_options_parse(hg_train_options *o, int argc, char **argv);
void hg_train_options_free(hg_train_options *o);
void hg_train_options_usage(void);

/* Save argv[1..argc-1] as DIR/args.txt (one argument a line; atomic) for --resume DIR.
 * Errors: HG_EINVAL (an argument with a newline), HG_EIO, HG_ENOMEM. */
int hg_train_options_save(const char *dir, int argc, char **argv);

/* Returned by hg_train_options_parse after --help or --version (not a status code). */
#define HG_OPTIONS_DONE (-1)

#endif
