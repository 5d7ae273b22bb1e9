/* mt_score.c - `hgnn-mt score`: BLEU or chrF of a hypothesis file against a reference file,
 * printed as `sacrebleu REF -i HYP -m bleu -b -w 4` prints it (the score, 4 decimals). The
 * files are read as sacreBLEU reads them: UTF-8, lines split at '\n' only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "mt_cli.h"
#include "../bleu.h"
#include "../hg.h"
#include "../io.h"

enum { EXIT_INPUT = 2, EXIT_RUN = 3 };
enum { METRIC_BLEU, METRIC_CHRF };

typedef struct score_opts {
    const char *ref, *hyp;
    int tokenize, tokenize_set;
    int lowercase, metric, sentence, json;
} score_opts;

static void usage(void)
{
    printf(
        "usage: hgnn-mt score --ref REF --hyp HYP [options]\n"
        "\n"
        "Scores the translation HYP (one segment a line, UTF-8) against the reference REF (as\n"
        "many lines) as sacreBLEU 2.6.0 does, and prints the score with 4 decimals.\n"
        "\n"
        "  --ref FILE                reference translation\n"
        "  --hyp FILE                hypothesis (system output)\n"
        "  --metric bleu|chrf        BLEU, or chrF2 (character 6-grams, beta 2) (bleu)\n"
        "  --tokenize 13a|intl|none|char  BLEU's tokeniser (13a)\n"
        "  --lowercase               case-insensitive scoring\n"
        "  --sentence                one score a line (BLEU: effective order, as sentence_bleu)\n"
        "  --json                    a JSON object (a line of them with --sentence): score,\n"
        "                            statistics and sacreBLEU's signature\n"
        "  --help\n");
}

static int score_option(void *ctx, const char *key, const char *val)
{
    static const char *const toks[] = {"13a", "intl", "none", "char", NULL};
    static const char *const metrics[] = {"bleu", "chrf", NULL};
    score_opts *o = ctx;
    if (!strcmp(key, "--ref"))
        o->ref = val;
    else if (!strcmp(key, "--hyp"))
        o->hyp = val;
    else if (!strcmp(key, "--tokenize")) {
        o->tokenize_set = 1;
        return hg_arg_choice(key, val, "a tokeniser", toks, &o->tokenize);
    } else if (!strcmp(key, "--metric"))
        return hg_arg_choice(key, val, "a metric", metrics, &o->metric);
    else if (!strcmp(key, "--lowercase"))
        return hg_arg_bool(key, val, &o->lowercase);
    else if (!strcmp(key, "--sentence"))
        return hg_arg_bool(key, val, &o->sentence);
    else if (!strcmp(key, "--json"))
        return hg_arg_bool(key, val, &o->json);
    else
        return hg_arg_unknown(key);
    return HG_OK;
}

/* The flags take no value: the shared option loop reads each as `--flag=1`. */
static const char *const flags[][2] = {
    {"--lowercase", "--lowercase=1"}, {"--sentence", "--sentence=1"}, {"--json", "--json=1"}};

static int parse(score_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return HG_ERRORF(HG_ENOMEM, "out of memory");
    for (int i = 0; i < argc; i++) {
        args[i] = argv[i];
        for (size_t k = 0; i > 0 && k < sizeof flags / sizeof flags[0]; k++)
            if (!strcmp(argv[i], flags[k][0]))
                args[i] = (char *)flags[k][1];
    }
    const hg_arg_program prog = {usage, NULL, NULL, NULL, score_option, o};
    int rc = hg_arg_parse(&prog, argc, args);
    free(args);
    if (rc)
        return rc;
    if (!o->ref || !o->hyp)
        return HG_ERRORF(HG_EINVAL, "score needs --ref and --hyp (see --help)");
    if (o->tokenize_set && o->metric != METRIC_BLEU)
        return HG_ERRORF(HG_EINVAL, "option --tokenize applies to --metric bleu only");
    return HG_OK;
}

/* ---- input --------------------------------------------------------------------------------- */

/* A file's lines, split in place. */
typedef struct text_file {
    char *data;
    char **line;
    int64_t n;
} text_file;

static int read_lines(const char *path, text_file *t)
{
    memset(t, 0, sizeof *t);
    hg_quoted q;
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EINVAL, "%s: %s", hg_quote(&q, path), strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) { /* the whole file, grown by doubling; one byte kept for the NUL */
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (len < cap - 1)
            break;
        char *nb = realloc(buf, 2 * cap);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!buf)
        return HG_ERRORF(HG_ENOMEM, "%s: out of memory", hg_quote(&q, path));
    if (err) {
        free(buf);
        return HG_ERRORF(HG_EINVAL, "%s: %s", hg_quote(&q, path), strerror(err));
    }
    buf[len] = '\0';
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    n += len > 0 && buf[len - 1] != '\n';
    t->data = buf;
    t->line = malloc(((size_t)n + 1) * sizeof *t->line);
    if (!t->line) {
        free(buf);
        return HG_ERRORF(HG_ENOMEM, "%s: out of memory", hg_quote(&q, path));
    }
    char *p = buf;
    for (int64_t k = 0; k < n; k++) {
        char *end = memchr(p, '\n', (size_t)(buf + len - p));
        if (!end)
            end = buf + len;
        *end = '\0';
        size_t ll = (size_t)(end - p);
        int64_t at = memchr(p, '\0', ll) ? (int64_t)((char *)memchr(p, '\0', ll) - p)
                                          : hg_utf8_invalid_at(p, ll);
        if (at >= 0) {
            int nul = p[at] == '\0';
            free(t->line);
            free(buf);
            memset(t, 0, sizeof *t);
            return HG_ERRORF(HG_EINVAL, "%s:%lld: %s at byte %lld of the line",
                             hg_quote(&q, path), (long long)k + 1,
                             nul ? "NUL character" : "invalid UTF-8", (long long)at + 1);
        }
        t->line[k] = p;
        p = end + 1;
    }
    t->n = n;
    return HG_OK;
}

static void free_lines(text_file *t)
{
    free(t->line);
    free(t->data);
}

/* ---- output -------------------------------------------------------------------------------- */

static void add_i64s(hg_json *j, const char *key, const int64_t *v, int n)
{
    char s[512];
    size_t len = 0;
    for (int k = 0; k < n; k++)
        len += (size_t)snprintf(s + len, sizeof s - len, "%s%lld", k ? ", " : "[",
                                (long long)v[k]);
    snprintf(s + len, sizeof s - len, "]");
    hg_json_add_raw(j, key, s);
}

static void add_doubles(hg_json *j, const char *key, const double *v, int n)
{
    char s[512];
    size_t len = 0;
    for (int k = 0; k < n; k++)
        len += (size_t)snprintf(s + len, sizeof s - len, "%s%.17g", k ? ", " : "[", v[k]);
    snprintf(s + len, sizeof s - len, "]");
    hg_json_add_raw(j, key, s);
}

static int print_bleu(const score_opts *o, const hg_bleu_opts *bo, const hg_bleu_result *r)
{
    if (!o->json) {
        printf("%.4f\n", r->score);
        return HG_OK;
    }
    char sig[128];
    int rc = hg_bleu_signature(bo, sig, sizeof sig);
    if (rc)
        return rc;
    hg_json j;
    hg_json_begin_file(&j, stdout);
    hg_json_add_str(&j, "name", "BLEU");
    hg_json_add_double(&j, "score", r->score);
    hg_json_add_str(&j, "signature", sig);
    add_i64s(&j, "counts", r->counts, bo->max_order);
    add_i64s(&j, "totals", r->totals, bo->max_order);
    add_doubles(&j, "precisions", r->precisions, bo->max_order);
    hg_json_add_double(&j, "bp", r->bp);
    hg_json_add_int(&j, "sys_len", r->sys_len);
    hg_json_add_int(&j, "ref_len", r->ref_len);
    rc = hg_json_end(&j);
    putchar('\n');
    return rc;
}

static int print_chrf(const score_opts *o, const hg_chrf_opts *co, double score,
                      const hg_chrf_stats *st)
{
    if (!o->json) {
        printf("%.4f\n", score);
        return HG_OK;
    }
    char sig[128];
    int rc = hg_chrf_signature(co, sig, sizeof sig);
    if (rc)
        return rc;
    hg_json j;
    hg_json_begin_file(&j, stdout);
    hg_json_add_str(&j, "name", "chrF2");
    hg_json_add_double(&j, "score", score);
    hg_json_add_str(&j, "signature", sig);
    add_i64s(&j, "hyp_ngrams", st->hyp, co->char_order);
    add_i64s(&j, "ref_ngrams", st->ref, co->char_order);
    add_i64s(&j, "matches", st->match, co->char_order);
    rc = hg_json_end(&j);
    putchar('\n');
    return rc;
}

/* ---- scoring ------------------------------------------------------------------------------- */

static int score_bleu(const score_opts *o, const text_file *hyp, const text_file *ref)
{
    hg_bleu_opts bo;
    if (o->sentence)
        hg_bleu_opts_sentence(&bo);
    else
        hg_bleu_opts_corpus(&bo);
    bo.tokenize = (hg_bleu_tok)o->tokenize;
    bo.lowercase = o->lowercase;
    hg_bleu *b = NULL;
    hg_bleu_result r;
    int rc = hg_bleu_create(&b, &bo);
    if (!rc && !o->sentence) {
        rc = hg_bleu_corpus(b, (const char *const *)hyp->line, (const char *const *)ref->line,
                            hyp->n, &r);
        if (!rc)
            rc = print_bleu(o, &bo, &r);
    }
    for (int64_t i = 0; !rc && o->sentence && i < hyp->n; i++) {
        rc = hg_bleu_sentence(b, hyp->line[i], ref->line[i], &r);
        if (!rc)
            rc = print_bleu(o, &bo, &r);
    }
    hg_bleu_free(b);
    return rc;
}

static int score_chrf(const score_opts *o, const text_file *hyp, const text_file *ref)
{
    hg_chrf_opts co;
    hg_chrf_opts_default(&co);
    co.lowercase = o->lowercase;
    hg_chrf *c = NULL;
    hg_chrf_stats st;
    double score;
    int rc = hg_chrf_create(&c, &co);
    if (!rc && !o->sentence) {
        rc = hg_chrf_corpus(c, (const char *const *)hyp->line, (const char *const *)ref->line,
                            hyp->n, &score, &st);
        if (!rc)
            rc = print_chrf(o, &co, score, &st);
    }
    for (int64_t i = 0; !rc && o->sentence && i < hyp->n; i++) {
        rc = hg_chrf_corpus(c, (const char *const *)&hyp->line[i],
                            (const char *const *)&ref->line[i], 1, &score, &st);
        if (!rc)
            rc = print_chrf(o, &co, score, &st);
    }
    hg_chrf_free(c);
    return rc;
}

int hg_mt_score_main(int argc, char **argv)
{
    score_opts o;
    int rc = parse(&o, argc, argv);
    if (rc == HG_ARG_DONE)
        return 0;
    text_file ref = {0}, hyp = {0};
    if (!rc)
        rc = read_lines(o.ref, &ref);
    if (!rc)
        rc = read_lines(o.hyp, &hyp);
    if (!rc && hyp.n != ref.n) {
        hg_quoted q1, q2;
        rc = HG_ERRORF(HG_EINVAL, "%s has %lld lines but %s has %lld", hg_quote(&q1, o.hyp),
                       (long long)hyp.n, hg_quote(&q2, o.ref), (long long)ref.n);
    }
    int status = 0;
    if (rc) {
        status = EXIT_INPUT;
    } else {
        rc = o.metric == METRIC_BLEU ? score_bleu(&o, &hyp, &ref) : score_chrf(&o, &hyp, &ref);
        status = rc ? EXIT_RUN : 0;
        if (!rc && fflush(stdout) != 0)
            rc = HG_ERRORF(HG_EIO, "standard output: write error"), status = EXIT_RUN;
    }
    if (rc)
        fprintf(stderr, "hgnn-mt: %s\n", hg_last_error()[0] ? hg_last_error() : hg_strerror(rc));
    free_lines(&ref);
    free_lines(&hyp);
    return status;
}
