/* sign.c - op signatures and key-bound origins (see tm_sign.h). */
#include "tm_sign.h"

#include <sodium.h>
#include <string.h>

static const char derive_ctx[] = "tillmesh op-signing key v1";
static const char msg_tag[5] = {'t', 'm', 'o', 'p', '1'};

void tm_sign_keypair(const uint8_t curve_secret[32], uint8_t pk[TM_SIGN_PK_LEN],
                     uint8_t sk[TM_SIGN_SK_LEN])
{
    /* A keyed hash of the Curve secret: a separate key for a separate use,
     * without a second secret file to create, copy and protect. */
    uint8_t seed[crypto_sign_SEEDBYTES];
    crypto_generichash(seed, sizeof seed, (const uint8_t *)derive_ctx, sizeof derive_ctx - 1,
                       curve_secret, 32);
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
}

static void key_part(const uint8_t pk[TM_SIGN_PK_LEN], uint8_t out[TM_SIGN_ID_KEYB])
{
    crypto_generichash(out, TM_SIGN_ID_KEYB, pk, TM_SIGN_PK_LEN, NULL, 0);
}

void tm_sign_node_id(const uint8_t pk[TM_SIGN_PK_LEN], uint32_t incarnation,
                     uint8_t out[TM_NODE_ID_LEN])
{
    key_part(pk, out);
    for (int i = 0; i < 4; i++)
        out[TM_SIGN_ID_KEYB + i] = (uint8_t)(incarnation >> (24 - 8 * i));
}

bool tm_sign_owns(const uint8_t pk[TM_SIGN_PK_LEN], const uint8_t node_id[TM_NODE_ID_LEN])
{
    uint8_t k[TM_SIGN_ID_KEYB];
    key_part(pk, k);
    return sodium_memcmp(k, node_id, TM_SIGN_ID_KEYB) == 0;
}

static void be(uint8_t *p, uint64_t v, int len)
{
    for (int i = len - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

void tm_sign_op_hash(const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq, uint64_t hlc,
                     uint32_t kind, const void *body, size_t len, uint8_t out[32])
{
    crypto_hash_sha256_state h;
    uint8_t hdr[TM_NODE_ID_LEN + 8 + 8 + 4 + 8];
    memcpy(hdr, origin, TM_NODE_ID_LEN);
    be(hdr + 16, seq, 8);
    be(hdr + 24, hlc, 8);
    be(hdr + 32, kind, 4);
    be(hdr + 36, len, 8);
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, hdr, sizeof hdr);
    if (len)
        crypto_hash_sha256_update(&h, body, len);
    crypto_hash_sha256_final(&h, out);
}

void tm_sign_chain(const uint8_t op_hash[32], const uint8_t prev[32], uint8_t out[32])
{
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)"tmch1", 5);
    crypto_hash_sha256_update(&h, op_hash, 32);
    crypto_hash_sha256_update(&h, prev, 32);
    crypto_hash_sha256_final(&h, out);
}

static void message(const uint8_t op_hash[32], const uint8_t prev[32], uint8_t m[5 + 64])
{
    memcpy(m, msg_tag, 5);
    memcpy(m + 5, op_hash, 32);
    memcpy(m + 37, prev, 32);
}

void tm_sign_op(const uint8_t sk[TM_SIGN_SK_LEN], const uint8_t op_hash[32], const uint8_t prev[32],
                uint8_t sig[TM_SIGN_LEN])
{
    uint8_t m[5 + 64];
    message(op_hash, prev, m);
    crypto_sign_detached(sig, NULL, m, sizeof m, sk);
}

bool tm_sign_op_ok(const uint8_t pk[TM_SIGN_PK_LEN], const uint8_t op_hash[32],
                   const uint8_t prev[32], const uint8_t sig[TM_SIGN_LEN])
{
    uint8_t m[5 + 64];
    message(op_hash, prev, m);
    return crypto_sign_verify_detached(sig, m, sizeof m, pk) == 0;
}
