/* linear_args.h - the options of the linear maps (sst/), shared by every training program:
 *   --method full|lora|relora|sst  --rank R  --lora-alpha A  --sst-steps T3  --sst-warmup N
 *   --sst-rounds-iters T2  --sst-sampling sigma|mixed|uniform|top  --sst-renorm 0|1 */
#ifndef HG_CLI_LINEAR_ARGS_H
#define HG_CLI_LINEAR_ARGS_H

#include "../../sst/linear.h"

/* When key is one of the options above: *matched = 1 and its value parsed into o (HG_OK, or
 * HG_EINVAL with args.h's message). Otherwise *matched = 0 and HG_OK. */
int hg_arg_linear(hg_linear_opts *o, const char *key, const char *val, int *matched);

/* The help text of these options (defaults as given), for a program's usage. */
void hg_arg_linear_usage(const char *t3, const char *warmup, const char *t2);

#endif
