/* test_store_erp.c - parked sales, backlog, forwarding order, and the
 * incremental digest surviving reopen and rebuild. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_store.h"
#include "tm_wire.h"

static char dir[64], path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/tm-store-erp-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.db", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store_erp, .init = setup, .fini = teardown);

/* Applies a sale op from `origin` with the given seq and hlc; returns its id. */
static void put_sale(tm_store_t *st, uint8_t origin, uint64_t seq, uint64_t hlc,
                     char id[TM_UUID_LEN])
{
    tm_sale_line_t line = {.sku = "1", .name = "x", .qty = 1000, .unit_price = 100};
    tm_payment_t pay = {.method = TM_PAY_CASH, .amount = 100};
    tm_sale_t s = {.till = "t",
                   .receipt_no = seq,
                   .created_at = "2026-01-01T00:00:00Z",
                   .currency = "CLP",
                   .lines = &line,
                   .n_lines = 1,
                   .total = 100,
                   .payments = &pay,
                   .n_payments = 1};
    tm_uuid_new(s.sale_id);
    strcpy(id, s.sale_id);
    tm_op_t op = {.seq = seq, .hlc = hlc, .kind = TM_OP_SALE};
    memset(op.origin, origin, TM_NODE_ID_LEN);
    cr_assert_eq(tm_wire_sale_encode(&s, &op.body, &op.body_len), TM_OK);
    cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_OK);
    free(op.body);
}

Test(store_erp, unacked_sales_come_in_hlc_order_whatever_the_arrival_order)
{
    tm_store_t *st;
    char a[TM_UUID_LEN], b[TM_UUID_LEN], c[TM_UUID_LEN];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    put_sale(st, 0x22, 1, 300, c); /* arrives first, newest */
    put_sale(st, 0x11, 1, 100, a);
    put_sale(st, 0x33, 1, 200, b);
    char(*ids)[TM_UUID_LEN];
    size_t n;
    cr_assert_eq(tm_store_unacked_sales(st, 10, &ids, &n), TM_OK);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(ids[0], a);
    cr_assert_str_eq(ids[1], b);
    cr_assert_str_eq(ids[2], c);
    free(ids);
    tm_store_destroy(&st);
}

Test(store_erp, parked_sales_leave_the_queue_and_come_back_when_unparked)
{
    tm_store_t *st;
    char a[TM_UUID_LEN], b[TM_UUID_LEN];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    put_sale(st, 0x11, 1, 100, a);
    put_sale(st, 0x11, 2, 200, b);
    cr_assert_eq(tm_store_park(st, a, 422, "bad tax code", 1234), TM_OK);
    tm_backlog_t bl;
    cr_assert_eq(tm_store_backlog(st, &bl), TM_OK);
    cr_assert_eq(bl.unsent, 1);
    cr_assert_eq(bl.parked, 1);
    cr_assert_eq(bl.oldest_hlc, 200);
    char(*ids)[TM_UUID_LEN];
    size_t n;
    cr_assert_eq(tm_store_unacked_sales(st, 10, &ids, &n), TM_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ids[0], b);
    free(ids);
    tm_parked_t *p;
    cr_assert_eq(tm_store_parked(st, 10, &p, &n), TM_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(p[0].sale_id, a);
    cr_assert_eq(p[0].status, 422);
    cr_assert_str_eq(p[0].message, "bad tax code");
    free(p);
    cr_assert_eq(tm_store_unpark(st, a), TM_OK);
    cr_assert_eq(tm_store_unpark(st, a), TM_ENOTFOUND);
    cr_assert_eq(tm_store_backlog(st, &bl), TM_OK);
    cr_assert_eq(bl.unsent, 2);
    cr_assert_eq(bl.parked, 0);
    tm_store_destroy(&st);
}

Test(store_erp, digest_survives_reopen_and_an_accumulator_rebuild)
{
    tm_store_t *st;
    char id[TM_UUID_LEN];
    uint8_t d1[32], d2[32], d3[32], empty[32];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    cr_assert_eq(tm_store_digest(st, empty), TM_OK);
    for (uint64_t i = 1; i <= 20; i++)
        put_sale(st, 0x44, i, 1000 + i, id);
    cr_assert_eq(tm_store_digest(st, d1), TM_OK);
    cr_assert(memcmp(d1, empty, 32) != 0);
    tm_store_destroy(&st);
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    cr_assert_eq(tm_store_digest(st, d2), TM_OK);
    cr_assert_arr_eq(d1, d2, 32, "digest changed across reopen");
    tm_store_destroy(&st);
    /* Lose the accumulator: the store rebuilds it from the log. */
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "DELETE FROM meta WHERE key = 'digest_acc'", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    cr_assert_eq(tm_store_digest(st, d3), TM_OK);
    cr_assert_arr_eq(d1, d3, 32, "rebuilt digest differs");
    tm_store_destroy(&st);
}

Test(store_erp, a_refused_batch_leaves_the_digest_alone)
{
    tm_store_t *st;
    char id[TM_UUID_LEN];
    uint8_t before[32], after[32];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    put_sale(st, 0x55, 1, 10, id);
    cr_assert_eq(tm_store_digest(st, before), TM_OK);
    uint8_t junk[] = {0xff, 0xff, 0xff};
    tm_op_t op = {.seq = 2, .hlc = 11, .kind = TM_OP_SALE, .body = junk, .body_len = 3};
    memset(op.origin, 0x55, TM_NODE_ID_LEN);
    cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_EPROTO);
    cr_assert_eq(tm_store_digest(st, after), TM_OK);
    cr_assert_arr_eq(before, after, 32);
    tm_store_destroy(&st);
}

static void put_ack(tm_store_t *st, uint32_t kind, uint64_t seq, char (*ids)[TM_UUID_LEN], size_t n,
                    const char *key)
{
    tm_erp_ack_t a = {.sale_ids = ids, .n = n, .epoch = 1};
    strcpy(a.idempotency_key, key);
    tm_op_t op = {.seq = seq, .hlc = 1000 + seq, .kind = kind};
    memset(op.origin, 0x77, TM_NODE_ID_LEN);
    cr_assert_eq(tm_wire_ack_encode(&a, &op.body, &op.body_len), TM_OK);
    if (kind == TM_OP_ERP_ACK) {
        /* An ack counts for ids of an intent its origin wrote under its key:
         * origin 0x78 writes both, intent first (seqs 2k-1 and 2k). */
        memset(op.origin, 0x78, TM_NODE_ID_LEN);
        op.kind = TM_OP_ERP_INTENT;
        op.seq = 2 * seq - 1;
        cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_OK);
        op.kind = TM_OP_ERP_ACK;
        op.seq = 2 * seq;
    }
    cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_OK);
    free(op.body);
}

Test(store_erp, an_open_intent_is_handed_back_until_its_sales_are_acknowledged)
{
    tm_store_t *st;
    char ids[3][TM_UUID_LEN];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    put_sale(st, 0x11, 1, 100, ids[0]);
    put_sale(st, 0x11, 2, 200, ids[1]);
    tm_uuid_new(ids[2]); /* a sale this till has not received yet */
    put_ack(st, TM_OP_ERP_INTENT, 1, ids, 2, "k1");
    put_ack(st, TM_OP_ERP_INTENT, 2, &ids[1], 2, "k2"); /* not ready: ids[2] unknown */
    char(*got)[TM_UUID_LEN];
    size_t n;
    char key[64];
    cr_assert_eq(tm_store_open_intent(st, &got, &n, key), TM_OK);
    cr_assert_str_eq(key, "k1");
    cr_assert_eq(n, 2);
    cr_assert_str_eq(got[0], ids[0]);
    cr_assert_str_eq(got[1], ids[1]);
    free(got);
    put_ack(st, TM_OP_ERP_ACK, 3, ids, 2, "k1");
    cr_assert_eq(tm_store_open_intent(st, &got, &n, key), TM_ENOTFOUND,
                 "acknowledged batch still open, or an unready one handed out");
    tm_store_destroy(&st);
}

/* Copies every op of `from` (as a pull answer would carry them, stubs
 * included) into `to`. */
static void copy_all_ops(tm_store_t *from, tm_store_t *to)
{
    tm_vv_t vv;
    cr_assert_eq(tm_store_vv(from, &vv), TM_OK);
    for (size_t i = 0; i < vv.n; i++) {
        tm_range_t r = {.from = 1, .to = vv.e[i].seq};
        memcpy(r.origin, vv.e[i].origin, TM_NODE_ID_LEN);
        tm_op_t *ops;
        size_t n;
        cr_assert_eq(tm_store_read_ops(from, &r, 1, 100000, 0, &ops, &n), TM_OK);
        cr_assert_eq(tm_store_apply(to, ops, n, NULL), TM_OK);
        tm_store_ops_free(ops, n);
    }
    tm_vv_free(&vv);
}

Test(store_erp, retention_forgets_only_old_acknowledged_sales_and_keeps_vector_and_digest)
{
    tm_store_t *st;
    char ids[6][TM_UUID_LEN];
    uint8_t before[32], after[32];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    for (uint64_t i = 0; i < 6; i++)
        put_sale(st, 0x11, i + 1, (100 + i) << 16, ids[i]);
    put_ack(st, TM_OP_ERP_ACK, 1, ids, 4, "k1"); /* 0..3 booked; 4, 5 not */
    tm_vv_t vv0, vv1;
    cr_assert_eq(tm_store_vv(st, &vv0), TM_OK);
    cr_assert_eq(tm_store_digest(st, before), TM_OK);
    size_t n;
    /* Cutoff between sales 2 and 3: 0..2 are old and booked. */
    cr_assert_eq(tm_store_compact(st, (uint64_t)103 << 16, 100, &n), TM_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(tm_store_compact(st, (uint64_t)103 << 16, 100, &n), TM_OK);
    cr_assert_eq(n, 0, "nothing more is due");
    tm_sale_t s;
    for (int i = 0; i < 6; i++) {
        int rc = tm_store_get_sale(st, ids[i], &s);
        cr_assert_eq(rc, i < 3 ? TM_ENOTFOUND : TM_OK, "sale %d", i);
        cr_assert_eq(tm_store_is_compacted(st, ids[i]), i < 3);
        if (rc == TM_OK)
            tm_sale_free(&s);
    }
    cr_assert_eq(tm_store_is_acked(st, ids[3]), 1, "booked but recent: kept");
    cr_assert_eq(tm_store_vv(st, &vv1), TM_OK);
    cr_assert_eq(vv0.n, vv1.n);
    cr_assert_arr_eq(vv0.e, vv1.e, vv0.n * sizeof *vv0.e);
    cr_assert_eq(tm_store_digest(st, after), TM_OK);
    cr_assert_arr_eq(before, after, 32, "the digest counts a compacted op by its kept hash");
    /* The unacknowledged sales are still there to forward. */
    char(*un)[TM_UUID_LEN];
    cr_assert_eq(tm_store_unacked_sales(st, 10, &un, &n), TM_OK);
    cr_assert_eq(n, 2);
    free(un);
    tm_vv_free(&vv0);
    tm_vv_free(&vv1);
    tm_store_destroy(&st);
}

Test(store_erp, a_till_away_longer_than_the_retention_is_brought_level_by_stubs)
{
    tm_store_t *a, *b, *c;
    char ids[4][TM_UUID_LEN], p2[128], p3[128];
    uint8_t da[32], db[32], dc[32];
    snprintf(p2, sizeof p2, "%s/b.db", dir);
    snprintf(p3, sizeof p3, "%s/c.db", dir);
    cr_assert_eq(tm_store_open(path, NULL, &a), TM_OK);
    cr_assert_eq(tm_store_open(p2, NULL, &b), TM_OK);
    cr_assert_eq(tm_store_open(p3, NULL, &c), TM_OK);
    for (uint64_t i = 0; i < 4; i++)
        put_sale(a, 0x11, i + 1, (100 + i) << 16, ids[i]);
    put_ack(a, TM_OP_ERP_ACK, 1, ids, 4, "k1");
    copy_all_ops(a, b); /* b got everything before a compacted */
    size_t n;
    cr_assert_eq(tm_store_compact(a, (uint64_t)102 << 16, 100, &n), TM_OK);
    cr_assert_eq(n, 2);
    copy_all_ops(a, c); /* c was away: gets 2 stubs and 2 sales */
    cr_assert_eq(tm_store_digest(a, da), TM_OK);
    cr_assert_eq(tm_store_digest(b, db), TM_OK);
    cr_assert_eq(tm_store_digest(c, dc), TM_OK);
    cr_assert_arr_eq(da, db, 32);
    cr_assert_arr_eq(da, dc, 32, "a stub counts what the full op counts");
    tm_sale_t s;
    cr_assert_eq(tm_store_get_sale(c, ids[0], &s), TM_ENOTFOUND);
    cr_assert_eq(tm_store_get_sale(c, ids[3], &s), TM_OK);
    tm_sale_free(&s);
    /* A late full copy of a compacted sale (from b, which kept it) does not
     * bring it back at a, and changes nothing. */
    copy_all_ops(b, a);
    cr_assert_eq(tm_store_get_sale(a, ids[0], &s), TM_ENOTFOUND);
    cr_assert_eq(tm_store_digest(a, db), TM_OK);
    cr_assert_arr_eq(da, db, 32);
    /* And the digest survives a rebuild from the rows (stubs by hash). */
    tm_store_destroy(&c);
    sqlite3 *raw;
    cr_assert_eq(sqlite3_open(p3, &raw), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(raw, "DELETE FROM meta WHERE key = 'digest_acc'", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(raw);
    cr_assert_eq(tm_store_open(p3, NULL, &c), TM_OK);
    cr_assert_eq(tm_store_digest(c, dc), TM_OK);
    cr_assert_arr_eq(da, dc, 32);
    tm_store_destroy(&a);
    tm_store_destroy(&b);
    tm_store_destroy(&c);
}

Test(store_erp, a_stub_with_a_body_is_refused)
{
    tm_store_t *st;
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    uint8_t body[3] = {1, 2, 3};
    tm_op_t op = {
        .seq = 1, .hlc = 5, .kind = TM_OP_SALE, .body = body, .body_len = 3, .compacted = true};
    memset(op.origin, 0x42, TM_NODE_ID_LEN);
    cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_EPROTO);
    tm_store_destroy(&st);
}

/* The backlog as the query before computed it: a scan of every
 * unacknowledged sale, on a second connection to the same file. */
static void slow_backlog(tm_backlog_t *out)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(
                     db,
                     "SELECT (SELECT count(*) FROM sales WHERE acked = 0"
                     "         AND sale_id NOT IN (SELECT sale_id FROM parked WHERE active = 1)),"
                     " (SELECT min(op_hlc) FROM sales WHERE acked = 0"
                     "         AND sale_id NOT IN (SELECT sale_id FROM parked WHERE active = 1)),"
                     " (SELECT count(*) FROM parked p JOIN sales s USING (sale_id)"
                     "         WHERE s.acked = 0 AND p.active = 1)",
                     -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    out->unsent = (uint64_t)sqlite3_column_int64(st, 0);
    out->oldest_hlc = (uint64_t)sqlite3_column_int64(st, 1);
    out->parked = (uint64_t)sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void check_backlog(tm_store_t *st, uint64_t unsent, uint64_t parked, const char *when)
{
    tm_backlog_t fast, slow;
    cr_assert_eq(tm_store_backlog(st, &fast), TM_OK, "%s", when);
    slow_backlog(&slow);
    cr_assert_eq(fast.unsent, slow.unsent, "%s: unsent %llu, the scan says %llu", when,
                 (unsigned long long)fast.unsent, (unsigned long long)slow.unsent);
    cr_assert_eq(fast.parked, slow.parked, "%s: parked", when);
    cr_assert_eq(fast.oldest_hlc, slow.oldest_hlc, "%s: oldest", when);
    cr_assert_eq(fast.unsent, unsent, "%s: unsent %llu, expected %llu", when,
                 (unsigned long long)fast.unsent, (unsigned long long)unsent);
    cr_assert_eq(fast.parked, parked, "%s: parked", when);
}

/* An ERP_ACK op that only revokes (reconcile: the ERP does not hold them). */
static void put_revoke(tm_store_t *st, uint64_t seq, char (*ids)[TM_UUID_LEN], size_t n)
{
    tm_erp_ack_t a = {.revoked = ids, .n_revoked = n, .epoch = 1};
    strcpy(a.idempotency_key, "reconcile");
    tm_op_t op = {.seq = seq, .hlc = 5000 + seq, .kind = TM_OP_ERP_ACK};
    memset(op.origin, 0x79, TM_NODE_ID_LEN);
    cr_assert_eq(tm_wire_ack_encode(&a, &op.body, &op.body_len), TM_OK);
    cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_OK);
    free(op.body);
}

Test(store_erp, backlog_figures_equal_a_full_scan_through_acks_parks_retention_and_restart)
{
    tm_store_t *st;
    char ids[10][TM_UUID_LEN];
    size_t n;
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    check_backlog(st, 0, 0, "empty");
    for (uint64_t i = 0; i < 10; i++)
        put_sale(st, 0x11, i + 1, (100 + i) << 16, ids[i]);
    check_backlog(st, 10, 0, "10 sales");
    cr_assert_eq(tm_store_park(st, ids[0], 422, "bad tax code", 1), TM_OK);
    cr_assert_eq(tm_store_park(st, ids[7], 422, "bad tax code", 2), TM_OK);
    check_backlog(st, 8, 2, "2 parked, one of them the oldest");
    put_ack(st, TM_OP_ERP_ACK, 1, &ids[1], 4, "k1"); /* 1..4 booked */
    check_backlog(st, 4, 2, "4 acknowledged");
    /* An ack for a parked sale: it leaves the parked count too. */
    put_ack(st, TM_OP_ERP_ACK, 2, &ids[7], 1, "k2");
    check_backlog(st, 4, 1, "a parked sale acknowledged");
    put_ack(st, TM_OP_ERP_ACK, 3, &ids[1], 1, "k3"); /* again: no change */
    check_backlog(st, 4, 1, "an ack repeated");
    cr_assert_eq(tm_store_unpark(st, ids[0]), TM_OK);
    check_backlog(st, 5, 0, "unparked");
    put_revoke(st, 1, &ids[2], 2); /* the ERP lost 2 and 3 */
    check_backlog(st, 7, 0, "2 revoked");
    cr_assert_eq(tm_store_compact(st, (uint64_t)200 << 16, 100, &n), TM_OK);
    cr_assert_gt(n, 0, "booked sales forgotten");
    check_backlog(st, 7, 0, "after retention");
    tm_store_destroy(&st);
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    check_backlog(st, 7, 0, "after a restart");
    tm_store_destroy(&st);
}

/* A store of schema 11 (with sales_unacked) is migrated: the index goes,
 * the figures stay. */
Test(store_erp, a_schema_11_store_loses_the_unused_index_and_keeps_its_backlog)
{
    tm_store_t *st;
    char ids[5][TM_UUID_LEN];
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    for (uint64_t i = 0; i < 5; i++)
        put_sale(st, 0x11, i + 1, (100 + i) << 16, ids[i]);
    put_ack(st, TM_OP_ERP_ACK, 1, ids, 2, "k1");
    tm_store_destroy(&st);
    sqlite3 *db;
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE INDEX sales_unacked ON sales (ins) WHERE acked = 0;"
                              " PRAGMA user_version = 11",
                              0, 0, 0),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_OK);
    check_backlog(st, 3, 0, "migrated");
    put_sale(st, 0x11, 6, 200 << 16, ids[0]);
    check_backlog(st, 4, 0, "a sale after the migration");
    tm_store_destroy(&st);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = 'sales_unacked'",
                           -1, &q, NULL),
        SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), 0, "sales_unacked still there");
    sqlite3_finalize(q);
    sqlite3_close(db);
}
