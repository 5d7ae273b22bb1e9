/* lm_train.c - `hgnn-lm train`: pre-trains the decoder-only Transformer on a token file through
 * the shared driver. A step is --grad-accum micro-batches of --batch windows of ctx + 1 tokens
 * at random offsets on each of the R data-parallel ranks (dist.h; R = 1 without mpirun): the
 * step's R x grad_accum micro-batches are numbered globally, rank r takes the grad_accum
 * consecutive ones from r x grad_accum, and each is drawn from the seed and its number alone (a
 * resumed run needs no generator state, and R ranks with grad_accum A draw the windows and
 * dropout masks of one rank with grad_accum R x A). An evaluation is the validation file's
 * perplexity, computed by every rank alike (no communication; the driver's state stays the same
 * everywhere); rank 0 alone prints and writes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lm_session.h"
#include "lm_cli.h"
#include "tf_train.h"
#include "../driver.h"
#include "../hg.h"
#include "../io.h"
#include "../outdir.h"
#include "../rng.h"

/* Exit codes: bad input or options, and a run that failed after it started. */
enum { EXIT_INPUT = 2, EXIT_RUN = 3 };
/* Seed streams: the windows of a micro-batch, its dropout masks. */
#define STREAM_WINDOWS 3000000000ULL
#define STREAM_DROPOUT 6000000000ULL

typedef struct lm_run {
    hg_tf_train tr;            /* first: the driver's shared callbacks take the run */
    hg_lm_options *o;
    hg_lm_session s;
    hg_tokens train, valid;
    int vocab;                 /* the tokenizer's */
    int64_t *start;            /* window starts of one micro-batch */
    int64_t max_steps;
    double final_val[2];       /* the final model's validation loss and perplexity */
    double pruned[HG_LM_MAX_PRUNE]; /* its validation loss at each --prune-sigma fraction */
    double last_val[2];        /* those of the latest evaluation */
    hg_lr_schedule lr;
    double t_begin, t_log, tokens_log;
    hg_registry reg;
    hg_driver drv;
} lm_run;

/* Tokens of one step, every rank's. */
static int64_t step_tokens(const lm_run *r)
{
    return r->o->batch * r->o->grad_accum * r->o->ctx * r->tr.dist.size;
}

/* ---- the driver's callbacks ---- */

/* The validation file's loss and perplexity. There is no test file: the driver's "test" split
 * (asked for right after a new best validation) reads the same numbers, not computed again. */
static int evaluate(void *ctx, hg_split split, double *out)
{
    lm_run *r = ctx;
    int rc = HG_OK;
    if (split == HG_SPLIT_VAL) {
        rc = hg_lm_nll(&r->s, &r->valid, r->o->eval_tokens, &r->last_val[HG_TF_M_LOSS]);
        r->last_val[HG_TF_M_PPL] = exp(r->last_val[HG_TF_M_LOSS]);
    }
    memcpy(out, r->last_val, sizeof r->last_val);
    return rc ? rc : hg_k_sync(&r->s.k);
}

static void progress(lm_run *r, int64_t step, double loss)
{
    const double now = hg_now(), dt = now - r->t_log, el = now - r->t_begin;
    const int64_t done = step - r->drv.first_step, left = r->max_steps - step;
    printf("step %lld/%lld | loss %.4f | lr %.3e | %.0f tokens/s | elapsed %.0f s | ETA %.0f s\n",
           (long long)step, (long long)r->max_steps, loss, hg_lr_at(&r->lr, step),
           dt > 0 ? (r->tr.tokens - r->tokens_log) / dt : 0.0, el,
           done > 0 ? el / (double)done * (double)left : 0.0);
    fflush(stdout);
    r->t_log = now;
    r->tokens_log = r->tr.tokens;
}

static int train_grad(void *ctx, int64_t step, double *loss, double *grad_norm)
{
    lm_run *r = ctx;
    const hg_lm_options *o = r->o;
    hg_params *P = hg_tf_params(r->s.model);
    const int64_t A = o->grad_accum, G = A * r->tr.dist.size; /* micro-batches: rank's, all */
    hg_params_zero_grad(P);
    double total = 0.0;
    for (int64_t a = 0; a < A; a++) {
        const uint64_t micro = (uint64_t)((step - 1) * G + r->tr.dist.rank * A + a);
        hg_rng g;
        hg_rng_seed(&g, hg_rng_derive(o->seed, STREAM_WINDOWS + micro));
        for (int64_t w = 0; w < o->batch; w++)
            r->start[w] = (int64_t)hg_rng_below(&g, (uint64_t)(r->train.n - o->ctx));
        hg_tf_batch b;
        double sum;
        hg_lm_load(&r->s, &r->train, r->train.n, r->start, o->batch, &b);
        int rc = hg_tf_loss(r->s.model, &b, 0.0f, 1, hg_rng_derive(o->seed, STREAM_DROPOUT + micro),
                            1, &sum);
        if (rc)
            return rc;
        total += sum / (double)b.ntok;
    }
    int rc = hg_tf_train_reduce(&r->tr, step, A, &total, 1, loss, grad_norm);
    if (rc)
        return rc;
    r->tr.tokens += (double)step_tokens(r);
    if (!o->quiet && o->log_freq > 0 && step % o->log_freq == 0)
        progress(r, step, *loss);
    return HG_OK;
}

static void meta_json(void *ctx, char *buf, size_t cap)
{
    const lm_run *r = ctx;
    hg_tf_train_meta(&r->tr, "opt", &r->o->linear, r->o->layers, r->o->dim, buf, cap);
}

static void add_json(void *ctx, hg_json *j, const hg_driver *d)
{
    const lm_run *r = ctx;
    const hg_lm_options *o = r->o;
    const hg_tf *m = r->s.model;
    char seed[32];
    hg_json_add_str(j, "config", o->config);
    hg_json_add_str(j, "method", hg_linear_method_name(o->linear.method));
    hg_json_add_int(j, "rank", o->linear.method == HG_LINEAR_FULL ? 0 : o->linear.rank);
    hg_json_add_int(j, "layers", o->layers);
    hg_json_add_int(j, "dim", o->dim);
    hg_json_add_int(j, "heads", o->heads);
    hg_json_add_int(j, "ffn", o->ffn);
    hg_json_add_int(j, "ctx", o->ctx);
    hg_json_add_int(j, "vocab", hg_tf_cfg(m)->vocab);
    hg_json_add_int(j, "steps", d->step);
    hg_json_add_int(j, "tokens", d->step * step_tokens(r));
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    hg_json_add_raw(j, "seed", seed);
    hg_json_add_double(j, "val_loss", r->final_val[0]);
    hg_json_add_double(j, "val_ppl", r->final_val[1]);
    hg_lm_json_pruned(j, "pruned_val_ppl", o->prune, r->pruned, o->nprune);
    hg_tf_train_json(&r->tr, j, d);
}

/* ---- setup ---- */

/* The token files, and the vocabulary they imply. */
static int read_data(lm_run *r)
{
    const hg_lm_options *o = r->o;
    int rc = HG_OK;
    HG_CHECK(hg_tokens_load(&r->train, o->train, NULL));
    HG_CHECK(hg_tokens_load(&r->valid, o->valid, NULL));
    r->vocab = o->vocab ? o->vocab : r->train.vocab;
    hg_quoted q;
    if (r->train.vocab > r->vocab || r->valid.vocab > r->vocab)
        return HG_ERRORF(HG_EINVAL, "%s: vocabulary of %d, larger than the model's %d (--vocab)",
                         hg_quote(&q, r->train.vocab > r->vocab ? o->train : o->valid),
                         HG_MAX(r->train.vocab, r->valid.vocab), r->vocab);
    if (r->train.n < (int64_t)o->ctx + 1)
        return HG_ERRORF(HG_EINVAL, "%s: %lld tokens, fewer than one window of --ctx %d + 1",
                         hg_quote(&q, o->train), (long long)r->train.n, o->ctx);
    if (r->valid.n < 2)
        return HG_ERRORF(HG_EINVAL, "%s: %lld tokens, at least 2 are needed",
                         hg_quote(&q, o->valid), (long long)r->valid.n);
done:
    return rc;
}

static int setup(lm_run *r)
{
    const hg_lm_options *o = r->o;
    int rc = HG_OK;
    HG_CHECK(hg_lm_session_open(&r->s, o, r->vocab, o->batch));
    r->tr.model = r->s.model;
    r->tr.k = &r->s.k;
    r->tr.clip = o->clip;
    r->tr.check_every = o->check_every;
    r->tr.threads = o->threads;
    if (o->linear.method != HG_LINEAR_FULL) { /* the low-rank parameters' own learning rate */
        hg_params *P = hg_tf_params(r->s.model);
        const float scale = o->lr_lowrank / o->lr;
        hg_params_set_lr_scale(P, hg_tf_group(r->s.model, HG_TF_GROUP_WEIGHTS), scale);
        hg_params_set_lr_scale(P, hg_tf_group(r->s.model, HG_TF_GROUP_VECTORS), scale);
    }
    if (!(r->start = hg_calloc((size_t)o->batch, sizeof *r->start, "window starts")))
        return HG_ENOMEM;
    r->max_steps = hg_lm_total_steps(o, r->tr.dist.size);
    HG_CHECK(hg_dist_attach(&r->tr.dist, &r->s.k, hg_tf_num_trainable(r->s.model)));
    hg_registry_init(&r->reg);
    HG_CHECK(hg_tf_register(r->s.model, &r->reg));
done:
    return rc;
}

static int driver_init(lm_run *r, double t_start)
{
    const hg_lm_options *o = r->o;
    hg_driver_model dm = {0};
    dm.ctx = r;
    dm.reg = &r->reg;
    dm.grad = train_grad;
    dm.evaluate = evaluate;
    dm.meta = meta_json;
    dm.add_json = add_json;
    r->lr = (hg_lr_schedule){HG_LR_WARMUP, o->lr, o->warmup, r->max_steps};
    hg_driver_config c = {0};
    c.max_steps = r->max_steps;
    c.eval_every = o->eval_every;
    c.lr = r->lr;
    c.save_every = o->save_every;
    c.quiet = o->quiet;
    c.no_summary = 1;
    c.out_dir = o->out_dir;
    c.program = "hgnn-lm";
    c.t_start = t_start;
    return hg_tf_train_driver(&r->tr, &r->drv, &dm, &c);
}

static void run_destroy(lm_run *r)
{
    hg_driver_destroy(&r->drv);
    hg_registry_destroy(&r->reg);
    hg_lm_session_close(&r->s);
    hg_tokens_free(&r->train);
    hg_tokens_free(&r->valid);
    hg_free(r->start);
}

int hg_lm_train_main(int argc, char **argv)
{
    hg_lm_options o;
    lm_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    const double t_start = hg_now();
    int rc = hg_lm_options_parse(&o, argc, argv);
    const int joined = hg_dist_init(&r.tr.dist); /* a world of one when it fails */
    if (rc == HG_ARG_DONE) {
        hg_lm_options_free(&o);
        return hg_dist_exit(&r.tr.dist, 0);
    }
    rc = rc ? rc : joined;
    if (r.tr.dist.rank > 0) { /* rank 0 alone prints and writes */
        o.out_dir = NULL;
        o.quiet = 1;
    }
    int exit_code = EXIT_INPUT;
    if (rc || (rc = read_data(&r)))
        goto setup_done;
    if (o.out_dir && ((rc = hg_mkdir_p(o.out_dir)) ||
                      (!o.resume && ((rc = hg_outdir_reset(o.out_dir)) ||
                                     (rc = hg_lm_options_save(o.out_dir, argc, argv, r.vocab))))))
        goto setup_done;
    rc = setup(&r);
    if (rc == HG_OK)
        rc = driver_init(&r, t_start);
setup_done:
    if ((rc = hg_dist_agree(&r.tr.dist, rc)))
        goto fail;
    if (!o.quiet)
        printf("hgnn-lm: %s | %lld training, %lld validation tokens | vocab %lld | %d layers, d %d,"
               " %d heads, FFN %d, context %d | method %s rank %d | %lld steps of %lld tokens | "
               "%lld trainable parameters | %s | %d rank%s\n",
               o.config, (long long)r.train.n, (long long)r.valid.n,
               (long long)hg_tf_cfg(r.s.model)->vocab, o.layers, o.dim, o.heads, o.ffn, o.ctx,
               hg_linear_method_name(o.linear.method), o.linear.rank, (long long)r.max_steps,
               (long long)step_tokens(&r), (long long)hg_tf_num_trainable(r.s.model),
               hg_k_device_name(&r.s.k), r.tr.dist.size, r.tr.dist.size > 1 ? "s" : "");
    exit_code = EXIT_RUN;
    r.t_begin = r.t_log = hg_now();
    if ((rc = hg_driver_run(&r.drv, o.resume != NULL)))
        goto fail;
    if (r.tr.dist.rank > 0) /* the final model's evaluation and report: rank 0's */
        goto end;
    if ((rc = hg_lm_nll(&r.s, &r.valid, 0, &r.final_val[0])) ||
        (rc = hg_lm_prune_nll(&r.s, &r.valid, o.eval_tokens, o.prune, o.nprune, r.pruned)))
        goto fail;
    r.final_val[1] = exp(r.final_val[0]);
    if (!o.quiet) {
        printf("final model: validation loss %.4f, perplexity %.2f (%lld tokens)\n",
               r.final_val[0], r.final_val[1], (long long)r.valid.n);
        for (int f = 0; f < o.nprune; f++)
            printf("singular values kept %.3g: validation perplexity %.2f (%lld tokens)\n",
                   o.prune[f], exp(r.pruned[f]),
                   (long long)(o.eval_tokens > 0 ? HG_MIN(o.eval_tokens, r.valid.n)
                                                 : r.valid.n));
    }
    if ((rc = hg_driver_report(&r.drv)))
        goto fail;
end:
    run_destroy(&r);
    hg_lm_options_free(&o);
    return hg_dist_exit(&r.tr.dist, 0);
fail:
    fflush(stdout);
    hg_dist_print_error(&r.tr.dist, "hgnn-lm", rc);
    run_destroy(&r);
    hg_lm_options_free(&o);
    return hg_dist_exit(&r.tr.dist, exit_code);
}
