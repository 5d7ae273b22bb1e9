/* fuzz_common.h - shared by the libFuzzer harnesses of the dataset parsers (tests/fuzz/).
 *
 * Each harness writes the input to one temporary file (the parsers read paths, and checking a
 * declared count against the file's size is part of what is under test), calls one parser, and
 * checks what came back: on success the parsed structure's invariants, on failure the message
 * (one line naming the file, printable ASCII only, nothing of the input echoed raw). A broken
 * check aborts, which libFuzzer reports as a crash with the input saved. */
#ifndef HG_FUZZ_COMMON_H
#define HG_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Write data to the harness's temporary file and return its path (the same on every call). */
const char *fuzz_write(const uint8_t *data, size_t size);

/* Check a parser's status: HG_OK, or a documented error whose message starts with one of the
 * given paths (NULL = only path) and holds printable ASCII only. */
void fuzz_check_status(int rc, const char *path, const char *other_path);

/* abort() with a message when cond is false (kept in release builds, unlike assert). */
#define FUZZ_REQUIRE(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))
void fuzz_fail(const char *what, const char *file, int line) __attribute__((noreturn));

#endif
