/* datadir.h - where the bundled data lives: one search for every reader of it (graph datasets,
 * the GPT-2 vocabulary, the language-model corpus). */
#ifndef HG_DATASETS_DATADIR_H
#define HG_DATASETS_DATADIR_H

#include <stddef.h>

/* The folders searched, in order: $HGNN_DATA_DIR (when set and not empty), `local` (the source
 * or the build tree's data folder, fixed at build time), the installed data folder. */
#define HG_DATA_SEARCH_TEXT(local) "$HGNN_DATA_DIR, " local ", " HG_INSTALL_DATA_DIR

/* Writes into buf (len bytes) the first of ROOT/rel, ROOT in the order above, that exists: a
 * folder when want_dir is nonzero, a readable file otherwise. Returns HG_OK; HG_EIO when none
 * does (buf then empty, nothing recorded: the caller says what was missing and what to do);
 * HG_EINVAL (recorded) when a path does not fit in len. */
int hg_data_find(char *buf, size_t len, const char *local, const char *rel, int want_dir);

#endif
