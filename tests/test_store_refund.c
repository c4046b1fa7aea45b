/* test_store_refund.c - returns and review flags in the SQLite store, on
 * real files: the API's check, flags that depend only on the sales held
 * (every arrival order), and the migration that adds them. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_store.h"
#include "tm_wire.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tm_refund_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/store.db", dir);
}

static void rm_store(void)
{
    char p[160];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static void teardown(void)
{
    rm_store();
    rmdir(dir);
}

TestSuite(refund_store, .init = setup, .fini = teardown);

static tm_store_t *open_store(void)
{
    tm_store_t *s = NULL;
    int rc = tm_store_open(path, NULL, &s);
    cr_assert_eq(rc, TM_OK, "open: %s", tm_strerror(rc));
    return s;
}

#define ORIG "aaaaaaaa-0000-4000-8000-000000000001"
#define R1   "bbbbbbbb-0000-4000-8000-000000000001"
#define R2   "bbbbbbbb-0000-4000-8000-000000000002"
#define R3   "bbbbbbbb-0000-4000-8000-000000000003"

/* A sale of qty thousandths of SKU "P" at 1000 CLP a unit; negative qty
 * makes it a return of refund_of. */
static void make(tm_sale_t *s, const char *id, int64_t qty, const char *refund_of)
{
    memset(s, 0, sizeof *s);
    tm_strlcpy(s->sale_id, id, sizeof s->sale_id);
    tm_strlcpy(s->till, "till-1", sizeof s->till);
    s->receipt_no = 1;
    tm_strlcpy(s->created_at, "2026-11-23T12:00:00Z", sizeof s->created_at);
    tm_strlcpy(s->currency, "CLP", sizeof s->currency);
    s->lines = calloc(1, sizeof *s->lines);
    s->n_lines = 1;
    tm_strlcpy(s->lines[0].sku, "P", sizeof s->lines[0].sku);
    tm_strlcpy(s->lines[0].name, "Pan", sizeof s->lines[0].name);
    s->lines[0].qty = qty;
    s->lines[0].unit_price = 1000;
    s->total = tm_sale_line_amount(&s->lines[0]);
    s->payments = calloc(1, sizeof *s->payments);
    s->n_payments = 1;
    s->payments[0].method = TM_PAY_CASH;
    s->payments[0].amount = s->total;
    if (refund_of)
        tm_strlcpy(s->refund_of, refund_of, sizeof s->refund_of);
}

/* A peer op from origin byte o carrying s. */
static void op_of(tm_op_t *op, uint8_t o, uint64_t seq, const tm_sale_t *s)
{
    memset(op, 0, sizeof *op);
    memset(op->origin, o, TM_NODE_ID_LEN);
    op->seq = seq;
    op->hlc = 1000 + seq;
    op->kind = TM_OP_SALE;
    cr_assert_eq(tm_wire_sale_encode(s, &op->body, &op->body_len), TM_OK);
}

static int review_of(tm_store_t *st, const char *id)
{
    tm_sale_t s;
    cr_assert_eq(tm_store_get_sale(st, id, &s), TM_OK, "no sale %s", id);
    int r = s.review;
    tm_sale_free(&s);
    return r;
}

static tm_review_counts_t counts(tm_store_t *st)
{
    tm_review_counts_t c;
    tm_review_entry_t *e = NULL;
    size_t n = 0;
    cr_assert_eq(tm_store_reviews(st, 10, &e, &n, &c), TM_OK);
    free(e);
    return c;
}

/* The original (1 unit) and two returns of 0.7 units, each from its own
 * till: within bounds alone, over them together. Every one of the 6 arrival
 * orders (one op per apply, as from separate peers) ends with both returns
 * flagged and the original not; with only one return held nothing is. */
Test(refund_store, flags_depend_only_on_the_sales_held)
{
    tm_sale_t s[3];
    tm_op_t ops[3];
    make(&s[0], ORIG, 1000, NULL);
    make(&s[1], R1, -700, ORIG);
    make(&s[2], R2, -700, ORIG);
    for (int i = 0; i < 3; i++)
        op_of(&ops[i], (uint8_t)(i + 1), 1, &s[i]);
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int p = 0; p < 6; p++) {
        tm_store_t *st = open_store();
        for (int k = 0; k < 3; k++) {
            const int *o = perms[p];
            cr_assert_eq(tm_store_apply(st, &ops[o[k]], 1, NULL), TM_OK);
            if (k == 1) {
                /* Two of three held: over only if both returns, unknown
                 * if the original is missing. */
                bool orig_held = o[0] == 0 || o[1] == 0;
                for (int j = 0; j < 2; j++) {
                    int r = o[j];
                    if (r == 0)
                        continue;
                    cr_assert_eq(review_of(st, s[r].sale_id),
                                 orig_held ? TM_REVIEW_NONE : TM_REVIEW_ORIGINAL_UNKNOWN,
                                 "perm %d after 2", p);
                }
            }
        }
        cr_assert_eq(review_of(st, R1), TM_REVIEW_OVER_REFUND, "perm %d", p);
        cr_assert_eq(review_of(st, R2), TM_REVIEW_OVER_REFUND, "perm %d", p);
        cr_assert_eq(review_of(st, ORIG), TM_REVIEW_NONE, "perm %d", p);
        tm_review_counts_t c = counts(st);
        cr_assert_eq(c.over_refund, 2);
        cr_assert_eq(c.original_unknown, 0);
        tm_store_destroy(&st);
        rm_store();
    }
    for (int i = 0; i < 3; i++) {
        free(ops[i].body);
        tm_sale_free(&s[i]);
    }
}

/* The API's check, against what the store holds. */
Test(refund_store, api_check)
{
    tm_store_t *st = open_store();
    tm_sale_t o, r;
    tm_field_errors_t errs;
    int review = -1;
    uint8_t *b;
    size_t n;
    uint64_t seq;

    /* No original here yet: taken, flagged. */
    make(&r, R1, -600, ORIG);
    cr_assert_eq(tm_store_refund_check(st, &r, &review, &errs), TM_OK);
    cr_assert_eq(review, TM_REVIEW_ORIGINAL_UNKNOWN);
    cr_assert_eq(tm_wire_sale_encode(&r, &b, &n), TM_OK);
    cr_assert_eq(tm_store_append_local(st, TM_OP_SALE, 10, b, n, &seq), TM_OK);
    free(b);
    cr_assert_eq(review_of(st, R1), TM_REVIEW_ORIGINAL_UNKNOWN);
    cr_assert_eq(counts(st).original_unknown, 1);
    tm_sale_free(&r);

    /* The original arrives: the flag goes. */
    make(&o, ORIG, 1000, NULL);
    cr_assert_eq(tm_wire_sale_encode(&o, &b, &n), TM_OK);
    cr_assert_eq(tm_store_append_local(st, TM_OP_SALE, 5, b, n, &seq), TM_OK);
    free(b);
    cr_assert_eq(review_of(st, R1), TM_REVIEW_NONE);
    cr_assert_eq(counts(st).original_unknown, 0);

    /* 0.6 back already: 0.4 more fits, 0.5 does not. */
    make(&r, R2, -400, ORIG);
    cr_assert_eq(tm_store_refund_check(st, &r, &review, &errs), TM_OK);
    cr_assert_eq(review, TM_REVIEW_NONE);
    r.lines[0].qty = -500;
    r.total = r.payments[0].amount = -500;
    cr_assert_eq(tm_store_refund_check(st, &r, &review, &errs), TM_EVALIDATE);
    cr_assert_str_eq(errs.e[0].field, "lines[0].qty");
    cr_assert_str_eq(errs.e[0].rule, "exceeds_original");
    /* refund_of written in upper case still finds the original. */
    tm_strlcpy(r.refund_of, "AAAAAAAA-0000-4000-8000-000000000001", sizeof r.refund_of);
    cr_assert_eq(tm_store_refund_check(st, &r, &review, &errs), TM_EVALIDATE);
    tm_sale_free(&r);

    /* A POS retry of R1 itself is not counted against itself. */
    make(&r, R1, -600, ORIG);
    cr_assert_eq(tm_store_refund_check(st, &r, &review, &errs), TM_OK);
    tm_sale_free(&r);

    /* A refund of a refund. */
    make(&r, R3, -100, R1);
    cr_assert_eq(tm_store_refund_check(st, &r, &review, &errs), TM_EVALIDATE);
    cr_assert_str_eq(errs.e[0].rule, "refund_of_refund");
    tm_sale_free(&r);
    tm_sale_free(&o);
    tm_store_destroy(&st);
}

/* A store from before review flags (schema 5) holding an over-refunded sale
 * gets its flags when it is opened by this build. */
Test(refund_store, migration_flags_what_is_held)
{
    tm_store_t *st = open_store();
    tm_sale_t s[3];
    tm_op_t ops[3];
    make(&s[0], ORIG, 1000, NULL);
    make(&s[1], R1, -700, ORIG);
    make(&s[2], R2, -700, ORIG);
    for (int i = 0; i < 3; i++)
        op_of(&ops[i], 7, (uint64_t)i + 1, &s[i]);
    cr_assert_eq(tm_store_apply(st, ops, 3, NULL), TM_OK);
    cr_assert_eq(counts(st).over_refund, 2);
    tm_store_destroy(&st);

    /* Back to schema 5 as an older build left it (undoing steps 9, 8, 7, 6). */
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db,
                          "DROP TABLE evidence; DROP TABLE seals;"
                          "ALTER TABLE ops DROP COLUMN sig; ALTER TABLE ops DROP COLUMN prev;"
                          "DROP TABLE origin_names; DROP TABLE sale_claims;"
                          "DROP TABLE sale_conflicts; DROP TABLE erp_ack_claims;"
                          "DROP TABLE erp_intent_ids; DROP INDEX sales_till_receipt;"
                          "DROP INDEX sales_dup_receipt; DROP TABLE erp_revoked;"
                          "ALTER TABLE erp_acks DROP COLUMN hlc;"
                          "ALTER TABLE sales DROP COLUMN dup_receipt;"
                          "CREATE INDEX sales_till_receipt ON sales (till, receipt_no);"
                          "DROP INDEX sales_acked_order; DROP TABLE compacted_sales;"
                          "ALTER TABLE ops DROP COLUMN hash; ALTER TABLE ops DROP COLUMN compacted;"
                          "DROP INDEX sales_refund_of;"
                          "DROP INDEX sales_review; ALTER TABLE sales DROP COLUMN review;"
                          "DROP TABLE products; DROP TABLE product_barcodes;"
                          "DROP TABLE catalogue_state; DROP TABLE voided;"
                          "ALTER TABLE sale_lines DROP COLUMN catalogue_version;"
                          "PRAGMA user_version = 5;",
                          NULL, NULL, &err);
    cr_assert_eq(rc, SQLITE_OK, "%s", err ? err : "");
    sqlite3_close(db);

    st = open_store();
    cr_assert_eq(tm_store_schema_version(st), tm_store_schema_latest());
    cr_assert_eq(review_of(st, R1), TM_REVIEW_OVER_REFUND);
    cr_assert_eq(review_of(st, R2), TM_REVIEW_OVER_REFUND);
    tm_review_entry_t *e = NULL;
    size_t n = 0;
    tm_review_counts_t c;
    cr_assert_eq(tm_store_reviews(st, 1, &e, &n, &c), TM_OK);
    cr_assert_eq(c.over_refund, 2);
    cr_assert_eq(n, 1, "max is honoured");
    cr_assert_str_eq(e[0].sale_id, R1);
    cr_assert_str_eq(e[0].refund_of, ORIG);
    free(e);
    tm_store_destroy(&st);
    for (int i = 0; i < 3; i++) {
        free(ops[i].body);
        tm_sale_free(&s[i]);
    }
}

/* The flags are not part of what is replicated or hashed: two stores with
 * the same ops have the same digest whatever they flagged on the way. */
Test(refund_store, digest_ignores_flags)
{
    tm_sale_t s[2];
    tm_op_t ops[2];
    uint8_t d1[32], d2[32];
    make(&s[0], ORIG, 1000, NULL);
    make(&s[1], R1, -1000, ORIG);
    op_of(&ops[0], 1, 1, &s[0]);
    op_of(&ops[1], 2, 1, &s[1]);
    tm_store_t *st = open_store();
    cr_assert_eq(tm_store_apply(st, &ops[1], 1, NULL), TM_OK); /* flagged unknown meanwhile */
    cr_assert_eq(tm_store_apply(st, &ops[0], 1, NULL), TM_OK);
    cr_assert_eq(tm_store_digest(st, d1), TM_OK);
    tm_store_destroy(&st);
    rm_store();
    st = open_store();
    cr_assert_eq(tm_store_apply(st, ops, 2, NULL), TM_OK);
    cr_assert_eq(tm_store_digest(st, d2), TM_OK);
    cr_assert_eq(memcmp(d1, d2, 32), 0);
    cr_assert_eq(review_of(st, R1), TM_REVIEW_NONE);
    tm_store_destroy(&st);
    for (int i = 0; i < 2; i++) {
        free(ops[i].body);
        tm_sale_free(&s[i]);
    }
}

/* A till sending any number of returns of one sale cannot make the check
 * load them all: past 100 the group is flagged and new returns refused. */
Test(refund_store, returns_per_original_are_bounded)
{
    tm_store_t *st = open_store();
    tm_sale_t o, r;
    tm_op_t op;
    tm_field_errors_t errs;
    int review;
    make(&o, ORIG, 1000, NULL);
    op_of(&op, 1, 1, &o);
    cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_OK);
    free(op.body);
    for (int i = 0; i < 101; i++) {
        char id[TM_UUID_LEN];
        snprintf(id, sizeof id, "cccccccc-0000-4000-8000-%012d", i);
        make(&r, id, -1, ORIG);
        op_of(&op, 2, (uint64_t)i + 1, &r);
        cr_assert_eq(tm_store_apply(st, &op, 1, NULL), TM_OK);
        free(op.body);
        tm_sale_free(&r);
        cr_assert_eq(counts(st).over_refund, i < 100 ? 0 : 101, "after %d", i + 1);
    }
    make(&r, R1, -1, ORIG);
    cr_assert_eq(tm_store_refund_check(st, &r, &review, &errs), TM_EVALIDATE);
    cr_assert_str_eq(errs.e[0].rule, "too_many_returns");
    tm_sale_free(&r);
    tm_sale_free(&o);
    tm_store_destroy(&st);
}

/* Ids in either case: a return naming its original in the other case is
 * bounded by it, and the flags are the same in both arrival orders. A
 * mixed-case spelling that matches nothing alone is found through another
 * return of the group that spells the original as stored; without one the
 * return stays original_unknown, in both orders too. */
Test(refund_store, id_case)
{
    static const struct {
        const char *orig, *ref;
        bool with_r2;
        int want;
    } cases[] = {
        {"AAAAAAAA-0000-4000-8000-00000000000A", "aaaaaaaa-0000-4000-8000-00000000000a", true,
         TM_REVIEW_OVER_REFUND},
        {"aaaaaaaa-0000-4000-8000-00000000000a", "AAAAAAAA-0000-4000-8000-00000000000A", true,
         TM_REVIEW_OVER_REFUND},
        {"AaAaAaAa-0000-4000-8000-00000000000a", "aAaAaAaA-0000-4000-8000-00000000000A", true,
         TM_REVIEW_OVER_REFUND},
        {"AaAaAaAa-0000-4000-8000-00000000000a", "aAaAaAaA-0000-4000-8000-00000000000A", false,
         TM_REVIEW_ORIGINAL_UNKNOWN},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int order = 0; order < 2; order++) {
            tm_sale_t s[3];
            tm_op_t ops[3];
            int n = cases[c].with_r2 ? 3 : 2;
            make(&s[0], cases[c].orig, 1000, NULL);
            make(&s[1], R1, -700, cases[c].ref);
            make(&s[2], R2, -700, cases[c].orig);
            for (int i = 0; i < 3; i++)
                op_of(&ops[i], (uint8_t)(i + 1), 1, &s[i]);
            tm_store_t *st = open_store();
            for (int k = 0; k < n; k++)
                cr_assert_eq(tm_store_apply(st, &ops[order ? n - 1 - k : k], 1, NULL), TM_OK);
            cr_assert_eq(review_of(st, R1), cases[c].want, "case %zu order %d", c, order);
            if (n == 3)
                cr_assert_eq(review_of(st, R2), cases[c].want, "case %zu order %d", c, order);
            tm_store_destroy(&st);
            rm_store();
            for (int i = 0; i < 3; i++) {
                free(ops[i].body);
                tm_sale_free(&s[i]);
            }
        }
    }
}
