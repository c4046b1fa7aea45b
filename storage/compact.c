/*
 * compact.c - retention: forget what the ERP has booked and nobody needs.
 *
 * Without it every till keeps every op of every till forever, so the tills
 * of a store fill their disks together. What is forgotten is narrow on
 * purpose: only sales the ERP has acknowledged, and older than the cutoff.
 * Their op keeps its row (origin, seq, hlc, kind) with an empty body and
 * the hash the digest counted it by, so:
 *  - the version vector and the digest do not change (the digest is a sum
 *    of op hashes, and the hash is kept);
 *  - a peer that lacks the op gets the stub (tm_op_t.compacted) and counts
 *    the same hash, so a till that was away longer than the retention is
 *    brought level - same vector, same digest - without the old sales;
 *  - the sale's id goes into compacted_sales, so a late copy of its op
 *    (from a till that has not compacted yet) does not resurrect it.
 * Unacknowledged sales, customers, acknowledgements and intents are never
 * touched: nothing the ERP still needs is lost.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const sql[ST_COUNT] = {
    [ST_COMPACT_PICK] = "SELECT ins, sale_id, op_origin, op_seq FROM sales"
                        " WHERE acked = 1 AND op_hlc < ?1 ORDER BY op_hlc LIMIT ?2",
    [ST_COMPACT_OP_GET] = "SELECT hlc, kind, body, compacted FROM ops"
                          " WHERE origin = ?1 AND seq = ?2",
    [ST_COMPACT_OP_STUB] = "UPDATE ops SET body = zeroblob(0), hash = ?3, compacted = 1"
                           " WHERE origin = ?1 AND seq = ?2",
    [ST_COMPACT_SALE_DEL] = "DELETE FROM sales WHERE ins = ?1",
    [ST_COMPACT_LINES_DEL] = "DELETE FROM sale_lines WHERE sale_ins = ?1",
    [ST_COMPACT_PAYS_DEL] = "DELETE FROM sale_payments WHERE sale_ins = ?1",
    [ST_COMPACT_REMEMBER] = "INSERT INTO compacted_sales (sale_id) VALUES (?1)"
                            " ON CONFLICT (sale_id) DO NOTHING",
    [ST_COMPACT_IS] = "SELECT 1 FROM compacted_sales WHERE sale_id = ?1",
};

static sqlite3_stmt *s_stmt(tm_store_t *self, int id, int *rc)
{
    return tm_store__stmt(self, id, sql[id], rc);
}

/* Turns op (origin, seq) into a stub; a missing or already compacted op is
 * left alone (the sale row is still forgotten). */
static int s_stub_op(tm_store_t *self, const uint8_t *origin, int64_t seq)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_COMPACT_OP_GET, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    int src = sqlite3_step(st);
    tm_op_t op = {.seq = (uint64_t)seq};
    bool todo = src == SQLITE_ROW && !sqlite3_column_int(st, 3);
    if (todo) {
        memcpy(op.origin, origin, TM_NODE_ID_LEN);
        op.hlc = (uint64_t)sqlite3_column_int64(st, 0);
        op.kind = (uint32_t)sqlite3_column_int64(st, 1);
        op.body = (uint8_t *)(uintptr_t)sqlite3_column_blob(st, 2);
        op.body_len = (size_t)sqlite3_column_bytes(st, 2);
        tm_store__op_hash(&op, op.hash);
    }
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? TM_OK : tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc || !todo)
        return rc;
    if (!(st = s_stmt(self, ST_COMPACT_OP_STUB, &rc)))
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_blob(st, 3, op.hash, 32, SQLITE_TRANSIENT);
    return tm_store__exec(self, st);
}

static int s_exec_i64(tm_store_t *self, int id, int64_t v)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, id, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, v);
    return tm_store__exec(self, st);
}

static int s_remember(tm_store_t *self, const char *sale_id)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_COMPACT_REMEMBER, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_TRANSIENT);
    return tm_store__exec(self, st);
}

/* One picked sale: the row of ST_COMPACT_PICK, copied out before the pick
 * statement is reset. */
typedef struct {
    int64_t ins, seq;
    uint8_t origin[TM_NODE_ID_LEN];
    char sale_id[TM_UUID_LEN];
} pick_t;

static int s_pick(tm_store_t *self, uint64_t cutoff_hlc, size_t max, pick_t *out, size_t *n)
{
    int rc = TM_OK, src;
    *n = 0;
    sqlite3_stmt *st = s_stmt(self, ST_COMPACT_PICK, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, cutoff_hlc > INT64_MAX ? INT64_MAX : (sqlite3_int64)cutoff_hlc);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        pick_t *p = &out[*n];
        if (sqlite3_column_bytes(st, 2) != TM_NODE_ID_LEN) {
            src = SQLITE_CORRUPT;
            break;
        }
        p->ins = sqlite3_column_int64(st, 0);
        const unsigned char *id = sqlite3_column_text(st, 1);
        tm_strlcpy(p->sale_id, id ? (const char *)id : "", sizeof p->sale_id);
        memcpy(p->origin, sqlite3_column_blob(st, 2), TM_NODE_ID_LEN);
        p->seq = sqlite3_column_int64(st, 3);
        (*n)++;
    }
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store_compact(tm_store_t *self, uint64_t cutoff_hlc, size_t max_sales, size_t *n_done)
{
    *n_done = 0;
    if (max_sales == 0)
        return TM_OK;
    pick_t *picks = calloc(max_sales, sizeof *picks);
    size_t n = 0;
    if (!picks)
        return TM_ENOMEM;
    self->counts_ok = false;
    int rc = tm_store__err(self, sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
    if (rc)
        goto cleanup;
    if ((rc = s_pick(self, cutoff_hlc, max_sales, picks, &n)))
        goto rollback;
    for (size_t i = 0; i < n; i++) {
        if ((rc = s_stub_op(self, picks[i].origin, picks[i].seq)) ||
            (rc = s_exec_i64(self, ST_COMPACT_LINES_DEL, picks[i].ins)) ||
            (rc = s_exec_i64(self, ST_COMPACT_PAYS_DEL, picks[i].ins)) ||
            (rc = s_exec_i64(self, ST_COMPACT_SALE_DEL, picks[i].ins)) ||
            (rc = s_remember(self, picks[i].sale_id)))
            goto rollback;
    }
    rc = tm_store__err(self, sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL));
    if (rc)
        goto rollback;
    *n_done = n;
    /* Hand freed pages back to the file system where the store allows it
     * (auto_vacuum = incremental, set when the store was made). */
    if (n)
        (void)sqlite3_exec(self->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
    goto cleanup;
rollback:
    if (!sqlite3_get_autocommit(self->db))
        (void)sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
cleanup:
    free(picks);
    return rc;
}

int tm_store_is_compacted(tm_store_t *self, const char *sale_id)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_COMPACT_IS, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store_pages(tm_store_t *self, uint64_t *used, uint64_t *free_pages, uint64_t *page_size)
{
    static const char q[] = "SELECT (SELECT page_count FROM pragma_page_count()),"
                            " (SELECT freelist_count FROM pragma_freelist_count()),"
                            " (SELECT page_size FROM pragma_page_size())";
    sqlite3_stmt *st = NULL;
    int rc = tm_store__err(self, sqlite3_prepare_v2(self->db, q, -1, &st, NULL));
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        uint64_t total = (uint64_t)sqlite3_column_int64(st, 0);
        *free_pages = (uint64_t)sqlite3_column_int64(st, 1);
        *used = total > *free_pages ? total - *free_pages : 0;
        *page_size = (uint64_t)sqlite3_column_int64(st, 2);
        src = SQLITE_OK;
    }
    rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    return rc;
}
