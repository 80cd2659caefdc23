/* synth/rng: the room's pseudo-random numbers. The generator must give the
 * same samples for a seed on every machine and with any chunking, so it
 * carries its own PRNG (xoshiro256**, seeded by splitmix64, both from
 * Blackman and Vigna) instead of rand(), whose sequence is the C library's
 * choice and whose state is global. */
#include <math.h>

#include "synth_internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ct_synth_rng_seed(syn_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    /* An all-zero state would stay zero; splitmix64 cannot give four zeros
     * in a row, but the invariant is cheap to state. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ct_synth_rng_next(syn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ct_synth_rng_uniform(syn_rng *r)
{
    /* The top 53 bits: every double in [0, 1) on a 2^-53 grid. */
    return (double)(ct_synth_rng_next(r) >> 11) * 0x1.0p-53;
}

double ct_synth_rng_normal(syn_rng *r)
{
    /* Marsaglia's polar method: no trigonometry, and the rejection loop ends
     * with probability pi/4 at each turn. The second normal it makes is
     * thrown away so that the state stays a plain PRNG state. */
    for (;;) {
        double u = 2.0 * ct_synth_rng_uniform(r) - 1.0;
        double v = 2.0 * ct_synth_rng_uniform(r) - 1.0;
        double q = u * u + v * v;
        if (q > 0.0 && q < 1.0)
            return u * sqrt(-2.0 * log(q) / q);
    }
}
