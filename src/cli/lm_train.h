/* lm_train.h - the language-model subcommands of hgnn-lm. Each receives its own argument vector
 * (argv[0] its name) and returns the program's exit status: 0, 2 for bad input or options (one
 * line "hgnn-lm: ..." on stderr), 3 for a failure after the input was read. */
#ifndef HG_CLI_LM_TRAIN_H
#define HG_CLI_LM_TRAIN_H

/* `hgnn-lm train`: pre-train a decoder-only model on token files (lm_train.c). */
int hg_lm_train_main(int argc, char **argv);
/* `hgnn-lm eval --model DIR`: perplexity of DIR's final model on a token file (lm_eval.c). */
int hg_lm_eval_main(int argc, char **argv);
/* `hgnn-lm generate --model DIR --prompt-ids "..."`: sampled continuation, token ids in and out
 * (lm_eval.c). */
int hg_lm_generate_main(int argc, char **argv);

#endif
