/* outdir.c - the output directory's set of files and its manifest (see outdir.h). */
#include "outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hg.h"
#include "io.h"

/* The files of the set, log.csv (a prefix of it) last. */
static const char *const set_files[] = {"args.txt", "checkpoint.bin", "embeddings.npy",
                                        "last.ckpt", "result.json", "log.csv"};
#define NSET ((int)(sizeof set_files / sizeof set_files[0]))
#define LOG_FILE (NSET - 1)

void hg_outdir_staged(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s%s", dir, name, HG_OUTDIR_NEW);
}

static void path_of(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Size and checksum of the file's first `limit` bytes (all of it with UINT64_MAX). Returns 0,
 * -1 when it does not exist, or HG_EIO. */
static int sum_file(const char *path, uint64_t limit, uint64_t *size, uint64_t *hash)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? -1 : HG_ERRORF(HG_EIO, "%s: cannot read: %s", path,
                                                 strerror(errno));
    unsigned char b[16384];
    uint64_t h = HG_FNV64_OFFSET, n = 0;
    size_t m;
    while (n < limit && (m = fread(b, 1, (size_t)HG_MIN((uint64_t)sizeof b, limit - n), f)) > 0) {
        h = hg_fnv1a64(h, b, m);
        n += m;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return HG_ERRORF(HG_EIO, "%s: read error", path);
    *size = n;
    *hash = h;
    return 0;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int hg_outdir_commit(const char *dir, const char *run_id, int64_t step, uint64_t log_bytes)
{
    char text[4096], path[4200];
    int staged[NSET] = {0};
    size_t len = (size_t)snprintf(text, sizeof text,
                                  "{\"format\": \"hgnn-outdir/1\", \"run\": \"%s\", \"step\": %lld,"
                                  "\n \"files\": [", run_id, (long long)step);
    int first = 1;
    for (int i = 0; i < NSET; i++) {
        uint64_t size = 0, hash = 0;
        int rc = -1;
        if (i != LOG_FILE) {
            hg_outdir_staged(path, sizeof path, dir, set_files[i]);
            rc = sum_file(path, UINT64_MAX, &size, &hash);
            staged[i] = rc == 0;
        }
        if (rc < 0) {
            path_of(path, sizeof path, dir, set_files[i]);
            rc = sum_file(path, i == LOG_FILE ? log_bytes : UINT64_MAX, &size, &hash);
        }
        if (rc > 0)
            return rc;
        if (rc < 0)
            continue;
        if (i == LOG_FILE && size != log_bytes)
            return HG_ERRORF(HG_EIO, "%s: %" PRIu64 " bytes, %" PRIu64 " expected", path, size,
                             log_bytes);
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "%s\n  {\"name\": \"%s\", \"size\": %" PRIu64
                                ", \"fnv1a64\": \"%016" PRIx64 "\"%s}",
                                first ? "" : ",", set_files[i], size, hash,
                                i == LOG_FILE ? ", \"prefix\": true" : "");
        first = 0;
    }
    snprintf(text + len, sizeof text - len, "\n]}\n");
    path_of(path, sizeof path, dir, HG_OUTDIR_MANIFEST);
    int rc = hg_text_write(path, text);
    if (rc != HG_OK)
        return rc;
    for (int i = 0; i < NSET; i++) {
        if (!staged[i])
            continue;
        char from[4200];
        hg_outdir_staged(from, sizeof from, dir, set_files[i]);
        path_of(path, sizeof path, dir, set_files[i]);
        if (rename(from, path) != 0)
            return HG_ERRORF(HG_EIO, "%s: cannot rename %s over it: %s", path, from,
                             strerror(errno));
    }
    sync_dir(dir);
    return HG_OK;
}

/* Remove DIR/NAME (+ suffix); a missing file is fine. */
static int remove_file(const char *dir, const char *name, const char *suffix)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    if (unlink(path) != 0 && errno != ENOENT)
        return HG_ERRORF(HG_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return HG_OK;
}

int hg_outdir_recover(const char *dir, char *run_id, size_t cap)
{
    char path[4200], line[512];
    path_of(path, sizeof path, dir, HG_OUTDIR_MANIFEST);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        char id[40];
        const char *r = strstr(line, "\"run\": \"");
        if (r && sscanf(r, "\"run\": \"%39[^\"]", id) == 1)
            snprintf(run_id, cap, "%s", id);
        char name[64];
        unsigned long long size;
        uint64_t want, got_size, got_hash;
        const char *p = strstr(line, "{\"name\": \"");
        if (!p || sscanf(p, "{\"name\": \"%63[^\"]\", \"size\": %llu, \"fnv1a64\": \"%" SCNx64,
                         name, &size, &want) != 3)
            continue;
        char from[4200];
        hg_outdir_staged(from, sizeof from, dir, name);
        if (sum_file(from, UINT64_MAX, &got_size, &got_hash) == 0 && got_size == size &&
            got_hash == want) {
            path_of(path, sizeof path, dir, name);
            if (rename(from, path) != 0) {
                fclose(f);
                return HG_ERRORF(HG_EIO, "%s: cannot rename %s over it: %s", path, from,
                                 strerror(errno));
            }
        }
    }
    if (f)
        fclose(f);
    sync_dir(dir);
    return hg_outdir_discard(dir);
}

int hg_outdir_discard(const char *dir)
{
    for (int i = 0; i < NSET; i++) {
        int rc = remove_file(dir, set_files[i], HG_OUTDIR_NEW);
        if (rc != HG_OK)
            return rc;
    }
    return HG_OK;
}

/* DIR/NAME -> DIR/NAME.new when it exists. */
static int stage_file(const char *dir, const char *name)
{
    char from[4200], to[4200];
    path_of(from, sizeof from, dir, name);
    hg_outdir_staged(to, sizeof to, dir, name);
    if (rename(from, to) != 0 && errno != ENOENT)
        return HG_ERRORF(HG_EIO, "%s: cannot rename it to %s: %s", from, to, strerror(errno));
    return HG_OK;
}

int hg_outdir_reset(const char *dir)
{
    /* Every state on the way checks as a consistent directory: the previous set is made whole
     * first (an interrupted commit completed), then each of its files but the log moves to
     * NAME.new, where its manifest still finds it; removing the manifest is the one step that
     * ends the set; what is left (staged files, the log) goes last. */
    char run[40] = "";
    int rc = hg_outdir_recover(dir, run, sizeof run);
    for (int i = 0; i < NSET && rc == HG_OK; i++)
        if (i != LOG_FILE)
            rc = stage_file(dir, set_files[i]);
    if (rc == HG_OK) {
        sync_dir(dir);
        rc = remove_file(dir, HG_OUTDIR_MANIFEST, "");
    }
    for (int i = 0; i < NSET && rc == HG_OK; i++)
        if ((rc = remove_file(dir, set_files[i], HG_OUTDIR_NEW)) == HG_OK)
            rc = remove_file(dir, set_files[i], "");
    if (rc == HG_OK)
        sync_dir(dir);
    return rc;
}
