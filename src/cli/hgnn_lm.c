/* hgnn_lm.c - the hgnn-lm program: language modelling with hgnn's models. `hgnn-lm COMMAND
 * [options]` runs one subcommand from the table below. */
#include <stdio.h>
#include <string.h>

#include "hg_config.h"
#include "lm_cli.h"
#include "../hg.h"

typedef struct lm_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} lm_command;

static const lm_command commands[] = {
    {"tokenize", hg_lm_tokenize_main, "a text file to GPT-2 token ids (binary or decimal)"},
    {"detokenize", hg_lm_detokenize_main, "token ids back to the exact text"},
    {"train", hg_lm_train_main, "pre-train an OPT language model on token files"},
    {"eval", hg_lm_eval_main, "perplexity of a trained model on a token file"},
    {"generate", hg_lm_generate_main, "continue a prompt (token ids) with a trained model"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(void)
{
    printf("usage: hgnn-lm COMMAND [options]   (hgnn-lm COMMAND --help for its options)\n\n");
    for (size_t k = 0; k < NCOMMANDS; k++)
        printf("  %-10s %s\n", commands[k].name, commands[k].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "hgnn-lm: a command is needed (see --help)\n");
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hgnn-lm %s\n", HG_VERSION);
        return 0;
    }
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (!strcmp(argv[1], commands[k].name))
            return commands[k].run(argc - 1, argv + 1);
    hg_quoted q;
    fprintf(stderr, "hgnn-lm: unknown command '%s' (see --help)\n", hg_quote(&q, argv[1]));
    return 2;
}
