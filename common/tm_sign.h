/*
 * tm_sign.h - who made an op: Ed25519 signatures and the ids they bind.
 *
 * Every op is signed by the till that made it (its origin), over the op's
 * hash and the hash of that origin's previous op, so that no other till -
 * whatever it relays - can forge, rewrite or reorder another's ops, and a
 * second op for the same (origin, seq) is a provable fork.
 *
 * A till's signing key is derived from its CurveZMQ secret key (one secret
 * file per till, as before), and its public half goes into the trusted keys
 * file beside the Curve key ("NAME CURVE-PUB SIGN-PUB"). An origin (node id)
 * is 12 bytes of BLAKE2b of the signing key followed by a 4-byte
 * incarnation, so the key an op must be signed with follows from its origin
 * alone, even when the op came through a third till.
 *
 * Pure functions over libsodium; no I/O.
 */
#ifndef TM_SIGN_H
#define TM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_common.h"

#define TM_SIGN_PK_LEN  32
#define TM_SIGN_SK_LEN  64
#define TM_SIGN_LEN     64
#define TM_SIGN_ID_KEYB 12 /* node id bytes that name the key */

/* The signing keypair of the till whose CurveZMQ secret key this is. */
void tm_sign_keypair(const uint8_t curve_secret[32], uint8_t pk[TM_SIGN_PK_LEN],
                     uint8_t sk[TM_SIGN_SK_LEN]);

/* The origin of a till's ops: key part + incarnation (big endian). */
void tm_sign_node_id(const uint8_t pk[TM_SIGN_PK_LEN], uint32_t incarnation,
                     uint8_t out[TM_NODE_ID_LEN]);

/* True when node_id is one of pk's origins (any incarnation). */
bool tm_sign_owns(const uint8_t pk[TM_SIGN_PK_LEN], const uint8_t node_id[TM_NODE_ID_LEN]);

/* The hash of an op, as signatures and the state digest count it: SHA-256
 * of origin (16 bytes), seq (8, big endian), hlc (8), kind (4), body
 * length (8), body. Fixed widths keep the encoding unambiguous. */
void tm_sign_op_hash(const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq, uint64_t hlc,
                     uint32_t kind, const void *body, size_t len, uint8_t out[32]);

/* The chain value of an op: SHA-256("tmch1" || op_hash || prev). An op's
 * prev is its origin's previous op's chain value (32 zero bytes for seq 1),
 * so one valid signature on the last op of a run authenticates the whole
 * run: each op's content and link is bound by the next op's prev. */
void tm_sign_chain(const uint8_t op_hash[32], const uint8_t prev[32], uint8_t out[32]);

/* Signs / checks "tmop1" || op_hash || prev. */
void tm_sign_op(const uint8_t sk[TM_SIGN_SK_LEN], const uint8_t op_hash[32], const uint8_t prev[32],
                uint8_t sig[TM_SIGN_LEN]);
bool tm_sign_op_ok(const uint8_t pk[TM_SIGN_PK_LEN], const uint8_t op_hash[32],
                   const uint8_t prev[32], const uint8_t sig[TM_SIGN_LEN]);

#endif
