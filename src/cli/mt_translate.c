/* mt_translate.c - `hgnn-mt translate --model DIR`: the model a `train --out DIR` run saved
 * (its options, SentencePiece model and final parameters) translates standard input, one
 * sentence a line, to standard output with batched beam search. */
#include <stdio.h>
#include <string.h>

#include "hg_config.h"
#include "mt_cli.h"
#include "mt_session.h"
#include "../hg.h"
#include "../registry.h"

typedef struct tr_options {
    const char *model, *input;
    int beam, threads, quiet;
    float len_penalty;
    int64_t decode_batch, extra_len, max_line;
    const char *device;
    unsigned set; /* which of the above were given */
} tr_options;

enum { SET_BEAM = 1, SET_LP = 2, SET_BATCH = 4, SET_EXTRA = 8, SET_THREADS = 16, SET_DEVICE = 32 };

static void usage(void)
{
    printf("usage: hgnn-mt translate --model DIR [options] < source.txt > hypotheses.txt\n"
           "Translates one sentence a line with the final model of `hgnn-mt train --out DIR`.\n"
           "  --model DIR             the training run's output directory\n"
           "  --input FILE            read FILE instead of standard input\n"
           "  --beam K (the run's)    1: greedy\n"
           "  --len-penalty A (the run's)  hypotheses ranked by log-probability / length^A\n"
           "  --decode-batch N (200)  sentences per batch  --max-extra N (50)\n"
           "  --max-line BYTES (65536)  --threads N (1)  --device cpu|cuda\n");
}

static int option(void *ctx, const char *key, const char *val)
{
    tr_options *o = ctx;
#define IS(name) (!strcmp(key, name))
    if (IS("--model"))
        o->model = val;
    else if (IS("--input"))
        o->input = val;
    else if (IS("--beam"))
        return o->set |= SET_BEAM, hg_arg_int(key, val, 1, 64, &o->beam);
    else if (IS("--len-penalty"))
        return o->set |= SET_LP, hg_arg_float(key, val, 0.0, 10.0, &o->len_penalty);
    else if (IS("--decode-batch"))
        return o->set |= SET_BATCH, hg_arg_i64(key, val, 1, 100000, &o->decode_batch);
    else if (IS("--max-extra"))
        return o->set |= SET_EXTRA, hg_arg_i64(key, val, 1, 100000, &o->extra_len);
    else if (IS("--max-line"))
        return hg_arg_i64(key, val, 16, (int64_t)1 << 30, &o->max_line);
    else if (IS("--threads"))
        return o->set |= SET_THREADS, hg_arg_int(key, val, 1, 1024, &o->threads);
    else if (IS("--device")) {
        o->set |= SET_DEVICE;
        return hg_arg_device(key, val, &o->device);
    } else
        return hg_arg_unknown(key);
#undef IS
    return HG_OK;
}

int hg_mt_translate_main(int argc, char **argv)
{
    tr_options t = {.max_line = 65536};
    hg_mt_options o;
    hg_mt_session s;
    hg_text_lines lines = {0};
    hg_token_corpus tok = {0};
    hg_registry reg;
    char **out = NULL;
    int exit_code = 2;
    memset(&o, 0, sizeof o);
    memset(&s, 0, sizeof s);
    hg_registry_init(&reg);
    const hg_arg_program prog = {usage, "hgnn-mt " HG_VERSION, &t.quiet, NULL, option, &t};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc == HG_ARG_DONE)
        return 0;
    if (rc)
        goto fail;
    if (!t.model) {
        rc = HG_ERRORF(HG_EINVAL, "no model: give --model DIR (a `hgnn-mt train --out DIR` run)");
        goto fail;
    }
    if ((rc = hg_mt_options_load(&o, t.model)))
        goto fail;
    if (t.set & SET_BEAM) o.beam = t.beam;
    if (t.set & SET_LP) o.len_penalty = t.len_penalty;
    if (t.set & SET_BATCH) o.decode_batch = t.decode_batch;
    if (t.set & SET_EXTRA) o.extra_len = t.extra_len;
    o.threads = t.set & SET_THREADS ? t.threads : 1;
    o.device = t.set & SET_DEVICE ? t.device : "cpu";
    o.bf16 = 0; /* translation in fp32, the reference, whatever training used */
    char path[4200];
    snprintf(path, sizeof path, "%s/spm.model", t.model);
    if ((rc = hg_text_read_lines(&lines, t.input ? t.input : "/dev/stdin", t.max_line, 1)) ||
        (rc = hg_mt_session_open(&s, &o)) || (rc = hg_spm_load(&s.spm, path)) ||
        (rc = hg_spm_encode_lines_mt(s.spm, &lines, o.threads, &tok)))
        goto fail;
    s.bos = hg_spm_bos(s.spm);
    s.eos = hg_spm_eos(s.spm);
    int64_t L = 1;
    for (int64_t i = 0; i < tok.n; i++)
        L = HG_MAX(L, tok.off[i + 1] - tok.off[i] + 1);
    hg_tf_config c;
    const int64_t Lmax = L + o.extra_len + 1;
    hg_mt_model_config(&o, hg_spm_vocab_size(s.spm), o.decode_batch, Lmax, Lmax,
                       hg_mt_decode_rows(&o, L), 1, &c);
    snprintf(path, sizeof path, "%s/last.ckpt", t.model);
    exit_code = 3;
    if ((rc = hg_tf_init(&s.model, &s.k, &c)) || (rc = hg_tf_register(s.model, &reg)))
        goto fail;
    exit_code = 2; /* the saved parameters are input: missing or damaged, the user's to fix */
    if ((rc = hg_registry_load(&reg, HG_TENSOR_RUN, path, NULL, 0, NULL)))
        goto fail;
    exit_code = 3;
    hg_tf_rematerialise(s.model);
    if ((rc = hg_mt_decode_setup(&s, L, o.beam)) || (rc = hg_mt_translate(&s, &tok, o.beam, &out)))
        goto fail;
    for (int64_t i = 0; i < tok.n; i++)
        if (fputs(out[i], stdout) == EOF || fputc('\n', stdout) == EOF) {
            rc = HG_ERRORF(HG_EIO, "cannot write the translations to standard output");
            goto fail;
        }
    if (fflush(stdout) != 0) {
        rc = HG_ERRORF(HG_EIO, "cannot write the translations to standard output");
        goto fail;
    }
    exit_code = 0;
fail:
    if (rc) {
        fflush(stdout);
        fprintf(stderr, "hgnn-mt: %s\n", hg_last_error()[0] ? hg_last_error() : hg_strerror(rc));
    }
    hg_mt_free_lines(out, tok.n);
    hg_registry_destroy(&reg);
    hg_mt_session_close(&s);
    hg_text_lines_free(&lines);
    hg_token_corpus_free(&tok);
    hg_mt_options_free(&o);
    return rc ? exit_code : 0;
}
