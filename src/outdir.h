/* outdir.h - an output directory whose files form one consistent set after a crash or a kill.
 *
 * The files of the set (HG_OUTDIR_FILES: args.txt, checkpoint.bin, embeddings.npy, last.ckpt,
 * result.json, and log.csv up to a given length) are replaced together in three steps:
 *   1. every file that changes is written (atomically, see io.h) as NAME.new;
 *   2. DIR/manifest.json is written atomically: the run's id, the step, and for each file of the
 *      set its size and FNV-1a 64 checksum (log.csv: of its first `size` bytes, the lines
 *      written up to the save; later lines may follow them). This rename is the commit;
 *   3. each NAME.new is renamed over NAME.
 * A kill before step 2 leaves the previous manifest, which still matches the files; a kill
 * during step 3 leaves NAME.new files that match the new manifest, whose renames
 * hg_outdir_recover completes. A reader verifies a directory against its manifest
 * (scripts/check_outdir.py): each listed file, or its NAME.new, has the listed size and
 * checksum. A directory without a manifest holds no saved set. */
#ifndef HG_OUTDIR_H
#define HG_OUTDIR_H

#include <stddef.h>
#include <stdint.h>

/* Suffix of a file written for the next set and not yet committed. */
#define HG_OUTDIR_NEW ".new"
#define HG_OUTDIR_MANIFEST "manifest.json"

/* buf = DIR/NAME.new, where a file of the next set is written. */
void hg_outdir_staged(char *buf, size_t cap, const char *dir, const char *name);

/* Commit the set: manifest.json for run `run_id` at `step` (the staged NAME.new files, the other
 * files of the set as they are, log.csv's first log_bytes bytes), then the renames.
 * Errors: HG_EIO (naming the file and the system's reason), HG_ENOMEM. */
int hg_outdir_commit(const char *dir, const char *run_id, int64_t step, uint64_t log_bytes);

/* Before a resume: complete the renames of a committed set (NAME.new matching the manifest) and
 * remove staged files that were never committed. run_id (cap bytes) receives the manifest's run
 * id when there is one (it is left as it is otherwise). Errors: HG_EIO. */
int hg_outdir_recover(const char *dir, char *run_id, size_t cap);

/* Remove the staged files (after a failed save: the set stays the committed one).
 * Errors: HG_EIO. */
int hg_outdir_discard(const char *dir);

/* Before a fresh run into an existing directory: end the previous run's set so that nothing of
 * it can pass for a set of the new run, through states that each check as consistent (a kill
 * at any point leaves the old set whole, or no set): complete an interrupted commit, move the
 * set's files but the log to NAME.new (the manifest still finds them there), remove the
 * manifest, then the staged files and the log. Missing files are not an error. Errors: HG_EIO. */
int hg_outdir_reset(const char *dir);

#endif
