/* test_spm.c - the SentencePiece boundary (datasets/spm.h): models that cannot be read or are
 * not models; training on a slice of Multi30K is deterministic (twice, and with 1 or 2 threads,
 * the same bytes); the saved file, the bytes and the model agree; encoding round-trips the test
 * sentences up to the model's normalisation (nmt_nfkc: NFKC, whitespace runs folded, ends
 * trimmed; characters never seen in training become unk), and for the 8000-piece model of all of
 * train.{de,en} exactly so. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../datasets/spm.h"
#include "../src/hg.h"
#include "hg_config.h"

#define SLICE 2000
#define VOCAB 500

static char dir[4096], path[4200];
static hg_text_lines train_de, train_en, test_de, test_en;
static hg_spm *model; /* trained once on the slice, shared by the tests after test_train */

static void write_lit(const char *p, const void *data, size_t size)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* The message starts with "file:" and is one printable line. */
static void check_msg(const char *file, const char *want)
{
    const char *msg = hg_last_error();
    if (strncmp(msg, file, strlen(file)) != 0 || msg[strlen(file)] != ':' ||
        (want && !strstr(msg, want)))
        fail_msg("want '%s: ...%s...', got '%s'", file, want ? want : "", msg);
    for (const char *p = msg; *p; p++)
        if (!(*p >= 0x20 && *p < 0x7f))
            fail_msg("byte 0x%02x in the message '%s'", (unsigned char)*p, msg);
}

static void test_bad_models(void **state)
{
    (void)state;
    hg_spm *s = (hg_spm *)&s; /* not NULL before: a failure sets it NULL */
    snprintf(path, sizeof path, "%s/missing.model", dir);
    assert_int_equal(hg_spm_load(&s, path), HG_EIO);
    assert_null(s);
    check_msg(path, "cannot open");

    snprintf(path, sizeof path, "%s/garbage.model", dir);
    static const char *garbage[] = {"", "this is no model\n", "\x0a\x05hello", "\xff\xff\xff\xff"};
    for (size_t k = 0; k < sizeof garbage / sizeof garbage[0]; k++) {
        write_lit(path, garbage[k], strlen(garbage[k]));
        assert_int_equal(hg_spm_load(&s, path), HG_EINVAL);
        assert_null(s);
        check_msg(path, "not a SentencePiece model");
        assert_int_equal(hg_spm_load_bytes(&s, garbage[k], strlen(garbage[k])), HG_EINVAL);
        assert_null(s);
    }
    unlink(path);
    assert_int_equal(hg_spm_load(&s, dir), HG_EIO); /* a directory */
    hg_spm_free(NULL);
}

static void test_bad_training(void **state)
{
    (void)state;
    hg_spm *s;
    hg_text_lines none = {0};
    const hg_text_lines *c[2] = {&none, &none};
    assert_int_equal(hg_spm_train(&s, c, 2, VOCAB, 1), HG_EINVAL);
    assert_non_null(strstr(hg_last_error(), "no lines"));
    hg_text_lines tiny = {.n = 3, .line = test_en.line};
    c[0] = &tiny;
    assert_int_equal(hg_spm_train(&s, c, 1, 5000, 1), HG_EINVAL); /* more pieces than text */
    assert_null(s);
    assert_non_null(strstr(hg_last_error(), "Vocabulary size"));
    assert_int_equal(hg_spm_train(&s, c, 1, VOCAB, 0), HG_EINVAL);
}

/* A view of the first n lines. */
static hg_text_lines head(const hg_text_lines *t, int64_t n)
{
    return (hg_text_lines){.n = n, .line = t->line};
}

static void test_train(void **state)
{
    (void)state;
    hg_text_lines de = head(&train_de, SLICE), en = head(&train_en, SLICE);
    const hg_text_lines *corp[2] = {&de, &en};
    hg_spm *again = NULL, *threaded = NULL;
    assert_int_equal(hg_spm_train(&model, corp, 2, VOCAB, 1), HG_OK);
    assert_int_equal(hg_spm_train(&again, corp, 2, VOCAB, 1), HG_OK);
    assert_int_equal(hg_spm_train(&threaded, corp, 2, VOCAB, 2), HG_OK);
    size_t n1, n2, n3;
    const void *b1 = hg_spm_bytes(model, &n1), *b2 = hg_spm_bytes(again, &n2),
               *b3 = hg_spm_bytes(threaded, &n3);
    assert_true(n1 > 1000);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    assert_int_equal(n3, n1); /* the thread count leaves no trace in the bytes */
    assert_memory_equal(b3, b1, n1);
    assert_int_equal(hg_spm_vocab_size(model), VOCAB);
    assert_int_equal(hg_spm_unk(model), 0);
    assert_int_equal(hg_spm_bos(model), 1);
    assert_int_equal(hg_spm_eos(model), 2);
    hg_spm_free(again);
    hg_spm_free(threaded);
}

/* Both sides encode alike through every entry point: save/load, load_bytes, encode_lines and
 * encode one by one. */
static void test_save_load(void **state)
{
    (void)state;
    assert_non_null(model);
    snprintf(path, sizeof path, "%s/m.model", dir);
    assert_int_equal(hg_spm_save(model, path), HG_OK);
    hg_spm *loaded, *from_bytes;
    assert_int_equal(hg_spm_load(&loaded, path), HG_OK);
    size_t n, nl;
    const void *b = hg_spm_bytes(model, &n);
    assert_int_equal(hg_spm_load_bytes(&from_bytes, b, n), HG_OK);
    const void *bl = hg_spm_bytes(loaded, &nl);
    assert_int_equal(nl, n);
    assert_memory_equal(bl, b, n);

    hg_token_corpus c0, c1, c2;
    assert_int_equal(hg_spm_encode_lines(model, &test_de, &c0), HG_OK);
    assert_int_equal(hg_spm_encode_lines(loaded, &test_de, &c1), HG_OK);
    assert_int_equal(hg_spm_encode_lines(from_bytes, &test_de, &c2), HG_OK);
    assert_int_equal(c0.n, test_de.n);
    assert_int_equal(c0.off[0], 0);
    assert_int_equal(c1.off[c1.n], c0.off[c0.n]);
    assert_int_equal(c2.off[c2.n], c0.off[c0.n]);
    assert_memory_equal(c1.off, c0.off, (size_t)(c0.n + 1) * sizeof *c0.off);
    assert_memory_equal(c1.ids, c0.ids, (size_t)c0.off[c0.n] * sizeof *c0.ids);
    assert_memory_equal(c2.ids, c0.ids, (size_t)c0.off[c0.n] * sizeof *c0.ids);
    for (int64_t i = 0; i < c0.n; i++) {
        int32_t *ids;
        int64_t len;
        assert_int_equal(hg_spm_encode(model, test_de.line[i], &ids, &len), HG_OK);
        assert_int_equal(len, c0.off[i + 1] - c0.off[i]);
        assert_true(len > 0);
        assert_memory_equal(ids, c0.ids + c0.off[i], (size_t)len * sizeof *ids);
        for (int64_t j = 0; j < len; j++)
            assert_true(ids[j] >= 0 && ids[j] < VOCAB && ids[j] != 1 && ids[j] != 2);
        free(ids);
    }
    hg_token_corpus_free(&c0);
    hg_token_corpus_free(&c1);
    hg_token_corpus_free(&c2);
    hg_token_corpus_free(&c2); /* zeroed: fine */

    /* on several threads: the same ids as on one (8000 lines: chunks of 2000 and more) */
    hg_text_lines part = head(&train_en, 8000);
    assert_int_equal(hg_spm_encode_lines(model, &part, &c0), HG_OK);
    static const int threads[] = {2, 3, 4};
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(hg_spm_encode_lines_mt(model, &part, threads[k], &c1), HG_OK);
        assert_int_equal(c1.n, c0.n);
        assert_memory_equal(c1.off, c0.off, (size_t)(c0.n + 1) * sizeof *c0.off);
        assert_memory_equal(c1.ids, c0.ids, (size_t)c0.off[c0.n] * sizeof *c0.ids);
        hg_token_corpus_free(&c1);
    }
    hg_token_corpus_free(&c0);
    assert_int_equal(hg_spm_encode_lines_mt(model, &part, 0, &c1), HG_EINVAL);
    hg_spm_free(loaded);
    hg_spm_free(from_bytes);
    unlink(path);

    snprintf(path, sizeof path, "%s/no_dir/m.model", dir);
    assert_int_equal(hg_spm_save(model, path), HG_EIO);
    check_msg(path, NULL);
}

/* Whether every character of s occurs somewhere in the lines (a byte-string search per UTF-8
 * character: slow but simple). */
static int chars_seen(const char *s, const hg_text_lines *a, const hg_text_lines *b)
{
    while (*s) {
        unsigned c = (unsigned char)*s;
        size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        char ch[5] = {0};
        memcpy(ch, s, len);
        int found = 0;
        for (int64_t i = 0; i < a->n && !found; i++)
            found = strstr(a->line[i], ch) != NULL || strstr(b->line[i], ch) != NULL;
        if (!found)
            return 0;
        s += len;
    }
    return 1;
}

/* No tab, no leading, trailing or doubled space: what the normalisation would change in
 * Multi30K's text (its letters are NFKC already). */
static int normal_spaces(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ' || strstr(s, "  ") || strchr(s, '\t'))
        return 0;
    return 1;
}

/* decode(encode(s)) == s for every test sentence that is in normal form and whose characters
 * the slice has seen; a sentence with an unseen character decodes with the unk mark in its
 * place. Most sentences must be of the first kind, or the test says nothing. */
static void test_round_trip(void **state)
{
    (void)state;
    assert_non_null(model);
    hg_text_lines slice_de = head(&train_de, SLICE), slice_en = head(&train_en, SLICE);
    const hg_text_lines *side[2] = {&test_de, &test_en};
    int64_t exact = 0, unk = 0, total = 0;
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < side[k]->n; i++) {
            const char *s = side[k]->line[i];
            int32_t *ids;
            int64_t n;
            char *back;
            assert_int_equal(hg_spm_encode(model, s, &ids, &n), HG_OK);
            assert_int_equal(hg_spm_decode(model, ids, n, &back), HG_OK);
            total++;
            if (chars_seen(s, &slice_de, &slice_en)) {
                assert_true(normal_spaces(s));
                if (strcmp(back, s) != 0)
                    fail_msg("round trip of '%s' gave '%s'", s, back);
                exact++;
            } else {
                int has_unk = 0;
                for (int64_t j = 0; j < n; j++)
                    has_unk |= ids[j] == hg_spm_unk(model);
                assert_true(has_unk);
                assert_non_null(strstr(back, "\xe2\x81\x87")); /* U+2047, the unk mark */
                unk++;
            }
            free(ids);
            free(back);
        }
    print_message("round trip: %lld of %lld test sentences exact, %lld with unseen characters\n",
                  (long long)exact, (long long)total, (long long)unk);
    assert_true(exact >= total * 9 / 10);

    /* what the normalisation does not give back: doubled, leading and trailing spaces, tabs */
    int32_t *ids;
    int64_t n;
    char *back;
    assert_int_equal(hg_spm_encode(model, "  Ein  Mann\tgeht. ", &ids, &n), HG_OK);
    assert_int_equal(hg_spm_decode(model, ids, n, &back), HG_OK);
    assert_string_equal(back, "Ein Mann geht.");
    free(ids);
    free(back);
    assert_int_equal(hg_spm_encode(model, "", &ids, &n), HG_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hg_spm_decode(model, ids, 0, &back), HG_OK);
    assert_string_equal(back, "");
    free(ids);
    free(back);
    int32_t bad = VOCAB;
    assert_int_equal(hg_spm_decode(model, &bad, 1, &back), HG_EINVAL);
    assert_null(back);
    bad = -1;
    assert_int_equal(hg_spm_decode(model, &bad, 1, &back), HG_EINVAL);
}

/* s with tabs and no-break spaces (U+00A0) as spaces, runs of spaces folded to one, no space at
 * either end: what the normalisation changes in Multi30K's text (U+00A0 is the only character
 * of it that NFKC maps to something else). */
static void fold_spaces(const char *s, char *out)
{
    char *o = out;
    for (; *s; s++) {
        char c = *s;
        if (c == '\t')
            c = ' ';
        else if ((unsigned char)s[0] == 0xc2 && (unsigned char)s[1] == 0xa0)
            c = ' ', s++;
        if (c == ' ' && (o == out || o[-1] == ' '))
            continue;
        *o++ = c;
    }
    if (o > out && o[-1] == ' ')
        o--;
    *o = '\0';
}

/* The model the translation program uses: 8000 pieces from all of train.{de,en}. Every
 * sentence of test2016 round-trips exactly, and every training sentence round-trips to its
 * folded form (those with a tab, a no-break space or doubled spaces change; nothing else). */
static void test_full_model(void **state)
{
    (void)state;
    const hg_text_lines *corp[2] = {&train_de, &train_en};
    hg_spm *full;
    assert_int_equal(hg_spm_train(&full, corp, 2, 8000, 2), HG_OK);
    assert_int_equal(hg_spm_vocab_size(full), 8000);
    const hg_text_lines *side[4] = {&test_de, &test_en, &train_de, &train_en};
    int64_t changed = 0;
    char folded[8192];
    for (int k = 0; k < 4; k++) {
        hg_token_corpus c;
        assert_int_equal(hg_spm_encode_lines_mt(full, side[k], 2, &c), HG_OK);
        for (int64_t i = 0; i < c.n; i++) {
            char *back;
            assert_int_equal(hg_spm_decode(full, c.ids + c.off[i], c.off[i + 1] - c.off[i], &back),
                             HG_OK);
            const char *s = side[k]->line[i];
            assert_true(strlen(s) < sizeof folded);
            fold_spaces(s, folded);
            if (k < 2)
                assert_string_equal(back, s);
            else
                assert_string_equal(back, folded);
            changed += strcmp(back, s) != 0;
            free(back);
        }
        hg_token_corpus_free(&c);
    }
    print_message("8000 pieces: %lld of %lld training sentences change (spaces folded)\n",
                  (long long)changed, (long long)(train_de.n + train_en.n));
    assert_true(changed > 0); /* the folding was exercised */
    hg_spm_free(full);
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/hgnn_test_spm_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    char de[4096], en[4096];
    snprintf(de, sizeof de, "%s/multi30k/train.de", HG_SOURCE_DATA_DIR);
    snprintf(en, sizeof en, "%s/multi30k/train.en", HG_SOURCE_DATA_DIR);
    if (hg_text_read_parallel(&train_de, &train_en, de, en, 4096) != HG_OK)
        return -1;
    snprintf(de, sizeof de, "%s/multi30k/test2016.de", HG_SOURCE_DATA_DIR);
    snprintf(en, sizeof en, "%s/multi30k/test2016.en", HG_SOURCE_DATA_DIR);
    if (hg_text_read_parallel(&test_de, &test_en, de, en, 4096) != HG_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hg_spm_free(model);
    hg_text_lines_free(&train_de);
    hg_text_lines_free(&train_en);
    hg_text_lines_free(&test_de);
    hg_text_lines_free(&test_en);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_models), cmocka_unit_test(test_bad_training),
        cmocka_unit_test(test_train),      cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_full_model),
    };
    return cmocka_run_group_tests_name("spm", tests, setup, teardown) ? 1 : 0;
}
