/* fuzz_text.c - libFuzzer harness of the sentence-file reader (datasets/text.h), checked
 * against a second, independent statement of what it accepts: the input is taken iff every line
 * (split at '\n', a '\r' before it or at the end dropped) is at most LIMIT bytes of well-formed
 * UTF-8 (the byte ranges of the Unicode standard's table of well-formed sequences) without a
 * NUL. On success the lines must be the input's lines, in order, exactly. */
#include <string.h>

#include "../../datasets/text.h"
#include "../../src/hg.h"
#include "fuzz_common.h"

#define LIMIT 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Length of the well-formed sequence at s[0 .. n) (n >= 1), or 0 when there is none. */
static size_t sequence(const uint8_t *s, size_t n)
{
    static const struct {
        uint8_t lo0, hi0, lo1, hi1; /* first byte, second byte; later bytes 80..BF */
        size_t len;
    } form[] = {
        {0x01, 0x7f, 0, 0, 1},       {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3},
        {0xe1, 0xec, 0x80, 0xbf, 3}, {0xed, 0xed, 0x80, 0x9f, 3}, {0xee, 0xef, 0x80, 0xbf, 3},
        {0xf0, 0xf0, 0x90, 0xbf, 4}, {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4},
    };
    for (size_t f = 0; f < sizeof form / sizeof form[0]; f++) {
        if (s[0] < form[f].lo0 || s[0] > form[f].hi0)
            continue;
        size_t len = form[f].len;
        if (len > n || (len > 1 && (s[1] < form[f].lo1 || s[1] > form[f].hi1)))
            return 0;
        for (size_t k = 2; k < len; k++)
            if (s[k] < 0x80 || s[k] > 0xbf)
                return 0;
        return len;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(data, size);
    /* the expectation: walk the lines */
    int ok = 1;
    int64_t lines = 0;
    for (size_t at = 0; at < size && ok; lines++) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - data) : size, stop = end;
        if (stop > at && data[stop - 1] == '\r')
            stop--;
        ok = stop - at <= LIMIT;
        for (size_t i = at, len; ok && i < stop; i += len)
            ok = (len = sequence(data + i, stop - i)) > 0;
        at = end + 1;
    }
    hg_text_lines t;
    int rc = hg_text_read_lines(&t, path, LIMIT, 1);
    fuzz_check_status(rc, path, NULL);
    FUZZ_REQUIRE((rc == HG_OK) == ok);
    if (rc != HG_OK) {
        FUZZ_REQUIRE(rc == HG_EINVAL && t.n == 0 && !t.line && !t.buf);
        return 0;
    }
    FUZZ_REQUIRE(t.n == lines);
    size_t at = 0;
    for (int64_t i = 0; i < t.n; i++) {
        size_t len = strlen(t.line[i]);
        FUZZ_REQUIRE(at + len <= size && memcmp(data + at, t.line[i], len) == 0);
        at += len;
        if (at < size && data[at] == '\r')
            at++;
        FUZZ_REQUIRE(at == size || data[at] == '\n');
        at++;
    }
    FUZZ_REQUIRE(at >= size);
    hg_text_lines_free(&t);
    return 0;
}
