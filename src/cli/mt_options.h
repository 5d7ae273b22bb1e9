/* mt_options.h - hgnn-mt train's command line: every hyperparameter of the translation model
 * is an option; with none, the default model on the bundled Multi30K (German -> English). */
#ifndef HG_CLI_MT_OPTIONS_H
#define HG_CLI_MT_OPTIONS_H

#include <stdint.h>

#include "../../sst/linear.h"
#include "args.h"

typedef struct hg_mt_options {
    /* data: a directory with {train,val,test2016}.{src,tgt}, or each file */
    const char *data_dir, *src, *tgt;
    const char *train_src, *train_tgt, *valid_src, *valid_tgt, *test_src, *test_tgt;
    char paths[6][4200];   /* the files actually read (data_dir's, unless given) */
    int vocab;
    const char *spm_model;
    int64_t max_line;      /* longest line accepted, bytes */
    /* model */
    int dim, enc_layers, dec_layers, heads, ffn, post_ln, gelu;
    float dropout;
    hg_linear_opts linear;
    /* optimisation */
    float lr, label_smoothing, clip;
    int warmup, epochs;
    int64_t max_tokens, steps; /* steps: 0 = epochs x batches / batches a step */
    int64_t grad_accum;        /* batches a step on each data-parallel rank */
    uint64_t seed;
    /* decoding */
    int beam, decode;      /* decode: translate the test set at the end (BLEU) */
    float len_penalty;
    int64_t extra_len, decode_batch;
    /* running and output */
    int threads, log_freq, quiet, save_every, eval_every; /* eval_every 0: once per epoch */
    int64_t check_every;   /* steps between the replicas' checksum comparisons (several ranks) */
    const char *out_dir, *resume, *device;
    int bf16;       /* --precision bf16 */
    int attn_fused; /* --attention fused */
    hg_arg_saved saved;
} hg_mt_options;

/* Parse hgnn-mt train's arguments (argv[0] = "train") into o: defaults, then with --resume DIR
 * the options saved in DIR/args.txt, then those given. Returns HG_OK, HG_ARG_DONE (--help
 * printed), HG_EIO (args.txt unreadable) or HG_EINVAL with a one-line message naming the option.
 * Free with hg_mt_options_free (also after a failure). */
int hg_mt_options_parse(hg_mt_options *o, int argc, char **argv);
void hg_mt_options_free(hg_mt_options *o);
/* Save the command line into DIR/args.txt (hg_arg_save). */
int hg_mt_options_save(const char *dir, int argc, char **argv);
/* Read the options a run saved in DIR/args.txt (for translate --model DIR). Errors: HG_EIO
 * (DIR/args.txt unreadable; the message names option --model), those of the option parser. */
int hg_mt_options_load(hg_mt_options *o, const char *dir);

#endif
