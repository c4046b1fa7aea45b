/* test_store.c - the SQLite store on real files in a private directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tm_store.h"
#include "tm_wire.h"

/* ---- fixture: a fresh directory per test ------------------------------ */

static char dir[64];
static char path[128];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tm_store_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/store.db", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[400];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(store, .init = setup, .fini = teardown);

/* ---- helpers ---------------------------------------------------------- */

static tm_store_t *open_store(const tm_store_opts_t *opts)
{
    tm_store_t *s = NULL;
    int rc = tm_store_open(path, opts, &s);
    cr_assert_eq(rc, TM_OK, "open: %s", tm_strerror(rc));
    return s;
}

static void fake_uuid(int n, char out[TM_UUID_LEN])
{
    snprintf(out, TM_UUID_LEN, "00000000-0000-4000-8000-%012d", n);
}

/* A valid sale with n_lines lines of one unit each, paid in cash. */
static void make_sale(tm_sale_t *s, int id, const char *till, uint64_t receipt, size_t n_lines)
{
    memset(s, 0, sizeof *s);
    fake_uuid(id, s->sale_id);
    tm_strlcpy(s->till, till, sizeof s->till);
    s->receipt_no = receipt;
    tm_strlcpy(s->created_at, "2026-11-23T12:00:00Z", sizeof s->created_at);
    tm_strlcpy(s->currency, "CLP", sizeof s->currency);
    s->lines = calloc(n_lines, sizeof *s->lines);
    s->n_lines = n_lines;
    for (size_t i = 0; i < n_lines; i++) {
        snprintf(s->lines[i].sku, sizeof s->lines[i].sku, "SKU-%zu", i);
        snprintf(s->lines[i].name, sizeof s->lines[i].name,
                 "a product with a longish name to fill pages %zu", i);
        s->lines[i].qty = 1000;
        s->lines[i].unit_price = 990 + (int64_t)i;
        s->lines[i].tax_rate = 1900;
        s->total += s->lines[i].unit_price;
    }
    s->payments = calloc(1, sizeof *s->payments);
    s->n_payments = 1;
    s->payments[0].method = TM_PAY_CASH;
    s->payments[0].amount = s->total;
}

static void sale_body(int id, const char *till, uint64_t receipt, size_t n_lines, uint8_t **buf,
                      size_t *len)
{
    tm_sale_t s;
    make_sale(&s, id, till, receipt, n_lines);
    cr_assert_eq(tm_wire_sale_encode(&s, buf, len), TM_OK);
    tm_sale_free(&s);
}

static uint64_t append_sale(tm_store_t *st, int id, uint64_t hlc)
{
    uint8_t *b;
    size_t n;
    uint64_t seq = 0;
    sale_body(id, "till-1", (uint64_t)id, 2, &b, &n);
    int rc = tm_store_append_local(st, TM_OP_SALE, hlc, b, n, &seq);
    free(b);
    cr_assert_eq(rc, TM_OK, "append: %s", tm_strerror(rc));
    return seq;
}

/* A peer op; the caller frees op->body. */
static void peer_sale_op(tm_op_t *op, uint8_t origin_byte, uint64_t seq, uint64_t hlc, int id,
                         const char *till)
{
    memset(op, 0, sizeof *op);
    memset(op->origin, origin_byte, TM_NODE_ID_LEN);
    op->seq = seq;
    op->hlc = hlc;
    op->kind = TM_OP_SALE;
    sale_body(id, till, seq, 1, &op->body, &op->body_len);
}

static void peer_cust_op(tm_op_t *op, uint8_t origin_byte, uint64_t seq, uint64_t hlc,
                         const tm_customer_t *p)
{
    memset(op, 0, sizeof *op);
    memset(op->origin, origin_byte, TM_NODE_ID_LEN);
    op->seq = seq;
    op->hlc = hlc;
    op->kind = TM_OP_CUSTOMER;
    cr_assert_eq(tm_wire_customer_encode(p, &op->body, &op->body_len), TM_OK);
}

static void apply1(tm_store_t *st, tm_op_t *op, size_t expect_new)
{
    size_t n_new = 99;
    int rc = tm_store_apply(st, op, 1, &n_new);
    cr_assert_eq(rc, TM_OK, "apply: %s (%s)", tm_strerror(rc), tm_store_errmsg(st));
    cr_assert_eq(n_new, expect_new);
}

static off_t file_size(const char *p)
{
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    return sb.st_size;
}

/* ---- opening, versions, damage ---------------------------------------- */

Test(store, migrate_from_empty_and_reopen)
{
    uint8_t id1[TM_NODE_ID_LEN], id2[TM_NODE_ID_LEN], zero[TM_NODE_ID_LEN] = {0};
    tm_store_t *st = open_store(NULL);
    cr_assert_geq(tm_store_schema_latest(), 1);
    cr_assert_eq(tm_store_schema_version(st), tm_store_schema_latest());
    tm_store_node_id(st, id1);
    cr_assert_neq(memcmp(id1, zero, sizeof zero), 0);
    append_sale(st, 1, 100);
    tm_store_destroy(&st);
    cr_assert_null(st);

    st = open_store(NULL);
    tm_store_node_id(st, id2);
    cr_assert_eq(memcmp(id1, id2, sizeof id1), 0, "node id changed across reopen");
    cr_assert_eq(tm_store_schema_version(st), tm_store_schema_latest());
    tm_store_counts_t c;
    cr_assert_eq(tm_store_counts(st, &c), TM_OK);
    cr_assert_eq(c.ops, 1);
    cr_assert_eq(c.local_ops, 1);
    cr_assert_eq(c.sales, 1);
    tm_store_destroy(&st);

    /* WAL is a property of the file: check it stuck. */
    sqlite3 *db;
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

Test(store, newer_schema_is_refused)
{
    tm_store_t *st = open_store(NULL);
    tm_store_destroy(&st);
    sqlite3 *db;
    char sql[64];
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", tm_store_schema_latest() + 1);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_EVERSION);
    cr_assert_null(st);
}

Test(store, foreign_sqlite_file_is_refused)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    tm_store_t *st = NULL;
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_ECORRUPT);
    cr_assert_null(st);
}

Test(store, garbage_file_is_corrupt)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 8192; i++)
        fputc((i * 7919 + 13) & 0xff, f);
    fclose(f);
    tm_store_t *st = NULL;
    cr_assert_eq(tm_store_open(path, NULL, &st), TM_ECORRUPT);
    cr_assert_null(st);
}

Test(store, truncated_store_is_corrupt)
{
    tm_store_t *st = open_store(NULL);
    for (int i = 1; i <= 200; i++)
        append_sale(st, i, (uint64_t)i);
    tm_store_destroy(&st);
    off_t size = file_size(path);
    cr_assert_gt(size, (off_t)16 * 4096);
    cr_assert_eq(truncate(path, size / 2), 0);
    int rc = tm_store_open(path, NULL, &st);
    cr_assert_eq(rc, TM_ECORRUPT, "got %s", tm_errname(rc));
    cr_assert_null(st);
}

/* ---- the op log ------------------------------------------------------- */

Test(store, append_and_get_sale_round_trip)
{
    tm_store_t *st = open_store(NULL);
    tm_sale_t in, out;
    uint8_t *b;
    size_t n;
    uint64_t seq = 0;
    make_sale(&in, 42, "caja-3", 17, 3);
    in.has_customer = true;
    tm_strlcpy(in.customer_id, "123456785", sizeof in.customer_id);
    in.customer_id_type = TM_IDTYPE_RUT;
    tm_strlcpy(in.customer_email, "ana@example.cl", sizeof in.customer_email);
    tm_strlcpy(in.payments[0].reference, "ref-9", sizeof in.payments[0].reference);
    in.lines[1].discount = 90;
    in.total -= 90;
    in.payments[0].amount -= 90;
    cr_assert_eq(tm_wire_sale_encode(&in, &b, &n), TM_OK);
    cr_assert_eq(tm_store_append_local(st, TM_OP_SALE, 1000, b, n, &seq), TM_OK);
    cr_assert_eq(seq, 1);

    cr_assert_eq(tm_store_get_sale(st, in.sale_id, &out), TM_OK);
    uint8_t *b2;
    size_t n2;
    cr_assert_eq(tm_wire_sale_encode(&out, &b2, &n2), TM_OK);
    cr_assert_eq(n2, n);
    cr_assert_eq(memcmp(b, b2, n), 0, "sale read back differs from the one written");
    cr_assert_str_eq(out.till, "caja-3");
    cr_assert_eq(out.n_lines, 3);
    cr_assert_eq(out.lines[1].discount, 90);
    cr_assert(out.has_customer);
    cr_assert_str_eq(out.payments[0].reference, "ref-9");
    free(b2);
    tm_sale_free(&out);

    char other[TM_UUID_LEN];
    fake_uuid(43, other);
    cr_assert_eq(tm_store_get_sale(st, other, &out), TM_ENOTFOUND);
    cr_assert_eq(append_sale(st, 2, 1001), 2);

    uint64_t max = 0;
    cr_assert_eq(tm_store_max_receipt(st, "caja-3", &max), TM_OK);
    cr_assert_eq(max, 17);
    cr_assert_eq(tm_store_max_receipt(st, "nope", &max), TM_OK);
    cr_assert_eq(max, 0);
    cr_assert_eq(tm_store_max_hlc(st, &max), TM_OK);
    cr_assert_eq(max, 1001);
    free(b);
    tm_sale_free(&in);
    tm_store_destroy(&st);
}

Test(store, append_refuses_bad_body)
{
    tm_store_t *st = open_store(NULL);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
    cr_assert_eq(tm_store_append_local(st, TM_OP_SALE, 1, junk, sizeof junk, NULL), TM_EPROTO);
    cr_assert_eq(tm_store_append_local(st, 99, 1, junk, sizeof junk, NULL), TM_EPROTO);
    tm_store_counts_t c;
    cr_assert_eq(tm_store_counts(st, &c), TM_OK);
    cr_assert_eq(c.ops, 0);
    tm_store_destroy(&st);
}

Test(store, apply_twice_is_a_no_op)
{
    tm_store_t *st = open_store(NULL);
    tm_op_t op;
    uint8_t d1[32], d2[32], d0[32];
    cr_assert_eq(tm_store_digest(st, d0), TM_OK);
    peer_sale_op(&op, 0xA1, 1, 500, 7, "till-a");
    apply1(st, &op, 1);
    cr_assert_eq(tm_store_digest(st, d1), TM_OK);
    cr_assert_neq(memcmp(d0, d1, 32), 0);
    apply1(st, &op, 0);
    cr_assert_eq(tm_store_digest(st, d2), TM_OK);
    cr_assert_eq(memcmp(d1, d2, 32), 0);
    /* The same op twice inside one batch counts once. */
    tm_op_t two[2] = {op, op};
    two[0].seq = two[1].seq = 2;
    size_t n_new = 0;
    cr_assert_eq(tm_store_apply(st, two, 2, &n_new), TM_OK);
    cr_assert_eq(n_new, 1);
    tm_store_counts_t c;
    cr_assert_eq(tm_store_counts(st, &c), TM_OK);
    cr_assert_eq(c.ops, 2);
    cr_assert_eq(c.local_ops, 0);
    cr_assert_eq(c.sales, 1);
    free(op.body);
    tm_store_destroy(&st);
}

Test(store, out_of_order_apply_advances_vv)
{
    tm_store_t *st = open_store(NULL);
    tm_op_t op[3];
    uint8_t a[TM_NODE_ID_LEN];
    memset(a, 0xA1, sizeof a);
    for (int i = 0; i < 3; i++)
        peer_sale_op(&op[i], 0xA1, (uint64_t)i + 1, 10 + (uint64_t)i, 100 + i, "t");
    tm_vv_t vv;
    const uint64_t expect[3] = {0, 1, 3}; /* after seq 3, then 1, then 2 */
    const int order[3] = {2, 0, 1};
    for (int k = 0; k < 3; k++) {
        apply1(st, &op[order[k]], 1);
        cr_assert_eq(tm_store_vv(st, &vv), TM_OK);
        cr_assert_eq(tm_vv_get(&vv, a), expect[k], "step %d", k);
        cr_assert_eq(vv.n, expect[k] ? 1u : 0u);
        tm_vv_free(&vv);
    }
    for (int i = 0; i < 3; i++)
        free(op[i].body);
    /* Our own appends show up in the vector too. */
    append_sale(st, 1, 99);
    uint8_t me[TM_NODE_ID_LEN];
    tm_store_node_id(st, me);
    cr_assert_eq(tm_store_vv(st, &vv), TM_OK);
    cr_assert_eq(vv.n, 2);
    cr_assert_eq(tm_vv_get(&vv, me), 1);
    cr_assert_lt(memcmp(vv.e[0].origin, vv.e[1].origin, TM_NODE_ID_LEN), 0, "not sorted");
    tm_vv_free(&vv);
    tm_store_destroy(&st);
}

Test(store, vv_missing)
{
    tm_vv_entry_t a[2] = {0}, b[3] = {0};
    memset(a[0].origin, 1, TM_NODE_ID_LEN);
    a[0].seq = 5;
    memset(a[1].origin, 3, TM_NODE_ID_LEN);
    a[1].seq = 2;
    memset(b[0].origin, 3, TM_NODE_ID_LEN); /* deliberately not sorted */
    b[0].seq = 9;
    memset(b[1].origin, 1, TM_NODE_ID_LEN);
    b[1].seq = 5;
    memset(b[2].origin, 2, TM_NODE_ID_LEN);
    b[2].seq = 4;
    tm_vv_t mine = {a, 2}, theirs = {b, 3}, empty = {NULL, 0};
    tm_range_t *r = (tm_range_t *)1;
    size_t n = 99;

    cr_assert_eq(tm_vv_missing(&mine, &theirs, &r, &n), TM_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(r[0].origin[0], 2);
    cr_assert_eq(r[0].from, 1);
    cr_assert_eq(r[0].to, 4);
    cr_assert_eq(r[1].origin[0], 3);
    cr_assert_eq(r[1].from, 3);
    cr_assert_eq(r[1].to, 9);
    free(r);

    /* They hold less than or the same as us: nothing to ask for. */
    cr_assert_eq(tm_vv_missing(&theirs, &mine, &r, &n), TM_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(r);
    cr_assert_eq(tm_vv_missing(&mine, &empty, &r, &n), TM_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(r);
    cr_assert_eq(tm_vv_missing(&mine, &mine, &r, &n), TM_OK);
    cr_assert_eq(n, 0);

    /* We hold nothing: everything they have. */
    cr_assert_eq(tm_vv_missing(&empty, &mine, &r, &n), TM_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(r[0].from, 1);
    cr_assert_eq(r[0].to, 5);
    cr_assert_eq(r[1].to, 2);
    free(r);
    cr_assert_eq(tm_vv_get(&empty, a[0].origin), 0);
}

Test(store, read_ops_bounds)
{
    tm_store_t *st = open_store(NULL);
    tm_op_t in[10];
    for (int i = 0; i < 10; i++) {
        peer_sale_op(&in[i], 0xB2, (uint64_t)i + 1, 100 + (uint64_t)i, 200 + i, "t");
        apply1(st, &in[i], 1);
    }
    cr_assert_eq(append_sale(st, 1, 1000), 1);
    tm_range_t r = {.from = 1, .to = 10};
    memset(r.origin, 0xB2, TM_NODE_ID_LEN);
    tm_op_t *ops;
    size_t n;

    cr_assert_eq(tm_store_read_ops(st, &r, 1, 100, 1 << 20, &ops, &n), TM_OK);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(ops[i].seq, i + 1);
        cr_assert_eq(ops[i].hlc, in[i].hlc);
        cr_assert_eq(ops[i].kind, TM_OP_SALE);
        cr_assert_eq(ops[i].body_len, in[i].body_len);
        cr_assert_eq(memcmp(ops[i].body, in[i].body, in[i].body_len), 0);
    }
    tm_store_ops_free(ops, n);

    cr_assert_eq(tm_store_read_ops(st, &r, 1, 3, 1 << 20, &ops, &n), TM_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(ops[2].seq, 3);
    tm_store_ops_free(ops, n);

    /* Room for two and a half bodies: two. */
    size_t cap = in[0].body_len + in[1].body_len + in[2].body_len / 2;
    cr_assert_eq(tm_store_read_ops(st, &r, 1, 100, cap, &ops, &n), TM_OK);
    cr_assert_eq(n, 2);
    tm_store_ops_free(ops, n);

    /* A bound smaller than one body still returns one op. */
    cr_assert_eq(tm_store_read_ops(st, &r, 1, 100, 1, &ops, &n), TM_OK);
    cr_assert_eq(n, 1);
    tm_store_ops_free(ops, n);

    /* Two origins, given in reverse order, overlapping: (origin, seq)
     * order, no op twice. */
    tm_range_t rs[4] = {
        {.from = 1, .to = 5}, {.from = 1, .to = 4}, {.from = 8, .to = 99}, {.from = 3, .to = 9}};
    for (int i = 0; i < 4; i++)
        memset(rs[i].origin, 0xB2, TM_NODE_ID_LEN);
    tm_store_node_id(st, rs[1].origin);
    cr_assert_eq(tm_store_read_ops(st, rs, 4, 100, 1 << 20, &ops, &n), TM_OK);
    cr_assert_eq(n, 10 + 1, "got %zu", n); /* all ten of b2's, our one */
    for (size_t i = 1; i < n; i++) {
        int c = memcmp(ops[i - 1].origin, ops[i].origin, TM_NODE_ID_LEN);
        cr_assert(c < 0 || (c == 0 && ops[i - 1].seq < ops[i].seq));
    }
    tm_store_ops_free(ops, n);

    /* Nothing held in the range. */
    r.from = 50;
    r.to = UINT64_MAX;
    cr_assert_eq(tm_store_read_ops(st, &r, 1, 100, 100, &ops, &n), TM_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(ops);
    for (int i = 0; i < 10; i++)
        free(in[i].body);
    tm_store_destroy(&st);
}

Test(store, malformed_op_refuses_whole_batch)
{
    tm_store_t *st = open_store(NULL);
    tm_op_t ops[3];
    for (int i = 0; i < 3; i++)
        peer_sale_op(&ops[i], 0xC3, (uint64_t)i + 1, 10, 300 + i, "t");
    uint8_t junk[] = {0x0a, 0xff, 0x01}; /* field 1, length past the end */
    uint8_t *good = ops[1].body;
    size_t good_len = ops[1].body_len;
    uint8_t d0[32], d1[32];
    cr_assert_eq(tm_store_digest(st, d0), TM_OK);

    ops[1].body = junk;
    ops[1].body_len = sizeof junk;
    cr_assert_eq(tm_store_apply(st, ops, 3, NULL), TM_EPROTO);
    ops[1].body = good;
    ops[1].body_len = good_len;
    ops[1].seq = 0;
    cr_assert_eq(tm_store_apply(st, ops, 3, NULL), TM_EPROTO);
    ops[1].seq = 2;
    ops[1].kind = 77;
    cr_assert_eq(tm_store_apply(st, ops, 3, NULL), TM_EPROTO);
    ops[1].kind = TM_OP_SALE;
    memset(ops[1].origin, 0, TM_NODE_ID_LEN);
    cr_assert_eq(tm_store_apply(st, ops, 3, NULL), TM_EPROTO);

    tm_store_counts_t c;
    cr_assert_eq(tm_store_counts(st, &c), TM_OK);
    cr_assert_eq(c.ops, 0);
    cr_assert_eq(c.sales, 0);
    cr_assert_eq(tm_store_digest(st, d1), TM_OK);
    cr_assert_eq(memcmp(d0, d1, 32), 0);
    tm_sale_t s;
    char id[TM_UUID_LEN];
    fake_uuid(300, id);
    cr_assert_eq(tm_store_get_sale(st, id, &s), TM_ENOTFOUND);

    memset(ops[1].origin, 0xC3, TM_NODE_ID_LEN);
    size_t n_new = 0;
    cr_assert_eq(tm_store_apply(st, ops, 3, &n_new), TM_OK);
    cr_assert_eq(n_new, 3);
    for (int i = 0; i < 3; i++)
        free(ops[i].body);
    tm_store_destroy(&st);
}

Test(store, disk_full_writes_nothing)
{
    tm_store_opts_t opts = {.max_pages = 60};
    tm_store_t *st = open_store(&opts);
    uint8_t d_before[32], d_after[32];
    tm_store_counts_t c_before, c_after;
    int rc = TM_OK, i;
    for (i = 1; i < 10000; i++) {
        cr_assert_eq(tm_store_digest(st, d_before), TM_OK);
        cr_assert_eq(tm_store_counts(st, &c_before), TM_OK);
        uint8_t *b;
        size_t n;
        sale_body(i, "till-1", (uint64_t)i, 20, &b, &n);
        rc = tm_store_append_local(st, TM_OP_SALE, (uint64_t)i, b, n, NULL);
        free(b);
        if (rc)
            break;
    }
    cr_assert_eq(rc, TM_EFULL, "got %s after %d sales", tm_errname(rc), i);
    cr_assert_gt(i, 5);
    cr_assert_eq(tm_store_digest(st, d_after), TM_OK);
    cr_assert_eq(tm_store_counts(st, &c_after), TM_OK);
    cr_assert_eq(memcmp(d_before, d_after, 32), 0);
    cr_assert_eq(memcmp(&c_before, &c_after, sizeof c_after), 0);
    cr_assert_eq(c_after.sales, (uint64_t)i - 1);

    /* Still usable: reads work, and so does a write that needs no room. */
    tm_sale_t s;
    char id[TM_UUID_LEN];
    fake_uuid(i, id);
    cr_assert_eq(tm_store_get_sale(st, id, &s), TM_ENOTFOUND);
    fake_uuid(1, id);
    cr_assert_eq(tm_store_get_sale(st, id, &s), TM_OK);
    tm_sale_free(&s);
    tm_op_t *ops;
    size_t n;
    tm_range_t r = {.from = 1, .to = 1};
    tm_store_node_id(st, r.origin);
    cr_assert_eq(tm_store_read_ops(st, &r, 1, 10, 1 << 20, &ops, &n), TM_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(tm_store_apply(st, ops, 1, &n), TM_OK);
    cr_assert_eq(n, 0);
    tm_store_ops_free(ops, 1);
    tm_store_destroy(&st);

    /* Given room again, the same store takes the sale that did not fit. */
    st = open_store(NULL);
    cr_assert_eq(append_sale(st, i, (uint64_t)i), (uint64_t)i);
    cr_assert_eq(tm_store_counts(st, &c_after), TM_OK);
    cr_assert_eq(c_after.sales, (uint64_t)i);
    tm_store_destroy(&st);
}

/* ---- materialised records --------------------------------------------- */

static void patch_init(tm_customer_t *p, const char *id)
{
    memset(p, 0, sizeof *p);
    tm_strlcpy(p->id, id, sizeof p->id);
    p->id_type = TM_IDTYPE_RUT;
}

static void patch_set(tm_customer_t *p, tm_cust_field_t f, const char *v)
{
    p->f[f].set = true;
    tm_strlcpy(p->f[f].value, v, sizeof p->f[f].value);
}

Test(store, customer_last_writer_wins)
{
    tm_store_t *st = open_store(NULL);
    tm_customer_t p, c;
    tm_op_t op;

    patch_init(&p, "123456785");
    patch_set(&p, TM_CF_NAME, "Ana");
    patch_set(&p, TM_CF_EMAIL, "ana@example.cl");
    peer_cust_op(&op, 0xA0, 1, 10, &p);
    apply1(st, &op, 1);
    free(op.body);

    patch_init(&p, "123456785");
    patch_set(&p, TM_CF_NAME, "Old name"); /* older stamp: loses */
    patch_set(&p, TM_CF_PHONE, "+56 9 1234 5678");
    peer_cust_op(&op, 0xB0, 1, 5, &p);
    apply1(st, &op, 1);
    free(op.body);

    patch_init(&p, "123456785");
    patch_set(&p, TM_CF_EMAIL, "ana@new.cl"); /* same hlc, greater node: wins */
    peer_cust_op(&op, 0xC0, 1, 10, &p);
    apply1(st, &op, 1);
    free(op.body);

    patch_init(&p, "123456785");
    patch_set(&p, TM_CF_EMAIL, "loses@tie.cl"); /* same hlc, smaller node */
    peer_cust_op(&op, 0x10, 1, 10, &p);
    apply1(st, &op, 1);
    free(op.body);

    cr_assert_eq(tm_store_get_customer(st, "123456785", &c), TM_OK);
    cr_assert_str_eq(c.id, "123456785");
    cr_assert_eq(c.id_type, TM_IDTYPE_RUT);
    cr_assert(c.f[TM_CF_NAME].set);
    cr_assert_str_eq(c.f[TM_CF_NAME].value, "Ana");
    cr_assert_eq(c.f[TM_CF_NAME].hlc, 10);
    cr_assert_eq(c.f[TM_CF_NAME].node[0], 0xA0);
    cr_assert_str_eq(c.f[TM_CF_EMAIL].value, "ana@new.cl");
    cr_assert_eq(c.f[TM_CF_EMAIL].node[0], 0xC0);
    cr_assert_str_eq(c.f[TM_CF_PHONE].value, "+56 9 1234 5678");
    cr_assert_not(c.f[TM_CF_ERASED].set);

    /* Our own patch, later: wins. */
    patch_init(&p, "123456785");
    patch_set(&p, TM_CF_NAME, "Ana María");
    uint8_t *b;
    size_t n;
    cr_assert_eq(tm_wire_customer_encode(&p, &b, &n), TM_OK);
    cr_assert_eq(tm_store_append_local(st, TM_OP_CUSTOMER, 20, b, n, NULL), TM_OK);
    free(b);
    cr_assert_eq(tm_store_get_customer(st, "123456785", &c), TM_OK);
    cr_assert_str_eq(c.f[TM_CF_NAME].value, "Ana María");
    cr_assert_str_eq(c.f[TM_CF_EMAIL].value, "ana@new.cl");

    cr_assert_eq(tm_store_get_customer(st, "99999999", &c), TM_ENOTFOUND);
    tm_store_counts_t cnt;
    cr_assert_eq(tm_store_counts(st, &cnt), TM_OK);
    cr_assert_eq(cnt.customers, 1);
    tm_store_destroy(&st);
}

static void append_ack(tm_store_t *st, const int *ids, size_t n, uint64_t hlc)
{
    tm_erp_ack_t a = {0};
    char(*sid)[TM_UUID_LEN] = calloc(n, sizeof *sid);
    for (size_t i = 0; i < n; i++)
        fake_uuid(ids[i], sid[i]);
    a.sale_ids = sid;
    a.n = n;
    a.epoch = 1;
    snprintf(a.idempotency_key, sizeof a.idempotency_key, "k-%llu", (unsigned long long)hlc);
    uint8_t *b;
    size_t len;
    /* An ack counts for the ids of an intent its origin wrote. */
    cr_assert_eq(tm_wire_ack_encode(&a, &b, &len), TM_OK);
    cr_assert_eq(tm_store_append_local(st, TM_OP_ERP_INTENT, hlc, b, len, NULL), TM_OK);
    cr_assert_eq(tm_store_append_local(st, TM_OP_ERP_ACK, hlc, b, len, NULL), TM_OK);
    free(b);
    free(sid);
}

Test(store, erp_acks_and_unacked_sales)
{
    tm_store_t *st = open_store(NULL);
    for (int i = 1; i <= 3; i++)
        append_sale(st, i, (uint64_t)i);
    char(*ids)[TM_UUID_LEN] = NULL;
    size_t n = 0;
    char want[TM_UUID_LEN];
    cr_assert_eq(tm_store_unacked_sales(st, 10, &ids, &n), TM_OK);
    cr_assert_eq(n, 3);
    fake_uuid(1, want);
    cr_assert_str_eq(ids[0], want);
    free(ids);

    const int acked[] = {2, 9}; /* 9: a sale this store has not seen yet */
    append_ack(st, acked, 2, 10);
    fake_uuid(2, want);
    cr_assert_eq(tm_store_is_acked(st, want), 1);
    fake_uuid(1, want);
    cr_assert_eq(tm_store_is_acked(st, want), 0);
    fake_uuid(9, want);
    cr_assert_eq(tm_store_is_acked(st, want), 1);
    cr_assert_eq(tm_store_unacked_sales(st, 10, &ids, &n), TM_OK);
    cr_assert_eq(n, 2);
    fake_uuid(1, want);
    cr_assert_str_eq(ids[0], want);
    fake_uuid(3, want);
    cr_assert_str_eq(ids[1], want);
    free(ids);
    cr_assert_eq(tm_store_unacked_sales(st, 1, &ids, &n), TM_OK);
    cr_assert_eq(n, 1);
    free(ids);

    /* The sale arrives after its ack: it is born acknowledged. */
    append_sale(st, 9, 11);
    append_sale(st, 10, 12);
    cr_assert_eq(tm_store_unacked_sales(st, 10, &ids, &n), TM_OK);
    cr_assert_eq(n, 3);
    fake_uuid(10, want);
    cr_assert_str_eq(ids[2], want);
    free(ids);
    tm_store_counts_t c;
    cr_assert_eq(tm_store_counts(st, &c), TM_OK);
    cr_assert_eq(c.sales, 5);
    cr_assert_eq(c.erp_acked, 2);
    tm_store_destroy(&st);
}

Test(store, list_sales_cursor_paging)
{
    tm_store_t *st = open_store(NULL);
    for (int i = 1; i <= 7; i++)
        append_sale(st, i, (uint64_t)i);
    uint64_t since = 0, next = 0;
    int seen = 0;
    const size_t pages[] = {3, 3, 1, 0};
    for (int p = 0; p < 4; p++) {
        tm_sale_t *s = NULL;
        size_t n = 99;
        cr_assert_eq(tm_store_list_sales(st, since, 3, &s, &n, &next), TM_OK);
        cr_assert_eq(n, pages[p], "page %d", p);
        for (size_t i = 0; i < n; i++) {
            char want[TM_UUID_LEN];
            fake_uuid(++seen, want);
            cr_assert_str_eq(s[i].sale_id, want);
            cr_assert_eq(s[i].n_lines, 2);
            tm_sale_free(&s[i]);
        }
        free(s);
        if (n == 0)
            cr_assert_eq(next, since, "an empty page keeps the cursor");
        since = next;
    }
    cr_assert_eq(seen, 7);
    tm_store_destroy(&st);
}

static void remove_store_files(void)
{
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
}

Test(store, same_sale_id_from_two_origins_is_settled_the_same_way)
{
    tm_op_t a, b;
    char id[TM_UUID_LEN];
    fake_uuid(5, id);
    /* The first by (origin, seq) wins, whatever the stamps say. */
    peer_sale_op(&a, 0xA0, 1, 50, 5, "from-a");
    peer_sale_op(&b, 0x0B, 1, 60, 5, "from-b");
    for (int order = 0; order < 2; order++) {
        tm_store_t *st = open_store(NULL);
        apply1(st, order ? &b : &a, 1);
        apply1(st, order ? &a : &b, 1);
        tm_sale_t s;
        cr_assert_eq(tm_store_get_sale(st, id, &s), TM_OK);
        cr_assert_str_eq(s.till, "from-b", "order %d kept %s", order, s.till);
        tm_sale_free(&s);
        tm_store_counts_t c;
        cr_assert_eq(tm_store_counts(st, &c), TM_OK);
        cr_assert_eq(c.sales, 1);
        cr_assert_eq(c.ops, 2);
        tm_store_destroy(&st);
        remove_store_files();
    }
    free(a.body);
    free(b.body);
}
