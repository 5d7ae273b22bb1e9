/* datadir.c - the bundled data's search path (contract in datadir.h). */
#include "datadir.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hg_config.h"
#include "../src/hg.h"

int hg_data_find(char *buf, size_t len, const char *local, const char *rel, int want_dir)
{
    if (!buf || len == 0 || !rel)
        return HG_ERRORF(HG_EINVAL, "data search: no path or buffer given");
    const char *roots[3] = {getenv("HGNN_DATA_DIR"), local, HG_INSTALL_DATA_DIR};
    for (int i = 0; i < 3; i++) {
        if (!roots[i] || !roots[i][0])
            continue;
        const int w = snprintf(buf, len, "%s/%s", roots[i], rel);
        if (w < 0 || (size_t)w >= len) {
            buf[0] = '\0';
            return HG_ERRORF(HG_EINVAL, "%s/%s: path too long (%zu bytes at most)", roots[i], rel,
                             len - 1);
        }
        struct stat st;
        if (want_dir ? stat(buf, &st) == 0 && S_ISDIR(st.st_mode) : access(buf, R_OK) == 0)
            return HG_OK;
    }
    buf[0] = '\0';
    return HG_EIO;
}
