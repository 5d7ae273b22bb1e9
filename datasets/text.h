/* text.h - sentence files: UTF-8 text, one sentence a line (the sides of a parallel corpus).
 *
 * A file is read whole and checked before anything sees it: strict UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF, no sequence cut short), no NUL byte, no line longer than
 * the caller's limit. A final line without '\n' counts as a line; a '\r' right before a '\n' (or
 * at the very end) is dropped, so CRLF files read like LF files. Empty lines are kept (an empty
 * sentence). Errors name the file and, for its contents, the line: "FILE:LINE: ...". */
#ifndef HG_DATASETS_TEXT_H
#define HG_DATASETS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The lines of one file: line[i] is NUL-terminated, without its '\n' (or "\r\n"), and points
 * into buf (one allocation). */
typedef struct hg_text_lines {
    int64_t n;
    char **line;
    char *buf;
} hg_text_lines;

/* Read path into *out (zeroed on failure). max_line_bytes > 0 bounds a line's length in bytes
 * (terminator excluded); allow_empty = 0 makes a file without any line an error.
 * Errors: HG_EIO (missing, unreadable, or no regular file's contents: "FILE: cannot open: ...",
 * "FILE: read error: ..."); HG_EINVAL ("FILE:LINE: invalid UTF-8 (KIND) at byte B",
 * "FILE:LINE: NUL byte at byte B", "FILE:LINE: line is N bytes long, more than the limit of L",
 * "FILE: empty file, expected one sentence a line", or a max_line_bytes <= 0); HG_ENOMEM. */
int hg_text_read_lines(hg_text_lines *out, const char *path, int64_t max_line_bytes,
                       int allow_empty);

/* Both sides of a parallel corpus (neither may be empty). Errors: those of hg_text_read_lines,
 * and HG_EINVAL "SRC has N lines but TGT has M" when the line counts differ. Both outputs are
 * zeroed on failure. */
int hg_text_read_parallel(hg_text_lines *src, hg_text_lines *tgt, const char *src_path,
                          const char *tgt_path, int64_t max_line_bytes);

/* Check that buf[0..len) (the contents of the file at path, for messages) is UTF-8 by the rules
 * above, without a NUL byte; lines are not limited. Errors: HG_EINVAL ("FILE:LINE: invalid UTF-8
 * (KIND) at byte B" or "FILE:LINE: NUL byte at byte B", B counted within the line). */
int hg_text_check_utf8(const char *path, const char *buf, size_t len);

/* Release t and zero it (safe on a zeroed struct). */
void hg_text_lines_free(hg_text_lines *t);

#endif
