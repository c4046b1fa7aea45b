/* rng.c - the simulator's one source of randomness: xoshiro256** seeded
 * through splitmix64, and the bytes libsodium hands the store. */
#include <sodium.h>
#include <string.h>

#include "sim_int.h"

static uint64_t s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng_t *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = s_splitmix(&x);
}

static uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = s_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return out;
}

uint64_t sim_rng_below(sim_rng_t *r, uint64_t n)
{
    /* Lemire's multiply-shift; the bias at these sizes is below 2^-40 and
     * no outcome of the simulator depends on it. */
    return (uint64_t)(((unsigned __int128)sim_rng_next(r) * n) >> 64);
}

int64_t sim_rng_range(sim_rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)sim_rng_below(r, (uint64_t)(hi - lo) + 1);
}

bool sim_rng_ppm(sim_rng_t *r, uint32_t ppm)
{
    return sim_rng_below(r, 1000000) < ppm;
}

uint64_t sim_rng_log(sim_rng_t *r, uint64_t lo, uint64_t hi)
{
    /* Pick a power of two between lo and hi, then a value inside it. */
    int a = 63 - __builtin_clzll(lo), b = 63 - __builtin_clzll(hi);
    int e = (int)sim_rng_range(r, a, b);
    uint64_t base = 1ULL << e, v = base + sim_rng_below(r, base);
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- libsodium's randombytes ------------------------------------------
 * The store draws node ids and incarnations from libsodium. libsodium's
 * seam for that (randombytes_set_implementation) takes no context, so this
 * one state is the simulator's only mutable global; tm_sim_run reseeds it
 * from the seed before it opens any store. Never linked into tillmeshd. */
static uint64_t s_entropy;

static const char *s_impl_name(void)
{
    return "tm-sim";
}

static uint32_t s_impl_random(void)
{
    return (uint32_t)(s_splitmix(&s_entropy) >> 32);
}

static void s_impl_stir(void)
{
}

static void s_impl_buf(void *const buf, const size_t n)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = s_splitmix(&s_entropy);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

static randombytes_implementation s_impl = {
    .implementation_name = s_impl_name,
    .random = s_impl_random,
    .stir = s_impl_stir,
    .uniform = NULL, /* libsodium derives it from random() */
    .buf = s_impl_buf,
    .close = NULL,
};

int tm_sim_entropy_install(void)
{
    if (randombytes_set_implementation(&s_impl) != 0 || sodium_init() < 0)
        return TM_EIO;
    return TM_OK;
}

void sim_entropy_seed(uint64_t seed)
{
    s_entropy = seed ^ 0x5eed5eed5eed5eedULL;
}
