/*
 * digest.c - the state digest, kept up to date op by op.
 *
 * The digest must be cheap: every heartbeat carries it and status shows it,
 * while a till may hold millions of ops. So it is not a hash over the whole
 * log recomputed after each write, but a set hash (MSet-Add-Hash, Clarke et
 * al. 2003): each op's SHA-256 is added into a 256-bit accumulator, modulo
 * 2^256, when the op is first stored; the digest is SHA-256 of the
 * accumulator. Addition is commutative, so the order ops arrived in does not
 * matter; an op is added once because it is stored once; and equal digests
 * mean equal op sets unless SHA-256 sums collide. The accumulator lives in
 * the meta table and is updated in the same transaction as the ops.
 */
#include "store_int.h"

#include <sodium.h>
#include <string.h>

#include "tm_sign.h"

static const char acc_key[] = "digest_acc";

/* acc += x (mod 2^256), both big endian. */
static void s_add(uint8_t acc[32], const uint8_t x[32])
{
    unsigned carry = 0;
    for (int i = 31; i >= 0; i--) {
        unsigned s = (unsigned)acc[i] + x[i] + carry;
        acc[i] = (uint8_t)s;
        carry = s >> 8;
    }
}

void tm_store__op_hash(const tm_op_t *op, uint8_t out[32])
{
    if (op->compacted)
        memcpy(out, op->hash, 32); /* the body is gone; its hash is what counted */
    else
        tm_sign_op_hash(op->origin, op->seq, op->hlc, op->kind, op->body, op->body_len, out);
}

void tm_store__digest_sub(uint8_t acc[32], const tm_op_t *op)
{
    /* acc - h = acc + (2^256 - h): the two's complement of h. */
    uint8_t h[32], neg[32];
    unsigned carry = 1;
    tm_store__op_hash(op, h);
    for (int i = 31; i >= 0; i--) {
        unsigned s = (unsigned)(uint8_t)~h[i] + carry;
        neg[i] = (uint8_t)s;
        carry = s >> 8;
    }
    s_add(acc, neg);
}

void tm_store__digest_add_hash(uint8_t acc[32], const uint8_t h[32])
{
    s_add(acc, h);
}

void tm_store__digest_add(uint8_t acc[32], const tm_op_t *op)
{
    uint8_t h[32];
    tm_store__op_hash(op, h);
    s_add(acc, h);
}

int tm_store__digest_save(tm_store_t *self, const uint8_t acc[32])
{
    sqlite3_stmt *st = NULL;
    int rc = tm_store__err(
        self, sqlite3_prepare_v2(self->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
                                 -1, &st, NULL));
    if (rc == TM_OK) {
        sqlite3_bind_text(st, 1, acc_key, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, acc, 32, SQLITE_STATIC);
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The one full scan: a store made before the accumulator existed. */
static int s_rebuild(tm_store_t *self, uint8_t acc[32])
{
    sqlite3_stmt *st = NULL;
    int src, rc = tm_store__err(
                 self,
                 sqlite3_prepare_v2(self->db,
                                    "SELECT origin, seq, hlc, kind, body, hash, compacted FROM ops",
                                    -1, &st, NULL));
    memset(acc, 0, 32);
    if (rc)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != TM_NODE_ID_LEN) {
            src = SQLITE_CORRUPT;
            break;
        }
        tm_op_t op = {.seq = (uint64_t)sqlite3_column_int64(st, 1),
                      .hlc = (uint64_t)sqlite3_column_int64(st, 2),
                      .kind = (uint32_t)sqlite3_column_int64(st, 3),
                      .body = (uint8_t *)(uintptr_t)sqlite3_column_blob(st, 4),
                      .body_len = (size_t)sqlite3_column_bytes(st, 4)};
        memcpy(op.origin, sqlite3_column_blob(st, 0), TM_NODE_ID_LEN);
        if (sqlite3_column_int(st, 6) && sqlite3_column_bytes(st, 5) == 32) {
            op.compacted = true;
            memcpy(op.hash, sqlite3_column_blob(st, 5), 32);
        }
        tm_store__digest_add(acc, &op);
    }
    rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    return rc;
}

int tm_store__digest_load(tm_store_t *self)
{
    sqlite3_stmt *st = NULL;
    int rc = tm_store__err(
        self, sqlite3_prepare_v2(self->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL));
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, acc_key, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
        memcpy(self->acc, sqlite3_column_blob(st, 0), 32);
        sqlite3_finalize(st);
        return TM_OK;
    }
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? TM_OK : tm_store__err(self, src);
    sqlite3_finalize(st);
    if (rc || (rc = s_rebuild(self, self->acc)))
        return rc;
    return tm_store__digest_save(self, self->acc);
}

int tm_store_digest(tm_store_t *self, uint8_t out[32])
{
    crypto_hash_sha256(out, self->acc, 32);
    return TM_OK;
}
