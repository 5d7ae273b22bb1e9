/* mt_cli.h - the subcommands of hgnn-mt (hgnn_mt.c dispatches argv[1] to them; each gets argv
 * from the subcommand's name on and returns the exit status: 0, 2 for bad input or options,
 * 3 for a run that failed after it started). */
#ifndef HG_CLI_MT_CLI_H
#define HG_CLI_MT_CLI_H

int hg_mt_train_main(int argc, char **argv);     /* mt_train.c */
int hg_mt_translate_main(int argc, char **argv); /* mt_translate.c */

#endif
