/* io.h - small, safe file outputs: .npy matrices, checkpoints of named float32 tensors,
 * directory creation, and a minimal JSON object writer.
 *
 * Every file write is atomic: the bytes go to PATH.tmp, which is flushed, fsync'ed and renamed
 * over PATH (then the directory is fsync'ed), so a crash leaves either the previous PATH or the
 * new one, never a half-written file. On failure PATH.tmp is removed and PATH is untouched.
 * Errors name the path: HG_EIO for system errors (with strerror(errno)), HG_EFORMAT for a
 * malformed file, HG_EINVAL for bad arguments, HG_ENOMEM. */
#ifndef HG_IO_H
#define HG_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- NumPy .npy ---------------------------------------------------------------------------- */

/* Write a row-major float32 matrix `data` (rows, cols) as NumPy .npy format version 1.0:
 * descr '<f4', fortran_order False, shape (rows, cols); the header is space-padded and ends with
 * '\n' so that the data starts at a multiple of 64 bytes. Values are stored little-endian
 * whatever the host order. Atomic (see above).
 * Errors: HG_EINVAL (NULL path, negative sizes, NULL data with rows*cols > 0), HG_EIO. */
int hg_npy_write(const char *path, const float *data, int64_t rows, int64_t cols);

/* Write a text file atomically (see above). Errors: HG_EINVAL (NULL), HG_EIO. */
int hg_text_write(const char *path, const char *text);

/* Write n bytes atomically (see above). Errors: HG_EINVAL (NULL path, or NULL data with n > 0),
 * HG_EIO. */
int hg_file_write(const char *path, const void *data, size_t n);

/* Read a whole file into *buf (malloc'ed, NUL-terminated after its *len bytes; the caller
 * frees it). Errors: HG_EIO ("FILE: cannot open: ...", "FILE: cannot read: ..."), HG_ENOMEM;
 * *buf is NULL on failure. */
int hg_file_read(const char *path, char **buf, size_t *len);

/* FNV-1a 64 of n bytes, continuing from h (start with HG_FNV64_OFFSET): the checksum of
 * checkpoints and of the output directory's manifest (outdir.h). */
#define HG_FNV64_OFFSET UINT64_C(0xcbf29ce484222325)
uint64_t hg_fnv1a64(uint64_t h, const void *data, size_t n);

/* ---- Checkpoints --------------------------------------------------------------------------- */

/* Checkpoint layout, version 2, all integers little-endian:
 *   "HGCKPT1\0"                    8-byte magic
 *   u32 version (HG_CKPT_VERSION)  u32 reserved (0)
 *   u64 meta_len, meta_len bytes   the meta JSON text, no terminating NUL
 *   u64 n_tensors
 *   n_tensors times:
 *     u32 name_len, name bytes (no NUL), u32 dtype (hg_dtype), u64 count, count values
 *   u64 checksum                   FNV-1a 64 of every byte before it (magic included)
 * Version 1 files are still read: u32 n_tensors in place of the reserved word, no u64 n_tensors
 * after the meta, and no dtype (every tensor float32). */
#define HG_CKPT_MAGIC "HGCKPT1"
#define HG_CKPT_VERSION 2u
/* Longest tensor name: a name is a short identifier ("layer3.W"); the bound lets the reader
 * keep a name on the stack and reject a corrupted length early. */
#define HG_CKPT_MAX_NAME 255

/* Element types of a stored tensor: float32 (parameters, moments) and uint64 (counters,
 * generator states, doubles kept bit for bit). */
typedef enum { HG_DTYPE_F32 = 0, HG_DTYPE_U64 = 1 } hg_dtype;
/* Bytes of one element (4 or 8). */
size_t hg_dtype_size(hg_dtype t);

/* One tensor of a checkpoint as the caller sees it. */
typedef struct hg_ckpt_entry {
    const char *name;  /* non-empty, at most HG_CKPT_MAX_NAME bytes, distinct within a list */
    hg_dtype dtype;
    int64_t count;     /* elements */
    int optional;      /* reading only: a file without this tensor is not an error (the tensor
                          is then not delivered) */
} hg_ckpt_entry;

/* Copy entry i's count values into host_dst (writer) / take them from host_src (reader).
 * Return HG_OK or a status code, which aborts the write or read. */
typedef int (*hg_ckpt_get_fn)(void *ctx, int64_t i, void *host_dst);
typedef int (*hg_ckpt_put_fn)(void *ctx, int64_t i, const void *host_src);

/* Write the n tensors e[] (values fetched one at a time through get, into a host buffer the size
 * of the largest) and meta_json (stored verbatim, not validated; NULL stores ""). Atomic (see
 * above). Errors: HG_EINVAL (bad or duplicate names, negative counts, bad dtype), HG_EIO,
 * HG_ENOMEM, and any status get returns. */
int hg_ckpt_save(const char *path, int64_t n, const hg_ckpt_entry *e, hg_ckpt_get_fn get,
                 void *ctx, const char *meta_json);

/* Read the tensors e[] from a version 1 or 2 file: each one present must have the requested
 * dtype and count, and every one not optional must be present. Tensors in the file that are not
 * requested are skipped (their bytes still enter the checksum). The file is checked in full
 * (magic, version, structure, the requested tensors, checksum, nothing after the checksum)
 * before put is called, so a bad file delivers nothing; put then receives each requested
 * tensor found, in file order, from a host buffer.
 * meta (meta_cap bytes, may be NULL with meta_cap 0): receives the meta JSON, NUL-terminated,
 * truncated to meta_cap - 1 bytes if longer; *meta_len (may be NULL) receives its full length.
 * Errors: HG_EIO (cannot open/read), HG_EFORMAT (bad magic, unsupported version, truncated,
 * checksum mismatch, missing tensor, dtype or count mismatch, duplicate tensor, trailing
 * bytes), HG_EINVAL (bad arguments), HG_ENOMEM, and any status put returns. */
int hg_ckpt_load(const char *path, int64_t n, const hg_ckpt_entry *e, hg_ckpt_put_fn put,
                 void *ctx, char *meta, size_t meta_cap, size_t *meta_len);

/* The same for float32 tensors held in host arrays: names[t], data[t] (counts[t] floats; may be
 * NULL when counts[t] == 0). hg_ckpt_read requires every tensor and, on failure, leaves data[]
 * untouched. Errors: as hg_ckpt_save and hg_ckpt_load. */
int hg_ckpt_write(const char *path, int n, const char *const *names, const float *const *data,
                  const int64_t *counts, const char *meta_json);
int hg_ckpt_read(const char *path, int n, const char *const *names, float *const *data,
                 const int64_t *counts, char *meta, size_t meta_cap, size_t *meta_len);

/* ---- Directories --------------------------------------------------------------------------- */

/* Create directory `path` and its missing parents (mode 0777 & ~umask), like `mkdir -p`.
 * An existing directory is success; an existing non-directory is HG_EIO (ENOTDIR).
 * Errors: HG_EINVAL (NULL or empty path), HG_EIO, HG_ENOMEM. */
int hg_mkdir_p(const char *path);

/* ---- A minimal JSON object writer (json.c) ------------------------------------------------ */

/* Builds one flat JSON object `{"key": value, ...}` on a FILE* or into a fixed char buffer.
 * Errors are sticky: the first one is kept in `status` and later calls do nothing, so a caller
 * adds its fields and checks once at hg_json_end. Keys and string values are escaped
 * (", \, control characters); other bytes pass through (UTF-8 expected). No newline is written.
 * Usage:
 *   hg_json j; hg_json_begin_file(&j, stdout);
 *   hg_json_add_str(&j, "dataset", "cora"); hg_json_add_double(&j, "test_f1", f1);
 *   rc = hg_json_end(&j); */
typedef struct hg_json {
    FILE *f;      /* output stream (file mode), or NULL (buffer mode) */
    char *buf;    /* (cap) buffer mode: output, always NUL-terminated */
    size_t cap;   /* buffer capacity in bytes, NUL included */
    size_t len;   /* bytes produced so far (buffer mode: excluding the NUL) */
    int nfields;  /* fields written so far (for the commas) */
    int status;   /* first error, HG_OK if none */
} hg_json;

/* Start an object on `f` (writes "{"). */
void hg_json_begin_file(hg_json *j, FILE *f);
/* Start an object in buf (cap bytes, cap >= 1; writes "{"). Output that does not fit makes
 * hg_json_end return HG_EINVAL; buf then holds a NUL-terminated prefix. */
void hg_json_begin_buf(hg_json *j, char *buf, size_t cap);
/* "key": "escaped value" (NULL value writes null). */
void hg_json_add_str(hg_json *j, const char *key, const char *val);
/* "key": integer. */
void hg_json_add_int(hg_json *j, const char *key, int64_t val);
/* "key": val printed with %.17g (round-trips a double), or null for NaN and +-Inf, which JSON
 * cannot represent. Uses the C locale's decimal point: do not setlocale(LC_NUMERIC, ...). */
void hg_json_add_double(hg_json *j, const char *key, double val);
/* "key": true / false. */
void hg_json_add_bool(hg_json *j, const char *key, int val);
/* "key": raw, inserted verbatim: the caller guarantees raw is one valid JSON value (e.g. a
 * nested object built with another hg_json in a buffer). */
void hg_json_add_raw(hg_json *j, const char *key, const char *raw);
/* Close the object (writes "}") and return the first error: HG_EINVAL (NULL key, buffer too
 * small), HG_EIO (write error on the FILE). Does not fflush the FILE. */
int hg_json_end(hg_json *j);

#endif
