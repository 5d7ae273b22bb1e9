/* lm_options.c - hgnn-lm train's options (contract in lm_options.h). */
#include "lm_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hg_config.h"
#include "../hg.h"
#include "linear_args.h"
#include "../../datasets/tokens.h"

#define ARGS_FILE "args.txt"

/* The named sizes: layers, width, heads, FFN width, context, learning rate, warm-up steps, and
 * the default token budget (small's fits about half an hour on one core of a 2020s CPU). */
typedef struct lm_size {
    const char *name;
    int layers, dim, heads, ffn, ctx;
    float lr;
    int warmup;
    int64_t tokens;
} lm_size;
static const lm_size sizes[] = {
    {"tiny", 2, 64, 4, 256, 64, 1e-3f, 100, 4000000},
    {"small", 4, 256, 4, 1024, 256, 6e-4f, 100, 1600000},
    {"opt-125m", 12, 768, 12, 3072, 2048, 6e-4f, 2000, (int64_t)20000 * 8 * 2048},
};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

static void usage(void)
{
    printf("usage: hgnn-lm train [options]\n"
           "Pre-trains an OPT-style decoder-only language model (pre-LN, ReLU, trained positions)\n"
           "with every linear map full rank, LoRA, ReLoRA* or SST; by default the small model on\n"
           "the bundled Wikipedia corpus.\n"
           "data:\n"
           "  --train FILE  --valid FILE   UTF-8 text (GPT-2 BPE) or token files (hgnn-lm\n"
           "                               tokenize); the bundled corpus by default\n"
           "  --eval-tokens N (65536; 0: all)  validation tokens of the periodic evaluations\n"
           "                               (the final one reads the whole file)\n"
           "  --vocab V (the training file's)  tokenizer vocabulary; the model's is V rounded\n"
           "                               up to a multiple of 64 (GPT-2: 50257 -> 50304)\n"
           "model:\n"
           "  --config tiny|small|opt-125m (small)\n"
           "      tiny: 2 layers, d 64, 4 heads, FFN 256, context 64; lr 1e-3, warm-up 100,\n"
           "            4M tokens\n"
           "      small: 4 layers, d 256, 4 heads, FFN 1024, context 256; lr 6e-4, warm-up 100,\n"
           "            1.6M tokens\n"
           "      opt-125m: 12 layers, d 768, 12 heads, FFN 3072, context 2048; lr 6e-4,\n"
           "            warm-up 2000, 20000 steps of 8 windows\n"
           "  --layers N  --dim D  --heads H  --ffn F  --ctx T   override the configuration\n"
           "  --positions P (the configuration's context, or --ctx if larger)  rows of the\n"
           "      trained position table; --ctx may not exceed it\n"
           "  --dropout P (0.1)\n");
    hg_arg_linear_usage("200", "20", "d/r");
    printf("  (--rank defaults to d/12)\n"
           "optimisation (AdamW 0.9/0.95, eps 1e-8):\n"
           "  --lr LR (the configuration's)  --lr-lowrank LR (1e-3; LoRA/ReLoRA/SST parameters)\n"
           "  --warmup N (the configuration's): linear warm-up, then constant\n"
           "  --weight-decay W (0.1, on the maps' weights)  --clip C (1.0; 0: none)\n"
           "  --batch B (8) windows of ctx+1 tokens  --grad-accum N (1)  (under mpirun -np R:\n"
           "      a step is B x N x R windows, each rank B x N of them)\n"
           "  --tokens N (the configuration's budget): N / (batch x accum x ranks x ctx) steps,\n"
           "  or --steps N\n"
           "  --seed S (1)\n"
           "running:\n"
           "  --threads N (1)  --device cpu|cuda  --log-freq N (10 steps)  --quiet\n"
           "  --precision fp32|bf16 (fp32): bf16 runs the products on bfloat16 tensor cores\n"
           "      (fp32 accumulation, weights and arrays); --device cuda only\n"
           "  --attention gemm|fused (gemm): causal self-attention by batched products and a\n"
           "      row softmax (scores stored), or by one fused kernel (scores never stored)\n"
           "  --eval-every N (200 steps)  --save-every N (500 steps)\n"
           "  --check-every N (100 steps): under mpirun, compare the ranks' parameters\n"
           "  --out DIR  --resume DIR (continue an interrupted run; DIR/args.txt first)\n"
           "  --prune-sigma F1,F2,... : after training, the validation perplexity with each map\n"
           "      cut to the fraction F of its singular values (largest kept)\n");
}

static void set_defaults(hg_lm_options *o)
{
    memset(o, 0, sizeof *o);
    hg_linear_opts_default(&o->linear);
    o->linear.beta1 = 0.9f;
    o->linear.beta2 = 0.95f;
    o->linear.eps = 1e-8f;
    o->linear.decoupled_wd = 1;
    o->linear.steps_per_iter = 200;
    o->linear.warmup = 20;
    o->linear.rank = 0; /* d / 12 unless given */
    o->config = "small";
    o->dropout = 0.1f;
    o->lr_lowrank = 1e-3f;
    o->weight_decay = 0.1f;
    o->clip = 1.0f;
    o->warmup = -1; /* the configuration's */
    o->eval_tokens = 65536;
    o->batch = 8;
    o->grad_accum = 1;
    o->steps = -1; /* unset: the token budget */
    o->seed = 1;
    o->threads = 1;
    o->log_freq = 10;
    o->eval_every = 200;
    o->save_every = 500;
    o->check_every = 100;
    o->device = "cpu";
}

static int option(void *ctx, const char *key, const char *val)
{
    hg_lm_options *o = ctx;
    int rc = HG_OK, c = 0;
#define IS(name) (!strcmp(key, name))
    if (IS("--train"))
        o->train = val;
    else if (IS("--valid"))
        o->valid = val;
    else if (IS("--eval-tokens"))
        rc = hg_arg_i64(key, val, 0, (int64_t)1 << 50, &o->eval_tokens);
    else if (IS("--vocab"))
        rc = hg_arg_int(key, val, 4, 65536, &o->vocab);
    else if (IS("--config")) {
        const char *names[NSIZES + 1];
        for (int i = 0; i < NSIZES; i++)
            names[i] = sizes[i].name;
        names[NSIZES] = NULL;
        if (!(rc = hg_arg_choice(key, val, "a configuration", names, &c)))
            o->config = sizes[c].name;
    } else if (IS("--layers"))
        rc = hg_arg_int(key, val, 1, 32, &o->layers);
    else if (IS("--dim"))
        rc = hg_arg_int(key, val, 2, 65536, &o->dim);
    else if (IS("--heads"))
        rc = hg_arg_int(key, val, 1, 1024, &o->heads);
    else if (IS("--ffn"))
        rc = hg_arg_int(key, val, 1, 1 << 20, &o->ffn);
    else if (IS("--ctx"))
        rc = hg_arg_int(key, val, 1, 1 << 20, &o->ctx);
    else if (IS("--positions"))
        rc = hg_arg_int(key, val, 2, 1 << 20, &o->positions);
    else if (IS("--dropout"))
        rc = hg_arg_float(key, val, 0.0, 0.99, &o->dropout);
    else if ((rc = hg_arg_linear(&o->linear, key, val, &c)) || c)
        ;
    else if (IS("--lr"))
        rc = hg_arg_float(key, val, 1e-9, 10.0, &o->lr);
    else if (IS("--lr-lowrank"))
        rc = hg_arg_float(key, val, 1e-9, 10.0, &o->lr_lowrank);
    else if (IS("--weight-decay"))
        rc = hg_arg_float(key, val, 0.0, 10.0, &o->weight_decay);
    else if (IS("--clip"))
        rc = hg_arg_float(key, val, 0.0, 1e9, &o->clip);
    else if (IS("--warmup"))
        rc = hg_arg_int(key, val, 0, 1 << 30, &o->warmup);
    else if (IS("--batch"))
        rc = hg_arg_i64(key, val, 1, 1 << 20, &o->batch);
    else if (IS("--grad-accum"))
        rc = hg_arg_i64(key, val, 1, 1 << 20, &o->grad_accum);
    else if (IS("--tokens"))
        rc = hg_arg_i64(key, val, 1, (int64_t)1 << 50, &o->tokens);
    else if (IS("--steps"))
        rc = hg_arg_i64(key, val, 0, (int64_t)1 << 40, &o->steps);
    else if (IS("--seed"))
        rc = hg_arg_u64(key, val, &o->seed);
    else if (IS("--threads"))
        rc = hg_arg_int(key, val, 1, 1024, &o->threads);
    else if (IS("--log-freq"))
        rc = hg_arg_int(key, val, 0, 1 << 30, &o->log_freq);
    else if (IS("--eval-every"))
        rc = hg_arg_i64(key, val, 1, (int64_t)1 << 40, &o->eval_every);
    else if (IS("--save-every"))
        rc = hg_arg_i64(key, val, 1, (int64_t)1 << 40, &o->save_every);
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
    else if (IS("--prune-sigma"))
        rc = hg_lm_parse_fractions(key, val, o->prune, &o->nprune);
    else
        return hg_arg_unknown(key);
#undef IS
    return rc;
}

/* The shapes not given from the named configuration; checks. */
static int finish(hg_lm_options *o)
{
    const lm_size *s = &sizes[0];
    for (int i = 0; i < NSIZES; i++)
        if (!strcmp(o->config, sizes[i].name))
            s = &sizes[i];
    if (!o->layers) o->layers = s->layers;
    if (!o->dim) o->dim = s->dim;
    if (!o->heads) o->heads = s->heads;
    if (!o->ffn) o->ffn = s->ffn;
    if (!o->ctx) o->ctx = s->ctx;
    if (!o->positions) o->positions = HG_MAX(s->ctx, o->ctx);
    if (o->lr == 0.0f) o->lr = s->lr;
    if (o->warmup < 0) o->warmup = s->warmup;
    if (o->steps < 0 && o->tokens == 0) o->tokens = s->tokens;
    int rc = hg_arg_check_precision(o->bf16, o->device);
    if (rc)
        return rc;
    if (o->ctx > o->positions)
        return HG_ERRORF(HG_EINVAL, "option --ctx %d: above the position table of %d positions "
                         "(--positions)", o->ctx, o->positions);
    if (o->dim % o->heads != 0)
        return HG_ERRORF(HG_EINVAL, "options --dim %d --heads %d: the width must be a multiple "
                         "of the heads", o->dim, o->heads);
    if (o->dim % 2 != 0)
        return HG_ERRORF(HG_EINVAL, "option --dim %d: must be even", o->dim);
    if (o->linear.rank == 0)
        o->linear.rank = o->dim / 12 > 0 ? o->dim / 12 : 1;
    if (o->linear.method != HG_LINEAR_FULL && o->linear.rank > o->dim)
        return HG_ERRORF(HG_EINVAL, "option --rank %d: larger than --dim %d", o->linear.rank,
                         o->dim);
    if (o->linear.iters_per_round == 0) /* T2 = d / r */
        o->linear.iters_per_round = (o->dim + o->linear.rank - 1) / o->linear.rank;
    o->linear.weight_decay = o->weight_decay;
    if (!o->train && !(rc = hg_tokens_bundled(o->train_buf, sizeof o->train_buf, "train.txt")))
        o->train = o->train_buf;
    if (!rc && !o->valid &&
        !(rc = hg_tokens_bundled(o->valid_buf, sizeof o->valid_buf, "valid.txt")))
        o->valid = o->valid_buf;
    return rc;
}

int hg_lm_options_parse(hg_lm_options *o, int argc, char **argv)
{
    set_defaults(o);
    const hg_arg_program prog = {usage, "hgnn-lm " HG_VERSION, &o->quiet, NULL, option, o};
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

void hg_lm_options_free(hg_lm_options *o)
{
    hg_arg_saved_free(&o->saved);
}

int hg_lm_options_save(const char *dir, int argc, char **argv, int vocab)
{
    char **v = hg_calloc((size_t)argc + 2, sizeof *v, "arguments"), num[24];
    if (!v)
        return HG_ENOMEM;
    memcpy(v, argv, (size_t)argc * sizeof *v);
    snprintf(num, sizeof num, "%d", vocab);
    v[argc] = "--vocab";
    v[argc + 1] = num;
    int rc = hg_arg_save(dir, ARGS_FILE, argc + 2, v);
    hg_free(v);
    return rc;
}

int hg_lm_options_load(hg_lm_options *o, const char *dir)
{
    set_defaults(o);
    const hg_arg_program prog = {usage, "hgnn-lm " HG_VERSION, &o->quiet, NULL, option, o};
    int rc;
    if ((rc = hg_arg_saved_read(&o->saved, "train", dir, ARGS_FILE)) ||
        (rc = hg_arg_parse(&prog, o->saved.argc, o->saved.argv)))
        return rc;
    o->resume = NULL;
    o->out_dir = dir;
    return finish(o);
}

int64_t hg_lm_model_vocab(int vocab)
{
    return ((int64_t)vocab + 63) / 64 * 64;
}

int hg_lm_parse_fractions(const char *key, const char *val, double *out, int *n)
{
    *n = 0;
    const char *p = val;
    for (;;) {
        char *end;
        const double f = strtod(p, &end);
        if (end == p || !(f > 0.0 && f <= 1.0) || (*end && *end != ','))
            return HG_ERRORF(HG_EINVAL, "option %s %s: expected fractions in (0, 1] separated by "
                             "commas", key, val);
        if (*n == HG_LM_MAX_PRUNE)
            return HG_ERRORF(HG_EINVAL, "option %s: more than %d fractions", key,
                             HG_LM_MAX_PRUNE);
        out[(*n)++] = f;
        if (!*end)
            return HG_OK;
        p = end + 1;
    }
}

int64_t hg_lm_total_steps(const hg_lm_options *o, int world)
{
    if (o->steps >= 0)
        return o->steps;
    const int64_t per = o->batch * o->grad_accum * o->ctx * world;
    return (o->tokens + per - 1) / per;
}
