/* lm_tokenize.c - `hgnn-lm tokenize` and `hgnn-lm detokenize`: a text file, all its bytes, to
 * GPT-2 token ids and back. The ids go to a token file (binary, gpt2bpe.h) or, with
 * --format ids, to a text file of decimal ids separated by spaces (and a final newline);
 * detokenize tells the two apart by the token file's magic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "lm_cli.h"
#include "../../datasets/gpt2bpe.h"
#include "../../datasets/tokens.h"
#include "../hg.h"
#include "../io.h"

enum { EXIT_INPUT = 2, EXIT_RUN = 3 };
enum { FORMAT_BIN, FORMAT_IDS };

typedef struct tok_opts {
    const char *in, *out, *vocab;
    int format, quiet, detok;
} tok_opts;

static void usage_tokenize(void)
{
    printf("usage: hgnn-lm tokenize --in TEXT --out TOKENS [options]\n"
           "GPT-2 byte-level BPE ids of every byte of TEXT (no special tokens).\n"
           "  --in FILE            the text (any bytes)\n"
           "  --out FILE           the ids: a token file (header \"HGTOK1\", then 16-bit ids)\n"
           "  --format bin|ids     token file, or decimal ids separated by spaces (bin)\n"
           "  --vocab DIR          folder of encoder.json and vocab.bpe (GPT-2's, shipped)\n"
           "  --quiet              no summary line\n");
}

static void usage_detokenize(void)
{
    printf("usage: hgnn-lm detokenize --in TOKENS --out TEXT [options]\n"
           "The exact bytes of the ids in TOKENS (a token file or decimal ids, told apart by\n"
           "the token file's magic).\n"
           "  --in FILE  --out FILE  --vocab DIR (GPT-2's, shipped)  --quiet\n");
}

static int option(void *ctx, const char *key, const char *val)
{
    static const char *const formats[] = {"bin", "ids", NULL};
    tok_opts *o = ctx;
    if (!strcmp(key, "--in"))
        o->in = val;
    else if (!strcmp(key, "--out"))
        o->out = val;
    else if (!strcmp(key, "--vocab"))
        o->vocab = val;
    else if (!o->detok && !strcmp(key, "--format"))
        return hg_arg_choice(key, val, "a token format", formats, &o->format);
    else
        return hg_arg_unknown(key);
    return HG_OK;
}

/* Parse the command line into *o: HG_OK, HG_ARG_DONE (help printed) or an error recorded. */
static int parse(tok_opts *o, int detok, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->detok = detok;
    const hg_arg_program prog = {detok ? usage_detokenize : usage_tokenize, NULL, &o->quiet,
                                 NULL, option, o};
    int rc = hg_arg_parse(&prog, argc, argv);
    if (rc)
        return rc;
    if (!o->in || !o->out)
        return HG_ERRORF(HG_EINVAL, "%s needs --in and --out (see --help)",
                         detok ? "detokenize" : "tokenize");
    return HG_OK;
}

/* CPU time of this process: the encoding's own time on a machine shared with other work. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The ids as decimal text: "ID ID ... ID\n" (*out malloc'ed). */
static int ids_text(const hg_gpt2_ids *ids, char **out, size_t *len)
{
    char *buf = malloc(7 * ids->n + 2), *p = buf; /* ids below 65536: 5 digits and a space */
    if (!buf)
        return HG_ERRORF(HG_ENOMEM, "out of memory (%zu ids as text)", ids->n);
    for (size_t k = 0; k < ids->n; k++)
        p += sprintf(p, k ? " %d" : "%d", (int)ids->id[k]);
    *p++ = '\n';
    *out = buf;
    *len = (size_t)(p - buf);
    return HG_OK;
}

/* Decimal ids separated by white space, each below vocab. */
static int parse_ids(const char *path, const char *text, size_t len, int32_t vocab,
                     hg_gpt2_ids *ids)
{
    hg_quoted q, q2;
    size_t i = 0;
    for (size_t k = 0;; k++) {
        while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' ||
                           text[i] == '\r'))
            i++;
        if (i == len)
            return HG_OK;
        size_t s = i;
        long long v = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9' && v < vocab)
            v = 10 * v + (text[i++] - '0');
        int junk = i < len && text[i] != ' ' && text[i] != '\n' && text[i] != '\t' &&
                   text[i] != '\r' && !(text[i] >= '0' && text[i] <= '9');
        if (junk || (v < vocab && i == s)) {
            char word[HG_QUOTE_MAX + 1];
            size_t e = s;
            while (e < len && e - s < HG_QUOTE_MAX && text[e] != ' ' && text[e] != '\n')
                e++;
            memcpy(word, text + s, e - s);
            word[e - s] = '\0';
            return HG_ERRORF(HG_EFORMAT, "%s: token %zu: '%s' is not a token id (not a token "
                                         "file either)", hg_quote(&q, path), k,
                             hg_quote(&q2, word));
        }
        if (v >= vocab)
            return HG_ERRORF(HG_EFORMAT, "%s: token %zu is outside the vocabulary of %d",
                             hg_quote(&q, path), k, (int)vocab);
        if (ids->n == ids->cap) {
            size_t cap = ids->cap ? 2 * ids->cap : 1024;
            int32_t *p = realloc(ids->id, cap * sizeof *p);
            if (!p)
                return HG_ERRORF(HG_ENOMEM, "out of memory (%zu token ids)", cap);
            ids->id = p;
            ids->cap = cap;
        }
        ids->id[ids->n++] = (int32_t)v;
    }
}

static int run(int detok, int argc, char **argv)
{
    tok_opts o;
    hg_gpt2bpe *t = NULL;
    hg_gpt2_ids ids = {0};
    char *in = NULL, *out = NULL;
    size_t in_len = 0, out_len = 0;
    int code = EXIT_INPUT, rc = parse(&o, detok, argc, argv);
    if (rc == HG_ARG_DONE)
        return 0;
    if (rc == HG_OK)
        rc = hg_gpt2bpe_load_dir(&t, o.vocab);
    if (rc == HG_OK)
        rc = hg_file_read(o.in, &in, &in_len);
    if (rc != HG_OK)
        goto done;
    hg_quoted q;
    int32_t vocab = hg_gpt2bpe_vocab_size(t);
    double t0 = hg_now(), c0 = cpu_seconds();
    if (!detok) {
        rc = hg_gpt2bpe_encode(t, in, in_len, &ids);
        double secs = hg_now() - t0, cpu = cpu_seconds() - c0;
        code = EXIT_RUN;
        if (rc == HG_OK && !o.quiet)
            printf("%s: %zu bytes, %zu tokens, encoded in %.3f s wall, %.3f s CPU\n",
                   hg_quote(&q, o.in), in_len, ids.n, secs, cpu);
        if (rc == HG_OK && o.format == FORMAT_BIN)
            rc = hg_tokfile_write(o.out, ids.id, ids.n, vocab);
        else if (rc == HG_OK && (rc = ids_text(&ids, &out, &out_len)) == HG_OK)
            rc = hg_file_write(o.out, out, out_len);
        goto done;
    }
    if (in_len >= 5 && !memcmp(in, HG_TOKFILE_MAGIC, 5)) {
        hg_tokens tf;
        rc = hg_tokens_read(&tf, o.in);
        if (rc == HG_OK && tf.vocab != vocab)
            rc = HG_ERRORF(HG_EFORMAT, "%s: vocabulary size %d, not the tokeniser's %d",
                           hg_quote(&q, o.in), (int)tf.vocab, (int)vocab);
        if (rc == HG_OK && (ids.id = malloc(((size_t)tf.n + 1) * sizeof *ids.id)) == NULL)
            rc = HG_ERRORF(HG_ENOMEM, "out of memory (%lld token ids)", (long long)tf.n);
        for (int64_t k = 0; rc == HG_OK && k < tf.n; k++)
            ids.id[ids.n++] = tf.ids[k];
        hg_tokens_free(&tf);
    } else
        rc = parse_ids(o.in, in, in_len, vocab, &ids);
    if (rc == HG_OK)
        rc = hg_gpt2bpe_decode(t, ids.id, ids.n, &out, &out_len);
    if (rc != HG_OK)
        goto done;
    code = EXIT_RUN;
    rc = hg_file_write(o.out, out, out_len);
    if (rc == HG_OK && !o.quiet)
        printf("%s: %zu tokens, %zu bytes\n", hg_quote(&q, o.in), ids.n, out_len);
done:
    if (rc != HG_OK)
        fprintf(stderr, "hgnn-lm: %s\n", hg_last_error());
    hg_gpt2bpe_free(t);
    hg_gpt2_ids_free(&ids);
    free(in);
    free(out);
    return rc == HG_OK ? 0 : code;
}

int hg_lm_tokenize_main(int argc, char **argv)
{
    return run(0, argc, argv);
}

int hg_lm_detokenize_main(int argc, char **argv)
{
    return run(1, argc, argv);
}
