/* linear_args.c - the linear maps' options (contract in linear_args.h). */
#include "linear_args.h"

#include <stdio.h>
#include <string.h>

#include "../hg.h"
#include "args.h"

int hg_arg_linear(hg_linear_opts *o, const char *key, const char *val, int *matched)
{
    int rc = HG_OK;
    *matched = 1;
#define IS(name) (!strcmp(key, name))
    if (IS("--method")) {
        int m = hg_linear_method_parse(val);
        if (m < 0)
            return hg_arg_bad(key, val, "is not a method (full, lora, relora, sst)");
        o->method = (hg_linear_method)m;
    } else if (IS("--rank"))
        rc = hg_arg_int(key, val, 1, 1 << 20, &o->rank);
    else if (IS("--lora-alpha"))
        rc = hg_arg_float(key, val, 1e-6, 1e6, &o->lora_alpha);
    else if (IS("--sst-steps"))
        rc = hg_arg_int(key, val, 1, 1 << 30, &o->steps_per_iter);
    else if (IS("--sst-warmup"))
        rc = hg_arg_int(key, val, 0, 1 << 30, &o->warmup);
    else if (IS("--sst-rounds-iters"))
        rc = hg_arg_int(key, val, 0, 1 << 30, &o->iters_per_round);
    else if (IS("--sst-sampling")) {
        int s = hg_sst_sampling_parse(val);
        if (s < 0)
            return hg_arg_bad(key, val, "is not a sampling rule (sigma, mixed, uniform, top)");
        o->sampling = (hg_sst_sampling)s;
    } else if (IS("--sst-product")) {
        int s = hg_sst_product_parse(val);
        if (s < 0)
            return hg_arg_bad(key, val, "is not a product path (auto, dense, factored)");
        o->product = (hg_sst_product)s;
    } else if (IS("--sst-renorm"))
        rc = hg_arg_bool(key, val, &o->renorm);
    else
        *matched = 0;
#undef IS
    return rc;
}

void hg_arg_linear_usage(const char *t3, const char *warmup, const char *t2)
{
    printf("linear maps (sst/):\n"
           "  --method full|lora|relora|sst   how every weight is trained (full)\n"
           "  --rank R  --lora-alpha A (= R)\n"
           "  --sst-steps T3 (%s)    steps per SST iteration / ReLoRA merge\n"
           "  --sst-warmup N (%s)    lr warm-up steps at the start of each iteration\n"
           "  --sst-rounds-iters T2   iterations per SST round (%s)\n"
           "  --sst-sampling sigma|mixed|uniform|top (sigma)   --sst-renorm 0|1 (1)\n"
           "  --sst-product auto|dense|factored (auto)   SST through W rebuilt each step, or\n"
           "      through its factors (fewer operations for few rows per call)\n",
           t3, warmup, t2);
}
