/* hgnn_lm_train.c - a stand-in for the hgnn-lm program's command table while its language-model
 * subcommands are built separately: `hgnn-lm-train train|eval|generate [options]`. */
#include <stdio.h>
#include <string.h>

#include "lm_train.h"
#include "../hg.h"

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {{"train", hg_lm_train_main},
                    {"eval", hg_lm_eval_main},
                    {"generate", hg_lm_generate_main}};
    if (argc < 2) {
        fprintf(stderr, "hgnn-lm: a command is needed (train, eval, generate)\n");
        return 2;
    }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (!strcmp(argv[1], commands[k].name))
            return commands[k].run(argc - 1, argv + 1);
    hg_quoted q;
    fprintf(stderr, "hgnn-lm: unknown command '%s' (train, eval, generate)\n",
            hg_quote(&q, argv[1]));
    return 2;
}
