/* rng.h - seeded pseudo-random numbers (xoshiro256**, seeded through splitmix64).
 * Same seed, same sequence on every platform: all randomness in hgnn flows through here. */
#ifndef HG_RNG_H
#define HG_RNG_H

#include <stdint.h>

typedef struct hg_rng {
    uint64_t s[4];
} hg_rng;

void hg_rng_seed(hg_rng *r, uint64_t seed);
uint64_t hg_rng_u64(hg_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double hg_rng_uniform(hg_rng *r);
/* Uniform integer in [0, n), unbiased (rejection); n > 0. */
uint64_t hg_rng_below(hg_rng *r, uint64_t n);
/* Standard normal (Box-Muller, no caching so the stream position is explicit). */
double hg_rng_normal(hg_rng *r);
/* Fisher-Yates shuffle of n int64 values. */
void hg_rng_shuffle_i64(hg_rng *r, int64_t *a, int64_t n);
/* Derive an independent seed for a named sub-stream (e.g. per layer). */
uint64_t hg_rng_derive(uint64_t seed, uint64_t stream);

#endif
