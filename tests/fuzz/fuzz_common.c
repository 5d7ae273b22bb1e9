/* fuzz_common.c - the temporary input file and the checks shared by the harnesses. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/hg.h"

static char tmp_path[64];

static void remove_tmp(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
}

void fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", file, line, what,
            hg_last_error());
    abort();
}

const char *fuzz_write(const uint8_t *data, size_t size)
{
    if (!tmp_path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmp_path, sizeof tmp_path, "%s/hgnn-fuzz-XXXXXX", dir);
        int fd = mkstemp(tmp_path);
        FUZZ_REQUIRE(fd >= 0);
        close(fd);
        atexit(remove_tmp);
    }
    FILE *f = fopen(tmp_path, "wb");
    FUZZ_REQUIRE(f != NULL);
    FUZZ_REQUIRE(fwrite(data, 1, size, f) == size);
    FUZZ_REQUIRE(fclose(f) == 0);
    return tmp_path;
}

void fuzz_check_status(int rc, const char *path, const char *other_path)
{
    if (rc == HG_OK)
        return;
    FUZZ_REQUIRE(rc == HG_EIO || rc == HG_EFORMAT || rc == HG_ENUMERIC || rc == HG_EINVAL ||
                 rc == HG_ENOMEM);
    const char *msg = hg_last_error();
    FUZZ_REQUIRE(strncmp(msg, path, strlen(path)) == 0 ||
                 (other_path && strncmp(msg, other_path, strlen(other_path)) == 0));
    for (const char *p = msg; *p; p++)
        FUZZ_REQUIRE(*p >= 0x20 && *p < 0x7f);
}
