/*
 * trust.c - no till can rewrite, hide or forge another's ops.
 *
 * Every op carries its origin's signature over (its hash, the hash of the
 * origin's previous op): see common/tm_sign.h. An op from a peer - whoever
 * relayed it - is stored only if:
 *  - its origin is owned by a trusted signing key, and the signature is
 *    that key's (else: refused, kept as evidence);
 *  - it extends its origin's chain: the op before it, if held, hashes to
 *    its prev, and the op after it, if held, names it as prev (else: a
 *    fork or a broken chain, refused, kept as evidence);
 *  - it is not a different op for an (origin, seq) already held (a fork:
 *    the one held first stays, the other goes to evidence).
 * Ops made before signing existed carry no signature. They are accepted
 * only for origins and up to the seq that a seal (OP_SEAL, signed by a
 * trusted till) vouches for. An op that cannot be judged yet - a key not
 * (yet) in our trusted keys, history no seal covers yet - is deferred: not
 * stored, not evidence; the engine asks again later.
 *
 * Evidence is bounded (EVIDENCE_MAX rows, oldest dropped first): a hostile
 * till must not fill the disk with its own forgeries.
 */
#include "store_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm_sign.h"

#define EVIDENCE_MAX 1000

static const uint8_t zero32[32];

static const char *const sql[ST_COUNT] = {
    [ST_HELD_HASH] = "SELECT hash, hlc, kind, body, compacted, prev FROM ops"
                     " WHERE origin = ?1 AND seq = ?2",
    [ST_SEAL_GET] = "SELECT seq FROM seals WHERE origin = ?1",
    [ST_TRUST_MAX_SEQ] = "SELECT max(seq) FROM ops WHERE origin = ?1",
    [ST_SEAL_PUT] = "INSERT INTO seals (origin, seq) VALUES (?1, ?2)"
                    " ON CONFLICT (origin) DO UPDATE SET seq = max(seq, excluded.seq)",
    [ST_EVIDENCE_PUT] = "INSERT INTO evidence (origin, seq, hlc, kind, body, hash, sig, prev,"
                        " reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_EVIDENCE_TRIM] = "DELETE FROM evidence WHERE id <= (SELECT max(id) FROM evidence) - ?1",
};

static sqlite3_stmt *s_stmt(tm_store_t *self, int id, int *rc)
{
    return tm_store__stmt(self, id, sql[id], rc);
}

int tm_store__held_hash(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq,
                        uint8_t out[32], uint8_t prev[32], bool *has_prev)
{
    int rc = TM_OK;
    *has_prev = false;
    if (seq == 0 || seq > INT64_MAX)
        return 0;
    sqlite3_stmt *st = s_stmt(self, ST_HELD_HASH, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) == 32) {
            memcpy(out, sqlite3_column_blob(st, 0), 32);
        } else { /* stored before hashes were kept */
            tm_op_t op = {.seq = seq,
                          .hlc = (uint64_t)sqlite3_column_int64(st, 1),
                          .kind = (uint32_t)sqlite3_column_int64(st, 2),
                          .body = (uint8_t *)(uintptr_t)sqlite3_column_blob(st, 3),
                          .body_len = (size_t)sqlite3_column_bytes(st, 3)};
            memcpy(op.origin, origin, TM_NODE_ID_LEN);
            tm_store__op_hash(&op, out);
        }
        if (sqlite3_column_bytes(st, 5) == 32) {
            memcpy(prev, sqlite3_column_blob(st, 5), 32);
            *has_prev = true;
        }
        rc = 1;
    } else {
        rc = src == SQLITE_DONE ? 0 : tm_store__err(self, src);
    }
    sqlite3_reset(st);
    return rc;
}

static void note_origin(tm_apply_report_t *rep, const uint8_t origin[TM_NODE_ID_LEN])
{
    for (size_t i = 0; i < rep->n_origins; i++)
        if (memcmp(rep->origins[i], origin, TM_NODE_ID_LEN) == 0)
            return;
    if (rep->n_origins < TM_APPLY_REPORT_ORIGINS)
        memcpy(rep->origins[rep->n_origins++], origin, TM_NODE_ID_LEN);
}

static int s_defer(tm_store_t *self, const tm_op_t *op, tm_apply_report_t *rep)
{
    rep->deferred++;
    self->deferred_total++;
    note_origin(rep, op->origin);
    return 1;
}

/* Keeps op as evidence of why it was refused, and skips it. */
static int s_refuse(tm_store_t *self, const tm_op_t *op, const uint8_t h[32], const char *why,
                    tm_apply_report_t *rep)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_EVIDENCE_PUT, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, op->seq > INT64_MAX ? INT64_MAX : (sqlite3_int64)op->seq);
    sqlite3_bind_int64(st, 3, op->hlc > INT64_MAX ? INT64_MAX : (sqlite3_int64)op->hlc);
    sqlite3_bind_int64(st, 4, op->kind);
    if (op->body_len)
        sqlite3_bind_blob64(st, 5, op->body, op->body_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_blob(st, 6, h, 32, SQLITE_STATIC);
    if (op->has_sig) {
        sqlite3_bind_blob(st, 7, op->sig, 64, SQLITE_STATIC);
        sqlite3_bind_blob(st, 8, op->prev, 32, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 7);
        sqlite3_bind_null(st, 8);
    }
    sqlite3_bind_text(st, 9, why, -1, SQLITE_STATIC);
    if ((rc = tm_store__exec(self, st)))
        return rc;
    if (!(st = s_stmt(self, ST_EVIDENCE_TRIM, &rc)))
        return rc;
    sqlite3_bind_int64(st, 1, EVIDENCE_MAX);
    if ((rc = tm_store__exec(self, st)))
        return rc;
    rep->refused++;
    self->refused_total++;
    note_origin(rep, op->origin);
    char hex[TM_NODE_HEX_LEN];
    tm_hex(op->origin, TM_NODE_ID_LEN, hex);
    snprintf(rep->reason, sizeof rep->reason, "%.40s (origin %.12s, seq %llu)", why, hex,
             (unsigned long long)op->seq);
    tm_strlcpy(self->last_reason, rep->reason, sizeof self->last_reason);
    return 1;
}

static const uint8_t *s_key_of(const tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN])
{
    for (size_t i = 0; i < self->n_trusted; i++)
        if (memcmp(self->trusted_ids[i], origin, TM_SIGN_ID_KEYB) == 0)
            return self->trusted[i];
    return NULL;
}

/* Unsigned history: covered by a seal? 1 yes, 0 no, <0 error. */
static int s_sealed(tm_store_t *self, const tm_op_t *op)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_SEAL_GET, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = op->seq <= (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = src == SQLITE_DONE ? 0 : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

/* The highest seq held of origin (0 if none). */
static int s_max_seq(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN], uint64_t *out)
{
    int rc = TM_OK;
    *out = 0;
    sqlite3_stmt *st = s_stmt(self, ST_TRUST_MAX_SEQ, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? TM_OK : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store__verify(tm_store_t *self, const tm_op_t *op, const uint8_t h[32], const uint8_t *chain,
                     bool body_ok, bool authentic, tm_apply_report_t *rep, tm_store__vctx_t *ctx)
{
    uint8_t held[32], held_prev[32], link[32];
    bool has_prev;
    int rc;
    /* A batch brings runs of one origin in seq order: look the origin up
     * once, and check each op's link to the one before it in memory. */
    if (!ctx->have || memcmp(ctx->origin, op->origin, TM_NODE_ID_LEN) != 0) {
        memcpy(ctx->origin, op->origin, TM_NODE_ID_LEN);
        if ((rc = s_max_seq(self, op->origin, &ctx->max_seq)))
            return rc;
        ctx->have = true;
        ctx->have_last = false;
    }
    if (op->seq <= ctx->max_seq) {
        rc = tm_store__held_hash(self, op->origin, op->seq, held, held_prev, &has_prev);
        if (rc < 0)
            return rc;
        if (rc == 1) /* the same op again is a no-op; another op there is a fork */
            return sodium_memcmp(held, h, 32) == 0 ? 1 : s_refuse(self, op, h, "fork", rep);
    }
    const uint8_t *pk = s_key_of(self, op->origin);
    if (!pk) {
        if (op->has_sig)
            return s_defer(self, op, rep); /* a key we do not (yet) trust */
        if ((rc = s_sealed(self, op)) < 0)
            return rc;
        return rc ? 0 : s_defer(self, op, rep);
    }
    if (!op->has_sig)
        return s_refuse(self, op, h, "unsigned op from a signing origin", rep);
    if (!authentic && !tm_sign_op_ok(pk, h, op->prev, op->sig))
        return s_refuse(self, op, h, "bad signature", rep);
    if (!body_ok)
        return s_refuse(self, op, h, "malformed body", rep);
    /* The chain: the op before must be the one this op names... */
    if (op->seq == 1 && sodium_memcmp(op->prev, zero32, 32) != 0)
        return s_refuse(self, op, h, "broken chain", rep);
    if (ctx->have_last && ctx->last_seq + 1 == op->seq) {
        if (sodium_memcmp(ctx->last_chain, op->prev, 32) != 0)
            return s_refuse(self, op, h, "fork", rep);
    } else if (op->seq - 1 <= ctx->max_seq) {
        rc = tm_store__held_hash(self, op->origin, op->seq - 1, held, held_prev, &has_prev);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (!has_prev)
                memset(held_prev, 0, 32);
            tm_sign_chain(held, held_prev, link);
            if (sodium_memcmp(link, op->prev, 32) != 0)
                return s_refuse(self, op, h, "fork", rep);
        }
    }
    /* ... and the op after, if held, must name this one. */
    if (chain)
        memcpy(link, chain, 32);
    else
        tm_sign_chain(h, op->prev, link);
    if (op->seq + 1 <= ctx->max_seq) {
        rc = tm_store__held_hash(self, op->origin, op->seq + 1, held, held_prev, &has_prev);
        if (rc < 0)
            return rc;
        if (rc == 1 && has_prev && sodium_memcmp(held_prev, link, 32) != 0)
            return s_refuse(self, op, h, "fork", rep);
    }
    /* Stored next (the caller inserts it): remember it for the next op. */
    ctx->have_last = true;
    ctx->last_seq = op->seq;
    memcpy(ctx->last_chain, link, 32);
    if (op->seq > ctx->max_seq)
        ctx->max_seq = op->seq;
    return 0;
}

int tm_store__sign(tm_store_t *self, tm_op_t *op, const uint8_t h[32])
{
    if (!self->signer)
        return TM_OK;
    uint8_t held[32], held_prev[32];
    bool has_prev;
    int rc = tm_store__held_hash(self, op->origin, op->seq - 1, held, held_prev, &has_prev);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        memset(op->prev, 0, 32); /* seq 1 */
    } else {
        if (!has_prev)
            memset(held_prev, 0, 32); /* after unsigned history */
        tm_sign_chain(held, held_prev, op->prev);
    }
    tm_sign_op(self->sign_sk, h, op->prev, op->sig);
    op->has_sig = true;
    return TM_OK;
}

int tm_store__seal_apply(tm_store_t *self, const tm_seal_entry_t *e, size_t n)
{
    int rc = TM_OK;
    for (size_t i = 0; i < n && rc == TM_OK; i++) {
        sqlite3_stmt *st = s_stmt(self, ST_SEAL_PUT, &rc);
        if (!st)
            return rc;
        sqlite3_bind_blob(st, 1, e[i].origin, TM_NODE_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)e[i].seq);
        rc = tm_store__exec(self, st);
    }
    return rc;
}

void tm_store__authenticate_runs(tm_store_t *self, const tm_op_t *ops, size_t n,
                                 const uint8_t (*hash)[32], uint8_t (*link)[32], bool *authentic)
{
    /* Backwards: an op is authentic when the next op of the batch is its
     * successor, authentic, and names its chain value; only the last op
     * of each run needs its signature checked. */
    for (size_t k = n; k-- > 0;) {
        const tm_op_t *op = &ops[k];
        authentic[k] = false;
        if (!op->has_sig)
            continue;
        tm_sign_chain(hash[k], op->prev, link[k]);
        const tm_op_t *next = k + 1 < n ? &ops[k + 1] : NULL;
        if (next && authentic[k + 1] && next->seq == op->seq + 1 &&
            memcmp(next->origin, op->origin, TM_NODE_ID_LEN) == 0 &&
            sodium_memcmp(link[k], next->prev, 32) == 0) {
            authentic[k] = true;
            continue;
        }
        const uint8_t *pk = s_key_of(self, op->origin);
        authentic[k] = pk && tm_sign_op_ok(pk, hash[k], op->prev, op->sig);
    }
}

int tm_store_set_trusted(tm_store_t *self, const uint8_t (*pks)[32], size_t n)
{
    uint8_t(*v)[32] = NULL;
    uint8_t(*ids)[TM_NODE_ID_LEN] = NULL;
    if (n && (!(v = malloc(n * sizeof *v)) || !(ids = malloc(n * sizeof *ids)))) {
        free(v);
        return TM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(v[i], pks[i], 32);
        tm_sign_node_id(pks[i], 0, ids[i]); /* the key's part; any incarnation */
    }
    free(self->trusted);
    free(self->trusted_ids);
    self->trusted = v;
    self->trusted_ids = ids;
    self->n_trusted = n;
    return TM_OK;
}

int tm_store_trust_stats(tm_store_t *self, tm_trust_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->refused_total = self->refused_total;
    out->deferred_total = self->deferred_total;
    tm_strlcpy(out->last_reason, self->last_reason, sizeof out->last_reason);
    sqlite3_stmt *st = NULL;
    int rc = tm_store__err(
        self, sqlite3_prepare_v2(self->db, "SELECT count(*) FROM evidence", -1, &st, NULL));
    if (rc == TM_OK && sqlite3_step(st) == SQLITE_ROW)
        out->evidence = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}
