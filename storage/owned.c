/*
 * owned.c - a sale belongs to the till that made it, and never changes.
 *
 * Every sale op is a claim on its sale_id (the first one is the sales row
 * or its conflict; from the second on, all are listed in sale_claims,
 * which keeps a catch-up of distinct sales at one b-tree write less per
 * sale). What the sales
 * table shows for a sale_id is a function of the claims held and of the
 * origin names bound, never of the order they arrived in:
 *  - a claim is valid when its body passes the API's rules
 *    (tm_sale_validate) and its `till` is the name bound to its origin
 *    (an origin with no name bound yet is not judged on that rule; it is
 *    once its name is bound, see tm_store_bind_origin);
 *  - of the valid claims, the first by (origin, seq) is the sale. Within
 *    one origin that is its first word on the sale: a later op of the same
 *    till cannot rewrite it. Timestamps play no part (one forged op with
 *    hlc 1 rewrote a sale everywhere when they did);
 *  - every other claim whose body differs from the sale's is kept aside in
 *    sale_conflicts with its reason (a repeat of the same bytes is not a
 *    conflict). Nothing is dropped: the op stays in the log, the vector
 *    advances, the digest counts it.
 * Two sales of one till with the same receipt_no are both kept and flagged
 * (sales.dup_receipt).
 *
 * Only the first CLAIMS_MAX claims of a sale_id by (origin, seq) are
 * judged; later ones are kept aside as too_many_claims, so that a flood of
 * claims on one id costs a bounded amount of work per op.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLAIMS_MAX 32

static const char *const own_sql[ST_COUNT] = {
    [ST_OWN_NAME_GET] = "SELECT name FROM origin_names WHERE origin = ?1",
    [ST_OWN_CLAIM_PUT] = "INSERT INTO sale_claims (origin, seq, sale_id) VALUES (?1, ?2, ?3)"
                         " ON CONFLICT DO NOTHING",
    [ST_OWN_CLAIMS] = "SELECT c.origin, c.seq, o.hlc, o.body FROM sale_claims c"
                      " JOIN ops o ON o.origin = c.origin AND o.seq = c.seq"
                      " WHERE c.sale_id = ?1 ORDER BY c.origin, c.seq LIMIT ?2",
    [ST_OWN_ROW_GET] = "SELECT ins, op_origin, op_seq, till, receipt_no, refund_of FROM sales"
                       " WHERE sale_id = ?1",
    [ST_OWN_CONFLICTS_DEL] = "DELETE FROM sale_conflicts WHERE sale_id = ?1 AND reason <>"
                             " 'too_many_claims'",
    [ST_OWN_CONFLICT_PUT] = "INSERT INTO sale_conflicts (origin, seq, sale_id, reason)"
                            " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (origin, seq) DO UPDATE SET"
                            " reason = excluded.reason",
    [ST_OWN_RECEIPT_N] = "SELECT count(*) FROM (SELECT 1 FROM sales WHERE till = ?1"
                         " AND receipt_no = ?2 LIMIT 2)",
    [ST_OWN_IS_CONFLICT] = "SELECT 1 FROM sale_conflicts WHERE origin = ?1 AND seq = ?2",
    /* 2: forgotten by retention (compact.c), else 1: claimed, 0: not. One
     * statement for what a catch-up asks of every sale op. */
    [ST_OWN_CLAIMED] = "SELECT CASE WHEN EXISTS (SELECT 1 FROM compacted_sales WHERE sale_id = ?1)"
                       " THEN 2 ELSE EXISTS (SELECT 1 FROM sales WHERE sale_id = ?1) OR EXISTS"
                       " (SELECT 1 FROM sale_claims WHERE sale_id = ?1) OR EXISTS (SELECT 1 FROM"
                       " sale_conflicts WHERE sale_id = ?1) END",
    /* A sale_id's claims are written out only once it has two: until then
     * its one claim is the sales row or its conflict. */
    [ST_OWN_BACKFILL] = "INSERT INTO sale_claims (sale_id, origin, seq) SELECT sale_id, op_origin,"
                        " op_seq FROM sales WHERE sale_id = ?1 UNION ALL SELECT sale_id, origin,"
                        " seq FROM sale_conflicts WHERE sale_id = ?1 ON CONFLICT DO NOTHING",
    [ST_OWN_RECEIPT_SET] = "UPDATE sales SET dup_receipt = ?3 WHERE till = ?1 AND receipt_no = ?2"
                           " AND dup_receipt <> ?3",
};

static sqlite3_stmt *s_stmt(tm_store_t *self, int id, int *rc)
{
    return tm_store__stmt(self, id, own_sql[id], rc);
}

static void s_col_text(sqlite3_stmt *st, int i, char *dst, size_t dstsz)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    tm_strlcpy(dst, t ? (const char *)t : "", dstsz);
}

/* ---- origin names ----------------------------------------------------- */

int tm_store__origin_name(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN],
                          char name[TM_TILL_MAX])
{
    int rc = TM_OK;
    name[0] = '\0';
    if (self->name_cached && memcmp(self->name_origin, origin, TM_NODE_ID_LEN) == 0) {
        tm_strlcpy(name, self->name, TM_TILL_MAX);
        return TM_OK;
    }
    sqlite3_stmt *st = s_stmt(self, ST_OWN_NAME_GET, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        s_col_text(st, 0, name, TM_TILL_MAX);
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc == TM_OK) {
        memcpy(self->name_origin, origin, TM_NODE_ID_LEN);
        tm_strlcpy(self->name, name, sizeof self->name);
        self->name_cached = true;
    }
    return rc;
}

/* ---- judging claims --------------------------------------------------- */

typedef struct {
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t seq, hlc;
    const void *body;
    size_t len;
    tm_sale_t sale;
    bool decoded;
    char reason[96]; /* "" when valid */
} claim_t;

/* Fills c->reason: "" when the claim may be the sale. */
static int s_judge(tm_store_t *self, claim_t *c)
{
    tm_field_errors_t errs;
    char owner[TM_TILL_MAX];
    int rc = tm_wire_sale_decode(c->body, c->len, &c->sale);
    if (rc == TM_ENOMEM)
        return rc;
    c->decoded = rc == TM_OK;
    if (!c->decoded) {
        tm_strlcpy(c->reason, "invalid:body", sizeof c->reason);
        return TM_OK;
    }
    tm_field_errors_init(&errs);
    if (tm_sale_validate(&c->sale, &errs) != TM_OK) {
        snprintf(c->reason, sizeof c->reason, "invalid:%.40s:%.40s", errs.n ? errs.e[0].field : "",
                 errs.n ? errs.e[0].rule : "");
        return TM_OK;
    }
    if ((rc = tm_store__origin_name(self, c->origin, owner)))
        return rc;
    if (owner[0] && strcmp(owner, c->sale.till) != 0)
        tm_strlcpy(c->reason, "till_not_origin", sizeof c->reason);
    return TM_OK;
}

static void s_claims_free(claim_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tm_sale_free(&v[i].sale);
    free(v);
}

/* The first `max` claims on sale_id by (origin, seq), judged. Bodies point
 * into the statement's row memory only while it is stepped, so each is
 * judged (decoded into its own memory) before the next step. */
static int s_claims_load(tm_store_t *self, const char *sale_id, size_t max, claim_t **out,
                         size_t *n)
{
    int rc = TM_OK, src = SQLITE_DONE;
    claim_t *v = calloc(max, sizeof *v);
    size_t k = 0;
    *out = NULL;
    *n = 0;
    if (!v)
        return TM_ENOMEM;
    sqlite3_stmt *st = s_stmt(self, ST_OWN_CLAIMS, &rc);
    if (!st) {
        free(v);
        return rc;
    }
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while (rc == TM_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        claim_t *c = &v[k++];
        const void *o = sqlite3_column_blob(st, 0);
        if (!o || sqlite3_column_bytes(st, 0) != TM_NODE_ID_LEN) {
            rc = TM_ECORRUPT;
            break;
        }
        memcpy(c->origin, o, TM_NODE_ID_LEN);
        c->seq = (uint64_t)sqlite3_column_int64(st, 1);
        c->hlc = (uint64_t)sqlite3_column_int64(st, 2);
        c->body = sqlite3_column_blob(st, 3);
        c->len = (size_t)sqlite3_column_bytes(st, 3);
        rc = s_judge(self, c);
        c->body = NULL; /* gone at the next step */
    }
    if (rc == TM_OK)
        rc = tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc) {
        s_claims_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return TM_OK;
}

/* Whether two claims carry the same sale: re-encoding both gives the same
 * bytes exactly when every field is equal. */
static bool s_same_sale(const tm_sale_t *a, const tm_sale_t *b)
{
    uint8_t *ea = NULL, *eb = NULL;
    size_t la = 0, lb = 0;
    bool same = tm_wire_sale_encode(a, &ea, &la) == TM_OK &&
                tm_wire_sale_encode(b, &eb, &lb) == TM_OK && la == lb && memcmp(ea, eb, la) == 0;
    free(ea);
    free(eb);
    return same;
}

/* ---- writing the verdict ---------------------------------------------- */

static int s_conflict_put(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN], uint64_t seq,
                          const char *sale_id, const char *reason)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_OWN_CONFLICT_PUT, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_text(st, 3, sale_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    return tm_store__exec(self, st);
}

/* Sets dup_receipt on every sale of (till, receipt_no) to whether there
 * are two or more. */
static int s_receipt_group(tm_store_t *self, const char *till, int64_t receipt_no)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_OWN_RECEIPT_N, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, till, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, receipt_no);
    int src = sqlite3_step(st);
    int dup = src == SQLITE_ROW && sqlite3_column_int(st, 0) > 1;
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc || !(st = s_stmt(self, ST_OWN_RECEIPT_SET, &rc)))
        return rc;
    sqlite3_bind_text(st, 1, till, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, receipt_no);
    sqlite3_bind_int(st, 3, dup);
    return tm_store__exec(self, st);
}

typedef struct {
    int64_t ins; /* 0: no row */
    uint8_t origin[TM_NODE_ID_LEN];
    uint64_t seq;
    char till[TM_TILL_MAX];
    int64_t receipt_no;
    char refund_of[TM_UUID_LEN];
} row_t;

static int s_row_get(tm_store_t *self, const char *sale_id, row_t *r)
{
    int rc = TM_OK;
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = s_stmt(self, ST_OWN_ROW_GET, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const void *o = sqlite3_column_blob(st, 1);
        r->ins = sqlite3_column_int64(st, 0);
        if (o && sqlite3_column_bytes(st, 1) == TM_NODE_ID_LEN)
            memcpy(r->origin, o, TM_NODE_ID_LEN);
        r->seq = (uint64_t)sqlite3_column_int64(st, 2);
        s_col_text(st, 3, r->till, sizeof r->till);
        r->receipt_no = sqlite3_column_int64(st, 4);
        s_col_text(st, 5, r->refund_of, sizeof r->refund_of);
    }
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

/* Makes the row and the conflicts of sale_id what its claims say. */
static int s_settle(tm_store_t *self, const char *sale_id)
{
    claim_t *v = NULL;
    size_t n = 0;
    row_t row;
    int rc = TM_OK;
    sqlite3_stmt *fill = s_stmt(self, ST_OWN_BACKFILL, &rc);
    if (!fill)
        return rc;
    sqlite3_bind_text(fill, 1, sale_id, -1, SQLITE_STATIC);
    if ((rc = tm_store__exec(self, fill)) ||
        (rc = s_claims_load(self, sale_id, CLAIMS_MAX + 1, &v, &n)))
        return rc;
    if (rc)
        return rc;
    const claim_t *win = NULL;
    for (size_t i = 0; i < n && i < CLAIMS_MAX && !win; i++)
        if (!v[i].reason[0])
            win = &v[i];
    sqlite3_stmt *st = s_stmt(self, ST_OWN_CONFLICTS_DEL, &rc);
    if (!st)
        goto cleanup;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    if ((rc = tm_store__exec(self, st)))
        goto cleanup;
    for (size_t i = 0; i < n && rc == TM_OK; i++) {
        const claim_t *c = &v[i];
        const char *why = i >= CLAIMS_MAX                                 ? "too_many_claims"
                          : c->reason[0]                                  ? c->reason
                          : c == win || s_same_sale(&c->sale, &win->sale) ? NULL
                                                                          : "different_body";
        if (why)
            rc = s_conflict_put(self, c->origin, c->seq, sale_id, why);
    }
    if (rc || (rc = s_row_get(self, sale_id, &row)))
        goto cleanup;
    if (win && row.ins && memcmp(row.origin, win->origin, TM_NODE_ID_LEN) == 0 &&
        row.seq == win->seq)
        goto cleanup; /* already shows it */
    if (win) {
        tm_op_t op = {.seq = win->seq, .hlc = win->hlc, .kind = TM_OP_SALE};
        int64_t ins;
        memcpy(op.origin, win->origin, TM_NODE_ID_LEN);
        if ((rc = tm_store__sale_put(self, &op, &win->sale, row.ins, &ins)) ||
            (rc = s_receipt_group(self, win->sale.till, (int64_t)win->sale.receipt_no)))
            goto cleanup;
    } else if (row.ins && (rc = tm_store__sale_drop(self, row.ins))) {
        goto cleanup;
    }
    if (row.ins && (rc = s_receipt_group(self, row.till, row.receipt_no)))
        goto cleanup;
    rc = tm_store__sale_reviews(self, sale_id, win ? &win->sale : NULL, row.refund_of);
cleanup:
    s_claims_free(v, n);
    return rc;
}

/* 1 if some op already claims sale_id, 0 if none, <0 on error. */
static int s_claimed(tm_store_t *self, const char *sale_id)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_OWN_CLAIMED, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? sqlite3_column_int(st, 0) : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

/* The first claim on a sale_id (nearly every sale): judged from the body
 * already decoded, with the same rules as s_settle, without reading
 * anything back. */
static int s_first_claim(tm_store_t *self, const tm_op_t *op, const tm_sale_t *s)
{
    claim_t c = {.seq = op->seq};
    tm_field_errors_t errs;
    char owner[TM_TILL_MAX];
    int64_t ins;
    memcpy(c.origin, op->origin, TM_NODE_ID_LEN);
    tm_field_errors_init(&errs);
    if (tm_sale_validate(s, &errs) != TM_OK) {
        snprintf(c.reason, sizeof c.reason, "invalid:%.40s:%.40s", errs.n ? errs.e[0].field : "",
                 errs.n ? errs.e[0].rule : "");
    } else {
        int rc = tm_store__origin_name(self, op->origin, owner);
        if (rc)
            return rc;
        if (owner[0] && strcmp(owner, s->till) != 0)
            tm_strlcpy(c.reason, "till_not_origin", sizeof c.reason);
    }
    if (c.reason[0]) {
        self->kept_aside++;
        return s_conflict_put(self, op->origin, op->seq, s->sale_id, c.reason);
    }
    int rc = tm_store__sale_put(self, op, s, 0, &ins);
    if (rc)
        return rc;
    /* Only another sale with this receipt number needs the flags set. */
    sqlite3_stmt *st = s_stmt(self, ST_OWN_RECEIPT_N, &rc);
    if (!st)
        return rc;
    sqlite3_bind_text(st, 1, s->till, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)s->receipt_no);
    int src = sqlite3_step(st);
    bool dup = src == SQLITE_ROW && sqlite3_column_int(st, 0) > 1;
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc == TM_OK && dup)
        rc = s_receipt_group(self, s->till, (int64_t)s->receipt_no);
    return rc ? rc : tm_store__sale_reviews(self, s->sale_id, s, "");
}

/* Counts the op if it ended up kept aside (for the caller's log line). */
static int s_count_kept(tm_store_t *self, const tm_op_t *op, int rc)
{
    if (rc)
        return rc;
    sqlite3_stmt *st = s_stmt(self, ST_OWN_IS_CONFLICT, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)op->seq);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        self->kept_aside++; /* may count an op of a rolled back batch: only a log line */
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

uint64_t tm_store_kept_aside(const tm_store_t *self)
{
    return self->kept_aside;
}

int tm_store__sale_claim(tm_store_t *self, const tm_op_t *op, const tm_sale_t *s)
{
    int rc = s_claimed(self, s->sale_id);
    if (rc < 0)
        return rc;
    if (rc == 2)
        return TM_OK; /* forgotten by retention: stays forgotten */
    if (rc == 0)
        return s_first_claim(self, op, s); /* counts itself if kept aside */
    sqlite3_stmt *fill = s_stmt(self, ST_OWN_BACKFILL, &rc);
    if (!fill)
        return rc;
    sqlite3_bind_text(fill, 1, s->sale_id, -1, SQLITE_STATIC);
    if ((rc = tm_store__exec(self, fill)))
        return rc;
    sqlite3_stmt *st = s_stmt(self, ST_OWN_CLAIM_PUT, &rc);
    if (!st)
        return rc;
    sqlite3_bind_blob(st, 1, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)op->seq);
    sqlite3_bind_text(st, 3, s->sale_id, -1, SQLITE_STATIC);
    if ((rc = tm_store__exec(self, st)))
        return rc;
    return s_count_kept(self, op, s_settle(self, s->sale_id));
}

/* ---- public ----------------------------------------------------------- */

static int s_exec_sql(tm_store_t *self, const char *sql)
{
    return tm_store__err(self, sqlite3_exec(self->db, sql, NULL, NULL, NULL));
}

/* Settles again every sale the new name may change: those the origin's
 * claims show under another till name, and those it has kept aside. */
static int s_resettle_origin(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN],
                             const char *name)
{
    sqlite3_stmt *st = NULL;
    char(*ids)[TM_UUID_LEN] = NULL;
    size_t n = 0;
    int rc = tm_store__err(
        self, sqlite3_prepare_v2(self->db,
                                 "SELECT sale_id FROM sales WHERE op_origin = ?1 AND till <> ?2"
                                 " UNION SELECT sale_id FROM sale_conflicts WHERE origin = ?1",
                                 -1, &st, NULL));
    int src = SQLITE_DONE;
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        char(*a)[TM_UUID_LEN] = realloc(ids, (n + 1) * sizeof *ids);
        if (!a) {
            rc = TM_ENOMEM;
            break;
        }
        ids = a;
        s_col_text(st, 0, ids[n++], TM_UUID_LEN);
    }
    if (rc == TM_OK)
        rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    for (size_t i = 0; i < n && rc == TM_OK; i++)
        rc = s_settle(self, ids[i]);
    free(ids);
    return rc;
}

int tm_store_bind_origin(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN], const char *name)
{
    char cur[TM_TILL_MAX];
    if (!name || !name[0] || strlen(name) >= TM_TILL_MAX)
        return TM_EINVAL;
    int rc = tm_store__origin_name(self, origin, cur);
    if (rc)
        return rc;
    if (cur[0])
        return strcmp(cur, name) == 0 ? TM_OK : TM_ECONFLICT;
    sqlite3_stmt *st = NULL;
    if ((rc = s_exec_sql(self, "BEGIN IMMEDIATE")))
        return rc;
    rc = tm_store__err(self, sqlite3_prepare_v2(self->db,
                                                "INSERT INTO origin_names (origin, name)"
                                                " VALUES (?1, ?2)",
                                                -1, &st, NULL));
    if (rc == TM_OK) {
        sqlite3_bind_blob(st, 1, origin, TM_NODE_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        rc = tm_store__exec(self, st);
    }
    sqlite3_finalize(st);
    self->name_cached = false;
    if (rc == TM_OK)
        rc = s_resettle_origin(self, origin, name);
    if (rc == TM_OK)
        rc = s_exec_sql(self, "COMMIT");
    if (rc) {
        (void)sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
        self->name_cached = false; /* may hold the name just rolled back */
        return rc;
    }
    self->counts_ok = false;
    return TM_OK;
}

int tm_store_origin_name(tm_store_t *self, const uint8_t origin[TM_NODE_ID_LEN],
                         char name[TM_TILL_MAX])
{
    return tm_store__origin_name(self, origin, name);
}

static void s_conflict_row(sqlite3_stmt *st, tm_sale_conflict_t *c)
{
    const void *o = sqlite3_column_blob(st, 0);
    memset(c, 0, sizeof *c);
    if (o && sqlite3_column_bytes(st, 0) == TM_NODE_ID_LEN)
        memcpy(c->origin, o, TM_NODE_ID_LEN);
    c->seq = (uint64_t)sqlite3_column_int64(st, 1);
    s_col_text(st, 2, c->sale_id, sizeof c->sale_id);
    s_col_text(st, 3, c->reason, sizeof c->reason);
}

int tm_store_conflicts(tm_store_t *self, size_t max, tm_sale_conflict_t **out, size_t *n,
                       tm_conflict_counts_t *counts)
{
    sqlite3_stmt *st = NULL;
    tm_sale_conflict_t *v = NULL;
    size_t k = 0;
    int src = SQLITE_DONE;
    *out = NULL;
    *n = 0;
    memset(counts, 0, sizeof *counts);
    int rc = tm_store__err(
        self, sqlite3_prepare_v2(self->db,
                                 "SELECT (SELECT count(*) FROM sale_conflicts),"
                                 " (SELECT count(*) FROM sale_conflicts WHERE reason ="
                                 "  'different_body'),"
                                 " (SELECT count(*) FROM sale_conflicts WHERE reason ="
                                 "  'till_not_origin'),"
                                 " (SELECT count(*) FROM sale_conflicts WHERE reason LIKE"
                                 "  'invalid:%'),"
                                 " (SELECT count(*) FROM sales WHERE dup_receipt = 1)",
                                 -1, &st, NULL));
    if (rc)
        return rc;
    if ((src = sqlite3_step(st)) == SQLITE_ROW) {
        counts->total = (uint64_t)sqlite3_column_int64(st, 0);
        counts->different_body = (uint64_t)sqlite3_column_int64(st, 1);
        counts->till_not_origin = (uint64_t)sqlite3_column_int64(st, 2);
        counts->invalid = (uint64_t)sqlite3_column_int64(st, 3);
        counts->dup_receipt = (uint64_t)sqlite3_column_int64(st, 4);
    }
    rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    st = NULL;
    if (rc || max == 0)
        return rc;
    rc = tm_store__err(self, sqlite3_prepare_v2(self->db,
                                                "SELECT origin, seq, sale_id, reason FROM"
                                                " sale_conflicts ORDER BY sale_id, origin, seq"
                                                " LIMIT ?1",
                                                -1, &st, NULL));
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        tm_sale_conflict_t *a = realloc(v, (k + 1) * sizeof *v);
        if (!a) {
            rc = TM_ENOMEM;
            break;
        }
        v = a;
        s_conflict_row(st, &v[k++]);
    }
    if (rc == TM_OK)
        rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return TM_OK;
}
