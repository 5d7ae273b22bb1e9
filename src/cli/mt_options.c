/* mt_options.c - hgnn-mt train's options (contract in mt_options.h). */
#include "mt_options.h"

#include <stdio.h>
#include <string.h>

#include "hg_config.h"
#include "../hg.h"
#include "linear_args.h"

#define ARGS_FILE "args.txt"

static void usage(void)
{
    printf("usage: hgnn-mt train [options]\n"
           "Trains an encoder-decoder Transformer for translation (every linear map full rank,\n"
           "LoRA, ReLoRA* or SST) and reports test BLEU. With no option: the default model on the\n"
           "bundled Multi30K, German -> English.\n"
           "data:\n"
           "  --data-dir DIR (bundled multi30k)  --src LANG (de)  --tgt LANG (en)\n"
           "                          files DIR/{train,val,test2016}.LANG\n"
           "  --train-src F --train-tgt F --valid-src F --valid-tgt F --test-src F --test-tgt F\n"
           "                          any parallel corpus (UTF-8, one sentence a line)\n"
           "  --vocab N (8000)        SentencePiece BPE pieces, learned on the training corpus\n"
           "  --spm-model FILE        reuse a SentencePiece model instead\n"
           "  --max-line BYTES (65536) longest line accepted\n"
           "model:\n"
           "  --dim D (64)  --enc-layers N (3)  --dec-layers N (3)  --heads H (4)  --ffn F (256)\n"
           "  --dropout P (0.1)  --post-ln 0|1 (0: pre-LN)  --act relu|gelu (relu)\n");
    hg_arg_linear_usage("200", "20", "d/r");
    printf("optimisation:\n"
           "  --lr LR (1e-3)  --warmup N (400): linear warm-up, then inverse square root\n"
           "  --max-tokens N (4096)   target tokens per batch (length buckets)\n"
           "  --grad-accum N (1)      batches per step (under mpirun -np R: N x R batches a\n"
           "                          step, N on each rank)\n"
           "  --epochs N (30)  --steps N (0: all epochs)  --label-smoothing E (0.1)\n"
           "  --clip C (1.0; 0: none)  --seed S (1)\n"
           "decoding (test set):\n"
           "  --beam K (2)  --len-penalty A (1.0: score / length)  --decode 0|1 (1)\n"
           "  --max-extra N (50)      longest output: source length + N\n"
           "  --decode-batch N (200)  sources per batch\n"
           "running:\n"
           "  --threads N (1)  --device cpu|cuda  --log-freq N (50 steps)  --quiet\n"
           "  --precision fp32|bf16 (fp32): bf16 runs the products on bfloat16 tensor cores\n"
           "      (fp32 accumulation, weights and arrays); --device cuda only\n"
           "  --attention gemm|fused (gemm): causal self-attention by batched products and a\n"
           "      row softmax (scores stored), or by one fused kernel (scores never stored)\n"
           "  --eval-every N (one epoch)  --save-every N (500 steps)\n"
           "  --check-every N (100 steps): under mpirun, compare the ranks' parameters\n"
           "  --out DIR  --resume DIR (continue an interrupted run; DIR/args.txt first)\n");
}

static void set_defaults(hg_mt_options *o)
{
    memset(o, 0, sizeof *o);
    hg_linear_opts_default(&o->linear);
    o->linear.beta1 = 0.9f;
    o->linear.beta2 = 0.98f;
    o->linear.eps = 1e-9f;
    o->linear.steps_per_iter = 200;
    o->linear.warmup = 20;
    o->linear.rank = 0; /* d / 8 unless given */
    o->src = "de";
    o->tgt = "en";
    o->vocab = 8000;
    o->max_line = 65536;
    o->dim = 64;
    o->enc_layers = 3;
    o->dec_layers = 3;
    o->heads = 4;
    o->ffn = 256;
    o->dropout = 0.1f;
    o->lr = 1e-3f;
    o->warmup = 400;
    o->max_tokens = 4096;
    o->grad_accum = 1;
    o->epochs = 30;
    o->label_smoothing = 0.1f;
    o->clip = 1.0f;
    o->seed = 1;
    o->beam = 2;
    o->decode = 1;
    o->len_penalty = 1.0f;
    o->extra_len = 50;
    o->decode_batch = 200;
    o->threads = 1;
    o->log_freq = 50;
    o->save_every = 500;
    o->check_every = 100;
    o->device = "cpu";
}

static int option(void *ctx, const char *key, const char *val)
{
    hg_mt_options *o = ctx;
    int rc = HG_OK, c = 0;
#define IS(name) (!strcmp(key, name))
    if (IS("--data-dir"))
        o->data_dir = val;
    else if (IS("--src"))
        o->src = val;
    else if (IS("--tgt"))
        o->tgt = val;
    else if (IS("--train-src"))
        o->train_src = val;
    else if (IS("--train-tgt"))
        o->train_tgt = val;
    else if (IS("--valid-src"))
        o->valid_src = val;
    else if (IS("--valid-tgt"))
        o->valid_tgt = val;
    else if (IS("--test-src"))
        o->test_src = val;
    else if (IS("--test-tgt"))
        o->test_tgt = val;
    else if (IS("--vocab"))
        rc = hg_arg_int(key, val, 16, 1 << 20, &o->vocab);
    else if (IS("--spm-model"))
        o->spm_model = val;
    else if (IS("--max-line"))
        rc = hg_arg_i64(key, val, 16, (int64_t)1 << 30, &o->max_line);
    else if (IS("--dim"))
        rc = hg_arg_int(key, val, 2, 65536, &o->dim);
    else if (IS("--enc-layers"))
        rc = hg_arg_int(key, val, 1, 32, &o->enc_layers);
    else if (IS("--dec-layers"))
        rc = hg_arg_int(key, val, 1, 32, &o->dec_layers);
    else if (IS("--heads"))
        rc = hg_arg_int(key, val, 1, 1024, &o->heads);
    else if (IS("--ffn"))
        rc = hg_arg_int(key, val, 1, 1 << 20, &o->ffn);
    else if (IS("--dropout"))
        rc = hg_arg_float(key, val, 0.0, 0.99, &o->dropout);
    else if (IS("--post-ln"))
        rc = hg_arg_bool(key, val, &o->post_ln);
    else if (IS("--act")) {
        rc = hg_arg_choice(key, val, "an activation", (const char *const[]){"relu", "gelu", NULL},
                           &c);
        o->gelu = c;
    } else if ((rc = hg_arg_linear(&o->linear, key, val, &c)) || c)
        ;
    else if (IS("--lr"))
        rc = hg_arg_float(key, val, 1e-9, 10.0, &o->lr);
    else if (IS("--warmup"))
        rc = hg_arg_int(key, val, 0, 1 << 30, &o->warmup);
    else if (IS("--max-tokens"))
        rc = hg_arg_i64(key, val, 16, (int64_t)1 << 30, &o->max_tokens);
    else if (IS("--grad-accum"))
        rc = hg_arg_i64(key, val, 1, 1 << 20, &o->grad_accum);
    else if (IS("--epochs"))
        rc = hg_arg_int(key, val, 0, 1 << 20, &o->epochs);
    else if (IS("--steps"))
        rc = hg_arg_i64(key, val, 0, (int64_t)1 << 40, &o->steps);
    else if (IS("--label-smoothing"))
        rc = hg_arg_float(key, val, 0.0, 0.99, &o->label_smoothing);
    else if (IS("--clip"))
        rc = hg_arg_float(key, val, 0.0, 1e9, &o->clip);
    else if (IS("--seed"))
        rc = hg_arg_u64(key, val, &o->seed);
    else if (IS("--beam"))
        rc = hg_arg_int(key, val, 1, 64, &o->beam);
    else if (IS("--len-penalty"))
        rc = hg_arg_float(key, val, 0.0, 10.0, &o->len_penalty);
    else if (IS("--decode"))
        rc = hg_arg_bool(key, val, &o->decode);
    else if (IS("--max-extra"))
        rc = hg_arg_i64(key, val, 1, 100000, &o->extra_len);
    else if (IS("--decode-batch"))
        rc = hg_arg_i64(key, val, 1, 100000, &o->decode_batch);
    else if (IS("--threads"))
        rc = hg_arg_int(key, val, 1, 1024, &o->threads);
    else if (IS("--log-freq"))
        rc = hg_arg_int(key, val, 0, 1 << 30, &o->log_freq);
    else if (IS("--eval-every"))
        rc = hg_arg_int(key, val, 1, 1 << 30, &o->eval_every);
    else if (IS("--save-every"))
        rc = hg_arg_int(key, val, 1, 1 << 30, &o->save_every);
    else if (IS("--check-every"))
        rc = hg_arg_i64(key, val, 1, (int64_t)1 << 40, &o->check_every);
    else if (IS("--out"))
        o->out_dir = val;
    else if (IS("--resume"))
        o->resume = val;
    else if (IS("--device"))
        rc = hg_arg_device(key, val, &o->device);
    else if (IS("--precision"))
        rc = hg_arg_precision(key, val, &o->bf16);
    else if (IS("--attention"))
        rc = hg_arg_attention(key, val, &o->attn_fused);
    else
        return hg_arg_unknown(key);
#undef IS
    return rc;
}

/* The six files: each given one, or DATA_DIR/{train,val,test2016}.LANG. */
static int resolve_files(hg_mt_options *o)
{
    const char *dir = o->data_dir ? o->data_dir : HG_SOURCE_DATA_DIR "/multi30k";
    const char *given[6] = {o->train_src, o->train_tgt, o->valid_src, o->valid_tgt, o->test_src,
                            o->test_tgt};
    const char *split[3] = {"train", "val", "test2016"};
    if (!strcmp(o->src, o->tgt))
        return HG_ERRORF(HG_EINVAL, "options --src and --tgt: both are '%s'", o->src);
    for (int i = 0; i < 6; i++) {
        if (given[i])
            snprintf(o->paths[i], sizeof o->paths[i], "%s", given[i]);
        else
            snprintf(o->paths[i], sizeof o->paths[i], "%s/%s.%s", dir, split[i / 2],
                     i % 2 ? o->tgt : o->src);
    }
    return HG_OK;
}

static int finish(hg_mt_options *o);

int hg_mt_options_parse(hg_mt_options *o, int argc, char **argv)
{
    set_defaults(o);
    const hg_arg_program prog = {usage, "hgnn-mt " HG_VERSION, &o->quiet, NULL, option, o};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc != HG_OK)
        return rc;
    if (o->resume) { /* again: the saved options, then the ones given */
        const char *dir = o->resume;
        set_defaults(o);
        if ((rc = hg_arg_saved_read(&o->saved, "train", dir, ARGS_FILE)) ||
            (rc = hg_arg_parse(&prog, o->saved.argc, o->saved.argv)) ||
            (rc = hg_arg_parse(&prog, argc, argv)))
            return rc;
        o->out_dir = dir;
    }
    return finish(o);
}

/* Checks and the defaults that depend on other options. */
static int finish(hg_mt_options *o)
{
    int rc = hg_arg_check_precision(o->bf16, o->device);
    if (rc)
        return rc;
    if (o->dim % o->heads != 0)
        return HG_ERRORF(HG_EINVAL, "options --dim %d --heads %d: the width must be a multiple "
                         "of the heads", o->dim, o->heads);
    if (o->dim % 2 != 0)
        return HG_ERRORF(HG_EINVAL, "option --dim %d: must be even (sinusoidal positions)",
                         o->dim);
    if (o->linear.rank == 0)
        o->linear.rank = o->dim / 8 > 0 ? o->dim / 8 : 1;
    if (o->linear.method != HG_LINEAR_FULL && o->linear.rank > o->dim)
        return HG_ERRORF(HG_EINVAL, "option --rank %d: larger than --dim %d", o->linear.rank,
                         o->dim);
    if (o->linear.iters_per_round == 0) /* T2 = d / r */
        o->linear.iters_per_round = (o->dim + o->linear.rank - 1) / o->linear.rank;
    return resolve_files(o);
}

void hg_mt_options_free(hg_mt_options *o)
{
    hg_arg_saved_free(&o->saved);
}

int hg_mt_options_save(const char *dir, int argc, char **argv)
{
    return hg_arg_save(dir, ARGS_FILE, argc, argv);
}

int hg_mt_options_load(hg_mt_options *o, const char *dir)
{
    set_defaults(o);
    const hg_arg_program prog = {usage, "hgnn-mt " HG_VERSION, &o->quiet, NULL, option, o};
    int rc = hg_arg_saved_read(&o->saved, "train", dir, ARGS_FILE);
    if (rc == HG_EIO) /* the message names --resume: say which option it is here */
        return HG_ERRORF(rc, "option --model %s: cannot read %s/%s (is it the --out DIR of a "
                         "`hgnn-mt train` run?)", dir, dir, ARGS_FILE);
    if (rc || (rc = hg_arg_parse(&prog, o->saved.argc, o->saved.argv)))
        return rc;
    o->resume = NULL;
    o->out_dir = dir;
    return finish(o);
}
