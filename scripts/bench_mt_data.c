/* bench_mt_data.c - hgnn-bench-mt-data: the cost of the translation data path on Multi30K, for
 * scripts/bench_mt_data.sh: reading both sides of the training set, learning the joint BPE
 * model, encoding every training sentence of both languages, and forming the token-budget
 * batches.
 *
 *   hgnn-bench-mt-data [--data DIR] [--vocab 8000] [--threads 1] [--max-tokens 4096]
 *                      [--reps 3] [--save PATH]
 *
 * DIR holds train.de and train.en (default: the shipped Multi30K). Prints one JSON object of
 * median seconds over the repetitions, wall clock and (for training and encoding) the process's
 * CPU time, which a machine shared with other work disturbs less; --save writes the trained model (a .model file). Exit 2
 * on bad options, 3 on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../datasets/batches.h"
#include "../datasets/spm.h"
#include "../datasets/text.h"
#include "../src/cli/args.h"
#include "../src/hg.h"
#include "hg_config.h"

#define MAX_REPS 20

typedef struct bench_opts {
    const char *data, *save;
    int vocab, threads, reps;
    int64_t max_tokens;
} bench_opts;

static void usage(void)
{
    printf("usage: hgnn-bench-mt-data [--data DIR] [--vocab V] [--threads T] [--max-tokens N]\n"
           "                          [--reps R] [--save PATH]\n"
           "Times reading DIR/train.{de,en}, training a joint BPE model of V pieces, encoding\n"
           "both sides and batching them; prints median seconds as JSON.\n");
}

static int option(void *ctx, const char *key, const char *val)
{
    bench_opts *o = ctx;
    if (!strcmp(key, "--data"))
        o->data = val;
    else if (!strcmp(key, "--save"))
        o->save = val;
    else if (!strcmp(key, "--vocab"))
        return hg_arg_int(key, val, 4, 1 << 20, &o->vocab);
    else if (!strcmp(key, "--threads"))
        return hg_arg_int(key, val, 1, 256, &o->threads);
    else if (!strcmp(key, "--reps"))
        return hg_arg_int(key, val, 1, MAX_REPS, &o->reps);
    else if (!strcmp(key, "--max-tokens"))
        return hg_arg_i64(key, val, 1, INT64_MAX, &o->max_tokens);
    else
        return hg_arg_unknown(key);
    return HG_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    bench_opts o = {HG_SOURCE_DATA_DIR "/multi30k", NULL, 8000, 1, 3, 4096};
    hg_arg_program prog = {usage, NULL, NULL, NULL, option, &o};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc == HG_ARG_DONE)
        return 0;
    if (rc) {
        fprintf(stderr, "hgnn-bench-mt-data: %s\n", hg_last_error());
        return 2;
    }
    char de_path[4096], en_path[4096];
    snprintf(de_path, sizeof de_path, "%s/train.de", o.data);
    snprintf(en_path, sizeof en_path, "%s/train.en", o.data);
    double t_read[MAX_REPS], t_train[MAX_REPS], t_encode[MAX_REPS], t_batch[MAX_REPS];
    double c_train[MAX_REPS], c_encode[MAX_REPS];
    int64_t sentences = 0, tokens = 0, nbatches = 0;
    for (int r = 0; r < o.reps && rc == HG_OK; r++) {
        hg_text_lines de = {0}, en = {0};
        hg_spm *spm = NULL;
        hg_token_corpus cde = {0}, cen = {0};
        hg_mt_batches b = {0};
        double t0 = hg_now();
        rc = hg_text_read_parallel(&de, &en, de_path, en_path, 1 << 16);
        double t1 = hg_now();
        clock_t k1 = clock();
        const hg_text_lines *corp[2] = {&de, &en};
        if (rc == HG_OK)
            rc = hg_spm_train(&spm, corp, 2, o.vocab, o.threads);
        double t2 = hg_now();
        clock_t k2 = clock();
        if (rc == HG_OK)
            rc = hg_spm_encode_lines_mt(spm, &de, o.threads, &cde);
        if (rc == HG_OK)
            rc = hg_spm_encode_lines_mt(spm, &en, o.threads, &cen);
        double t3 = hg_now();
        clock_t k3 = clock();
        if (rc == HG_OK)
            rc = hg_mt_batches_make(&b, &cde, &cen, o.max_tokens);
        double t4 = hg_now();
        if (rc == HG_OK) {
            t_read[r] = t1 - t0, t_train[r] = t2 - t1, t_encode[r] = t3 - t2, t_batch[r] = t4 - t3;
            c_train[r] = (double)(k2 - k1) / CLOCKS_PER_SEC;
            c_encode[r] = (double)(k3 - k2) / CLOCKS_PER_SEC;
            sentences = cde.n + cen.n;
            tokens = cde.off[cde.n] + cen.off[cen.n];
            nbatches = b.nbatches;
            if (o.save && r == 0)
                rc = hg_spm_save(spm, o.save);
        }
        hg_mt_batches_free(&b);
        hg_token_corpus_free(&cde);
        hg_token_corpus_free(&cen);
        hg_spm_free(spm);
        hg_text_lines_free(&de);
        hg_text_lines_free(&en);
    }
    if (rc) {
        fprintf(stderr, "hgnn-bench-mt-data: %s\n", hg_last_error());
        return 3;
    }
    printf("{\"vocab\": %d, \"threads\": %d, \"reps\": %d, \"sentences\": %lld, \"tokens\": %lld, "
           "\"batches\": %lld, \"max_tokens\": %lld, \"read_s\": %.4f, \"train_s\": %.3f, "
           "\"encode_s\": %.4f, \"batch_s\": %.4f, \"train_cpu_s\": %.3f, \"encode_cpu_s\": %.4f}\n",
           o.vocab, o.threads, o.reps, (long long)sentences, (long long)tokens,
           (long long)nbatches, (long long)o.max_tokens, median(t_read, o.reps),
           median(t_train, o.reps), median(t_encode, o.reps), median(t_batch, o.reps),
           median(c_train, o.reps), median(c_encode, o.reps));
    return 0;
}
