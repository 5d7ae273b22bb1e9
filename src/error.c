/* error.c - status strings, thread-local error messages, checked allocation, clock. */
#include "hg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[1024];

const char *hg_strerror(int status)
{
    switch (status) {
#define HG_X_CASE(name, value, text) \
    case name:                       \
        return text;
        HG_STATUS_LIST(HG_X_CASE)
#undef HG_X_CASE
    default:
        return "unknown status";
    }
}

int hg_error_set(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *hg_last_error(void) { return last_error; }
void hg_error_clear(void) { last_error[0] = '\0'; }

void *hg_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        hg_error_set(HG_ENOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size,
                     what ? what : "?");
    return p;
}

void hg_free(void *p) { free(p); }

double hg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *hg_quote(hg_quoted *q, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char *o = q->s;
    size_t i = 0;
    for (; s[i] && i < HG_QUOTE_MAX; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b >= 0x20 && b < 0x7f && b != '\'' && b != '"' && b != '\\') {
            *o++ = (char)b;
        } else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[b >> 4];
            *o++ = hex[b & 15];
        }
    }
    if (s[i]) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
    return q->s;
}
