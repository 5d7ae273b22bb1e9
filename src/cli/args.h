/* args.h - the command-line mechanics shared by hgnn-train, hgnn-gengraph and hgnn-bench-spmm:
 * the argument loop (--help, --version, --quiet, `--key=value` / `--key value`), and option
 * values parsed as numbers or keywords.
 *
 * Contract: every hg_arg_* function that can fail returns HG_OK, or HG_EINVAL with a one-line
 * message recorded (HG_ERRORF; the program prints it after its name and exits 2). Messages
 * about a value read "option KEY: 'VALUE' WHY". Nothing is allocated; *out is written only on
 * success. */
#ifndef HG_CLI_ARGS_H
#define HG_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Returned by hg_arg_parse after --help or --version was printed: not a status code (the
 * program exits 0). The same value as HG_OPTIONS_DONE (options.h). */
#define HG_ARG_DONE (-1)

/* A program's command line, for hg_arg_parse. */
typedef struct hg_arg_program {
    void (*usage)(void);  /* printed by --help and -h */
    const char *version;  /* printed as one line by --version; NULL: --version is no flag */
    int *quiet;           /* set to 1 by --quiet; NULL: --quiet is no flag */
    const char *hint;     /* in "unexpected argument 'A' (HINT)"; NULL: "options start with --;
                             see --help" */
    /* One option and its value (key "--name", val never NULL): HG_OK, or an error recorded,
     * e.g. hg_arg_unknown(key) for a key that is not an option of the program. */
    int (*option)(void *ctx, const char *key, const char *val);
    void *ctx;
} hg_arg_program;

/* Reads argv[1..argc-1] in order. The flags above act as described; every other argument must
 * start with "--" and is `--key=value` (key: the text before the first '='), or `--key` with
 * the next argument as its value; p->option receives each pair. Returns HG_OK, HG_ARG_DONE, the
 * first error of p->option, or HG_EINVAL for "unexpected argument 'A' (HINT)" (no leading
 * "--"), "unknown option 'A' (see --help)" (a `--key=` key of 64 characters or more) and
 * "option A needs a value (see --help)" (a last argument without '='). A `--key value` key
 * longer than 63 characters reaches p->option truncated to 63. */
int hg_arg_parse(const hg_arg_program *p, int argc, char **argv);

/* Records "unknown option 'KEY' (see --help)"; returns HG_EINVAL. */
int hg_arg_unknown(const char *key);

/* Records "option OPT: 'VAL' WHY" (VAL NULL reads as ''); returns HG_EINVAL. */
int hg_arg_bad(const char *opt, const char *val, const char *why);

/* val as one of the keywords names[0..] (NULL-terminated): *out = its index. Otherwise
 * "is not WHAT (NAME0, NAME1, ...)", e.g. WHAT "a task" for "is not a task (nc, lp)". */
int hg_arg_choice(const char *opt, const char *val, const char *what, const char *const *names,
                  int *out);

/* --device: "cpu" or "cuda" into *device (whether cuda can run is known when the kernel context
 * is created). Otherwise the message of hg_arg_choice. */
int hg_arg_device(const char *opt, const char *val, const char **device);
/* --precision: "fp32" (0) or "bf16" (1) into *bf16. Otherwise the message of hg_arg_choice. */
int hg_arg_precision(const char *opt, const char *val, int *bf16);
/* --attention: "gemm" (0) or "fused" (1) into *fused. Otherwise the message of hg_arg_choice. */
int hg_arg_attention(const char *opt, const char *val, int *fused);
/* The options' one rule for bf16: it needs --device cuda (the CPU computes fp32). HG_EINVAL with
 * the message when broken. */
int hg_arg_check_precision(int bf16, const char *device);

/* s as a whole number, no message: 1 when s is a finite strtod number with nothing after it,
 * else 0. */
int hg_arg_scan_double(const char *s, double *out);

/* s as a whole base-10 integer, no message: 1 when strtoll reads all of s without overflow,
 * else 0. */
int hg_arg_scan_i64(const char *s, int64_t *out);

/* A finite number in [lo, hi]: "is not a number" or "is out of range [%g, %g]". */
int hg_arg_double(const char *opt, const char *s, double lo, double hi, double *out);

/* hg_arg_double, stored as float. */
int hg_arg_float(const char *opt, const char *s, double lo, double hi, float *out);

/* A base-10 integer in [lo, hi]: "is not an integer" or "is out of range [LO, HI]". */
int hg_arg_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);

/* hg_arg_i64 with int bounds, stored as int. */
int hg_arg_int(const char *opt, const char *s, long lo, long hi, int *out);

/* 0 or 1: hg_arg_int(opt, s, 0, 1, out). */
int hg_arg_bool(const char *opt, const char *s, int *out);

/* Any uint64_t in base 10: "must be a non-negative integer" for a leading '-', else "is not a
 * non-negative integer" when strtoull does not read all of s or overflows. */
int hg_arg_u64(const char *opt, const char *s, uint64_t *out);

/* ---- a run's command line, saved for --resume DIR ---- */

/* Save argv[1..argc-1] as DIR/FILE (one argument a line; atomic).
 * Errors: HG_EINVAL (an argument with a newline), HG_EIO, HG_ENOMEM. */
int hg_arg_save(const char *dir, const char *file, int argc, char **argv);

/* A saved command line read back: argv[0] = program, then the arguments, NULL last. */
typedef struct hg_arg_saved {
    char *text;  /* owned; the arguments point into it */
    char **argv; /* owned */
    int argc;
} hg_arg_saved;
/* Read DIR/FILE into s. Errors: HG_EIO ("option --resume DIR: cannot read ..."), HG_ENOMEM. */
int hg_arg_saved_read(hg_arg_saved *s, const char *program, const char *dir, const char *file);
void hg_arg_saved_free(hg_arg_saved *s); /* safe on a zeroed struct */

#endif
