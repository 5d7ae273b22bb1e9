/* lm_cli.h - the subcommands of hgnn-lm (hgnn_lm.c dispatches on argv[1]). Each one receives
 * its own argument vector (argv[0] its name) and returns the program's exit status: 0, 2 for
 * bad input or options (one line "hgnn-lm: ..." on stderr), 3 for a failure after the input
 * was read (such as an output that cannot be written). */
#ifndef HG_LM_CLI_H
#define HG_LM_CLI_H

/* `hgnn-lm tokenize --in TEXT --out TOKENS`: GPT-2 token ids of a text file, as a token file
 * (gpt2bpe.h) or decimal ids (lm_tokenize.c). */
int hg_lm_tokenize_main(int argc, char **argv);
/* `hgnn-lm detokenize --in TOKENS --out TEXT`: the exact bytes back (lm_tokenize.c). */
int hg_lm_detokenize_main(int argc, char **argv);

/* `hgnn-lm train`: pre-train a decoder-only model (lm_train.c). */
int hg_lm_train_main(int argc, char **argv);
/* `hgnn-lm eval --model DIR`: perplexity of DIR's final model on a text or token file, optionally
 * after singular-value pruning (lm_eval.c). */
int hg_lm_eval_main(int argc, char **argv);
/* `hgnn-lm generate --model DIR --prompt TEXT`: a sampled continuation (lm_eval.c). */
int hg_lm_generate_main(int argc, char **argv);

#endif
