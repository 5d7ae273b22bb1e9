/* mt_cli.h - the subcommands of hgnn-mt (hgnn_mt.c dispatches on argv[1]). Each one receives
 * its own argument vector (argv[0] its name) and returns the program's exit status: 0, 2 for
 * bad input or options (one line "hgnn-mt: ..." on stderr), 3 for a failure after the input
 * was read. */
#ifndef HG_MT_CLI_H
#define HG_MT_CLI_H

/* `hgnn-mt train`: train a translation model and score it on the test set (mt_train.c). */
int hg_mt_train_main(int argc, char **argv);
/* `hgnn-mt translate --model DIR`: translate standard input (mt_translate.c). */
int hg_mt_translate_main(int argc, char **argv);
/* `hgnn-mt score`: BLEU or chrF of a hypothesis file against a reference file, as sacreBLEU
 * (mt_score.c). */
int hg_mt_score_main(int argc, char **argv);

#endif
