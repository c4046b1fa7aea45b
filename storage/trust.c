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
 * A fork signed by the origin's own key is that till's doing, never the
 * relay's (it cannot sign for the origin): the report names the origin so
 * that the engine charges its owner.
 *
 * A till restored from an old copy of its store makes ops at seqs it had
 * used before the restore (peers hold those: valid, signed by the same
 * key) until it notices and moves to a new origin. Which op of such a
 * fork a till holds would depend on which arrived first, and the store
 * would split for good. The restored till settles it itself: its first op
 * under the new origin is an OP_REISSUE listing (seq, hash) of every op it
 * made since the restore and said again under the new origin (same stamp,
 * kind and body: a sale keeps its sale_id). Every till applies it the same
 * way, whatever the order: a listed op held is set aside (evidence,
 * "re-issued"), a listed op arriving later is skipped, and the op the
 * peers held at that seq - the one made before the restore, whose sales a
 * POS was told were recorded - is taken. Nothing is lost: the loser's
 * content is held under the new origin. An OP_REISSUE counts only for
 * origins of its own signing key: a till can set aside only its own ops,
 * never another's.
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
    [ST_VOID_PUT] =
        "INSERT INTO voided (origin, seq, hash) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    [ST_VOID_GET] = "SELECT 1 FROM voided WHERE origin = ?1 AND seq = ?2 AND hash = ?3",
    [ST_VOID_ANY] = "SELECT EXISTS (SELECT 1 FROM voided)",
    [ST_VOID_OP_GET] =
        "SELECT hlc, kind, body, sig, prev, hash FROM ops WHERE origin = ?1 AND seq = ?2",
    [ST_VOID_OP_DEL] = "DELETE FROM ops WHERE origin = ?1 AND seq = ?2",
    [ST_VOID_SALE_GET] = "SELECT ins FROM sales WHERE op_origin = ?1 AND op_seq = ?2",
    [ST_VOID_CLAIMS_DEL] = "DELETE FROM sale_claims WHERE origin = ?1 AND seq = ?2",
    [ST_VOID_VV_FIX] = "UPDATE vv SET seq = min(seq, ?2) WHERE origin = ?1",
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

/* Keeps op as evidence, with why. */
static int s_evidence_put(tm_store_t *self, const tm_op_t *op, const uint8_t h[32], const char *why)
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
    return TM_OK;
}

/* Keeps op as evidence of why it was refused, and skips it. */
static int s_refuse(tm_store_t *self, const tm_op_t *op, const uint8_t h[32], const char *why,
                    tm_apply_report_t *rep)
{
    int rc = s_evidence_put(self, op, h, why);
    if (rc)
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

/* Listed by an OP_REISSUE held: 1 yes (skip it), 0 no, <0 error. */
static int s_voided(tm_store_t *self, const tm_op_t *op, const uint8_t h[32])
{
    int rc = TM_OK;
    sqlite3_stmt *st;
    if (self->voided_any == 0) {
        if (!(st = s_stmt(self, ST_VOID_ANY, &rc)))
            return rc;
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            self->voided_any = sqlite3_column_int(st, 0) ? 2 : 1;
        rc = src == SQLITE_ROW ? TM_OK : tm_store__err(self, src);
        sqlite3_reset(st);
        if (rc)
            return rc;
    }
    if (self->voided_any != 2)
        return 0;
    if (!(st = s_stmt(self, ST_VOID_GET, &rc)))
        return rc;
    sqlite3_bind_blob(st, 1, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, op->seq > INT64_MAX ? INT64_MAX : (sqlite3_int64)op->seq);
    sqlite3_bind_blob(st, 3, h, 32, SQLITE_STATIC);
    int src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

/* Another op where the origin's chain has one. Signed by the origin's own
 * key (authentic, or checked here), it is that till's fork: refused, and
 * reported by origin so that the relay is not charged with it. */
static int s_fork(tm_store_t *self, const tm_op_t *op, const uint8_t h[32], const uint8_t *pk,
                  bool authentic, tm_apply_report_t *rep)
{
    if (!pk || !op->has_sig || (!authentic && !tm_sign_op_ok(pk, h, op->prev, op->sig)))
        return s_refuse(self, op, h, pk && op->has_sig ? "bad signature" : "fork", rep);
    int rc = s_refuse(self, op, h, "fork (signed by its origin)", rep);
    if (rc != 1)
        return rc;
    rep->forks++;
    for (size_t i = 0; i < rep->n_fork_origins; i++)
        if (memcmp(rep->fork_origins[i], op->origin, TM_NODE_ID_LEN) == 0)
            return 1;
    if (rep->n_fork_origins < TM_APPLY_REPORT_ORIGINS)
        memcpy(rep->fork_origins[rep->n_fork_origins++], op->origin, TM_NODE_ID_LEN);
    return 1;
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
    if ((rc = s_voided(self, op, h)) != 0) {
        if (rc < 0)
            return rc;
        rep->superseded++;
        return 1;
    }
    const uint8_t *pk = s_key_of(self, op->origin);
    if (op->seq <= ctx->max_seq) {
        rc = tm_store__held_hash(self, op->origin, op->seq, held, held_prev, &has_prev);
        if (rc < 0)
            return rc;
        if (rc == 1) { /* the same op again is a no-op; another op there is a fork */
            if (sodium_memcmp(held, h, 32) == 0)
                return 1;
            return s_fork(self, op, h, pk, authentic, rep);
        }
    }
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
            return s_fork(self, op, h, pk, true, rep);
    } else if (op->seq - 1 <= ctx->max_seq) {
        rc = tm_store__held_hash(self, op->origin, op->seq - 1, held, held_prev, &has_prev);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (!has_prev)
                memset(held_prev, 0, 32);
            tm_sign_chain(held, held_prev, link);
            if (sodium_memcmp(link, op->prev, 32) != 0)
                return s_fork(self, op, h, pk, true, rep);
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
            return s_fork(self, op, h, pk, true, rep);
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
    st = NULL;
    /* Restores seen: the old origins re-issued, their ops, and how many of
     * those this store held and set aside. */
    if (rc == TM_OK)
        rc = tm_store__err(self, sqlite3_prepare_v2(self->db,
                                                    "SELECT count(DISTINCT origin), count(*),"
                                                    " (SELECT count(*) FROM evidence WHERE reason"
                                                    " LIKE 're-issued%') FROM voided",
                                                    -1, &st, NULL));
    if (rc == TM_OK && sqlite3_step(st) == SQLITE_ROW) {
        out->restores = (uint64_t)sqlite3_column_int64(st, 0);
        out->reissued = (uint64_t)sqlite3_column_int64(st, 1);
        out->reissued_here = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- restored tills: OP_REISSUE ---------------------------------------- */

/* Body: version 1, the old origin, a count (u32 BE), then per op its seq
 * (u64 BE) and hash. Exactly that long: anything else is malformed. */
#define REISSUE_HEAD  (1 + TM_NODE_ID_LEN + 4)
#define REISSUE_ENTRY (8 + 32)

int tm_store__reissue_encode(const uint8_t origin[TM_NODE_ID_LEN], const tm_store__void_t *e,
                             size_t n, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (n == 0 || n > TM_REISSUE_MAX)
        return TM_EINVAL;
    size_t sz = REISSUE_HEAD + n * REISSUE_ENTRY;
    uint8_t *b = malloc(sz), *p = b;
    if (!b)
        return TM_ENOMEM;
    *p++ = 1;
    memcpy(p, origin, TM_NODE_ID_LEN);
    p += TM_NODE_ID_LEN;
    for (int k = 3; k >= 0; k--)
        *p++ = (uint8_t)(n >> (8 * k));
    for (size_t i = 0; i < n; i++) {
        for (int k = 7; k >= 0; k--)
            *p++ = (uint8_t)(e[i].seq >> (8 * k));
        memcpy(p, e[i].hash, 32);
        p += 32;
    }
    *buf = b;
    *len = sz;
    return TM_OK;
}

int tm_store__reissue_decode(const uint8_t *buf, size_t len, tm_store__reissue_t *out)
{
    memset(out, 0, sizeof *out);
    if (len < REISSUE_HEAD || buf[0] != 1)
        return TM_EPROTO;
    const uint8_t *p = buf + 1 + TM_NODE_ID_LEN;
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (n == 0 || n > TM_REISSUE_MAX || len != REISSUE_HEAD + n * REISSUE_ENTRY)
        return TM_EPROTO;
    tm_store__void_t *e = calloc(n, sizeof *e);
    if (!e)
        return TM_ENOMEM;
    p += 4;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = 0;
        for (int k = 0; k < 8; k++)
            seq = seq << 8 | *p++;
        memcpy(e[i].hash, p, 32);
        p += 32;
        if (seq == 0 || seq > INT64_MAX) {
            free(e);
            return TM_EPROTO;
        }
        e[i].seq = seq;
    }
    memcpy(out->origin, buf + 1, TM_NODE_ID_LEN);
    out->e = e;
    out->n = n;
    return TM_OK;
}

static int s_exec_os(tm_store_t *self, int id, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, id, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    return tm_store__exec(self, st);
}

/* Drops the sales row ins unless another op claims its sale. Rare (a
 * restore): statements prepared here. */
static int s_sale_drop_unclaimed(tm_store_t *self, int64_t ins)
{
    sqlite3_stmt *st = NULL;
    int rc = tm_store__err(self, sqlite3_prepare_v2(self->db,
                                                    "SELECT EXISTS (SELECT 1 FROM sale_claims c"
                                                    " JOIN sales s ON s.sale_id = c.sale_id"
                                                    " WHERE s.ins = ?1)",
                                                    -1, &st, NULL));
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, ins);
    int src = sqlite3_step(st);
    bool claimed = src == SQLITE_ROW && sqlite3_column_int(st, 0);
    rc = src == SQLITE_ROW ? TM_OK : tm_store__err(self, src);
    sqlite3_finalize(st);
    if (rc || claimed)
        return rc;
    return tm_store__sale_drop(self, ins);
}

/* The held op (origin, seq), if its hash is h: kept as evidence, taken out
 * of the log, the digest and the sales it made (its content is held, or
 * comes, under the new origin). 1 set aside, 0 not held (or another op). */
static int s_set_aside(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq,
                       const uint8_t h[32], uint8_t acc[32])
{
    uint8_t held[32], held_prev[32];
    bool has_prev;
    int rc = tm_store__held_hash(self, origin, seq, held, held_prev, &has_prev);
    if (rc <= 0 || sodium_memcmp(held, h, 32) != 0)
        return rc < 0 ? rc : 0;
    sqlite3_stmt *st = s_stmt(self, ST_VOID_OP_GET, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? 0 : tm_store__err(self, src);
        sqlite3_reset(st);
        return rc;
    }
    tm_op_t op = {.seq = seq,
                  .hlc = (uint64_t)sqlite3_column_int64(st, 0),
                  .kind = (uint32_t)sqlite3_column_int64(st, 1),
                  .body = (uint8_t *)(uintptr_t)sqlite3_column_blob(st, 2),
                  .body_len = (size_t)sqlite3_column_bytes(st, 2)};
    memcpy(op.origin, origin, TM_NODE_ID_LEN);
    if (sqlite3_column_bytes(st, 3) == 64 && sqlite3_column_bytes(st, 4) == 32) {
        op.has_sig = true;
        memcpy(op.sig, sqlite3_column_blob(st, 3), 64);
        memcpy(op.prev, sqlite3_column_blob(st, 4), 32);
    }
    memcpy(op.hash, h, 32);
    op.compacted = true; /* the digest counts it by its hash, h */
    tm_store__digest_sub(acc, &op);
    op.compacted = false;
    rc = s_evidence_put(self, &op, h, "re-issued by its till after a restore");
    sqlite3_reset(st);
    if (rc)
        return rc;
    /* Its sale goes unless another claim holds it (the re-issue, same
     * bytes): the re-issue, when it comes, is the sale again. */
    if (!(st = s_stmt(self, ST_VOID_SALE_GET, &rc)))
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    src = sqlite3_step(st);
    int64_t ins = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? TM_OK : tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc || (rc = s_exec_os(self, ST_VOID_CLAIMS_DEL, origin, seq)) ||
        (rc = s_exec_os(self, ST_VOID_OP_DEL, origin, seq)))
        return rc;
    if (ins && (rc = s_sale_drop_unclaimed(self, ins)))
        return rc;
    return 1;
}

int tm_store__reissue_apply(tm_store_t *self, const tm_op_t *op, const tm_store__reissue_t *r,
                            uint8_t acc[32], uint64_t *n_aside)
{
    int rc = TM_OK;
    uint64_t below = INT64_MAX;
    *n_aside = 0;
    /* Only the origin's own key speaks for it; the new origin is not the old. */
    if (memcmp(r->origin, op->origin, TM_SIGN_ID_KEYB) != 0 ||
        memcmp(r->origin, op->origin, TM_NODE_ID_LEN) == 0)
        return TM_OK;
    for (size_t i = 0; i < r->n && rc == TM_OK; i++) {
        sqlite3_stmt *st = s_stmt(self, ST_VOID_PUT, &rc);
        if (!st)
            return rc;
        sqlite3_bind_blob(st, 1, r->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->e[i].seq);
        sqlite3_bind_blob(st, 3, r->e[i].hash, 32, SQLITE_STATIC);
        if ((rc = tm_store__exec(self, st)))
            return rc;
        if ((rc = s_set_aside(self, r->origin, r->e[i].seq, r->e[i].hash, acc)) < 0)
            return rc;
        if (rc == 1 && r->e[i].seq - 1 < below)
            below = r->e[i].seq - 1;
        *n_aside += (uint64_t)rc;
        rc = TM_OK;
    }
    self->voided_any = 2;
    if (*n_aside) {
        /* The vector stops before the first gap; the caller walks it on. */
        self->counts_ok = false;
        rc = s_exec_os(self, ST_VOID_VV_FIX, r->origin, below);
    }
    return rc;
}
