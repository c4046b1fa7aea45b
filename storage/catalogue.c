/*
 * catalogue.c - the catalogue materialised from OP_CATALOGUE pages.
 *
 * Per sku the row shows the greatest (ERP version, op origin, op seq): the
 * ERP orders its own changes, a till's clock never does, and two different
 * bodies under one version (an ERP that reused a version) settle the same
 * way on every till. The cursor of the next pull comes from the page with
 * the greatest (version, hlc, origin): a cursor behind the newest is safe
 * (pulling again what is held changes nothing), so either of two
 * forwarders' cursors would do; this makes every till pick the same one.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#define PRODUCT_COLS "sku, name, uom, unit_price, tax_rate, barcodes, active, deleted, version"

static const char *const cat_sql[ST_COUNT] = {
    [ST_CAT_PRODUCT_GET] = "SELECT version, op_origin, op_seq FROM products WHERE sku = ?1",
    [ST_CAT_PRODUCT_PUT] = "INSERT OR REPLACE INTO products (sku, name, uom, unit_price, tax_rate,"
                           " barcodes, active, deleted, version, op_origin, op_seq)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_CAT_BARCODES_DEL] = "DELETE FROM product_barcodes WHERE sku = ?1",
    [ST_CAT_BARCODE_PUT] = "INSERT OR IGNORE INTO product_barcodes (barcode, sku) VALUES (?1, ?2)",
    [ST_CAT_STATE_GET] = "SELECT cursor, version, op_hlc, op_origin, synced_hlc FROM"
                         " catalogue_state WHERE id = 1",
    [ST_CAT_STATE_PUT] = "INSERT OR REPLACE INTO catalogue_state (id, cursor, version, op_hlc,"
                         " op_origin, synced_hlc) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
    [ST_CAT_BY_BARCODE] = "SELECT " PRODUCT_COLS " FROM products WHERE deleted = 0 AND"
                          " (sku = ?1 OR sku IN (SELECT sku FROM product_barcodes WHERE"
                          " barcode = ?1)) ORDER BY sku = ?1 DESC, version DESC LIMIT 1",
    [ST_CAT_FIND] = "SELECT " PRODUCT_COLS " FROM products WHERE deleted = 0 AND name >= ?1"
                    " AND name < ?1 || x'f48fbfbf' ORDER BY name, sku LIMIT ?2",
    [ST_CAT_LIST] = "SELECT " PRODUCT_COLS " FROM products WHERE deleted = 0 AND sku > ?1"
                    " ORDER BY sku LIMIT ?2",
    [ST_CAT_COUNT] = "SELECT count(*) FROM products WHERE deleted = 0",
};

static sqlite3_stmt *s_stmt(tm_store_t *self, int id, int *rc)
{
    return tm_store__stmt(self, id, cat_sql[id], rc);
}

static void s_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* -1, 0, 1 as (va, oa, sa) is below, equal to, above (vb, ob, sb). */
static int s_cmp(uint64_t va, const uint8_t *oa, uint64_t sa, uint64_t vb, const uint8_t *ob,
                 uint64_t sb)
{
    if (va != vb)
        return va < vb ? -1 : 1;
    int c = memcmp(oa, ob, TM_NODE_ID_LEN);
    if (c)
        return c < 0 ? -1 : 1;
    return sa < sb ? -1 : sa > sb;
}

/* 1 when the held row for p->sku beats or equals what op would write. */
static int s_held_wins(tm_store_t *self, const tm_op_t *op, const tm_product_t *p)
{
    int rc = TM_OK, out = 0;
    sqlite3_stmt *st = s_stmt(self, ST_CAT_PRODUCT_GET, &rc);
    if (!st)
        return rc;
    s_text(st, 1, p->sku);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        uint8_t origin[TM_NODE_ID_LEN] = {0};
        const void *b = sqlite3_column_blob(st, 1);
        if (b && sqlite3_column_bytes(st, 1) == TM_NODE_ID_LEN)
            memcpy(origin, b, TM_NODE_ID_LEN);
        out = s_cmp((uint64_t)sqlite3_column_int64(st, 0), origin,
                    (uint64_t)sqlite3_column_int64(st, 2), p->version, op->origin, op->seq) >= 0;
    } else if (src != SQLITE_DONE) {
        rc = tm_store__err(self, src);
    }
    sqlite3_reset(st);
    return rc ? rc : out;
}

static int s_product_put(tm_store_t *self, const tm_op_t *op, const tm_product_t *p)
{
    char bc[TM_PRODUCT_BARCODES * TM_BARCODE_MAX] = "";
    for (size_t i = 0; i < p->n_barcodes; i++) {
        if (i)
            strcat(bc, " ");
        strcat(bc, p->barcodes[i]);
    }
    int rc = TM_OK;
    sqlite3_stmt *st = s_stmt(self, ST_CAT_PRODUCT_PUT, &rc);
    if (!st)
        return rc;
    s_text(st, 1, p->sku);
    s_text(st, 2, p->name);
    s_text(st, 3, p->uom);
    sqlite3_bind_int64(st, 4, p->unit_price);
    sqlite3_bind_int(st, 5, p->tax_rate);
    s_text(st, 6, bc);
    sqlite3_bind_int(st, 7, p->active);
    sqlite3_bind_int(st, 8, p->deleted);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)p->version);
    sqlite3_bind_blob(st, 10, op->origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)op->seq);
    if ((rc = tm_store__exec(self, st)))
        return rc;
    if (!(st = s_stmt(self, ST_CAT_BARCODES_DEL, &rc)))
        return rc;
    s_text(st, 1, p->sku);
    if ((rc = tm_store__exec(self, st)))
        return rc;
    for (size_t i = 0; i < p->n_barcodes && !p->deleted; i++) {
        if (!(st = s_stmt(self, ST_CAT_BARCODE_PUT, &rc)))
            return rc;
        s_text(st, 1, p->barcodes[i]);
        s_text(st, 2, p->sku);
        if ((rc = tm_store__exec(self, st)))
            return rc;
    }
    return TM_OK;
}

typedef struct {
    bool held;
    char cursor[TM_CURSOR_MAX];
    uint64_t version, hlc, synced_hlc;
    uint8_t origin[TM_NODE_ID_LEN];
} state_t;

static int s_state_get(tm_store_t *self, state_t *s)
{
    int rc = TM_OK;
    memset(s, 0, sizeof *s);
    sqlite3_stmt *st = s_stmt(self, ST_CAT_STATE_GET, &rc);
    if (!st)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        s->held = true;
        const unsigned char *c = sqlite3_column_text(st, 0);
        tm_strlcpy(s->cursor, c ? (const char *)c : "", sizeof s->cursor);
        s->version = (uint64_t)sqlite3_column_int64(st, 1);
        s->hlc = (uint64_t)sqlite3_column_int64(st, 2);
        const void *b = sqlite3_column_blob(st, 3);
        if (b && sqlite3_column_bytes(st, 3) == TM_NODE_ID_LEN)
            memcpy(s->origin, b, TM_NODE_ID_LEN);
        s->synced_hlc = (uint64_t)sqlite3_column_int64(st, 4);
    } else if (src != SQLITE_DONE) {
        rc = tm_store__err(self, src);
    }
    sqlite3_reset(st);
    return rc;
}

static int s_state_update(tm_store_t *self, const tm_op_t *op, const tm_catalogue_page_t *p)
{
    state_t s;
    int rc = s_state_get(self, &s);
    if (rc)
        return rc;
    bool newer = p->version > s.version ||
                 (p->version == s.version && s_cmp(op->hlc, op->origin, 0, s.hlc, s.origin, 0) > 0);
    if (p->cursor[0] && (!s.held || !s.cursor[0] || newer)) {
        tm_strlcpy(s.cursor, p->cursor, sizeof s.cursor);
        s.version = p->version;
        s.hlc = op->hlc;
        memcpy(s.origin, op->origin, TM_NODE_ID_LEN);
    }
    if (op->hlc > s.synced_hlc)
        s.synced_hlc = op->hlc;
    sqlite3_stmt *st = s_stmt(self, ST_CAT_STATE_PUT, &rc);
    if (!st)
        return rc;
    s_text(st, 1, s.cursor);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)s.version);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)s.hlc);
    sqlite3_bind_blob(st, 4, s.origin, TM_NODE_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)s.synced_hlc);
    return tm_store__exec(self, st);
}

int tm_store__catalogue_apply(tm_store_t *self, const tm_op_t *op, const tm_catalogue_page_t *p)
{
    int rc;
    for (size_t i = 0; i < p->n; i++) {
        rc = s_held_wins(self, op, &p->items[i]);
        if (rc < 0)
            return rc;
        if (rc == 0 && (rc = s_product_put(self, op, &p->items[i])))
            return rc;
    }
    return s_state_update(self, op, p);
}

/* ---- reading ---------------------------------------------------------- */

static void s_product_from_row(sqlite3_stmt *st, tm_product_t *p)
{
    memset(p, 0, sizeof *p);
    const unsigned char *t;
    tm_strlcpy(p->sku, (t = sqlite3_column_text(st, 0)) ? (const char *)t : "", sizeof p->sku);
    tm_strlcpy(p->name, (t = sqlite3_column_text(st, 1)) ? (const char *)t : "", sizeof p->name);
    tm_strlcpy(p->uom, (t = sqlite3_column_text(st, 2)) ? (const char *)t : "", sizeof p->uom);
    p->unit_price = sqlite3_column_int64(st, 3);
    p->tax_rate = sqlite3_column_int(st, 4);
    char bc[TM_PRODUCT_BARCODES * TM_BARCODE_MAX];
    tm_strlcpy(bc, (t = sqlite3_column_text(st, 5)) ? (const char *)t : "", sizeof bc);
    char *save = NULL;
    for (char *tok = strtok_r(bc, " ", &save); tok && p->n_barcodes < TM_PRODUCT_BARCODES;
         tok = strtok_r(NULL, " ", &save))
        tm_strlcpy(p->barcodes[p->n_barcodes++], tok, TM_BARCODE_MAX);
    p->active = sqlite3_column_int(st, 6) != 0;
    p->deleted = sqlite3_column_int(st, 7) != 0;
    p->version = (uint64_t)sqlite3_column_int64(st, 8);
}

int tm_store_product_get(tm_store_t *self, const char *key, tm_product_t *out)
{
    int rc = TM_OK;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = s_stmt(self, ST_CAT_BY_BARCODE, &rc);
    if (!st)
        return rc;
    s_text(st, 1, key);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        s_product_from_row(st, out);
    else
        rc = src == SQLITE_DONE ? TM_ENOTFOUND : tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}

int tm_store_products_find(tm_store_t *self, const char *prefix, const char *after_sku,
                           size_t limit, tm_product_t **out, size_t *n)
{
    int rc = TM_OK, src;
    *out = NULL;
    *n = 0;
    if (limit == 0)
        return TM_OK;
    tm_product_t *arr = calloc(limit, sizeof *arr);
    if (!arr)
        return TM_ENOMEM;
    sqlite3_stmt *st = s_stmt(self, prefix ? ST_CAT_FIND : ST_CAT_LIST, &rc);
    if (!st) {
        free(arr);
        return rc;
    }
    s_text(st, 1, prefix ? prefix : after_sku ? after_sku : "");
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    while (*n < limit && (src = sqlite3_step(st)) == SQLITE_ROW)
        s_product_from_row(st, &arr[(*n)++]);
    if (*n < limit && src != SQLITE_DONE)
        rc = tm_store__err(self, src);
    sqlite3_reset(st);
    if (rc || *n == 0) {
        free(arr);
        *n = 0;
        return rc;
    }
    *out = arr;
    return TM_OK;
}

int tm_store_catalogue_stamp(tm_store_t *self, uint64_t *version, uint64_t *synced_ms)
{
    state_t s;
    int rc = s_state_get(self, &s);
    *version = rc ? 0 : s.version;
    *synced_ms = rc ? 0 : s.synced_hlc >> 16;
    return rc;
}

int tm_store_catalogue_state(tm_store_t *self, tm_catalogue_state_t *out)
{
    state_t s;
    memset(out, 0, sizeof *out);
    int rc = s_state_get(self, &s);
    if (rc)
        return rc;
    tm_strlcpy(out->cursor, s.cursor, sizeof out->cursor);
    out->version = s.version;
    out->synced_ms = s.synced_hlc >> 16;
    sqlite3_stmt *st = s_stmt(self, ST_CAT_COUNT, &rc);
    if (!st)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        out->products = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = tm_store__err(self, src);
    sqlite3_reset(st);
    return rc;
}
