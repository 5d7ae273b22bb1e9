/* lm_options.h - hgnn-lm train's command line: an OPT-style decoder-only language model (named
 * sizes tiny, small, opt-125m, or explicit shapes) trained on token files, every linear map full
 * rank, LoRA, ReLoRA* or SST. */
#ifndef HG_CLI_LM_OPTIONS_H
#define HG_CLI_LM_OPTIONS_H

#include <stdint.h>

#include "../../sst/linear.h"
#include "args.h"

#define HG_LM_MAX_PRUNE 32

typedef struct hg_lm_options {
    /* data: token files or UTF-8 text (datasets/tokens.h); the bundled corpus by default */
    const char *train, *valid;
    char train_buf[4096], valid_buf[4096]; /* the bundled corpus's paths */
    int64_t eval_tokens;   /* validation tokens of the periodic evaluations (0: all); the final
                              one reads all */
    int vocab;             /* the tokenizer's vocabulary (0: the training file's); the model's
                              is this rounded up to a multiple of 64 */
    /* model: a named configuration, then the shapes given explicitly */
    const char *config;
    int layers, dim, heads, ffn, ctx;
    int positions;         /* rows of the trained position table (0 until finished: the
                              configuration's context, or ctx when larger); ctx <= positions */
    float dropout;
    hg_linear_opts linear;
    /* optimisation: AdamW, linear warm-up then constant */
    float lr, lr_lowrank, weight_decay, clip;
    int warmup;
    int64_t batch, grad_accum, tokens, steps; /* steps < 0: from tokens (or 1000) */
    uint64_t seed;
    /* running and output */
    int threads, log_freq, quiet;
    int64_t eval_every, save_every;
    int64_t check_every;   /* steps between the replicas' checksum comparisons (several ranks) */
    const char *out_dir, *resume, *device;
    int bf16;       /* --precision bf16 */
    int attn_fused; /* --attention fused */
    /* singular-value pruning of the final model: fractions of each map's singular values kept */
    double prune[HG_LM_MAX_PRUNE];
    int nprune;
    hg_arg_saved saved;
} hg_lm_options;

/* Parse hgnn-lm train's arguments (argv[0] = "train"): defaults, then with --resume DIR the
 * options saved in DIR/args.txt, then those given; then the named configuration fills the shapes
 * not given. Returns HG_OK, HG_ARG_DONE (--help printed), HG_EIO (args.txt unreadable) or
 * HG_EINVAL with a one-line message naming the option. Free with hg_lm_options_free (also after
 * a failure). */
int hg_lm_options_parse(hg_lm_options *o, int argc, char **argv);
void hg_lm_options_free(hg_lm_options *o);
/* Save the command line into DIR/args.txt, with --vocab V appended (the model's vocabulary
 * depends on the training file otherwise). Errors: those of hg_arg_save, HG_ENOMEM. */
int hg_lm_options_save(const char *dir, int argc, char **argv, int vocab);
/* The options a run saved in DIR/args.txt (for eval and generate --model DIR). */
int hg_lm_options_load(hg_lm_options *o, const char *dir);
/* --prune-sigma's list "F1,F2,...": up to HG_LM_MAX_PRUNE fractions in (0, 1], into out[],
 * their count in *n. Errors: HG_EINVAL naming the option. */
int hg_lm_parse_fractions(const char *key, const char *val, double *out, int *n);
/* The model's vocabulary for a tokenizer's: rounded up to a multiple of 64. */
int64_t hg_lm_model_vocab(int vocab);
/* Steps of the run: --steps, or the token budget over the tokens of one step of `world`
 * data-parallel ranks (batch x grad_accum x world windows). */
int64_t hg_lm_total_steps(const hg_lm_options *o, int world);

#endif
