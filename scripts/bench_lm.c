/* bench_lm.c - hgnn-bench-lm: the speed and memory of one training step of hgnn-lm's language
 * model, for scripts/bench_lm.py.
 *
 *   hgnn-bench-lm [--steps 5] [--warmup 1] [any option of hgnn-lm train that shapes the model]
 *   e.g. hgnn-bench-lm --config opt-125m --method sst --rank 64 --threads 2
 *
 * The model is built by hgnn-lm's own code (hg_lm_options_parse, hg_lm_session_open) from the
 * options given, after these defaults: --batch 4 --ctx 128 --dropout 0 (the reference programs
 * use no dropout) and GPT-2's vocabulary of 50257 (50304 in the model). The tokens are uniform
 * random ids drawn from a fixed seed; each step reads --batch random windows of them.
 *
 * Each of the --warmup + --steps steps runs, timed apart:
 *   forward:  hg_tf_loss without gradient (a pass that is not part of training; timed to split
 *             the training pass),
 *   fwd+bwd:  hg_tf_loss with gradient (the training pass; backward = fwd+bwd - forward),
 *   update:   the gradient norm, clipping and the AdamW step with the maps' schedules
 *             (hg_tf_step).
 * A training step is fwd+bwd + update (gradient zeroing included). Prints the medians over
 * --steps, the bytes the model holds per class, and one JSON line last:
 *   params_total      every trainable float of the model
 *   flops_params      N of the FLOP estimate: the dense model's parameters (every map counted at
 *                     m x n whatever its method) less the position table
 *   step_flops        B T (6 N + 12 L d T), the usual estimate for one training step
 *   bytes_trainable, bytes_grads, bytes_optimizer (both Adam moments), bytes_frozen (LoRA's
 *   W0, SST's unsampled singular vectors), bytes_derived (the materialised weight W of LoRA,
 *   ReLoRA* and SST maps), bytes_workspace (the shared workspace), peak_rss_bytes (VmHWM).
 * Exit 2 on bad options, 3 on a failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../datasets/tokens.h"
#include "../src/cli/args.h"
#include "../src/cli/lm_options.h"
#include "../src/cli/lm_session.h"
#include "../src/driver.h"
#include "../src/hg.h"
#include "../src/rng.h"

#define GPT2_VOCAB 50257
#define MAX_FORWARD 64 /* options handed on to hgnn-lm's parser */
#define MAX_WINDOWS 4096
#define NTOKENS (1 << 16)

typedef struct bench_opts {
    int64_t steps, warmup;
    int nfwd;                /* entries of fwd */
    char *fwd[MAX_FORWARD];  /* "train", the defaults, then the options given (copies) */
} bench_opts;

static void usage(void)
{
    printf("usage: hgnn-bench-lm [--steps N (5)] [--warmup N (1)] [model options]\n"
           "Times the training step of hgnn-lm's language model (forward, backward, AdamW\n"
           "update, apart) on random tokens and reports the bytes it holds; one JSON line last.\n"
           "Model options: those of hgnn-lm train (see hgnn-lm train --help), e.g. --config\n"
           "small|opt-125m, --method full|lora|relora|sst, --rank R (d/12), --batch B (4),\n"
           "--ctx T (128), --threads N (1), --dropout P (0), --seed S (1).\n");
}

static int keep(bench_opts *o, const char *s)
{
    if (o->nfwd == MAX_FORWARD)
        return HG_ERRORF(HG_EINVAL, "more than %d options", MAX_FORWARD / 2);
    const size_t n = strlen(s) + 1;
    if (!(o->fwd[o->nfwd] = hg_calloc(n, 1, "options")))
        return HG_ENOMEM;
    memcpy(o->fwd[o->nfwd++], s, n);
    return HG_OK;
}

static int option(void *ctx, const char *key, const char *val)
{
    bench_opts *o = ctx;
    if (!strcmp(key, "--steps"))
        return hg_arg_i64(key, val, 1, 1000000, &o->steps);
    if (!strcmp(key, "--warmup"))
        return hg_arg_i64(key, val, 0, 1000000, &o->warmup);
    int rc = keep(o, key); /* the rest: hgnn-lm's parser checks them */
    return rc ? rc : keep(o, val);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Bytes of the model by class (see the header). */
typedef struct lm_bytes {
    int64_t trainable, grads, optimizer, frozen, derived, workspace;
} lm_bytes;

static void model_bytes(hg_tf *m, lm_bytes *b)
{
    const hg_params *P = hg_tf_params(m);
    const int64_t f = (int64_t)sizeof(float), ntrain = hg_params_num_trainable(P);
    b->trainable = f * ntrain;
    b->grads = f * ntrain; /* one gradient float per trainable float */
    b->optimizer = f * hg_params_state_floats(P);
    b->frozen = f * (hg_params_param_floats(P) - ntrain);
    b->derived = 0;
    for (int i = 0; i < hg_tf_num_maps(m); i++) {
        hg_linear_bytes lb;
        hg_linear_get_bytes(hg_tf_map(m, i), &lb);
        b->derived += lb.scratch;
    }
    b->workspace = f * hg_params_workspace_floats(P);
}

/* N of the FLOP estimate: the parameters of the same model trained full rank, less the trained
 * position table (ctx x d). */
static int64_t flops_params(hg_tf *m, const hg_lm_options *o)
{
    int64_t n = hg_tf_num_trainable(m);
    for (int i = 0; i < hg_tf_num_maps(m); i++) {
        const hg_linear *L = hg_tf_map(m, i);
        n += hg_linear_rows(L) * hg_linear_cols(L) - hg_linear_num_trainable(L);
    }
    return n - (int64_t)o->ctx * o->dim;
}

typedef struct lm_times {
    double *fwd, *fb, *upd, *step; /* seconds per timed step */
} lm_times;

/* warmup + steps training steps (plus the forward-only pass); allocates nothing. */
static int run_steps(hg_lm_session *s, const hg_tokens *t, const bench_opts *b, lm_times *tm)
{
    const hg_lm_options *o = s->o;
    hg_params *P = hg_tf_params(s->model);
    int64_t start[MAX_WINDOWS];
    hg_rng g;
    hg_rng_seed(&g, hg_rng_derive(o->seed, 1));
    int rc = HG_OK;
    for (int64_t step = -b->warmup; step < b->steps; step++) {
        for (int64_t w = 0; w < o->batch; w++)
            start[w] = (int64_t)hg_rng_below(&g, (uint64_t)(t->n - o->ctx - 1));
        hg_tf_batch batch;
        double loss;
        hg_lm_load(s, t, t->n, start, o->batch, &batch);
        HG_CHECK(hg_k_sync(&s->k));
        const double t0 = hg_now();
        HG_CHECK(hg_tf_loss(s->model, &batch, 0.0f, 1, (uint64_t)step, 0, &loss));
        HG_CHECK(hg_k_sync(&s->k));
        const double t1 = hg_now();
        hg_params_zero_grad(P);
        HG_CHECK(hg_tf_loss(s->model, &batch, 0.0f, 1, (uint64_t)step, 1, &loss));
        HG_CHECK(hg_k_sync(&s->k));
        const double t2 = hg_now();
        const double norm = sqrt(hg_params_grad_sqnorm(P));
        HG_CHECK(hg_tf_step(s->model, o->lr, norm, o->clip));
        HG_CHECK(hg_k_sync(&s->k));
        const double t3 = hg_now();
        if (!isfinite(loss))
            return HG_ERRORF(HG_ENUMERIC, "step %lld: the loss is not finite", (long long)step);
        if (step >= 0) {
            tm->fwd[step] = t1 - t0;
            tm->fb[step] = t2 - t1;
            tm->upd[step] = t3 - t2;
            tm->step[step] = t3 - t1;
        }
    }
done:
    return rc;
}

static void print_results(const hg_lm_options *o, const bench_opts *b, hg_tf *m,
                          const lm_times *tm)
{
    const double fwd = 1e3 * median(tm->fwd, b->steps), fb = 1e3 * median(tm->fb, b->steps);
    const double upd = 1e3 * median(tm->upd, b->steps), step = 1e3 * median(tm->step, b->steps);
    const int64_t N = flops_params(m, o), BT = o->batch * o->ctx;
    const double flops = (double)BT * (6.0 * (double)N +
                                       12.0 * o->layers * (double)o->dim * (double)o->ctx);
    const double tps = (double)BT / (step / 1e3), gflops = flops / (step / 1e3) / 1e9;
    lm_bytes by;
    model_bytes(m, &by);
    const double rss = hg_peak_rss_mib();
    const char *method = hg_linear_method_name(o->linear.method);
    const int rank = o->linear.method == HG_LINEAR_FULL ? 0 : o->linear.rank;
    printf("%s, %s, rank %d: %d layers, d %d, %d heads, FFN %d, B %lld, T %d, %d thread(s)\n",
           o->config, method, rank, o->layers, o->dim, o->heads, o->ffn, (long long)o->batch,
           o->ctx, o->threads);
    printf("median of %lld steps: forward %.1f ms, backward %.1f ms, update %.1f ms; step %.1f ms"
           " (%.0f tokens/s, %.1f GFLOP/s of %.2f GFLOP)\n", (long long)b->steps, fwd, fb - fwd,
           upd, step, tps, gflops, flops / 1e9);
    printf("MiB: trainable %.1f, gradients %.1f, optimiser %.1f, frozen %.1f, derived %.1f, "
           "workspace %.1f; peak RSS %.1f\n", by.trainable / 1048576.0, by.grads / 1048576.0,
           by.optimizer / 1048576.0, by.frozen / 1048576.0, by.derived / 1048576.0,
           by.workspace / 1048576.0, rss);
    printf("{\"program\": \"hgnn\", \"config\": \"%s\", \"method\": \"%s\", \"rank\": %d, "
           "\"layers\": %d, \"dim\": %d, \"heads\": %d, \"ffn\": %d, \"batch\": %lld, "
           "\"ctx\": %d, \"threads\": %d, \"steps\": %lld, \"warmup\": %lld, "
           "\"forward_ms\": %.3f, \"backward_ms\": %.3f, \"fwdbwd_ms\": %.3f, "
           "\"update_ms\": %.3f, \"step_ms\": %.3f, \"tokens_per_s\": %.2f, "
           "\"params_total\": %lld, \"flops_params\": %lld, \"step_flops\": %.6g, "
           "\"gflops\": %.3f, \"bytes_trainable\": %lld, \"bytes_grads\": %lld, "
           "\"bytes_optimizer\": %lld, \"bytes_frozen\": %lld, \"bytes_derived\": %lld, "
           "\"bytes_workspace\": %lld, \"peak_rss_bytes\": %lld}\n",
           o->config, method, rank, o->layers, o->dim, o->heads, o->ffn, (long long)o->batch,
           o->ctx, o->threads, (long long)b->steps, (long long)b->warmup, fwd, fb - fwd, fb,
           upd, step, tps, (long long)hg_tf_num_trainable(m), (long long)N, flops, gflops,
           (long long)by.trainable, (long long)by.grads, (long long)by.optimizer,
           (long long)by.frozen, (long long)by.derived, (long long)by.workspace,
           (long long)(rss * 1048576.0));
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"train", "--batch", "4", "--ctx", "128", "--dropout",
                                           "0", "--vocab", "50257",
                                           /* never read: the tokens are drawn here */
                                           "--train", "(random)", "--valid", "(random)"};
    bench_opts b = {5, 1, 0, {0}};
    hg_lm_options o;
    hg_lm_session s;
    hg_tokens t = {0};
    lm_times tm = {0};
    memset(&o, 0, sizeof o);
    memset(&s, 0, sizeof s);
    int rc = HG_OK, code = 3;
    for (size_t i = 0; !rc && i < sizeof defaults / sizeof defaults[0]; i++)
        rc = keep(&b, defaults[i]);
    const hg_arg_program prog = {usage, NULL, NULL, NULL, option, &b};
    if (!rc && (rc = hg_arg_parse(&prog, argc, argv)) == HG_ARG_DONE) {
        code = 0;
        goto out;
    }
    if (!rc)
        rc = hg_lm_options_parse(&o, b.nfwd, b.fwd);
    if (rc) {
        code = 2;
        fprintf(stderr, "hgnn-bench-lm: %s\n", hg_last_error());
        goto out;
    }
    if (o.batch > MAX_WINDOWS || (int64_t)o.ctx + 2 > NTOKENS) {
        fprintf(stderr, "hgnn-bench-lm: options --batch %lld --ctx %d: at most %d windows of "
                "fewer than %d tokens\n", (long long)o.batch, o.ctx, MAX_WINDOWS, NTOKENS - 1);
        code = 2;
        goto out;
    }
    t.n = NTOKENS;
    t.vocab = GPT2_VOCAB;
    tm.fwd = calloc((size_t)(4 * b.steps), sizeof(double));
    if (!(t.ids = calloc((size_t)t.n, sizeof *t.ids)) || !tm.fwd) {
        fprintf(stderr, "hgnn-bench-lm: out of memory\n");
        goto out;
    }
    tm.fb = tm.fwd + b.steps, tm.upd = tm.fb + b.steps, tm.step = tm.upd + b.steps;
    hg_rng g;
    hg_rng_seed(&g, 12345);
    for (int64_t i = 0; i < t.n; i++)
        t.ids[i] = (uint16_t)hg_rng_below(&g, GPT2_VOCAB);
    if ((rc = hg_lm_session_open(&s, &o, o.vocab, o.batch)) ||
        (rc = run_steps(&s, &t, &b, &tm))) {
        fprintf(stderr, "hgnn-bench-lm: %s\n", hg_last_error());
        goto out;
    }
    print_results(&o, &b, s.model, &tm);
    code = 0;
out:
    hg_lm_session_close(&s);
    hg_lm_options_free(&o);
    free(t.ids);
    free(tm.fwd);
    for (int i = 0; i < b.nfwd; i++)
        hg_free(b.fwd[i]);
    return code;
}
