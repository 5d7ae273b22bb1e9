/* internal.h - what the files of datasets/ share, not part of the public API (dataset.h):
 * readers.c (the file parsers, one bounded line reader, one way to quote input in messages),
 * split.c (node and edge splits, negative sampling) and dataset.c (the loader). The fuzz
 * harnesses (tests/fuzz/) call the parsers through these entry points.
 *
 * Every parser sizes its buffers by what it has read, never by a count the file declares, and
 * rejects a line holding a control character (NUL included) or longer than HG_READER_MAX_LINE:
 * memory stays proportional to the input, and no later stage can see bytes that the validation
 * did not. Errors name the file and line (see dataset.h for the codes). */
#ifndef HG_DATASETS_INTERNAL_H
#define HG_DATASETS_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "dataset.h"

/* Longest line (bytes, without its terminator) any of the formats may hold: real lines are a
 * few dozen bytes; a longer one is binary or corrupt input. */
#define HG_READER_MAX_LINE (1 << 16)

/* ------------------------------------------------------------------------------------------ */
/* text input                                                                                   */

/* A text file read line by line; `bytes` is its size (-1 when it is no regular file). */
typedef struct hg_text {
    FILE *f;
    const char *path;
    char *buf;
    size_t cap;
    int64_t lineno; /* lines read so far (1-based number of the current line) */
    int64_t bytes;
} hg_text;

/* Open path for reading. HG_EIO (cannot open). */
int hg_text_open(hg_text *t, const char *path);
/* The next line in *line (terminator and trailing blanks removed, NUL-terminated, valid until
 * the next call), or *line = NULL at the end of the file. HG_EIO (read error), HG_EFORMAT (a
 * control character other than a tab, or a line longer than HG_READER_MAX_LINE). */
int hg_text_next(hg_text *t, char **line);
void hg_text_close(hg_text *t); /* safe on a zeroed or closed struct */


/* Regular file at path. */
int hg_ds_file_exists(const char *path);

/* Ascending order of int64_t values (qsort). */
int hg_ds_cmp_i64(const void *a, const void *b);

/* Key of the unordered pair {u, v}: min * n + max. */
static inline int64_t hg_ds_pair_key(int64_t u, int64_t v, int64_t n)
{
    return u < v ? u * n + v : v * n + u;
}

/* ------------------------------------------------------------------------------------------ */
/* parsers (readers.c)                                                                         */

/* labels.txt: one integer per line, -1 or a class in [0, HG_DATASET_MAX_CLASSES). *labels is
 * malloc'd (free()). HG_EIO, HG_EFORMAT, HG_EINVAL (no lines, more than INT32_MAX), HG_ENOMEM. */
int hg_ds_read_labels(const char *path, int32_t **labels, int64_t *n, int32_t *nclasses);

/* features.mtx: Matrix Market coordinate real/integer/pattern general with n rows and at most
 * HG_DATASET_MAX_FEATURES columns -> CSR, columns sorted, duplicates summed. labels_path is named
 * when the row count disagrees with n. HG_EIO, HG_EFORMAT, HG_ENUMERIC, HG_EINVAL, HG_ENOMEM. */
int hg_ds_read_mtx(hg_csr *out, const char *path, int64_t n, const char *labels_path);

/* self_loops.txt (optional: absent = none): node ids in [0, n); sets flag[id]. HG_EIO,
 * HG_EFORMAT, HG_EINVAL (out of range). */
int hg_ds_read_self_loops(uint8_t *flag, const char *path, int64_t n);

/* graph.edges: 'u v' per line, ids in [0, n) (labels_path is named as the source of n). Lines
 * 'u u' set self_loop[u]; *keys (malloc'd, free()) gets the sorted unique pair keys of the
 * other lines, *m their count. HG_EIO, HG_EFORMAT, HG_EINVAL (out of range, no edges),
 * HG_ENOMEM. */
int hg_ds_read_edges(int64_t **keys, int64_t *m, uint8_t *self_loop, const char *path, int64_t n,
                     const char *labels_path);

/* split.txt: exactly n lines of train, val, test or none -> which[i] = 0, 1, 2, 3 and cnt[] the
 * count of each. HG_EIO, HG_EFORMAT, HG_EINVAL (line count). */
int hg_ds_read_split(uint8_t *which, int64_t cnt[4], const char *path, int64_t n);

/* ------------------------------------------------------------------------------------------ */
/* splits and negatives (split.c)                                                              */

/* NC: the split file at path, or a random split (dataset.h: val_prop, test_prop, seed). */
int hg_ds_nc_split_file(hg_dataset *d, const char *path);
int hg_ds_nc_split_random(hg_dataset *d, double val_prop, double test_prop, uint64_t seed,
                          int reference_groups);
/* LP: split the m sorted edge keys, draw val/test negatives; *train_keys: the sorted training
 * keys (hg_free). */
int hg_ds_lp_split(hg_dataset *d, int64_t **train_keys, const int64_t *keys, int64_t m,
                   const hg_dataset_opts *o);
/* The sampler's hash set and filter over d->neg_excl (d->n_neg_excl keys). HG_ENOMEM. */
int hg_ds_neg_excl_index(hg_dataset *d);

#endif
