/* lm_eval.c - `hgnn-lm eval` (perplexity of a trained model on a text or token file, optionally
 * after singular-value pruning) and `hgnn-lm generate` (a sampled continuation of a prompt, as
 * text or token ids). Both read the model of a training run's directory: its options (args.txt)
 * and its final parameters (last.ckpt). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hg_config.h"
#include "lm_cli.h"
#include "lm_session.h"
#include "../hg.h"
#include "../io.h"
#include "../rng.h"
#include "../../datasets/gpt2bpe.h"

enum { EXIT_INPUT = 2, EXIT_RUN = 3 };

typedef struct use_options {
    int generate;              /* which command: the options below it accepts */
    const char *model, *file, *prompt, *prompt_ids, *device;
    int64_t eval_tokens, tokens;
    double prune[HG_LM_MAX_PRUNE];
    int nprune;
    int threads, top_k, quiet;
    float temperature;
    uint64_t seed;
} use_options;

static void usage_eval(void)
{
    printf("usage: hgnn-lm eval --model DIR [options]\n"
           "Perplexity of the final model of a training run (DIR/last.ckpt) on a text file\n"
           "(GPT-2 BPE) or a token file.\n"
           "  --model DIR             a directory written by hgnn-lm train --out DIR\n"
           "  --text FILE             text or token file (the run's --valid)\n"
           "  --eval-tokens N (0: all)  --threads N (1)  --device cpu|cuda\n"
           "  --prune-sigma F1,F2,... also the perplexity with each map cut to the fraction F\n"
           "                          of its singular values (largest kept)\n"
           "Prints the loss and perplexity, then one JSON line.\n");
}

static void usage_generate(void)
{
    printf("usage: hgnn-lm generate --model DIR --prompt TEXT [options]\n"
           "Continues a prompt with the final model of a training run (DIR/last.ckpt).\n"
           "  --prompt TEXT           the prompt (GPT-2 BPE); prints it and its continuation\n"
           "  --prompt-ids \"ID ...\"   the prompt as token ids instead; prints the new ids\n"
           "  --tokens N (20)         new tokens (prompt + N at most the model's context)\n"
           "  --temperature T (1.0; 0: greedy)  --top-k K (0: every token)  --seed S (1)\n"
           "  --threads N (1)  --device cpu|cuda\n");
}

static int option(void *ctx, const char *key, const char *val)
{
    use_options *o = ctx;
#define IS(name) (!strcmp(key, name))
    if (IS("--model"))
        o->model = val;
    else if (IS("--threads"))
        return hg_arg_int(key, val, 1, 1024, &o->threads);
    else if (IS("--device"))
        return hg_arg_device(key, val, &o->device);
    else if (!o->generate && IS("--text"))
        o->file = val;
    else if (!o->generate && IS("--eval-tokens"))
        return hg_arg_i64(key, val, 0, (int64_t)1 << 50, &o->eval_tokens);
    else if (!o->generate && IS("--prune-sigma"))
        return hg_lm_parse_fractions(key, val, o->prune, &o->nprune);
    else if (o->generate && IS("--prompt"))
        o->prompt = val;
    else if (o->generate && IS("--prompt-ids"))
        o->prompt_ids = val;
    else if (o->generate && IS("--tokens"))
        return hg_arg_i64(key, val, 0, 1 << 20, &o->tokens);
    else if (o->generate && IS("--temperature"))
        return hg_arg_float(key, val, 0.0, 100.0, &o->temperature);
    else if (o->generate && IS("--top-k"))
        return hg_arg_int(key, val, 0, 1 << 20, &o->top_k);
    else if (o->generate && IS("--seed"))
        return hg_arg_u64(key, val, &o->seed);
    else
        return hg_arg_unknown(key);
#undef IS
    return HG_OK;
}

/* The run's options with this command's device and threads, its model built and loaded. */
static int open_model(const use_options *u, hg_lm_options *o, hg_lm_session *s,
                      int64_t max_windows)
{
    char path[4200];
    hg_quoted q, q2;
    snprintf(path, sizeof path, "%s/args.txt", u->model);
    if (access(path, R_OK) != 0)
        return HG_ERRORF(HG_EIO, "option --model %s: cannot read %s/args.txt (not a directory "
                         "written by hgnn-lm train --out)", hg_quote(&q, u->model),
                         hg_quote(&q2, u->model));
    int rc = hg_lm_options_load(o, u->model);
    if (rc)
        return rc;
    o->threads = u->threads;
    o->device = u->device;
    o->bf16 = 0; /* evaluation and generation in fp32, the reference, whatever training used */
    o->dropout = 0.0f;
    hg_registry reg;
    hg_registry_init(&reg);
    snprintf(path, sizeof path, "%s/last.ckpt", u->model);
    if (!(rc = hg_lm_session_open(s, o, o->vocab, max_windows ? max_windows : o->batch)) &&
        !(rc = hg_tf_register(s->model, &reg)) &&
        !(rc = hg_registry_load(&reg, HG_TENSOR_RUN, path, NULL, 0, NULL)))
        hg_tf_rematerialise(s->model);
    hg_registry_destroy(&reg);
    return rc;
}

static int parse(use_options *u, int generate, int argc, char **argv)
{
    memset(u, 0, sizeof *u);
    u->generate = generate;
    u->device = "cpu";
    u->threads = 1;
    u->tokens = 20;
    u->temperature = 1.0f;
    u->seed = 1;
    const hg_arg_program prog = {generate ? usage_generate : usage_eval, "hgnn-lm " HG_VERSION,
                                 &u->quiet, NULL, option, u};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc)
        return rc;
    if (!u->model)
        return HG_ERRORF(HG_EINVAL, "option --model DIR is needed (see --help)");
    if (generate && !u->prompt == !u->prompt_ids)
        return HG_ERRORF(HG_EINVAL, "one of the options --prompt TEXT and --prompt-ids is needed "
                         "(see --help)");
    return HG_OK;
}

static int finish(int rc, int exit_code, hg_lm_options *o, hg_lm_session *s)
{
    if (rc) {
        fflush(stdout);
        fprintf(stderr, "hgnn-lm: %s\n", hg_last_error()[0] ? hg_last_error() : hg_strerror(rc));
    }
    hg_lm_session_close(s);
    hg_lm_options_free(o);
    return rc ? exit_code : 0;
}

int hg_lm_eval_main(int argc, char **argv)
{
    use_options u;
    hg_lm_options o;
    hg_lm_session s;
    hg_tokens t = {0};
    memset(&o, 0, sizeof o);
    memset(&s, 0, sizeof s);
    int exit_code = EXIT_INPUT, rc = parse(&u, 0, argc, argv);
    if (rc == HG_ARG_DONE)
        return 0;
    double nll = 0.0, pruned[HG_LM_MAX_PRUNE];
    if (!rc && !(rc = open_model(&u, &o, &s, 0))) {
        const char *file = u.file ? u.file : o.valid;
        hg_quoted q;
        if (!(rc = hg_tokens_load(&t, file, NULL)) && t.vocab > o.vocab)
            rc = HG_ERRORF(HG_EINVAL, "%s: vocabulary of %d, larger than the model's %d",
                           hg_quote(&q, file), t.vocab, o.vocab);
        if (!rc) {
            exit_code = EXIT_RUN;
            if (!(rc = hg_lm_nll(&s, &t, u.eval_tokens, &nll)))
                rc = hg_lm_prune_nll(&s, &t, u.eval_tokens, u.prune, u.nprune, pruned);
        }
        if (!rc) {
            const int64_t n = u.eval_tokens > 0 && u.eval_tokens < t.n ? u.eval_tokens : t.n;
            if (!u.quiet) {
                printf("hgnn-lm: %s: %lld tokens | loss %.4f | perplexity %.2f\n",
                       hg_quote(&q, file), (long long)n, nll, exp(nll));
                for (int f = 0; f < u.nprune; f++)
                    printf("singular values kept %.3g: loss %.4f | perplexity %.2f\n",
                           u.prune[f], pruned[f], exp(pruned[f]));
            }
            hg_json j;
            hg_json_begin_file(&j, stdout);
            hg_json_add_str(&j, "model", u.model);
            hg_json_add_str(&j, "file", file);
            hg_json_add_int(&j, "tokens", n);
            hg_json_add_double(&j, "loss", nll);
            hg_json_add_double(&j, "ppl", exp(nll));
            hg_lm_json_pruned(&j, "pruned_ppl", u.prune, pruned, u.nprune);
            if (!(rc = hg_json_end(&j)))
                printf("\n");
        }
    }
    hg_tokens_free(&t);
    return finish(rc, exit_code, &o, &s);
}

/* The ids of a prompt: whole numbers separated by blanks, each < vocab. */
static int parse_prompt(const char *text, int vocab, int32_t *ids, int64_t cap, int64_t *n)
{
    *n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        const long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= vocab)
            return HG_ERRORF(HG_EINVAL, "option --prompt-ids: '%.*s' is not a token id in [0, %d)",
                             (int)strcspn(p, " \t,"), p, vocab);
        if (*n >= cap)
            return HG_ERRORF(HG_EINVAL, "option --prompt-ids: more ids than the model's context "
                             "of %lld", (long long)cap);
        ids[(*n)++] = (int32_t)v;
        p = end;
    }
    if (*n == 0)
        return HG_ERRORF(HG_EINVAL, "option --prompt-ids: no token id");
    return HG_OK;
}

static int cmp_desc(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The next id from logits[0..V): argmax when temperature is 0, else sampled from the softmax of
 * logits / temperature restricted to the top_k largest (0: all). work: V floats. */
static int32_t sample(const float *logits, int V, float temperature, int top_k, float *work,
                      hg_rng *g)
{
    int32_t best = 0;
    for (int j = 1; j < V; j++)
        if (logits[j] > logits[best])
            best = j;
    if (temperature == 0.0f)
        return best;
    float cut = -INFINITY;
    if (top_k > 0 && top_k < V) {
        memcpy(work, logits, (size_t)V * sizeof *work);
        qsort(work, (size_t)V, sizeof *work, cmp_desc);
        cut = work[top_k - 1];
    }
    double sum = 0.0;
    for (int j = 0; j < V; j++)
        sum += logits[j] >= cut ? exp((double)(logits[j] - logits[best]) / temperature) : 0.0;
    double u = hg_rng_uniform(g) * sum;
    for (int j = 0; j < V; j++) {
        const double p = logits[j] >= cut ? exp((double)(logits[j] - logits[best]) / temperature)
                                          : 0.0;
        if (p > 0.0 && (u -= p) <= 0.0)
            return j;
    }
    return best;
}

/* The prompt's ids into ids[0..cap) (*n of them): --prompt's text through GPT-2's BPE
 * (*bpe loaded, kept for decoding), or --prompt-ids. */
static int prompt_ids(const use_options *u, int vocab, hg_gpt2bpe **bpe, int32_t *ids,
                      int64_t cap, int64_t *n)
{
    if (u->prompt_ids)
        return parse_prompt(u->prompt_ids, vocab, ids, cap, n);
    int rc = hg_gpt2bpe_load_dir(bpe, NULL);
    if (rc)
        return rc;
    if (vocab != hg_gpt2bpe_vocab_size(*bpe))
        return HG_ERRORF(HG_EINVAL, "option --prompt: the model's vocabulary is %d, not GPT-2's "
                         "%d (give --prompt-ids)", vocab, (int)hg_gpt2bpe_vocab_size(*bpe));
    hg_gpt2_ids p = {0};
    if (!(rc = hg_gpt2bpe_encode(*bpe, u->prompt, strlen(u->prompt), &p))) {
        if (p.n == 0)
            rc = HG_ERRORF(HG_EINVAL, "option --prompt: empty");
        else if ((int64_t)p.n > cap)
            rc = HG_ERRORF(HG_EINVAL, "option --prompt: %zu tokens, more than the model's "
                           "context of %lld", p.n, (long long)cap);
        else {
            memcpy(ids, p.id, p.n * sizeof *ids);
            *n = (int64_t)p.n;
        }
    }
    hg_gpt2_ids_free(&p);
    return rc;
}

/* Print token id: its bytes (text prompt) or the id. */
static void print_token(const hg_gpt2bpe *bpe, int32_t id, int first)
{
    if (bpe) {
        size_t len;
        const char *b = hg_gpt2bpe_token(bpe, id, &len);
        if (b)
            fwrite(b, 1, len, stdout);
    } else
        printf("%s%d", first ? "" : " ", (int)id);
    fflush(stdout);
}

int hg_lm_generate_main(int argc, char **argv)
{
    use_options u;
    hg_lm_options o;
    hg_lm_session s;
    memset(&o, 0, sizeof o);
    memset(&s, 0, sizeof s);
    hg_gpt2bpe *bpe = NULL;
    int32_t *ids = NULL;
    float *logits = NULL, *host = NULL, *work = NULL;
    int exit_code = EXIT_INPUT, rc = parse(&u, 1, argc, argv);
    if (rc == HG_ARG_DONE)
        return 0;
    if (rc || (rc = open_model(&u, &o, &s, 1)))
        goto done;
    const int64_t T = o.ctx, Vm = hg_tf_cfg(s.model)->vocab;
    int64_t n = 0;
    ids = hg_calloc((size_t)T, sizeof *ids, "prompt");
    logits = hg_k_alloc(&s.k, (size_t)Vm * sizeof(float), "logits");
    host = hg_calloc((size_t)Vm, sizeof *host, "logits");
    work = hg_calloc((size_t)Vm, sizeof *work, "logits");
    if (!ids || !logits || !host || !work) {
        rc = HG_ENOMEM;
        goto done;
    }
    if ((rc = prompt_ids(&u, o.vocab, &bpe, ids, T, &n)))
        goto done;
    if (n + u.tokens > T) {
        rc = HG_ERRORF(HG_EINVAL, "options --prompt (%lld tokens) and --tokens %lld: more than "
                       "the model's context of %lld", (long long)n, (long long)u.tokens,
                       (long long)T);
        goto done;
    }
    exit_code = EXIT_RUN;
    hg_rng g;
    hg_rng_seed(&g, u.seed);
    const int64_t zero = 0;
    if ((rc = hg_tf_decode_init(s.model, 1, 1, 1, T)) ||
        (rc = hg_tf_decode_start(s.model, NULL, NULL, 1, 0)))
        goto done;
    for (int64_t t = 0; bpe && t < n; t++) /* a text prompt is printed too */
        print_token(bpe, ids[t], 1);
    for (int64_t t = 0; t < n + u.tokens - 1; t++) {
        if ((rc = hg_tf_decode_step(s.model, t, &ids[t], &zero, &zero, 1, logits)))
            goto done;
        if (t + 1 < n)
            continue; /* still reading the prompt */
        hg_k_download(&s.k, host, logits, (size_t)Vm * sizeof(float));
        ids[t + 1] = sample(host, o.vocab, u.temperature, u.top_k, work, &g);
        print_token(bpe, ids[t + 1], t + 1 == n);
    }
    printf("\n");
    if (fflush(stdout) != 0)
        rc = HG_ERRORF(HG_EIO, "cannot write to standard output");
done:
    hg_gpt2bpe_free(bpe);
    hg_free(ids);
    hg_free(host);
    hg_free(work);
    if (logits)
        hg_k_free(&s.k, logits);
    return finish(rc, exit_code, &o, &s);
}
