/* hg.h - common definitions of hgnn: status codes, error recording, small helpers.
 *
 * Conventions (ARCHITECTURE.md section 8): public symbols hg_*, macros HG_*; fallible functions return an
 * hg_status and record a formatted message (hg_last_error()); library code never exits.
 * Matrices are row-major (rows = nodes or tokens) everywhere in the project. */
#ifndef HG_H
#define HG_H

#include <stddef.h>
#include <stdint.h>

/* One X-macro list of status codes; hg_strerror is generated from it. */
#define HG_STATUS_LIST(X)                                   \
    X(HG_OK, 0, "success")                                  \
    X(HG_EINVAL, 1, "invalid argument")                     \
    X(HG_ENOMEM, 2, "out of memory")                        \
    X(HG_EIO, 3, "input/output error")                      \
    X(HG_EFORMAT, 4, "malformed input")                     \
    X(HG_ENUMERIC, 5, "non-finite value")                   \
    X(HG_ELAPACK, 6, "LAPACK failure")                      \
    X(HG_EIGRAPH, 7, "igraph failure")                      \
    X(HG_EUNSUPPORTED, 8, "unsupported")                    \
    X(HG_ECUDA, 9, "CUDA failure")

typedef enum {
#define HG_X_ENUM(name, value, text) name = value,
    HG_STATUS_LIST(HG_X_ENUM)
#undef HG_X_ENUM
} hg_status;

const char *hg_strerror(int status);

/* Record a formatted message for the caller (thread-local); returns `status` so that
 * `return HG_ERRORF(HG_EFORMAT, "%s:%zu: ...", path, line);` reads naturally. */
int hg_error_set(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define HG_ERRORF(status, ...) hg_error_set((status), __VA_ARGS__)
/* The last recorded message ("" if none). */
const char *hg_last_error(void);
void hg_error_clear(void);

/* Propagate a failing status: `HG_CHECK(hg_x(...));` inside a function with `int rc` and `done:`. */
#define HG_CHECK(expr)            \
    do {                          \
        rc = (expr);              \
        if (rc != HG_OK) goto done; \
    } while (0)

/* Input shown in a message (file contents, command-line arguments): printable ASCII as is, other
 * bytes and quotes as \xNN, at most HG_QUOTE_MAX input bytes (then "..."). q holds the result. */
#define HG_QUOTE_MAX 64
typedef struct {
    char s[4 * HG_QUOTE_MAX + 4];
} hg_quoted;
const char *hg_quote(hg_quoted *q, const char *s);

/* Checked allocation: zeroed; records HG_ENOMEM with the purpose on failure. */
void *hg_calloc(size_t count, size_t size, const char *what);
void hg_free(void *p);

#define HG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define HG_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Monotonic wall clock in seconds. */
double hg_now(void);

#endif
