/*
 * schema.c - the store's schema and its migrations.
 *
 * PRAGMA user_version is the schema version. migrations[i] takes a store
 * from version i to i + 1 and runs in its own transaction together with the
 * user_version bump, so a crash mid-migration leaves the store at a version
 * it really is at. Steps are only ever appended; a released step is never
 * edited (a store already past it would never see the change).
 */
#include "store_int.h"

#include <stdio.h>

/* PRAGMA application_id: "TLMS". Lets us tell our own store from another
 * application's SQLite file before we touch it. */
#define TM_APP_ID 0x544C4D53

static const char *const migrations[] = {
    /* 0 -> 1: op log, version vector, materialised records. */
    "PRAGMA application_id = 1414286675;" /* TM_APP_ID in decimal */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value BLOB NOT NULL"
    ") WITHOUT ROWID;"
    /* A rowid table: op bodies can be tens of KB, which WITHOUT ROWID
     * handles badly; (origin, seq) is the real key. */
    "CREATE TABLE ops ("
    "  id INTEGER PRIMARY KEY,"
    "  origin BLOB NOT NULL CHECK (length(origin) = 16),"
    "  seq INTEGER NOT NULL CHECK (seq > 0),"
    "  hlc INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  body BLOB NOT NULL,"
    "  UNIQUE (origin, seq)"
    ");"
    "CREATE TABLE vv ("
    "  origin BLOB PRIMARY KEY,"
    "  seq INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    /* ins is this store's insertion order (the list cursor); it is an
     * INTEGER PRIMARY KEY so that VACUUM cannot renumber it. */
    "CREATE TABLE sales ("
    "  ins INTEGER PRIMARY KEY,"
    "  sale_id TEXT NOT NULL UNIQUE,"
    "  till TEXT NOT NULL,"
    "  receipt_no INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  currency TEXT NOT NULL,"
    "  total INTEGER NOT NULL,"
    "  customer_id TEXT,"
    "  customer_id_type INTEGER NOT NULL,"
    "  customer_email TEXT NOT NULL,"
    "  refund_of TEXT NOT NULL,"
    "  op_origin BLOB NOT NULL,"
    "  op_seq INTEGER NOT NULL,"
    "  op_hlc INTEGER NOT NULL,"
    "  acked INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX sales_till_receipt ON sales (till, receipt_no);"
    "CREATE INDEX sales_customer ON sales (customer_id) WHERE customer_id IS NOT NULL;"
    /* The forwarder asks for unacknowledged sales all the time; a partial
     * index keeps that cheap however many acknowledged sales pile up. */
    "CREATE INDEX sales_unacked ON sales (ins) WHERE acked = 0;"
    "CREATE TABLE sale_lines ("
    "  sale_ins INTEGER NOT NULL REFERENCES sales (ins),"
    "  idx INTEGER NOT NULL,"
    "  sku TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  qty INTEGER NOT NULL,"
    "  unit_price INTEGER NOT NULL,"
    "  discount INTEGER NOT NULL,"
    "  tax_rate INTEGER NOT NULL,"
    "  PRIMARY KEY (sale_ins, idx)"
    ") WITHOUT ROWID;"
    "CREATE TABLE sale_payments ("
    "  sale_ins INTEGER NOT NULL REFERENCES sales (ins),"
    "  idx INTEGER NOT NULL,"
    "  method INTEGER NOT NULL,"
    "  amount INTEGER NOT NULL,"
    "  reference TEXT NOT NULL,"
    "  PRIMARY KEY (sale_ins, idx)"
    ") WITHOUT ROWID;"
    /* id_type is itself a last-writer-wins register (type_hlc, type_node). */
    "CREATE TABLE customers ("
    "  id TEXT PRIMARY KEY,"
    "  id_type INTEGER NOT NULL,"
    "  type_hlc INTEGER NOT NULL,"
    "  type_node BLOB NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE customer_fields ("
    "  customer_id TEXT NOT NULL REFERENCES customers (id),"
    "  field INTEGER NOT NULL,"
    "  value TEXT NOT NULL,"
    "  hlc INTEGER NOT NULL,"
    "  node BLOB NOT NULL,"
    "  PRIMARY KEY (customer_id, field)"
    ") WITHOUT ROWID;"
    /* Acks may arrive before the sale they name: kept by id, unjoined. */
    "CREATE TABLE erp_acks ("
    "  sale_id TEXT PRIMARY KEY"
    ") WITHOUT ROWID;",

    /* 1 -> 2: ERP forwarding. Parked sales are this till's own note (the
     * ERP refused them): not replicated, a successor finds out for itself.
     * The forwarder takes unacknowledged sales in (hlc, origin, seq) order,
     * the same on every till, so that a successor re-forms the batch its
     * predecessor sent and re-sends it with the same idempotency key. */
    /* active = 0: an operator asked for a retry; retries counts those, and
     * goes into the next idempotency key so the ERP sees a new request
     * instead of replaying its refusal. */
    "CREATE TABLE parked ("
    "  sale_id TEXT PRIMARY KEY,"
    "  status INTEGER NOT NULL,"
    "  message TEXT NOT NULL,"
    "  parked_at INTEGER NOT NULL,"
    "  active INTEGER NOT NULL DEFAULT 1,"
    "  retries INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX sales_unacked_order ON sales (op_hlc, op_origin, op_seq) WHERE acked = 0;",

    /* 2 -> 3: customer versions the ERP has (a grow-only max register per
     * customer, replicated through ERP_ACK ops like the sale acks). */
    "CREATE TABLE erp_customer_acks ("
    "  customer_id TEXT PRIMARY KEY,"
    "  version INTEGER NOT NULL"
    ") WITHOUT ROWID;",

    /* 3 -> 4: batch intents. `closed` is derived (every sale acknowledged
     * or parked) and only saves re-checking. */
    "CREATE TABLE erp_intents ("
    "  key TEXT PRIMARY KEY,"
    "  hlc INTEGER NOT NULL,"
    "  ids TEXT NOT NULL,"
    "  closed INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX erp_intents_open ON erp_intents (hlc) WHERE closed = 0;",

    /* 4 -> 5: the selling till's clock against the store's (NULL: it had
     * nothing to compare with, or the sale predates this column). */
    "ALTER TABLE sales ADD COLUMN clock_offset_ms INTEGER;"
    "ALTER TABLE sales ADD COLUMN clock_skewed INTEGER NOT NULL DEFAULT 0;",

    /* 5 -> 6: returns bounded by their original. review is derived from the
     * sales held (tm_review_t), recomputed per group on every write of a
     * member; the step's C part (after[]) computes it for the sales already
     * held. Returns are found by lower(refund_of), so that a POS writing
     * ids in either case is bounded all the same; the index holds returns
     * only, so plain sales cost it nothing. */
    "ALTER TABLE sales ADD COLUMN review INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX sales_refund_of ON sales (lower(refund_of)) WHERE refund_of <> '';"
    "CREATE INDEX sales_review ON sales (review, refund_of, sale_id) WHERE review <> 0;",

    /* 6 -> 7: retention. Each op's hash is kept (NULL for ops stored
     * before: computed from the body when needed); a compacted op keeps its
     * row with an empty body and that hash, which the digest counted it by;
     * a compacted sale's id stays known so that a late copy of its op does
     * not bring it back. */
    "ALTER TABLE ops ADD COLUMN hash BLOB;"
    "ALTER TABLE ops ADD COLUMN compacted INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE compacted_sales ("
    "  sale_id TEXT PRIMARY KEY"
    ") WITHOUT ROWID;"
    "CREATE INDEX sales_acked_order ON sales (op_hlc) WHERE acked = 1;",

    /* 7 -> 8: signed, chained ops (common/tm_sign.h). sig/prev are NULL on
     * ops made before signing: those are accepted only up to what a seal
     * (an OP_SEAL from a trusted till) vouches for, per origin. Ops refused
     * for a bad signature, a fork or a broken chain are kept in evidence
     * (bounded), never applied. */
    "ALTER TABLE ops ADD COLUMN sig BLOB;"
    "ALTER TABLE ops ADD COLUMN prev BLOB;"
    "CREATE TABLE seals ("
    "  origin BLOB PRIMARY KEY,"
    "  seq INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE evidence ("
    "  id INTEGER PRIMARY KEY,"
    "  origin BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  hlc INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  body BLOB,"
    "  hash BLOB,"
    "  sig BLOB,"
    "  prev BLOB,"
    "  reason TEXT NOT NULL"
    ");",

    /* 8 -> 9: records are owned (owned.c). origin_names binds a node id to
     * the till that speaks for it; every sale op is a claim on its sale_id;
     * the claims not shown are kept aside in sale_conflicts (derived).
     * Claims of an older store are the sales it shows (a sales row is its
     * sale_id's claim until a second one comes): the ops that lost
     * under the old timestamp rule are not judged again. An ERP ack counts
     * only for ids of an intent its own origin wrote under the same key
     * (erp.c); acks already held stay. */
    "CREATE TABLE origin_names ("
    "  origin BLOB PRIMARY KEY,"
    "  name TEXT NOT NULL"
    ") WITHOUT ROWID;"
    /* One b-tree, by sale_id: what settling a sale reads. */
    "CREATE TABLE sale_claims ("
    "  sale_id TEXT NOT NULL,"
    "  origin BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  PRIMARY KEY (sale_id, origin, seq)"
    ") WITHOUT ROWID;"
    "CREATE TABLE sale_conflicts ("
    "  origin BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  sale_id TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  PRIMARY KEY (origin, seq)"
    ") WITHOUT ROWID;"
    "CREATE INDEX sale_conflicts_id ON sale_conflicts (sale_id);"
    "ALTER TABLE sales ADD COLUMN dup_receipt INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX sales_till_receipt;"
    "CREATE INDEX sales_till_receipt ON sales (till, receipt_no, dup_receipt);"
    "CREATE INDEX sales_dup_receipt ON sales (ins) WHERE dup_receipt = 1;"
    "UPDATE sales SET dup_receipt = 1 WHERE (till, receipt_no) IN"
    " (SELECT till, receipt_no FROM sales GROUP BY till, receipt_no HAVING count(*) > 1);"
    "CREATE TABLE erp_ack_claims ("
    "  origin BLOB NOT NULL,"
    "  key TEXT NOT NULL,"
    "  sale_id TEXT NOT NULL,"
    "  hlc INTEGER NOT NULL,"
    "  PRIMARY KEY (origin, key, sale_id)"
    ") WITHOUT ROWID;"
    /* Reconcile: a sale is acknowledged when its latest granted ack is
     * stamped after its latest revocation (the ERP said it did not hold
     * it); gen counts revocations, for the idempotency key of the re-send. */
    "ALTER TABLE erp_acks ADD COLUMN hlc INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE erp_revoked ("
    "  sale_id TEXT PRIMARY KEY,"
    "  hlc INTEGER NOT NULL,"
    "  gen INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE erp_intent_ids ("
    "  origin BLOB NOT NULL,"
    "  key TEXT NOT NULL,"
    "  sale_id TEXT NOT NULL,"
    "  PRIMARY KEY (origin, key, sale_id)"
    ") WITHOUT ROWID;",
    /* 9 -> 10: the catalogue (OP_CATALOGUE): products LWW by the ERP's
     * version, their barcodes, the ERP's cursor; and which catalogue
     * version priced a sale line. */
    "CREATE TABLE products ("
    "  sku TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL COLLATE NOCASE,"
    "  uom TEXT NOT NULL,"
    "  unit_price INTEGER NOT NULL,"
    "  tax_rate INTEGER NOT NULL,"
    "  barcodes TEXT NOT NULL," /* space-separated: barcodes have no spaces */
    "  active INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  op_origin BLOB NOT NULL,"
    "  op_seq INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX products_name ON products (name, sku) WHERE deleted = 0;"
    /* Keyed by sku first: every price change rewrites a product's barcodes
     * (by sku); lookups by barcode take the index. */
    "CREATE TABLE product_barcodes ("
    "  sku TEXT NOT NULL,"
    "  barcode TEXT NOT NULL,"
    "  PRIMARY KEY (sku, barcode)"
    ") WITHOUT ROWID;"
    "CREATE INDEX product_barcodes_code ON product_barcodes (barcode);"
    "CREATE TABLE catalogue_state ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  cursor TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  op_hlc INTEGER NOT NULL,"
    "  op_origin BLOB NOT NULL,"
    "  synced_hlc INTEGER NOT NULL"
    ");"
    "ALTER TABLE sale_lines ADD COLUMN catalogue_version INTEGER NOT NULL DEFAULT 0;",
    /* 10 -> 11: ops a restored till said again under a new origin
     * (OP_REISSUE, trust.c): never taken again under the old one. */
    "CREATE TABLE voided ("
    "  origin BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  PRIMARY KEY (origin, seq, hash)"
    ") WITHOUT ROWID;",
    /* 11 -> 12: sales_unacked (ins) served no query but the backlog's
     * count, which sales_unacked_order answers as fast (EXPLAIN QUERY PLAN
     * of every query on unacknowledged sales: the forwarder's takes them in
     * hlc order); one index write less per sale stored. */
    "DROP INDEX IF EXISTS sales_unacked;",
};

/* Work a step needs beyond its SQL, run in the same transaction. */
static int (*const after[])(tm_store_t *) = {
    /* The review flags of step 6 are computed at the last step: the
     * rebuild reads sales with today's statements, which name columns
     * added later (sale_lines.catalogue_version). Computing them again on
     * a store that had them costs one scan, once. */
    [9] = tm_store__review_rebuild,
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int tm_store__schema_latest(void)
{
    return N_MIGRATIONS;
}

/* One integer from a query such as "PRAGMA user_version". */
static int s_query_int(tm_store_t *self, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(self->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        *out = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    }
    int rc = tm_store__err(self, src);
    sqlite3_finalize(st);
    return rc;
}

/* Refuses files that are SQLite but not ours, and ours from the future. */
static int s_check_identity(tm_store_t *self, int64_t version)
{
    int64_t app_id = 0, n_objects = 0;
    int rc = s_query_int(self, "PRAGMA application_id", &app_id);
    if (rc)
        return rc;
    if (app_id != 0 && app_id != TM_APP_ID) {
        snprintf(self->errmsg, sizeof self->errmsg, "application_id %lld is not tillmesh's",
                 (long long)app_id);
        return TM_ECORRUPT;
    }
    if (version > N_MIGRATIONS) {
        snprintf(self->errmsg, sizeof self->errmsg,
                 "store schema version %lld is newer than this build's %d", (long long)version,
                 N_MIGRATIONS);
        return TM_EVERSION;
    }
    if (version == 0) {
        /* A fresh file has no tables; one with tables but no version was
         * made by something else, and migrating it would mangle it. */
        rc = s_query_int(self, "SELECT count(*) FROM sqlite_master", &n_objects);
        if (rc)
            return rc;
        if (n_objects != 0) {
            snprintf(self->errmsg, sizeof self->errmsg,
                     "file holds an SQLite database that is not a tillmesh store");
            return TM_ECORRUPT;
        }
    }
    return TM_OK;
}

static int s_exec(tm_store_t *self, const char *sql)
{
    return tm_store__err(self, sqlite3_exec(self->db, sql, NULL, NULL, NULL));
}

static int s_step(tm_store_t *self, int from)
{
    char bump[48];
    /* PRAGMA takes no bound parameters; the number is ours, not data. */
    snprintf(bump, sizeof bump, "PRAGMA user_version = %d", from + 1);
    int rc = s_exec(self, "BEGIN IMMEDIATE");
    if (rc)
        return rc;
    if ((rc = s_exec(self, migrations[from])) ||
        (from < (int)(sizeof after / sizeof after[0]) && after[from] && (rc = after[from](self))) ||
        (rc = s_exec(self, bump)) || (rc = s_exec(self, "COMMIT")))
        goto fail;
    return TM_OK;
fail:
    if (!sqlite3_get_autocommit(self->db))
        (void)sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int tm_store__migrate(tm_store_t *self, int *version)
{
    int64_t v = 0;
    int rc = s_query_int(self, "PRAGMA user_version", &v);
    if (rc)
        return rc;
    if ((rc = s_check_identity(self, v)))
        return rc;
    /* Only possible before the first table exists: lets retention give
     * freed pages back to the file system (tm_store_compact). Stores made
     * before this reuse freed pages instead. */
    if (v == 0 && (rc = s_exec(self, "PRAGMA auto_vacuum = INCREMENTAL")))
        return rc;
    for (int i = (int)v; i < N_MIGRATIONS; i++) {
        if ((rc = s_step(self, i)))
            return rc;
    }
    *version = N_MIGRATIONS;
    return TM_OK;
}
