/* test_gpt2bpe.c - GPT-2's byte-level BPE: the published test vectors (ids and round trip), the
 * pre-tokeniser's splits worked out by hand from the expression, the merges against a direct
 * transcription of GPT-2's loop (merge every occurrence of the lowest-ranked pair, repeat), the
 * cache, round trips of arbitrary bytes (invalid UTF-8 included), token files, and the loaders'
 * errors on broken vocabulary files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "../datasets/gpt2bpe.h"
#include "../datasets/tokens.h"
#include "../src/hg.h"
#include "../src/io.h"
#include "../src/rng.h"

static hg_gpt2bpe *tok;

static int setup(void **state)
{
    (void)state;
    int rc = hg_gpt2bpe_load_dir(&tok, NULL);
    if (rc != HG_OK)
        fprintf(stderr, "load: %s\n", hg_last_error());
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    hg_gpt2bpe_free(tok);
    return 0;
}

/* ---- the test vectors ---------------------------------------------------------------------- */

static void put_utf8(char **p, uint32_t c)
{
    unsigned char *q = (unsigned char *)*p;
    if (c < 0x80)
        *q++ = (unsigned char)c;
    else if (c < 0x800) {
        *q++ = (unsigned char)(0xC0 | c >> 6);
        *q++ = (unsigned char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *q++ = (unsigned char)(0xE0 | c >> 12);
        *q++ = (unsigned char)(0x80 | (c >> 6 & 0x3F));
        *q++ = (unsigned char)(0x80 | (c & 0x3F));
    } else {
        *q++ = (unsigned char)(0xF0 | c >> 18);
        *q++ = (unsigned char)(0x80 | (c >> 12 & 0x3F));
        *q++ = (unsigned char)(0x80 | (c >> 6 & 0x3F));
        *q++ = (unsigned char)(0x80 | (c & 0x3F));
    }
    *p = (char *)q;
}

/* The JSON string at *s (after its opening quote) decoded into out; *s moves past the closing
 * quote. Returns the decoded length. */
static size_t json_string(const char **s, char *out)
{
    char *o = out;
    const char *p = *s;
    while (*p != '"') {
        assert_true(*p != '\0');
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        const char *esc = strchr("\"\\/bfnrt", *p);
        if (esc && *p != 'u') {
            *o++ = "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
            p++;
            continue;
        }
        assert_int_equal(*p, 'u');
        unsigned c;
        assert_int_equal(sscanf(p + 1, "%4x", &c), 1);
        p += 5;
        if (c >= 0xD800 && c < 0xDC00) { /* a surrogate pair */
            unsigned lo;
            assert_true(p[0] == '\\' && p[1] == 'u' && sscanf(p + 2, "%4x", &lo) == 1);
            p += 6;
            c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
        }
        put_utf8(&o, c);
    }
    *s = p + 1;
    return (size_t)(o - out);
}

static void test_vectors(void **state)
{
    (void)state;
    const char *dir = getenv("HG_GPT2_TEST_DIR");
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/test_vectors.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192], text[8192];
    int32_t want[1024];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"text\":\"");
        assert_non_null(p);
        p += 8;
        size_t len = json_string(&p, text);
        text[len] = '\0';
        p = strstr(p, "\"ids\":[");
        assert_non_null(p);
        p += 7;
        size_t n = 0;
        while (*p != ']') {
            char *end;
            want[n++] = (int32_t)strtol(p, &end, 10);
            assert_true(end > p);
            p = *end == ',' ? end + 1 : end;
        }
        hg_gpt2_ids ids = {0};
        assert_int_equal(hg_gpt2bpe_encode(tok, text, len, &ids), HG_OK);
        if (ids.n != n || (n && memcmp(ids.id, want, n * sizeof *want))) {
            fprintf(stderr, "case %d: %zu ids, want %zu:", cases, ids.n, n);
            for (size_t k = 0; k < ids.n; k++)
                fprintf(stderr, " %d", (int)ids.id[k]);
            fprintf(stderr, "\n");
            fail_msg("test vector %d (%s) differs", cases, text);
        }
        char *back;
        size_t blen;
        assert_int_equal(hg_gpt2bpe_decode(tok, ids.id, ids.n, &back, &blen), HG_OK);
        assert_int_equal(blen, len);
        assert_memory_equal(back, text, len);
        free(back);
        hg_gpt2_ids_free(&ids);
        cases++;
    }
    fclose(f);
    assert_int_equal(cases, 18);
    assert_int_equal(hg_gpt2bpe_vocab_size(tok), HG_GPT2_VOCAB);
    size_t len;
    const char *eot = hg_gpt2bpe_token(tok, HG_GPT2_EOT, &len);
    assert_int_equal(len, 13);
    assert_memory_equal(eot, "<|endoftext|>", 13);
}

/* ---- the pre-tokeniser --------------------------------------------------------------------- */

/* text (len bytes) must split into the pieces listed, NULL-terminated; pieces may hold NUL
 * bytes only where their lengths are given in lens (0: strlen). */
static void check_split(const char *text, size_t len, const char *const *pieces, const size_t *lens)
{
    size_t ends[64], n;
    assert_int_equal(hg_gpt2bpe_split(tok, text, len, ends, 64, &n), HG_OK);
    size_t k = 0, at = 0;
    for (; pieces[k]; k++) {
        size_t l = lens && lens[k] ? lens[k] : strlen(pieces[k]);
        if (k >= n || ends[k] - at != l || memcmp(text + at, pieces[k], l))
            fail_msg("split of '%s': piece %zu is not '%s'", text, k, pieces[k]);
        at = ends[k];
    }
    assert_int_equal(n, k);
}

static void test_split(void **state)
{
    (void)state;
#define SPLIT(text, ...) check_split(text, sizeof text - 1, (const char *const[]){__VA_ARGS__, NULL}, NULL)
    SPLIT("Hello  world", "Hello", " ", " world");
    SPLIT("it's we'll they've I'm you'd 'RE", "it", "'s", " we", "'ll", " they", "'ve", " I",
          "'m", " you", "'d", " '", "RE");
    SPLIT("a\n\nb", "a", "\n", "\n", "b");
    SPLIT("x   ", "x", "   ");
    SPLIT("123abc 2024, ok!!", "123", "abc", " 2024", ",", " ok", "!!");
    SPLIT("\t tab", "\t", " tab");
    SPLIT("na\xc3\xafve caf\xc3\xa9", "na\xc3\xafve", " caf\xc3\xa9");   /* letters */
    SPLIT("\xc2\xa0x", "\xc2\xa0", "x");                                   /* NBSP is space */
    SPLIT("\xe2\x80\x8bz", "\xe2\x80\x8b", "z");                           /* ZWSP is not */
    SPLIT("\xd9\xa3\xd9\xa4 x", "\xd9\xa3\xd9\xa4", " x");                 /* Arabic digits */
    /* invalid UTF-8: what the expression skips is a piece of its own */
    SPLIT("\xff\xfe" "ab", "\xff\xfe", "ab");
    SPLIT("a \xff b", "a", " ", "\xff", " b");
    SPLIT("ab\xc3", "ab", "\xc3");
    SPLIT("\xe2\x82", "\xe2\x82");
#undef SPLIT
    /* NUL bytes are ordinary characters (punctuation) */
    check_split("a\0\0b", 4, (const char *const[]){"a", "\0\0", "b", NULL},
                (const size_t[]){0, 2, 0});
    size_t n = 1;
    assert_int_equal(hg_gpt2bpe_split(tok, "", 0, NULL, 0, &n), HG_OK);
    assert_int_equal(n, 0);
    /* long runs need no deep backtracking: "a", 2999999 spaces, " bxx...x" (3000000 x), "!" */
    size_t len = 6000003, ends[4];
    char *big = malloc(len);
    assert_non_null(big);
    big[0] = 'a';
    memset(big + 1, ' ', 3000000);
    big[3000001] = 'b';
    memset(big + 3000002, 'x', 3000000);
    big[len - 1] = '!';
    assert_int_equal(hg_gpt2bpe_split(tok, big, len, ends, 4, &n), HG_OK);
    assert_int_equal(n, 4);
    assert_true(ends[0] == 1 && ends[1] == 3000000 && ends[2] == 6000002 && ends[3] == len);
    free(big);
}

/* ---- the merges against GPT-2's loop ------------------------------------------------------- */

/* GPT-2's merge loop on one pre-token: while some adjacent pair has a merge, take the pair of
 * lowest rank and merge all its occurrences, left to right. Returns the number of ids. */
static size_t gpt2_loop(const unsigned char *s, size_t n, int32_t *w)
{
    static int32_t byte_id[256], known;
    for (int32_t id = 0; !known && id < hg_gpt2bpe_vocab_size(tok); id++) {
        size_t len;
        const char *b = hg_gpt2bpe_token(tok, id, &len);
        if (len == 1)
            byte_id[(unsigned char)b[0]] = id;
    }
    known = 1;
    size_t m = n;
    for (size_t i = 0; i < n; i++)
        w[i] = byte_id[s[i]];
    for (;;) {
        int32_t best = -1, bl = 0, br = 0, made = 0, res;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t r = hg_gpt2bpe_merge_rank(tok, w[i], w[i + 1], &res);
            if (r >= 0 && (best < 0 || r < best))
                best = r, bl = w[i], br = w[i + 1], made = res;
        }
        if (best < 0)
            return m;
        size_t o = 0;
        for (size_t i = 0; i < m; i++) {
            if (i + 1 < m && w[i] == bl && w[i + 1] == br)
                w[o++] = made, i++;
            else
                w[o++] = w[i];
        }
        m = o;
    }
}

/* Random text with long runs of one letter, words, digits, spaces and other scripts. */
static size_t random_text(hg_rng *r, char *buf, size_t cap)
{
    static const char *const atoms[] = {"a", "e", "th", "ing", " ", "  ", "\n", "0", "1", "9",
                                        ".", ",", "'", "'s", "\xc3\xa9", "\xe6\x97\xa5",
                                        "\xf0\x9f\x98\x80", "-", "\t", "ll", "z", "Q"};
    size_t n = 0, na = sizeof atoms / sizeof atoms[0];
    while (n + 68 < cap) { /* every atom fits while this holds */
        const char *a = atoms[hg_rng_u64(r) % na];
        int reps = hg_rng_u64(r) % 8 == 0 ? (int)(hg_rng_u64(r) % 60) + 1 : 1;
        for (int k = 0; k < reps && n + strlen(a) + 64 < cap; k++) {
            memcpy(buf + n, a, strlen(a));
            n += strlen(a);
        }
    }
    return n;
}

static void test_merges_match_gpt2_loop(void **state)
{
    (void)state;
    hg_rng r;
    hg_rng_seed(&r, 7);
    size_t cap = 200000;
    char *text = malloc(cap);
    int32_t *want = malloc(cap * sizeof *want);
    size_t *ends = malloc(cap * sizeof *ends);
    assert_true(text && want && ends);
    size_t len = random_text(&r, text, cap);
    size_t n = 0, pieces;
    assert_int_equal(hg_gpt2bpe_split(tok, text, len, ends, cap, &pieces), HG_OK);
    for (size_t k = 0, at = 0; k < pieces; at = ends[k++])
        n += gpt2_loop((const unsigned char *)text + at, ends[k] - at, want + n);
    for (int pass = 0; pass < 2; pass++) { /* the second pass comes from the cache */
        hg_gpt2_ids ids = {0};
        assert_int_equal(hg_gpt2bpe_encode(tok, text, len, &ids), HG_OK);
        assert_int_equal(ids.n, n);
        assert_memory_equal(ids.id, want, n * sizeof *want);
        hg_gpt2_ids_free(&ids);
    }
    /* pre-tokens too long for the cache: a run of letters and one of spaces */
    const char *fill = "ab";
    for (int k = 0; k < 2; k++) {
        size_t m = k ? 2000 : 3001;
        for (size_t i = 0; i < m; i++)
            text[i] = k ? ' ' : fill[hg_rng_u64(&r) % 4 == 0];
        size_t w = gpt2_loop((const unsigned char *)text, m, want);
        hg_gpt2_ids ids = {0};
        assert_int_equal(hg_gpt2bpe_encode(tok, text, m, &ids), HG_OK);
        assert_int_equal(ids.n, w);
        assert_memory_equal(ids.id, want, w * sizeof *want);
        hg_gpt2_ids_free(&ids);
    }
    free(text);
    free(want);
    free(ends);
}

/* More distinct pre-tokens than the cache holds: it is emptied on the way, and the ids stay
 * those of a second pass (which meets another cache state) and decode to the text. */
static void test_cache_overflow(void **state)
{
    (void)state;
    size_t words = 700000, len = 0;
    char *text = malloc(8 * words);
    assert_non_null(text);
    for (size_t w = 0; w < words; w++) { /* " xxxxxx": six letters, base 26, all distinct */
        text[len++] = ' ';
        for (size_t k = 0, v = w; k < 6; k++, v /= 26)
            text[len++] = (char)('a' + v % 26);
    }
    hg_gpt2_ids a = {0}, b = {0};
    assert_int_equal(hg_gpt2bpe_encode(tok, text, len, &a), HG_OK);
    assert_int_equal(hg_gpt2bpe_encode(tok, text, len, &b), HG_OK);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.id, b.id, a.n * sizeof *a.id);
    char *back;
    size_t blen;
    assert_int_equal(hg_gpt2bpe_decode(tok, a.id, a.n, &back, &blen), HG_OK);
    assert_int_equal(blen, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(text);
    hg_gpt2_ids_free(&a);
    hg_gpt2_ids_free(&b);
}

/* ---- round trips of any bytes -------------------------------------------------------------- */

static void test_random_bytes_roundtrip(void **state)
{
    (void)state;
    hg_rng r;
    hg_rng_seed(&r, 11);
    char buf[4096];
    for (int trial = 0; trial < 3000; trial++) {
        size_t n = hg_rng_u64(&r) % 2048;
        int mode = trial % 3;
        if (mode == 2)
            n = random_text(&r, buf, n + 69);
        for (size_t i = 0; i < n; i++) {
            if (mode == 0) /* any byte */
                buf[i] = (char)hg_rng_u64(&r);
            else if (mode == 1) /* mostly text, some broken sequences */
                buf[i] = hg_rng_u64(&r) % 10 ? "ab  \n'1.\xc3\xa9"[hg_rng_u64(&r) % 11]
                                             : (char)(0x80 + hg_rng_u64(&r) % 128);
            else if (hg_rng_u64(&r) % 50 == 0) /* text with a stray byte */
                buf[i] = (char)hg_rng_u64(&r);
        }
        hg_gpt2_ids ids = {0};
        assert_int_equal(hg_gpt2bpe_encode(tok, buf, n, &ids), HG_OK);
        assert_true(ids.n <= n);
        char *back;
        size_t blen;
        assert_int_equal(hg_gpt2bpe_decode(tok, ids.id, ids.n, &back, &blen), HG_OK);
        assert_int_equal(blen, n);
        assert_memory_equal(back, buf, n);
        free(back);
        hg_gpt2_ids_free(&ids);
    }
}

static void test_decode_errors(void **state)
{
    (void)state;
    char *out;
    size_t len;
    const int32_t bad[][2] = {{15496, -1}, {HG_GPT2_VOCAB, 0}};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(hg_gpt2bpe_decode(tok, bad[k], 2, &out, &len), HG_EINVAL);
        assert_null(out);
        assert_non_null(strstr(hg_last_error(), "out of range"));
    }
    assert_int_equal(hg_gpt2bpe_decode(tok, NULL, 0, &out, &len), HG_OK);
    assert_int_equal(len, 0);
    free(out);
    assert_null(hg_gpt2bpe_token(tok, HG_GPT2_VOCAB, &len));
}

/* ---- token files --------------------------------------------------------------------------- */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    assert_int_equal(hg_file_write(path, b, n), HG_OK);
}

/* Token files written here and read back by hg_tokens_read (datasets/tokens.h). */
static void test_tokfile(void **state)
{
    (void)state;
    const char *path = tmp_path("t.bin");
    const int32_t ids[] = {15496, 995, 0, HG_GPT2_EOT, 50000};
    assert_int_equal(hg_tokfile_write(path, ids, 5, HG_GPT2_VOCAB), HG_OK);
    hg_tokens got;
    assert_int_equal(hg_tokens_read(&got, path), HG_OK);
    assert_int_equal(got.vocab, HG_GPT2_VOCAB);
    assert_int_equal(got.n, 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(got.ids[k], ids[k]);
    hg_tokens_free(&got);
    char *raw;
    size_t len;
    assert_int_equal(hg_file_read(path, &raw, &len), HG_OK);
    assert_int_equal(len, HG_TOKFILE_HEADER + 10);
    assert_memory_equal(raw, "HGTOK1\0\0\1\0\0\0\x51\xc4\0\0\5\0\0\0\0\0\0\0\x88\x3c", 26);
    /* no tokens at all */
    assert_int_equal(hg_tokfile_write(path, NULL, 0, HG_GPT2_VOCAB), HG_OK);
    assert_int_equal(hg_tokens_read(&got, path), HG_OK);
    assert_int_equal(got.n, 0);
    hg_tokens_free(&got);
    /* what the writer refuses */
    const int32_t over[] = {HG_GPT2_VOCAB};
    assert_int_equal(hg_tokfile_write(path, over, 1, HG_GPT2_VOCAB), HG_EINVAL);
    assert_int_equal(hg_tokfile_write(path, ids, 1, 65537), HG_EINVAL);
    /* a damaged copy is refused by the reader */
    raw[len - 1] = (char)0xff; /* the last id becomes 0xff50, outside the vocabulary */
    assert_int_equal(hg_file_write(tmp_path("bad.bin"), raw, len), HG_OK);
    assert_int_equal(hg_tokens_read(&got, tmp_path("bad.bin")), HG_EFORMAT);
    assert_non_null(strstr(hg_last_error(), "outside the vocabulary"));
    free(raw);
}

/* ---- loading: a small vocabulary, and broken files ------------------------------------------ */

/* The vocabulary character of byte b, as UTF-8 (GPT-2's map, written out from its rule). */
static void byte_char(int b, char **p)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    int k = 0;
    for (int c = 0; c < b; c++)
        k += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
    if (b == '"' || b == '\\')
        *(*p)++ = '\\';
    put_utf8(p, printable ? (uint32_t)b : 0x100u + (uint32_t)k);
}

/* encoder.json of the 256 byte tokens (id = byte) followed by extra, and vocab.bpe of merges. */
static void write_vocab(const char *extra, const char *merges)
{
    char *json = malloc(8192), *p = json;
    *p++ = '{';
    for (int b = 0; b < 256; b++) {
        p += sprintf(p, b ? ", \"" : "\"");
        byte_char(b, &p);
        p += sprintf(p, "\": %d", b);
    }
    p += sprintf(p, "%s%s}", *extra ? ", " : "", extra);
    write_bytes(tmp_path("encoder.json"), json, (size_t)(p - json));
    free(json);
    write_bytes(tmp_path("vocab.bpe"), merges, strlen(merges));
}

static void expect_load_error(int status, const char *msg)
{
    hg_gpt2bpe *t = (hg_gpt2bpe *)1;
    assert_int_equal(hg_gpt2bpe_load_dir(&t, tmpdir), status);
    assert_null(t);
    if (!strstr(hg_last_error(), msg))
        fail_msg("'%s' lacks '%s'", hg_last_error(), msg);
}

static void test_small_vocab_and_errors(void **state)
{
    (void)state;
    /* "\u0120t" is " t"; "th" and then " th" */
    write_vocab("\"\\u0120t\": 256, \"th\": 257, \"\xc4\xa0th\": 258",
                "#version: 0.2\n\xc4\xa0 t\nt h\n\xc4\xa0 th\n");
    hg_gpt2bpe *t;
    assert_int_equal(hg_gpt2bpe_load_dir(&t, tmpdir), HG_OK);
    assert_int_equal(hg_gpt2bpe_vocab_size(t), 259);
    hg_gpt2_ids ids = {0};
    /* " th": the pair " t" (rank 0) comes before "th" (rank 1), and " t"+"h" has no merge */
    assert_int_equal(hg_gpt2bpe_encode(t, " th th", 6, &ids), HG_OK);
    assert_int_equal(ids.n, 4);
    const int32_t want[] = {256, 'h', 256, 'h'};
    assert_memory_equal(ids.id, want, sizeof want);
    hg_gpt2_ids_free(&ids);
    hg_gpt2bpe_free(t);

    write_vocab("\"th\": 256", "#version: 0.2\nt h\nt  h\n");
    expect_load_error(HG_EFORMAT, "vocab.bpe:3: expected a merge");
    write_vocab("\"th\": 256", "t h\n");
    expect_load_error(HG_EFORMAT, "vocab.bpe:1: expected the header");
    write_vocab("\"th\": 256", "#version: 0.2\nt x\n");
    expect_load_error(HG_EFORMAT, "vocab.bpe:2: the result of the merge is not a token");
    write_vocab("\"th\": 256, \"the\": 257", "#version: 0.2\nth e\nt h\n");
    expect_load_error(HG_EFORMAT, "vocab.bpe:2: the merge uses a token that no earlier");
    write_vocab("\"th\": 256", "#version: 0.2\nt h\nt h\n");
    expect_load_error(HG_EFORMAT, "vocab.bpe:3: the merge makes a token that an earlier");
    write_vocab("\"th\": 255", "#version: 0.2\n");
    expect_load_error(HG_EFORMAT, "token id 255 is repeated");
    write_vocab("\"th\": 300", "#version: 0.2\n");
    expect_load_error(HG_EFORMAT, "token id 300 is not below");
    write_vocab("\"t\\u4e00\": 256", "#version: 0.2\n");
    expect_load_error(HG_EFORMAT, "character outside GPT-2's byte characters");
    write_vocab("\"th\" 256", "#version: 0.2\n");
    expect_load_error(HG_EFORMAT, "expected ':'");
    write_vocab("\"th\": 256,", "#version: 0.2\n");
    expect_load_error(HG_EFORMAT, "expected a string");
    write_vocab("\"th\": 70000", "#version: 0.2\n");
    expect_load_error(HG_EFORMAT, "token id above 65535");
    write_bytes(tmp_path("encoder.json"), "{\"a\": 0}", 8);
    expect_load_error(HG_EFORMAT, "byte 0x00 has no token");
    write_vocab("", "");
    unlink(tmp_path("vocab.bpe"));
    expect_load_error(HG_EIO, "vocab.bpe: cannot open");
    unlink(tmp_path("encoder.json"));
    expect_load_error(HG_EIO, "encoder.json: cannot open");
}

int main(void)
{
    strcpy(tmpdir, "/tmp/hg_gpt2bpe_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_merges_match_gpt2_loop),
        cmocka_unit_test(test_cache_overflow),
        cmocka_unit_test(test_random_bytes_roundtrip),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_tokfile),
        cmocka_unit_test(test_small_vocab_and_errors),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
