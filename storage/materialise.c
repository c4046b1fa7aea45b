/*
 * materialise.c - turns ops into the tables the API reads, and reads them.
 *
 * Every function that writes runs inside the caller's transaction (see
 * s_write_ops in store.c) and must give the same tables whatever order the
 * ops arrive in:
 *  - sales: one row per sale_id, immutable: which of the ops naming a
 *    sale_id the row shows is settled in owned.c (the sale's owner, rules,
 *    conflicts kept aside), never by a timestamp.
 *  - customers: per field, the value with the greatest (hlc, node) stamp
 *    (tm_customer_merge); the id type is one more such register.
 *  - ERP acks: a grow-only set of sale ids, also mirrored into sales.acked
 *    so that "what is not acknowledged yet" is an index range scan. An ack
 *    counts only for ids of an intent its own origin wrote (erp.c).
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SALE_COLS TM_STORE__SALE_COLS

static const char *const mat_sql[ST_COUNT] = {
    [ST_SALE_DELETE] = "DELETE FROM sales WHERE ins = ?1",
    /* acked: the ack may have arrived before the sale. */
    [ST_SALE_INSERT] = "INSERT INTO sales (sale_id, till, receipt_no, created_at, currency, total,"
                       " customer_id, customer_id_type, customer_email, refund_of, op_origin,"
                       " op_seq, op_hlc, clock_offset_ms, clock_skewed, acked) VALUES (?1, ?2,"
                       " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                       " EXISTS (SELECT 1 FROM erp_acks a WHERE a.sale_id = ?1 AND a.hlc >"
                       " coalesce((SELECT hlc FROM erp_revoked WHERE sale_id = ?1), -1)))",
    [ST_SALE_UPDATE] = "UPDATE sales SET sale_id = ?1, till = ?2, receipt_no = ?3,"
                       " created_at = ?4, currency = ?5, total = ?6, customer_id = ?7,"
                       " customer_id_type = ?8, customer_email = ?9, refund_of = ?10,"
                       " op_origin = ?11, op_seq = ?12, op_hlc = ?13, clock_offset_ms = ?14,"
                       " clock_skewed = ?15, review = 0, dup_receipt = 0 WHERE ins = ?16",
    [ST_SALE_BY_ID] = "SELECT " SALE_COLS " FROM sales WHERE sale_id = ?1",
    [ST_SALE_LIST] = "SELECT " SALE_COLS " FROM sales WHERE ins > ?1 ORDER BY ins LIMIT ?2",
    [ST_LINES_DELETE] = "DELETE FROM sale_lines WHERE sale_ins = ?1",
    [ST_LINE_INSERT] = "INSERT INTO sale_lines (sale_ins, idx, sku, name, qty, unit_price,"
                       " discount, tax_rate, catalogue_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                       " ?8, ?9)",
    [ST_LINES_GET] = "SELECT sku, name, qty, unit_price, discount, tax_rate, catalogue_version"
                     " FROM sale_lines"
                     " WHERE sale_ins = ?1 ORDER BY idx",
    [ST_PAYS_DELETE] = "DELETE FROM sale_payments WHERE sale_ins = ?1",
    [ST_PAY_INSERT] = "INSERT INTO sale_payments (sale_ins, idx, method, amount, reference)"
                      " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_PAYS_GET] = "SELECT method, amount, reference FROM sale_payments WHERE sale_ins = ?1"
                    " ORDER BY idx",
    [ST_CUST_GET] = "SELECT id_type, type_hlc, type_node FROM customers WHERE id = ?1",
    [ST_CUST_PUT] = "INSERT INTO customers (id, id_type, type_hlc, type_node)"
                    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET"
                    " id_type = excluded.id_type, type_hlc = excluded.type_hlc,"
                    " type_node = excluded.type_node",
    [ST_CUST_FIELDS_GET] = "SELECT field, value, hlc, node FROM customer_fields"
                           " WHERE customer_id = ?1",
    [ST_CUST_FIELD_PUT] = "INSERT INTO customer_fields (customer_id, field, value, hlc, node)"
                          " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (customer_id, field)"
                          " DO UPDATE SET value = excluded.value, hlc = excluded.hlc,"
                          " node = excluded.node",
    [ST_ACK_IS] = "SELECT 1 FROM erp_acks a WHERE a.sale_id = ?1 AND a.hlc >"
                  " coalesce((SELECT hlc FROM erp_revoked WHERE sale_id = ?1), -1)",
    [ST_UNACKED] = "SELECT sale_id FROM sales WHERE acked = 0"
                   " AND sale_id NOT IN (SELECT sale_id FROM parked WHERE active = 1)"
                   " ORDER BY op_hlc, op_origin, op_seq LIMIT ?1",
    [ST_MAX_RECEIPT] = "SELECT max(receipt_no) FROM sales WHERE till = ?1",
    [ST_CUST_STAMP] = "SELECT max(type_hlc, coalesce((SELECT max(hlc) FROM customer_fields"
                      " WHERE customer_id = ?1), 0)) FROM customers WHERE id = ?1",
};

static sqlite3_stmt *s_stmt(tm_store_t *self, int id, int *rc)
{
    return tm_store__stmt(self, id, mat_sql[id], rc);
}

static void s_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static void s_col_text(sqlite3_stmt *st, int i, char *dst, size_t dstsz)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    tm_strlcpy(dst, t ? (const char *)t : "", dstsz);
}

static int64_t s_clamp_i64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* ---- decoding op bodies ----------------------------------------------- */

int tm_store__rec_decode(uint32_t kind, const uint8_t *body, size_t len, tm_store__rec_t *out)
{
    static const uint8_t empty[1];
    int rc;
    memset(out, 0, sizeof *out);
    if (!body)
        body = empty;
    switch (kind) {
    case TM_OP_SALE:
        rc = tm_wire_sale_decode(body, len, &out->u.sale);
        /* The sale id is the CRDT key: it must be a real UUID. */
        if (rc == TM_OK && !tm_uuid_valid(out->u.sale.sale_id)) {
            tm_sale_free(&out->u.sale);
            rc = TM_EPROTO;
        }
        break;
    case TM_OP_CUSTOMER: rc = tm_wire_customer_decode(body, len, &out->u.cust); break;
    case TM_OP_ERP_ACK:
    case TM_OP_ERP_INTENT: rc = tm_wire_ack_decode(body, len, &out->u.ack); break;
    case TM_OP_SEAL: rc = tm_wire_seal_decode(body, len, &out->u.seal.e, &out->u.seal.n); break;
    case TM_OP_CATALOGUE: rc = tm_wire_catalogue_decode(body, len, &out->u.page); break;
    case TM_OP_REISSUE: rc = tm_store__reissue_decode(body, len, &out->u.reissue); break;
    default: rc = TM_EPROTO; break;
    }
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc == TM_ENOMEM ? TM_ENOMEM : TM_EPROTO;
    }
    out->kind = kind;
    return TM_OK;
}

void tm_store__rec_free(tm_store__rec_t *rec)
{
    if (rec->kind == TM_OP_SALE)
        tm_sale_free(&rec->u.sale);
    else if (rec->kind == TM_OP_ERP_ACK || rec->kind == TM_OP_ERP_INTENT)
        tm_erp_ack_free(&rec->u.ack);
    else if (rec->kind == TM_OP_SEAL)
        free(rec->u.seal.e);
    else if (rec->kind == TM_OP_CATALOGUE)
        tm_catalogue_page_free(&rec->u.page);
    else if (rec->kind == TM_OP_REISSUE)
        free(rec->u.reissue.e);
    memset(rec, 0, sizeof *rec);
}

/* ---- sales: writing --------------------------------------------------- */

/* -1, 0, 1 as (hlc, origin, seq) of a is below, equal to, above b's. */
static int s_op_key_cmp(uint64_t ha, const uint8_t *oa, uint64_t sa, uint64_t hb, const uint8_t *ob,
                        uint64_t sb)
{
    if (ha != hb)
        return ha < hb ? -1 : 1;
    int c = memcmp(oa, ob, TM_NODE_ID_LEN);
    if (c)
        return c < 0 ? -1 : 1;
    return sa < sb ? -1 : sa > sb;
}

/* Parameters ?1..?15 of ST_SALE_INSERT and ST_SALE_UPDATE. */
static void s_bind_sale(sqlite3_stmt *st, const tm_op_t *op, const tm_sale_t *s)
{
    s_bind_text(st, 1, s->sale_id);
    s_bind_text(st, 2, s->till);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)s->receipt_no);
    s_bind_text(st, 4, s->created_at);
    s_bind_text(st, 5, s->currency);
    sqlite3_bind_int64(st, 6, s->total);
    if (s->has_customer)
        s_bind_text(st, 7, s->customer_id);
    else
        sqlite3_bind_null(st, 7);
    sqlite3_bind_int(st, 8, (int)s->customer_id_type);
    s_bind_text(st, 9, s->customer_email);
    s_bind_text(st, 10, s->refund_of);
    sqlite3_bind_blob(st, 11, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)op->seq);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)op->hlc);
    if (s->has_clock)
        sqlite3_bind_int64(st, 14, s->clock_offset_ms);
    else
        sqlite3_bind_null(st, 14);
    sqlite3_bind_int(st, 15, s->has_clock && s->clock_skewed);
}

/* Runs a one-parameter statement (sale_ins) such as the DELETEs. */
static int s_exec_ins(tm_store_t *self, int id, int64_t ins)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, id, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, ins);
    return tm_store__exec(self, st);
}

static int s_sale_children_put(tm_store_t *self, int64_t ins, const tm_sale_t *s)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_LINE_INSERT, &rc);
    for (size_t i = 0; st && rc == TM_OK && i < s->n_lines; i++) {
        const tm_sale_line_t *l = &s->lines[i];
        sqlite3_bind_int64(st, 1, ins);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        s_bind_text(st, 3, l->sku);
        s_bind_text(st, 4, l->name);
        sqlite3_bind_int64(st, 5, l->qty);
        sqlite3_bind_int64(st, 6, l->unit_price);
        sqlite3_bind_int64(st, 7, l->discount);
        sqlite3_bind_int(st, 8, l->tax_rate);
        sqlite3_bind_int64(st, 9, s_clamp_i64(l->catalogue_version));
        rc = tm_store__exec(self, st);
    }
    if (rc || !(st = s_stmt(self, ST_PAY_INSERT, &rc)))
        return rc;
    for (size_t i = 0; rc == TM_OK && i < s->n_payments; i++) {
        const tm_payment_t *p = &s->payments[i];
        sqlite3_bind_int64(st, 1, ins);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        sqlite3_bind_int(st, 3, (int)p->method);
        sqlite3_bind_int64(st, 4, p->amount);
        s_bind_text(st, 5, p->reference);
        rc = tm_store__exec(self, st);
    }
    return rc;
}

int tm_store__sale_reviews(tm_store_t *self, const char *sale_id, const tm_sale_t *s,
                           const char *old_ref)
{
    int rc = TM_OK;
    const char *ref = s ? s->refund_of : "";
    if (ref[0])
        rc = tm_store__review_group(self, ref);
    if (rc == TM_OK && old_ref[0] && strcasecmp(old_ref, ref) != 0)
        rc = tm_store__review_group(self, old_ref);
    if (rc == TM_OK && (rc = tm_store__has_returns(self, sale_id)) == 1)
        rc = tm_store__review_group(self, sale_id);
    /* A sale that went away leaves its returns without an original. */
    if (rc == TM_OK && !s)
        rc = tm_store__review_group(self, sale_id);
    return rc < 0 ? rc : TM_OK;
}

int tm_store__sale_put(tm_store_t *self, const tm_op_t *op, const tm_sale_t *s, int64_t ins,
                       int64_t *ins_out)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ins ? ST_SALE_UPDATE : ST_SALE_INSERT, &rc);
    if (!st)
        return rc;
    s_bind_sale(st, op, s);
    if (ins) {
        /* The row keeps its ins: the list order is when this store first
         * saw the sale id, whichever op ends up describing it. */
        sqlite3_bind_int64(st, 16, ins);
        if ((rc = tm_store__exec(self, st)) || (rc = s_exec_ins(self, ST_LINES_DELETE, ins)) ||
            (rc = s_exec_ins(self, ST_PAYS_DELETE, ins)))
            return rc;
    } else {
        if ((rc = tm_store__exec(self, st)))
            return rc;
        ins = sqlite3_last_insert_rowid(self->db);
    }
    *ins_out = ins;
    return s_sale_children_put(self, ins, s);
}

int tm_store__sale_drop(tm_store_t *self, int64_t ins)
{
    int rc;
    if ((rc = s_exec_ins(self, ST_LINES_DELETE, ins)) ||
        (rc = s_exec_ins(self, ST_PAYS_DELETE, ins)))
        return rc;
    return s_exec_ins(self, ST_SALE_DELETE, ins);
}

/* A sale forgotten by retention stays forgotten: sale_claim asks. */
static int s_sale_apply(tm_store_t *self, const tm_op_t *op, const tm_sale_t *s)
{
    return tm_store__sale_claim(self, op, s);
}

/* ---- customers -------------------------------------------------------- */

typedef struct {
    uint64_t hlc;
    uint8_t node[TM_NODE_ID_LEN];
} stamp_t;

static void s_col_node(sqlite3_stmt *st, int i, uint8_t out[TM_NODE_ID_LEN])
{
    int n = sqlite3_column_bytes(st, i);
    const void *b = sqlite3_column_blob(st, i);
    memset(out, 0, TM_NODE_ID_LEN);
    if (b)
        memcpy(out, b, n < TM_NODE_ID_LEN ? (size_t)n : TM_NODE_ID_LEN);
}

static int s_cust_fields_load(tm_store_t *self, tm_customer_t *out)
{
    int rc = TM_OK, src;
    sqlite3_stmt *st = s_stmt(self, ST_CUST_FIELDS_GET, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, out->id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t f = sqlite3_column_int64(st, 0);
        if (f < 0 || f >= TM_CF_COUNT)
            continue; /* a field this build does not know */
        tm_cust_value_t *v = &out->f[f];
        v->set = true;
        s_col_text(st, 1, v->value, sizeof v->value);
        v->hlc = (uint64_t)sqlite3_column_int64(st, 2);
        s_col_node(st, 3, v->node);
    }
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

/* Loads customer id; TM_ENOTFOUND if no op ever named it. *type_stamp
 * (may be NULL) receives the stamp of the id type. */
static int s_cust_load(tm_store_t *self, const char *id, tm_customer_t *out, stamp_t *type_stamp)
{
    int rc = TM_OK;
    memset(out, 0, sizeof *out);
    if (strlen(id) >= sizeof out->id)
        return TM_ENOTFOUND;
    tm_strlcpy(out->id, id, sizeof out->id);
    sqlite3_stmt *st = s_stmt(self, ST_CUST_GET, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        out->id_type = (tm_id_type_t)sqlite3_column_int(st, 0);
        if (type_stamp) {
            type_stamp->hlc = (uint64_t)sqlite3_column_int64(st, 1);
            s_col_node(st, 2, type_stamp->node);
        }
    }
    rc = src == SQLITE_DONE ? TM_ENOTFOUND : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc ? rc : s_cust_fields_load(self, out);
}

static int s_cust_type_put(tm_store_t *self, const tm_op_t *op, const tm_customer_t *p)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_CUST_PUT, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, p->id);
    sqlite3_bind_int(st, 2, (int)p->id_type);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)op->hlc);
    sqlite3_bind_blob(st, 4, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    return tm_store__exec(self, st);
}

static int s_cust_field_put(tm_store_t *self, const char *id, int f, const tm_cust_value_t *v)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_CUST_FIELD_PUT, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, f);
    s_bind_text(st, 3, v->value);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)v->hlc);
    sqlite3_bind_blob(st, 5, v->node, TM_NODE_ID_LEN, SQLITE_STATIC);
    return tm_store__exec(self, st);
}

static bool s_same_value(const tm_cust_value_t *a, const tm_cust_value_t *b)
{
    return a->set && b->set && a->hlc == b->hlc && memcmp(a->node, b->node, TM_NODE_ID_LEN) == 0 &&
           strcmp(a->value, b->value) == 0;
}

static int s_cust_apply(tm_store_t *self, const tm_op_t *op, tm_customer_t *patch)
{
    tm_customer_t cur;
    stamp_t ts = {0};
    tm_customer_stamp(patch, op->hlc, op->origin);
    int rc = s_cust_load(self, patch->id, &cur, &ts);
    if (rc != TM_OK && rc != TM_ENOTFOUND)
        return rc;
    /* The id type is a register too; the value breaks an (impossible in a
     * healthy mesh) tie of stamps so that every store picks the same. */
    int c = s_op_key_cmp(op->hlc, op->origin, 0, ts.hlc, ts.node, 0);
    if (rc == TM_ENOTFOUND || c > 0 || (c == 0 && patch->id_type > cur.id_type)) {
        if ((rc = s_cust_type_put(self, op, patch)))
            return rc;
    }
    tm_customer_merge(&cur, patch);
    /* Write back only the fields the patch won. */
    rc = TM_OK;
    for (int f = 0; f < TM_CF_COUNT && rc == TM_OK; f++)
        if (s_same_value(&cur.f[f], &patch->f[f]))
            rc = s_cust_field_put(self, patch->id, f, &cur.f[f]);
    return rc;
}

/* ---- ERP acks --------------------------------------------------------- */

static int s_ack_apply(tm_store_t *self, const tm_op_t *op, const tm_erp_ack_t *a)
{
    int rc = tm_store__sale_acks_apply(self, op, a, false);
    return rc == TM_OK ? tm_store__cust_acks_apply(self, a) : rc;
}

int tm_store__materialise(tm_store_t *self, const tm_op_t *op, tm_store__rec_t *rec)
{
    switch (rec->kind) {
    case TM_OP_SALE: return s_sale_apply(self, op, &rec->u.sale);
    case TM_OP_CUSTOMER: return s_cust_apply(self, op, &rec->u.cust);
    case TM_OP_ERP_ACK: return s_ack_apply(self, op, &rec->u.ack);
    case TM_OP_ERP_INTENT: return tm_store__intent_apply(self, op, &rec->u.ack);
    case TM_OP_SEAL: return tm_store__seal_apply(self, rec->u.seal.e, rec->u.seal.n);
    case TM_OP_CATALOGUE: return tm_store__catalogue_apply(self, op, &rec->u.page);
    case TM_OP_REISSUE: return TM_OK; /* s_write_ops: it needs the digest in the making */
    default: return TM_EPROTO;        /* rec_decode admits only the kinds above */
    }
}

/* ---- sales: reading --------------------------------------------------- */

/* Grows *arr (of *n elements of size sz) by one zeroed element. */
static void *s_grow(void *arr, size_t n, size_t sz)
{
    char *p = realloc(arr, (n + 1) * sz);
    if (p)
        memset(p + n * sz, 0, sz);
    return p;
}

static int s_lines_load(tm_store_t *self, int64_t ins, tm_sale_t *out)
{
    int rc = TM_OK, src;
    sqlite3_stmt *st = s_stmt(self, ST_LINES_GET, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, ins);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        tm_sale_line_t *l = s_grow(out->lines, out->n_lines, sizeof *l);
        if (!l) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        out->lines = l;
        l = &out->lines[out->n_lines++];
        s_col_text(st, 0, l->sku, sizeof l->sku);
        s_col_text(st, 1, l->name, sizeof l->name);
        l->qty = sqlite3_column_int64(st, 2);
        l->unit_price = sqlite3_column_int64(st, 3);
        l->discount = sqlite3_column_int64(st, 4);
        l->tax_rate = sqlite3_column_int(st, 5);
        l->catalogue_version = (uint64_t)sqlite3_column_int64(st, 6);
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_reset(st);
    return rc;
}

static int s_pays_load(tm_store_t *self, int64_t ins, tm_sale_t *out)
{
    int rc = TM_OK, src;
    sqlite3_stmt *st = s_stmt(self, ST_PAYS_GET, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, ins);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        tm_payment_t *p = s_grow(out->payments, out->n_payments, sizeof *p);
        if (!p) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        out->payments = p;
        p = &out->payments[out->n_payments++];
        p->method = (tm_pay_method_t)sqlite3_column_int(st, 0);
        p->amount = sqlite3_column_int64(st, 1);
        s_col_text(st, 2, p->reference, sizeof p->reference);
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_reset(st);
    return rc;
}

int tm_store__sale_from_row(tm_store_t *self, sqlite3_stmt *st, tm_sale_t *out, int64_t *ins)
{
    memset(out, 0, sizeof *out);
    *ins = sqlite3_column_int64(st, 0);
    s_col_text(st, 1, out->sale_id, sizeof out->sale_id);
    s_col_text(st, 2, out->till, sizeof out->till);
    out->receipt_no = (uint64_t)sqlite3_column_int64(st, 3);
    s_col_text(st, 4, out->created_at, sizeof out->created_at);
    s_col_text(st, 5, out->currency, sizeof out->currency);
    out->total = sqlite3_column_int64(st, 6);
    out->has_customer = sqlite3_column_type(st, 7) != SQLITE_NULL;
    s_col_text(st, 7, out->customer_id, sizeof out->customer_id);
    out->customer_id_type = (tm_id_type_t)sqlite3_column_int(st, 8);
    s_col_text(st, 9, out->customer_email, sizeof out->customer_email);
    s_col_text(st, 10, out->refund_of, sizeof out->refund_of);
    out->review = sqlite3_column_int(st, 11);
    out->has_clock = sqlite3_column_type(st, 12) != SQLITE_NULL;
    out->clock_offset_ms = sqlite3_column_int64(st, 12);
    out->clock_skewed = sqlite3_column_int(st, 13) != 0;
    int rc = s_lines_load(self, *ins, out);
    if (rc == TM_OK)
        rc = s_pays_load(self, *ins, out);
    if (rc)
        tm_sale_free(out);
    return rc;
}

int tm_store_get_sale(tm_store_t *self, const char *sale_id, tm_sale_t *out)
{
    int rc = TM_OK;
    int64_t ins;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = s_stmt(self, ST_SALE_BY_ID, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, sale_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = tm_store__sale_from_row(self, st, out, &ins);
    else
        rc = src == SQLITE_DONE ? TM_ENOTFOUND : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store_list_sales(tm_store_t *self, uint64_t since, size_t limit, tm_sale_t **sales,
                        size_t *n, uint64_t *next)
{
    int rc = TM_OK, src = SQLITE_DONE;
    tm_sale_t *arr = NULL;
    size_t k = 0;
    int64_t ins = s_clamp_i64(since);
    *sales = NULL;
    *n = 0;
    *next = since;
    if (limit == 0)
        return TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_SALE_LIST, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, ins);
    sqlite3_bind_int64(st, 2, s_clamp_i64(limit));
    while (rc == TM_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        tm_sale_t *a = s_grow(arr, k, sizeof *a);
        if (!a) {
            rc = TM_ENOMEM;
            break;
        }
        arr = a;
        if ((rc = tm_store__sale_from_row(self, st, &arr[k], &ins)) == TM_OK)
            k++;
    }
    if (rc == TM_OK)
        rc = tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc) {
        for (size_t i = 0; i < k; i++)
            tm_sale_free(&arr[i]);
        free(arr);
        return rc;
    }
    *sales = arr;
    *n = k;
    if (k)
        *next = (uint64_t)ins;
    return TM_OK;
}

/* ---- small queries ---------------------------------------------------- */

int tm_store_get_customer(tm_store_t *self, const char *id, tm_customer_t *out)
{
    int rc = s_cust_load(self, id, out, NULL);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

int tm_store_max_receipt(tm_store_t *self, const char *till, uint64_t *out)
{
    int rc = TM_OK;
    *out = 0;
    sqlite3_stmt *st = s_stmt(self, ST_MAX_RECEIPT, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, till);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0); /* NULL (no sale) reads as 0 */
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store_customer_stamp(tm_store_t *self, const char *id, uint64_t *out)
{
    int rc = TM_OK;
    *out = 0;
    sqlite3_stmt *st = s_stmt(self, ST_CUST_STAMP, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store_is_acked(tm_store_t *self, const char *sale_id)
{
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_ACK_IS, &rc);
    if (!st)
        return rc;
    s_bind_text(st, 1, sale_id);
    int src = sqlite3_step(st);
    rc = src == SQLITE_ROW ? 1 : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store_unacked_sales(tm_store_t *self, size_t max, char (**ids)[TM_UUID_LEN], size_t *n)
{
    int rc = TM_OK, src = SQLITE_DONE;
    char(*arr)[TM_UUID_LEN] = NULL;
    size_t k = 0;
    *ids = NULL;
    *n = 0;
    if (max == 0)
        return TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_UNACKED, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, s_clamp_i64(max));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        char(*a)[TM_UUID_LEN] = s_grow(arr, k, sizeof *a);
        if (!a) {
            rc = TM_ENOMEM;
            goto cleanup;
        }
        arr = a;
        s_col_text(st, 0, arr[k++], TM_UUID_LEN);
    }
    rc = tm_store__err(self, src);
cleanup:
    sqlite3_reset(st);
    if (rc) {
        free(arr);
        return rc;
    }
    *ids = arr;
    *n = k;
    return TM_OK;
}
