/* bleu_tok.h - the text side of the translation metrics (bleu.c): UTF-8 decoding, Python's
 * notion of whitespace, lowercasing as Python's str.lower() does it, and sacreBLEU's BLEU
 * tokenisers (13a, intl, none, char). Internal to bleu.c; the public API is bleu.h.
 *
 * Every function works on valid UTF-8 (the caller checks with hg_utf8_invalid_at first) and
 * returns HG_OK, HG_ENOMEM or, for a PCRE2 failure, HG_EUNSUPPORTED, with a message recorded. */
#ifndef HG_BLEU_TOK_H
#define HG_BLEU_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "bleu.h"

/* A growable byte buffer, NUL-terminated when it holds text. */
typedef struct hg_mt_buf {
    char *p;
    size_t len, cap;
} hg_mt_buf;

/* Make room for `need` bytes in total (len unchanged). */
int hg_mt_buf_reserve(hg_mt_buf *b, size_t need);
void hg_mt_buf_free(hg_mt_buf *b);

/* What a tokeniser needs between calls: the compiled patterns (intl; and the case-ignorable /
 * cased classes of the final-sigma rule when lowercasing), the lowercasing locale, and scratch. */
typedef struct hg_mt_text {
    hg_bleu_tok kind;
    int lowercase; /* apply str.lower() first */
    void *re[3];   /* intl: the three substitutions (pcre2_code_8 *) */
    void *sigma_re[2]; /* lowercase: case-ignorable and cased classes (pcre2_code_8 *) */
    void *md;      /* pcre2_match_data_8 * */
    void *loc;     /* locale_t of C.UTF-8 (lowercase) */
    hg_mt_buf a, b; /* scratch: each step reads one and writes the other */
} hg_mt_text;

/* Set up for tokeniser `kind` and optional lowercasing. Errors: HG_EINVAL (kind),
 * HG_EUNSUPPORTED (no C.UTF-8 locale for lowercasing, PCRE2 without Unicode), HG_ENOMEM. */
int hg_mt_text_init(hg_mt_text *t, hg_bleu_tok kind, int lowercase);
void hg_mt_text_free(hg_mt_text *t);

/* Decode one code point of valid UTF-8 at s: returns it and advances *s. */
uint32_t hg_utf8_next(const char **s);

/* Whether code point c is whitespace for Python's str.split() / str.strip(). */
int hg_py_isspace(uint32_t c);

/* BLEU's preparation of one segment as sacreBLEU's BLEU does it: optional lowercasing, trailing
 * whitespace stripped, tokenised. *out points into t's scratch (valid until the next call):
 * the tokenised line, whose tokens are its whitespace-separated runs. */
int hg_mt_text_bleu(hg_mt_text *t, const char *s, const char **out);

/* chrF's preparation of one segment: optional lowercasing, then (unless keep_space) every
 * whitespace code point removed; the result as code points in cp (grown as needed, *cap_cp
 * entries), *n of them. */
int hg_mt_text_chars(hg_mt_text *t, const char *s, int keep_space, uint32_t **cp, size_t *cap_cp,
                     size_t *n);

#endif
