/* args.c - command-line mechanics shared by the hgnn programs (contracts in args.h). */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hg.h"
#include "../io.h"

/* argv[*i], which starts with "--", split into key and value (contract of hg_arg_parse). */
static int split(int argc, char **argv, int *i, char *key, size_t key_len, const char **val)
{
    const char *a = argv[*i], *eq = strchr(a, '=');
    if (eq) {
        size_t kl = (size_t)(eq - a);
        if (kl >= key_len)
            return hg_arg_unknown(a);
        memcpy(key, a, kl);
        key[kl] = '\0';
        *val = eq + 1;
        return HG_OK;
    }
    snprintf(key, key_len, "%s", a);
    if (*i + 1 >= argc) {
        hg_quoted q;
        return HG_ERRORF(HG_EINVAL, "option %s needs a value (see --help)", hg_quote(&q, a));
    }
    *val = argv[++*i];
    return HG_OK;
}

int hg_arg_parse(const hg_arg_program *p, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            p->usage();
            return HG_ARG_DONE;
        }
        if (p->version && !strcmp(a, "--version")) {
            printf("%s\n", p->version);
            return HG_ARG_DONE;
        }
        if (p->quiet && !strcmp(a, "--quiet")) {
            *p->quiet = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            hg_quoted q;
            return HG_ERRORF(HG_EINVAL, "unexpected argument '%s' (%s)", hg_quote(&q, a),
                             p->hint ? p->hint : "options start with --; see --help");
        }
        char key[64];
        const char *val = NULL;
        int rc = split(argc, argv, &i, key, sizeof key, &val);
        if (rc == HG_OK)
            rc = p->option(p->ctx, key, val);
        if (rc != HG_OK)
            return rc;
    }
    return HG_OK;
}

int hg_arg_unknown(const char *key)
{
    hg_quoted q;
    return HG_ERRORF(HG_EINVAL, "unknown option '%s' (see --help)", hg_quote(&q, key));
}

int hg_arg_bad(const char *opt, const char *val, const char *why)
{
    hg_quoted q;
    return HG_ERRORF(HG_EINVAL, "option %s: '%s' %s", opt, hg_quote(&q, val ? val : ""), why);
}

int hg_arg_choice(const char *opt, const char *val, const char *what, const char *const *names,
                  int *out)
{
    char why[256];
    size_t len = (size_t)snprintf(why, sizeof why, "is not %s (", what);
    for (int k = 0; names[k]; k++) {
        if (!strcmp(val, names[k])) {
            *out = k;
            return HG_OK;
        }
        if (len < sizeof why)
            len += (size_t)snprintf(why + len, sizeof why - len, "%s%s", k ? ", " : "", names[k]);
    }
    if (len < sizeof why)
        snprintf(why + len, sizeof why - len, ")");
    return hg_arg_bad(opt, val, why);
}

int hg_arg_device(const char *opt, const char *val, const char **device)
{
    int c;
    const int rc = hg_arg_choice(opt, val, "a device", (const char *const[]){"cpu", "cuda", NULL},
                                 &c);
    if (rc == HG_OK)
        *device = val;
    return rc;
}

int hg_arg_precision(const char *opt, const char *val, int *bf16)
{
    return hg_arg_choice(opt, val, "a precision", (const char *const[]){"fp32", "bf16", NULL},
                         bf16);
}

int hg_arg_attention(const char *opt, const char *val, int *fused)
{
    return hg_arg_choice(opt, val, "an attention kernel",
                         (const char *const[]){"gemm", "fused", NULL}, fused);
}

int hg_arg_check_precision(int bf16, const char *device)
{
    if (bf16 && strcmp(device, "cuda") != 0)
        return HG_ERRORF(HG_EINVAL, "option --precision bf16: needs --device cuda (the CPU "
                         "computes in fp32)");
    return HG_OK;
}

int hg_arg_scan_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

int hg_arg_scan_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return 0;
    *out = v;
    return 1;
}

int hg_arg_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    double v;
    if (!hg_arg_scan_double(s, &v))
        return hg_arg_bad(opt, s, "is not a number");
    if (v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "is out of range [%g, %g]", lo, hi);
        return hg_arg_bad(opt, s, why);
    }
    *out = v;
    return HG_OK;
}

int hg_arg_float(const char *opt, const char *s, double lo, double hi, float *out)
{
    double v = 0;
    int rc = hg_arg_double(opt, s, lo, hi, &v);
    if (rc == HG_OK)
        *out = (float)v;
    return rc;
}

int hg_arg_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v;
    if (!hg_arg_scan_i64(s, &v))
        return hg_arg_bad(opt, s, "is not an integer");
    if (v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "is out of range [%lld, %lld]", (long long)lo, (long long)hi);
        return hg_arg_bad(opt, s, why);
    }
    *out = v;
    return HG_OK;
}

int hg_arg_int(const char *opt, const char *s, long lo, long hi, int *out)
{
    int64_t v = 0;
    int rc = hg_arg_i64(opt, s, lo, hi, &v);
    if (rc == HG_OK)
        *out = (int)v;
    return rc;
}

int hg_arg_bool(const char *opt, const char *s, int *out) { return hg_arg_int(opt, s, 0, 1, out); }

int hg_arg_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-')
        return hg_arg_bad(opt, s, "must be a non-negative integer");
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return hg_arg_bad(opt, s, "is not a non-negative integer");
    *out = v;
    return HG_OK;
}

int hg_arg_save(const char *dir, const char *file, int argc, char **argv)
{
    size_t len = 1;
    for (int i = 1; i < argc; i++) {
        if (strchr(argv[i], '\n')) {
            hg_quoted q;
            return HG_ERRORF(HG_EINVAL, "argument '%s' holds a newline: cannot be saved in %s/%s",
                             hg_quote(&q, argv[i]), dir, file);
        }
        len += strlen(argv[i]) + 1;
    }
    char *text = hg_calloc(len, 1, "saved options"), path[4200];
    if (!text)
        return HG_ENOMEM;
    for (int i = 1; i < argc; i++) {
        strcat(text, argv[i]);
        strcat(text, "\n");
    }
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = hg_text_write(path, text);
    hg_free(text);
    return rc;
}

int hg_arg_saved_read(hg_arg_saved *s, const char *program, const char *dir, const char *file)
{
    char path[4200];
    hg_arg_saved_free(s);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EIO, "option --resume %s: cannot read %s (was the run started with "
                         "--out %s?)", dir, path, dir);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    s->text = size >= 0 ? hg_calloc((size_t)size + 1, 1, "saved options") : NULL;
    int ok = s->text && fread(s->text, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    if (!ok)
        return HG_ERRORF(HG_EIO, "option --resume %s: cannot read %s", dir, path);
    int n = 1;
    for (long i = 0; i < size; i++)
        n += s->text[i] == '\n';
    s->argv = hg_calloc((size_t)n + 2, sizeof *s->argv, "saved options");
    if (!s->argv)
        return HG_ENOMEM;
    int a = 0;
    s->argv[a++] = (char *)program;
    for (char *p = s->text; *p;) { /* one argument a line */
        char *nl = strchr(p, '\n');
        s->argv[a++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    s->argc = a;
    return HG_OK;
}

void hg_arg_saved_free(hg_arg_saved *s)
{
    hg_free(s->text);
    hg_free(s->argv);
    s->text = NULL;
    s->argv = NULL;
    s->argc = 0;
}
