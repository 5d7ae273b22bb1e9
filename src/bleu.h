/* bleu.h - BLEU and chrF as sacreBLEU 2.6.0 computes them, for translation outputs.
 *
 * Segments are UTF-8 C strings, one hypothesis against one reference. A scorer (hg_bleu,
 * hg_chrf) holds the tokeniser and scratch space and is reused across segments and corpora:
 * scoring allocates only while its buffers grow to the longest segment seen.
 *
 * What matches sacreBLEU (BLEU(...).corpus_score(hyps, [refs]), sentence_bleu, CHRF()):
 *   - preprocessing: optional lowercasing (Python's str.lower()), trailing whitespace stripped
 *     (BLEU), the 13a / intl / none / char tokenisers, whitespace as Python's str.split();
 *   - statistics: clipped n-gram matches counted on exact n-grams (no hashing collisions), per
 *     segment, summed over the corpus;
 *   - the scores: the same floating-point operations in the same order.
 * Where the Unicode data comes from: lowercasing uses the C library's C.UTF-8 case tables (plus
 * Python's special cases, U+0130 and the final sigma), the intl tokeniser PCRE2's Unicode
 * categories. Both follow their library's Unicode version, as sacreBLEU follows Python's and the
 * regex module's: characters assigned in one version and not the other can tokenise or
 * lowercase differently (with glibc 2.36 and PCRE2 10.42, every code point assigned in Python
 * 3.11's Unicode 14 lowercases and tokenises as sacreBLEU does).
 *
 * Errors: HG_EINVAL (bad options or arguments), HG_EFORMAT (a segment that is not valid
 * UTF-8: the message gives the segment index and byte offset), HG_ENOMEM, HG_EUNSUPPORTED
 * (no C.UTF-8 locale for lowercasing, PCRE2 failure). Nothing exits. */
#ifndef HG_BLEU_H
#define HG_BLEU_H

#include <stddef.h>
#include <stdint.h>

/* The offset of the first byte of s[0..n) that does not begin or continue a valid UTF-8
 * sequence as Python's strict decoder defines it (no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence), or -1 when all of it is valid. A NUL byte is valid
 * UTF-8 but cannot be in a C string segment: callers reading files reject it themselves. */
int64_t hg_utf8_invalid_at(const char *s, size_t n);

/* ---- BLEU ---------------------------------------------------------------------------------- */

#define HG_BLEU_MAX_ORDER 4

typedef enum {
    HG_BLEU_TOK_13A,  /* mteval-v13a (sacreBLEU's default) */
    HG_BLEU_TOK_INTL, /* mteval-v14 international: Unicode punctuation and symbols */
    HG_BLEU_TOK_NONE, /* whitespace only */
    HG_BLEU_TOK_CHAR  /* every non-whitespace character a token */
} hg_bleu_tok;

typedef enum {
    HG_BLEU_SMOOTH_EXP,   /* NIST's: the k-th order without a match counts 1 / (2^k total) */
    HG_BLEU_SMOOTH_NONE,
    HG_BLEU_SMOOTH_FLOOR, /* an order without a match counts smooth_value / total */
    HG_BLEU_SMOOTH_ADD_K  /* smooth_value added to the matches and totals of orders 2.. */
} hg_bleu_smooth;

typedef struct hg_bleu_opts {
    hg_bleu_tok tokenize;
    int lowercase;
    int max_order;          /* 1..HG_BLEU_MAX_ORDER */
    hg_bleu_smooth smooth;
    double smooth_value;    /* floor and add-k; negative: sacreBLEU's default (0.1, 1) */
    int effective_order;    /* average over the orders with n-grams only (sentence BLEU) */
} hg_bleu_opts;

/* sacreBLEU's corpus defaults: 13a, mixed case, order 4, exp smoothing, no effective order. */
void hg_bleu_opts_corpus(hg_bleu_opts *o);
/* sacrebleu.sentence_bleu's: the corpus defaults with effective order. */
void hg_bleu_opts_sentence(hg_bleu_opts *o);

/* A segment's or a corpus's sufficient statistics (sums over segments). */
typedef struct hg_bleu_stats {
    int64_t sys_len, ref_len;
    int64_t counts[HG_BLEU_MAX_ORDER]; /* clipped matches of each order */
    int64_t totals[HG_BLEU_MAX_ORDER]; /* hypothesis n-grams of each order */
} hg_bleu_stats;

typedef struct hg_bleu_result {
    double score;                          /* 0..100 */
    int64_t counts[HG_BLEU_MAX_ORDER];     /* as in the statistics (add-k's additions are not
                                              shown here, unlike sacreBLEU's mutated lists) */
    int64_t totals[HG_BLEU_MAX_ORDER];
    double precisions[HG_BLEU_MAX_ORDER];  /* percent; orders above max_order are 0 */
    double bp;                             /* brevity penalty */
    int64_t sys_len, ref_len;
} hg_bleu_result;

typedef struct hg_bleu hg_bleu;

/* A scorer for options o (copied). Errors: HG_EINVAL (bad option), HG_EUNSUPPORTED, HG_ENOMEM. */
int hg_bleu_create(hg_bleu **out, const hg_bleu_opts *o);
void hg_bleu_free(hg_bleu *b);

/* The statistics of one segment (st overwritten). Errors: HG_EINVAL (NULL), HG_EFORMAT (invalid
 * UTF-8), HG_ENOMEM, HG_EUNSUPPORTED. */
int hg_bleu_segment(hg_bleu *b, const char *hyp, const char *ref, hg_bleu_stats *st);

/* The score of summed statistics under options o (sacreBLEU's compute_bleu). */
void hg_bleu_compute(const hg_bleu_opts *o, const hg_bleu_stats *st, hg_bleu_result *out);

/* Corpus BLEU of n segments (n may be 0: every field 0, score 0). Errors: as hg_bleu_segment;
 * HG_EFORMAT names the segment ("hypothesis 12: invalid UTF-8 at byte 3"). */
int hg_bleu_corpus(hg_bleu *b, const char *const *hyps, const char *const *refs, int64_t n,
                   hg_bleu_result *out);

/* Sentence BLEU: hg_bleu_corpus of one segment (use hg_bleu_opts_sentence's options for
 * sacrebleu.sentence_bleu). */
int hg_bleu_sentence(hg_bleu *b, const char *hyp, const char *ref, hg_bleu_result *out);

/* sacreBLEU's signature of options o with one reference, e.g.
 * "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", into buf (cap bytes).
 * Errors: HG_EINVAL (buffer too small; 96 bytes always suffice). */
int hg_bleu_signature(const hg_bleu_opts *o, char *buf, size_t cap);

/* ---- chrF ---------------------------------------------------------------------------------- */

#define HG_CHRF_MAX_ORDER 6

typedef struct hg_chrf_opts {
    int char_order;    /* 1..HG_CHRF_MAX_ORDER (6) */
    int beta;          /* recall weight, >= 0 (2) */
    int lowercase;     /* (0) */
    int whitespace;    /* keep whitespace in the character n-grams (0) */
    int eps_smoothing; /* chrF++.py's epsilon smoothing, not sacreBLEU's effective order (0) */
} hg_chrf_opts;

/* sacreBLEU's CHRF() defaults (chrF2): the values in brackets above. Word n-grams (chrF++)
 * are not supported. */
void hg_chrf_opts_default(hg_chrf_opts *o);

/* Per order k (0-based, n-gram length k + 1): hypothesis n-grams (0 when the reference has
 * none of that order), reference n-grams, matches. */
typedef struct hg_chrf_stats {
    int64_t hyp[HG_CHRF_MAX_ORDER], ref[HG_CHRF_MAX_ORDER], match[HG_CHRF_MAX_ORDER];
} hg_chrf_stats;

typedef struct hg_chrf hg_chrf;

/* A scorer for options o (copied). Errors: HG_EINVAL, HG_EUNSUPPORTED, HG_ENOMEM. */
int hg_chrf_create(hg_chrf **out, const hg_chrf_opts *o);
void hg_chrf_free(hg_chrf *c);

/* The statistics of one segment (st overwritten). Errors: as hg_bleu_segment. */
int hg_chrf_segment(hg_chrf *c, const char *hyp, const char *ref, hg_chrf_stats *st);

/* The chrF score (0..100) of summed statistics under options o. */
double hg_chrf_compute(const hg_chrf_opts *o, const hg_chrf_stats *st);

/* Corpus chrF of n segments (0 for n = 0); *st_out (may be NULL) receives the summed
 * statistics. Errors: as hg_bleu_corpus. */
int hg_chrf_corpus(hg_chrf *c, const char *const *hyps, const char *const *refs, int64_t n,
                   double *score, hg_chrf_stats *st_out);

/* sacreBLEU's signature of options o with one reference, e.g.
 * "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0". Errors: as
 * hg_bleu_signature. */
int hg_chrf_signature(const hg_chrf_opts *o, char *buf, size_t cap);

#endif
