/* fuzz_options.c - libFuzzer harness of hgnn-train's option parser (src/cli/options.c, the
 * function the program calls): the input split on NUL bytes is the command line after the
 * program's name. Parsing must end in success, --help/--version, or a documented error with a
 * one-line message, without leaks (libFuzzer's leak check) or undefined behaviour. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/options.h"
#include "../../src/hg.h"
#include "fuzz_common.h"

#define FUZZ_MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) { /* --help and --version print to stdout */
        FUZZ_REQUIRE(freopen("/dev/null", "w", stdout) != NULL);
        quiet = 1;
    }
    char *buf = malloc(size + 1);
    FUZZ_REQUIRE(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[FUZZ_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "hgnn-train";
    for (char *p = buf; p <= buf + size && argc <= FUZZ_MAX_ARGS; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;

    hg_train_options o;
    int rc = hg_train_options_parse(&o, argc, argv);
    if (rc != HG_OK && rc != HG_OPTIONS_DONE) {
        FUZZ_REQUIRE(rc == HG_EINVAL || rc == HG_EIO || rc == HG_EFORMAT || rc == HG_ENOMEM);
        const char *msg = hg_last_error();
        FUZZ_REQUIRE(msg[0] != '\0');
    }
    if (rc == HG_OK) {
        FUZZ_REQUIRE(o.dataset || o.data_dir);
        FUZZ_REQUIRE(o.epochs >= 0 && o.save_every >= 1 && o.dim >= 1);
    }
    hg_train_options_free(&o);
    free(buf);
    return 0;
}
