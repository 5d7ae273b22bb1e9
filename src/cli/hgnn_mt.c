/* hgnn_mt.c - the hgnn-mt program: machine translation with hgnn's models. `hgnn-mt COMMAND
 * [options]` runs one subcommand from the table below. */
#include <stdio.h>
#include <string.h>

#include "hg_config.h"
#include "mt_cli.h"
#include "../hg.h"

typedef struct mt_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} mt_command;

static const mt_command commands[] = {
    {"train", hg_mt_train_main, "train a translation model, then score it on the test set"},
    {"translate", hg_mt_translate_main, "translate standard input with a trained model"},
    {"score", hg_mt_score_main, "BLEU or chrF of a translation against its reference"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(void)
{
    printf("usage: hgnn-mt COMMAND [options]   (hgnn-mt COMMAND --help for its options)\n\n");
    for (size_t k = 0; k < NCOMMANDS; k++)
        printf("  %-10s %s\n", commands[k].name, commands[k].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "hgnn-mt: a command is needed (see --help)\n");
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hgnn-mt %s\n", HG_VERSION);
        return 0;
    }
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (!strcmp(argv[1], commands[k].name))
            return commands[k].run(argc - 1, argv + 1);
    hg_quoted q;
    fprintf(stderr, "hgnn-mt: unknown command '%s' (see --help)\n", hg_quote(&q, argv[1]));
    return 2;
}
