/* erp.c - parked sales and the ERP backlog (see tm_store.h). Writes here
 * touch only the local `parked` table: no op, nothing replicated. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_prepare(tm_store_t *self, const char *sql, sqlite3_stmt **st)
{
    return tm_store__err(self, sqlite3_prepare_v2(self->db, sql, -1, st, NULL));
}

int tm_store_park(tm_store_t *self, const char *sale_id, int status, const char *message,
                  uint64_t wall_ms)
{
    sqlite3_stmt *st = NULL;
    int rc =
        s_prepare(self,
                  "INSERT INTO parked(sale_id, status, message, parked_at) VALUES(?1, ?2, ?3, ?4)"
                  " ON CONFLICT(sale_id) DO UPDATE SET status = ?2, message = ?3,"
                  " parked_at = ?4, active = 1",
                  &st);
    if (rc == TM_OK) {
        sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, status);
        sqlite3_bind_text(st, 3, message ? message : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)wall_ms);
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store_unpark(tm_store_t *self, const char *sale_id)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(self,
                       "UPDATE parked SET active = 0, retries = retries + 1"
                       " WHERE sale_id = ?1 AND active = 1",
                       &st);
    if (rc == TM_OK) {
        sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
        rc = tm_store__exec(self, st);
        if (rc == TM_OK && sqlite3_changes(self->db) == 0)
            rc = TM_ENOTFOUND;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* The batches it was refused in are over: the retry is a new request
     * under a new key, not a re-send of an old intent (a replayed refusal). */
    if (rc == TM_OK &&
        (rc = s_prepare(self, "UPDATE erp_intents SET closed = 1 WHERE instr(ids, ?1) > 0", &st)) ==
            TM_OK) {
        sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Runs a query whose ?1 is a row limit and turns each row into one
 * element of a malloc'd array (row fills elem). Shared by the listings. */
static int s_collect(tm_store_t *self, const char *sql, size_t max, size_t elem_size,
                     void (*row)(sqlite3_stmt *st, void *elem), void **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    size_t k = 0;
    int src;
    *out = NULL;
    *n = 0;
    int rc = s_prepare(self, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        char *nv = realloc(v, (k + 1) * elem_size);
        if (!nv) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        v = nv;
        memset(v + k * elem_size, 0, elem_size);
        row(st, v + k * elem_size);
        k++;
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_finalize(st);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return TM_OK;
}

static void s_col(sqlite3_stmt *st, int i, char *dst, size_t dstsz)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    tm_strlcpy(dst, t ? (const char *)t : "", dstsz);
}

static void s_parked_row(sqlite3_stmt *st, void *elem)
{
    tm_parked_t *p = elem;
    s_col(st, 0, p->sale_id, sizeof p->sale_id);
    p->status = sqlite3_column_int(st, 1);
    s_col(st, 2, p->message, sizeof p->message);
    p->parked_at = (uint64_t)sqlite3_column_int64(st, 3);
}

int tm_store_parked(tm_store_t *self, size_t max, tm_parked_t **out, size_t *n)
{
    void *v;
    int rc = s_collect(self,
                       "SELECT sale_id, status, message, parked_at FROM parked WHERE active = 1"
                       " ORDER BY parked_at, sale_id LIMIT ?1",
                       max, sizeof **out, s_parked_row, &v, n);
    *out = v;
    return rc;
}

int tm_store_backlog(tm_store_t *self, tm_backlog_t *out)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    /* Called on every till at each heartbeat (the forwarder watch) and by
     * /metrics and status. The answer is kept until this connection writes
     * a row (the only writer of the file): with the ERP out of reach a big
     * backlog is asked about again and again while nothing changes. */
    int64_t changes = (int64_t)sqlite3_total_changes64(self->db);
    if (self->backlog_ok && self->backlog_changes == changes) {
        *out = self->backlog;
        return TM_OK;
    }
    /* No scan through the sales table: the unacknowledged are counted on
     * their partial index; parked sales are few (each one a refusal a
     * person must look at) and are subtracted by their own rows (CROSS
     * JOIN: parked first, whatever the planner guesses); the oldest unsent
     * sale is the first of that index that is not parked. The query before
     * read each unacknowledged sale's row twice: 25 ms for 100,000. */
    int rc = s_prepare(self,
                       "SELECT (SELECT count(*) FROM sales WHERE acked = 0),"
                       " (SELECT count(*) FROM parked p CROSS JOIN sales s USING (sale_id)"
                       "         WHERE p.active = 1 AND s.acked = 0),"
                       " (SELECT op_hlc FROM sales s WHERE acked = 0 AND NOT EXISTS"
                       "         (SELECT 1 FROM parked p WHERE p.sale_id = s.sale_id"
                       "          AND p.active = 1) ORDER BY op_hlc LIMIT 1)",
                       &st);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        int64_t unacked = sqlite3_column_int64(st, 0), parked = sqlite3_column_int64(st, 1);
        out->unsent = (uint64_t)(unacked > parked ? unacked - parked : 0);
        out->parked = (uint64_t)parked;
        out->oldest_hlc = (uint64_t)sqlite3_column_int64(st, 2);
    }
    rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    if (rc == TM_OK) {
        self->backlog = *out;
        self->backlog_changes = changes;
        self->backlog_ok = true;
    }
    return rc;
}

int tm_store_retry_gen(tm_store_t *self, const char *sale_id, uint32_t *gen)
{
    sqlite3_stmt *st = NULL;
    *gen = 0;
    /* Operator retries (local) and reconcile revocations (replicated: the
     * same on every till that holds the same ops). */
    int rc = s_prepare(self,
                       "SELECT coalesce((SELECT retries FROM parked WHERE sale_id = ?1), 0) +"
                       " coalesce((SELECT gen FROM erp_revoked WHERE sale_id = ?1), 0)",
                       &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *gen = (uint32_t)sqlite3_column_int64(st, 0);
    rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    return rc;
}

int tm_store_retry_gens(tm_store_t *self, char (*ids)[TM_UUID_LEN], size_t n, uint32_t *gens)
{
    sqlite3_stmt *st = NULL;
    memset(gens, 0, n * sizeof *gens);
    /* Nearly always no sale has a generation: one query says so, instead
     * of one per sale of every batch. */
    int rc = s_prepare(self,
                       "SELECT EXISTS (SELECT 1 FROM parked WHERE retries > 0)"
                       " OR EXISTS (SELECT 1 FROM erp_revoked)",
                       &st);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    bool any = src == SQLITE_ROW && sqlite3_column_int(st, 0);
    rc = src == SQLITE_ROW ? TM_OK : tm_store__err(self, src);
    sqlite3_finalize(st);
    st = NULL;
    if (rc || !any)
        return rc;
    rc = s_prepare(self,
                   "SELECT coalesce((SELECT retries FROM parked WHERE sale_id = ?1), 0) +"
                   " coalesce((SELECT gen FROM erp_revoked WHERE sale_id = ?1), 0)",
                   &st);
    for (size_t i = 0; rc == TM_OK && i < n; i++) {
        sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            gens[i] = (uint32_t)sqlite3_column_int64(st, 0);
        else
            rc = tm_store__err(self, src);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store_refunds_of(tm_store_t *self, char (*ids)[TM_UUID_LEN], size_t n,
                        char (*refund_of)[TM_UUID_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(self, "SELECT refund_of FROM sales WHERE sale_id = ?1", &st);
    for (size_t i = 0; rc == TM_OK && i < n; i++) {
        refund_of[i][0] = '\0';
        sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            s_col(st, 0, refund_of[i], TM_UUID_LEN);
        else if (src != SQLITE_DONE)
            rc = tm_store__err(self, src);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store__cust_acks_apply(tm_store_t *self, const tm_erp_ack_t *a)
{
    if (!a->n_customers)
        return TM_OK;
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(self,
                       "INSERT INTO erp_customer_acks(customer_id, version) VALUES(?1, ?2)"
                       " ON CONFLICT(customer_id) DO UPDATE SET version = max(version, ?2)",
                       &st);
    for (size_t i = 0; rc == TM_OK && i < a->n_customers; i++) {
        sqlite3_bind_text(st, 1, a->customers[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2,
                           (sqlite3_int64)(a->customers[i].version > INT64_MAX
                                               ? INT64_MAX
                                               : a->customers[i].version));
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    return rc;
}

static void s_cust_version_row(sqlite3_stmt *st, void *elem)
{
    tm_cust_version_t *c = elem;
    s_col(st, 0, c->id, sizeof c->id);
    c->version = (uint64_t)sqlite3_column_int64(st, 1);
}

int tm_store_unacked_customers(tm_store_t *self, size_t max, tm_cust_version_t **out, size_t *n)
{
    void *v;
    int rc = s_collect(self,
                       "SELECT c.id, max(c.type_hlc, coalesce((SELECT max(f.hlc) FROM"
                       "   customer_fields f WHERE f.customer_id = c.id), 0)) AS v"
                       " FROM customers c LEFT JOIN erp_customer_acks a ON a.customer_id = c.id"
                       " WHERE a.version IS NULL OR a.version < v ORDER BY c.id LIMIT ?1",
                       max, sizeof **out, s_cust_version_row, &v, n);
    *out = v;
    return rc;
}

int tm_store__intent_apply(tm_store_t *self, const tm_op_t *op, const tm_erp_ack_t *a)
{
    /* ids as one text of 36-character uuids joined by ',' (validated by the
     * decoder): read back in order by tm_store_open_intent. */
    char *ids = malloc(a->n * TM_UUID_LEN + 1);
    sqlite3_stmt *st = NULL;
    if (!ids)
        return TM_ENOMEM;
    ids[0] = '\0';
    for (size_t i = 0; i < a->n; i++) {
        memcpy(ids + i * TM_UUID_LEN, a->sale_ids[i], TM_UUID_LEN - 1);
        ids[i * TM_UUID_LEN + TM_UUID_LEN - 1] = i + 1 < a->n ? ',' : '\0';
    }
    int rc = s_prepare(self,
                       "INSERT INTO erp_intents(key, hlc, ids) VALUES(?1, ?2, ?3)"
                       " ON CONFLICT(key) DO NOTHING",
                       &st);
    if (rc == TM_OK) {
        sqlite3_bind_text(st, 1, a->idempotency_key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)(op->hlc > INT64_MAX ? INT64_MAX : op->hlc));
        sqlite3_bind_text(st, 3, a->n ? ids : "", -1, SQLITE_STATIC);
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    free(ids);
    return rc == TM_OK ? tm_store__sale_acks_apply(self, op, a, true) : rc;
}

/* Makes sales.acked of sale_id what erp_acks and erp_revoked say. */
static int s_ack_refresh(tm_store_t *self, sqlite3_stmt *st, const char *sale_id)
{
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    return tm_store__exec(self, st);
}

#define ACK_REFRESH_SQL                                                                            \
    "UPDATE sales SET acked = EXISTS (SELECT 1 FROM erp_acks a WHERE a.sale_id = ?1 AND a.hlc >"   \
    " coalesce((SELECT hlc FROM erp_revoked WHERE sale_id = ?1), -1)) WHERE sale_id = ?1"

/* Reconcile: the ERP does not hold these acknowledged sales. They count as
 * unacknowledged until an ack stamped after this op, and the intents that
 * named them are closed: re-sending such a batch under its old key would
 * only fetch the ERP's old answer, so the sale goes out in a new batch
 * under a new key (the generation is part of it, tm_store_retry_gen).
 * Any till may revoke: the worst it does is make the forwarder send sales
 * the ERP then answers as duplicates. */
static int s_revoke(tm_store_t *self, const tm_op_t *op, const tm_erp_ack_t *a)
{
    sqlite3_stmt *put = NULL, *refresh = NULL, *close_st = NULL;
    int rc = s_prepare(self,
                       "INSERT INTO erp_revoked (sale_id, hlc, gen) VALUES (?1, ?2, 1)"
                       " ON CONFLICT (sale_id) DO UPDATE SET hlc = max(hlc, ?2), gen = gen + 1",
                       &put);
    if (rc == TM_OK)
        rc = s_prepare(self, ACK_REFRESH_SQL, &refresh);
    if (rc == TM_OK)
        rc = s_prepare(self, "UPDATE erp_intents SET closed = 1 WHERE instr(ids, ?1) > 0",
                       &close_st);
    for (size_t i = 0; rc == TM_OK && i < a->n_revoked; i++) {
        sqlite3_bind_text(put, 1, a->revoked[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(put, 2, (sqlite3_int64)(op->hlc > INT64_MAX ? INT64_MAX : op->hlc));
        sqlite3_bind_text(close_st, 1, a->revoked[i], -1, SQLITE_STATIC);
        if ((rc = tm_store__exec(self, put)) == TM_OK &&
            (rc = s_ack_refresh(self, refresh, a->revoked[i])) == TM_OK)
            rc = tm_store__exec(self, close_st);
    }
    sqlite3_finalize(put);
    sqlite3_finalize(refresh);
    sqlite3_finalize(close_st);
    return rc;
}

/* ERP acknowledgements are bound to the till that sent the batch: the
 * forwarder writes an intent (its sale ids under the request's key) before
 * the POST and an ack under the same key after the answer. A sale counts
 * as booked when some origin has both an ack and an intent naming it under
 * one key, so a till that never wrote the intent (or wrote it for other
 * sales) cannot mark sales booked. Acks and intents may arrive in any
 * order: each side is kept and the grant made when the pair is complete,
 * stamped with the ack's hlc (see s_revoke). */
int tm_store__sale_acks_apply(tm_store_t *self, const tm_op_t *op, const tm_erp_ack_t *a,
                              bool intent)
{
    sqlite3_stmt *put = NULL, *other = NULL, *grant = NULL, *refresh = NULL;
    int rc = !intent && a->n_revoked ? s_revoke(self, op, a) : TM_OK;
    if (rc || !a->n || !a->idempotency_key[0])
        return rc; /* no key, no intent it can belong to: never counts */
    rc = s_prepare(self,
                   intent ? "INSERT INTO erp_intent_ids (origin, key, sale_id)"
                            " VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"
                          : "INSERT INTO erp_ack_claims (origin, key, sale_id, hlc)"
                            " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                   &put);
    if (rc == TM_OK)
        rc = s_prepare(self,
                       intent ? "SELECT hlc FROM erp_ack_claims WHERE origin = ?1 AND key = ?2"
                                " AND sale_id = ?3"
                              : "SELECT ?4 FROM erp_intent_ids WHERE origin = ?1 AND key = ?2"
                                " AND sale_id = ?3",
                       &other);
    if (rc == TM_OK)
        rc = s_prepare(self,
                       "INSERT INTO erp_acks (sale_id, hlc) VALUES (?1, ?2)"
                       " ON CONFLICT (sale_id) DO UPDATE SET hlc = max(hlc, ?2)",
                       &grant);
    if (rc == TM_OK)
        rc = s_prepare(self, ACK_REFRESH_SQL, &refresh);
    sqlite3_int64 hlc = (sqlite3_int64)(op->hlc > INT64_MAX ? INT64_MAX : op->hlc);
    for (size_t i = 0; rc == TM_OK && i < a->n; i++) {
        sqlite3_stmt *q[2] = {put, other};
        for (int j = 0; j < 2; j++) {
            sqlite3_bind_blob(q[j], 1, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
            sqlite3_bind_text(q[j], 2, a->idempotency_key, -1, SQLITE_STATIC);
            sqlite3_bind_text(q[j], 3, a->sale_ids[i], -1, SQLITE_STATIC);
        }
        if (!intent) {
            sqlite3_bind_int64(put, 4, hlc);
            sqlite3_bind_int64(other, 4, hlc);
        }
        if ((rc = tm_store__exec(self, put)))
            break;
        int src = sqlite3_step(other);
        bool paired = src == SQLITE_ROW;
        sqlite3_int64 ack_hlc = paired ? sqlite3_column_int64(other, 0) : 0;
        rc = tm_store__err(self, src);
        sqlite3_reset(other);
        if (rc || !paired)
            continue;
        sqlite3_bind_text(grant, 1, a->sale_ids[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(grant, 2, ack_hlc);
        if ((rc = tm_store__exec(self, grant)) == TM_OK)
            rc = s_ack_refresh(self, refresh, a->sale_ids[i]);
    }
    sqlite3_finalize(put);
    sqlite3_finalize(other);
    sqlite3_finalize(grant);
    sqlite3_finalize(refresh);
    return rc;
}

int tm_store_intent_close(tm_store_t *self, const char *key)
{
    sqlite3_stmt *st = NULL;
    int rc = s_prepare(self, "UPDATE erp_intents SET closed = 1 WHERE key = ?1", &st);
    if (rc == TM_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    return rc;
}

int tm_store_intent_written_by(tm_store_t *self, const char *key,
                               const uint8_t origin[TM_NODE_ID_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc =
        s_prepare(self, "SELECT 1 FROM erp_intent_ids WHERE origin = ?1 AND key = ?2 LIMIT 1", &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? 1 : tm_store__err(self, src);
    sqlite3_finalize(st);
    return rc;
}

/* 1: every sale of the intent is acknowledged or parked (close it);
 * 0: some sale still waits (re-send it); -1: some sale has not reached this
 * till yet (the intent replicated ahead of it): leave it for later. */
static int s_intent_done(tm_store_t *self, char (*ids)[TM_UUID_LEN], size_t n)
{
    sqlite3_stmt *st = NULL;
    if (s_prepare(self,
                  "SELECT acked OR sale_id IN (SELECT sale_id FROM parked WHERE active = 1)"
                  " FROM sales WHERE sale_id = ?1",
                  &st) != TM_OK)
        return -1;
    int done = 1;
    for (size_t i = 0; i < n && done >= 0; i++) {
        sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
            done = -1;
        else if (!sqlite3_column_int(st, 0))
            done = 0;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return done;
}

static int s_split_ids(const char *text, char (**ids)[TM_UUID_LEN], size_t *n)
{
    size_t len = strlen(text), k = len ? (len + 1) / TM_UUID_LEN : 0;
    *ids = NULL;
    *n = 0;
    if (!k)
        return TM_OK;
    char(*v)[TM_UUID_LEN] = calloc(k, TM_UUID_LEN);
    if (!v)
        return TM_ENOMEM;
    for (size_t i = 0; i < k; i++) {
        memcpy(v[i], text + i * TM_UUID_LEN, TM_UUID_LEN - 1);
        v[i][TM_UUID_LEN - 1] = '\0';
    }
    *ids = v;
    *n = k;
    return TM_OK;
}

int tm_store_open_intent(tm_store_t *self, char (**ids)[TM_UUID_LEN], size_t *n, char key[64])
{
    return tm_store_open_intent_except(self, NULL, NULL, ids, n, key);
}

int tm_store_open_intent_except(tm_store_t *self, tm_store_intent_skip_fn skip, void *ctx,
                                char (**ids)[TM_UUID_LEN], size_t *n, char key[64])
{
    sqlite3_stmt *st = NULL, *close_st = NULL;
    *ids = NULL;
    *n = 0;
    int rc = s_prepare(self, "SELECT key, ids FROM erp_intents WHERE closed = 0 ORDER BY hlc", &st);
    if (rc == TM_OK)
        rc = s_prepare(self, "UPDATE erp_intents SET closed = 1 WHERE key = ?1", &close_st);
    int src = SQLITE_DONE;
    while (rc == TM_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(st, 0);
        const unsigned char *t = sqlite3_column_text(st, 1);
        char(*v)[TM_UUID_LEN];
        size_t m;
        if (!k || !t || (rc = s_split_ids((const char *)t, &v, &m)))
            break;
        /* Skipped before the state check: an intent in flight is not done,
         * and must not be closed either. */
        if (skip && skip(ctx, (const char *)k, v, m)) {
            free(v);
            continue;
        }
        int state = m ? s_intent_done(self, v, m) : 1;
        if (state == 0) {
            tm_strlcpy(key, (const char *)k, 64);
            *ids = v;
            *n = m;
            sqlite3_finalize(st);
            sqlite3_finalize(close_st);
            return TM_OK;
        }
        free(v);
        if (state < 0)
            continue;
        sqlite3_bind_text(close_st, 1, (const char *)k, -1, SQLITE_TRANSIENT);
        (void)tm_store__exec(self, close_st); /* derived state: a failure only costs a re-check */
    }
    if (rc == TM_OK)
        rc = src == SQLITE_DONE ? TM_ENOTFOUND : tm_store__err(self, src);
    sqlite3_finalize(st);
    sqlite3_finalize(close_st);
    return rc;
}

int tm_store_acked_window(tm_store_t *self, uint64_t after_ins, size_t max,
                          char (**ids)[TM_UUID_LEN], size_t *n, uint64_t *last_ins)
{
    sqlite3_stmt *st = NULL;
    char(*v)[TM_UUID_LEN] = NULL;
    size_t k = 0;
    int src = SQLITE_DONE;
    *ids = NULL;
    *n = 0;
    *last_ins = 0;
    int rc = s_prepare(self,
                       "SELECT ins, sale_id FROM sales WHERE ins > ?1 AND acked = 1"
                       " ORDER BY ins LIMIT ?2",
                       &st);
    if (rc)
        return rc;
    if (max && !(v = calloc(max, sizeof *v))) {
        sqlite3_finalize(st);
        return TM_ENOMEM;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(after_ins > INT64_MAX ? INT64_MAX : after_ins));
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while (k < max && (src = sqlite3_step(st)) == SQLITE_ROW) {
        *last_ins = (uint64_t)sqlite3_column_int64(st, 0);
        s_col(st, 1, v[k++], TM_UUID_LEN);
    }
    rc = src == SQLITE_ROW ? TM_OK : tm_store__err(self, src);
    sqlite3_finalize(st);
    if (rc || !k) {
        free(v);
        *last_ins = 0;
        return rc;
    }
    *ids = v;
    *n = k;
    return TM_OK;
}
